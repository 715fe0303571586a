"""Pillow with guard rails: pixel limits, clear errors, cheap thumbnails.

    >>> import io
    >>> from PIL import Image
    >>> from provenance._internal.images import load_image
    >>> out = io.BytesIO()
    >>> Image.effect_noise((64, 64), 40).save(out, "PNG")
    >>> load_image(out.getvalue(), "a.png").size
    (64, 64)
    >>> load_image(out.getvalue()[:-200], "cut.png")
    Traceback (most recent call last):
    ...
    provenance.errors.CorruptInputError: cut.png: image data is truncated or corrupt (...)

Decoders are third-party parsers of untrusted bytes: whatever they raise on
a malformed file (Pillow's ``OSError`` and ``SyntaxError``, pillow-heif's
``RuntimeError``, a plugin's ``struct.error`` or ``IndexError``) means the
input is corrupt, and is reported as such (exit 4), never as a crash.
"""

from __future__ import annotations

import os
import warnings
from io import BytesIO
from typing import Any

from PIL import Image, ImageOps, JpegImagePlugin, UnidentifiedImageError

from provenance._internal.files import InputFile, as_stream
from provenance._internal.interrupts import deferred_interrupts
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


def open_image(data: bytes | InputFile, name: str) -> Image.Image:
    """Open (lazily) an encoded image, refusing decompression bombs up front.

    An :class:`InputFile` is read through a file stream, never copied whole
    into memory.
    """
    try:
        # Held back until the header is read: a cut TIFF (its directory is written after
        # the pixels) warns "Corrupt EXIF data" twice before failing, which is one error.
        with warnings.catch_warnings(record=True) as held:
            warnings.simplefilter("always")
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(as_stream(data))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageTooLargeError(
            f"{name}: image is too large to process safely (limit {MAX_PIXELS:,} pixels; "
            "set PROVENANCE_MAX_PIXELS to raise it)"
        ) from None
    except UnidentifiedImageError:
        if data[:4] in (b"II*\x00", b"MM\x00*"):
            raise CorruptInputError(
                f"{name}: image data is truncated or corrupt (its TIFF directory cannot be read)"
            ) from None
        raise UnsupportedFormatError(f"{name}: not an image Pillow can decode") from None
    except MemoryError:
        raise ImageTooLargeError(f"{name}: not enough memory to decode this image") from None
    except Exception as exc:  # a decoder failing on untrusted bytes: see the module docstring
        raise CorruptInputError(f"{name}: cannot decode image ({_why(exc)})") from None
    for warning in held:
        warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
    width, height = image.size
    if width * height > MAX_PIXELS:
        raise ImageTooLargeError(
            f"{name}: {width}x{height} pixels exceeds the limit of {MAX_PIXELS:,} "
            "(set PROVENANCE_MAX_PIXELS to raise it)"
        )
    return image


def _why(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}"[:300] if not isinstance(exc, OSError | SyntaxError) else text[:300]


def _decode(image: Image.Image, name: str) -> None:
    try:
        image.load()
    except MemoryError:
        raise ImageTooLargeError(f"{name}: not enough memory to decode this image") from None
    except Exception as exc:  # see the module docstring
        raise CorruptInputError(f"{name}: image data is truncated or corrupt ({_why(exc)})") from None


def frame_count(image: Image.Image) -> int:
    """Frames (animation) or pages (multi-page TIFF) in ``image``; 1 for still images."""
    try:
        return max(1, int(getattr(image, "n_frames", 1)))
    except Exception:  # counting walks the file; a damaged one is reported when decoded
        return 1


def load_image(data: bytes | InputFile, name: str) -> Image.Image:
    """Fully decode an image (its first frame), so truncation is found now rather than later."""
    image = open_image(data, name)
    _decode(image, name)
    return image


ANALYSIS_SHORT_SIDE = 1024
"""Short side (pixels) down to which large images are decoded for analysis: twice the
watermark's working resolution (watermark/_image.py reduces to 512 anyway); the
likeness reference and PDQ hash work on far smaller pictures."""

REDUCE_ABOVE = 24_000_000
"""Images with more pixels than this are decoded reduced for analysis, so memory stays
bounded (a 200-megapixel RGB image is 600 MB decoded); smaller ones exactly as before."""

_STREAMED_FORMATS = ("PNG", "TIFF", "WEBP")
"""Formats decoded reduced through libvips, strip by strip (Pillow decodes them whole)."""


def load_for_analysis(data: bytes | InputFile, name: str) -> Image.Image:
    """The image for watermark detection and likeness or PDQ hashing, fully decoded
    (so truncation is found, as by :func:`load_image`).

    An image above :data:`REDUCE_ABOVE` pixels is decoded at a reduced size whose
    short side is at least :data:`ANALYSIS_SHORT_SIDE`: JPEG by libjpeg's DCT
    scaling (``draft``), PNG, TIFF and WebP by libvips in sequential strips
    (box-shrunk, 8 bits per sample), never holding the full-size pixels. The
    watermark detector reduces every image to 512 px anyway; detection on the
    reduced decode is the same within the mark's tolerance of resizing.
    """
    image = open_image(data, name)
    width, height = image.size
    factor = min(width, height) // ANALYSIS_SHORT_SIDE
    if width * height <= REDUCE_ABOVE or factor < 2 or frame_count(image) > 1:
        _decode(image, name)
        return image
    fmt = (image.format or "").upper()
    if fmt == "JPEG":
        # draft() picks the largest DCT scale (1/2..1/8) that keeps both sides at least this.
        image.draft(image.mode, (max(1, width // factor), max(1, height // factor)))
        _decode(image, name)
        return image
    if fmt in _STREAMED_FORMATS and _pyvips() is not None:
        del image
        return _shrunk_by_vips(data, name, factor)
    _decode(image, name)
    return image


def _pyvips() -> Any:
    try:
        import pyvips  # type: ignore[import-untyped]
    except (ImportError, OSError):  # no libvips on this platform: Pillow decodes in full
        return None
    # No operation cache: each file is decoded once, and a cached load would keep
    # its source's duplicated file descriptor (and the file) open for good.
    pyvips.cache_set_max(0)
    return pyvips


def _shrunk_by_vips(data: bytes | InputFile, name: str, factor: int) -> Image.Image:
    # libvips logs through a Python callback while it decodes: a Ctrl-C raised there is
    # printed and lost. SIGINT is deferred until libvips has returned instead.
    with deferred_interrupts():
        return _shrunk(data, name, factor)


def _shrunk(data: bytes | InputFile, name: str, factor: int) -> Image.Image:
    pyvips = _pyvips()
    try:
        if isinstance(data, InputFile):
            source = pyvips.Source.new_from_descriptor(data.fileno())
            full = pyvips.Image.new_from_source(source, "", access="sequential", fail_on="error")
        else:
            full = pyvips.Image.new_from_buffer(data, "", access="sequential", fail_on="error")
        small = full.shrink(factor, factor)
        if small.format != "uchar" or small.interpretation not in ("srgb", "b-w"):
            # 16-bit, CMYK, Lab: to 8-bit sRGB or grey, as the analysis reads luminance.
            grey = small.interpretation in ("b-w", "grey16") or small.bands in (1, 2)
            small = small.colourspace("b-w" if grey else "srgb").cast("uchar")
        pixels = small.numpy()
    except pyvips.Error as exc:
        detail = str(exc).strip().splitlines()
        why = detail[-1].strip() if detail else "libvips error"
        raise CorruptInputError(f"{name}: image data is truncated or corrupt ({why[:300]})") from None
    except MemoryError:
        raise ImageTooLargeError(f"{name}: not enough memory to decode this image") from None
    if pixels.ndim == 3 and pixels.shape[2] == 1:
        pixels = pixels[:, :, 0]
    return Image.fromarray(pixels)


def check_all_frames(data: bytes | InputFile, name: str) -> int:
    """Decode every frame of an animation or multi-page file; the number of frames.

    Decoders stop quietly at the first frame otherwise, so a file cut in its
    third frame would be signed as whole. A still image is not decoded here
    (the thumbnail already did).
    """
    image = open_image(data, name)
    count = frame_count(image)
    for index in range(count if count > 1 else 0):
        try:
            image.seek(index)
        except Exception as exc:  # see the module docstring
            raise CorruptInputError(
                f"{name}: frame {index + 1} of {count} is truncated or corrupt ({_why(exc)})"
            ) from None
        _decode(image, name)
    return count


def refuse_animation(image: Image.Image, name: str, what: str) -> None:
    """Refuse to ``what`` an image with several frames, which would keep only the first."""
    count = frame_count(image)
    if count > 1:
        kind = "pages" if (image.format or "").upper() == "TIFF" else "frames"
        raise UnsupportedFormatError(
            f"{name}: has {count} {kind}; cannot {what} it without losing all but the first "
            f"(only single-frame images are supported; `provenance sign` keeps every {kind[:-1]})"
        )


def thumbnail_jpeg(
    source: bytes | InputFile | Image.Image, name: str, long_edge: int = THUMBNAIL_EDGE
) -> bytes:
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
        if scale < 1 and (image.format or "").upper() == "JPEG":
            image.draft("RGB", (max(1, int(image.width * scale)), max(1, int(image.height * scale))))
        elif scale < 1 and image.width * image.height > REDUCE_ABOVE and frame_count(image) == 1:
            # A large PNG/TIFF/WebP: decoded reduced, in strips (see load_for_analysis),
            # turned as its EXIF orientation says (the reduced copy has no EXIF).
            turn = _TRANSPOSE.get(_orientation(image))
            image = load_for_analysis(source, name)
            if turn is not None:
                image = image.transpose(turn)
    try:
        if isinstance(source, Image.Image):
            # A resized copy, not a full copy: the caller's image is never changed,
            # and copying a 200 MP picture would be 800 MB more.
            fitted = _fitted(source.size, long_edge)
            small = source.resize(fitted, Image.Resampling.BILINEAR, reducing_gap=2.0)
        else:
            # In place: the image was opened here, and a copy of a 200 MP decode is 600 MB more.
            ImageOps.exif_transpose(image, in_place=True)
            small = image
            small.thumbnail((long_edge, long_edge), Image.Resampling.BILINEAR, reducing_gap=2.0)
        if small.mode not in ("RGB", "L"):
            small = _flatten(small)
        out = BytesIO()
        small.save(out, "JPEG", quality=75, optimize=False)
    except MemoryError:
        raise ImageTooLargeError(f"{name}: not enough memory to decode this image") from None
    except Exception as exc:  # see the module docstring
        raise CorruptInputError(f"{name}: image data is truncated or corrupt ({_why(exc)})") from None
    return out.getvalue()


_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
"""EXIF orientation -> the transposition that shows the picture upright (as ImageOps.exif_transpose)."""


def _orientation(image: Image.Image) -> int:
    try:
        if (image.format or "").upper() == "PNG":
            # PngImageFile.getexif() decodes the whole image when the EXIF chunk is
            # not among the chunks read so far; read it from what the header gave.
            exif = Image.Exif()
            exif.load(image.info.get("exif") or b"")
            return int(exif.get(0x0112, 1))
        return int(image.getexif().get(0x0112, 1))
    except Exception:  # unreadable EXIF: shown as stored
        return 1


def _fitted(size: tuple[int, int], long_edge: int) -> tuple[int, int]:
    """``size`` scaled to fit ``long_edge`` (never enlarged), as ``Image.thumbnail`` does."""
    width, height = size
    scale = min(1.0, long_edge / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


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
    if frame_count(image) > 1:
        if key not in _MULTI_FRAME:
            refuse_animation(image, "<image>", f"encode as {key}")
        # Every frame is kept: saving only the current one would drop the rest silently.
        params.setdefault("save_all", True)
    for meta in ("exif", "icc_profile"):
        if meta in image.info and meta not in params:
            params[meta] = image.info[meta]
    if key == "JPEG":
        if "qtables" not in params:
            params.setdefault("quality", 92)
        if image.mode not in ("RGB", "L", "CMYK"):
            image = _flatten(image)
    out = BytesIO()
    try:
        image.save(out, key, **params)
    except (OSError, ValueError) as exc:
        raise UnsupportedFormatError(f"cannot encode image as {key}: {exc}") from None
    return out.getvalue(), _SAVE_FORMATS[key]


_MULTI_FRAME = ("PNG", "WEBP", "TIFF", "GIF", "AVIF")

STAMPABLE_FORMATS = ("JPEG", "PNG", "WEBP", "TIFF")
"""Formats a watermarked image is written in; others lose the mark to palettes or heavy compression."""


def stamp_format(image: Image.Image, requested: str | None, name: str) -> str:
    """The format a watermarked image is written in; animations are refused (the mark is per frame)."""
    refuse_animation(image, name, "watermark")
    fmt = canonical_format(requested or image.format or "PNG")
    if fmt not in STAMPABLE_FORMATS:
        raise UnsupportedFormatError(
            f"{name}: cannot stamp {fmt} (stamping writes {', '.join(STAMPABLE_FORMATS)})"
        )
    return fmt


def stamp_mime(fmt: str) -> str:
    """The media type of a stamped image written as ``fmt`` (one of STAMPABLE_FORMATS)."""
    return _SAVE_FORMATS[canonical_format(fmt)]


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
