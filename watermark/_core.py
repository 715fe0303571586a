"""embed() and detect() orchestration."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from PIL import Image

from . import _ecc, _image, _mask, _pattern, _sync

F32 = npt.NDArray[np.float32]

# Detection tries the unchanged geometry first, then up to this many lattices from
# the autocorrelation; each is one decode attempt and the p-value pays for all of them.
MAX_ATTEMPTS = 1 + _sync.MAX_LATTICE_CANDIDATES
# The smallest short side (detector pixels) worth looking at: below two tiles the
# fold has too little to average.
MIN_DETECT_SHORT = 96
# Chase decoding is only worth its time when the pilot shows that synchronisation
# succeeded; the false-positive bound assumes it is always tried.
CHASE_MIN_Z = 5.0
# Inputs whose short side is below this are read on a 2x upsampled grid (see below).
UPSAMPLE_BELOW = 300


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
                     strength: float) -> tuple[Image.Image, float]:
    luma = _image.work_luma(img)
    delta, eff = residual(luma, payload, key, strength)
    return _image.apply_residual(img, delta), eff


U8 = npt.NDArray[np.uint8]


def _decode_aligned(aligned: F32, z: float, lat: _sync.Lattice,
                    key: bytes) -> tuple[Detection | None, U8]:
    soft = _pattern.soft_bits(aligned, key)
    hard = (soft > 0).astype(np.uint8)
    payload, nerr = _ecc.decode_soft(soft, key, chase=z >= CHASE_MIN_Z)
    if payload is None:
        return None, hard
    p = _ecc.false_positive_probability(nerr, MAX_ATTEMPTS)
    return Detection(True, payload, p, nerr, lat.scale, lat.rotation_deg, z), hard


def _attempt(w: F32, lat: _sync.Lattice, key: bytes) -> tuple[Detection | None, float, U8]:
    aligned, z = _sync.align(_sync.fold(w, lat), _pattern.key_pattern(key).pilot)
    found, hard = _decode_aligned(aligned, z, lat, key)
    return found, z, hard


def detect_with_bits(img: Image.Image, key: bytes) -> tuple[Detection, U8 | None]:
    """Detection plus the raw hard codeword bits of the best-synchronised attempt
    (for measuring bit accuracy when decoding fails)."""
    if min(img.size) < MIN_DETECT_SHORT:
        return NOT_DETECTED, None
    luma = _image.work_luma(img)
    if not np.all(np.isfinite(luma)):
        luma = np.nan_to_num(luma, nan=0.0, posinf=255.0, neginf=0.0)
    first = _sync.IDENTITY
    if min(luma.shape) < UPSAMPLE_BELOW:
        # Small inputs (typically downscaled marks) have cells of about a pixel; the
        # whitening filter and the nearest-bin fold work much better on a 2x grid.
        up = Image.fromarray(luma).resize((luma.shape[1] * 2, luma.shape[0] * 2),
                                          Image.Resampling.BICUBIC)
        luma = np.asarray(up, dtype=np.float32)
        first = _sync.Lattice((2.0 * _pattern.TILE, 0.0), (0.0, 2.0 * _pattern.TILE))
    w = _sync.whiten(luma)
    kp = _pattern.key_pattern(key)
    found, best_z, best_bits = _attempt(w, first, key)
    if found is not None:
        return found, best_bits
    # Rank the lattices by how well the pilot lines up before paying for decodes,
    # and decode only the best few: every decode attempt costs false-positive budget.
    ranked = []
    for lat in _sync.lattice_candidates(w):
        aligned, z = _sync.align(_sync.fold(w, lat), kp.pilot)
        ranked.append((z, lat, aligned))
    ranked.sort(key=lambda t: -t[0])
    for z, lat, aligned in ranked[:_sync.MAX_LATTICE_CANDIDATES]:
        found, bits = _decode_aligned(aligned, z, lat, key)
        if found is not None:
            return found, bits
        if z > best_z:
            best_z, best_bits = z, bits
    z_out = best_z if math.isfinite(best_z) else 0.0
    return Detection(False, None, 1.0, 0, None, None, z_out), best_bits


def detect_image(img: Image.Image, key: bytes) -> Detection:
    return detect_with_bits(img, key)[0]
