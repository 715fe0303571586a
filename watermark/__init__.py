"""Invisible, keyed, robust image watermark carrying a 64-bit payload.

>>> import os, watermark
>>> from skimage import data
>>> from PIL import Image
>>> photo = Image.fromarray(data.astronaut())
>>> payload = bytes(range(8))
>>> marked = watermark.embed(photo, payload)
>>> found = watermark.detect(marked)
>>> found.detected, found.payload == payload, found.p_value < 1e-12
(True, True, True)
>>> watermark.detect(photo).detected
False

The mark lives in luminance, is spread over the whole image with a keyed pseudo-random
tile, hides in texture (perceptual mask), survives JPEG/WebP, resizing, cropping,
brightness/contrast changes, noise and blur, and is protected by BCH error correction
plus a keyed check so that the false-positive probability is known exactly
(``Detection.p_value``). ``DEFAULT_KEY`` is public, so anyone can detect marks made
with it; pass your own ``key`` to make detection private to holders of that key.

Modes: RGB, RGBA (alpha untouched), RGBX, L, LA, CMYK (luminance changed through
C, M and Y; K untouched), YCbCr, I;16 (and I;16B/L/N), I (treated as 16-bit data) and
F (treated as 0..1 if its maximum is at most 1, else 0..255) are marked in place and
returned in the same mode. Palette images (P, PA) are returned as RGB (RGBA if they
have transparency) because re-quantising to a palette would erase the mark; "1" is
returned as L; any other mode is returned as RGB.

See ``watermark/DESIGN.md`` for the algorithm and the benchmark.
"""

from __future__ import annotations

import base64
import binascii
import logging
import warnings

import numpy as np
from PIL import Image

from . import _core, _ecc, _image, _mask
from ._core import Detection
from ._image import StripMarker
from ._region import MarkRegion

_log = logging.getLogger(__name__)

__all__ = [
    "ALGORITHM",
    "ALGORITHMS",
    "ALGORITHM_V1",
    "DEFAULT_KEY",
    "MIN_SIZE",
    "PAYLOAD_SIZE",
    "WEAK_STRENGTH",
    "Detection",
    "ImageTooSmallError",
    "MarkRegion",
    "StripMarker",
    "WatermarkError",
    "WeakWatermarkWarning",
    "detect",
    "embed",
    "estimate_strength",
    "locate",
    "payload_from_soft_binding_value",
    "soft_binding_value",
    "strip_marker",
]

#: C2PA soft-binding algorithm name (``c2pa.soft-binding`` assertion ``alg``). The
#: trailing number is the bitstream version: any change to the tile, code or key
#: derivation that old detectors cannot read gets a new number.
#: ``embed`` writes version 2 (same tile layout as version 1, its own key derivation;
#: the detector's synchronisation reads both under any rotation, mirror or aspect
#: change, see DESIGN.md).
ALGORITHM = _core.ALGORITHM_NAMES[_core.EMBED_VERSION]

#: Version 1, which ``detect`` still reads (``Detection.algorithm`` says which).
ALGORITHM_V1 = _core.ALGORITHM_NAMES[1]

#: Every soft-binding algorithm name ``detect`` reads, newest first.
ALGORITHMS = (ALGORITHM, ALGORITHM_V1)

#: The public key: marks made with it can be detected by anyone.
DEFAULT_KEY = b"io.github.provenance-py.watermark public key v1"

#: Smallest supported short side, in pixels, for :func:`embed`.
MIN_SIZE = 256

#: Payload length in bytes.
PAYLOAD_SIZE = _ecc.PAYLOAD_BYTES

#: :func:`embed` warns when the achievable watermark energy is below this fraction of
#: the nominal one (flat, near-black or near-white images).
WEAK_STRENGTH = 0.4


class WatermarkError(Exception):
    """Base class for errors raised by :func:`embed`."""


class ImageTooSmallError(WatermarkError):
    """The image's short side is below :data:`MIN_SIZE`."""


class WeakWatermarkWarning(UserWarning):
    """The image is too flat, dark or bright to hold a robust watermark."""


def _check_key(key: bytes) -> bytes:
    if not isinstance(key, (bytes, bytearray)) or len(key) == 0:
        raise WatermarkError("key must be non-empty bytes")
    return bytes(key)


def estimate_strength(image: Image.Image, strength: float = 1.0) -> float:
    """How much watermark energy ``image`` can hold, relative to the nominal amount
    (1.0 for textured photographs; below :data:`WEAK_STRENGTH` a warning is issued
    on embedding because the mark may not survive compression)."""
    luma = _image.work_luma(_image.normalise_mode(image))
    amp, flat = _mask.amplitude(luma, strength)
    return _mask.effective_strength(luma, amp, flat)


def embed(image: Image.Image, payload: bytes, key: bytes = DEFAULT_KEY, *,
          strength: float = 1.0, in_place: bool = False) -> Image.Image:
    """Return a copy of ``image`` carrying the 8-byte ``payload`` under ``key``.

    The result has the same size, the same mode (see the module docstring for the
    exceptions) and a copy of ``image.info``; an alpha channel is left untouched.
    ``strength`` scales the mark (1.0 targets about 42.5 dB PSNR). With
    ``in_place``, an 8-bit image in a native mode is marked in place and returned
    itself (no second full-size image: for very large pictures); other images are
    still copied, so use the return value either way.

    Raises :class:`ImageTooSmallError` if the short side is below :data:`MIN_SIZE`
    and :class:`WatermarkError` for a bad payload, key or strength. Warns with
    :class:`WeakWatermarkWarning` if the image cannot hold a robust mark.
    """
    if not isinstance(payload, (bytes, bytearray)) or len(payload) != PAYLOAD_SIZE:
        raise WatermarkError(f"payload must be exactly {PAYLOAD_SIZE} bytes")
    key = _check_key(key)
    if not 0.0 < strength <= 4.0:
        raise WatermarkError("strength must be in (0, 4]")
    width, height = image.size
    if min(width, height) < MIN_SIZE:
        raise ImageTooSmallError(
            f"image is {width}x{height}; watermarking needs a short side of at least "
            f"{MIN_SIZE} px"
        )
    img = _image.normalise_mode(image)
    img.load()
    out, eff = _core.embed_normalised(img, bytes(payload), key, strength, in_place)
    if eff < WEAK_STRENGTH:
        warnings.warn(
            f"image is too flat or too dark/bright for a robust watermark "
            f"(strength {eff:.2f} of nominal)",
            WeakWatermarkWarning,
            stacklevel=2,
        )
    out.info = dict(image.info)
    if out.mode != image.mode:
        out.info.pop("transparency", None)
    return out


def strip_marker(preview: Image.Image, size: tuple[int, int], payload: bytes,
                 key: bytes = DEFAULT_KEY, *, strength: float = 1.0) -> StripMarker:
    """The mark :func:`embed` would add to an 8-bit picture of ``size`` pixels, for
    pictures too large to hold whole: planned from ``preview``, a reduced copy of
    it (short side at least 512 px, so the working resolution is not upscaled),
    and added strip by strip with ``marker.mark(rows, mode, top)``, where ``rows``
    is a uint8 array of full-size rows ``top..`` in mode L, LA, RGB or RGBA.

    The mark is local, so strips can be marked as a decoder produces them and
    handed to an encoder; the result differs from :func:`embed` on the whole
    picture only by the reduced copy's rounding (the detector cannot tell).
    Raises and warns like :func:`embed`.
    """
    if not isinstance(payload, (bytes, bytearray)) or len(payload) != PAYLOAD_SIZE:
        raise WatermarkError(f"payload must be exactly {PAYLOAD_SIZE} bytes")
    key = _check_key(key)
    if not 0.0 < strength <= 4.0:
        raise WatermarkError("strength must be in (0, 4]")
    width, height = size
    if min(width, height) < MIN_SIZE:
        raise ImageTooSmallError(
            f"image is {width}x{height}; watermarking needs a short side of at least "
            f"{MIN_SIZE} px"
        )
    work = _image.work_size(width, height)
    if min(preview.size) < min(work):
        raise WatermarkError(f"preview {preview.size} is smaller than the working size {work}")
    luma = _image.work_luma(_image.normalise_mode(preview), work)
    delta, eff = _core.residual(luma, bytes(payload), key, strength)
    if eff < WEAK_STRENGTH:
        warnings.warn(
            f"image is too flat or too dark/bright for a robust watermark "
            f"(strength {eff:.2f} of nominal)",
            WeakWatermarkWarning,
            stacklevel=2,
        )
    return StripMarker(delta, (width, height))


def detect(image: Image.Image, key: bytes = DEFAULT_KEY, *, locate: bool = False) -> Detection:
    """Look for a watermark made with ``key``. Never raises on a decodable image:
    anything unexpected is reported as "not detected".

    With ``locate``, a detection also says where the mark is (``Detection.region``:
    the marked picture inside a screenshot, without the borders or page around it);
    this costs about one more detection's time, and only when a mark was found."""
    try:
        # Hostile float images (inf, 1e30) must not spray RuntimeWarnings either.
        with np.errstate(all="ignore"):
            return _core.detect_image(image, _check_key(key), locate)
    except Exception:  # by contract detect never raises; the cause stays visible at debug level
        _log.debug("watermark detection failed; reporting not detected", exc_info=True)
        return _core.NOT_DETECTED


def locate(image: Image.Image, payload: bytes, tile: float, rotation_deg: float = 0.0,
           key: bytes = DEFAULT_KEY) -> MarkRegion | None:
    """Where ``image`` carries the mark of ``payload`` whose tile period is ``tile``
    input pixels at ``rotation_deg`` (as a :class:`MarkRegion`, None if nowhere): for
    a mark that was detected in a part of the image (``detect(part, locate=True)``
    gives the period as ``region.tile``), to find all of it. Never raises."""
    try:
        with np.errstate(all="ignore"):
            return _core.locate_known(image, bytes(payload), _check_key(key), tile, rotation_deg)
    except Exception:  # like detect: "not found", the cause at debug level
        _log.debug("watermark location failed", exc_info=True)
        return None


def soft_binding_value(payload: bytes) -> str:
    """The C2PA ``c2pa.soft-binding`` ``blocks[].value`` for ``payload`` (base64)."""
    if len(payload) != PAYLOAD_SIZE:
        raise WatermarkError(f"payload must be exactly {PAYLOAD_SIZE} bytes")
    return base64.b64encode(bytes(payload)).decode("ascii")


def payload_from_soft_binding_value(value: str) -> bytes:
    """Inverse of :func:`soft_binding_value`."""
    try:
        raw = base64.b64decode(value.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError) as exc:
        raise WatermarkError(f"not a base64 soft-binding value: {value!r}") from exc
    if len(raw) != PAYLOAD_SIZE:
        raise WatermarkError(f"soft-binding value decodes to {len(raw)} bytes, not {PAYLOAD_SIZE}")
    return raw
