"""Synchronisation: whiten the luminance, find the tile lattice (period, rotation) from
the autocorrelation, fold all tiles into one and find the translation with the pilot."""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np
import numpy.typing as npt

from ._pattern import TILE

F32 = npt.NDArray[np.float32]

# Lattice periods searched, in working-resolution pixels. Embedding uses TILE; cropping
# (which makes the detector's working resolution finer) and rescaling small images
# (which are processed at native size) change it.
MIN_PERIOD = 0.45 * TILE
MAX_PERIOD = 2.3 * TILE
# Lattices from the autocorrelation that detection folds and decodes (see
# lattice_candidates); each one costs unmarked images a fold of every pixel.
MAX_LATTICE_CANDIDATES = 2
WHITEN_SIGMA = 1.2
ENERGY_WINDOW = 5
_ENERGY_KERNEL = np.full((ENERGY_WINDOW, 1), 1.0 / ENERGY_WINDOW, dtype=np.float32)


def whiten(luma: F32) -> F32:
    """Suppress the image so the watermark dominates: high-pass, then divide by the
    local residual energy (a matched filter when the watermark amplitude, like ours,
    follows local texture); clipping tames edges."""
    # OpenCV's separable filters compute the same Gaussian (radius 4 = truncate 3.0 at
    # sigma 1.2) and box as scipy.ndimage with mirrored borders, 5-10x faster (and
    # its generic separable filter is faster than its box filter on float32).
    y = np.ascontiguousarray(luma, dtype=np.float32)
    hp = y - cv2.GaussianBlur(y, (9, 9), WHITEN_SIGMA, borderType=cv2.BORDER_REFLECT)
    energy = cv2.sepFilter2D(hp * hp, -1, _ENERGY_KERNEL, _ENERGY_KERNEL,
                             borderType=cv2.BORDER_REFLECT)
    # Rounding in the running sums can leave tiny negatives; clamp them (cv2: numpy's
    # NaN-propagating float32 maximum is ~3x slower here).
    cv2.threshold(energy, 0.0, 0.0, cv2.THRESH_TOZERO, dst=energy)
    cv2.sqrt(energy, dst=energy)
    energy += np.float32(0.5)
    np.divide(hp, energy, out=hp)
    np.clip(hp, -3.0, 3.0, out=hp)
    out: F32 = hp
    return out


@dataclass(frozen=True)
class Lattice:
    """Tile basis vectors in detector pixels: v1 ~ x axis, v2 ~ y axis, (x, y).

    ``phase`` is where fold() puts bin boundaries, in bins: 0.5 rounds every pixel to
    its nearest bin; 0.0 floors, which on a 2x-upsampled grid keeps each bin on one
    source pixel instead of straddling two."""

    v1: tuple[float, float]
    v2: tuple[float, float]
    phase: float = 0.5

    @property
    def scale(self) -> float:
        return float(np.hypot(*self.v1) / TILE)

    @property
    def rotation_deg(self) -> float:
        return float(np.degrees(np.arctan2(self.v1[1], self.v1[0])))


IDENTITY = Lattice((float(TILE), 0.0), (0.0, float(TILE)))


# Folding computes tile coordinates in 16-bit fixed point with 10 fraction bits: uint16
# arithmetic wraps modulo 2**16 = TILE * 2**10, which is exactly "modulo one tile".
_FRAC_BITS = 10
_FOLD_STRIP = 65536  # pixels per strip when folding
assert TILE << _FRAC_BITS == 1 << 16
# Every weight carries this offset so that one bincount yields both the sum and the
# count of each bin (count = round(total / _COUNT_UNIT)): exact while a bin's
# |sum of weights| (at most 3 per pixel, see whiten) stays below _COUNT_UNIT / 2,
# i.e. for working images up to ~700 Mpx.
_COUNT_UNIT = float(1 << 20)


def _fixed(v: npt.NDArray[np.float64]) -> npt.NDArray[np.uint16]:
    """Tile coordinates ``v`` (in tiles * TILE) as wrapping 16-bit fixed point."""
    out: npt.NDArray[np.uint16] = (np.rint(v * (1 << _FRAC_BITS)).astype(np.int64)
                                   & 0xFFFF).astype(np.uint16)
    return out


def _tile_sum(a: F32) -> F32:
    """Sum of all TILE x TILE tiles of ``a`` (whole tiles only); two single-axis sums
    are about twice as fast as one sum over two axes."""
    h, w = a.shape
    out: F32 = a.reshape(h // TILE, TILE, w).sum(axis=0).reshape(TILE, w // TILE, TILE).sum(axis=1)
    return out


class Folder:
    """A whitened image prepared for folding along many lattices (detection folds
    one image along up to ~50 of them).

    The rows are split into two fixed pseudo-random halves: :meth:`sums` folds one
    half, and the two halves' totals add up to the full fold. A regular split (even
    and odd rows) would not do: at a period near 32 px the even rows fill only every
    fourth tile row, and a half fold then shows much less of the pilot than half the
    pixels should (found in review: 0.4-0.6 of the full fold's z instead of ~0.85)."""

    def __init__(self, w: F32) -> None:
        self.w = w
        # Per half: its row coordinates, and its weights (flat float64, _COUNT_UNIT added).
        self._halves: list[tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]] = []

    def fold(self, lat: Lattice) -> F32:
        """Average every pixel into its position within one tile (its bin)."""
        if lat == IDENTITY:
            return self._fold_identity()
        return self.mean(self.sums(lat, 0) + self.sums(lat, 1))

    def _fold_identity(self) -> F32:
        w = self.w
        h, wd = w.shape
        ph, pw = -h % TILE, -wd % TILE
        # Pad to whole tiles and divide by the per-position count.
        acc: F32 = w if ph == pw == 0 else np.asarray(
            cv2.copyMakeBorder(w, 0, ph, 0, pw, cv2.BORDER_CONSTANT, value=0), dtype=np.float32)
        pos = np.arange(TILE)
        rows = (h - pos + TILE - 1) // TILE
        cols = (wd - pos + TILE - 1) // TILE
        count = np.maximum(np.outer(rows, cols), 1).astype(np.float32)
        folded: F32 = _tile_sum(acc) / count
        return folded

    def _half(self, half: int) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        if not self._halves:
            h = self.w.shape[0]
            # Fixed per height (detection stays deterministic); never lines up with a
            # lattice.
            first = np.random.default_rng(h).random(h) < 0.5
            for rows in (np.flatnonzero(first), np.flatnonzero(~first)):
                weights = self.w[rows].astype(np.float64).ravel()
                weights += _COUNT_UNIT
                self._halves.append((rows.astype(np.float64), weights))
        return self._halves[half]

    def sums(self, lat: Lattice, half: int) -> npt.NDArray[np.float64]:
        """Per-bin totals (sum of weights + _COUNT_UNIT * count) of one half of the
        rows (0 or 1) folded along ``lat``. The two halves' totals add up to the
        whole image's."""
        wd = self.w.shape[1]
        ys, weights = self._half(half)
        # inv = TILE * [[v1x, v2x], [v1y, v2y]]^-1, written out (np.linalg.inv costs
        # more than the rest of the setup).
        (ax, ay), (bx, by) = lat.v1, lat.v2
        det = ax * by - bx * ay
        i00, i01, i10, i11 = (TILE * by / det, -TILE * bx / det, -TILE * ay / det, TILE * ax / det)
        xs = np.arange(wd, dtype=np.float64)
        # The bin of pixel (x, y) is floor(inv @ (x, y) + phase) mod TILE: per pixel, one
        # wrapping 16-bit add of a per-row and a per-column term, then shifts. This is
        # several times cheaper than float multiply-adds and rounding over the image.
        u_row, u_col = _fixed(i01 * ys + lat.phase), _fixed(i00 * xs)
        v_row, v_col = _fixed(i11 * ys + lat.phase), _fixed(i10 * xs)
        total = np.zeros(TILE * TILE, dtype=np.float64)
        # In strips: whole-image index arrays are large enough that allocating them
        # costs more (fresh pages from the OS on every call) than the arithmetic.
        rows = max(1, _FOLD_STRIP // wd)
        for r0 in range(0, len(ys), rows):
            r1 = min(len(ys), r0 + rows)
            iu = u_row[r0:r1, None] + u_col[None, :]
            iu >>= _FRAC_BITS
            iv = v_row[r0:r1, None] + v_col[None, :]
            iv >>= _FRAC_BITS
            iv <<= 6
            iv |= iu
            total += np.bincount(iv.ravel(), weights=weights[r0 * wd:r1 * wd],
                                 minlength=TILE * TILE)
        return total

    @staticmethod
    def mean(total: npt.NDArray[np.float64]) -> F32:
        """The folded tile (mean per bin) from :meth:`sums` totals."""
        count = np.rint(total * (1.0 / _COUNT_UNIT))
        tile = (total - count * _COUNT_UNIT) / np.maximum(count, 1.0)
        out: F32 = tile.reshape(TILE, TILE).astype(np.float32)
        return out


def fold(w: F32, lat: Lattice) -> F32:
    """Average every pixel of ``w`` into its position within one tile (its bin)."""
    return Folder(w).fold(lat)


def pilot_spectrum(pilot: F32) -> F32:
    """The pilot's DFT in the packed form :func:`align` takes (compute once per key)."""
    spec: F32 = np.asarray(cv2.dft(np.ascontiguousarray(pilot, dtype=np.float32)), dtype=np.float32)
    return spec


def align(folded: F32, pilot_spec: F32) -> tuple[F32, float]:
    """Roll the folded tile so the pilot lines up; return it and the peak's z-score."""
    # OpenCV's DFT: a 64x64 transform is a few microseconds of work, and its call
    # overhead is a fraction of scipy.fft's.
    # Without its mean: a constant tile then correlates to exactly zero instead of to
    # float32 rounding noise, whose z-score can be anything (a black frame scored 1862).
    centred = np.ascontiguousarray(folded - np.float32(folded.mean()), dtype=np.float32)
    spec = cv2.dft(centred)
    corr = cv2.idft(cv2.mulSpectrums(spec, pilot_spec, 0, conjB=True), flags=cv2.DFT_REAL_OUTPUT)
    k = int(np.argmax(corr))
    dy, dx = divmod(k, TILE)
    mean, std = cv2.meanStdDev(corr)
    z = float((corr.flat[k] - mean[0, 0]) / (std[0, 0] + 1e-12))
    if not np.isfinite(z):  # overflowed input (finite floats near 3e38): not synchronised
        z = 0.0
    return np.roll(folded, (-dy, -dx), axis=(0, 1)), z


# Lattice points summed when scoring a candidate lattice: summing the autocorrelation
# over several lattice vectors is what lifts the watermark above periodic structure in
# the photo (windows, tiles), which shows up at one or two lags only.
_K_COARSE = np.array([(1, 0), (0, 1), (1, 1), (1, -1), (2, 0), (0, 2), (2, 1), (1, 2),
                      (2, -1), (1, -2), (2, 2), (2, -2)], dtype=np.float64)
_K_FINE = np.array([(i, j) for i in range(0, 5) for j in range(-4, 5)
                    if (i, j) > (0, 0) and (i > 0 or j > 0)], dtype=np.float64)
MAX_ROTATION_DEG = 6.0
COARSE_STEP = 0.5  # pixels between candidate basis vectors in the coarse search
_RIDGE_WINDOW = 7  # lags averaged along x and along y to tell peaks from ridges
_RIDGE_KERNEL = np.full((1, _RIDGE_WINDOW), 1.0 / _RIDGE_WINDOW, dtype=np.float32)
_MAX_COARSE_VISITS = 256  # coarse candidates looked at, best first, for ...
_COARSE_PICKS = 3  # ... this many distinct ones to refine


def _offsets(half: float, step: float) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    off = np.arange(-half, half + 1e-9, step)
    dx, dy = np.meshgrid(off, off, indexing="ij")
    return dx.ravel(), dy.ravel()


_REFINE_OFFSETS = (_offsets(0.6, 0.2), _offsets(0.1, 0.05))


def _lattice_peaks(w: F32) -> F32:
    """How much the autocorrelation of ``w`` peaks at each lag: lag (0, 0) at the
    centre [fh // 2, fw // 2], on a grid zero-padded to a fast DFT size (a prime width
    such as 683 is several times slower; the few zero rows and columns barely change
    the lattice peaks).

    The tile's autocorrelation peaks are a cell wide in every direction. The photo's
    own correlation is broad, or a ridge: straight edges (shelves, horizons, window
    rows) correlate with themselves all along their direction. Each lag therefore
    scores the smaller of its excess over the 7-lag mean along x and along y: a
    ridge along x has no excess along x, a broad bump none in either direction.
    (Subtracting an isotropic 7x7 mean instead let the shelves of the "library"
    photo hide the mark after every crop or rotation.)"""
    h, wd = w.shape
    fh, fw = cv2.getOptimalDFTSize(h), cv2.getOptimalDFTSize(wd)
    x = w
    if (fh, fw) != (h, wd):
        x = np.asarray(cv2.copyMakeBorder(w, 0, fh - h, 0, fw - wd, cv2.BORDER_CONSTANT, value=0),
                       dtype=np.float32)
    # OpenCV's real DFT is about twice as fast as scipy.fft's at these sizes.
    spec = cv2.dft(x)
    spec[0, 0] = 0.0  # the DC term: removes the (zero-padded) array's mean
    power = cv2.mulSpectrums(spec, spec, 0, conjB=True)
    ac = np.asarray(cv2.idft(power, flags=cv2.DFT_REAL_OUTPUT | cv2.DFT_SCALE), dtype=np.float32)
    # Normalise by the zero-lag autocorrelation (the signal's energy).
    ac *= np.float32(1.0 / (float(ac[0, 0]) + 1e-12))
    ac = np.roll(ac, (fh // 2, fw // 2), axis=(0, 1))
    # min(ac - mean_x, ac - mean_y) = ac - max(mean_x, mean_y)
    # (cv2.filter2D: about 3x faster than cv2.blur for these 1-D float32 means.)
    mean_x = cv2.filter2D(ac, -1, _RIDGE_KERNEL, borderType=cv2.BORDER_REFLECT)
    mean_y = cv2.filter2D(ac, -1, _RIDGE_KERNEL.T, borderType=cv2.BORDER_REFLECT)
    peaks: F32 = np.subtract(ac, cv2.max(mean_x, mean_y, dst=mean_x), out=mean_x)
    return peaks


def _lattice_offsets(v1x: npt.NDArray[np.float64], v1y: npt.NDArray[np.float64],
                     ks: npt.NDArray[np.float64], h: int, w: int
                     ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64],
                                npt.NDArray[np.bool_]]:
    """(y, x) lags of the lattice points ``ks`` of square lattices with first basis
    vector (v1x, v1y) (second: v1 turned 90 degrees), and which of them fit in an
    h x w image's autocorrelation."""
    x = v1x[..., None] * ks[:, 0] - v1y[..., None] * ks[:, 1]
    y = v1y[..., None] * ks[:, 0] + v1x[..., None] * ks[:, 1]
    valid = (np.abs(x) < w / 2 - 2) & (np.abs(y) < h / 2 - 2)
    return y, x, valid


def _fine_scores(peaks: F32, h: int, w: int, v1x: npt.NDArray[np.float64],
                 v1y: npt.NDArray[np.float64], ks: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Lattice score of each candidate: the (centred) peak map, read bilinearly,
    summed over the lattice points ``ks`` that fit in the image, divided by
    sqrt(count)."""
    y, x, valid = _lattice_offsets(v1x, v1y, ks, h, w)
    fh, fw = peaks.shape
    # cv2.remap reads the points bilinearly in one call (about twice as fast as numpy
    # gathers here, and equal to float32 rounding); points that do not fit are masked.
    # It only takes maps under 32767 px a side, so it gets the window of lags that
    # lattice points can reach (4 periods along each basis vector).
    reach = int(np.ceil(8 * MAX_PERIOD)) + 16
    y0, x0 = max(0, fh // 2 - reach), max(0, fw // 2 - reach)
    window = peaks[y0:fh // 2 + reach, x0:fw // 2 + reach]
    shape = x.shape
    vals = cv2.remap(window, (x + (fw // 2 - x0)).astype(np.float32).reshape(-1, shape[-1]),
                     (y + (fh // 2 - y0)).astype(np.float32).reshape(-1, shape[-1]),
                     cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0).reshape(shape)
    n = valid.sum(axis=-1)
    out: npt.NDArray[np.float64] = (vals * valid).sum(axis=-1, dtype=np.float64) / np.sqrt(np.maximum(n, 1))
    out[n < 2] = -np.inf
    return out


@dataclass(frozen=True)
class _AllCandidates:
    v1x: npt.NDArray[np.float64]  # every candidate first basis vector, pixels
    v1y: npt.NDArray[np.float64]
    period: npt.NDArray[np.float64]
    # Nearest-pixel lags of their _K_COARSE lattice points and the lags' exact absolute
    # values, one row per lattice point.
    iy: npt.NDArray[np.intp]
    ix: npt.NDArray[np.intp]
    ay: npt.NDArray[np.float32]
    ax: npt.NDArray[np.float32]


@lru_cache(maxsize=1)
def _all_candidates() -> _AllCandidates:
    """Every first basis vector v1 on a COARSE_STEP grid with a period (|v1|) between
    MIN_PERIOD and MAX_PERIOD and a rotation within MAX_ROTATION_DEG. A Cartesian
    grid spends candidates evenly: a log-spaced period grid fine enough for long
    periods wastes most of its candidates on short ones. Shape-independent, so it is
    computed once; _coarse_grid selects from it for each image shape."""
    t = np.tan(np.radians(MAX_ROTATION_DEG))
    gx = np.arange(np.floor(MIN_PERIOD * np.cos(np.radians(MAX_ROTATION_DEG))),
                   MAX_PERIOD + COARSE_STEP, COARSE_STEP)
    gy = np.arange(-np.ceil(MAX_PERIOD * t), np.ceil(MAX_PERIOD * t) + COARSE_STEP, COARSE_STEP)
    vx, vy = (a.ravel() for a in np.meshgrid(gx, gy, indexing="ij"))
    r = np.hypot(vx, vy)
    keep = (r >= MIN_PERIOD) & (r <= MAX_PERIOD) & (np.abs(vy) <= t * vx)
    # By period, so the candidates that fit an image are a prefix.
    order = np.argsort(r[keep], kind="stable")
    vx, vy, r = vx[keep][order], vy[keep][order], r[keep][order]
    y, x, _ = _lattice_offsets(vx, vy, _K_COARSE, 0, 0)
    y, x = np.ascontiguousarray(y.T), np.ascontiguousarray(x.T)
    out = _AllCandidates(vx, vy, r, np.rint(y).astype(np.intp), np.rint(x).astype(np.intp),
                         np.abs(y).astype(np.float32), np.abs(x).astype(np.float32))
    for arr in vars(out).values():
        arr.setflags(write=False)
    return out


@dataclass(frozen=True)
class _CoarseGrid:
    v1x: npt.NDArray[np.float64]  # candidate first basis vectors, pixels
    v1y: npt.NDArray[np.float64]
    # Flat index in the centred autocorrelation of each lattice point, one row per
    # point (summing rows is several times faster than summing 12-element rows).
    index: npt.NDArray[np.intp]
    norm: npt.NDArray[np.float32]  # 1/sqrt(number of points in the image), 0 if fewer than 2
    dead: npt.NDArray[np.intp]  # candidates with fewer than 2 points in the image


@lru_cache(maxsize=8)
def _coarse_grid(h: int, w: int, fh: int, fw: int) -> _CoarseGrid:
    """The candidates whose period fits an h x w image, with the flat indices of their
    lattice points in the (fh x fw, centred) peak map (read-only arrays)."""
    every = _all_candidates()
    n = int(np.searchsorted(every.period, min(MAX_PERIOD, 0.45 * min(h, w)), side="right"))
    valid = every.ax[:, :n] < np.float32(w / 2 - 2)
    valid &= every.ay[:, :n] < np.float32(h / 2 - 2)
    index = every.iy[:, :n] * fw
    index += every.ix[:, :n]
    index += (fh // 2) * fw + fw // 2
    np.putmask(index, ~valid, fh * fw)  # a zero appended to the data
    count = np.count_nonzero(valid, axis=0)
    norm = np.where(count >= 2, 1.0 / np.sqrt(np.maximum(count, 1)), 0.0).astype(np.float32)
    grid = _CoarseGrid(every.v1x[:n].copy(), every.v1y[:n].copy(), index, norm,
                       np.flatnonzero(count < 2))
    for arr in (grid.v1x, grid.v1y, grid.index, grid.norm, grid.dead):
        arr.setflags(write=False)
    return grid


def lattice_candidates(w: F32) -> list[Lattice]:
    """Square lattices suggested by the autocorrelation, best first.

    1. Peak map of the autocorrelation of the whitened image (ridges suppressed).
    2. Coarse: every v1 on a 0.5-px grid, scored by the autocorrelation summed over 12
       lattice points, read (nearest pixel) from a 3x3 running maximum, which makes the
       coarse grid tolerant of the up-to-1-px position error at the far points.
    3. The _COARSE_PICKS best distinct coarse picks are refined to 0.05 px with 40
       lattice points and bilinear reads.
    4. The MAX_LATTICE_CANDIDATES best by refined score are returned. Neither score
       ranks the true lattice first every time (in the benchmark one 50 % crop had it
       second by refined score, a stamped camera JPEG cropped to 80 % had it third
       by coarse score), so the caller verifies more than one with the pilot.
    """
    h, wd = w.shape
    max_p = min(MAX_PERIOD, 0.45 * min(h, wd))
    if max_p < MIN_PERIOD * 1.05:
        return []
    peaks = _lattice_peaks(w)  # step 1
    fh, fw = peaks.shape
    grid = _coarse_grid(h, wd, fh, fw)
    # step 2; lattice points outside the image read the extra zero at the end.
    near_max = np.empty(fh * fw + 1, dtype=np.float32)
    near_max[-1] = 0.0
    cv2.dilate(peaks, np.ones((3, 3), np.uint8), dst=near_max[:-1].reshape(fh, fw))
    score = near_max[grid.index].sum(axis=0)
    score *= grid.norm
    score[grid.dead] = -np.inf
    top = np.argpartition(-score, min(_MAX_COARSE_VISITS, score.size - 1))[:_MAX_COARSE_VISITS]
    order = top[np.argsort(-score[top])]
    coarse: list[tuple[float, float]] = []
    for sc, vx, vy in zip(score[order].tolist(), grid.v1x[order].tolist(),
                          grid.v1y[order].tolist(), strict=True):
        if not math.isfinite(sc) or len(coarse) >= _COARSE_PICKS:
            break
        if not _near(vx, vy, coarse):
            coarse.append((vx, vy))
    if not coarse:
        return []
    # step 3: a coarse pick is only within about a pixel (the running maximum makes
    # plateaus), so refine in rounds, all picks at once: +-0.6 px in 0.2 px steps with
    # the 12 coarse lattice points, then +-0.1 px in 0.05 px steps with all 40.
    vx_a = np.array([c[0] for c in coarse])
    vy_a = np.array([c[1] for c in coarse])
    fs = np.zeros((len(coarse), 1))
    j = np.zeros(len(coarse), dtype=np.intp)
    for (dx, dy), ks in zip(_REFINE_OFFSETS, (_K_COARSE, _K_FINE), strict=True):
        fs = _fine_scores(peaks, h, wd, vx_a[:, None] + dx, vy_a[:, None] + dy, ks)
        j = np.argmax(fs, axis=1)
        vx_a, vy_a = vx_a + dx[j], vy_a + dy[j]
    # step 4
    refined = fs[np.arange(len(coarse)), j]
    out: list[Lattice] = []
    seen: list[tuple[float, float]] = []
    for i in np.argsort(-refined, kind="stable"):
        vx, vy = float(vx_a[i]), float(vy_a[i])
        if not _near(vx, vy, seen):  # neighbouring coarse picks can refine to one lattice
            seen.append((vx, vy))
            out.append(Lattice((vx, vy), (-vy, vx)))
    return out[:MAX_LATTICE_CANDIDATES]


def _near(vx: float, vy: float, seen: list[tuple[float, float]]) -> bool:
    """Whether basis vector (vx, vy) is within 3 % in period and 0.05 rad in angle of
    one already seen."""
    p, th = math.hypot(vx, vy), math.atan2(vy, vx)
    return any(abs(math.log(p / math.hypot(x, y))) < 0.03 and abs(th - math.atan2(y, x)) < 0.05
               for x, y in seen)
