"""embed() and detect() orchestration."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from functools import lru_cache

import numpy as np
import numpy.typing as npt
from PIL import Image

from . import _ecc, _image, _mask, _pattern, _region, _sync
from ._region import MarkRegion

F32 = npt.NDArray[np.float32]

# Detection tries the unchanged geometry first, then up to MAX_LATTICE_CANDIDATES
# lattices from the autocorrelation, then the best of those once more after
# refinement; each is one decode attempt and the p-value pays for all of them.
# (Refinement chooses among ~50 nearby lattices by the pilot alone, which is disjoint
# from the data cells, so it adds one decode, not fifty.)
MAX_ATTEMPTS = 1 + _sync.MAX_LATTICE_CANDIDATES + 1
# Refine only lattices whose pilot z-score shows synchronisation (unmarked images
# score about 3-4.5), so unmarked images almost never pay for it.
REFINE_MIN_Z = 6.0
REFINE_STEPS = (0.1, 0.05)
_REFINE_ROUNDS = 3
_NEIGHBOURS = [(dx, dy) for dx in (-1, 0, 1) for dy in (-1, 0, 1) if (dx, dy) != (0, 0)]
# The smallest short side (detector pixels) worth looking at: below two tiles the
# fold has too little to average.
MIN_DETECT_SHORT = 96
# Attempts whose pilot does not line up are not decoded: an unsynchronised fold is
# noise. Every successful decode in the benchmark (about 1,600) had z >= 8; pure noise
# scores about 3-4.5 (98.7 % of non-decoding attempts were below 4.5). Skipping
# decodes only removes chances of a false positive; the p-value still counts them.
DECODE_MIN_Z = 4.5
# Chase decoding is only worth its time when the pilot shows that synchronisation
# succeeded; the false-positive bound assumes it is always tried.
CHASE_MIN_Z = 5.0
# The second lattice candidate (it decoded in 1 of the 1,620 benchmark trials; the
# first in 436) is folded from a fixed pseudo-random half of the rows first, and the
# other half is added only if that half already shows the pilot (see _sync.Folder):
# unmarked images then pay about half a fold for it, as ~92 % of unmarked attempts stay
# below 4.0. The first candidate always gets a full fold: on small or downscaled
# images (few rows per tile row) one half's z can fall far below the full fold's
# (3.8 against 7.4 for a rotated, halved, JPEG'd 385x256 photo, found in review).
# The z-score of a stopped attempt is its half fold's.
HALF_FOLD_MIN_Z = 4.0
# Inputs whose short side is below this are read on a 2x upsampled grid (see below).
UPSAMPLE_BELOW = 256


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

    @property
    def confidence(self) -> float:
        return 1.0 - self.p_value


NOT_DETECTED = Detection(False, None, 1.0, 0)


def tiled(tile: F32, shape: tuple[int, int]) -> F32:
    h, w = shape
    reps = (-(-h // _pattern.TILE), -(-w // _pattern.TILE))
    return np.tile(tile, reps)[:h, :w]


def residual(luma: F32, payload: bytes, key: bytes, strength: float) -> tuple[F32, float]:
    """Work-resolution luminance residual and its effective strength."""
    bits = _ecc.encode(payload, key)
    pattern = tiled(_pattern.tile_for(bits, key), luma.shape)
    amp, flat = _mask.amplitude(luma, strength)
    return (amp * pattern).astype(np.float32), _mask.effective_strength(luma, amp, flat)


def embed_normalised(img: Image.Image, payload: bytes, key: bytes,
                     strength: float, in_place: bool = False) -> tuple[Image.Image, float]:
    luma = _image.work_luma(img)
    delta, eff = residual(luma, payload, key, strength)
    return _image.apply_residual(img, delta, in_place), eff


U8 = npt.NDArray[np.uint8]


def _decode_aligned(aligned: F32, z: float, lat: _sync.Lattice, key: bytes) -> Detection | None:
    """Step 6: decode an aligned tile, only if the pilot lines up."""
    if not z >= DECODE_MIN_Z:  # "not >=": a NaN z is not synchronised either
        return None
    payload, nerr = _ecc.decode_soft(_pattern.soft_bits(aligned, key), key,
                                     chase=z >= CHASE_MIN_Z)
    if payload is None:
        return None
    p = _ecc.false_positive_probability(nerr, MAX_ATTEMPTS)
    return Detection(True, payload, p, nerr, lat.scale, lat.rotation_deg, z)


def _hard_bits(aligned: F32, key: bytes) -> U8:
    bits: U8 = (_pattern.soft_bits(aligned, key) > 0).astype(np.uint8)
    return bits


@lru_cache(maxsize=16)
def _pilot_spectrum(key: bytes) -> F32:
    spec = _sync.pilot_spectrum(_pattern.key_pattern(key).pilot)
    spec.setflags(write=False)
    return spec


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
    5. Refine synchronised but undecoded attempts and decode once more.
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
    pilot = _pilot_spectrum(key)
    # (z, lattice, aligned tile, first half's totals if the attempt stopped there) of
    # each attempt; hard bits only for the best one.
    tried: list[tuple[float, _sync.Lattice, F32, npt.NDArray[np.float64] | None]] = []

    def attempt(lat: _sync.Lattice, half_first: bool) -> Detection | None:
        if half_first:
            first_half = folder.sums(lat, 0)
            aligned, z = _sync.align(folder.mean(first_half), pilot)
            if not z >= HALF_FOLD_MIN_Z:
                tried.append((z, lat, aligned, first_half))
                return None
            aligned, z = _sync.align(folder.mean(first_half + folder.sums(lat, 1)), pilot)
        else:
            aligned, z = _sync.align(folder.fold(lat), pilot)
        tried.append((z, lat, aligned, None))
        return _decode_aligned(aligned, z, lat, key)

    found = attempt(first, half_first=False)  # step 3
    if found is None:
        for i, lat in enumerate(_sync.lattice_candidates(folder.w)):  # step 4
            found = attempt(lat, half_first=i > 0)
            if found is not None:
                break
    if found is None:
        # step 5. Synchronised (the pilot lines up) but not decoded: the lattice is
        # usually a little off; a 0.1 px error in the period is half a cell ten tiles
        # away. Climb the pilot z-score over small changes of the best such lattice
        # and decode once more.
        z, lat, _, _ = max(tried, key=lambda t: t[0])
        if z >= REFINE_MIN_Z:
            z2, lat2, aligned2 = _refine(folder, lat, z, pilot)
            if aligned2 is not None:
                tried.append((z2, lat2, aligned2, None))
                found = _decode_aligned(aligned2, z2, lat2, key)
    best_z, best_lat, best_aligned, half = max(tried, key=lambda t: t[0]) if found is None else tried[-1]
    if full_folds and half is not None:
        best_aligned, best_z = _sync.align(folder.mean(half + folder.sums(best_lat, 1)), pilot)
    bits = _hard_bits(best_aligned, key)
    if found is not None:
        if locate and found.payload is not None:
            # After a decode only (see _region): input pixels per detector pixel.
            to_input = (img.size[0] / luma.shape[1], img.size[1] / luma.shape[0])
            found = replace(found, region=_region.locate(folder.w, best_lat.v1, best_lat.v2, best_lat.phase,
                                                         found.payload, key, to_input))
        return found, bits
    z_out = best_z if math.isfinite(best_z) else 0.0
    return Detection(False, None, 1.0, 0, None, None, z_out), bits


def _refine(folder: _sync.Folder, lat: _sync.Lattice, z: float, pilot: F32
            ) -> tuple[float, _sync.Lattice, F32 | None]:
    """Hill-climb the pilot z-score over the lattice's basis vector in steps of
    REFINE_STEPS pixels; returns the best z, its lattice and its aligned tile (None if
    nothing beat ``z``). At most len(REFINE_STEPS) * _REFINE_ROUNDS * 8 folds."""
    best: tuple[float, _sync.Lattice, F32 | None] = (z, lat, None)
    seen = {(round(lat.v1[0], 6), round(lat.v1[1], 6))}
    for step in REFINE_STEPS:
        for _ in range(_REFINE_ROUNDS):
            vx, vy = best[1].v1
            moved = False
            for dx, dy in _NEIGHBOURS:
                nx, ny = vx + dx * step, vy + dy * step
                if (round(nx, 6), round(ny, 6)) in seen:
                    continue
                seen.add((round(nx, 6), round(ny, 6)))
                cand = _sync.Lattice((nx, ny), (-ny, nx), lat.phase)
                aligned, zc = _sync.align(folder.fold(cand), pilot)
                if zc > best[0]:
                    best, moved = (zc, cand, aligned), True
            if not moved:
                break
    return best


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
    return _region.locate(_sync.whiten(luma), v1, (-v1[1], v1[0]), 0.5, payload, key, (sx, sy))


def detect_image(img: Image.Image, key: bytes, locate: bool = False) -> Detection:
    return detect_with_bits(img, key, locate=locate)[0]
