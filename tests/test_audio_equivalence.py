"""The audio watermark's speed work must not change the mark or the detector's
decisions: embed output and detection results on fixed clips against fixtures written
by the implementation before it (bitstream ``.2`` as of commit 37a2826).

The fixtures are regenerated only when the bitstream changes on purpose:
``python -m tests.test_audio_equivalence --write`` (with the implementation whose
results they are meant to pin on the path).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import soxr

from watermark import audio

FIXTURES = Path(__file__).parent / "fixtures" / "audio"
MARK_FIXTURE = FIXTURES / "equivalence_v2_mark.npy"
DETECT_FIXTURE = FIXTURES / "equivalence_v2_detect.json"
PAYLOAD = bytes.fromhex("c0ffee0123456789")
SR = 16000


def synthetic(seconds: float, seed: int) -> np.ndarray:
    """A voiced, syllable-like signal (harmonics with vibrato under a 4 Hz envelope, plus
    noise): deterministic from the seed (numpy's PCG64 stream), no decoder involved."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    f0 = 140 * (1 + 0.05 * np.sin(2 * np.pi * 0.7 * t))
    phase = 2 * np.pi * np.cumsum(f0) / SR
    voiced = sum(np.sin(k * phase) / k for k in range(1, 24))
    env = np.clip(np.sin(2 * np.pi * 4 * t), 0, None) ** 0.5
    x = 0.15 * voiced * env + 0.01 * rng.standard_normal(len(t))
    out: np.ndarray = (0.5 * x / np.max(np.abs(x))).astype(np.float32)
    return out


def _noise(y: np.ndarray, snr_db: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    p = float(np.mean(y.astype(np.float64) ** 2))
    out: np.ndarray = (y + rng.standard_normal(len(y)) * np.sqrt(p / 10 ** (snr_db / 10))).astype(np.float32)
    return out


def _lowpass(y: np.ndarray, hz: float, gain: float) -> np.ndarray:
    spec = np.fft.rfft(y.astype(np.float64))
    spec[int(hz / SR * len(y)):] = 0
    return (gain * np.fft.irfft(spec, len(y))).astype(np.float32)


def detection_cases() -> list[tuple[str, np.ndarray, int, bytes]]:
    """(name, samples, rate, key): mild and harsh attacks, an excerpt, other rates and
    layouts, unmarked audio and a wrong key."""
    x = synthetic(6.0, 1)
    y = audio.embed(x, SR, PAYLOAD)
    y44 = np.asarray(soxr.resample(y, SR, 44100, quality="HQ"), np.float32)
    stereo = np.stack([0.9 * y44, 0.6 * y44], axis=1)
    return [
        ("none", y, SR, audio.DEFAULT_KEY),
        ("noise-30dB", _noise(y, 30, 4), SR, audio.DEFAULT_KEY),
        ("noise-23dB", _noise(y, 23, 5), SR, audio.DEFAULT_KEY),
        ("noise-21dB", _noise(y, 21, 6), SR, audio.DEFAULT_KEY),  # Chase: 18 errors
        ("noise-20dB", _noise(y, 20, 2), SR, audio.DEFAULT_KEY),
        ("noise-10dB", _noise(y, 10, 3), SR, audio.DEFAULT_KEY),
        ("excerpt-3s", y[int(1.2345 * SR):int(4.2345 * SR)], SR, audio.DEFAULT_KEY),
        ("resample-22050", np.asarray(soxr.resample(y, SR, 22050, quality="HQ"), np.float32), 22050,
         audio.DEFAULT_KEY),
        ("stereo-44100", stereo, 44100, audio.DEFAULT_KEY),
        ("lowpass-4.8k-6dB", _lowpass(y, 4800, 0.5), SR, audio.DEFAULT_KEY),
        # 3 % faster: the detector does not search speed, so this one is not found
        ("speed+3%", np.asarray(soxr.resample(y, SR, round(SR / 1.03), quality="HQ"), np.float32), SR,
         audio.DEFAULT_KEY),
        ("unmarked", x, SR, audio.DEFAULT_KEY),
        ("wrong-key", y, SR, b"another key"),
    ]


def _result(samples: np.ndarray, rate: int, key: bytes) -> dict[str, object]:
    d, soft = audio.detect_with_soft(samples, rate, key)
    return {"detected": d.detected, "payload": None if d.payload is None else d.payload.hex(),
            "bit_errors_corrected": d.bit_errors_corrected, "p_value": d.p_value,
            "sync_score": d.sync_score, "soft": None if soft is None else [float(v) for v in soft]}


def embed_case() -> tuple[np.ndarray, np.ndarray]:
    x = synthetic(2.2, 7)
    return x, audio.embed(x, SR, PAYLOAD) - x


def test_embed_matches_the_previous_implementation() -> None:
    x, mark = embed_case()
    old = np.load(MARK_FIXTURE).astype(np.float32)  # stored as float16 (half the size)
    assert mark.shape == old.shape
    # float16 keeps ~11 bits: a change of the mark itself (one class instance quantised
    # to another lattice point changes a whole 64 ms slot) is orders of magnitude larger
    assert np.max(np.abs(mark - old)) <= 1e-3 * np.max(np.abs(old)) + 1e-7
    assert np.max(np.abs(mark)) > 1e-3  # the clip does carry a mark
    assert audio.detect(x + mark, SR).payload == PAYLOAD


@pytest.mark.parametrize("case", [c[0] for c in detection_cases()])
def test_detection_matches_the_previous_implementation(case: str) -> None:
    expected = json.loads(DETECT_FIXTURE.read_text())[case]
    _, samples, rate, key = next(c for c in detection_cases() if c[0] == case)
    got = _result(samples, rate, key)
    for field in ("detected", "payload", "bit_errors_corrected", "p_value"):
        assert got[field] == expected[field], field
    # the sync search runs in float32: its z-scores agree to float32 rounding
    assert got["sync_score"] == pytest.approx(expected["sync_score"], abs=1e-3)
    if expected["soft"] is None:
        assert got["soft"] is None
    else:
        old, new = np.array(expected["soft"]), np.array(got["soft"])
        assert np.max(np.abs(new - old)) <= 1e-4 * np.max(np.abs(old))


def test_cases_cover_both_outcomes() -> None:
    outcomes = [v["detected"] for v in json.loads(DETECT_FIXTURE.read_text()).values()]
    assert any(outcomes) and not all(outcomes)


def _write() -> None:
    _, mark = embed_case()
    np.save(MARK_FIXTURE, mark.astype(np.float16))
    results = {name: _result(s, r, k) for name, s, r, k in detection_cases()}
    DETECT_FIXTURE.write_text(json.dumps(results, indent=1) + "\n")
    print({k: (v["detected"], v["sync_score"]) for k, v in results.items()})


if __name__ == "__main__" and sys.argv[1:] == ["--write"]:
    _write()
