"""Pillow with guard rails: pixel limits, clear errors, cheap thumbnails."""

from __future__ import annotations

import io
import os
import warnings
from typing import Any

from PIL import Image, ImageOps, JpegImagePlugin, UnidentifiedImageError

from provenance.errors import CorruptInputError, ImageTooLargeError, UnsupportedFormatError

try:  # HEIC/HEIF decoding for thumbnails and watermark detection
    from pillow_heif import register_heif_opener
except ImportError:  # pragma: no cover - an optional plugin; signing still works without thumbnails
    pass
else:
    register_heif_opener()


def _max_pixels() -> int:
    raw = os.environ.get("PROVENANCE_MAX_PIXELS", "")
    try:
        value = int(raw) if raw else 200_000_000
    except ValueError:
        value = 200_000_000  # a bad setting must not break every command; the default is safe
    return max(1, value)


MAX_PIXELS = _max_pixels()
"""Largest image decoded (width x height; $PROVENANCE_MAX_PIXELS): larger files are refused
as likely decompression bombs. Pillow's own limit is aligned with it."""
Image.MAX_IMAGE_PIXELS = MAX_PIXELS

THUMBNAIL_EDGE = 512
"""Default long edge of claim thumbnails, in pixels."""

_SAVE_FORMATS = {
    "JPEG": "image/jpeg",
    "PNG": "image/png",
    "WEBP": "image/webp",
    "TIFF": "image/tiff",
    "GIF": "image/gif",
    "AVIF": "image/avif",
}


def open_image(data: bytes, name: str) -> Image.Image:
    """Open (lazily) an encoded image, refusing decompression bombs up front."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageTooLargeError(
            f"{name}: image is too large to process safely (limit {MAX_PIXELS:,} pixels; "
            "set PROVENANCE_MAX_PIXELS to raise it)"
        ) from None
    except UnidentifiedImageError:
        raise UnsupportedFormatError(f"{name}: not an image Pillow can decode") from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise CorruptInputError(f"{name}: cannot decode image ({exc})") from None
    width, height = image.size
    if width * height > MAX_PIXELS:
        raise ImageTooLargeError(
            f"{name}: {width}x{height} pixels exceeds the limit of {MAX_PIXELS:,} "
            "(set PROVENANCE_MAX_PIXELS to raise it)"
        )
    return image


def load_image(data: bytes, name: str) -> Image.Image:
    """Fully decode an image, so truncation is found now rather than later."""
    image = open_image(data, name)
    try:
        image.load()
    except (OSError, ValueError, SyntaxError) as exc:
        raise CorruptInputError(f"{name}: image data is truncated or corrupt ({exc})") from None
    return image


def thumbnail_jpeg(source: bytes | Image.Image, name: str, long_edge: int = THUMBNAIL_EDGE) -> bytes:
    """A small JPEG of the image for the claim thumbnail.

    For JPEG input, ``draft`` makes libjpeg decode at 1/2..1/8 scale directly,
    which is most of why this is ~10x cheaper than the C2PA library's own
    thumbnailer; it also proves the whole file decodes.
    """
    if isinstance(source, Image.Image):
        image = source
    else:
        image = open_image(source, name)
        # draft() keeps both sides at least as large as asked, so ask for the
        # thumbnail's own size, not a square.
        scale = long_edge / max(image.size)
        if scale < 1:
            image.draft("RGB", (max(1, int(image.width * scale)), max(1, int(image.height * scale))))
    try:
        small = ImageOps.exif_transpose(image) if not isinstance(source, Image.Image) else image
        small = small.copy() if small is source else small
        small.thumbnail((long_edge, long_edge), Image.Resampling.BILINEAR, reducing_gap=2.0)
        if small.mode not in ("RGB", "L"):
            small = _flatten(small)
        out = io.BytesIO()
        small.save(out, "JPEG", quality=75, optimize=False)
    except (OSError, ValueError, SyntaxError) as exc:
        raise CorruptInputError(f"{name}: image data is truncated or corrupt ({exc})") from None
    return out.getvalue()


def _flatten(image: Image.Image) -> Image.Image:
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    if image.mode.startswith("I") or image.mode == "F":
        return ImageOps.autocontrast(image.convert("I").point(lambda v: v / 256).convert("L"))
    return image.convert("RGB")


def canonical_format(name: str) -> str:
    """Pillow's name for a format given as an extension or a name (jpg -> JPEG)."""
    upper = name.upper().lstrip(".")
    return {"JPG": "JPEG", "TIF": "TIFF"}.get(upper, upper)


def encode_image(image: Image.Image, fmt: str, **options: Any) -> tuple[bytes, str]:
    """Encode a PIL image once, keeping EXIF and ICC where given in ``image.info``."""
    key = canonical_format(fmt)
    if key not in _SAVE_FORMATS:
        raise UnsupportedFormatError(
            f"cannot encode an in-memory image as {fmt!r} (use one of: {', '.join(_SAVE_FORMATS)})"
        )
    params = dict(options)
    for meta in ("exif", "icc_profile"):
        if meta in image.info and meta not in params:
            params[meta] = image.info[meta]
    if key == "JPEG":
        if "qtables" not in params:
            params.setdefault("quality", 92)
        if image.mode not in ("RGB", "L", "CMYK"):
            image = _flatten(image)
    out = io.BytesIO()
    try:
        image.save(out, key, **params)
    except (OSError, ValueError) as exc:
        raise UnsupportedFormatError(f"cannot encode image as {key}: {exc}") from None
    return out.getvalue(), _SAVE_FORMATS[key]


STAMPABLE_FORMATS = ("JPEG", "PNG", "WEBP", "TIFF")
"""Formats a watermarked image is written in; others lose the mark to palettes or heavy compression."""


def stamp_format(image: Image.Image, requested: str | None, name: str) -> str:
    fmt = canonical_format(requested or image.format or "PNG")
    if fmt not in STAMPABLE_FORMATS:
        raise UnsupportedFormatError(
            f"{name}: cannot stamp {fmt} (stamping writes {', '.join(STAMPABLE_FORMATS)})"
        )
    return fmt


def preserving_save_options(image: Image.Image, fmt: str) -> dict[str, Any]:
    """Encoder settings that keep the original's quality (no double compression loss)."""
    if fmt == "JPEG" and isinstance(image, JpegImagePlugin.JpegImageFile):
        options: dict[str, Any] = {"qtables": image.quantization}
        sampling = JpegImagePlugin.get_sampling(image)
        if sampling != -1:
            options["subsampling"] = sampling
        return options
    if fmt == "JPEG":
        return {"quality": 92}
    if fmt == "WEBP":
        return {"quality": 92}
    if fmt == "TIFF":
        return {"compression": image.info.get("compression", "tiff_deflate")}
    return {}
