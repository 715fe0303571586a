"""Invisible, keyed audio watermark carrying a 64-bit payload (same coding as images).

>>> import numpy as np
>>> from watermark import audio
>>> rng = np.random.default_rng(0)
>>> t = np.arange(6 * 16000) / 16000
>>> tone = 0.2 * np.sin(2 * np.pi * 220 * t) * (1 + np.sin(2 * np.pi * 3 * t))
>>> clip = (tone + 0.05 * rng.standard_normal(len(t))).astype(np.float32)
>>> marked = audio.embed(clip, 16000, bytes(range(8)))
>>> marked.shape == clip.shape, marked.dtype
(True, dtype('float32'))
>>> found = audio.detect(marked, 16000)
>>> found.detected, found.payload == bytes(range(8)), found.p_value < 1e-9
(True, True, True)
>>> audio.detect(clip, 16000).detected
False

``samples`` is float32 in [-1, 1], shape ``(n,)`` or ``(n, channels)``, at any rate
from 8 kHz to 96 kHz; :func:`embed` returns the same shape, dtype and rate. The mark
is computed on the mono mix at 16 kHz (187 Hz - 4.7 kHz, where codecs keep energy)
and added to every channel; silence stays silent. Detection finds the mark in any
excerpt of at least about 2.5 s (one 2.05 s block plus slack) and reports a p-value
that counts every synchronisation hypothesis it tried. Algorithm and benchmark:
``watermark/AUDIO.md``. A recording too long to hold is marked piece by piece with
:func:`embed_stream` (``_stream.py``).
"""

from __future__ import annotations

import logging

import numpy as np
import numpy.typing as npt
import soxr

from .. import WatermarkError, _ecc
from .._core import Detection
from . import _stdm
from ._stream import embed_stream

_log = logging.getLogger(__name__)

__all__ = [
    "ALGORITHM",
    "DEFAULT_KEY",
    "MAX_RATE",
    "MIN_RATE",
    "AudioTooShortError",
    "Detection",
    "detect",
    "embed",
    "embed_stream",
    "min_samples",
]

#: C2PA soft-binding algorithm name for the audio mark (value: base64 of the payload,
#: as for images). The trailing number is the bitstream version.
ALGORITHM = "io.github.provenance-py.audio-watermark.2"

#: The public key (the same as the image watermark's): anyone can detect marks made with it.
DEFAULT_KEY = b"io.github.provenance-py.watermark public key v1"

MIN_RATE = 8000
MAX_RATE = 96000

# Attempts with a weaker pilot are not decoded (noise scores about 3-4 at the best of
# the 2048 hypotheses); skipping a decode only removes chances of a false positive.
DECODE_MIN_Z = 4.5
CHASE_MIN_Z = 5.5


class AudioTooShortError(WatermarkError):
    """The clip is shorter than one watermark block (see :func:`min_samples`)."""


def min_samples(sample_rate: int) -> int:
    """Shortest clip (in samples at ``sample_rate``) that :func:`embed` accepts."""
    return -(-_stdm.MIN_SAMPLES * int(sample_rate) // _stdm.SR)


def _check_rate(sample_rate: object) -> int:
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, np.integer)):
        raise WatermarkError(f"sample_rate must be an integer, not {type(sample_rate).__name__}")
    sr = int(sample_rate)
    if not MIN_RATE <= sr <= MAX_RATE:
        raise WatermarkError(f"sample rate {sr} Hz is outside {MIN_RATE}-{MAX_RATE} Hz")
    return sr


def _as_2d(samples: object) -> npt.NDArray[np.float32]:
    arr = np.asarray(samples)
    if arr.dtype.kind != "f":
        raise WatermarkError(f"samples must be floating point in [-1, 1], not {arr.dtype}")
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2 or arr.shape[1] == 0:
        raise WatermarkError(f"samples must have shape (n,) or (n, channels), not {arr.shape}")
    return arr.astype(np.float32, copy=False)


def _mono16(x: npt.NDArray[np.float32], sr: int) -> npt.NDArray[np.float64]:
    # Column by column: numpy's mean over a short axis 1 took most of the time of
    # this function (the result is the same, (a + b) / 2 in float64 for stereo).
    mix = x[:, 0].astype(np.float64)
    for c in range(1, x.shape[1]):
        mix += x[:, c]
    if x.shape[1] > 1:
        mix /= x.shape[1]
    # nan_to_num makes several passes; a finite clip (always, from embed) needs none
    m: npt.NDArray[np.float64] = (mix if np.isfinite(mix).all() else
                                  np.nan_to_num(mix, nan=0.0, posinf=1.0, neginf=-1.0))
    if sr == _stdm.SR:
        return m
    return np.asarray(soxr.resample(m, sr, _stdm.SR, quality="HQ"), dtype=np.float64)


def embed(samples: npt.ArrayLike, sample_rate: int, payload: bytes,
          key: bytes = DEFAULT_KEY) -> npt.NDArray[np.float32]:
    """Return a copy of ``samples`` carrying the 8-byte ``payload`` under ``key``.

    Raises :class:`AudioTooShortError` if the clip is shorter than
    :func:`min_samples` and :class:`~watermark.WatermarkError` for a bad payload, key,
    rate, dtype, shape or non-finite samples.
    """
    if not isinstance(payload, (bytes, bytearray)) or len(payload) != _ecc.PAYLOAD_BYTES:
        raise WatermarkError(f"payload must be exactly {_ecc.PAYLOAD_BYTES} bytes")
    if not isinstance(key, (bytes, bytearray)) or len(key) == 0:
        raise WatermarkError("key must be non-empty bytes")
    sr = _check_rate(sample_rate)
    x = _as_2d(samples)
    if not np.all(np.isfinite(x)):
        raise WatermarkError("samples contain NaN or infinity")
    need = min_samples(sr)
    if len(x) < need:
        raise AudioTooShortError(
            f"clip is {len(x) / sr:.2f} s; the audio watermark needs at least {need / sr:.2f} s")
    bits = _ecc.encode(bytes(payload), bytes(key))
    mark16 = _stdm.embed16(_mono16(x, sr), bits, bytes(key))
    mark = mark16 if sr == _stdm.SR else soxr.resample(mark16, _stdm.SR, sr, quality="HQ")
    mark32 = np.zeros(len(x), np.float32)
    k = min(len(x), len(mark))
    mark32[:k] = mark[:k]
    # column by column: broadcasting over a 2-wide axis was ~3x slower (same sums)
    out = np.empty_like(x)
    for c in range(x.shape[1]):
        np.add(x[:, c], mark32, out=out[:, c])
    # The mark is a few per cent of the signal: where it would push a sample past
    # full scale, clip there rather than wrap or rescale the whole clip.
    np.clip(out, -1.0, 1.0, out=out)
    result: npt.NDArray[np.float32] = out if np.ndim(samples) == 2 else out[:, 0]
    return result


def detect_with_soft(samples: npt.ArrayLike, sample_rate: int, key: bytes
                     ) -> tuple[Detection, npt.NDArray[np.float64] | None]:
    """Detection plus the soft code bits (positive = 1) of the best-synchronised
    hypothesis, for measuring bit accuracy when decoding fails (benchmark)."""
    if not isinstance(key, (bytes, bytearray)) or len(key) == 0:
        return _core_not_detected(), None
    sr = _check_rate(sample_rate)
    x = _as_2d(samples)
    m = _mono16(x, sr)
    if len(m) < _stdm.N * 2:
        return _core_not_detected(), None
    reads = _stdm.read(m, bytes(key))
    for ro in reads:
        if not ro.z >= DECODE_MIN_Z:
            continue
        payload, nerr = _ecc.decode_soft(ro.soft, bytes(key), chase=ro.z >= CHASE_MIN_Z)
        if payload is not None:
            # Each hypothesis is decoded at most once, so the union over all of them
            # bounds the chance that any decode accepts noise.
            p = _ecc.false_positive_probability(nerr, _stdm.HYPOTHESES)
            return Detection(True, payload, p, nerr, sync_score=ro.z), ro.soft
    if not reads:
        return _core_not_detected(), None
    return Detection(False, None, 1.0, 0, sync_score=reads[0].z), reads[0].soft


def _core_not_detected() -> Detection:
    return Detection(False, None, 1.0, 0)


def detect(samples: npt.ArrayLike, sample_rate: int, key: bytes = DEFAULT_KEY) -> Detection:
    """Look for a mark made with ``key``. Never raises: bad input, clips too short to
    hold a block and anything unexpected are reported as "not detected"."""
    try:
        with np.errstate(all="ignore"):
            return detect_with_soft(samples, sample_rate, key)[0]
    except Exception:  # by contract detect never raises; the cause stays visible at debug level
        _log.debug("audio watermark detection failed; reporting not detected", exc_info=True)
        return _core_not_detected()
