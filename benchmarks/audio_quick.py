"""Quick A/B harness for the audio watermark (minutes, not the full benchmark).

    python -m benchmarks.audio_quick --set TILE_LO=8 --set DELTA=0.55

6 clips (3 speech, 3 music) x ``--payloads`` random payloads, the required rows that
decide a change (Opus 32k, white noise 20 dB, MP3 64k, 5 s excerpt + MP3 64k) and a
few passing ones; prints one line: SNR (speech / music), PESQ-WB on speech, exact
64-bit recovery % (payload bit accuracy %) per attack. ``--set`` overrides a numeric
constant of ``watermark.audio._stdm`` for the run (embed and detect alike), which is
how the variants in watermark/AUDIO.md were measured.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from watermark import audio
from watermark.audio import _stdm

from . import audio_bench as bench

CLIPS = ("speech-f-librispeech", "speech-m-cmu-arctic", "tts-en-us",
         "music-band-stereo", "trumpet-stereo", "synth-music-44k")
ATTACKS = ("none", "opus-32k", "white-noise-20dB", "mp3-64k", "excerpt-5s+mp3-64k",
           "aac-96k", "excerpt-5s", "volume+6dB-limiter")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                    help="override a numeric constant of watermark.audio._stdm")
    ap.add_argument("--payloads", type=int, default=2)
    args = ap.parse_args(argv)
    for item in args.set:
        name, value = item.split("=", 1)
        old = getattr(_stdm, name)
        setattr(_stdm, name, type(old)(float(value)))
    t0 = time.time()
    attacks = dict(bench.REQUIRED)
    rng = np.random.default_rng(12)
    clips = [c for c in bench.sources()[0] if c[0] in CLIPS]
    res: dict[str, list[tuple[bool, float]]] = {a: [] for a in ATTACKS}
    snr: dict[str, list[float]] = {"speech": [], "music": []}
    pesqs: list[float] = []
    for _name, kind, x, sr in clips:
        for _ in range(args.payloads):
            payload = rng.bytes(8)
            y = audio.embed(x, sr, payload)
            snr[kind].append(bench.snr_db(x, y))
            p = bench.pesq_wb(x, y, sr) if kind == "speech" else None
            if p is not None:
                pesqs.append(p)
            for a in ATTACKS:
                z, zr = attacks[a](y, sr, rng)
                d, soft = audio.detect_with_soft(z, zr, audio.DEFAULT_KEY)
                res[a].append((d.detected and d.payload == payload,
                               bench.payload_bit_accuracy(soft, payload)))
    cells = " | ".join(f"{a} {100 * np.mean([o for o, _ in r]):.0f} ({100 * np.mean([b for _, b in r]):.0f})"
                       for a, r in res.items())
    label = " ".join(args.set) or "defaults"
    print(f"{label}: SNR {np.mean(snr['speech']):.1f} / {np.mean(snr['music']):.1f} dB, "
          f"PESQ {np.mean(pesqs) if pesqs else float('nan'):.2f} | {cells} [{time.time() - t0:.0f} s]")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
