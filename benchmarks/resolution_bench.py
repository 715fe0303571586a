"""The Soft Binding Resolution service at scale, and how often fingerprints match the wrong image.

Run: ``make bench-resolution`` (``.venv/bin/python -m benchmarks.resolution_bench``).
Writes ``benchmarks/results/resolution.txt``. Three measurements:

1. byBinding throughput and latency over loopback against a store of
   ``--records`` (1,000,000) entries: ``provenance serve`` pinned to core 0, the load
   generator in a separate process pinned to core 1 (raw keep-alive HTTP/1.1 on
   asyncio, so the client is not the bottleneck), closed loop at a few
   concurrency levels.
2. byContent latency with as many PDQ fingerprints: degraded copies (blur 3.5,
   0.4x, 2% crop, JPEG 35) of stamped photos, one at a time: decode, watermark
   detection, PDQ, the index scan and the likeness check of the candidates;
   copies with 10% cut off one edge, which only the crop guesses find; a degraded
   brick wall (2% off each edge), which only the window hash finds; and
   unrelated photos, which pay for all three scans.
3. The fingerprint false-match rate (in process, PDQ + crop guesses + window hash + likeness
   exactly as the service runs them): >= 10,000 images unrelated to the stored
   ones (other photos, random crops and transforms of them, synthetic images),
   the distance distribution of unrelated pairs and what it predicts for a
   store of ``--records`` fingerprints, and the recall on near-duplicates of
   the stored photos (each attack, 5% and 10% cut off one edge, combined).

``--window-cost`` measures only what the window stage adds to a byContent call (in
process, with and without it in turn over ``--records`` random fingerprints).

The 1,000,000 records are synthetic (random identifiers and PDQ hashes, a small
placeholder manifest: a real one is ~35 KB, 35 GB for a million), bulk-loaded in
one transaction; a few real stamped photos sit among them. ``--store`` takes a
path or URL, so another backend can be measured with the same script once it
provides a bulk loader.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import platform
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

import numpy as np
from PIL import Image, ImageFilter
from skimage import data as skdata

import watermark
from benchmarks.store_bench import bulk_load as backend_bulk_load
from benchmarks.store_bench import payload_for
from manifests import GenerationInfo
from provenance._internal import likeness, pdq
from provenance.keys import create_development_identity, load_identity_dir
from provenance.stamp import stamp
from provenance.store import SQLiteManifestStore, is_store_url, open_store

RESULTS = Path(__file__).resolve().parent / "results" / "resolution.txt"


def synthetic_payload(i: int) -> bytes:
    # Record i (1..n) is store_bench's record i-1, so a store filled by either
    # loader (SQLite here, PostgreSQL there) answers the same queries.
    return payload_for(i - 1)


def bulk_load(store_url: str, records: int) -> float:
    """Append ``records`` synthetic entries in one transaction; seconds taken."""
    if "://" in store_url and not store_url.startswith("sqlite"):
        started = time.perf_counter()
        backend_bulk_load(store_url, records)
        return time.perf_counter() - started
    SQLiteManifestStore(store_url).close()  # create and migrate
    rng = np.random.default_rng(1)
    hashes = rng.integers(0, 256, size=(records, 32), dtype=np.uint8)
    windows = rng.integers(0, 256, size=(records, 32), dtype=np.uint8)  # the window hashes (schema v7)
    db = sqlite3.connect(store_url, isolation_level=None)
    db.execute("PRAGMA synchronous=OFF")
    db.execute("PRAGMA cache_size=-1000000")  # 1 GB: the unique indexes stay in memory while they grow
    started = time.perf_counter()
    db.execute("BEGIN")
    # Rows in payload order: the payload index then grows at its end instead of at random pages.
    order = sorted(range(1, records + 1), key=synthetic_payload)
    rows = (
        (
            synthetic_payload(i),
            f"urn:c2pa:bench-{i:08d}",
            b"synthetic manifest placeholder",
            "application/c2pa",
            watermark.ALGORITHM,
            watermark.soft_binding_value(synthetic_payload(i)),
            "2026-01-01T00:00:00+00:00",
            hashes[i - 1].tobytes(),
            windows[i - 1].tobytes(),
        )
        for i in order
    )
    db.executemany(
        "INSERT INTO manifests (payload, manifest_label, manifest_store, mime, soft_binding_alg, "
        "soft_binding_value, created_at, pdq_hash, pdq_window) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        rows,
    )
    db.execute("COMMIT")
    db.close()
    return time.perf_counter() - started


def store_size(store: str) -> str:
    """The store's size on disk: the SQLite file, or PostgreSQL's own count for the database."""
    if is_store_url(store):
        import psycopg

        try:
            with psycopg.connect(store) as conn:
                row = conn.execute("SELECT pg_database_size(current_database())").fetchone()
        except psycopg.Error:
            return "n/a"
        return f"{row[0] / 1e6:,.0f} MB (pg_database_size)" if row else "n/a"
    return f"{os.path.getsize(store) / 1e6:,.0f} MB" if os.path.exists(store) else "n/a"


# --- load generator (a separate process) --------------------------------------


def _value(i: int) -> str:
    return watermark.soft_binding_value(synthetic_payload(i))


async def _client(host: str, port: int, paths: list[bytes], until: float, latencies: list[float]) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    i = 0
    while time.perf_counter() < until:
        path = paths[i % len(paths)]
        i += 1
        started = time.perf_counter()
        writer.write(b"GET " + path + b" HTTP/1.1\r\nHost: bench\r\n\r\n")
        head = await reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        body = await reader.readexactly(length)
        latencies.append(time.perf_counter() - started)
        if not head.startswith(b"HTTP/1.1 200") or b"manifestId" not in body:
            raise SystemExit(f"unexpected answer: {head[:40]!r} {body[:80]!r}")
    writer.close()


def load_generator(url: str, records: int, concurrency: int, seconds: float) -> None:
    host, port = url.removeprefix("http://").split(":")
    rng = np.random.default_rng(concurrency)
    paths = [
        f"/matches/byBinding?alg={watermark.ALGORITHM}&value={quote(_value(int(i)), safe='')}".encode()
        for i in rng.integers(1, records + 1, size=20_000)
    ]
    latencies: list[float] = []

    async def main() -> None:
        until = time.perf_counter() + seconds
        await asyncio.gather(
            *(_client(host, int(port), paths[k::concurrency], until, latencies) for k in range(concurrency))
        )

    started = time.perf_counter()
    asyncio.run(main())
    elapsed = time.perf_counter() - started
    ms = np.array(latencies) * 1000
    print(
        f"{len(ms)} {len(ms) / elapsed:.0f} {np.percentile(ms, 50):.2f} "
        f"{np.percentile(ms, 99):.2f} {ms.max():.2f}"
    )


# --- the service ----------------------------------------------------------------


def start_service(store: str, workers: int) -> tuple[subprocess.Popen[bytes], str]:
    script = Path(sys.executable).with_name("provenance")
    command = [
        "taskset",
        "-c",
        "0",
        str(script),
        "serve",
        "--store",
        store,
        "--port",
        "0",
        "--workers",
        str(workers),
    ]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert process.stderr is not None
    buffered = b""
    while b"in a browser" not in buffered:
        chunk = process.stderr.readline()
        if not chunk:
            raise SystemExit("the service did not start: " + buffered.decode(errors="replace"))
        buffered += chunk
    url = buffered.split(b"open ")[1].split(b"/ in a browser")[0].decode()
    # The access log goes to stderr: drain it so the service never blocks on a full pipe.
    subprocess.Popen(["cat"], stdin=process.stderr, stdout=subprocess.DEVNULL)
    # The worker loads the fingerprint index before its first answer: wait for it.
    import httpx

    deadline = time.monotonic() + 300
    while True:
        try:
            if httpx.get(f"{url}/healthz", timeout=60).status_code == 200:
                break
        except httpx.HTTPError:
            if time.monotonic() > deadline:
                raise
        time.sleep(0.2)
    return process, url


def degraded(image: Image.Image) -> bytes:
    small = image.convert("RGB").filter(ImageFilter.GaussianBlur(3.5))
    small = small.resize((int(image.width * 0.4), int(image.height * 0.4)), Image.Resampling.BILINEAR)
    dx, dy = int(small.width * 0.02), int(small.height * 0.02)
    out = io.BytesIO()
    small.crop((dx, dy, small.width - dx, small.height - dy)).save(out, "JPEG", quality=35)
    return out.getvalue()


def by_content_latency(url: str, queries: list[bytes], rounds: int) -> tuple[float, list[float], int]:
    import httpx

    with httpx.Client(timeout=120) as client:
        started = time.perf_counter()
        first = client.post(  # a warm-up: the first request of a connection
            f"{url}/matches/byContent", content=queries[0], headers={"Content-Type": "image/jpeg"}
        )
        warm_up = time.perf_counter() - started
        assert first.status_code == 200, first.text
        times, found = [], 0
        for i in range(rounds):
            started = time.perf_counter()
            answer = client.post(
                f"{url}/matches/byContent",
                content=queries[i % len(queries)],
                headers={"Content-Type": "image/jpeg"},
            )
            times.append(time.perf_counter() - started)
            found += bool(answer.json()["matches"])
    return warm_up, times, found


def by_content_cpu(store: str, sets: dict[str, list[bytes]], rounds: int, pad_to: int = 0) -> list[str]:
    """byContent as the service runs it, in this process: CPU time per call (thread_time).

    Wall-clock latency over HTTP includes whatever else the shared machine runs;
    the CPU time of one call does not. ``pad_to`` adds random fingerprints to the
    index (for measuring at scale without a large store).
    """
    from provenance.service import ServiceConfig
    from provenance.service.resolution import Resolver

    resolver = Resolver(ServiceConfig(store=store))
    resolver.refresh()
    if len(resolver.index) < pad_to:
        extra = pad_to - len(resolver.index)
        refs = np.arange(1, extra + 1, dtype=np.int64) << 20
        hashes = np.random.default_rng(5).integers(0, 256, size=(extra, 32), dtype=np.uint8)
        resolver.index.add(refs, [h.tobytes() for h in hashes])
        windows = np.random.default_rng(6).integers(0, 256, size=(extra, 32), dtype=np.uint8)
        resolver.window_index.add(refs, [h.tobytes() for h in windows])
    lines = [f"byContent CPU time per call over {len(resolver.index):,} fingerprints (in process, 1 thread)"]
    for label, batch in sets.items():
        times, found = [], 0
        resolver.by_content(batch[0], None, 10, None)  # warm-up
        for i in range(rounds):
            started = time.thread_time()
            found += bool(resolver.by_content(batch[i % len(batch)], None, 10, None))
            times.append(time.thread_time() - started)
        ms = np.array(times) * 1000
        lines.append(
            f"  {label:<50} p50 {np.percentile(ms, 50):6.1f} ms  p99 {np.percentile(ms, 99):6.1f} ms"
            f"  matched {found}/{len(ms)}"
        )
    return lines


# --- false matches ------------------------------------------------------------------

STORED = ["astronaut", "camera", "coffee", "chelsea", "immunohistochemistry", "moon", "brick", "grass"]
UNRELATED = [
    "rocket",
    "hubble_deep_field",
    "page",
    "text",
    "horse",
    "clock",
    "coins",
    "gravel",
    "retina",
    "cell",
    "colorwheel",
    "binary_blobs",
    "logo",
]


def _photo(name: str) -> Image.Image:
    return Image.fromarray(getattr(skdata, name)()).convert("RGB")


def _variants(image: Image.Image, rng: np.random.Generator, count: int) -> list[Image.Image]:
    """Random crops (20-100% of each side), rescales, flips, blurs and re-encodings."""
    out = []
    for _ in range(count):
        w, h = image.size
        fw, fh = rng.uniform(0.2, 1.0, size=2)
        cw, ch = max(32, int(w * fw)), max(32, int(h * fh))
        x, y = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
        v = image.crop((x, y, x + cw, y + ch))
        scale = rng.uniform(0.3, 1.5)
        v = v.resize((max(32, int(v.width * scale)), max(32, int(v.height * scale))))
        kind = rng.integers(0, 4)
        if kind == 1:
            v = v.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
        elif kind == 2:
            v = v.filter(ImageFilter.GaussianBlur(float(rng.uniform(0.5, 3))))
        elif kind == 3:
            buf = io.BytesIO()
            v.save(buf, "JPEG", quality=int(rng.integers(20, 90)))
            v = Image.open(buf).convert("RGB")
        out.append(v)
    return out


def _synthetic(rng: np.random.Generator, count: int) -> list[Image.Image]:
    """Noise, gradients, blobs and stripes: flat and structured images unlike photos."""
    out = []
    for i in range(count):
        h, w = int(rng.integers(64, 320)), int(rng.integers(64, 320))
        kind = i % 4
        if kind == 0:
            a = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
        elif kind == 1:
            yy, xx = np.mgrid[0:h, 0:w]
            angle = rng.uniform(0, np.pi)
            g = (np.cos(angle) * xx + np.sin(angle) * yy) * rng.uniform(0.2, 3)
            a = np.stack([(g * rng.uniform(0.5, 1.5)) % 256] * 3, axis=-1).astype(np.uint8)
        elif kind == 2:
            a = np.asarray(
                Image.fromarray(
                    rng.integers(0, 256, size=(h // 16 + 1, w // 16 + 1, 3), dtype=np.uint8)
                ).resize((w, h), Image.Resampling.BICUBIC)
            )
        else:
            period = int(rng.integers(4, 40))
            yy, xx = np.mgrid[0:h, 0:w]
            a = np.stack([((xx // period + yy // period) % 2) * 255] * 3, axis=-1).astype(np.uint8)
        out.append(Image.fromarray(a))
    return out


STAGES = ("frame", "one-edge guesses", "window")
"""The service's fingerprint searches, in the order it runs them (each only when the ones
before it confirmed nothing): the frame hash, the four one-edge crop guesses, the five
window guesses."""


def _match(
    indexes: tuple[pdq.FingerprintIndex, pdq.FingerprintIndex],
    references: dict[int, bytes],
    image: Image.Image,
) -> dict[str, tuple[set[int], set[int]]]:
    """The service's fingerprint path (provenance/service/resolution.py), stage by stage.

    Returns, for each stage of :data:`STAGES` that ran, its PDQ candidates and the refs the
    likeness check confirmed among them.
    """
    frame, windows = indexes
    reduced = pdq.working_copy(image)
    fingerprint, quality = pdq.fingerprint_and_quality(reduced)
    if quality < pdq.MIN_QUALITY:  # as the service: a featureless image is not searched
        return {}
    checked: set[int] = set()

    def confirm(candidates: set[int]) -> set[int]:
        new = candidates - checked
        checked.update(new)
        return {r for r in new if likeness.similarity(references[r], image) >= likeness.SAME_CONTENT}

    searches: dict[str, Callable[[], list[tuple[int, int]]]] = {
        "frame": lambda: frame.nearest(fingerprint, 10),
        "one-edge guesses": lambda: frame.nearest_any(pdq.uncropped_fingerprints(image), 10),
        "window": lambda: windows.nearest_any(pdq.window_fingerprints(reduced), 10),
    }
    stages: dict[str, tuple[set[int], set[int]]] = {}
    for stage in STAGES:
        candidates = {ref for ref, _ in searches[stage]()}
        stages[stage] = (candidates, confirm(candidates))
        if stages[stage][1]:
            break
    return stages


def _found(stages: dict[str, tuple[set[int], set[int]]], ref: int) -> str:
    """The stage whose likeness check confirmed ``ref``, or '-'."""
    return next((stage for stage, (_, confirmed) in stages.items() if ref in confirmed), "-")


def _asymmetric(rng: np.random.Generator) -> Callable[[Image.Image], Image.Image]:
    """0-3% off each edge, independently: a crop that is neither centred nor on one edge."""
    cuts = rng.uniform(0, 0.03, size=4)

    def crop(im: Image.Image) -> Image.Image:
        w, h = im.size
        return im.crop((int(w * cuts[0]), int(h * cuts[1]), w - int(w * cuts[2]), h - int(h * cuts[3])))

    return crop


def _one_edge(fraction: float, edge: str) -> Callable[[Image.Image], Image.Image]:
    def crop(im: Image.Image) -> Image.Image:
        w, h = im.size
        cut_w, cut_h = int(w * fraction), int(h * fraction)
        box = {"left": (cut_w, 0, w, h), "right": (0, 0, w - cut_w, h), "top": (0, cut_h, w, h)}
        return im.crop(box.get(edge, (0, 0, w, h - cut_h)))

    return crop


def _attacked(crop: Callable[[Image.Image], Image.Image]) -> Callable[[Image.Image], Image.Image]:
    """Blur 3.5, 0.4x, then ``crop``, then JPEG 35: the combined attack with another crop."""

    def attack(im: Image.Image) -> Image.Image:
        small = im.convert("RGB").filter(ImageFilter.GaussianBlur(3.5))
        small = small.resize((int(im.width * 0.4), int(im.height * 0.4)), Image.Resampling.BILINEAR)
        return Image.open(io.BytesIO(_jpeg(crop(small), 35))).convert("RGB")

    return attack


EDGES = ("left", "right", "top", "bottom")


def _every_edge(fraction: float) -> Callable[[Image.Image], Image.Image]:
    def crop(im: Image.Image) -> Image.Image:
        w, h = im.size
        return im.crop((int(w * fraction), int(h * fraction), w - int(w * fraction), h - int(h * fraction)))

    return crop


def false_matches(total_unrelated: int, records: int) -> list[str]:
    rng = np.random.default_rng(7)
    index, windows = pdq.FingerprintIndex(), pdq.FingerprintIndex()
    references = {}
    stored_window = {}
    for i, name in enumerate(STORED):
        image = _photo(name)
        index.add([i], [pdq.fingerprint(image)])
        stored_window[i] = pdq.window_fingerprint(image)
        windows.add([i], [stored_window[i]])
        references[i] = likeness.reference(image)
    per_photo = (total_unrelated // 2) // len(UNRELATED)
    unrelated: list[tuple[str, Image.Image]] = []
    for name in UNRELATED:
        photo = _photo(name)
        unrelated += [("photo crops/transforms", v) for v in [photo, *_variants(photo, rng, per_photo - 1)]]
    unrelated += [("synthetic", v) for v in _synthetic(rng, total_unrelated - len(unrelated))]
    counts: dict[str, list[int]] = {}
    closest: list[int] = []
    closest_guessed: list[int] = []
    closest_window: list[int] = []
    pairs: list[int] = []  # every (unrelated query, stored) pair: smallest distance over its frame hashes
    window_pairs: list[int] = []  # the same over the window guesses
    started = time.perf_counter()
    for kind, image in unrelated:
        row = counts.setdefault(kind, [0, 0, 0, 0, 0, 0])
        row[0] += 1
        fingerprint, quality = pdq.fingerprint_and_quality(image)
        guesses = pdq.uncropped_fingerprints(image)
        closest.append(index.nearest(fingerprint, 1, max_distance=256)[0][1])
        every = index.nearest_any([fingerprint, *guesses], len(STORED), max_distance=256)
        closest_guessed.append(every[0][1])
        pairs += [d for _, d in every]
        in_window = windows.nearest_any(pdq.window_fingerprints(image), len(STORED), max_distance=256)
        closest_window.append(in_window[0][1])
        window_pairs += [d for _, d in in_window]
        stages = _match((index, windows), references, image)
        row[5] += quality < pdq.MIN_QUALITY
        row[1] += any(stages[s][0] for s in STAGES[:2] if s in stages)
        row[2] += any(stages[s][1] for s in STAGES[:2] if s in stages)
        row[3] += bool(stages.get("window", (set(), set()))[0])
        row[4] += any(confirmed for _, confirmed in stages.values())
    elapsed = time.perf_counter() - started
    hashes = 1 + 4 * len(pdq.CROP_GUESSES)
    # Near-duplicates of the stored photos: these should match.
    near: dict[str, list[int]] = {}
    asymmetric = [_asymmetric(rng) for _ in range(4)]
    transforms: dict[str, list[Callable[[Image.Image], Image.Image]]] = {
        "blur sigma 3.5": [lambda im: im.filter(ImageFilter.GaussianBlur(3.5))],
        "downscale 0.4x": [lambda im: im.resize((int(im.width * 0.4), int(im.height * 0.4)))],
        "crop 2% each edge": [_every_edge(0.02)],
        "JPEG 35": [lambda im: Image.open(io.BytesIO(_jpeg(im, 35))).convert("RGB")],
        "all four (2% crop)": [lambda im: Image.open(io.BytesIO(degraded(im))).convert("RGB")],
        "blur+0.4x+4% each edge+JPEG": [_attacked(_every_edge(0.04))],
        "blur+0.4x+0-3% per edge+JPEG": [_attacked(crop) for crop in asymmetric],
        "crop 5% one edge": [_one_edge(0.05, e) for e in EDGES],
        "crop 10% one edge": [_one_edge(0.10, e) for e in EDGES],
        "blur+0.4x+5% one edge+JPEG": [_attacked(_one_edge(0.05, e)) for e in EDGES],
        "blur+0.4x+10% one edge+JPEG": [_attacked(_one_edge(0.10, e)) for e in EDGES],
    }
    # Per photo: which stage found each copy, and the copy's distance to the stored hashes.
    per_photo_rows: dict[str, list[str]] = {name: [] for name in STORED}
    for label, variants in transforms.items():
        row = near.setdefault(label, [0, 0, 0, 0, 0])
        for i, name in enumerate(STORED):
            cells = []
            for transform in variants:
                copy = transform(_photo(name))
                stages = _match((index, windows), references, copy)
                first_two = [stages[s] for s in STAGES[:2] if s in stages]
                row[0] += 1
                row[1] += i in stages.get("frame", (set(), set()))[0]
                row[2] += any(i in confirmed for _, confirmed in first_two)
                row[3] += any(i in candidates for candidates, _ in stages.values())
                row[4] += any(i in confirmed for _, confirmed in stages.values())
                frame_d = min(
                    pdq.distance(pdq.fingerprint(_photo(name)), h)
                    for h in [pdq.fingerprint(copy), *pdq.uncropped_fingerprints(copy)]
                )
                window_d = min(pdq.distance(stored_window[i], h) for h in pdq.window_fingerprints(copy))
                cells.append(f"{_found(stages, i)[:6]} {frame_d}/{window_d}")
            if label in PER_PHOTO:
                per_photo_rows[name].append("; ".join(cells))
    lines = [
        f"stored originals: {len(STORED)} photos ({', '.join(STORED)}); PDQ candidates within "
        f"{pdq.MATCH_DISTANCE}/256 bits, then the likeness check (>= {likeness.SAME_CONTENT}); when "
        f"nothing is confirmed, again with the {4 * len(pdq.CROP_GUESSES)} crop guesses "
        f"(one edge mirrored back by {', '.join(f'{g:.1%}' for g in pdq.CROP_GUESSES)}); then the "
        f"window hash (centre, {pdq.WINDOW_INSET:.0%} inset, blurred) with "
        f"{len(pdq.WINDOW_CROPS)} guesses of the cut per edge "
        f"({', '.join(f'{g:.0%}' for g in pdq.WINDOW_CROPS)})",
        f"{'unrelated queries':<24} {'n':>6} {'low quality':>11} {'frame+guesses: cand.':>21} "
        f"{'confirmed':>9} {'window: cand.':>13} {'confirmed (false match), all stages':>36}",
    ]
    total = [0, 0, 0, 0, 0, 0]
    for kind, counted in counts.items():
        n, cand, conf, wcand, conf_all, low = counted
        lines.append(f"{kind:<24} {n:>6} {low:>11} {cand:>21} {conf:>9} {wcand:>13} {conf_all:>36}")
        total = [a + b for a, b in zip(total, counted, strict=True)]
    lines.append(
        f"{'all unrelated':<24} {total[0]:>6} {total[5]:>11} {total[1]:>21} {total[2]:>9} {total[3]:>13} "
        f"{total[4]:>36}   (false-match rate {total[4] / total[0]:.2e}; {elapsed:.0f} s)"
    )
    lines.append(
        f"distance from an unrelated query to its nearest stored fingerprint: plain hash min {min(closest)}, "
        f"1st percentile {np.percentile(closest, 1):.0f}, median {np.median(closest):.0f}; "
        f"closest of the {hashes} (plain + crop guesses) min {min(closest_guessed)}, "
        f"1st percentile {np.percentile(closest_guessed, 1):.0f}, median {np.median(closest_guessed):.0f}; "
        f"closest of the {len(pdq.WINDOW_CROPS)} window guesses to a stored window "
        f"min {min(closest_window)}, "
        f"1st percentile {np.percentile(closest_window, 1):.0f}, median {np.median(closest_window):.0f} "
        f"(candidates: <= {pdq.MATCH_DISTANCE})"
    )
    # The threshold's false-candidate rate for a store of `records` fingerprints: from the
    # distribution over every (unrelated query, stored photo) pair of the closest of its
    # hashes. None fall under the threshold here, so the tail is extrapolated with a normal fit
    # (PDQ distances of unrelated images are close to binomial) and bounded by the observed count.
    from math import erfc, sqrt

    for what, measured in ((f"closest of {hashes} frame hashes", pairs),
                           (f"closest of {len(pdq.WINDOW_CROPS)} window guesses", window_pairs)):
        pair = np.asarray(measured, dtype=np.float64)
        mean, sd = float(pair.mean()), float(pair.std())
        tail = 0.5 * erfc((mean - pdq.MATCH_DISTANCE - 0.5) / (sd * sqrt(2)))
        observed = int((pair <= pdq.MATCH_DISTANCE).sum())
        bound = max(observed, 3) / len(pair)  # the rule of three: a 95% upper bound when none is seen
        lines.append(
            f"unrelated pairs (query x stored, {what}): n {len(pair):,}, mean {mean:.1f}, "
            f"sd {sd:.1f}, min {int(pair.min())}, <= {pdq.MATCH_DISTANCE}: {observed}; "
            f"P(d <= {pdq.MATCH_DISTANCE}) per stored fingerprint: normal-tail estimate {tail:.1e} "
            f"(optimistic: real tails are heavier), observed 95% upper bound {bound:.1e}; over "
            f"{records:,} fingerprints that is {tail * records:.1g} to {bound * records:.1f} candidates per "
            "unrelated query"
        )
    lines.append(
        f"each candidate is then rejected unless its likeness is >= {likeness.SAME_CONTENT} "
        "(0.06% of look-alikes pass: benchmarks/results/likeness.txt)"
    )
    lines.append(
        f"{'near-duplicates of stored':<30} {'n':>4} {'frame: PDQ cand.':>17} "
        f"{'confirmed (frame + one-edge)':>29} {'+ window: cand.':>16} {'confirmed':>10}"
    )
    for label, (n, cand, conf, cand_all, conf_all) in near.items():
        lines.append(f"{label:<30} {n:>4} {cand:>17} {conf:>29} {cand_all:>16} {conf_all:>10}")
    lines += [
        "",
        "Attack table: the stage that found each copy (frame / one-edge / window, '-' none) and the copy's "
        "distance to the stored frame hash (closest of the frame hash and its one-edge guesses) / to the "
        "stored window hash (closest of the window guesses), of 256 bits; several copies per cell for the "
        "random 0-3% per-edge crops",
        f"{'photo':<22}" + "".join(f" | {label}" for label in PER_PHOTO),
    ]
    for name, cells in per_photo_rows.items():
        lines.append(f"{name:<22}" + "".join(f" | {cell}" for cell in cells))
    return lines


PER_PHOTO = (
    "blur sigma 3.5",
    "downscale 0.4x",
    "crop 2% each edge",
    "JPEG 35",
    "all four (2% crop)",
    "blur+0.4x+4% each edge+JPEG",
    "blur+0.4x+0-3% per edge+JPEG",
)


def _jpeg(image: Image.Image, quality: int) -> bytes:
    out = io.BytesIO()
    image.save(out, "JPEG", quality=quality)
    return out.getvalue()


def window_cost(records: int, rounds: int) -> list[str]:
    """The window stage's own cost: byContent CPU time in one process with the window
    hashes searched and not (an empty window index), call by call in turn, so that the
    shared machine's load falls on both alike."""
    from provenance.service import ServiceConfig
    from provenance.service.resolution import Resolver

    with tempfile.TemporaryDirectory() as scratch:
        create_development_identity(os.path.join(scratch, "identity"))
        identity = load_identity_dir(os.path.join(scratch, "identity"))
        store = os.path.join(scratch, "m.db")
        sets: dict[str, list[bytes]] = {"unrelated photos (no match)": [], "degraded copies (frame hash)": []}
        with open_store(store) as opened:
            for name in ("coffee", "camera", "chelsea", "brick"):
                info = GenerationInfo(generator="b", model="m")
                result = stamp(_jpeg(_photo(name), 92), identity, info, store=opened)
                if name != "brick":
                    sets["degraded copies (frame hash)"].append(degraded(Image.open(io.BytesIO(result.data))))
        sets["unrelated photos (no match)"] = [_jpeg(_photo(n), 85) for n in ("rocket", "horse", "clock")]
        resolver = Resolver(ServiceConfig(store=store))
        resolver.refresh()
        refs = np.arange(1, records + 1, dtype=np.int64) << 20
        rng = np.random.default_rng(5)
        for index in (resolver.index, resolver.window_index):
            index.add(refs, [h.tobytes() for h in rng.integers(0, 256, size=(records, 32), dtype=np.uint8)])
        windows = resolver.window_index
        lines = [
            f"window stage cost, byContent CPU per call over {len(resolver.index):,} fingerprints "
            f"(in process, with and without the window search in turn; load average "
            + " ".join(f"{x:.1f}" for x in os.getloadavg()) + ")"
        ]
        for label, batch in sets.items():
            times: dict[bool, list[float]] = {True: [], False: []}
            for i in range(2 * rounds):
                with_window = i % 2 == 0
                resolver.window_index = windows if with_window else pdq.FingerprintIndex()
                started = time.thread_time()
                resolver.by_content(batch[(i // 2) % len(batch)], None, 10, None)
                times[with_window].append(time.thread_time() - started)
            without, with_ = (np.array(times[k][1:]) * 1000 for k in (False, True))
            lines.append(
                f"  {label:<32} without p50 {np.percentile(without, 50):5.1f} "
                f"p99 {np.percentile(without, 99):5.1f} ms; with p50 {np.percentile(with_, 50):5.1f} "
                f"p99 {np.percentile(with_, 99):5.1f} ms"
            )
            print(lines[-1], flush=True)
        return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", help="store path or URL (default: a temporary SQLite file)")
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--seconds", type=float, default=8.0, help="per throughput run")
    parser.add_argument("--unrelated", type=int, default=10_400)
    parser.add_argument("--load-generator", nargs=4, metavar=("URL", "RECORDS", "CONCURRENCY", "SECONDS"))
    parser.add_argument(
        "--only-content",
        action="store_true",
        help="byContent latency and CPU time only (no byBinding runs, no false-match measurement)",
    )
    parser.add_argument("--output", type=Path, help="report file (default: by backend, in results/)")
    parser.add_argument(
        "--window-cost", action="store_true", help="only the window stage's CPU cost, printed (in process)"
    )
    args = parser.parse_args()
    if args.window_cost:
        print("\n".join(window_cost(args.records, 60)))
        return
    if args.load_generator:
        url, records, concurrency, seconds = args.load_generator
        load_generator(url, int(records), int(concurrency), float(seconds))
        return
    with tempfile.TemporaryDirectory() as scratch:
        store = args.store or os.path.join(scratch, "bench.db")
        lines = [
            "Soft Binding Resolution service (benchmarks/resolution_bench.py)",
            f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
            "server pinned to core 0 (1 worker), load generator to core 1; load average at start "
            + " ".join(f"{x:.1f}" for x in os.getloadavg())
            + " (the machine is shared: other work inflates the tails)",
            "",
        ]
        # A few real stamped photos first, then the synthetic million.
        home = os.path.join(scratch, "identity")
        create_development_identity(home)
        identity = load_identity_dir(home)
        queries, stripped, cut_queries, texture = [], [], [], []
        with open_store(store) as opened:
            info = GenerationInfo(generator="bench", model="m")
            brick = stamp(_jpeg(_photo("brick"), 92), identity, info, store=opened)
            texture.append(degraded(Image.open(io.BytesIO(brick.data))))
            for name in ("coffee", "camera", "chelsea"):
                result = stamp(
                    _jpeg(_photo(name), 92),
                    identity,
                    GenerationInfo(generator="bench", model="m"),
                    store=opened,
                )
                queries.append(degraded(Image.open(io.BytesIO(result.data))))
                cut = _attacked(_one_edge(0.10, "left"))(Image.open(io.BytesIO(result.data)))
                cut_queries.append(_jpeg(cut, 95))
                stripped.append(_jpeg(Image.open(io.BytesIO(result.data)).convert("RGB"), 85))
        seconds = bulk_load(store, args.records)
        lines.append(
            f"bulk load: {args.records:,} synthetic records in {seconds:.1f} s "
            f"({args.records / seconds:,.0f}/s, one transaction), store {store_size(store)}"
        )
        started = time.perf_counter()
        process, url = start_service(store, 1)
        lines.append(
            f"service start, loading {args.records:,} fingerprints: {time.perf_counter() - started:.1f} s"
        )
        try:
            lines += [] if args.only_content else [
                "",
                "byBinding (GET, watermark identifier, keep-alive, closed loop)",
                f"{'concurrency':>11} {'requests':>9} {'req/s':>7} {'p50 ms':>7} {'p99 ms':>7} {'max ms':>7}",
            ]
            for concurrency in () if args.only_content else (1, 4, 16):
                out = subprocess.run(
                    [
                        "taskset",
                        "-c",
                        "1",
                        sys.executable,
                        "-m",
                        "benchmarks.resolution_bench",
                        "--load-generator",
                        url,
                        str(args.records),
                        str(concurrency),
                        str(args.seconds),
                    ],
                    check=True,
                    capture_output=True,
                    text=True,
                ).stdout.split()
                lines.append(f"{concurrency:>11} {out[0]:>9} {out[1]:>7} {out[2]:>7} {out[3]:>7} {out[4]:>7}")
                print(lines[-1], flush=True)
            sets = {
                "degraded copies, watermark gone (PDQ + likeness)": queries,
                "degraded, 10% cut off one edge (crop guesses)": cut_queries,
                "degraded brick texture, 2% off each edge (window)": texture,
                "stripped copies carrying the watermark": stripped,
                "unrelated photos (no match)": [_jpeg(_photo(n), 85) for n in ("rocket", "horse", "clock")],
            }
            lines += ["", f"byContent over {args.records:,} fingerprints, one request at a time"]
            for label, batch in sets.items():
                _, times, found = by_content_latency(url, batch, 40)
                ms = np.array(times) * 1000
                lines.append(
                    f"  {label:<50} p50 {np.percentile(ms, 50):6.1f} ms  p99 {np.percentile(ms, 99):6.1f} ms"
                    f"  matched {found}/{len(ms)}"
                )
                print(lines[-1], flush=True)
        finally:
            process.terminate()
            process.wait(timeout=30)
        lines += ["", *by_content_cpu(store, sets, 40)]
        index = pdq.FingerprintIndex()
        rng = np.random.default_rng(3)
        hashes = rng.integers(0, 256, size=(args.records, 32), dtype=np.uint8)
        index.add(list(range(args.records)), [h.tobytes() for h in hashes])
        scan = []
        for h in hashes[:50]:
            started = time.process_time()
            index.nearest(h.tobytes(), 10)
            scan.append(time.process_time() - started)
        scan_guesses: dict[int, list[float]] = {}
        for count in (4 * len(pdq.CROP_GUESSES), len(pdq.WINDOW_CROPS)):
            random_guesses = rng.integers(0, 256, size=(20, count, 32), dtype=np.uint8)
            for batch in random_guesses:
                started = time.process_time()
                index.nearest_any([h.tobytes() for h in batch], 10)
                scan_guesses.setdefault(count, []).append(time.process_time() - started)
        lines.append(
            f"  index scan alone ({args.records:,} x 256 bits, FAISS Hamming k-NN): "
            f"median {statistics.median(scan) * 1000:.1f} ms CPU; "
            f"the {4 * len(pdq.CROP_GUESSES)} crop guesses in one pass: "
            f"median {statistics.median(scan_guesses[4 * len(pdq.CROP_GUESSES)]) * 1000:.1f} ms CPU; "
            f"the {len(pdq.WINDOW_CROPS)} window guesses (over as many window hashes): "
            f"median {statistics.median(scan_guesses[len(pdq.WINDOW_CROPS)]) * 1000:.1f} ms CPU"
        )
        if not args.only_content:
            lines += ["", "Fingerprint false matches (in process, PDQ + likeness as the service runs them)"]
            lines += false_matches(args.unrelated, args.records)
    text = "\n".join(lines) + "\n"
    print(text)
    # Each backend keeps its own file: resolution.txt (SQLite), resolution-postgresql.txt.
    results = RESULTS if not str(args.store or "").startswith("postgres") else (
        RESULTS.with_name("resolution-postgresql.txt")
    )
    if args.output is not None:
        results = args.output
    elif args.only_content:
        results = results.with_name(results.stem + "-bycontent.txt")
    results.parent.mkdir(parents=True, exist_ok=True)
    results.write_text(text)


if __name__ == "__main__":
    main()
