"""Audio files in and out: WAV/FLAC through libsndfile (``soundfile``), MP3, M4A (AAC) and
OGG (Opus, Vorbis) through FFmpeg (PyAV). Never a system binary.

    >>> import numpy as np
    >>> from provenance._internal.audio import decode_audio, encode_audio
    >>> t = np.arange(16000) / 16000
    >>> tone = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    >>> clip = decode_audio(encode_audio(tone[:, None], 16000, "wav", subtype="PCM_16"), "a.wav")
    >>> clip.container, clip.sample_rate, clip.samples.shape, clip.subtype
    ('wav', 16000, (16000, 1), 'PCM_16')
    >>> decode_audio(b"RIFF\\x00\\x00\\x00\\x00WAVEfmt ", "cut.wav")
    Traceback (most recent call last):
    ...
    provenance.errors.CorruptInputError: cut.wav: audio is truncated or corrupt (...)

Samples are float32 in [-1, 1], shape ``(n, channels)``. Decoders are parsers of
untrusted bytes: whatever they raise on a malformed file means a corrupt input
(exit 4), never a crash. A file is re-encoded in its own container and codec, at
its own sample rate, channel layout and (for compressed audio) bit rate.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

from provenance._internal.files import ByteView, InputFile, as_stream
from provenance._internal.formats import FLAC, M4A, MP3, OGG, WAV, MediaFormat, check_complete, sniff
from provenance._internal.interrupts import CallbackFile
from provenance.errors import CorruptInputError, UnsupportedFormatError

_log = logging.getLogger(__name__)

F32 = npt.NDArray[np.float32]

AUDIO_FORMATS: dict[MediaFormat, str] = {WAV: "wav", FLAC: "flac", MP3: "mp3", M4A: "m4a", OGG: "ogg"}
"""The audio formats decoded and re-encoded here, by container name."""

MAX_SECONDS = 15 * 60
"""Longest audio :func:`decode_audio` holds whole in memory (as float32). Nothing in this
library decodes more than :data:`DETECT_SECONDS` at once: stamping and ``watermark embed``
work in blocks (``provenance._internal.audio_stream``), whatever the length."""

# Compressed outputs keep the input's bit rate; these are used when it is unknown.
_DEFAULT_BITRATE = {"mp3": 128_000, "m4a": 128_000, "ogg": 64_000}
_ENCODERS = {"mp3": ("mp3", "libmp3lame"), "m4a": ("ipod", "aac"), "ogg": ("ogg", "libopus")}
# Opus only runs at these rates; other rates are resampled by the encoder's front end.
_OPUS_RATES = (48000, 24000, 16000, 12000, 8000)


@dataclass(frozen=True)
class AudioClip:
    """Decoded audio and how it was stored."""

    samples: F32
    """float32 in [-1, 1], shape (n, channels)."""
    sample_rate: int
    container: str
    """"wav", "flac", "mp3", "m4a" or "ogg"."""
    subtype: str | None = None
    """libsndfile sample format of WAV/FLAC ("PCM_16", "PCM_U8", "FLOAT"...)."""
    codec: str | None = None
    """The compressed codec ("mp3", "aac", "opus", "vorbis")."""
    bit_rate: int | None = None

    @property
    def seconds(self) -> float:
        return len(self.samples) / self.sample_rate if self.sample_rate else 0.0

    @property
    def channels(self) -> int:
        return int(self.samples.shape[1])


def audio_format(data: ByteView) -> MediaFormat | None:
    """The audio format of ``data`` (WAV, FLAC, MP3, M4A or OGG), or None for anything else."""
    fmt = sniff(data)
    return fmt if fmt in AUDIO_FORMATS else None


def is_audio(data: ByteView) -> bool:
    return audio_format(data) is not None


DETECT_SECONDS = 60.0
"""Watermark detection and verification decode at most this much from the start: the mark
repeats every 2 s, so a minute holds it many times over, and an hour-long file is not
decoded whole (1.3 GB as float32 stereo) just to read it."""


EXCERPT_SAMPLES = int(DETECT_SECONDS * 96_000 * 2)
"""Samples (frames x channels) an excerpt decode (``seconds=``) holds at most: a minute of
96 kHz stereo (46 MB as float32). A FLAC of silence announcing 655,350 Hz and 8 channels
is 330 KB for a minute, which would otherwise decode to 1.3 GB (a body the resolution
service accepts); such files give a shorter excerpt instead."""


def _excerpt_frames(seconds: float | None, rate: int, channels: int) -> int | None:
    if seconds is None:
        return None
    return max(1, min(int(seconds * rate), EXCERPT_SAMPLES // max(1, channels)))


def decode_audio(data: bytes | InputFile, name: str, *, seconds: float | None = None) -> AudioClip:
    """Decode an audio file (the first ``seconds`` of it, or all of it); one-line errors for
    anything that is not playable audio."""
    fmt = audio_format(data)
    if fmt is None:
        raise UnsupportedFormatError(f"{name}: not an audio file (WAV, FLAC, MP3, M4A or OGG)")
    if fmt in (MP3, M4A, OGG, FLAC):
        check_complete(data, fmt, name)  # a cut MP3, OGG or FLAC decodes "fine" up to the cut
    container = AUDIO_FORMATS[fmt]
    if container in ("wav", "flac"):
        clip = _decode_sndfile(data, name, container, seconds)
    else:
        clip = _decode_av(data, name, container, seconds)
    if len(clip.samples) == 0:
        raise CorruptInputError(f"{name}: the file holds no audio samples")
    if not np.all(np.isfinite(clip.samples)):
        raise CorruptInputError(f"{name}: audio samples are not finite numbers (NaN or infinity)")
    return clip


def _decode_sndfile(data: bytes | InputFile, name: str, container: str, seconds: float | None) -> AudioClip:
    import soundfile

    if container == "wav":
        # libsndfile quietly reads what is there of a cut WAV; its RIFF size says what should be.
        riff = int.from_bytes(data[4:8], "little")
        if 0 < riff < 0xFFFFFFF0 and riff + 8 > len(data):
            raise CorruptInputError(
                f"{name}: audio is truncated or corrupt (the WAV header announces {riff + 8:,} bytes, "
                f"{len(data):,} are there)"
            )

    source = CallbackFile(as_stream(data))
    try:
        with source.raising(), soundfile.SoundFile(source) as handle:
            rate, subtype = int(handle.samplerate), str(handle.subtype)
            excerpt = _excerpt_frames(seconds, rate, int(handle.channels))
            wanted = handle.frames if excerpt is None else min(handle.frames, excerpt)
            if wanted > MAX_SECONDS * rate:
                raise UnsupportedFormatError(
                    f"{name}: longer than {MAX_SECONDS // 60} minutes; not decoded whole"
                )
            samples = handle.read(wanted, dtype="float32", always_2d=True)
            complete = len(samples) == wanted
    except (soundfile.LibsndfileError, RuntimeError, ValueError, OSError, EOFError) as exc:
        raise CorruptInputError(f"{name}: audio is truncated or corrupt ({_first_line(exc)})") from None
    if not complete:
        raise CorruptInputError(f"{name}: audio is truncated (fewer samples than its header announces)")
    if subtype in ("FLOAT", "DOUBLE"):
        # Float WAV may go past full scale; the watermark works on [-1, 1].
        peak = float(np.max(np.abs(samples))) if samples.size else 0.0
        if peak > 1.0:
            raise UnsupportedFormatError(
                f"{name}: floating-point audio peaks at {peak:.2f}, above full scale (1.0); "
                "normalise it first"
            )
    return AudioClip(samples, rate, container, subtype=subtype)


def _decode_av(data: bytes | InputFile, name: str, container: str, seconds: float | None) -> AudioClip:
    import av

    chunks: list[F32] = []
    try:
        with av.open(as_stream(data), mode="r") as src:
            if not src.streams.audio:
                raise CorruptInputError(f"{name}: the file holds no audio stream")
            stream = src.streams.audio[0]
            rate = int(stream.rate or stream.codec_context.sample_rate or 0)
            if rate <= 0:
                raise CorruptInputError(f"{name}: the audio stream has no sample rate")
            codec = stream.codec_context.name
            bit_rate = int(stream.bit_rate or src.bit_rate or 0) or None
            channels = int(stream.codec_context.channels)
            # Packed float32 at the stream's own rate and layout: no resampling.
            resampler = av.AudioResampler(format="flt", layout=stream.layout, rate=rate)
            excerpt = _excerpt_frames(seconds, rate, channels)
            total = 0
            for frame in src.decode(stream):
                for out in resampler.resample(frame):
                    block = out.to_ndarray().reshape(-1, channels)
                    chunks.append(block.astype(np.float32, copy=False))
                    total += len(block)
                if excerpt is not None and total >= excerpt:
                    break
                if total > MAX_SECONDS * rate:
                    raise UnsupportedFormatError(
                        f"{name}: longer than {MAX_SECONDS // 60} minutes; not decoded whole"
                    )
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray().reshape(-1, channels).astype(np.float32, copy=False))
    except av.error.FFmpegError as exc:
        # Its str() is "[Errno -1094995529] Invalid data ...: '7'" (a stream number): the reason alone.
        why = exc.strerror or _first_line(exc)
        raise CorruptInputError(f"{name}: audio is truncated or corrupt ({why})") from None
    except (ValueError, EOFError, OSError) as exc:
        raise CorruptInputError(f"{name}: audio is truncated or corrupt ({_first_line(exc)})") from None
    samples = np.concatenate(chunks) if chunks else np.zeros((0, max(channels, 1)), np.float32)
    if excerpt is not None:
        samples = samples[:excerpt]
    np.clip(samples, -1.0, 1.0, out=samples)  # decoders of lossy codecs overshoot slightly
    return AudioClip(samples, rate, container, codec=codec, bit_rate=bit_rate)


def unwatermarkable_rate(clip: AudioClip) -> str | None:
    """Why the audio watermark cannot be looked for in ``clip`` (its sample rate is outside the
    range the mark is defined for), or None when it can: such a clip's watermark is "not
    checked", never "none found"."""
    import watermark.audio

    rate = clip.sample_rate
    if watermark.audio.MIN_RATE <= rate <= watermark.audio.MAX_RATE:
        return None
    return (
        f"its sample rate is {rate:,} Hz; the audio watermark is read at "
        f"{watermark.audio.MIN_RATE:,}-{watermark.audio.MAX_RATE:,} Hz"
    )


MIN_OPUS_BITRATE = 64_000
"""Opus below this loses the current audio watermark (watermark/AUDIO.md): marked OGG
files are written at the input's bit rate, but not below it."""


class _Stored(Protocol):
    @property
    def container(self) -> str: ...

    @property
    def bit_rate(self) -> int | None: ...


def output_bit_rate(clip: _Stored) -> int | None:
    """The bit rate a marked copy of ``clip`` is encoded at: the input's (comparable size)."""
    if clip.container == "ogg":
        return max(clip.bit_rate or 0, MIN_OPUS_BITRATE)
    return clip.bit_rate


def encode_audio(
    samples: F32,
    sample_rate: int,
    container: str,
    *,
    subtype: str | None = None,
    bit_rate: int | None = None,
) -> bytes:
    """Encode ``samples`` ((n, channels) float32) as ``container``.

    WAV/FLAC keep ``subtype`` (16-bit PCM by default); MP3, M4A (AAC) and OGG
    (Opus) are encoded at ``bit_rate`` (the input's, so the output is comparable).
    """
    if container in ("wav", "flac"):
        return _encode_sndfile(samples, sample_rate, container, subtype)
    if container in _ENCODERS:
        return _encode_av(samples, sample_rate, container, bit_rate or _DEFAULT_BITRATE[container])
    raise UnsupportedFormatError(f"cannot encode audio as {container!r}")


def _encode_sndfile(samples: F32, rate: int, container: str, subtype: str | None) -> bytes:
    import soundfile

    chosen = subtype or "PCM_16"
    if not soundfile.check_format(container.upper(), chosen):
        chosen = "PCM_16"  # e.g. a FLAC subtype libsndfile cannot write back
    out = io.BytesIO()
    try:
        soundfile.write(out, samples, rate, format=container.upper(), subtype=chosen)
    except (soundfile.LibsndfileError, RuntimeError, ValueError) as exc:
        raise UnsupportedFormatError(f"cannot encode {container.upper()} ({_first_line(exc)})") from None
    return out.getvalue()


def _encode_av(samples: F32, rate: int, container: str, bit_rate: int) -> bytes:
    import av

    fmt, codec_name = _ENCODERS[container]
    channels = int(samples.shape[1])
    layout = {1: "mono", 2: "stereo", 6: "5.1"}.get(channels)
    if layout is None:
        raise UnsupportedFormatError(f"cannot encode {channels} channels as {container.upper()}")
    out_rate = rate
    if codec_name == "libopus" and rate not in _OPUS_RATES:
        out_rate = 48000
    out = io.BytesIO()
    try:
        with av.open(out, mode="w", format=fmt) as dst:
            stream = dst.add_stream(codec_name, rate=out_rate, layout=layout)
            stream.bit_rate = int(bit_rate)
            resampler = av.AudioResampler(
                format=stream.codec_context.format.name, layout=layout, rate=out_rate
            )
            block = 4096
            for start in range(0, len(samples), block):
                chunk = np.ascontiguousarray(samples[start : start + block], dtype=np.float32)
                frame = av.AudioFrame.from_ndarray(chunk.reshape(1, -1), format="flt", layout=layout)
                frame.sample_rate = rate
                for resampled in resampler.resample(frame):
                    for packet in stream.encode(resampled):
                        dst.mux(packet)
            for resampled in resampler.resample(None):
                for packet in stream.encode(resampled):
                    dst.mux(packet)
            for packet in stream.encode(None):
                dst.mux(packet)
    except av.error.FFmpegError as exc:
        raise UnsupportedFormatError(f"cannot encode {container.upper()} ({_first_line(exc)})") from None
    return out.getvalue()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:200]
