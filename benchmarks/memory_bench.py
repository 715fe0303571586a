"""Peak memory of ``verify``, ``sign`` and ``stamp`` on a 1 GB video, a 200-megapixel image and
an hour of audio.

Run: ``make bench-memory`` (``taskset -c 1 .venv/bin/python -m benchmarks.memory_bench``;
``--audio`` for the audio rows alone, which it then writes to ``memory_audio.txt``).
Goal: every command under 500 MB of peak resident memory, whatever the file size.

The inputs are generated in a temporary folder: the 1 GB MP4 is a short x264 clip
(PyAV, high bit rate) whose packets are remuxed over and over with shifted
timestamps, without re-encoding; the image is 16000x12500 pixels (200 MP, the
default pixel limit): scikit-image's astronaut upscaled, with film-like grain, as
JPEG and PNG; the audio is an hour of 44.1 kHz stereo (chords under a slow envelope, with
noise), written in blocks as 16-bit WAV and FLAC. Each command runs as the real CLI in a
fresh process; its peak is the ``ru_maxrss`` of that process (and, for ``stamp``, of its largest worker).
Linux starts a child's ``ru_maxrss`` at its parent's peak, so the inputs are
made in separate processes and this one stays small (its own peak is printed as
the floor of the table). Writes ``benchmarks/results/memory.txt``.
"""

from __future__ import annotations

import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from fractions import Fraction
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results" / "memory.txt"
AUDIO_RESULTS = RESULTS.with_name("memory_audio.txt")
AUDIO_SECONDS = 3600
AUDIO_RATE = 44100
PROVENANCE = Path(sys.executable).parent / "provenance"
GOAL_MB = 500
VIDEO_BYTES = 1 << 30
IMAGE_SIZE = (16000, 12500)


def make_video(path: Path, target: int = VIDEO_BYTES) -> int:
    """A ~``target``-byte MP4: a 2-second 1280x720 clip encoded once, its packets looped."""
    import av
    import numpy as np

    clip = path.with_suffix(".clip.mp4")
    rng = np.random.default_rng(7)
    base = rng.integers(0, 256, (720, 1280, 3), dtype=np.uint8)
    with av.open(str(clip), "w") as out:
        stream = out.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 1280, 720, "yuv420p"
        stream.options = {"crf": "0", "preset": "ultrafast", "g": "50"}
        for i in range(50):
            frame = av.VideoFrame.from_ndarray(np.roll(base, 7 * i, axis=1), format="rgb24")
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    with av.open(str(clip)) as src:
        packets = [p for p in src.demux(src.streams.video[0]) if p.size]
        template = src.streams.video[0]
        span = max(int(p.pts) + int(p.duration or 0) for p in packets)
        clip_bytes = sum(p.size for p in packets)
        loops = max(1, target // clip_bytes)
        with av.open(str(path), "w", options={"movflags": "+faststart"}) as out:
            stream = out.add_stream_from_template(template)
            for loop in range(loops):
                for packet in packets:
                    packet.stream = stream
                    packet.pts = int(packet.pts) + (span if loop else 0)
                    packet.dts = int(packet.dts) + (span if loop else 0)
                    packet.time_base = Fraction(template.time_base)  # type: ignore[arg-type]
                    out.mux(packet)
    clip.unlink()
    return path.stat().st_size


def make_image(path: Path, fmt: str) -> None:
    import numpy as np
    from PIL import Image
    from skimage import data as skdata

    width, height = IMAGE_SIZE
    photo = Image.fromarray(skdata.astronaut()).resize((width, height), Image.Resampling.BICUBIC)
    pixels = np.array(photo)
    del photo
    rng = np.random.default_rng(1)
    # Grain in row strips, so no second full-size array is needed; it gives the
    # upscaled photograph the fine texture of a real one (the watermark needs some).
    for top in range(0, height, 500):
        strip = pixels[top : top + 500].astype(np.int16)
        strip += rng.integers(-6, 7, (strip.shape[0], width, 1), dtype=np.int16)
        pixels[top : top + 500] = strip.clip(0, 255)
    options = {"quality": 90} if fmt == "JPEG" else {"compress_level": 1}
    Image.fromarray(pixels).save(path, fmt, **options)


def make_audio(path: Path, fmt: str, seconds: int = AUDIO_SECONDS) -> None:
    """``seconds`` of 44.1 kHz stereo music-like sound, written a minute at a time."""
    import numpy as np
    import soundfile

    rng = np.random.default_rng(3)
    with soundfile.SoundFile(path, "w", AUDIO_RATE, 2, "PCM_16", format=fmt) as out:
        for minute in range(0, seconds, 60):
            n = min(60, seconds - minute) * AUDIO_RATE
            t = (minute * AUDIO_RATE + np.arange(n)) / AUDIO_RATE
            root = 110.0 * 2 ** (int(t[0] / 8) % 12 / 12)
            chord = sum(np.sin(2 * np.pi * root * r * t) for r in (1.0, 1.26, 1.5, 2.0))
            envelope = 0.15 * (1.2 + np.sin(2 * np.pi * 0.5 * t)) * (0.6 + 0.4 * np.sin(2 * np.pi * 0.05 * t))
            left = envelope * chord + 0.01 * rng.standard_normal(n)
            right = envelope * np.roll(chord, 50) + 0.01 * rng.standard_normal(n)
            out.write(np.stack([left, right], axis=1).astype(np.float32) * 0.5)


def _generate(kind: str, path: Path) -> None:
    """Make an input in a child process, keeping this process's peak (every child's floor) low."""
    target = f"Path({str(path)!r})"
    if kind == "video":
        call = f"make_video({target})"
    elif kind in ("WAV", "FLAC"):
        call = f"make_audio({target}, {kind!r})"
    else:
        call = f"make_image({target}, {kind!r})"
    code = f"from pathlib import Path; from benchmarks.memory_bench import *; {call}"
    subprocess.run([sys.executable, "-c", code], check=True)


def peak(args: list[str], env: dict[str, str]) -> tuple[int, float, int]:
    """Peak RSS (bytes), seconds and exit code of one CLI run.

    wait4's ru_maxrss covers the process and the children it waited for, so
    stamp's largest worker is included.
    """
    start = time.perf_counter()
    proc = subprocess.Popen([str(PROVENANCE), *args], env=env, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return usage.ru_maxrss * 1024, time.perf_counter() - start, proc.returncode


# c2pa-python by itself, from a file stream to a file stream (sign) or reading one
# (verify), with no code of this library in between: the floor under our numbers.
_C2PA_ALONE = """
import json, sys, c2pa
mode, src, mime = sys.argv[1:4]
settings = {"verify": {"remote_manifest_fetch": False, "ocsp_fetch": False}}
if sys.argv[6:] == ["merkle"]:  # the setting this library signs with (provenance.sign.signing_settings)
    settings["core"] = {"merkle_tree_chunk_size_in_kb": 1024}
ctx = c2pa.Context.from_dict(settings)
if mode == "verify":
    with open(src, "rb") as stream:
        reader = c2pa.Reader(mime, stream, None, ctx)
        json.loads(reader.json())
else:
    home = sys.argv[4]
    chain = open(f"{home}/identity/signing-chain.pem", "rb").read()
    key = open(f"{home}/identity/signing-key.pem", "rb").read()
    info = c2pa.C2paSignerInfo(b"es256", chain, key, None)
    signer = c2pa.Signer.from_info(info)
    source = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
    created = {"action": "c2pa.created", "digitalSourceType": source}
    definition = {"claim_generator_info": [{"name": "bench"}], "title": "bench", "format": mime,
                  "assertions": [{"label": "c2pa.actions", "data": {"actions": [created]}}]}
    with c2pa.Builder(definition, context=ctx) as builder, open(src, "rb") as i, open(sys.argv[5], "wb") as o:
        builder.sign(signer, mime, i, o)
"""


def c2pa_alone(
    mode: str, src: Path, mime: str, home: Path, out: Path | None = None, merkle: bool = False
) -> tuple[int, float, int]:
    """Peak RSS, seconds and exit code of c2pa-python alone signing or reading ``src``
    (with its default settings, or hashing MP4 media data as 1 MB Merkle leaves as we do)."""
    args = [sys.executable, "-c", _C2PA_ALONE, mode, str(src), mime, str(home), str(out or "")]
    args += ["merkle"] if merkle else []
    start = time.perf_counter()
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    return usage.ru_maxrss * 1024, time.perf_counter() - start, os.waitstatus_to_exitcode(status)


def audio_rows(folder: Path, env: dict[str, str]) -> list[tuple[str, str, int, float, int]]:
    """An hour of audio: stamp, watermark embed and verify, each in blocks."""
    rows: list[tuple[str, str, int, float, int]] = []
    for fmt in ("WAV", "FLAC"):
        audio = folder / f"hour.{fmt.lower()}"
        _generate(fmt, audio)
        label = f"1 h 44.1 kHz stereo {fmt} ({audio.stat().st_size / 2**20:.0f} MiB)"
        stamped = folder / "stamped-audio"
        stamp = ["stamp", str(audio), "-o", str(stamped), "--model", "b", "--jobs", "1"]
        rows.append((label, "stamp", *peak(stamp, env)))
        rows.append((label, "verify", *peak(["verify", str(stamped / audio.name)], env)))
        alone = folder / f"c2pa-alone.{fmt.lower()}"
        mime = f"audio/{fmt.lower()}"
        floor = c2pa_alone("sign", audio, mime, folder / "home", alone)
        rows.append((label, "sign, c2pa-python alone", *floor))
        alone.unlink(missing_ok=True)
        marked = folder / f"marked.{fmt.lower()}"
        embed = ["watermark", "embed", str(audio), "-o", str(marked), "--payload", "0123456789abcdef"]
        rows.append((label, "watermark embed", *peak(embed, env)))
        for leftover in (audio, marked, stamped / audio.name):
            leftover.unlink(missing_ok=True)
    return rows


def main_audio() -> str:
    with tempfile.TemporaryDirectory(prefix="memory-bench-") as tmp:
        folder = Path(tmp)
        env = {**os.environ, "PROVENANCE_HOME": str(folder / "home")}
        subprocess.run([str(PROVENANCE), "keys", "init"], env=env, check=True, capture_output=True)
        rows = audio_rows(folder, env)
    floor = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return _table(rows, floor)


def main() -> str:
    rows: list[tuple[str, str, int, float, int]] = []
    with tempfile.TemporaryDirectory(prefix="memory-bench-") as tmp:
        folder = Path(tmp)
        env = {**os.environ, "PROVENANCE_HOME": str(folder / "home")}
        subprocess.run([str(PROVENANCE), "keys", "init"], env=env, check=True, capture_output=True)
        video = folder / "video.mp4"
        _generate("video", video)
        size = video.stat().st_size
        label = f"video MP4, {size / 2**30:.2f} GiB"
        sign = ["sign", str(video), "-o", str(folder / "video-signed.mp4"), "--model", "bench"]
        rows.append((label, "sign", *peak(sign, env)))
        rows.append((label, "verify", *peak(["verify", str(folder / "video-signed.mp4")], env)))
        alone = folder / "video-c2pa.mp4"
        home = folder / "home"
        for merkle, how in ((True, "1 MB Merkle"), (False, "defaults")):
            signing = c2pa_alone("sign", video, "video/mp4", home, alone, merkle)
            rows.append((label, f"sign, c2pa alone, {how}", *signing))
            reading = c2pa_alone("verify", alone, "video/mp4", home, merkle=merkle)
            rows.append((label, f"verify, c2pa alone, {how}", *reading))
            alone.unlink(missing_ok=True)
        rows.append((label, "stamp", 0, 0.0, -1))  # stamping writes images and audio only
        video.unlink()
        (folder / "video-signed.mp4").unlink()
        for fmt in ("JPEG", "PNG"):
            image = folder / f"image.{fmt.lower()}"
            _generate(fmt, image)
            label = f"{IMAGE_SIZE[0]}x{IMAGE_SIZE[1]} {fmt} ({image.stat().st_size / 2**20:.0f} MiB)"
            signed = folder / f"signed.{fmt.lower()}"
            rows.append((label, "sign", *peak(["sign", str(image), "-o", str(signed), "--model", "b"], env)))
            rows.append((label, "verify", *peak(["verify", str(signed)], env)))
            stamp = ["stamp", str(image), "-o", str(folder / "stamped"), "--model", "b", "--jobs", "1"]
            rows.append((label, "stamp", *peak(stamp, env)))
            for leftover in (image, signed):
                leftover.unlink(missing_ok=True)
        rows.extend(audio_rows(folder, env))
    floor = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return _table(rows, floor)


def _table(rows: list[tuple[str, str, int, float, int]], floor: int) -> str:
    lines = [
        "memory benchmark — peak resident memory (ru_maxrss) of one CLI run, fresh process each",
        f"machine: {platform.machine()}, Python {platform.python_version()}; goal under {GOAL_MB} MB",
        f"(measurement floor: the benchmark process itself peaked at {floor / 1e6:.0f} MB)",
        f"how: `make bench-memory` (taskset -c 1), temporary files in {tempfile.gettempdir()} "
        "(set TMPDIR to a real disk, not a memory-backed /tmp: ~3 GB)",
        f"run: {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC",
        "",
        f"{'input':<40} {'command':<30} {'peak MB':>8} {'seconds':>8}  {'exit':>4}  goal",
    ]
    for label, command, rss, seconds, code in rows:
        if code == -1:
            note = "(stamp writes images and audio only)"
            lines.append(f"{label:<40} {command:<30} {'n/a':>8} {'':>8}  {'':>4}  {note}")
            continue
        mb = rss / 1e6
        verdict = "ok" if mb < GOAL_MB and code == 0 else ("MISSED" if code == 0 else "FAILED")
        if "alone" in command:
            verdict = "(floor: no code of this library)" if code == 0 else "FAILED"
        lines.append(f"{label:<40} {command:<30} {mb:8.0f} {seconds:8.1f}  {code:>4}  {verdict}")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    only_audio = "--audio" in sys.argv[1:]
    text = main_audio() if only_audio else main()
    target = AUDIO_RESULTS if only_audio else RESULTS
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text)
    print(text, end="")
