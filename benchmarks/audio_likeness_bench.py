"""Audio likeness benchmark: does recovery tell the stamped clip from a copied identifier?

Run from the repository root (pinned to one core, about a minute)::

    OMP_NUM_THREADS=1 taskset -c 1 .venv/bin/python -m benchmarks.audio_likeness_bench

The output is printed and written to benchmarks/results/audio-likeness.txt.

Clips: the five CC-licensed recordings of tests/fixtures/audio (two speakers, a band,
a trumpet, whale song), each stamped as ``provenance.stamp`` does (the reference is
the fingerprint of the whole clip). Genuine: the clip after each attack (codecs through
PyAV, resampling, excerpts cut at a fractional offset). Copied: 5 s windows of every
other clip at two offsets, the situation of an identifier read from this clip and
embedded into other audio; the likeness only depends on the audio and the reference,
not on the identifier the mark carries. Plus another sentence of the same speaker.
"""

from __future__ import annotations

import platform
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import soxr

from provenance._internal import audio_likeness
from provenance._internal.audio import AudioClip, decode_audio, encode_audio

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures" / "audio"
RESULT = ROOT / "benchmarks" / "results" / "audio-likeness.txt"


def _attacks(clip: AudioClip) -> Iterator[tuple[str, np.ndarray, int]]:
    x, sr = clip.samples, clip.sample_rate
    yield "none", x, sr
    for container, rate in (("mp3", 128000), ("mp3", 64000), ("m4a", 96000), ("ogg", 32000), ("ogg", 16000)):
        d = decode_audio(encode_audio(x, sr, container, bit_rate=rate), "x")
        yield f"{container}-{rate // 1000}k", d.samples, d.sample_rate
    yield "resample-8k", soxr.resample(x, sr, 8000).astype(np.float32), 8000
    offset = int(1.3 * sr)  # not a multiple of the fingerprint's hop
    yield "excerpt-5s", x[offset : offset + 5 * sr], sr
    d = decode_audio(encode_audio(x[offset : offset + 5 * sr], sr, "mp3", bit_rate=64000), "x")
    yield "excerpt-5s+mp3-64k", d.samples, d.sample_rate
    yield "excerpt-3s", x[offset : offset + 3 * sr], sr


def main() -> None:
    started = time.time()
    clips = {
        p.stem.split("_")[0] + "-" + p.stem.split("_")[1]: decode_audio(p.read_bytes(), p.name)
        for p in sorted(FIXTURES.glob("*.ogg"))
    }
    lines = [
        f"# audio likeness benchmark, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        f"# machine: {platform.machine()}, Python {platform.python_version()}, numpy {np.__version__}",
        f"# threshold SAME_AUDIO = {audio_likeness.SAME_AUDIO}; likeness = 1 - 2 x bit error rate",
        "",
    ]
    genuine: list[float] = []
    copied: list[float] = []
    cpu: list[float] = []
    for name, clip in clips.items():
        reference = audio_likeness.reference(clip.samples, clip.sample_rate)
        lines.append(f"{name} ({clip.seconds:.1f} s, {clip.sample_rate} Hz, {clip.channels} ch; "
                     f"reference {len(reference)} bytes)")
        row = []
        for attack, samples, rate in _attacks(clip):
            t = time.process_time()
            score = audio_likeness.similarity(reference, samples, rate)
            cpu.append(time.process_time() - t)
            genuine.append(score)
            row.append(f"{attack} {score:.2f}")
        lines.append("  genuine: " + ", ".join(row))
        row = []
        for other, oclip in clips.items():
            if other == name:
                continue
            for start in (0, 3):
                window = oclip.samples[start * oclip.sample_rate : (start + 5) * oclip.sample_rate]
                score = audio_likeness.similarity(reference, window, oclip.sample_rate)
                copied.append(score)
                row.append(f"{other}@{start}s {score:.2f}")
        lines.append("  copied:  " + ", ".join(row))
    speaker = clips["speech-cmu-arctic"]
    sr = speaker.sample_rate
    score = audio_likeness.similarity(
        audio_likeness.reference(speaker.samples[: 4 * sr], sr), speaker.samples[6 * sr :], sr
    )
    copied.append(score)
    lines += [
        f"same speaker, another sentence: {score:.2f}",
        "",
        f"genuine: {len(genuine)} comparisons, min {min(genuine):.2f}, median {np.median(genuine):.2f}; "
        f"below the threshold: {sum(s < audio_likeness.SAME_AUDIO for s in genuine)}",
        f"copied:  {len(copied)} comparisons, max {max(copied):.2f}, median {np.median(copied):.2f}; "
        f"at or above the threshold: {sum(s >= audio_likeness.SAME_AUDIO for s in copied)}",
        f"CPU per comparison (one core): median {1000 * np.median(cpu):.0f} ms",
        f"# run time {time.time() - started:.0f} s",
    ]
    text = "\n".join(lines) + "\n"
    sys.stdout.write(text)
    RESULT.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
