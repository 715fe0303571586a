"""In-memory images as pipelines hand them over: PIL images or numpy arrays.

    >>> import numpy as np
    >>> as_pil_image(np.zeros((4, 6, 3), np.uint8)).size
    (6, 4)
    >>> as_pil_image(np.full((4, 6), 0.5)).getpixel((0, 0))
    128

What is accepted, and why nothing else is guessed:

- a ``PIL.Image.Image``, used as it is;
- a numpy array, channels last: ``(H, W)`` greyscale, ``(H, W, 1)``,
  ``(H, W, 3)`` RGB or ``(H, W, 4)`` RGBA;
- ``uint8`` values as they are; other integer types only when every value is
  within 0..255 (a lossless cast);
- floating point values in [0, 1] (what diffusers' ``output_type="np"``,
  torchvision's ``ToTensor`` and scikit-image's ``img_as_float`` produce),
  scaled by 255 and rounded. Anything outside [0, 1] (a float array holding
  0..255, or -1..1) is refused rather than clipped, because clipping would
  silently sign a picture other than the one generated.

Channels-first ``(C, H, W)`` and batched ``(N, H, W, C)`` arrays are refused
with the one-line fix in the message.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from PIL import Image

from provenance.errors import UsageError

__all__ = ["ACCEPTED", "as_pil_image"]

ACCEPTED = (
    "a PIL.Image.Image or a numpy array (H, W), (H, W, 1), (H, W, 3) or (H, W, 4) "
    "of uint8, or of floats in [0, 1]"
)
"""One phrase naming what in-memory image inputs are accepted, for error messages."""

_MODES = {1: "L", 3: "RGB", 4: "RGBA"}


def as_pil_image(image: object, what: str = "image") -> Image.Image:
    """``image`` as a PIL image; :class:`~provenance.errors.UsageError` if it is neither
    a PIL image nor an array described in the module docstring."""
    if isinstance(image, Image.Image):
        return image
    if isinstance(image, np.ndarray):
        return _from_array(image, what)
    hint = ""
    if isinstance(image, str | bytes) or hasattr(image, "__fspath__"):
        hint = " (for a file or encoded bytes, use sign_file or sign_bytes)"
    raise UsageError(f"{what} must be {ACCEPTED}; got {type(image).__name__}{hint}")


def _from_array(array: np.ndarray[Any, Any], what: str) -> Image.Image:
    shape = array.shape
    if array.size == 0:
        raise UsageError(f"{what}: the array is empty (shape {shape})")
    if array.ndim == 3 and shape[0] in (1, 3, 4) and shape[2] not in (1, 3, 4):
        raise UsageError(
            f"{what}: shape {shape} looks channels-first; pass array.transpose(1, 2, 0) (H, W, C)"
        )
    if array.ndim == 4 and shape[0] == 1:
        raise UsageError(f"{what}: shape {shape} is a batch of one; pass array[0]")
    if array.ndim == 3 and shape[2] in _MODES:
        channels = shape[2]
    elif array.ndim == 2:
        channels = 1
    else:
        raise UsageError(f"{what}: an array of shape {shape} is not an image; expected {ACCEPTED}")
    pixels = _to_uint8(array, what)
    if pixels.ndim == 3 and channels == 1:
        pixels = pixels[:, :, 0]
    return Image.fromarray(np.ascontiguousarray(pixels), _MODES[channels])


def _to_uint8(array: np.ndarray[Any, Any], what: str) -> np.ndarray[Any, Any]:
    kind = array.dtype.kind
    if array.dtype == np.uint8:
        return array
    if kind in "iu":
        low, high = int(array.min()), int(array.max())
        if low < 0 or high > 255:
            raise UsageError(
                f"{what}: {array.dtype} values span {low}..{high}; only 0..255 can be signed as 8-bit "
                "(scale the array, or give floats in [0, 1])"
            )
        return array.astype(np.uint8)
    if kind == "f":
        if not np.isfinite(array).all():
            raise UsageError(f"{what}: the float array holds NaN or infinite values")
        least, most = float(array.min()), float(array.max())
        if least < 0.0 or most > 1.0:
            raise UsageError(
                f"{what}: float values span {least:g}..{most:g}; floats must be in [0, 1] "
                "(divide 0..255 data by 255, or convert -1..1 data with (x + 1) / 2)"
            )
        return np.rint(array * 255.0).astype(np.uint8)
    raise UsageError(f"{what}: arrays of {array.dtype} are not images; expected {ACCEPTED}")
