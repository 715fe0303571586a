"""Perceptual amplitude map: how many grey levels of watermark each pixel can hide."""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt

F32 = npt.NDArray[np.float32]

# Target mean-square amplitude: 42.5 dB PSNR before rounding and clipping, leaving
# room under the 42 dB goal for the dithered rounding to 8 bits.
TARGET_PSNR_DB = 42.5
TARGET_RMS = 255.0 * 10.0 ** (-TARGET_PSNR_DB / 20.0)
# Texture masking: noise at a fraction of the local standard deviation is hidden by
# the texture itself; flat regions get a small floor so they still carry some signal
# without showing a pattern.
TEXTURE_GAIN = 0.5
FLOOR = 1.0
CEILING = 5.0


def amplitude(luma: F32, strength: float = 1.0) -> tuple[F32, npt.NDArray[np.bool_]]:
    """Per-pixel watermark amplitude (grey levels, 8-bit scale) for work-res luma, and
    the mask of flat pixels whose amplitude is only the floor."""
    y = np.ascontiguousarray(luma, dtype=np.float32)
    # OpenCV's box filter with mirrored borders is scipy.ndimage.uniform_filter
    # (mode "reflect"), several times faster.
    # In place where possible: at 0.4 MP fresh temporaries cost more than the maths.
    mean = cv2.boxFilter(y, -1, (5, 5), borderType=cv2.BORDER_REFLECT)
    var = cv2.boxFilter(y * y, -1, (5, 5), borderType=cv2.BORDER_REFLECT)
    var -= np.multiply(mean, mean, out=mean)
    sd = np.sqrt(np.maximum(var, 0.0, out=var), out=var)
    # Smooth so the amplitude does not switch on exactly at edges, where a halo
    # would outline the edge.
    raw: F32 = np.asarray(cv2.boxFilter(sd, -1, (7, 7), borderType=cv2.BORDER_REFLECT),
                          dtype=np.float32)
    raw *= np.float32(TEXTURE_GAIN)
    flat = raw <= FLOOR
    amp: F32 = np.clip(raw, FLOOR, CEILING, out=raw)
    rms = float(np.sqrt(np.mean(amp * amp)))
    target = TARGET_RMS * strength
    if rms > target:
        amp *= np.float32(target / rms)
    elif strength != 1.0:
        amp *= np.float32(strength)
    return amp, flat


def effective_strength(luma: F32, amp: F32, flat: npt.NDArray[np.bool_]) -> float:
    """Achieved watermark energy relative to the nominal target (1.0 = full)."""
    # Near black or white half of every +-1 chip is clipped away.
    lo = np.minimum(amp, np.maximum(luma, 0.0))
    hi = np.minimum(amp, np.maximum(255.0 - luma, 0.0))
    energy = 0.5 * (lo * lo + hi * hi)
    # Marks in flat regions are the first thing lossy compression removes, so they
    # count half.
    energy[flat] *= 0.5
    return float(np.sqrt(np.mean(energy)) / TARGET_RMS)
