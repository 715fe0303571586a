"""Synchronisation: whiten the luminance, find the tile lattice (period, rotation) from
the autocorrelation, fold all tiles into one and find the translation with the pilot."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import ndimage

from ._pattern import TILE

F32 = npt.NDArray[np.float32]

# Lattice periods searched, in working-resolution pixels. Embedding uses TILE; cropping
# (which makes the detector's working resolution finer) and rescaling small images
# (which are processed at native size) change it.
MIN_PERIOD = 0.45 * TILE
MAX_PERIOD = 2.3 * TILE
MAX_LATTICE_CANDIDATES = 3


def whiten(luma: F32) -> F32:
    """Suppress the image so the watermark dominates: high-pass, then divide by the
    local residual energy (a matched filter when the watermark amplitude, like ours,
    follows local texture); clipping tames edges."""
    hp = luma - ndimage.gaussian_filter(luma, 1.2, truncate=3.0)
    energy = ndimage.uniform_filter(hp * hp, 9)
    w = hp / (np.sqrt(np.maximum(energy, 0.0)) + np.float32(0.5))
    np.clip(w, -3.0, 3.0, out=w)
    return w.astype(np.float32)


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
        return (s / np.maximum(c, 1.0)).astype(np.float32)
    m = np.array([[lat.v1[0], lat.v2[0]], [lat.v1[1], lat.v2[1]]], dtype=np.float64) / TILE
    inv = np.linalg.inv(m)
    ys, xs = np.mgrid[0:h, 0:wd].astype(np.float32)
    u = np.rint(inv[0, 0] * xs + inv[0, 1] * ys).astype(np.int64) % TILE
    v = np.rint(inv[1, 0] * xs + inv[1, 1] * ys).astype(np.int64) % TILE
    idx = (v * TILE + u).ravel()
    s = np.bincount(idx, weights=w.ravel(), minlength=TILE * TILE)
    c = np.bincount(idx, minlength=TILE * TILE)
    return (s / np.maximum(c, 1)).reshape(TILE, TILE).astype(np.float32)


def align(folded: F32, pilot: F32) -> tuple[F32, float]:
    """Roll the folded tile so the pilot lines up; return it and the peak's z-score."""
    corr = np.fft.irfft2(np.fft.rfft2(folded) * np.conj(np.fft.rfft2(pilot)), s=folded.shape)
    k = int(np.argmax(corr))
    dy, dx = divmod(k, TILE)
    z = float((corr.flat[k] - corr.mean()) / (corr.std() + 1e-12))
    return np.roll(folded, (-dy, -dx), axis=(0, 1)), z


def _peak_offset(a: npt.NDArray[np.float64], y: int, x: int) -> tuple[float, float]:
    """Sub-pixel peak position by a parabola through the neighbours."""
    h, w = a.shape

    def para(m: float, c: float, p: float) -> float:
        d = m - 2 * c + p
        return 0.0 if d >= 0 else float(np.clip(0.5 * (m - p) / d, -0.5, 0.5))

    c = a[y % h, x % w]
    oy = para(a[(y - 1) % h, x % w], c, a[(y + 1) % h, x % w])
    ox = para(a[y % h, (x - 1) % w], c, a[y % h, (x + 1) % w])
    return y + oy, x + ox


def lattice_candidates(w: F32) -> list[Lattice]:
    """Square lattices suggested by the autocorrelation, best first."""
    h, wd = w.shape
    max_p = min(MAX_PERIOD, 0.48 * min(h, wd))
    if max_p < MIN_PERIOD:
        return []
    spec = np.fft.rfft2(w - w.mean())
    ac = np.fft.irfft2(spec.real**2 + spec.imag**2, s=w.shape)
    ac /= ac[0, 0] + 1e-12
    r = int(np.ceil(max_p)) + 2
    # Region: lags (dy, dx), dx in [0, r], dy in [-r, r]; row index dy + r.
    rows = np.concatenate([np.arange(h - r, h), np.arange(0, r + 1)]) % h
    reg = ac[np.ix_(rows, np.arange(0, r + 1) % wd)]
    dyg, dxg = np.mgrid[-r : r + 1, 0 : r + 1]
    rad = np.hypot(dyg, dxg)
    # Canonical direction: the basis vector nearest the x axis (|angle| < 45 deg).
    ok = (rad >= MIN_PERIOD) & (rad <= max_p) & (np.abs(dyg) < dxg)
    peaks = (reg == ndimage.maximum_filter(reg, size=5)) & ok
    ys, xs = np.nonzero(peaks)
    if ys.size == 0:
        return []
    order = np.argsort(reg[ys, xs])[::-1][:12]
    scored: list[tuple[float, Lattice]] = []
    for i in order:
        dy, dx = int(dyg[ys[i], xs[i]]), int(dxg[ys[i], xs[i]])
        py, px = _peak_offset(ac, dy, dx)
        # The perpendicular basis vector must show up too: rot90(dx, dy) = (-dy, dx).
        qy, qx = _peak_offset(ac, int(round(px)), int(round(-py)))
        score = float(ac[dy % h, dx % wd] + ac[int(round(qy)) % h, int(round(qx)) % wd])
        # Average the two estimates of the (assumed square) lattice.
        v1 = (0.5 * (px + qy), 0.5 * (py - qx))
        v2 = (-v1[1], v1[0])
        scored.append((score, Lattice(v1, v2)))
    scored.sort(key=lambda t: -t[0])
    return [lat for _, lat in scored[:MAX_LATTICE_CANDIDATES]]
