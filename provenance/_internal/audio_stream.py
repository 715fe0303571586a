"""Audio files decoded and encoded in blocks: an hour of audio in memory proportional to a block.

    >>> import io
    >>> import numpy as np
    >>> from provenance._internal.audio_stream import AudioWriter, open_audio
    >>> tone = (0.3 * np.sin(2 * np.pi * 440 * np.arange(48000) / 16000)).astype(np.float32)
    >>> out = io.BytesIO()
    >>> with AudioWriter(out, 16000, 1, "flac", subtype="PCM_16") as writer:
    ...     for start in range(0, len(tone), 10000):
    ...         writer.write(tone[start : start + 10000, None])
    >>> with open_audio(out.getvalue(), "tone.flac", block_seconds=1.0) as source:
    ...     source.format.container, source.format.sample_rate, [len(b) for b in source.blocks()]
    ('flac', 16000, [16000, 16000, 16000])

``open_audio`` makes the same checks as :func:`~provenance._internal.audio.decode_audio`
(a truncated WAV or MP3, no samples, NaN, floating-point audio above full scale), each
as the block where it shows is read; a writer encodes as
:func:`~provenance._internal.audio.encode_audio` does (same codecs, bit rates and
sample formats), block by block into a file.
"""

from __future__ import annotations

import collections
import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import IO, Any

import numpy as np
import numpy.typing as npt

import watermark
import watermark.audio
from provenance._internal.audio import (
    _DEFAULT_BITRATE,
    _ENCODERS,
    _OPUS_RATES,
    AUDIO_FORMATS,
    _first_line,
    audio_format,
)
from provenance._internal.files import InputFile, as_stream
from provenance._internal.formats import FLAC, M4A, MP3, OGG, check_complete
from provenance._internal.interrupts import CallbackFile
from provenance.errors import CorruptInputError, UnsupportedFormatError, WatermarkFailure

F32 = npt.NDArray[np.float32]

BLOCK_SECONDS = 10.0
"""Audio decoded per block by default."""


@dataclass(frozen=True)
class StreamFormat:
    """How an audio file is stored (what a re-encoding keeps)."""

    sample_rate: int
    channels: int
    container: str
    subtype: str | None = None
    codec: str | None = None
    bit_rate: int | None = None


class AudioSource:
    """An opened audio file: :attr:`format`, and :meth:`blocks` to decode it in order."""

    def __init__(self, fmt: StreamFormat, blocks: Iterator[F32], name: str) -> None:
        self.format = fmt
        self._blocks = blocks
        self._name = name

    def blocks(self) -> Iterator[F32]:
        """float32 blocks of shape (n, channels), checked as they come; at least one sample."""
        total = 0
        for block in self._blocks:
            if not np.all(np.isfinite(block)):
                raise CorruptInputError(
                    f"{self._name}: audio samples are not finite numbers (NaN or infinity)"
                )
            if self.format.subtype in ("FLOAT", "DOUBLE") and block.size:
                peak = float(np.max(np.abs(block)))
                if peak > 1.0:
                    raise UnsupportedFormatError(
                        f"{self._name}: floating-point audio peaks at {peak:.2f}, above full scale (1.0); "
                        "normalise it first"
                    )
            total += len(block)
            if len(block):
                yield block
        if total == 0:
            raise CorruptInputError(f"{self._name}: the file holds no audio samples")


@contextlib.contextmanager
def open_audio(
    data: bytes | InputFile, name: str, *, block_seconds: float = BLOCK_SECONDS
) -> Iterator[AudioSource]:
    """Open an audio file for decoding in blocks of ``block_seconds`` (fewer at the end)."""
    fmt = audio_format(data)
    if fmt is None:
        raise UnsupportedFormatError(f"{name}: not an audio file (WAV, FLAC, MP3, M4A or OGG)")
    if fmt in (MP3, M4A, OGG, FLAC):
        check_complete(data, fmt, name)  # a cut MP3, OGG or FLAC decodes "fine" up to the cut
    container = AUDIO_FORMATS[fmt]
    opener = _open_sndfile if container in ("wav", "flac") else _open_av
    with opener(data, name, container, block_seconds) as source:
        yield source


@contextlib.contextmanager
def _open_sndfile(
    data: bytes | InputFile, name: str, container: str, block_seconds: float
) -> Iterator[AudioSource]:
    import soundfile

    errors = (soundfile.LibsndfileError, RuntimeError, ValueError, OSError, EOFError)
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
        with source.raising():
            handle = soundfile.SoundFile(source)
    except errors as exc:
        raise CorruptInputError(f"{name}: audio is truncated or corrupt ({_first_line(exc)})") from None
    with handle:
        rate = int(handle.samplerate)
        fmt = StreamFormat(rate, int(handle.channels), container, subtype=str(handle.subtype))
        step = max(1, int(block_seconds * rate))

        def blocks() -> Iterator[F32]:
            done = 0
            while done < handle.frames:
                try:
                    with source.raising():
                        block = handle.read(min(step, handle.frames - done), dtype="float32", always_2d=True)
                except errors as exc:
                    raise CorruptInputError(
                        f"{name}: audio is truncated or corrupt ({_first_line(exc)})"
                    ) from None
                if len(block) == 0:
                    raise CorruptInputError(
                        f"{name}: audio is truncated (fewer samples than its header announces)"
                    )
                done += len(block)
                yield block

        yield AudioSource(fmt, blocks(), name)


@contextlib.contextmanager
def _open_av(
    data: bytes | InputFile, name: str, container: str, block_seconds: float
) -> Iterator[AudioSource]:
    import av

    def failed(exc: Exception) -> CorruptInputError:
        why = exc.strerror if isinstance(exc, av.error.FFmpegError) and exc.strerror else _first_line(exc)
        return CorruptInputError(f"{name}: audio is truncated or corrupt ({why})")

    try:
        src = av.open(as_stream(data), mode="r")
    except (av.error.FFmpegError, ValueError, EOFError, OSError) as exc:
        raise failed(exc) from None
    with src:
        if not src.streams.audio:
            raise CorruptInputError(f"{name}: the file holds no audio stream")
        stream = src.streams.audio[0]
        rate = int(stream.rate or stream.codec_context.sample_rate or 0)
        if rate <= 0:
            raise CorruptInputError(f"{name}: the audio stream has no sample rate")
        channels = int(stream.codec_context.channels)
        bit_rate = int(stream.bit_rate or src.bit_rate or 0) or None
        fmt = StreamFormat(rate, channels, container, codec=stream.codec_context.name, bit_rate=bit_rate)
        step = max(1, int(block_seconds * rate))

        def blocks() -> Iterator[F32]:
            # Packed float32 at the stream's own rate and layout: no resampling.
            resampler = av.AudioResampler(format="flt", layout=stream.layout, rate=rate)
            pending: list[F32] = []
            held = 0
            try:
                frames = src.decode(stream)
                while True:
                    frame = next(frames, None)
                    outs = resampler.resample(frame)
                    for out in outs:
                        part = out.to_ndarray().reshape(-1, channels).astype(np.float32, copy=False)
                        pending.append(part)
                        held += len(part)
                    while held >= step or (frame is None and held):
                        joined = np.concatenate(pending)
                        block, rest = joined[:step], joined[step:]
                        pending, held = ([rest] if len(rest) else []), len(rest)
                        np.clip(block, -1.0, 1.0, out=block)  # decoders of lossy codecs overshoot slightly
                        yield block
                    if frame is None:
                        return
            except (av.error.FFmpegError, ValueError, EOFError, OSError) as exc:
                raise failed(exc) from None

        yield AudioSource(fmt, blocks(), name)


class AudioWriter:
    """Encode blocks of float32 (n, channels) samples into ``dest`` (a seekable binary file):
    WAV/FLAC through libsndfile in ``subtype`` (16-bit PCM by default), MP3, M4A (AAC) and
    OGG (Opus) through FFmpeg at ``bit_rate``."""

    def __init__(
        self,
        dest: IO[bytes],
        sample_rate: int,
        channels: int,
        container: str,
        *,
        subtype: str | None = None,
        bit_rate: int | None = None,
    ) -> None:
        self._container = container
        self._rate = sample_rate
        self._sndfile: Any = None
        self._av: Any = None
        if container in ("wav", "flac"):
            import soundfile

            chosen = subtype or "PCM_16"
            if not soundfile.check_format(container.upper(), chosen):
                chosen = "PCM_16"  # e.g. a FLAC subtype libsndfile cannot write back
            self._sink = CallbackFile(dest)
            try:
                with self._sink.raising():
                    self._sndfile = soundfile.SoundFile(
                        self._sink,
                        "w",
                        samplerate=sample_rate,
                        channels=channels,
                        subtype=chosen,
                        format=container.upper(),
                    )
            except (soundfile.LibsndfileError, RuntimeError, ValueError) as exc:
                raise UnsupportedFormatError(
                    f"cannot encode {container.upper()} ({_first_line(exc)})"
                ) from None
            return
        if container not in _ENCODERS:
            raise UnsupportedFormatError(f"cannot encode audio as {container!r}")
        import av

        fmt, codec_name = _ENCODERS[container]
        layout = {1: "mono", 2: "stereo", 6: "5.1"}.get(channels)
        if layout is None:
            raise UnsupportedFormatError(f"cannot encode {channels} channels as {container.upper()}")
        out_rate = sample_rate
        if codec_name == "libopus" and sample_rate not in _OPUS_RATES:
            out_rate = 48000
        try:
            self._av = av.open(dest, mode="w", format=fmt)
            self._stream = self._av.add_stream(codec_name, rate=out_rate, layout=layout)
            self._stream.bit_rate = int(bit_rate or _DEFAULT_BITRATE[container])
            self._resampler = av.AudioResampler(
                format=self._stream.codec_context.format.name, layout=layout, rate=out_rate
            )
        except av.error.FFmpegError as exc:
            raise UnsupportedFormatError(f"cannot encode {container.upper()} ({_first_line(exc)})") from None
        self._layout = layout

    def write(self, samples: F32) -> None:
        if self._sndfile is not None:
            with self._sink.raising():
                self._sndfile.write(samples)
            return
        import av

        try:
            for start in range(0, len(samples), 4096):
                chunk = np.ascontiguousarray(samples[start : start + 4096], dtype=np.float32)
                frame = av.AudioFrame.from_ndarray(chunk.reshape(1, -1), format="flt", layout=self._layout)
                frame.sample_rate = self._rate
                self._encode(frame)
        except av.error.FFmpegError as exc:
            raise UnsupportedFormatError(
                f"cannot encode {self._container.upper()} ({_first_line(exc)})"
            ) from None

    def _encode(self, frame: Any) -> None:
        for resampled in self._resampler.resample(frame):
            for packet in self._stream.encode(resampled):
                self._av.mux(packet)

    def close(self) -> None:
        """Flush the encoder and finish the file."""
        if self._sndfile is not None:
            try:
                with self._sink.raising():
                    self._sndfile.close()
            finally:
                self._sndfile = None
        if self._av is not None:
            import av

            try:
                self._encode(None)
                for packet in self._stream.encode(None):
                    self._av.mux(packet)
            except av.error.FFmpegError as exc:
                raise UnsupportedFormatError(
                    f"cannot encode {self._container.upper()} ({_first_line(exc)})"
                ) from None
            finally:
                self._av.close()
                self._av = None

    def __enter__(self) -> AudioWriter:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if kind is None:
            self.close()
        else:
            with contextlib.suppress(Exception):
                self.close()


def encode_audio_stream(
    source: bytes | InputFile,
    name: str,
    kind: StreamFormat,
    bit_rate: int | None,
    dest: IO[bytes],
    payload: bytes | None,
    key: bytes,
) -> None:
    """Decode ``source`` block by block, mark it with ``payload`` (or not: ``None`` keeps a
    mark it already has) and encode it into ``dest`` like the input."""
    with (
        open_audio(source, name) as src,
        AudioWriter(
            dest, kind.sample_rate, kind.channels, kind.container, subtype=kind.subtype, bit_rate=bit_rate
        ) as writer,
    ):
        if payload is None:
            for block in src.blocks():
                writer.write(block)
            return
        watch = _Unchanged()
        try:
            for block in watermark.audio.embed_stream(
                watch.feed(src.blocks()), kind.sample_rate, payload, key
            ):
                watch.compare(block)
                writer.write(block)
        except watermark.audio.AudioTooShortError as exc:
            raise WatermarkFailure(f"{name}: {exc}") from None
        except watermark.WatermarkError as exc:
            raise WatermarkFailure(f"{name}: cannot watermark ({exc})") from None
        if watch.unchanged:
            # The mark is a gain on the sound itself: silence stays silent and carries nothing.
            raise WatermarkFailure(f"{name}: the audio is silent (or nearly): nothing can carry a watermark")
    dest.flush()


class _Unchanged:
    """Whether a marked stream came out sample for sample equal to its input (silence)."""

    def __init__(self) -> None:
        self._queue: collections.deque[npt.NDArray[Any]] = collections.deque()
        self.unchanged = True

    def feed(self, blocks: Iterator[npt.NDArray[Any]]) -> Iterator[npt.NDArray[Any]]:
        for block in blocks:
            self._queue.append(block)
            yield block

    def compare(self, marked: npt.NDArray[Any]) -> None:
        done = 0
        while done < len(marked):
            head = self._queue[0]
            n = min(len(head), len(marked) - done)
            if self.unchanged and not np.array_equal(head[:n], marked[done : done + n].reshape(n, -1)):
                self.unchanged = False
            done += n
            if n == len(head):
                self._queue.popleft()
            else:
                self._queue[0] = head[n:]
