"""embed() and detect() orchestration."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from functools import lru_cache

import cv2
import numpy as np
import numpy.typing as npt
from PIL import Image

from . import _ecc, _image, _mask, _pattern, _region, _sync
from ._region import MarkRegion

F32 = npt.NDArray[np.float32]

# Detection tries the unchanged geometry first, then up to MAX_LATTICE_CANDIDATES
# lattices from the autocorrelation, the few-tile lattice (step 4b), the best of those
# once more after refinement, and the sum of aligned parts (step 5b); each is one
# decode attempt and the p-value pays for all of them.
# (Refinement chooses among ~50 nearby lattices by the pilot alone, which is disjoint
# from the data cells, so it adds one decode, not fifty.)
MAX_ATTEMPTS = 1 + _sync.MAX_LATTICE_CANDIDATES + 1 + 1 + 1
# Refine only lattices whose pilot z-score shows synchronisation (unmarked images
# score about 3-4.5), so unmarked images almost never pay for it.
REFINE_MIN_Z = 6.5
REFINE_STEPS = (0.1, 0.05)
_REFINE_ROUNDS = 3
_NEIGHBOURS = [(dx, dy) for dx in (-1, 0, 1) for dy in (-1, 0, 1) if (dx, dy) != (0, 0)]
# The smallest short side (detector pixels) worth looking at: below two tiles the
# fold has too little to average.
MIN_DETECT_SHORT = 96
# Attempts whose pilot does not line up are not decoded: an unsynchronised fold is
# noise. (Version 2 takes the best of 16 pilot alignments per fold, which lifts the z
# of unmarked folds by about 0.6 (median 3.7 -> 4.3), so every gate below is 0.5
# higher than in version 1.) Every successful decode in the benchmark (about 1,600) had z >= 8; pure noise
# scores about 3-4.5 (98.7 % of non-decoding attempts were below 4.5). Skipping
# decodes only removes chances of a false positive; the p-value still counts them.
DECODE_MIN_Z = 5.0
# Chase decoding is only worth its time when the pilot shows that synchronisation
# succeeded; the false-positive bound assumes it is always tried.
CHASE_MIN_Z = 5.5
# The second and third lattice candidates (in version 1's run the second decoded in 1
# of the 1,620 benchmark trials, the first in 436) are folded from a fixed
# pseudo-random half of the rows first, and the other half is added only if that half
# already shows the pilot (see _sync.Folder): unmarked images then pay about half a
# fold for each, as ~92 % of unmarked attempts stay
# below 4.0. The first candidate always gets a full fold: on small or downscaled
# images (few rows per tile row) one half's z can fall far below the full fold's
# (3.8 against 7.4 for a rotated, halved, JPEG'd 385x256 photo, found in review).
# The z-score of a stopped attempt is its half fold's.
HALF_FOLD_MIN_Z = 4.5
# Inputs whose short side is below this are read on a 2x upsampled grid (see below).
UPSAMPLE_BELOW = 256
# Bitstream versions and their C2PA soft-binding algorithm names. embed writes
# EMBED_VERSION; detect reads every version (each attempt decodes only the version and
# dihedral alignment whose pilot lines up best, so reading both costs no extra decodes).
ALGORITHM_NAMES = {1: "io.github.provenance-py.watermark.1", 2: "io.github.provenance-py.watermark.2"}
EMBED_VERSION = 2
# Pilots tried on every fold: each version's pilot in each of the 8 dihedral alignments.
_PILOTS = [(v, o) for v in (2, 1) for o in _sync.DIHEDRAL]


@dataclass(frozen=True)
class Detection:
    """Result of :func:`watermark.detect`.

    ``p_value`` bounds the probability that an unmarked image (or a mark made with
    another key) produces a detection with at most ``bit_errors_corrected`` corrected
    bit errors (derived from the code parameters, see DESIGN.md); it is 1.0 when
    nothing was detected. ``confidence`` is ``1 - p_value``.

    Diagnostics: ``scale`` and ``rotation_deg`` describe the tile lattice found (period
    relative to the embedding's, on the detector's grid; rotation in degrees), and
    ``sync_score`` is the pilot correlation's z-score (about 3-4.5 for noise, well
    above 5 when synchronised).
    """

    detected: bool
    payload: bytes | None
    p_value: float
    bit_errors_corrected: int
    scale: float | None = None
    rotation_deg: float | None = None
    sync_score: float = 0.0
    region: MarkRegion | None = None
    version: int | None = None

    @property
    def confidence(self) -> float:
        return 1.0 - self.p_value

    @property
    def algorithm(self) -> str | None:
        """The soft-binding algorithm name of the bitstream read (None if nothing was)."""
        return None if self.version is None else ALGORITHM_NAMES[self.version]


NOT_DETECTED = Detection(False, None, 1.0, 0)


def tiled(tile: F32, shape: tuple[int, int]) -> F32:
    h, w = shape
    reps = (-(-h // _pattern.TILE), -(-w // _pattern.TILE))
    return np.tile(tile, reps)[:h, :w]


def residual(luma: F32, payload: bytes, key: bytes, strength: float,
             version: int = EMBED_VERSION) -> tuple[F32, float]:
    """Work-resolution luminance residual and its effective strength."""
    bits = _ecc.encode(payload, key, version)
    pattern = tiled(_pattern.tile_for(bits, key, version), luma.shape)
    amp, flat = _mask.amplitude(luma, strength)
    return (amp * pattern).astype(np.float32), _mask.effective_strength(luma, amp, flat)


def embed_normalised(img: Image.Image, payload: bytes, key: bytes,
                     strength: float, in_place: bool = False,
                     version: int = EMBED_VERSION) -> tuple[Image.Image, float]:
    """Embed; ``version`` 1 only to make old-style marks (tests, benchmark)."""
    luma = _image.work_luma(img)
    delta, eff = residual(luma, payload, key, strength, version)
    return _image.apply_residual(img, delta, in_place), eff


U8 = npt.NDArray[np.uint8]


def _decode_aligned(aligned: F32, z: float, lat: _sync.Lattice, key: bytes,
                    version: int) -> Detection | None:
    """Step 6: decode an aligned tile, only if the pilot lines up."""
    if not z >= DECODE_MIN_Z:  # "not >=": a NaN z is not synchronised either
        return None
    payload, nerr = _ecc.decode_soft(_pattern.soft_bits(aligned, key, version), key,
                                     chase=z >= CHASE_MIN_Z, version=version)
    if payload is None:
        return None
    p = _ecc.false_positive_probability(nerr, MAX_ATTEMPTS)
    return Detection(True, payload, p, nerr, lat.scale, lat.rotation_deg, z, version=version)


def _hard_bits(aligned: F32, key: bytes, version: int) -> U8:
    bits: U8 = (_pattern.soft_bits(aligned, key, version) > 0).astype(np.uint8)
    return bits


@lru_cache(maxsize=16)
def _pilot_spectra(key: bytes) -> list[F32]:
    """The spectra of _PILOTS, in that order."""
    out: list[F32] = []
    for v in (2, 1):
        for spec in _sync.dihedral_spectra(_pattern.key_pattern(key, v).pilot):
            spec.setflags(write=False)
            out.append(spec)
    assert len(out) == len(_PILOTS)
    return out


@dataclass(frozen=True)
class _Tried:
    """One attempt: pilot z-score, lattice, the fold aligned (rolled and turned) to
    the tile, the first half's totals if it stopped there, and which pilot lined up."""

    z: float
    lat: _sync.Lattice
    aligned: F32
    half: npt.NDArray[np.float64] | None
    pilot: int  # index into _PILOTS

    @property
    def version(self) -> int:
        return _PILOTS[self.pilot][0]

    @property
    def orientation(self) -> int:
        return _PILOTS[self.pilot][1]


def detect_with_bits(img: Image.Image, key: bytes, full_folds: bool = False,
                     locate: bool = False) -> tuple[Detection, U8 | None]:
    """Detection plus the raw hard codeword bits of the best-synchronised attempt
    (for measuring bit accuracy when decoding fails).

    With ``full_folds``, an undetected result whose best attempt stopped after its
    half fold (step 4) reports the bits and z-score of that lattice's full fold: the
    population that decoding sees, for the benchmark's calibration check.

    Steps (tagged below; details and measurements in DESIGN.md):

    1. Luminance at working resolution (2x upsampled below 256 px).
    2. Whitening.
    3. Attempt with the unchanged tile geometry.
    4. Lattice search from the autocorrelation; attempt the best lattices.
    4b. Few tiles across (small crops): upright square periods ranked on the peak
        map, scanned with the pilot on a reduced copy; attempt the best.
    5. Refine synchronised but undecoded attempts and decode once more.
    5b. Perspective: parts of 2 x 2 tiles aligned one by one; attempt their sum.
    6. (In every attempt) pilot alignment, then BCH + keyed check if synchronised.
    """
    if min(img.size) < MIN_DETECT_SHORT:
        return NOT_DETECTED, None
    # step 1
    luma = _image.work_luma(img)
    if img.mode == "F" and not np.all(np.isfinite(luma)):  # only float images hold NaN/inf
        luma = np.nan_to_num(luma, nan=0.0, posinf=255.0, neginf=0.0)
    first = _sync.IDENTITY
    if min(luma.shape) < UPSAMPLE_BELOW:
        # Inputs below MIN_SIZE are typically downscaled marks with cells of about a
        # pixel; the whitening filter and the nearest-bin fold work much better on a
        # 2x grid. (From 256 px up, native size gives the same benchmark results at
        # a quarter of the pixels.)
        up = Image.fromarray(luma).resize((luma.shape[1] * 2, luma.shape[0] * 2),
                                          Image.Resampling.BICUBIC)
        luma = np.asarray(up, dtype=np.float32)
        first = _sync.Lattice((2.0 * _pattern.TILE, 0.0), (0.0, 2.0 * _pattern.TILE), phase=0.0)
    folder = _sync.Folder(_sync.whiten(luma))  # step 2
    spectra = _pilot_spectra(key)
    tried: list[_Tried] = []

    def aligned_tried(folded: F32, lat: _sync.Lattice,
                      half: npt.NDArray[np.float64] | None) -> _Tried:
        rolled, z, i = _sync.align_any(folded, spectra)
        return _Tried(z, lat, _sync.dihedral(rolled, _PILOTS[i][1]), half, i)

    def attempt(lat: _sync.Lattice, half_first: bool) -> Detection | None:
        if half_first:
            first_half = folder.sums(lat, 0)
            t = aligned_tried(folder.mean(first_half), lat, first_half)
            if not t.z >= HALF_FOLD_MIN_Z:
                tried.append(t)
                return None
            t = aligned_tried(folder.mean(first_half + folder.sums(lat, 1)), lat, None)
        else:
            t = aligned_tried(folder.fold(lat), lat, None)
        tried.append(t)
        return _decode_aligned(t.aligned, t.z, lat, key, t.version)

    found = attempt(first, half_first=False)  # step 3
    if found is None:
        # The input's JPEG block grid (8 input pixels) on the detector's grid.
        block = (8.0 * luma.shape[1] / img.size[0], 8.0 * luma.shape[0] / img.size[1])
        peaks = _sync.lattice_peaks(folder.w, block)
        for i, lat in enumerate(_sync.lattice_candidates(folder.w, block, peaks)):  # step 4
            found = attempt(lat, half_first=i > 0)
            if found is not None:
                break
        if found is None:
            # step 4b: few tiles across the image (small crops), see few_tile_periods.
            sx = luma.shape[1] / img.size[0]
            h, wd = folder.w.shape
            periods = _sync.few_tile_periods(peaks, h, wd, dither=_image.DITHER_PERIOD * sx)
            few = _few_tile_scan(folder.w, periods, spectra[_UPRIGHT_V2])
            if few is not None and not any(_sync.same_lattice(few, t.lat) for t in tried):
                found = attempt(few, half_first=True)
    if found is None:
        # step 5. Synchronised (the pilot lines up) but not decoded: the lattice is
        # usually a little off; a 0.1 px error in the period is half a cell ten tiles
        # away. Climb the pilot z-score over small changes of the best such lattice
        # and decode once more.
        t = max(tried, key=lambda t: t.z)
        if t.z >= REFINE_MIN_Z:
            t2 = _refine(folder, t, spectra[t.pilot])
            if t2 is not None:
                tried.append(t2)
                found = _decode_aligned(t2.aligned, t2.z, t2.lat, key, t2.version)
    if found is None and first == _sync.IDENTITY:
        # step 5b: perspective. Folded along the embedding's own lattice, small parts
        # of the image each still show the pilot, but at different translations;
        # aligned part by part and added up, they decode.
        rolled, z = _parts_fold(folder.w, key)
        if rolled is not None and z >= GROW_MIN_Z:
            # The parts' sum shows the pilot but is a blurred fold (each part rolled
            # by a whole translation): fold along a perspective map grown from the
            # best part instead if its pilot lines up better (the pilot alone
            # chooses, so this is still step 5b's one attempt).
            grown, zg = _grown_fold(folder.w, key)
            if zg > z:
                rolled, z = grown, zg
        if rolled is not None:
            t = _Tried(z, _sync.IDENTITY, rolled, None, _UPRIGHT_V2)
            tried.append(t)
            found = _decode_aligned(t.aligned, t.z, t.lat, key, t.version)
    best = max(tried, key=lambda t: t.z) if found is None else tried[-1]
    if full_folds and best.half is not None:
        rolled, z, i = _sync.align_any(folder.mean(best.half + folder.sums(best.lat, 1)), spectra)
        best = _Tried(z, best.lat, _sync.dihedral(rolled, _PILOTS[i][1]), None, i)
    bits = _hard_bits(best.aligned, key, best.version)
    if found is not None:
        if locate and found.payload is not None:
            # After a decode only (see _region): input pixels per detector pixel.
            to_input = (img.size[0] / luma.shape[1], img.size[1] / luma.shape[0])
            found = replace(found, region=_region.locate(
                folder.w, best.lat.v1, best.lat.v2, best.lat.phase, found.payload, key, to_input,
                version=best.version, orientation=best.orientation))
        return found, bits
    z_out = best.z if math.isfinite(best.z) else 0.0
    return Detection(False, None, 1.0, 0, None, None, z_out), bits


# Step 4b folds its period candidates on a copy of the whitened image box-reduced by
# an integer factor so the shortest candidate period stays at least this many pixels
# (cells of at least 1 px); only the best of them by pilot z is folded at full
# resolution and decoded (one attempt).
_FEW_REDUCED_PERIOD = 32.0
# ... and only if its pilot shows there (one alignment of one pilot, best of the
# periods scanned: 118 unmarked photos and crops of them scored median 4.1, 6 of them
# >= 4.5, max 4.9; the 36 marked 10 % crops of the benchmark 5.2-17, median 12.7):
# unmarked images then rarely pay for the full-resolution fold. Pilot cells only: no
# false-positive budget.
FEW_SCAN_MIN_Z = 4.5
# Only version 2's pilot, upright: what a plain crop of a version 2 mark shows (each
# alignment tried would cost as much again; the full fold then tries all 16).
_UPRIGHT_V2 = _PILOTS.index((2, 0))


def _few_tile_scan(w: F32, periods: list[float], spectrum: F32) -> _sync.Lattice | None:
    """The upright square lattice among ``periods`` whose fold on a reduced copy of
    ``w`` shows the pilot of ``spectrum`` best, if its z-score reaches
    FEW_SCAN_MIN_Z."""
    if not periods:
        return None
    # An integer box reduction (OpenCV's fast path for INTER_AREA).
    k = max(1, int(min(periods) / _FEW_REDUCED_PERIOD))
    h, wd = w.shape
    small = w if k == 1 else np.asarray(
        cv2.resize(w[:h - h % k, :wd - wd % k], (wd // k, h // k), interpolation=cv2.INTER_AREA),
        dtype=np.float32)
    best: tuple[float, float] | None = None
    for p in periods:
        _, z, _ = _sync.align_any(_sync.fold_upright(small, p / k), [spectrum])
        if best is None or z > best[0]:
            best = (z, p)
    assert best is not None
    return _sync.Lattice((best[1], 0.0), (0.0, best[1])) if best[0] >= FEW_SCAN_MIN_Z else None


# Step 5b: parts of PARTS_TILES x PARTS_TILES whole tiles (128 px at the working
# resolution: a 3 % corner shift bends the lattice by a few pixels across a part, but
# by several cells across the image), each folded along the embedding's own lattice
# and aligned with the pilot on its own. A part counts if its pilot z reaches
# PART_MIN_Z and its translation is within PART_SHIFT px (cyclically) of a
# neighbouring counted part's: perspective moves the translation smoothly, while the
# best shift of a part without the mark is uniform over the tile (a neighbour agrees
# by chance with probability ~2 %; without this test the sum of parts aligned at
# their own noise peaks reached the decode gate on unmarked photos). The counted
# parts, each rolled to its translation, are added and decoded once: pilot cells
# alone choose them, so that is one decode attempt. In the benchmark's undetected
# perspective trials this recovered 16 of 26 (15 without the neighbour test; 3 x 3
# parts of the whole image instead: 7).
PARTS_TILES = 2
PART_MIN_Z = 4.0
PART_SHIFT = 4


@lru_cache(maxsize=16)
def _pilot_rfft(key: bytes) -> npt.NDArray[np.complex64]:
    """numpy's 2-D real DFT of version 2's upright pilot, conjugated (for batches of
    folds; single precision, which numpy's FFT keeps, at half the cost)."""
    pilot = _pattern.key_pattern(key, 2).pilot.astype(np.float32)
    out: npt.NDArray[np.complex64] = np.conj(np.fft.rfft2(pilot))
    out.setflags(write=False)
    return out


def _parts_fold(w: F32, key: bytes) -> tuple[F32 | None, float]:
    """The sum of the counted parts' folds, aligned (None if fewer than two parts
    count), and its pilot z-score (version 2's pilot, upright)."""
    side = PARTS_TILES * _pattern.TILE
    h, wd = w.shape
    ny, nx = h // side, wd // side
    if ny * nx < 2:
        return None, 0.0
    # Sum of each part's tiles: (ny, PARTS_TILES, TILE, nx, PARTS_TILES, TILE).
    blocks = w[:ny * side, :nx * side].reshape(ny, PARTS_TILES, _pattern.TILE, nx, PARTS_TILES, _pattern.TILE)
    parts = blocks.sum(axis=(1, 4), dtype=np.float32).transpose(0, 2, 1, 3)
    parts = parts.reshape(ny * nx, _pattern.TILE, _pattern.TILE)
    # All parts' cyclic correlations with the pilot in one batch (as align_any, per part).
    centred = parts - parts.mean(axis=(1, 2), keepdims=True)
    corr = np.fft.irfft2(np.fft.rfft2(centred) * _pilot_rfft(key), s=(_pattern.TILE, _pattern.TILE))
    flat = corr.reshape(ny * nx, -1)
    k = np.argmax(flat, axis=1)
    z = (flat[np.arange(ny * nx), k] - flat.mean(axis=1)) / (flat.std(axis=1) + 1e-12)
    shift = {divmod(n, nx): divmod(int(k[n]), _pattern.TILE)
             for n in np.flatnonzero(z >= PART_MIN_Z).tolist()}

    def near(a: tuple[int, int], b: tuple[int, int]) -> bool:
        return all(min((u - v) % _pattern.TILE, (v - u) % _pattern.TILE) <= PART_SHIFT
                   for u, v in zip(a, b, strict=True))

    counted = [(i, j) for (i, j), s in shift.items()
               if any(near(s, shift[n]) for n in ((i - 1, j), (i + 1, j), (i, j - 1), (i, j + 1))
                      if n in shift)]
    if len(counted) < 2:
        return None, 0.0
    acc = np.zeros((_pattern.TILE, _pattern.TILE), dtype=np.float32)
    for i, j in counted:
        dy, dx = shift[i, j]
        acc += np.roll(parts[i * nx + j], (-dy, -dx), axis=(0, 1))
    aligned, zc, _ = _sync.align_any(acc, [_pilot_spectra(key)[_UPRIGHT_V2]])
    return aligned, zc


# Step 5b's grown perspective map. The parts' sum is folded with every part rolled by
# its own whole translation, but a 3 % corner shift also turns and scales the tile by
# up to ~5 % locally, several pixels across one part: in the benchmark's 10 undecoded
# perspective trials the sum reached pilot z 6-10 at 72-86 % bit accuracy, while a
# fold along the true perspective map reached 12-16 and decoded all 10. So, starting
# from the best part's translation, a projective map (4 corner images of a window) is
# climbed on the pilot z of the window's fold, one corner coordinate at a time in
# GROW_STEPS px, while the window grows (GROW_HALVES px either side of the part's
# centre, then the whole image): a small window finds the local turn and scale before
# the far parts, whose shifts it could not yet predict, are added.
# Only after the parts' sum reached GROW_MIN_Z (pure noise: the best attempt of 2,000
# unmarked samples peaked at 6.4): ~300-500 window folds, 1-3 s on a 0.4 MP working
# image.
GROW_MIN_Z = 6.0
GROW_HALVES = (128, 192, 288)
GROW_STEPS = ((2.0, 1.0, 0.5), (1.0, 0.5, 0.25))
_GROW_ROUNDS = 5


def _window_fold(w: F32, m: npt.NDArray[np.float64], box: tuple[int, int, int, int]) -> F32:
    """The fold of the window ``box`` (x0, y0, x1, y1) of ``w`` with each pixel at
    its tile position under the projective map ``m`` (nearest bin)."""
    x0, y0, x1, y1 = box
    t = _pattern.TILE
    yy = np.arange(y0, y1, dtype=np.float64)[:, None]
    xx = np.arange(x0, x1, dtype=np.float64)[None, :]
    den = m[2, 0] * xx + m[2, 1] * yy + m[2, 2]
    u = (m[0, 0] * xx + m[0, 1] * yy + m[0, 2]) / den
    v = (m[1, 0] * xx + m[1, 1] * yy + m[1, 2]) / den
    idx = ((np.floor(v + 0.5).astype(np.intp) % t) * t + np.floor(u + 0.5).astype(np.intp) % t).ravel()
    total = np.bincount(idx, weights=w[y0:y1, x0:x1].ravel(), minlength=t * t)
    count = np.bincount(idx, minlength=t * t)
    out: F32 = (total / np.maximum(count, 1)).reshape(t, t).astype(np.float32)
    return out


def _grown_fold(w: F32, key: bytes) -> tuple[F32 | None, float]:
    """The fold along a projective map grown from the best part (see GROW_MIN_Z),
    aligned, and its pilot z-score (version 2's pilot, upright)."""
    side = PARTS_TILES * _pattern.TILE
    t = _pattern.TILE
    h, wd = w.shape
    ny, nx = h // side, wd // side
    if ny * nx < 1:
        return None, 0.0
    parts = w[:ny * side, :nx * side].reshape(ny, PARTS_TILES, t, nx, PARTS_TILES, t)
    parts = parts.sum(axis=(1, 4), dtype=np.float32).transpose(0, 2, 1, 3).reshape(ny * nx, t, t)
    centred = parts - parts.mean(axis=(1, 2), keepdims=True)
    corr = np.fft.irfft2(np.fft.rfft2(centred) * _pilot_rfft(key), s=(t, t)).reshape(ny * nx, -1)
    k = np.argmax(corr, axis=1)
    z = (corr[np.arange(ny * nx), k] - corr.mean(axis=1)) / (corr.std(axis=1) + 1e-12)
    best = int(np.argmax(z))
    dy, dx = divmod(int(k[best]), t)
    bi, bj = divmod(best, nx)
    cy, cx = (bi + 0.5) * side, (bj + 0.5) * side
    m = np.array([[1.0, 0.0, -dx], [0.0, 1.0, -dy], [0.0, 0.0, 1.0]])
    spectrum = [_pilot_spectra(key)[_UPRIGHT_V2]]
    aligned: F32 | None = None
    zb = 0.0
    stages = [(half, GROW_STEPS[0]) for half in GROW_HALVES] + [(max(h, wd), GROW_STEPS[1])]
    for half, steps in stages:
        x0, y0 = max(0, int(cx - half)), max(0, int(cy - half))
        x1, y1 = min(wd, int(cx + half)), min(h, int(cy + half))
        box = (x0, y0, x1, y1)
        corners = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], dtype=np.float32)
        img = np.c_[corners, np.ones(4)] @ m.T
        e = img[:, :2] / img[:, 2:3]
        aligned, zb, _ = _sync.align_any(_window_fold(w, _projective(corners, e), box), spectrum)
        for step in steps:
            for _ in range(_GROW_ROUNDS):
                moved = False
                for i in range(8):
                    for sign in (-1.0, 1.0):
                        q = e.copy()
                        q.flat[i] += sign * step
                        r, zq, _ = _sync.align_any(_window_fold(w, _projective(corners, q), box), spectrum)
                        if zq > zb:
                            aligned, zb, e, moved = r, zq, q, True
                if not moved:
                    break
        m = _projective(corners, e)
    return aligned, zb


def _projective(src: npt.NDArray[np.float32], dst: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """The projective map taking the 4 points ``src`` to ``dst``."""
    out: npt.NDArray[np.float64] = np.asarray(
        cv2.getPerspectiveTransform(src, dst.astype(np.float32)), dtype=np.float64)
    return out


def _refine(folder: _sync.Folder, start: _Tried, spectrum: F32) -> _Tried | None:
    """Hill-climb the pilot z-score (of the pilot and alignment that lined up) over
    each basis vector of the lattice in steps of REFINE_STEPS pixels; returns the
    best attempt if it beat ``start``. At most len(REFINE_STEPS) * _REFINE_ROUNDS *
    16 folds."""
    best = start
    improved = False
    lat0 = start.lat
    seen: set[tuple[float, ...]] = {(*(round(c, 6) for c in lat0.v1), *(round(c, 6) for c in lat0.v2))}
    for step in REFINE_STEPS:
        for _ in range(_REFINE_ROUNDS):
            (ax, ay), (bx, by) = best.lat.v1, best.lat.v2
            moved = False
            for which in (0, 1):
                for dx, dy in _NEIGHBOURS:
                    if which == 0:
                        cand = _sync.Lattice((ax + dx * step, ay + dy * step), (bx, by), lat0.phase)
                    else:
                        cand = _sync.Lattice((ax, ay), (bx + dx * step, by + dy * step), lat0.phase)
                    k = (*(round(c, 6) for c in cand.v1), *(round(c, 6) for c in cand.v2))
                    if k in seen:
                        continue
                    seen.add(k)
                    rolled, zc, _ = _sync.align_any(folder.fold(cand), [spectrum])
                    if zc > best.z:
                        best = _Tried(zc, cand, _sync.dihedral(rolled, start.orientation), None, start.pilot)
                        moved = improved = True
            if not moved:
                break
    return best if improved else None


def locate_known(img: Image.Image, payload: bytes, key: bytes, tile: float,
                 rotation_deg: float) -> MarkRegion | None:
    """The region of a mark whose payload and geometry (tile period in input pixels,
    rotation) are already known, e.g. from a detection in part of ``img``."""
    luma = _image.work_luma(img)
    if min(luma.shape) < MIN_DETECT_SHORT:
        return None
    sx, sy = img.size[0] / luma.shape[1], img.size[1] / luma.shape[0]
    period = tile / sx
    theta = math.radians(rotation_deg)
    v1 = (period * math.cos(theta), period * math.sin(theta))
    w = _sync.whiten(luma)
    # The geometry says nothing about the version: take the one that covers more.
    found = [r for v in (EMBED_VERSION, 1)
             if (r := _region.locate(w, v1, (-v1[1], v1[0]), 0.5, payload, key, (sx, sy), version=v))
             is not None]
    return max(found, key=lambda r: r.coverage * (r.box[2] - r.box[0]) * (r.box[3] - r.box[1]),
               default=None)


def detect_image(img: Image.Image, key: bytes, locate: bool = False) -> Detection:
    return detect_with_bits(img, key, locate=locate)[0]
