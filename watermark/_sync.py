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
MAX_PERIOD = 3.4 * TILE
# Lattices from the autocorrelation that detection folds and decodes (see
# lattice_candidates); each one costs unmarked images a fold of every pixel. The
# last slot is reserved for the best square lattice (version 1's search space).
MAX_LATTICE_CANDIDATES = 3
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


def fold_upright(w: F32, period: float) -> F32:
    """The fold of ``w`` along the upright square lattice of ``period`` px (rounding
    each pixel to its nearest bin): bins are separable, so the bin indices and the
    counts come from one row and one column of indices (cheaper than
    :meth:`Folder.fold` on the small images that step 4b scans)."""
    h, wd = w.shape
    s = TILE / period
    rb = (np.rint(np.arange(h) * s).astype(np.intp) % TILE)
    cb = (np.rint(np.arange(wd) * s).astype(np.intp) % TILE)
    idx = (rb[:, None] * TILE + cb[None, :]).ravel()
    total = np.bincount(idx, weights=w.ravel(), minlength=TILE * TILE)
    count = np.outer(np.bincount(rb, minlength=TILE), np.bincount(cb, minlength=TILE)).ravel()
    out: F32 = (total / np.maximum(count, 1)).reshape(TILE, TILE).astype(np.float32)
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
    aligned, z, _ = align_any(folded, [pilot_spec])
    return aligned, z


# The 8 dihedral alignments of a square tile (90-degree turns and mirrors): bit 4
# transposes, then bit 1 flips the rows and bit 2 the columns. Flipping a tile of 2-px
# cells maps cells onto cells (pixel i -> TILE - 1 - i), and the fold is cyclic, so a
# mirrored or turned image folds to the turned tile, shifted.
DIHEDRAL = tuple(range(8))


def dihedral(t: F32, o: int) -> F32:
    """Tile ``t`` in dihedral alignment ``o``."""
    if o & 4:
        t = t.T
    if o & 1:
        t = t[::-1]
    if o & 2:
        t = t[:, ::-1]
    return np.ascontiguousarray(t)


def _inverse(o: int) -> int:
    probe = np.arange(TILE * TILE, dtype=np.float32).reshape(TILE, TILE)
    return next(i for i in DIHEDRAL if np.array_equal(dihedral(dihedral(probe, o), i), probe))


DIHEDRAL_INVERSE = tuple(_inverse(o) for o in DIHEDRAL)


def dihedral_spectra(pilot: F32) -> list[F32]:
    """Spectra of the pilot as a fold in each dihedral alignment would show it: entry
    ``o`` lines up with a fold ``f`` when ``dihedral(f, o)`` shows the pilot."""
    return [pilot_spectrum(dihedral(pilot, DIHEDRAL_INVERSE[o])) for o in DIHEDRAL]


def align_any(folded: F32, spectra: list[F32]) -> tuple[F32, float, int]:
    """Correlate the folded tile with each pilot spectrum (by DFT, so any translation);
    return the fold rolled so the best one lines up, that peak's z-score and the
    index of the spectrum. The caller maps the index to a pilot and alignment."""
    # OpenCV's DFT: a 64x64 transform is a few microseconds of work, and its call
    # overhead is a fraction of scipy.fft's.
    # Without its mean: a constant tile then correlates to exactly zero instead of to
    # float32 rounding noise, whose z-score can be anything (a black frame scored 1862).
    centred = np.ascontiguousarray(folded - np.float32(folded.mean()), dtype=np.float32)
    spec = cv2.dft(centred)
    best = (-math.inf, 0, 0)
    for i, ps in enumerate(spectra):
        corr = cv2.idft(cv2.mulSpectrums(spec, ps, 0, conjB=True), flags=cv2.DFT_REAL_OUTPUT)
        k = int(np.argmax(corr))
        mean, std = cv2.meanStdDev(corr)
        z = float((corr.flat[k] - mean[0, 0]) / (std[0, 0] + 1e-12))
        if not np.isfinite(z):  # overflowed input (finite floats near 3e38): not synchronised
            z = 0.0
        if z > best[0]:
            best = (z, k, i)
    z, k, i = best
    dy, dx = divmod(k, TILE)
    return np.roll(folded, (-dy, -dx), axis=(0, 1)), z, i


def pilot_shift(folded: F32, spectrum: F32) -> tuple[int, int, float]:
    """The translation (dy, dx) that lines ``folded`` up with one pilot spectrum, and
    the peak's z-score (as in :func:`align_any`)."""
    centred = np.ascontiguousarray(folded - np.float32(folded.mean()), dtype=np.float32)
    corr = cv2.idft(cv2.mulSpectrums(cv2.dft(centred), spectrum, 0, conjB=True), flags=cv2.DFT_REAL_OUTPUT)
    k = int(np.argmax(corr))
    mean, std = cv2.meanStdDev(corr)
    z = float((corr.flat[k] - mean[0, 0]) / (std[0, 0] + 1e-12))
    dy, dx = divmod(k, TILE)
    return dy, dx, z if np.isfinite(z) else 0.0


# Lattice points summed when scoring a candidate lattice: summing the autocorrelation
# over several lattice vectors is what lifts the watermark above periodic structure in
# the photo (windows, tiles), which shows up at one or two lags only.
_K_COARSE = np.array([(1, 0), (0, 1), (1, 1), (1, -1), (2, 0), (0, 2), (2, 1), (1, 2),
                      (2, -1), (1, -2), (2, 2), (2, -2)], dtype=np.float64)
_K_FINE = np.array([(i, j) for i in range(0, 5) for j in range(-4, 5)
                    if (i, j) > (0, 0) and (i > 0 or j > 0)], dtype=np.float64)
_RIDGE_WINDOW = 7  # lags averaged along x and along y to tell peaks from ridges
_RIDGE_KERNEL = np.full((1, _RIDGE_WINDOW), 1.0 / _RIDGE_WINDOW, dtype=np.float32)
# Version 2's search: basis vectors in every direction. Each lag l (a candidate basis
# vector, on the integer grid of lags) scores the peak map at l, 2l and 3l; the
# _VECTOR_PICKS best local maxima are paired into lattices.
_MULTIPLES = (1, 2, 3)
_VECTOR_PICKS = 14
_COARSE_PICKS = 3  # distinct paired lattices refined
# Square lattices (a vector and its own 90-degree turn: rotation, crop and rescale,
# version 1's search space) refined besides, by their own coarse ranking. Without
# them, a photo with strong periodic structure (the "library" shelves, a building's
# windows) filled every general pick with lattices pairing its own periods with one
# of the mark's vectors, and the mark's other vector was not among the vector picks
# at all (rotated 2 degrees: (2, 64) was picked, (64, -2) was not): five rows of
# version 1's table dropped from 100 % to 90-99 %.
_SQUARE_PICKS = 3
# ... within version 1's search space: period up to 2.3 tiles, rotation within 6
# degrees. Wider, the square slot went to the photo's own structure (a 170-px square
# from a building's 169-px window period outscored the mark's 72 px).
_SQUARE_MAX_PERIOD = 2.3 * TILE
_SQUARE_MAX_TAN = math.tan(math.radians(6.0))
# A lattice's two basis vectors: at least this angle apart and at most this ratio in
# length (aspect changes of 0.8/1.25 and mild shear; an unrelated vector pair is
# usually far outside).
_MIN_BASIS_SIN = math.sin(math.radians(60.0))
_MAX_BASIS_RATIO = 1.45


def _offsets(half: float, step: float) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    off = np.arange(-half, half + 1e-9, step)
    dx, dy = np.meshgrid(off, off, indexing="ij")
    return dx.ravel(), dy.ravel()


_REFINE_OFFSETS = (_offsets(0.6, 0.2), _offsets(0.1, 0.05))


@lru_cache(maxsize=8)
def _block_grid_mask(fh: int, fw: int, bx: float, by: float) -> F32:
    """1 everywhere but 0 at the frequencies of an (fh x fw, OpenCV packed CCS)
    spectrum where a JPEG block grid of (bx, by) detector pixels puts its periodic
    energy: the 2-D grid of multiples of (1 / bx, 1 / by), the two nearest bins each.

    JPEG's 8x8 blocks make a lattice of their own in the autocorrelation (peaks at
    every multiple of the block size in both directions): a stamped camera JPEG
    cropped to 80 % had dozens of block-grid lags above the mark's in the
    all-direction search. Only those few points are removed, not whole lines of the
    spectrum: a mark whose period is a multiple of 8 px (resized by 0.75 to 48 px)
    has a sixth of its harmonic rows and columns on those lines, and notching lines
    lost it after JPEG 80 (the block grid's line energy makes ridges, which the peak
    map suppresses anyway)."""
    mask = np.ones((fh, fw), dtype=np.float32)

    def bins(n: int, period: float) -> list[int]:
        out: set[int] = {0}
        for i in range(1, 64):
            k = i * n / period
            if k >= n / 2 - 1:
                break
            out |= {kk for kk in (math.floor(k), math.ceil(k)) if 1 <= kk < n // 2}
        return sorted(out)

    for kx in bins(fw, bx):
        for ky in bins(fh, by):
            if kx == 0 and ky == 0:
                continue
            if kx == 0:  # first column: the fx = 0 transform along y, packed
                mask[2 * ky - 1:2 * ky + 1, 0] = 0.0
            else:  # Re, Im in columns 2kx-1, 2kx; rows ky and -ky
                mask[ky, 2 * kx - 1:2 * kx + 1] = 0.0
                mask[(fh - ky) % fh, 2 * kx - 1:2 * kx + 1] = 0.0
    mask.setflags(write=False)
    return mask


def _lattice_peaks(w: F32, block: tuple[float, float] | None = None) -> F32:
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
    spec: F32 = np.asarray(cv2.dft(x), dtype=np.float32)
    spec[0, 0] = 0.0  # the DC term: removes the (zero-padded) array's mean
    if block is not None and min(block) >= 4.0:
        spec *= _block_grid_mask(fh, fw, round(block[0], 3), round(block[1], 3))
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
                     v2x: npt.NDArray[np.float64], v2y: npt.NDArray[np.float64],
                     ks: npt.NDArray[np.float64], h: int, w: int
                     ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64],
                                npt.NDArray[np.bool_]]:
    """(y, x) lags of the lattice points ``ks`` of lattices with basis vectors v1, v2,
    and which of them fit in an h x w image's autocorrelation."""
    x = v1x[..., None] * ks[:, 0] + v2x[..., None] * ks[:, 1]
    y = v1y[..., None] * ks[:, 0] + v2y[..., None] * ks[:, 1]
    valid = (np.abs(x) < w / 2 - 2) & (np.abs(y) < h / 2 - 2)
    return y, x, valid


def _fine_scores(peaks: F32, h: int, w: int, v1x: npt.NDArray[np.float64],
                 v1y: npt.NDArray[np.float64], v2x: npt.NDArray[np.float64],
                 v2y: npt.NDArray[np.float64], ks: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Lattice score of each candidate: the (centred) peak map, read bilinearly,
    summed over the lattice points ``ks`` that fit in the image, divided by
    sqrt(count)."""
    v1x, v1y, v2x, v2y = np.broadcast_arrays(v1x, v1y, v2x, v2y)
    y, x, valid = _lattice_offsets(v1x, v1y, v2x, v2y, ks, h, w)
    fh, fw = peaks.shape
    # cv2.remap reads the points bilinearly in one call (about twice as fast as numpy
    # gathers here, and equal to float32 rounding); points that do not fit are masked.
    # It only takes maps under 32767 px a side, so it gets the window of lags that
    # lattice points can reach.
    reach = int(np.ceil(np.abs(x).max() if x.size else 0.0)) + 16
    reach_y = int(np.ceil(np.abs(y).max() if y.size else 0.0)) + 16
    y0, x0 = max(0, fh // 2 - reach_y), max(0, fw // 2 - reach)
    window = peaks[y0:fh // 2 + reach_y, x0:fw // 2 + reach]
    shape = x.shape
    vals = cv2.remap(window, (x + (fw // 2 - x0)).astype(np.float32).reshape(-1, shape[-1]),
                     (y + (fh // 2 - y0)).astype(np.float32).reshape(-1, shape[-1]),
                     cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0).reshape(shape)
    n = valid.sum(axis=-1)
    out: npt.NDArray[np.float64] = (vals * valid).sum(axis=-1, dtype=np.float64) / np.sqrt(np.maximum(n, 1))
    out[n < 2] = -np.inf
    return out


def _vector_scores(near: F32, h: int, w: int, reach: int) -> npt.NDArray[np.float32]:
    """Score of every integer lag l = (x, y) with 0 <= x <= reach, |y| <= reach (a
    (2 reach + 1) x (reach + 1) map, rows y, lag (0, 0) at [reach, 0]) as a basis
    vector: the peak map (3x3 running maximum, so the up to 1.5 px rounding error at
    3l still lands on the peak) summed over l, 2l and 3l where they fit in the image,
    divided by sqrt(count). Half the lags suffice: l and -l are the same vector."""
    fh, fw = near.shape
    cy, cx = fh // 2, fw // 2
    total = np.zeros((2 * reach + 1, reach + 1), dtype=np.float32)
    count = np.zeros_like(total)
    for k in _MULTIPLES:
        # Lags whose multiple k fits: |k y| < h/2 - 2, |k x| < w/2 - 2 (strided slices).
        ry = min(reach, math.ceil((h / 2 - 2) / k) - 1)
        rx = min(reach, math.ceil((w / 2 - 2) / k) - 1)
        if ry < 0 or rx < 0:
            continue
        total[reach - ry:reach + ry + 1, :rx + 1] += near[cy - k * ry:cy + k * ry + 1:k, cx:cx + k * rx + 1:k]
        count[reach - ry:reach + ry + 1, :rx + 1] += 1.0
    np.sqrt(np.maximum(count, 1.0, out=count), out=count)
    out: npt.NDArray[np.float32] = total / count
    return out


@lru_cache(maxsize=8)
def _vector_lags(reach: int, max_p: float) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64],
                                                     npt.NDArray[np.intp]]:
    """x and y of the _vector_scores map's lags, and the flat indices of those in
    the period range and the half plane (x > 0, or x = 0 and y > 0)."""
    ly, lx = np.meshgrid(np.arange(-reach, reach + 1, dtype=np.float64),
                         np.arange(0, reach + 1, dtype=np.float64), indexing="ij")
    r = np.hypot(ly, lx)
    keep = np.flatnonzero(((r >= MIN_PERIOD) & (r <= max_p) & ((lx > 0) | (ly > 0))).ravel())
    for arr in (lx, ly, keep):
        arr.setflags(write=False)
    return lx, ly, keep


Vec = tuple[float, float]


def _reduce(a: Vec, b: Vec) -> tuple[Vec, Vec]:
    """Lagrange-Gauss reduction: the shortest basis of the lattice spanned by a, b
    (so (a, a + b) and (a, b) give the same candidate)."""
    ax, ay = a
    bx, by = b
    for _ in range(16):
        if ax * ax + ay * ay > bx * bx + by * by:
            ax, ay, bx, by = bx, by, ax, ay
        m = round((ax * bx + ay * by) / (ax * ax + ay * ay))
        if m == 0:
            break
        bx, by = bx - m * ax, by - m * ay
    return (ax, ay), (bx, by)


def _canonical(a: tuple[float, float], b: tuple[float, float]) -> Lattice:
    """The reduced basis as a Lattice with v1 the vector closer to the x axis, both
    pointing right/down: the orientation the tile most likely had (the pilot's
    dihedral alignment settles the rest)."""
    (ax, ay), (bx, by) = _reduce(a, b)
    if abs(bx) > abs(ax):
        ax, ay, bx, by = bx, by, ax, ay
    if ax < 0:
        ax, ay = -ax, -ay
    if by < 0:
        bx, by = -bx, -by
    return Lattice((ax, ay), (bx, by))


def lattice_peaks(w: F32, block: tuple[float, float] | None = None) -> tuple[F32, F32]:
    """Step 1's peak map and its 3x3 running maximum (shared by the lattice search
    and the few-tile search)."""
    peaks = _lattice_peaks(w, block)
    return peaks, _dilated(peaks)


def _dilated(peaks: F32) -> F32:
    out: F32 = np.asarray(cv2.dilate(peaks, np.ones((3, 3), np.uint8)), dtype=np.float32)
    return out


def lattice_candidates(w: F32, block: tuple[float, float] | None = None,
                       maps: tuple[F32, F32] | None = None) -> list[Lattice]:
    """Lattices suggested by the autocorrelation, best first: any rotation, flips,
    aspect changes and mild shear (two free basis vectors).

    1. Peak map of the autocorrelation of the whitened image (ridges suppressed).
    2. Vectors: every integer lag l in the period range, scored by the peak map
       (3x3 running maximum) at l, 2l and 3l; the _VECTOR_PICKS best local maxima.
    3. Pairs of those vectors that could be a basis (angle, length ratio), reduced
       and scored by the peak map over 12 lattice points; the _COARSE_PICKS best
       distinct ones are refined to 0.05 px (each basis vector in turn, with 40
       lattice points and bilinear reads).
    ``block``: the input's 8-px JPEG block grid in detector pixels (x, y), whose
    lines are notched out of the spectrum first (see _block_grid_mask); ``maps``:
    that step's maps if :func:`lattice_peaks` already made them.

    4. The MAX_LATTICE_CANDIDATES best by refined score are returned; the caller
       verifies them with the pilot (which also settles which of the 8 dihedral
       alignments of the tile the basis has).
    """
    h, wd = w.shape
    max_p = min(MAX_PERIOD, 0.45 * min(h, wd))
    if max_p < MIN_PERIOD * 1.05:
        return []
    peaks, near = lattice_peaks(w, block) if maps is None else maps  # step 1
    fh, fw = peaks.shape
    reach = math.ceil(max_p) + 1
    score = _vector_scores(near, h, wd, reach)  # step 2
    lx, ly, keep = _vector_lags(reach, round(max_p, 1))
    # The running maximum makes plateaus: pick greedily, skipping lags within 4 %
    # (at least 2.5 px) of a better pick.
    if keep.size == 0:
        return []
    # Local maxima only (plateaus still leave several per peak).
    local = score >= np.asarray(cv2.dilate(score, np.ones((3, 3), np.uint8)))
    keep = keep[local.ravel()[keep]]
    if keep.size == 0:
        return []
    flat = score.ravel()[keep]
    n_look = min(flat.size - 1, _VECTOR_PICKS * 12)
    best = np.argpartition(-flat, n_look)[:n_look + 1]
    order = keep[best[np.argsort(-flat[best], kind="stable")]]
    vecs: list[tuple[float, float]] = []
    for i in order.tolist():
        v = (float(lx.flat[i]), float(ly.flat[i]))
        tol = max(2.5, 0.04 * math.hypot(*v))
        if any(math.hypot(v[0] - u[0], v[1] - u[1]) < tol for u in vecs):
            continue
        vecs.append(v)
        if len(vecs) >= _VECTOR_PICKS:
            break
    # step 3: pairs that can be a basis, reduced, distinct, scored on 12 lattice points
    lats: list[Lattice] = []
    seen: set[tuple[int, int, int, int]] = set()
    for i, a in enumerate(vecs):
        na = math.hypot(*a)
        for b in vecs[i + 1:]:
            nb = math.hypot(*b)
            if max(na, nb) > _MAX_BASIS_RATIO * min(na, nb):
                continue
            if abs(a[0] * b[1] - a[1] * b[0]) < _MIN_BASIS_SIN * na * nb:
                continue
            # The pair may span an index-2 sublattice of the mark's lattice (two
            # diagonals, or a vector and twice the other): also try the finer
            # lattices that contain it; the 12-point score prefers the true one,
            # whose extra points are peaks too.
            (px, py), (qx, qy) = a, b
            half_sum, half_diff = ((px + qx) / 2, (py + qy) / 2), ((px - qx) / 2, (py - qy) / 2)
            for u, v in (((px, py), (qx, qy)), (half_sum, half_diff),
                         ((px / 2, py / 2), (qx, qy)), ((px, py), (qx / 2, qy / 2))):
                lat = _canonical(u, v)
                if not _plausible(lat):
                    continue
                # Near-duplicates that round differently cost a few reads each.
                key = (round(lat.v1[0]), round(lat.v1[1]), round(lat.v2[0]), round(lat.v2[1]))
                if key not in seen:
                    seen.add(key)
                    lats.append(lat)
    n_pairs = len(lats)
    # Square lattices (own coarse ranking below): each vector with its 90-degree turn.
    seen.clear()
    for a in vecs:
        lat = _canonical(a, (-a[1], a[0]))
        key = (round(lat.v1[0]), round(lat.v1[1]), round(lat.v2[0]), round(lat.v2[1]))
        (ax, ay) = lat.v1
        if (math.hypot(ax, ay) > _SQUARE_MAX_PERIOD or abs(ay) > _SQUARE_MAX_TAN * ax
                or not _plausible(lat) or key in seen):
            continue
        seen.add(key)
        lats.append(lat)
    if not lats:
        return []
    v1x = np.array([lat.v1[0] for lat in lats])
    v1y = np.array([lat.v1[1] for lat in lats])
    v2x = np.array([lat.v2[0] for lat in lats])
    v2y = np.array([lat.v2[1] for lat in lats])
    y, x, valid = _lattice_offsets(v1x, v1y, v2x, v2y, _K_COARSE, h, wd)
    iy = np.clip(np.rint(y).astype(np.intp) + fh // 2, 0, fh - 1)
    ix = np.clip(np.rint(x).astype(np.intp) + fw // 2, 0, fw - 1)
    n = valid.sum(axis=1)
    coarse = (near[iy, ix] * valid).sum(axis=1, dtype=np.float64) / np.sqrt(np.maximum(n, 1))
    coarse[n < 2] = -np.inf
    general = [int(i) for i in np.argsort(-coarse[:n_pairs], kind="stable")[:_COARSE_PICKS]]
    square = [int(i) + n_pairs for i in np.argsort(-coarse[n_pairs:], kind="stable")[:_SQUARE_PICKS]]
    picks = [i for i in general + square if math.isfinite(coarse[i])]
    if not picks:
        return []
    # A coarse pick is only within about a pixel: refine each basis vector in turn,
    # +-0.6 px in 0.2 px steps on the 12 coarse points, then +-0.1 px in 0.05 px steps
    # on all 40.
    a1x, a1y, a2x, a2y, fs = _refine_bases(peaks, h, wd, v1x[picks], v1y[picks],
                                           v2x[picks], v2y[picks])
    out: list[Lattice] = []
    best_square: Lattice | None = None
    for i in np.argsort(-fs, kind="stable"):
        lat = Lattice((float(a1x[i]), float(a1y[i])), (float(a2x[i]), float(a2y[i])))
        if picks[i] >= n_pairs:
            if picks[i] == square[0]:
                best_square = lat
        elif not any(same_lattice(lat, o) for o in out):  # picks can refine to one lattice
            out.append(lat)
    # The best paired lattices by refined score, then the best square pick unless it
    # is one of them (then the next paired one).
    top = out[:MAX_LATTICE_CANDIDATES - 1]
    if best_square is not None and not any(same_lattice(best_square, o) for o in top):
        return [*top, best_square]
    return out[:MAX_LATTICE_CANDIDATES]


Arr = npt.NDArray[np.float64]


def _refine_bases(peaks: F32, h: int, wd: int, a1x: Arr, a1y: Arr, a2x: Arr, a2y: Arr
                  ) -> tuple[Arr, Arr, Arr, Arr, Arr]:
    """Refine lattices' basis vectors on the peak map, each vector in turn: +-0.6 px
    in 0.2 px steps on the 12 coarse points, then +-0.1 px in 0.05 px steps on all
    40 (bilinear reads). Returns the refined vectors and their scores."""
    fs = np.zeros(len(a1x))
    for (dx, dy), ks in zip(_REFINE_OFFSETS, (_K_COARSE, _K_FINE), strict=True):
        for moving in (0, 1, 0, 1):
            if moving == 0:
                sc = _fine_scores(peaks, h, wd, a1x[:, None] + dx, a1y[:, None] + dy,
                                  a2x[:, None], a2y[:, None], ks)
            else:
                sc = _fine_scores(peaks, h, wd, a1x[:, None], a1y[:, None],
                                  a2x[:, None] + dx, a2y[:, None] + dy, ks)
            j = np.argmax(sc, axis=1)
            fs = sc[np.arange(len(a1x)), j]
            if moving == 0:
                a1x, a1y = a1x + dx[j], a1y + dy[j]
            else:
                a2x, a2y = a2x + dx[j], a2y + dy[j]
    return a1x, a1y, a2x, a2y, fs


# Step 4b, the few-tile search. A crop keeping 10 % of a photo's area has about 2.5
# tiles across its short side (the embedding puts 8 across the original's, fewer on
# photos under 512 px), a 25 % crop 4: too few lattice points for the general search,
# which the photo's own structure (or the dither grid, see below) then outscores. Here
# the lattice is assumed upright and square (what a plain crop leaves) and only its
# period is searched, as a fraction of the short side, on the points that fit; the
# peak map ranks periods only roughly (the true one was 1st-10th among local maxima
# in 10 % crops), so FEW_TILE_SCAN of them are folded on a reduced copy and the pilot
# picks one.
FEW_TILES = (2.0, 4.6)
FEW_TILE_SCAN = 8
_FEW_STEP = 0.005  # relative period step: about a pixel of the farthest k = 1 point
_K_FEW = np.array([(1, 0), (0, 1), (1, 1), (1, -1), (2, 0), (0, 2), (2, 1), (1, 2),
                   (2, -1), (1, -2)], dtype=np.float64)


def few_tile_periods(peaks: tuple[F32, F32], h: int, wd: int,
                     dither: float | None = None) -> list[float]:
    """Periods of upright square lattices with FEW_TILES tiles across the short side,
    best first by the peak map: at most FEW_TILE_SCAN local maxima of the score over
    the period, at least 3 % apart. ``peaks``: :func:`lattice_peaks`.

    ``dither``: the embedding's dither period in detector pixels. The dither's square
    grid survives in crops (at full resolution it outscored the mark at 122 and 183 px
    against the mark's 171 in 10 % crops); periods within 1.5 % of its multiples are
    skipped."""
    short = min(h, wd)
    lo, hi = max(MIN_PERIOD, short / FEW_TILES[1]), short / FEW_TILES[0] - 3.0
    if hi <= lo:
        return []
    periods = np.exp(np.arange(math.log(lo), math.log(hi), _FEW_STEP))
    near = peaks[1]
    zero = np.zeros_like(periods)
    sc = _fine_scores(near, h, wd, periods, zero, zero, periods, _K_FEW)
    inner = np.flatnonzero((sc[1:-1] >= sc[:-2]) & (sc[1:-1] >= sc[2:])) + 1
    picks: list[float] = []
    for i in inner[np.argsort(-sc[inner], kind="stable")].tolist():
        p = float(periods[i])
        if not math.isfinite(sc[i]):
            break
        if dither is not None and dither >= 8.0:
            k = round(p / dither)
            if k >= 1 and abs(p / (k * dither) - 1.0) < 0.015:
                continue
        if all(abs(math.log(p / q)) > 0.03 for q in picks):
            picks.append(p)
        if len(picks) >= FEW_TILE_SCAN:
            break
    return picks


def _plausible(lat: Lattice) -> bool:
    """Whether a reduced basis could be the mark's: both periods in range, and
    nearly square (the 0.8 / 1.25 aspect changes and mild shear stay well inside;
    a photo's own rows of shelves or windows often pair with the mark at twice or
    half its period)."""
    na, nb = math.hypot(*lat.v1), math.hypot(*lat.v2)
    if min(na, nb) < MIN_PERIOD or max(na, nb) > MAX_PERIOD:
        return False
    if max(na, nb) > _MAX_BASIS_RATIO * min(na, nb):
        return False
    return abs(lat.v1[0] * lat.v2[1] - lat.v1[1] * lat.v2[0]) >= _MIN_BASIS_SIN * na * nb


def same_lattice(a: Lattice, b: Lattice) -> bool:
    """Whether two lattices' bases agree within 3 % (up to order and sign)."""
    def close(u: tuple[float, float], v: tuple[float, float]) -> bool:
        tol = 0.03 * math.hypot(*u) + 0.5
        return (math.hypot(u[0] - v[0], u[1] - v[1]) < tol
                or math.hypot(u[0] + v[0], u[1] + v[1]) < tol)
    return ((close(a.v1, b.v1) and close(a.v2, b.v2))
            or (close(a.v1, b.v2) and close(a.v2, b.v1)))
