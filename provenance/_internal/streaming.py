"""Watermarking pictures too large to hold: libvips decodes, we mark, libvips encodes, in strips.

    >>> import numpy as np, os, tempfile
    >>> from PIL import Image
    >>> from provenance._internal.files import open_input
    >>> from provenance._internal.streaming import open_streamable, write_marked
    >>> folder = tempfile.mkdtemp()
    >>> path = os.path.join(folder, "in.png")
    >>> Image.fromarray(np.full((64, 96, 3), 100, np.uint8)).save(path)
    >>> class Brighter:  # anything with ``mark(rows, mode, top)`` and ``rows(width)``
    ...     def rows(self, width): return 16
    ...     def mark(self, rows, mode, top): return rows + 1
    >>> with open_input(path) as source, open(os.path.join(folder, "out.png"), "wb") as out:
    ...     picture = open_streamable(source, "in.png")
    ...     write_marked(picture, Brighter(), "PNG", {}, out.fileno(), "in.png")
    >>> np.asarray(Image.open(os.path.join(folder, "out.png")))[0, 0].tolist()
    [101, 101, 101]

A 200-megapixel RGB picture is 600 MB decoded. Instead of decoding it whole
(Pillow), the source is read by libvips top to bottom (``access="sequential"``),
fetched in strips of rows, each strip marked by the watermark (which is local:
a strip needs only its own rows of the upscaled residual), and the marked
strips are streamed to a libvips encoder as an uncompressed PNG stream (the
one lossless format every libvips build reads from a stream). Only a few
strips are ever in memory; the encoded output goes to a file descriptor.

What streams: 8-bit grey, grey+alpha, RGB and RGBA in JPEG, PNG and TIFF.
Everything else (16-bit and CMYK pictures, palettes libvips expands
differently, WebP, whose libwebp encoder and decoder hold the whole picture,
animations) goes through the whole-picture path.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import os
import struct
import zlib
from collections.abc import Iterator
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from provenance._internal.files import InputFile
from provenance._internal.interrupts import InterruptState, deferred_interrupts
from provenance.errors import CorruptInputError, ImageTooLargeError, OutputError, UnsupportedFormatError

STREAMED_FORMATS = ("JPEG", "PNG", "TIFF")
"""Formats read and written strip by strip (WebP's codec holds whole pictures)."""

_STRIP_PIXELS = 1_000_000
_MODES = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}
_PNG_COLOUR = {1: 0, 2: 4, 3: 2, 4: 6}
_LOADERS = {"JPEG": "jpegload_source", "PNG": "pngload_source", "TIFF": "tiffload_source"}


class Marker(Protocol):
    def rows(self, width: int) -> int: ...

    def mark(self, rows: npt.NDArray[np.uint8], mode: str, y0: int) -> npt.NDArray[np.uint8]: ...


class Streamable:
    """A libvips picture and what it reads from (kept alive while libvips may read)."""

    def __init__(self, image: Any, keep: tuple[Any, ...]) -> None:
        self.image = image
        self._keep = keep


def _pyvips() -> Any:
    from provenance._internal.images import _pyvips as load

    return load()


def open_streamable(source: InputFile, name: str) -> Streamable | None:
    """The libvips picture of ``source`` opened for one top-to-bottom read, or None
    when it cannot be streamed (see the module docstring). Only the header is read."""
    pyvips = _pyvips()
    if pyvips is None:
        return None
    _bound_heap()
    stream = source.stream()
    custom = pyvips.SourceCustom()
    # A Python source, not the descriptor: libvips maps a file it is given
    # whole into memory for some loaders (a 100 MB JPEG adds 100 MB resident).
    custom.on_read(stream.read)
    custom.on_seek(lambda offset, whence: stream.seek(offset, whence))
    try:
        picture = pyvips.Image.new_from_source(custom, "", access="sequential", fail_on="error")
    except pyvips.Error:
        return None  # not something libvips reads: the whole-picture path reports why
    loader = str(picture.get("vips-loader")) if picture.get_typeof("vips-loader") else ""
    if loader not in _LOADERS.values():
        return None
    if picture.format != "uchar" or picture.bands not in _MODES:
        return None
    if picture.get_typeof("n-pages") and int(picture.get("n-pages")) > 1:
        return None
    if picture.interpretation not in ("srgb", "b-w", "multiband"):
        return None  # CMYK, Lab, ...: the whole-picture path converts them
    return Streamable(picture, (custom, stream))


def _png_chunk(kind: bytes, data: bytes | memoryview) -> bytes:
    crc = zlib.crc32(data, zlib.crc32(kind))
    return struct.pack(">I", len(data)) + kind + bytes(data) + struct.pack(">I", crc)


def _marked_png(
    picture: Streamable, marker: Marker, failure: list[BaseException], interrupts: InterruptState
) -> Iterator[bytes]:
    """The marked picture as an uncompressed PNG byte stream, strip by strip."""
    pyvips = _pyvips()
    image = picture.image
    width, height, bands = image.width, image.height, image.bands
    mode = _MODES[bands]
    header = struct.pack(">IIBBBBB", width, height, 8, _PNG_COLOUR[bands], 0, 0, 0)
    yield b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header)
    region = pyvips.Region.new(image)
    packer = zlib.compressobj(0)  # stored blocks: a copy, no compression work
    # Strips of about a million pixels: each is copied a few times on its way
    # (fetch, mark, filter bytes, deflate blocks, PNG chunk), 3 bytes a pixel each.
    step = max(8, min(marker.rows(width), _STRIP_PIXELS // max(1, width)))
    try:
        for top in range(0, height, step):
            interrupts.check()  # Ctrl-C: stop feeding the encoder, which then fails
            count = min(step, height - top)
            rows = np.frombuffer(region.fetch(0, top, width, count), np.uint8)
            shaped = rows.reshape(count, width, bands) if bands > 1 else rows.reshape(count, width)
            marked = marker.mark(shaped, mode, top)
            filtered = np.zeros((count, width * bands + 1), np.uint8)  # filter byte 0 per row
            filtered[:, 1:] = marked.reshape(count, -1)
            packed = packer.compress(filtered.tobytes())
            if packed:
                yield _png_chunk(b"IDAT", packed)
    except BaseException as exc:
        failure.append(exc)
        return
    yield _png_chunk(b"IDAT", packer.flush()) + _png_chunk(b"IEND", b"")


def save_options(fmt: str, options: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """libvips saver suffix and settings equivalent to the Pillow ``options`` of
    ``preserving_save_options`` (or an explicit ``quality``)."""
    if fmt == "JPEG":
        quality = options.get("quality") or jpeg_quality(options.get("qtables"))
        sampling = options.get("subsampling", 2)
        # libvips has no 4:2:2; keep every chroma sample rather than lose half of them.
        subsample = "on" if sampling in (2, "4:2:0") else "off"
        return ".jpg", {"Q": int(quality), "subsample_mode": subsample}
    if fmt == "PNG":
        # Pillow's default level, and its adaptive row filters: libvips filters no
        # rows by default, which leaves a grainy photograph twice as large (and
        # signing takes memory in proportion to the file).
        return ".png", {"compression": 6, "filter": "all"}
    if fmt == "TIFF":
        compression = {
            "tiff_deflate": "deflate",
            "tiff_adobe_deflate": "deflate",
            "tiff_lzw": "lzw",
            "packbits": "packbits",
            "jpeg": "jpeg",
            "raw": "none",
        }.get(str(options.get("compression") or "tiff_deflate"), "deflate")
        return ".tif", {"compression": compression}
    raise UnsupportedFormatError(f"cannot stream-encode {fmt}")


_QUALITY_TABLES: dict[int, list[int]] = {}


def jpeg_quality(qtables: Any) -> int:
    """The libjpeg quality whose luminance table is nearest ``qtables`` (92 if none).

    libvips takes a quality, not tables; for a JPEG made by libjpeg (most are)
    the nearest quality gives the very same tables, so the picture is not
    compressed harder than it was.
    """
    if not qtables:
        return 92
    wanted = list(qtables[0])
    if not _QUALITY_TABLES:
        import io

        from PIL import Image

        tiny = Image.new("L", (8, 8))
        for quality in range(1, 101):
            out = io.BytesIO()
            tiny.save(out, "JPEG", quality=quality)
            out.seek(0)
            with Image.open(out) as probe:
                _QUALITY_TABLES[quality] = list(probe.quantization[0])
    def distance(quality: int) -> int:
        return sum(abs(a - b) for a, b in zip(_QUALITY_TABLES[quality], wanted, strict=False))

    return min(_QUALITY_TABLES, key=distance)


def write_marked(
    picture: Streamable, marker: Marker, fmt: str, options: dict[str, Any], fd: int, name: str
) -> None:
    """Encode ``picture`` (from :func:`open_streamable`) marked by ``marker`` as
    ``fmt`` into the file descriptor ``fd``, keeping its ICC profile and EXIF."""
    # libvips calls back into Python (reading the source, taking strips, writing the
    # output): a Ctrl-C raised inside a callback is printed and lost, and the encoder
    # carries on. So SIGINT only sets a flag here, the strips stop at it, and
    # KeyboardInterrupt is raised once libvips has returned.
    with deferred_interrupts() as interrupts:
        _write_marked(picture, marker, fmt, options, fd, name, interrupts)


def _write_marked(
    picture: Streamable,
    marker: Marker,
    fmt: str,
    options: dict[str, Any],
    fd: int,
    name: str,
    interrupts: InterruptState,
) -> None:
    pyvips = _pyvips()
    suffix, settings = save_options(fmt, options)
    failure: list[BaseException] = []
    chunks = _marked_png(picture, marker, failure, interrupts)
    pending = bytearray()

    def read(size: int) -> bytes:
        while not pending:
            chunk = next(chunks, None)
            if chunk is None:
                return b""
            pending.extend(chunk)
        out = bytes(pending[:size])
        del pending[:size]
        return out

    source = pyvips.SourceCustom()
    source.on_read(read)
    try:
        marked = pyvips.Image.pngload_source(source, access="sequential", fail_on="error")
        image = picture.image
        marked = marked.copy(interpretation=image.interpretation, xres=image.xres, yres=image.yres)
        for field in ("icc-profile-data", "exif-data"):
            if image.get_typeof(field):
                marked.set_type(image.get_typeof(field), field, image.get(field))
        marked.write_to_target(_descriptor_target(pyvips, fd, failure), suffix, **settings)
    except pyvips.Error as exc:
        if failure and isinstance(failure[0], OSError):
            # The output side failed (disk full): not the input's fault.
            why = "no space left on device" if failure[0].errno == errno.ENOSPC else failure[0].strerror
            raise OutputError(f"{name}: cannot write the stamped copy ({why or failure[0]})") from None
        if failure and isinstance(failure[0], MemoryError):
            raise ImageTooLargeError(f"{name}: not enough memory to encode this image") from None
        if failure and not isinstance(failure[0], pyvips.Error):
            raise failure[0] from None
        # The source failing mid-way (truncated) or the encoder refusing.
        detail = str(failure[0] if failure else exc).strip().splitlines()
        why = detail[-1].strip() if detail else "libvips error"
        raise CorruptInputError(f"{name}: image data is truncated or corrupt ({why[:300]})") from None
    except MemoryError:
        raise ImageTooLargeError(f"{name}: not enough memory to encode this image") from None
    if failure:
        raise failure[0]


def _descriptor_target(pyvips: Any, fd: int, failure: list[BaseException]) -> Any:
    """A libvips target writing to ``fd`` that keeps the OS error of a failed write in
    ``failure``: libvips's own descriptor target reports a full disk only as
    "Unknown error -1", which would read as a corrupt input."""

    def write(chunk: bytes) -> int:
        try:
            view = memoryview(chunk)
            while view:
                view = view[os.write(fd, view) :]
        except OSError as exc:
            failure.insert(0, exc)
            return -1
        return len(chunk)

    def read(size: int) -> bytes:
        return os.read(fd, size)

    def seek(offset: int, whence: int) -> int:
        return os.lseek(fd, offset, whence)

    target = pyvips.TargetCustom()
    target.on_write(write)
    target.on_read(read)  # the TIFF writer reads back and seeks in what it wrote
    target.on_seek(seek)
    return target


def release_heap() -> None:
    """Hand memory freed by libvips and the strips back to the system (glibc keeps
    freed heap pages otherwise), before the next big step (signing) allocates its own."""
    libc_name = ctypes.util.find_library("c")
    trim = getattr(ctypes.CDLL(libc_name), "malloc_trim", None) if libc_name else None
    if trim is not None:
        with contextlib.suppress(Exception):
            trim(0)


_HEAP_BOUNDED: list[bool] = []


def _bound_heap() -> None:
    """Keep glibc from holding on to freed strip buffers (once per process).

    glibc raises its mmap threshold to the size of each large block freed, so
    after the first strips every strip buffer (a few MB) comes from the heap,
    and freed ones are kept rather than returned: 100-150 MB more resident for
    nothing. A fixed threshold (which also stops the adjusting) keeps big
    buffers in mappings of their own, returned to the system when freed.
    """
    if _HEAP_BOUNDED:
        return
    _HEAP_BOUNDED.append(True)
    libc_name = ctypes.util.find_library("c")
    mallopt = getattr(ctypes.CDLL(libc_name), "mallopt", None) if libc_name else None
    if mallopt is not None:
        with contextlib.suppress(Exception):
            mallopt(-3, 1 << 20)  # M_MMAP_THRESHOLD: 1 MB
