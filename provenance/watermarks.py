"""Invisible watermarks on files: embed keeping the file's metadata, detect without raising.

    >>> import tempfile, os
    >>> from skimage import data
    >>> from PIL import Image
    >>> from provenance.watermarks import watermark_file, detect_file
    >>> folder = tempfile.mkdtemp()
    >>> Image.fromarray(data.astronaut()).save(os.path.join(folder, "in.png"))
    >>> watermark_file(os.path.join(folder, "in.png"), os.path.join(folder, "out.png"),
    ...                bytes.fromhex("00112233445566ff"))
    >>> detect_file(os.path.join(folder, "out.png")).payload.hex()
    '00112233445566ff'

The pixels carry the mark; the algorithm itself lives in the ``watermark``
package, which knows nothing of C2PA. Audio files (WAV, FLAC, MP3, M4A, OGG
Opus or Vorbis) get the audio watermark (``watermark.audio``) and are written
back in their own format, rate, layout and bit rate (OGG as Opus).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import IO

import watermark
import watermark.audio
from provenance._internal.audio import (
    DETECT_SECONDS,
    audio_format,
    decode_audio,
    output_bit_rate,
    unwatermarkable_rate,
)
from provenance._internal.audio_stream import encode_audio_stream, open_audio
from provenance._internal.files import (
    InputFile,
    atomic_output,
    atomic_write,
    display,
    open_input,
    read_input,
    same_file,
)
from provenance._internal.images import (
    encode_image,
    load_image,
    preserving_save_options,
    stamp_format,
)
from provenance.errors import OutputError, UnsupportedFormatError, UsageError, WatermarkFailure

__all__ = ["detect_file", "detect_media", "parse_payload", "read_key_file", "watermark_file"]


def parse_payload(text: str) -> bytes:
    """A payload given as 16 hex digits."""
    try:
        payload = bytes.fromhex(text)
    except ValueError:
        raise UsageError(f"payload {text!r} is not hexadecimal") from None
    if len(payload) != watermark.PAYLOAD_SIZE:
        raise UsageError(f"payload must be {watermark.PAYLOAD_SIZE * 2} hex digits (64 bits)")
    return payload


def read_key_file(path: str | os.PathLike[str] | None) -> bytes:
    """The watermark key in ``path`` (its raw bytes), or the public default key."""
    if path is None:
        return watermark.DEFAULT_KEY
    key = read_input(path)
    if len(key) < 16:
        raise UsageError(f"{path}: a watermark key needs at least 16 bytes")
    return key


def watermark_file(
    input_path: str | os.PathLike[str],
    output_path: str | os.PathLike[str],
    payload: bytes,
    key: bytes = watermark.DEFAULT_KEY,
) -> None:
    """Embed ``payload`` and write the result in the input's format, keeping EXIF and ICC."""
    if same_file(input_path, output_path):
        raise OutputError(f"{display(output_path)}: output is the input file; inputs are never modified")
    name = display(input_path)
    with open_input(input_path) as source:
        if audio_format(source) is not None:
            # In blocks, from the file into the output: an hour of audio is never held whole.
            with atomic_output(Path(output_path)) as handle:
                _watermark_audio(source, name, payload, key, handle)
            return
    raw = read_input(input_path)
    image = load_image(raw, name)
    fmt = stamp_format(image, None, name)
    try:
        marked = watermark.embed(image, payload, key)
    except watermark.WatermarkError as exc:
        raise WatermarkFailure(f"{name}: {exc}") from None
    data, _ = encode_image(marked, fmt, **preserving_save_options(image, fmt))
    atomic_write(Path(output_path), data)


def _watermark_audio(source: InputFile, name: str, payload: bytes, key: bytes, dest: IO[bytes]) -> None:
    with open_audio(source, name) as probe:
        kind = probe.format
    encode_audio_stream(source, name, kind, output_bit_rate(kind), dest, payload, key)


def detect_file(path: str | os.PathLike[str], key: bytes = watermark.DEFAULT_KEY) -> watermark.Detection:
    """Look for a watermark in an image or audio file.

    Raises :class:`~provenance.errors.UnsupportedFormatError` ("watermark not checked")
    for audio at a sample rate the audio watermark is not defined for (outside 8-96 kHz).
    """
    return detect_media(path, key)[0]


def detect_media(
    path: str | os.PathLike[str], key: bytes = watermark.DEFAULT_KEY
) -> tuple[watermark.Detection, str]:
    """The detection in an image or audio file and the algorithm looked for (image or audio);
    raises as :func:`detect_file` does."""
    with open_input(path) as source:  # images are decoded from a stream, never copied whole
        if audio_format(source) is not None:
            clip = decode_audio(source, source.name, seconds=DETECT_SECONDS)
            unreadable = unwatermarkable_rate(clip)
            if unreadable is not None:
                raise UnsupportedFormatError(f"{source.name}: watermark not checked: {unreadable}")
            return watermark.audio.detect(clip.samples, clip.sample_rate, key), watermark.audio.ALGORITHM
        image = load_image(source, source.name)
        return watermark.detect(image, key), watermark.ALGORITHM
