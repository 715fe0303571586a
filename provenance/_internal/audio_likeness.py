"""Is this audio the clip that was stamped? A compact spectral fingerprint and its comparison.

The audio watermark made with the public key can be copied onto any clip, so a
watermark alone does not prove that recovered credentials belong to the audio in
hand. At stamping time we keep a fingerprint of the clip in the store: the
Haitsma-Kalker ("Philips") robust hash, 16 bits per 32 ms frame (62 bytes per
second), each bit the sign of an energy difference between neighbouring bands
of the telephone band (300-3400 Hz) and consecutive frames. Such bits survive
lossy codecs, resampling, volume changes and low-pass filters, while two
different clips agree on about half of them. At recovery the excerpt's
fingerprint is slid along the reference (it may come from anywhere in the clip)
and the best alignment's bit agreement is the likeness.

    >>> import numpy as np
    >>> rng = np.random.default_rng(1)
    >>> voice = np.convolve(rng.standard_normal(16000 * 8), np.ones(8) / 8, "same")
    >>> voice *= 0.2 + np.abs(np.sin(np.arange(len(voice)) / 2500))
    >>> ref = reference(voice[:, None].astype(np.float32), 16000)
    >>> excerpt = voice[16000 * 2 : 16000 * 6] * 0.5                  # 4 s, quieter
    >>> similarity(ref, excerpt[:, None].astype(np.float32), 16000) > SAME_AUDIO
    True
    >>> other = np.convolve(rng.standard_normal(16000 * 4), np.ones(8) / 8, "same")
    >>> similarity(ref, other[:, None].astype(np.float32), 16000) < SAME_AUDIO
    True

Frames quieter than the clip's loud parts by more than 45 dB (pauses, digital
silence) carry no bits: they are masked out on both sides, so a clip of silence
matches nothing.
"""

from __future__ import annotations

import itertools
import struct

import numpy as np
import numpy.typing as npt
import soxr

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]

RATE = 8000
FRAME = 512  # 64 ms
HOP = 256  # 32 ms
BITS = 16
_EDGES = np.geomspace(300.0, 3400.0, BITS + 2)  # 17 bands -> 16 differences
_MAGIC = b"PVAF1"
_HEADER = struct.Struct(">5sII")  # magic, frames, hop in samples at RATE

SAME_AUDIO = 0.4
"""Likeness (1 - 2 x bit error rate at the best alignment) at or above which the audio
is taken as the stamped clip. Measured in benchmarks/results/audio-likeness.txt: the
stamped clip after MP3 64k, AAC 96k, Opus 16-32k, resampling or cut to 3-5 s scores 0.58-1.0;
other clips (other speakers, other sentences of the same speaker, music) 0.0-0.11."""

MIN_FRAMES = 60
"""Frames (about 2 s) of sound both sides must share before a likeness is given."""

_SILENT_DB = 45.0


_BAND_MASKS = [
    (freqs >= lo) & (freqs < hi)
    for freqs in [np.fft.rfftfreq(FRAME, 1.0 / RATE)]
    for lo, hi in itertools.pairwise(_EDGES)
]


def _mono(samples: F32) -> F64:
    return samples.astype(np.float64).mean(axis=1) if samples.ndim == 2 else samples.astype(np.float64)


def _frame_bands(mono8k: F64) -> tuple[F64, F64]:
    """Band log-energies and total energy (dB) of every whole frame of ``mono8k`` (at RATE)."""
    if len(mono8k) < FRAME:
        return np.zeros((0, BITS + 1)), np.zeros(0)
    n = 1 + (len(mono8k) - FRAME) // HOP
    idx = np.arange(FRAME)[None, :] + HOP * np.arange(n)[:, None]
    power = np.abs(np.fft.rfft(mono8k[idx] * np.hanning(FRAME)[None, :], axis=1)) ** 2
    band = np.stack([power[:, mask].sum(axis=1) for mask in _BAND_MASKS], axis=1)
    return np.log(band + 1e-10), 10 * np.log10(band.sum(axis=1) + 1e-12)


def _alive(energy: F64) -> npt.NDArray[np.bool_]:
    loud = np.percentile(energy, 95) if len(energy) else 0.0
    # Digital silence has no loud part either: -90 dB absolute is nothing.
    out: npt.NDArray[np.bool_] = (energy > loud - _SILENT_DB) & (energy > -90.0)
    return out


def _bands(samples: F32, rate: int) -> tuple[F64, npt.NDArray[np.bool_]]:
    """Band log-energies per frame and which frames are loud enough to count."""
    mono = _mono(samples)
    if rate != RATE:
        mono = np.asarray(soxr.resample(mono, rate, RATE, quality="HQ"), dtype=np.float64)
    logs, energy = _frame_bands(mono)
    return logs, _alive(energy)


def _words(logs: F64) -> npt.NDArray[np.uint16]:
    """One 16-bit word per pair of consecutive frames."""
    diff = logs[:, :-1] - logs[:, 1:]  # neighbouring bands
    sign = (diff[1:] - diff[:-1]) > 0  # ... and consecutive frames
    weights = (1 << np.arange(BITS)).astype(np.uint32)
    out: npt.NDArray[np.uint16] = (sign.astype(np.uint32) * weights).sum(axis=1).astype(np.uint16)
    return out


def _bits(samples: F32, rate: int) -> tuple[npt.NDArray[np.uint16], npt.NDArray[np.bool_]]:
    logs, alive = _bands(samples, rate)
    if len(logs) < 2:
        return np.zeros(0, np.uint16), np.zeros(0, dtype=bool)
    return _words(logs), alive[1:] & alive[:-1]


def _pack(words: npt.NDArray[np.uint16], alive: npt.NDArray[np.bool_]) -> bytes:
    words = np.where(alive, words, 0).astype(">u2")
    return _HEADER.pack(_MAGIC, len(words), HOP) + np.packbits(alive).tobytes() + words.tobytes()


def reference(samples: F32, rate: int) -> bytes:
    """The fingerprint kept in the store for ``samples`` ((n,) or (n, channels) float32)."""
    return _pack(*_bits(samples, rate))


class Fingerprinter:
    """:func:`reference` of a recording handed over in blocks, in memory proportional to a
    block plus the fingerprint itself (about 70 bytes per second while it is made):

    >>> import numpy as np
    >>> rng = np.random.default_rng(2)
    >>> voice = np.convolve(rng.standard_normal(16000 * 20), np.ones(8) / 8, "same")[:, None]
    >>> voice = (voice * (0.2 + np.abs(np.sin(np.arange(len(voice)) / 2500)))[:, None]).astype(np.float32)
    >>> maker = Fingerprinter(16000)
    >>> for start in range(0, len(voice), 7001):
    ...     maker.add(voice[start : start + 7001])
    >>> similarity(maker.finish(), voice[16000 * 5 : 16000 * 9], 16000) > 0.9
    True
    """

    def __init__(self, rate: int) -> None:
        self._rate = rate
        self._resampler = None if rate == RATE else soxr.ResampleStream(rate, RATE, 1, dtype="float64")
        self._pending = np.zeros(0)  # samples at RATE not yet in a whole frame
        self._last: F64 | None = None  # the last frame's band log-energies
        self._words: list[npt.NDArray[np.uint16]] = []
        self._energy: list[F64] = []

    def add(self, samples: F32, *, last: bool = False) -> None:
        mono = _mono(samples)
        if self._resampler is not None:
            mono = np.asarray(self._resampler.resample_chunk(mono, last=last), dtype=np.float64)
        x = np.concatenate([self._pending, mono])
        logs, energy = _frame_bands(x)
        if len(logs):
            self._pending = x[len(logs) * HOP :]
            joined = logs if self._last is None else np.concatenate([self._last[None, :], logs])
            if len(joined) >= 2:
                self._words.append(_words(joined))
            self._last = logs[-1]
            self._energy.append(energy)
        else:
            self._pending = x

    def finish(self) -> bytes:
        if self._resampler is not None:
            self.add(np.zeros(0, np.float32), last=True)
            self._resampler = None
        energy = np.concatenate(self._energy) if self._energy else np.zeros(0)
        if len(energy) < 2:
            return _pack(np.zeros(0, np.uint16), np.zeros(0, dtype=bool))
        alive = _alive(energy)
        return _pack(np.concatenate(self._words), alive[1:] & alive[:-1])


def is_reference(data: bytes | None) -> bool:
    """Whether ``data`` is an audio fingerprint made by :func:`reference`."""
    return bool(data) and data[: len(_MAGIC)] == _MAGIC  # type: ignore[index]


def _parse(data: bytes) -> tuple[npt.NDArray[np.uint16], npt.NDArray[np.bool_]]:
    magic, n, hop = _HEADER.unpack_from(data)
    if magic != _MAGIC or hop != HOP:
        raise ValueError("not an audio fingerprint of this version")
    start = _HEADER.size
    mask_bytes = (n + 7) // 8
    alive = np.unpackbits(np.frombuffer(data, np.uint8, mask_bytes, start))[:n].astype(bool)
    words = np.frombuffer(data, ">u2", n, start + mask_bytes).astype(np.uint16)
    return words, alive


def similarity(reference_data: bytes, samples: F32, rate: int) -> float:
    """Likeness of ``samples`` (an excerpt, re-encoded) to the clip ``reference_data`` was made from.

    1 - 2 x (bit error rate) at the best alignment, clipped to [0, 1]: 1.0 is the
    same audio, about 0 unrelated audio. 0.0 when fewer than :data:`MIN_FRAMES`
    loud frames can be compared (silence, a clip shorter than about 2 s).
    """
    try:
        ref, ref_alive = _parse(reference_data)
    except (ValueError, struct.error):
        return 0.0
    best = 0.0
    # The excerpt's frames fall anywhere between the reference's: try four sub-hop phases.
    step = max(1, round(HOP / 4 * rate / RATE))
    for k in range(4):
        words, alive = _bits(samples[k * step :], rate)
        best = max(best, _best_alignment(ref, ref_alive, words, alive))
    return best


def _best_alignment(
    ref: npt.NDArray[np.uint16],
    ref_alive: npt.NDArray[np.bool_],
    query: npt.NDArray[np.uint16],
    alive: npt.NDArray[np.bool_],
) -> float:
    if alive.sum() < MIN_FRAMES or ref_alive.sum() < MIN_FRAMES:
        return 0.0
    # Trim the query to its sounding span; allow it to hang over the reference's ends by a quarter.
    on = np.flatnonzero(alive)
    query, alive = query[on[0] : on[-1] + 1], alive[on[0] : on[-1] + 1]
    q = len(query)
    pad = q // 4
    r = np.concatenate([np.zeros(pad, np.uint16), ref, np.zeros(pad, np.uint16)])
    ra = np.concatenate([np.zeros(pad, bool), ref_alive, np.zeros(pad, bool)])
    if len(r) < q:
        extra = q - len(r)
        r = np.concatenate([r, np.zeros(extra, np.uint16)])
        ra = np.concatenate([ra, np.zeros(extra, bool)])
    windows = np.lib.stride_tricks.sliding_window_view(r, q)
    windows_alive = np.lib.stride_tricks.sliding_window_view(ra, q)
    best = 0.0
    chunk = max(1, 4_000_000 // q)
    for start in range(0, len(windows), chunk):
        w = windows[start : start + chunk]
        both = windows_alive[start : start + chunk] & alive[None, :]
        errors = (np.bitwise_count(w ^ query[None, :]) * both).sum(axis=1)
        compared = both.sum(axis=1)
        enough = compared >= MIN_FRAMES
        if not enough.any():
            continue
        ber = errors[enough] / (compared[enough] * BITS)
        best = max(best, float(np.clip(1.0 - 2.0 * ber.min(), 0.0, 1.0)))
    return best
