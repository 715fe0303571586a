"""watermark.audio: round trips over rates and channel layouts, mild attacks (those the
benchmark shows passing), keys, false positives on a small sample and bad input."""

from __future__ import annotations

import io
from functools import cache
from pathlib import Path

import av
import numpy as np
import pytest
import soundfile as sf
import soxr

import watermark
from watermark import _ecc, audio
from watermark.audio import _stdm

FIXTURES = Path(__file__).parent / "fixtures" / "audio"
PAYLOAD = bytes.fromhex("0123456789abcdef")


@cache
def speech16() -> np.ndarray:
    """10 s of real read speech (LibriSpeech, CC BY 4.0) at 16 kHz, mono."""
    d, sr = sf.read(FIXTURES / "speech_librispeech_198-209-0000.ogg", dtype="float32")
    assert sr == 16000
    return d[: 10 * sr]


@cache
def music44() -> np.ndarray:
    d, sr = sf.read(FIXTURES / "music_kevin-macleod_vibe-ace_20-32s.ogg", dtype="float32",
                    always_2d=True)
    assert sr == 44100
    return d[: 10 * sr]


def at_rate(x: np.ndarray, sr: int) -> np.ndarray:
    return x if sr == 16000 else soxr.resample(x, 16000, sr).astype(np.float32)


def mp3(x: np.ndarray, sr: int, kbps: int, fmt: str = "mp3", codec: str = "libmp3lame"
        ) -> tuple[np.ndarray, int]:
    buf = io.BytesIO()
    with av.open(buf, "w", format=fmt) as c:
        s = c.add_stream(codec, rate=sr)
        s.bit_rate = kbps * 1000
        s.layout = "mono"
        fr = av.AudioFrame.from_ndarray(np.ascontiguousarray(x[None, :]), format="fltp", layout="mono")
        fr.sample_rate = sr
        for p in [*s.encode(fr), *s.encode(None)]:
            c.mux(p)
    buf.seek(0)
    with av.open(buf) as c:
        parts = [f.to_ndarray().reshape(-1) for f in c.decode(audio=0)]
    return np.concatenate(parts).astype(np.float32), sr


def snr(x: np.ndarray, y: np.ndarray) -> float:
    return float(10 * np.log10(np.sum(x.astype(np.float64) ** 2) / np.sum((x - y.astype(np.float64)) ** 2)))


def assert_found(d: watermark.Detection, payload: bytes = PAYLOAD) -> None:
    assert d.detected and d.payload == payload, d
    assert d.p_value <= _ecc.false_positive_probability(d.bit_errors_corrected, _stdm.HYPOTHESES)
    assert d.p_value < 1e-12


# ----------------------------------------------------------------- round trips
@pytest.mark.parametrize(("sr", "channels"), [(8000, 1), (16000, 1), (44100, 2), (48000, 6),
                                              (96000, 2), (22050, 0)])
def test_round_trip_rates_and_layouts(sr: int, channels: int) -> None:
    mono = at_rate(speech16()[: 4 * 16000], sr)  # 4 s: two blocks
    x = mono if channels == 0 else np.stack([mono * (0.5 + 0.1 * c) for c in range(channels)], axis=1)
    y = audio.embed(x, sr, PAYLOAD)
    assert y.shape == x.shape and y.dtype == np.float32
    assert np.max(np.abs(y)) <= 1.0
    assert snr(x, y) > 25
    assert_found(audio.detect(y, sr))
    assert not audio.detect(x, sr).detected


def test_embed_is_deterministic_and_input_untouched() -> None:
    x = speech16()[: 3 * 16000].copy()
    before = x.copy()
    a = audio.embed(x, 16000, PAYLOAD)
    np.testing.assert_array_equal(x, before)
    np.testing.assert_array_equal(a, audio.embed(x, 16000, PAYLOAD))


def test_several_payloads_on_music() -> None:
    x = music44()[: 5 * 44100]
    for payload in (bytes(8), b"\xff" * 8, PAYLOAD):
        assert_found(audio.detect(audio.embed(x, 44100, payload), 44100), payload)


# ----------------------------------------------------------------- mild attacks
@pytest.fixture(scope="module")
def marked_speech() -> np.ndarray:
    return audio.embed(speech16()[: 6 * 16000], 16000, PAYLOAD)


def test_survives_mp3_128k(marked_speech: np.ndarray) -> None:
    assert_found(audio.detect(*mp3(marked_speech, 16000, 128)))


def test_survives_mp3_64k_and_aac_96k(marked_speech: np.ndarray) -> None:
    assert_found(audio.detect(*mp3(marked_speech, 16000, 64)))
    assert_found(audio.detect(*mp3(marked_speech, 16000, 96, "adts", "aac")))


def opus(x: np.ndarray, sr: int, kbps: int) -> tuple[np.ndarray, int]:
    """Through libopus (a voice message); the decoder's output rate is returned."""
    buf = io.BytesIO()
    with av.open(buf, "w", format="ogg") as c:
        s = c.add_stream("libopus", rate=sr)
        s.bit_rate = kbps * 1000
        s.layout = "mono"
        fr = av.AudioFrame.from_ndarray(np.ascontiguousarray(x[None, :]), format="fltp", layout="mono")
        fr.sample_rate = sr
        for p in [*s.encode(fr), *s.encode(None)]:
            c.mux(p)
    buf.seek(0)
    with av.open(buf) as c:
        frames = list(c.decode(audio=0))
    y = np.concatenate([f.to_ndarray().reshape(-1) for f in frames]).astype(np.float32)
    return y, frames[0].sample_rate


def test_survives_opus_48k(marked_speech: np.ndarray) -> None:
    assert_found(audio.detect(*opus(marked_speech, 16000, 48)))


def test_survives_white_noise_at_35db(marked_speech: np.ndarray) -> None:
    rms = float(np.sqrt(np.mean(marked_speech.astype(np.float64) ** 2)))
    noise = np.random.default_rng(0).standard_normal(len(marked_speech)) * rms * 10 ** (-35 / 20)
    assert_found(audio.detect((marked_speech + noise).astype(np.float32), 16000))


def test_survives_resampling_and_volume(marked_speech: np.ndarray) -> None:
    up = soxr.resample(marked_speech, 16000, 44100).astype(np.float32)
    assert_found(audio.detect(up, 44100))
    assert_found(audio.detect(soxr.resample(up, 44100, 22050).astype(np.float32), 22050))
    assert_found(audio.detect(marked_speech * 0.5, 16000))


def test_survives_lowpass_5khz() -> None:
    x = music44()[: 5 * 44100]
    y = audio.embed(x, 44100, PAYLOAD)
    spec = np.fft.rfft(y, axis=0)
    spec[np.fft.rfftfreq(len(y), 1 / 44100) > 5000] = 0
    assert_found(audio.detect(np.fft.irfft(spec, n=len(y), axis=0).astype(np.float32), 44100))


@pytest.mark.parametrize("offset", [0, 7777, 15000])
def test_five_second_excerpt_at_any_offset(marked_speech: np.ndarray, offset: int) -> None:
    assert_found(audio.detect(marked_speech[offset:offset + 5 * 16000], 16000))


# ----------------------------------------------------------------- keys, false positives
def test_wrong_key_not_detected(marked_speech: np.ndarray) -> None:
    for k in (b"another key", b"\x00"):
        assert not audio.detect(marked_speech, 16000, k).detected
    mine = audio.embed(speech16()[: 4 * 16000], 16000, PAYLOAD, key=b"private")
    assert_found(audio.detect(mine, 16000, b"private"))
    assert not audio.detect(mine, 16000).detected


def test_unmarked_audio_not_detected() -> None:
    rng = np.random.default_rng(5)
    windows = [speech16()[o:o + 5 * 16000] for o in (0, 40000, 80000)]
    windows += [music44()[o:o + 5 * 44100] for o in (0, 100000)]
    windows += [(rng.standard_normal(5 * 16000) * 0.1).astype(np.float32)]
    for w in windows:
        d = audio.detect(w, 44100 if w.ndim == 2 else 16000)
        assert not d.detected and d.p_value == 1.0 and d.payload is None


# ----------------------------------------------------------------- edge cases
def test_silence_stays_silent_and_is_not_detected() -> None:
    z = np.zeros((3 * 48000, 2), np.float32)
    np.testing.assert_array_equal(audio.embed(z, 48000, PAYLOAD), z)
    assert not audio.detect(z, 48000).detected


def test_silent_gap_stays_silent() -> None:
    x = speech16()[: 4 * 16000].copy()
    x[16000:32000] = 0
    y = audio.embed(x, 16000, PAYLOAD)
    # the mark is a gain on the signal's own STFT: only window overlap reaches into the gap
    assert np.max(np.abs(y[16000 + 512:32000 - 512])) == 0.0


def test_dc_offset_and_clipping() -> None:
    x = speech16()[: 4 * 16000]
    dc = np.clip(x + 0.3, -1, 1)
    assert_found(audio.detect(audio.embed(dc, 16000, PAYLOAD), 16000))
    loud = np.clip(x * 8, -1, 1)  # heavily clipped
    y = audio.embed(loud, 16000, PAYLOAD)
    assert np.max(np.abs(y)) <= 1.0
    assert_found(audio.detect(y, 16000))
    assert not audio.detect(np.full(16000 * 4, 0.5, np.float32), 16000).detected


@pytest.mark.parametrize("n", [0, 1, 100])
def test_tiny_clips(n: int) -> None:
    x = np.full(n, 0.1, np.float32)
    with pytest.raises(audio.AudioTooShortError):
        audio.embed(x, 16000, PAYLOAD)
    d = audio.detect(x, 16000)
    assert not d.detected and d.payload is None
    assert not audio.detect(np.zeros((n, 2), np.float32), 44100).detected


def test_too_short_boundary() -> None:
    assert issubclass(audio.AudioTooShortError, watermark.WatermarkError)
    sr = 44100
    need = audio.min_samples(sr)
    assert 2.0 < need / sr < 2.2
    x = at_rate(speech16(), sr)
    with pytest.raises(audio.AudioTooShortError, match="at least"):
        audio.embed(x[: need - 1], sr, PAYLOAD)
    assert audio.embed(x[:need], sr, PAYLOAD).shape == (need,)


@pytest.mark.parametrize(("samples", "sr", "payload", "key", "match"), [
    (np.zeros(50000, np.int16), 16000, PAYLOAD, audio.DEFAULT_KEY, "floating point"),
    (np.zeros((2, 50000, 1), np.float32), 16000, PAYLOAD, audio.DEFAULT_KEY, "shape"),
    (np.zeros((50000, 0), np.float32), 16000, PAYLOAD, audio.DEFAULT_KEY, "shape"),
    (np.zeros(50000, np.float32), 4000, PAYLOAD, audio.DEFAULT_KEY, "outside"),
    (np.zeros(50000, np.float32), 192000, PAYLOAD, audio.DEFAULT_KEY, "outside"),
    (np.zeros(50000, np.float32), 16000.0, PAYLOAD, audio.DEFAULT_KEY, "integer"),
    (np.full(50000, np.nan, np.float32), 16000, PAYLOAD, audio.DEFAULT_KEY, "NaN"),
    (np.zeros(50000, np.float32), 16000, b"short", audio.DEFAULT_KEY, "8 bytes"),
    (np.zeros(50000, np.float32), 16000, PAYLOAD, b"", "key"),
])
def test_bad_input_raises_watermark_error(samples: np.ndarray, sr: object, payload: bytes, key: bytes,
                                          match: str) -> None:
    with pytest.raises(watermark.WatermarkError, match=match):
        audio.embed(samples, sr, payload, key)  # type: ignore[arg-type]
    assert not audio.detect(samples, sr, key).detected  # type: ignore[arg-type]


def test_detect_tolerates_nan_and_inf(marked_speech: np.ndarray) -> None:
    y = marked_speech.copy()
    y[1000:1010] = np.nan
    y[5000] = np.inf
    assert_found(audio.detect(y, 16000))


def test_algorithm_name_differs_from_images() -> None:
    assert audio.ALGORITHM != watermark.ALGORITHM
    assert audio.ALGORITHM.startswith("io.github.provenance-py.audio-watermark.")


def _reference_sync_scores(m: np.ndarray, key: bytes) -> np.ndarray:
    """z of every (phase, start, shift) hypothesis, evaluated one (phase, start) at a
    time in float64 straight from the definitions (the detector batches all of them
    in float32): (PHASES, SLOT_FRAMES, NSLOTS)."""
    lay = _stdm.layout(key)
    lp_all = _stdm.tile_log_power(_stdm.stft(m, _stdm.FINE_HOP))
    z = np.full((_stdm.PHASES, _stdm.SLOT_FRAMES, _stdm.NSLOTS), np.nan)
    for ph in range(_stdm.PHASES):
        lp = lp_all[ph::_stdm.PHASES]
        d, w = _stdm.relative(lp), _stdm.weights(lp)
        for start in range(_stdm.SLOT_FRAMES):
            dv, wv = _stdm._windows(d, start), _stdm._windows(w, start)
            a, sync, _ = _stdm._scores(dv, wv, lay, _stdm.DELTA)
            for shift in range(_stdm.NSLOTS):
                slot = (np.arange(len(dv)) + shift) % _stdm.NSLOTS
                cols = slot[:, None] * _stdm.CLASSES_PER_SLOT + np.arange(_stdm.CLASSES_PER_SLOT)
                rows = np.arange(len(dv))[:, None]
                num = np.sum(a[rows, cols] * sync[rows, cols])
                den = np.sum(a[rows, cols] ** 2)
                z[ph, start, shift] = num / np.sqrt(max(den, 1e-12) / 2.0)
    return z


@pytest.mark.parametrize("marked", [True, False])
def test_batched_sync_search_matches_direct_evaluation(marked: bool) -> None:
    """The fast search (one float32 DFT, all hypotheses batched) ranks the same
    hypotheses with the same scores as evaluating each one directly."""
    x = speech16()[: 3 * 16000 + 1234]
    if marked:
        x = audio.embed(x, 16000, PAYLOAD)
    m = x.astype(np.float64)
    ref = _reference_sync_scores(m, audio.DEFAULT_KEY)
    got = _stdm.read(m, audio.DEFAULT_KEY)
    assert len(got) == 3
    for r in got:
        assert abs(r.z - ref[r.phase, r.start, r.shift]) < 1e-3
    # the best hypothesis is the direct evaluation's best
    assert abs(got[0].z - np.nanmax(ref)) < 1e-3
    assert (got[0].z > 10) == marked
