"""What a file really is, from its first bytes rather than its name."""

from __future__ import annotations

from dataclasses import dataclass

import defusedxml.ElementTree as SafeXML
from defusedxml import DefusedXmlException

from provenance._internal.files import ByteView
from provenance.errors import CorruptInputError, UnsupportedFormatError


@dataclass(frozen=True)
class MediaFormat:
    mime: str
    extension: str
    is_image: bool = False


JPEG = MediaFormat("image/jpeg", "jpg", True)
PNG = MediaFormat("image/png", "png", True)
GIF = MediaFormat("image/gif", "gif", True)
WEBP = MediaFormat("image/webp", "webp", True)
TIFF = MediaFormat("image/tiff", "tif", True)
AVIF = MediaFormat("image/avif", "avif", True)
HEIC = MediaFormat("image/heic", "heic", True)
HEIF = MediaFormat("image/heif", "heif", True)
JXL = MediaFormat("image/jxl", "jxl", True)
SVG = MediaFormat("image/svg+xml", "svg")
WAV = MediaFormat("audio/wav", "wav")
MP3 = MediaFormat("audio/mpeg", "mp3")
FLAC = MediaFormat("audio/flac", "flac")
M4A = MediaFormat("audio/mp4", "m4a")
OGG = MediaFormat("audio/ogg", "ogg")
"""Known (audio decoding, watermarks, verification against a sidecar) but not signable:
the C2PA library cannot embed a manifest in OGG."""
MP4 = MediaFormat("video/mp4", "mp4")
MOV = MediaFormat("video/quicktime", "mov")
AVI = MediaFormat("video/x-msvideo", "avi")
PDF = MediaFormat("application/pdf", "pdf")

SIGNABLE: tuple[MediaFormat, ...] = (
    JPEG,
    PNG,
    GIF,
    WEBP,
    TIFF,
    AVIF,
    HEIC,
    HEIF,
    JXL,
    SVG,
    WAV,
    MP3,
    FLAC,
    M4A,
    MP4,
    MOV,
    AVI,
    PDF,
)

_BY_MIME = {f.mime: f for f in SIGNABLE}
_FTYP_BRANDS = {
    b"avif": AVIF,
    b"avis": AVIF,
    b"heic": HEIC,
    b"heix": HEIC,
    b"heim": HEIC,
    b"heis": HEIC,
    b"hevc": HEIC,
    b"mif1": HEIF,
    b"msf1": HEIF,
    b"qt  ": MOV,
    b"M4A ": M4A,
    b"M4B ": M4A,
}


def supported_names() -> str:
    """The signable formats as a short human list, for error messages."""
    return ", ".join(sorted({f.extension.upper() for f in SIGNABLE}))


def sniff(data: ByteView) -> MediaFormat | None:
    """The format the bytes are in, or None when no supported signature matches."""
    head = data[:64]
    if head.startswith(b"\xff\xd8\xff"):
        return JPEG
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return PNG
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return GIF
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return WEBP
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return WAV
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return AVI
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return TIFF
    if head.startswith(b"%PDF-"):
        return PDF
    if head.startswith(b"fLaC"):
        return FLAC
    if head.startswith(b"OggS"):
        return OGG
    if head.startswith(b"\xff\x0a") or head.startswith(b"\x00\x00\x00\x0cJXL "):
        return JXL
    if head[4:8] == b"ftyp":
        return _sniff_ftyp(data)
    if head.startswith(b"ID3") and len(head) >= 10:
        # An ID3 tag may front other audio too: the C2PA library stores a FLAC's
        # manifest in one. What follows the tag decides.
        size = 10 + ((head[6] << 21) | (head[7] << 14) | (head[8] << 7) | head[9])
        if data[size : size + 4] == b"fLaC":
            return FLAC
        return MP3
    if head.startswith(b"ID3") or (len(head) > 1 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0):
        return MP3
    text = data[:1024].lstrip().lower()
    if text.startswith((b"<?xml", b"<svg", b"<!doctype svg", b"<!--")) and b"<svg" in data[:4096].lower():
        return SVG
    return None


def _sniff_ftyp(data: ByteView) -> MediaFormat:
    size = int.from_bytes(data[0:4], "big")
    head = data[:256]
    brands = [head[8:12]]
    end = min(max(size, 16), len(head))
    brands += [head[i : i + 4] for i in range(16, end - 3, 4)]
    for brand in brands:
        if brand in _FTYP_BRANDS:
            return _FTYP_BRANDS[brand]
    return MP4


def require_signable(data: ByteView, name: str) -> MediaFormat:
    """The format of ``data``, or an error naming what is supported."""
    fmt = sniff(data)
    if fmt is OGG:
        raise UnsupportedFormatError(
            f"{name}: OGG cannot carry embedded Content Credentials (the C2PA library cannot write "
            "them into it); `provenance stamp` keeps them beside it as NAME.c2pa"
        )
    if fmt is None:
        raise UnsupportedFormatError(f"{name}: not a supported media format (supported: {supported_names()})")
    return fmt


def by_mime(mime: str) -> MediaFormat | None:
    return _BY_MIME.get(mime)


_ALIASES = {"jpeg": "jpg", "tiff": "tif", "mpeg": "mp3", "qt": "mov", "hif": "heif"}


def by_extension(ext: str) -> MediaFormat | None:
    """The format a file extension (without the dot) claims, if it is one we know."""
    ext = ext.lower().lstrip(".")
    ext = _ALIASES.get(ext, ext)
    return next((f for f in SIGNABLE if f.extension == ext), None)


_BMFF = {MP4, MOV, M4A, AVIF, HEIC, HEIF}


MAX_SVG_BYTES = 64 * 1024 * 1024
"""SVG is parsed whole to check it; larger SVG files are refused."""


def check_complete(data: ByteView, fmt: MediaFormat, name: str) -> None:
    """Refuse files whose own structure says bytes are missing.

    The C2PA library hashes whatever bytes it is given, so a truncated video
    or audio file would otherwise be signed as if it were whole. Images are
    checked by decoding them (every frame of an animation); these checks cover
    the containers that are not, and the block structure of GIF, whose decoder
    stops quietly at a cut. Only structure is checked: the compressed audio and
    video inside MP4/MOV/M4A/MP3 is not decoded.
    """
    problem = None
    if fmt in _BMFF:
        problem = _bmff_problem(data)
    elif fmt is PDF and b"%%EOF" not in data[-2048:]:
        problem = "no end-of-file marker"
    elif fmt is MP3:
        problem = _mp3_problem(data)
    elif fmt is GIF:
        problem = _gif_problem(data)
    elif fmt is OGG:
        problem = _ogg_problem(data)
    elif fmt is FLAC:
        problem = _flac_problem(data)
    elif fmt is SVG:
        problem = _svg_problem(data)
    if problem:
        raise CorruptInputError(f"{name}: file is truncated or corrupt ({problem})")


def _flac_problem(data: ByteView) -> str | None:
    """Read the last samples the FLAC header announces: a cut file has none there (its
    first minutes decode, and the C2PA library would hash it as whole). A seek, not a decode:
    libsndfile finds the frame by its header."""
    import soundfile

    from provenance._internal.files import InputFile, as_stream
    from provenance._internal.interrupts import CallbackFile

    if not isinstance(data, bytes | InputFile):
        return None
    errors = (soundfile.LibsndfileError, RuntimeError, ValueError, EOFError, OSError)
    source = CallbackFile(as_stream(data))
    try:
        with source.raising():
            handle = soundfile.SoundFile(source)
    except errors:
        return None  # not readable at all: the decoder says why
    with handle:
        total = handle.frames
        tail = min(total, 4096)
        if tail <= 0:
            return None  # no length announced (written as a stream)
        try:
            with source.raising():
                handle.seek(total - tail)
                got = len(handle.read(tail, dtype="float32"))
        except errors:
            got = 0
        if got < tail:
            return f"the audio stops before the {total:,} samples its header announces"
    return None


def _ogg_problem(data: ByteView) -> str | None:
    """Walk the Ogg pages: a cut file ends inside its last one (FFmpeg decodes up to the cut
    without a word). Each page: "OggS", a 27-byte header whose last byte counts the lacing
    values that follow, and as many bytes as the lacing values add up to."""
    end = len(data)
    pos = 0
    while pos < end:
        header = data[pos : pos + 27]
        if header[:4] != b"OggS":
            return f"no Ogg page at byte {pos:,}"
        if len(header) < 27:
            return "the last Ogg page is cut short"
        lacing = data[pos + 27 : pos + 27 + header[26]]
        size = 27 + header[26] + sum(lacing)
        if len(lacing) < header[26] or pos + size > end:
            return f"the last Ogg page needs {size:,} bytes, {end - pos:,} remain"
        pos += size
    return None


def _gif_problem(data: ByteView) -> str | None:
    """Walk GIF blocks to the trailer (0x3B): a cut file never reaches it."""
    end = len(data)
    if end < 13:
        return "the header is cut short"
    flags = data[10:11][0]
    pos = 13 + (3 * 2 ** ((flags & 7) + 1) if flags & 0x80 else 0)
    frames = 0
    while True:
        if pos >= end:
            return f"the data stops after {frames} frame(s), before the GIF trailer"
        block = data[pos : pos + 1][0]
        if block == 0x3B:
            return None if frames else "no image in the file"
        if block == 0x21:  # extension: label, then data sub-blocks
            pos = _gif_sub_blocks(data, pos + 2)
        elif block == 0x2C:  # image: descriptor, local colour table, LZW code size, sub-blocks
            if pos + 10 > end:
                return f"frame {frames + 1} is cut short"
            local = data[pos + 9 : pos + 10][0]
            pos += 10 + (3 * 2 ** ((local & 7) + 1) if local & 0x80 else 0)
            pos = _gif_sub_blocks(data, pos + 1)
            frames += 1
        else:
            return f"unexpected block 0x{block:02x} at byte {pos}"
        if pos < 0:
            where = f"inside frame {frames + 1}" if block == 0x2C else "inside an extension block"
            return f"the data stops {where}"


def _gif_sub_blocks(data: ByteView, pos: int) -> int:
    """Position after a chain of sub-blocks ending with a zero length; -1 when cut short."""
    end = len(data)
    while pos < end:
        # Sub-blocks are at most 256 bytes: read ahead in chunks, not one pread each.
        chunk = data[pos : pos + 65536]
        offset = 0
        while offset < len(chunk):
            length = chunk[offset]
            if length == 0:
                return pos + offset + 1
            offset += length + 1
        pos += offset
    return -1


def _svg_problem(data: ByteView) -> str | None:
    if len(data) > MAX_SVG_BYTES:
        return f"SVG larger than {MAX_SVG_BYTES // 2**20} MiB"
    try:
        # defusedxml: no entity expansion, no external entities or DTD fetches.
        root = SafeXML.fromstring(data[:])
    except DefusedXmlException as exc:
        return f"SVG uses XML features refused for safety: {type(exc).__name__}"
    except SafeXML.ParseError as exc:
        return f"not well-formed XML: {exc}"
    if str(root.tag).rpartition("}")[2] != "svg":
        return "the XML document is not an SVG image"
    return None


def is_fragmented(data: ByteView, fmt: MediaFormat) -> bool:
    """Whether ``data`` is a fragmented MP4/MOV/M4A (its media in ``moof`` fragments, as
    browser recorders and streaming packagers write them)."""
    if fmt not in _BMFF:
        return False
    pos, end = 0, len(data)
    while pos + 8 <= end:
        size = int.from_bytes(data[pos : pos + 4], "big")
        if data[pos + 4 : pos + 8] == b"moof":
            return True
        if size == 1 and pos + 16 <= end:
            size = int.from_bytes(data[pos + 8 : pos + 16], "big")
        if size < 8:
            return False  # runs to the end (0) or is broken: check_complete says which
        pos += size
    return False


def _bmff_problem(data: ByteView) -> str | None:
    pos, end = 0, len(data)
    while pos < end:
        if end - pos < 8:
            return f"{end - pos} stray bytes after the last box"
        size = int.from_bytes(data[pos : pos + 4], "big")
        kind = data[pos + 4 : pos + 8].decode("latin-1")
        if size == 1:
            if end - pos < 16:
                return f"box '{kind}' is cut short"
            size = int.from_bytes(data[pos + 8 : pos + 16], "big")
        elif size == 0:
            return None  # the last box runs to the end of the file by definition
        if size < 8:
            return f"box '{kind}' has an impossible size {size}"
        if pos + size > end:
            return f"box '{kind}' needs {size:,} bytes, {end - pos:,} remain"
        pos += size
    return None


_MP3_BITRATES = {  # kbit/s for MPEG-1 Layer III and MPEG-2/2.5 Layer III, by index
    1: [0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 0],
    2: [0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160, 0],
}
_MP3_RATES = {3: [44100, 48000, 32000], 2: [22050, 24000, 16000], 0: [11025, 12000, 8000]}


def _mp3_problem(data: ByteView) -> str | None:
    pos = 0
    if data[:3] == b"ID3" and len(data) >= 10:
        tag = data[6:10]
        pos = 10 + ((tag[0] << 21) | (tag[1] << 14) | (tag[2] << 7) | tag[3])
    end = len(data)
    if data[-128:-125] == b"TAG":
        end -= 128
    frames = 0
    while pos + 4 <= end:
        header = int.from_bytes(data[pos : pos + 4], "big")
        if header >> 21 != 0x7FF:
            break  # not a frame: trailing tags or junk, which decoders skip
        version = (header >> 19) & 3
        layer = (header >> 17) & 3
        bitrate_index = (header >> 12) & 15
        rate_index = (header >> 10) & 3
        if version == 1 or layer != 1 or rate_index == 3 or bitrate_index in (0, 15):
            break  # only Layer III frames are walked; anything else is left to decoders
        bitrate = _MP3_BITRATES[1 if version == 3 else 2][bitrate_index] * 1000
        rate = _MP3_RATES[version][rate_index]
        padding = (header >> 9) & 1
        length = (144 if version == 3 else 72) * bitrate // rate + padding
        if pos + length > end:
            return f"the last audio frame needs {length} bytes, {end - pos} remain"
        pos += length
        frames += 1
    return None if frames else "no MPEG audio frames found"
