"""Pillow plumbing: mode handling, working-resolution luminance, and adding the
luminance residual back at full resolution in strips (memory stays proportional to
the image)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from PIL import Image

F32 = npt.NDArray[np.float32]

# Everything expensive happens with the short side at most this long; bigger images
# are box-reduced first and only the residual is upscaled again.
WORK_SHORT = 512
_STRIP_ROWS = 512
# Strips of very wide images get fewer rows, so a strip's temporaries (int16 pixels,
# float residual, dither: ~17 bytes a pixel) stay around 30 MB. Row positions and the
# dither are absolute, so the strip height changes the result only by float rounding
# (a grey level at a rare pixel); images up to 3,900 px wide keep 512-row strips.
_STRIP_PIXELS = 2_000_000


def _strip_rows(width: int) -> int:
    return max(16, min(_STRIP_ROWS, _STRIP_PIXELS // max(1, width)))

_SIXTEEN_BIT = {"I;16", "I;16L", "I;16B", "I;16N"}
_NATIVE = {"RGB", "RGBA", "RGBX", "L", "LA", "CMYK", "YCbCr", "I", "F"} | _SIXTEEN_BIT


def work_size(width: int, height: int) -> tuple[int, int]:
    short = min(width, height)
    if short <= WORK_SHORT:
        return width, height
    s = WORK_SHORT / short
    return max(1, round(width * s)), max(1, round(height * s))


def _float_range(img: Image.Image) -> float:
    """Scale from the image's sample values to the 0..255 scale used internally."""
    if img.mode in _SIXTEEN_BIT or img.mode == "I":
        return 257.0
    if img.mode == "F":
        extrema = img.getextrema()
        hi = extrema[1] if isinstance(extrema[1], (int, float)) else 255.0
        return 1.0 / 255.0 if float(hi) <= 1.0 else 1.0
    return 1.0


def _luma_image(img: Image.Image) -> Image.Image:
    """An 8-bit-scale luminance image, mode "L" or "F"."""
    mode = img.mode
    if mode in _SIXTEEN_BIT or mode in ("I", "F"):
        scale = _float_range(img)
        arr = np.asarray(img, dtype=np.float32) / np.float32(scale)
        return Image.fromarray(arr)
    if mode == "YCbCr":
        return img.getchannel(0)
    if mode in ("L", "LA", "La"):
        return img.getchannel(0) if mode != "L" else img
    try:
        return img.convert("L")
    except (ValueError, OSError):
        return img.convert("RGB").convert("L")


# Above this many pixels, 8-bit images are box-reduced before anything else, so no
# full-size luminance (200 MB for 200 megapixels) or float copy is made.
_REDUCE_FIRST_ABOVE = 24_000_000
_EIGHT_BIT = {"RGB", "RGBA", "RGBX", "L", "LA", "CMYK", "YCbCr"}


def _reduced_first(img: Image.Image, size: tuple[int, int], gap: float) -> Image.Image:
    """``img`` box-reduced by the factor Pillow's ``resize(size, reducing_gap=gap)`` itself
    reduces by first, for large 8-bit images; the luminance conversion then runs on the
    small image (the same values up to rounding: both steps are averages)."""
    width, height = img.size
    if width * height <= _REDUCE_FIRST_ABOVE or img.mode not in _EIGHT_BIT:
        return img
    fx, fy = max(1, int(width / size[0] / gap)), max(1, int(height / size[1] / gap))
    return img.reduce((fx, fy)) if fx > 1 or fy > 1 else img


def work_luma(img: Image.Image, size: tuple[int, int] | None = None) -> F32:
    """Luminance at working resolution, float32 on a 0..255 scale.

    ``size`` is that resolution when ``img`` is a reduced copy of a larger
    picture (``work_size`` of the full size; the default is ``img``'s own)."""
    size = size or work_size(*img.size)
    if size != img.size:
        img = _reduced_first(img, size, 3.0)
    lum = _luma_image(img)
    if size != img.size:
        lum = lum.resize(size, Image.Resampling.BILINEAR, reducing_gap=3.0)
    return np.asarray(lum, dtype=np.float32)


# The dither tile's side in full-resolution pixels (the detector's few-tile search
# skips its grid, see _sync.few_tile_candidates).
DITHER_PERIOD = 61


def _dither(rows: int, cols: int, y0: int) -> F32:
    # Ordered dither with a small random threshold tile: rounding sub-grey-level
    # residual in flat regions to the nearest integer would erase it, and a prime
    # period keeps the dither uncorrelated with the watermark tile.
    rng = np.random.default_rng(12345)
    tile = rng.random((DITHER_PERIOD, DITHER_PERIOD), dtype=np.float32)
    reps = (-(-(rows + DITHER_PERIOD) // DITHER_PERIOD), -(-cols // DITHER_PERIOD))
    big = np.tile(tile, reps)
    off = y0 % DITHER_PERIOD
    return big[off : off + rows, :cols]


def _residual_strip(delta_img: Image.Image | None, delta: F32, size: tuple[int, int],
                    y0: int, y1: int) -> F32:
    width, height = size
    if delta_img is None:
        return delta[y0:y1]
    ww, wh = delta_img.size
    sy = wh / height
    box = (0.0, y0 * sy, float(ww), y1 * sy)
    strip = delta_img.resize((width, y1 - y0), Image.Resampling.BILINEAR, box=box)
    return np.asarray(strip, dtype=np.float32)


def apply_residual(img: Image.Image, delta: F32, in_place: bool = False) -> Image.Image:
    """Return ``img`` (a mode from _NATIVE) with luminance raised by the work-res
    ``delta`` (grey levels on the 0..255 scale), upscaled to full size. With
    ``in_place``, 8-bit images are changed in place and returned (no second
    full-size image); other modes are always copied."""
    width, height = img.size
    delta_img = None
    if delta.shape != (height, width):
        delta_img = Image.fromarray(delta.astype(np.float32), mode="F")
    mode = img.mode
    if mode in _EIGHT_BIT:
        return _apply_residual_8bit(img, delta_img, delta, in_place)
    out = np.array(img)
    scale = _float_range(img)
    for y0 in range(0, height, _STRIP_ROWS):
        y1 = min(height, y0 + _STRIP_ROWS)
        d = _residual_strip(delta_img, delta, (width, height), y0, y1)
        # 8-bit modes went to _apply_residual_8bit above: only I, F and 16-bit remain.
        if mode == "F":
            out[y0:y1] = out[y0:y1] + d * np.float32(scale)
        else:
            hi = 65535.0
            seg64 = out[y0:y1].astype(np.float64) + np.rint(d * scale)
            out[y0:y1] = np.clip(seg64, 0.0, hi).astype(out.dtype)
    result = Image.fromarray(out)
    if result.mode != mode:
        result = result.convert(mode)
    return result


def _apply_residual_8bit(img: Image.Image, delta_img: Image.Image | None, delta: F32,
                         in_place: bool) -> Image.Image:
    """apply_residual for 8-bit modes, one strip at a time: besides the input and the
    result (the input itself with ``in_place``), only a strip is ever held (no
    full-size array, bytes or float copies)."""
    width, height = img.size
    mode = img.mode
    result = img if in_place else Image.new(mode, (width, height))
    rows = _strip_rows(width)
    for y0 in range(0, height, rows):
        y1 = min(height, y0 + rows)
        d = _residual_strip(delta_img, delta, (width, height), y0, y1)
        seg = mark_rows(np.asarray(img.crop((0, y0, width, y1))), mode, d, y0)
        # frombytes, not fromarray: fromarray would read 4 channels as RGBA, not CMYK.
        strip = Image.frombytes(mode, (width, y1 - y0), seg.tobytes())
        result.paste(strip, (0, y0))
    return result


def mark_rows(rows: npt.NDArray[np.uint8], mode: str, d: F32, y0: int) -> npt.NDArray[np.uint8]:
    """Rows ``y0..`` of an 8-bit image in ``mode`` (an array of shape (rows, width) or
    (rows, width, bands)) with the full-resolution residual ``d`` added to their
    luminance, dithered; a new array."""
    n, width = rows.shape[:2]
    di = np.floor(d + _dither(n, width, y0)).astype(np.int16)
    seg = rows.astype(np.int16)
    if mode == "CMYK":
        # Ink is the inverse of light: lift luminance by removing C, M and Y.
        seg[..., :3] -= di[..., None]
    elif seg.ndim == 3 and mode in ("RGB", "RGBA", "RGBX"):
        seg[..., :3] += di[..., None]
    elif seg.ndim == 3:  # LA, YCbCr: first channel is the luminance
        seg[..., 0] += di
    else:
        seg += di
    np.clip(seg, 0, 255, out=seg)
    return seg.astype(np.uint8)


class StripMarker:
    """Adds a work-resolution residual to a full-size picture strip by strip, for
    pictures never held whole: the same upscaling and dither as :func:`apply_residual`."""

    def __init__(self, delta: F32, size: tuple[int, int]) -> None:
        self.size = size
        self._delta = delta
        width, height = size
        self._delta_img = (
            None if delta.shape == (height, width) else Image.fromarray(delta.astype(np.float32), mode="F")
        )

    def rows(self, width: int) -> int:
        """A good strip height for this picture (strips may be any height)."""
        return _strip_rows(width)

    def mark(self, rows: npt.NDArray[np.uint8], mode: str, y0: int) -> npt.NDArray[np.uint8]:
        y1 = y0 + rows.shape[0]
        d = _residual_strip(self._delta_img, self._delta, self.size, y0, y1)
        return mark_rows(rows, mode, d, y0)


def normalise_mode(img: Image.Image) -> Image.Image:
    """Bring odd modes to one apply_residual understands (documented in __init__)."""
    mode = img.mode
    if mode in _NATIVE:
        return img
    if mode in ("P", "PA"):
        has_alpha = mode == "PA" or "transparency" in img.info
        return img.convert("RGBA" if has_alpha else "RGB")
    if mode == "1":
        return img.convert("L")
    if mode == "La":
        return img.convert("LA")
    if mode == "RGBa":
        return img.convert("RGBA")
    # LAB, HSV and the rest: LAB's "A" is a colour axis, not alpha.
    return img.convert("RGB")
