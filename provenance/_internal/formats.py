"""What a file really is, from its first bytes rather than its name."""

from __future__ import annotations

from dataclasses import dataclass

from provenance.errors import UnsupportedFormatError


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


def sniff(data: bytes) -> MediaFormat | None:
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
    if head.startswith(b"\xff\x0a") or head.startswith(b"\x00\x00\x00\x0cJXL "):
        return JXL
    if head[4:8] == b"ftyp":
        return _sniff_ftyp(data)
    if head.startswith(b"ID3") or (len(head) > 1 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0):
        return MP3
    text = data[:1024].lstrip().lower()
    if text.startswith((b"<?xml", b"<svg")) and b"<svg" in data[:4096].lower():
        return SVG
    return None


def _sniff_ftyp(data: bytes) -> MediaFormat:
    size = int.from_bytes(data[0:4], "big")
    brands = [data[8:12]]
    end = min(max(size, 16), 256, len(data))
    brands += [data[i : i + 4] for i in range(16, end - 3, 4)]
    for brand in brands:
        if brand in _FTYP_BRANDS:
            return _FTYP_BRANDS[brand]
    return MP4


def require_signable(data: bytes, name: str) -> MediaFormat:
    """The format of ``data``, or an error naming what is supported."""
    fmt = sniff(data)
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
