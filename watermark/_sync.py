"""Synchronisation: whiten the luminance, find the tile lattice (period, rotation) from
the autocorrelation, fold all tiles into one and find the translation with the pilot."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import numpy.typing as npt
from scipy import fft as sfft
from scipy import ndimage

from ._pattern import TILE

F32 = npt.NDArray[np.float32]

# Lattice periods searched, in working-resolution pixels. Embedding uses TILE; cropping
# (which makes the detector's working resolution finer) and rescaling small images
# (which are processed at native size) change it.
MIN_PERIOD = 0.45 * TILE
MAX_PERIOD = 2.3 * TILE
MAX_LATTICE_CANDIDATES = 3
WHITEN_SIGMA = 1.2
ENERGY_WINDOW = 5


def whiten(luma: F32) -> F32:
    """Suppress the image so the watermark dominates: high-pass, then divide by the
    local residual energy (a matched filter when the watermark amplitude, like ours,
    follows local texture); clipping tames edges."""
    hp = luma - ndimage.gaussian_filter(luma, WHITEN_SIGMA, truncate=3.0)
    energy = ndimage.uniform_filter(hp * hp, ENERGY_WINDOW)
    w = hp / (np.sqrt(np.maximum(energy, 0.0)) + np.float32(0.5))
    np.clip(w, -3.0, 3.0, out=w)
    out: F32 = w.astype(np.float32)
    return out


@dataclass(frozen=True)
class Lattice:
    """Tile basis vectors in detector pixels: v1 ~ x axis, v2 ~ y axis, (x, y)."""

    v1: tuple[float, float]
    v2: tuple[float, float]

    @property
    def scale(self) -> float:
        return float(np.hypot(*self.v1) / TILE)

    @property
    def rotation_deg(self) -> float:
        return float(np.degrees(np.arctan2(self.v1[1], self.v1[0])))


IDENTITY = Lattice((float(TILE), 0.0), (0.0, float(TILE)))


def fold(w: F32, lat: Lattice) -> F32:
    """Average every pixel into its position within one tile."""
    h, wd = w.shape
    if lat == IDENTITY:
        ph, pw = -h % TILE, -wd % TILE
        # Pad to whole tiles and divide by the per-position count.
        acc = np.zeros((h + ph, wd + pw), dtype=np.float32)
        acc[:h, :wd] = w
        cnt = np.zeros_like(acc)
        cnt[:h, :wd] = 1.0
        s = acc.reshape((h + ph) // TILE, TILE, (wd + pw) // TILE, TILE).sum(axis=(0, 2))
        c = cnt.reshape((h + ph) // TILE, TILE, (wd + pw) // TILE, TILE).sum(axis=(0, 2))
        folded: F32 = (s / np.maximum(c, 1.0)).astype(np.float32)
        return folded
    m = np.array([[lat.v1[0], lat.v2[0]], [lat.v1[1], lat.v2[1]]], dtype=np.float64) / TILE
    inv = np.linalg.inv(m).astype(np.float32)
    xs = np.arange(wd, dtype=np.float32)[None, :]
    ys = np.arange(h, dtype=np.float32)[:, None]
    if inv[0, 1] == 0.0 and inv[1, 0] == 0.0:
        # Axis-aligned lattice (the 2x-upsampled first attempt): the bin index is
        # separable, so the fold is two small one-hot matrix products, not a bincount
        # over every pixel. Same bins as below.
        cu = np.rint(inv[0, 0] * xs[0]).astype(np.int32) & (TILE - 1)
        rv = np.rint(inv[1, 1] * ys[:, 0]).astype(np.int32) & (TILE - 1)
        col = np.zeros((wd, TILE), dtype=np.float64)
        col[np.arange(wd), cu] = 1.0
        row = np.zeros((h, TILE), dtype=np.float64)
        row[np.arange(h), rv] = 1.0
        sums = row.T @ (w.astype(np.float64) @ col)
        cnt2 = np.outer(row.sum(axis=0), col.sum(axis=0))
        sep: F32 = (sums / np.maximum(cnt2, 1.0)).astype(np.float32)
        return sep
    # TILE is a power of two, so "& (TILE - 1)" is a modulo that is also right for
    # negative coordinates (two's complement).
    iu = np.rint(inv[0, 0] * xs + inv[0, 1] * ys).astype(np.int32) & (TILE - 1)
    iv = np.rint(inv[1, 0] * xs + inv[1, 1] * ys).astype(np.int32) & (TILE - 1)
    idx = (iv * TILE + iu).ravel()
    s = np.bincount(idx, weights=w.ravel(), minlength=TILE * TILE)
    c = np.bincount(idx, minlength=TILE * TILE)
    return (s / np.maximum(c, 1)).reshape(TILE, TILE).astype(np.float32)


def align(folded: F32, pilot: F32) -> tuple[F32, float]:
    """Roll the folded tile so the pilot lines up; return it and the peak's z-score."""
    corr = sfft.irfft2(sfft.rfft2(folded) * np.conj(sfft.rfft2(pilot)), s=folded.shape)
    k = int(np.argmax(corr))
    dy, dx = divmod(k, TILE)
    z = float((corr.flat[k] - corr.mean()) / (corr.std() + 1e-12))
    return np.roll(folded, (-dy, -dx), axis=(0, 1)), z


# Lattice points summed when scoring a candidate lattice: summing the autocorrelation
# over several lattice vectors is what lifts the watermark above periodic structure in
# the photo (windows, tiles), which shows up at one or two lags only.
_K_COARSE = np.array([(1, 0), (0, 1), (1, 1), (1, -1), (2, 0), (0, 2), (2, 1), (1, 2),
                      (2, -1), (1, -2), (2, 2), (2, -2)], dtype=np.float64)
_K_FINE = np.array([(i, j) for i in range(0, 5) for j in range(-4, 5)
                    if (i, j) > (0, 0) and (i > 0 or j > 0)], dtype=np.float64)
MAX_ROTATION_DEG = 6.0
N_SEARCH_CANDIDATES = 4


def _box_response(n: int, size: int) -> npt.NDArray[np.float64]:
    """DFT of a centred cyclic moving average of odd ``size`` over ``n`` samples."""
    k = np.arange(n, dtype=np.float64)
    h = np.ones(n, dtype=np.float64)
    for d in range(1, size // 2 + 1):
        h += 2.0 * np.cos(2.0 * np.pi * k * d / n)
    out: npt.NDArray[np.float64] = h / size
    return out


def _autocorr(w: F32) -> npt.NDArray[np.float64]:
    x = w - w.mean()
    # scipy.fft, not numpy.fft: same transform, several times faster on these sizes.
    spec = sfft.rfft2(x)
    power = spec.real**2 + spec.imag**2
    # Keep only sharp peaks: the tile's peaks are a cell wide, the photo's own
    # correlation is broad. "ac - uniform_filter(ac, 7, mode='wrap')" is applied in
    # the frequency domain (the cyclic box filter is a product there), which saves a
    # full-size filter pass.
    h, wd = w.shape
    hy = _box_response(h, 7)[:, None]
    hx = _box_response(wd, 7)[: wd // 2 + 1][None, :]
    power *= (1.0 - hy * hx).astype(power.dtype)
    sharp: npt.NDArray[np.float64] = sfft.irfft2(power, s=w.shape)
    # Normalise by the zero-lag autocorrelation (Parseval: the signal's energy).
    sharp /= float(np.dot(x.ravel().astype(np.float64), x.ravel().astype(np.float64))) + 1e-12
    return sharp


_Points = tuple[npt.NDArray[np.float64], npt.NDArray[np.float64],
                npt.NDArray[np.bool_], npt.NDArray[np.intp]]


def _lattice_points(h: int, w: int, periods: npt.NDArray[np.float64],
                    angles: npt.NDArray[np.float64], ks: npt.NDArray[np.float64]) -> _Points:
    """Wrapped (y, x) of the lattice points in ``ks`` that fit in an h x w
    autocorrelation, for every (period, angle); their mask and count per candidate."""
    per, ang = np.meshgrid(periods, angles, indexing="ij")
    c = np.cos(ang)[..., None]
    s = np.sin(ang)[..., None]
    x = per[..., None] * (ks[:, 0] * c - ks[:, 1] * s)
    y = per[..., None] * (ks[:, 0] * s + ks[:, 1] * c)
    valid = (np.abs(x) < w / 2 - 2) & (np.abs(y) < h / 2 - 2)
    # Only the lattice points that fit are interpolated (the score ignores the rest).
    return np.mod(y[valid], h), np.mod(x[valid], w), valid, valid.sum(axis=-1)


def _scores_at(ac: npt.NDArray[np.float64], pts: _Points) -> npt.NDArray[np.float64]:
    yv, xv, valid, n = pts
    vals = np.zeros(valid.shape, dtype=np.float64)
    vals[valid] = ndimage.map_coordinates(ac, [yv, xv], order=1, mode="grid-wrap")
    out: npt.NDArray[np.float64] = (vals * valid).sum(axis=-1) / np.sqrt(np.maximum(n, 1))
    out[n < 2] = -np.inf
    return out


def _scores(ac: npt.NDArray[np.float64], periods: npt.NDArray[np.float64],
            angles: npt.NDArray[np.float64], ks: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Lattice score for every (period, angle): the autocorrelation summed over the
    lattice points in ``ks`` that fit in the image, divided by sqrt(count)."""
    h, w = ac.shape
    return _scores_at(ac, _lattice_points(h, w, periods, angles, ks))


_Bilinear = tuple[npt.NDArray[np.intp], npt.NDArray[np.float64], npt.NDArray[np.bool_],
                  npt.NDArray[np.intp]]


@lru_cache(maxsize=8)
def _coarse_grid(h: int, w: int) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64],
                                          _Bilinear]:
    """The coarse search grid for an h x w working image and, for its lattice points,
    the flat indices and weights of the 4 neighbours for periodic bilinear
    interpolation (what map_coordinates(order=1, mode="grid-wrap") computes). It
    depends only on the shape, so it is computed once per shape (read-only arrays)."""
    max_p = min(MAX_PERIOD, 0.45 * min(h, w))
    periods = MIN_PERIOD * np.exp(np.arange(0.0, np.log(max_p / MIN_PERIOD), 0.003))
    angles = np.radians(np.arange(-MAX_ROTATION_DEG, MAX_ROTATION_DEG + 1e-9, 0.35))
    yv, xv, valid, n = _lattice_points(h, w, periods, angles, _K_COARSE)
    y0 = np.floor(yv)
    x0 = np.floor(xv)
    fy = yv - y0
    fx = xv - x0
    iy0 = y0.astype(np.intp) % h
    ix0 = x0.astype(np.intp) % w
    iy1 = (iy0 + 1) % h
    ix1 = (ix0 + 1) % w
    idx = np.stack([iy0 * w + ix0, iy0 * w + ix1, iy1 * w + ix0, iy1 * w + ix1])
    wts = np.stack([(1.0 - fy) * (1.0 - fx), (1.0 - fy) * fx, fy * (1.0 - fx), fy * fx])
    for a in (periods, angles, idx, wts, valid, n):
        a.setflags(write=False)
    return periods, angles, (idx, wts, valid, n)


def _coarse_scores(ac: npt.NDArray[np.float64], bil: _Bilinear) -> npt.NDArray[np.float64]:
    idx, wts, valid, n = bil
    flat = ac.ravel().astype(np.float64)
    vals = np.zeros(valid.shape, dtype=np.float64)
    vals[valid] = (flat[idx] * wts).sum(axis=0)
    out: npt.NDArray[np.float64] = vals.sum(axis=-1) / np.sqrt(np.maximum(n, 1))
    out[n < 2] = -np.inf
    return out


def lattice_candidates(w: F32) -> list[Lattice]:
    """Square lattices suggested by the autocorrelation, best first."""
    h, wd = w.shape
    max_p = min(MAX_PERIOD, 0.45 * min(h, wd))
    if max_p < MIN_PERIOD * 1.05:
        return []
    ac = _autocorr(w)
    periods, angles, bil = _coarse_grid(h, wd)
    score = _coarse_scores(ac, bil)
    picked: list[tuple[float, float]] = []
    for flat in np.argsort(score, axis=None)[::-1][:2000]:
        a, b = np.unravel_index(flat, score.shape)
        pa, th = float(periods[a]), float(angles[b])
        if not np.isfinite(score[a, b]):
            break
        if any(abs(np.log(pa / q)) < 0.03 and abs(th - r) < 0.05 for q, r in picked):
            continue
        picked.append((pa, th))
        if len(picked) >= N_SEARCH_CANDIDATES:
            break
    out: list[Lattice] = []
    for pa, th in picked:
        fp = pa * np.exp(np.arange(-0.004, 0.00401, 0.001))
        fa = th + np.radians(np.arange(-0.3, 0.301, 0.1))
        fs = _scores(ac, fp, fa, _K_FINE)
        a, b = np.unravel_index(int(np.argmax(fs)), fs.shape)
        p_best, t_best = float(fp[a]), float(fa[b])
        v1 = (p_best * np.cos(t_best), p_best * np.sin(t_best))
        out.append(Lattice(v1, (-v1[1], v1[0])))
    return out
