"""End-to-end stamping benchmark: provenance-kit vs the pipeline a user would assemble.

Run: ``make bench-stamp`` (or ``.venv/bin/python -m benchmarks.stamp_bench``).

The baseline is what a user would otherwise build from the parts: decode, embed
with ``invisible-watermark``'s ``dwtDct`` (the Stable Diffusion watermark),
re-encode, then sign with ``c2pa-python``'s default settings (its own claim
thumbnail, verify-after-sign). Both write every output file. Inputs are
1-megapixel JPEGs made from scikit-image's photographs. Writes the table to
``benchmarks/results/stamp.txt``.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import io
import os
import platform
import statistics
import sys
import tempfile
import time
import types
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from skimage import data as skdata

import provenance  # noqa: F401  (loads the package so the module below is importable)
from manifests import GenerationInfo
from provenance._internal import c2pa_bridge
from provenance.batch import stamp_tree
from provenance.keys import create_development_identity, load_identity_dir
from provenance.store import open_store

# provenance.stamp the function shadows provenance.stamp the module as an attribute.
stamp_module = importlib.import_module("provenance.stamp")

PHOTOS = ["astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field", "immunohistochemistry"]
SIDE = (1155, 866)  # 1.0 megapixel, 4:3
RESULTS = Path(__file__).resolve().parent / "results" / "stamp.txt"


def make_inputs(folder: Path, count: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        name = PHOTOS[i % len(PHOTOS)]
        image = Image.fromarray(getattr(skdata, name)()).convert("RGB").resize(SIDE, Image.Resampling.LANCZOS)
        if i >= len(PHOTOS):  # distinct content for every file
            image = image.transpose(
                Image.Transpose.FLIP_LEFT_RIGHT if i % 2 else Image.Transpose.FLIP_TOP_BOTTOM
            )
            image = image.rotate(0.5 * i, resample=Image.Resampling.BILINEAR, fillcolor=(128, 128, 128))
        path = folder / f"gen-{i:03d}.jpg"
        image.save(path, "JPEG", quality=90)
        paths.append(path)
    return paths


# --- stage timing for our path --------------------------------------------------


@contextmanager
def timed_stages() -> Iterator[dict[str, float]]:
    totals: dict[str, float] = defaultdict(float)
    originals: list[tuple[Any, str, Any]] = []

    def wrap(owner: Any, attr: str, stage: str) -> None:
        original = getattr(owner, attr)

        @functools.wraps(original)
        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                totals[stage] += time.perf_counter() - start

        originals.append((owner, attr, original))
        setattr(owner, attr, timed)

    wrap(stamp_module, "_load", "decode")
    wrap(stamp_module.watermark, "embed", "watermark embed")
    wrap(stamp_module, "encode_image", "encode")
    wrap(stamp_module, "_check_readable", "read-back check (decode + detect)")
    wrap(stamp_module.c2pa_bridge, "has_credentials", "existing-credentials check")
    wrap(stamp_module, "sign_encoded_image", "sign (thumbnail + C2PA)")
    wrap(stamp_module.likeness, "reference", "fingerprint")
    wrap(stamp_module, "atomic_write", "write output")
    try:
        yield totals
    finally:
        for owner, attr, original in originals:
            setattr(owner, attr, original)


def run_ours(
    paths: list[Path], out: Path, identity_dir: Path, db: Path
) -> tuple[list[float], dict[str, float]]:
    identity = load_identity_dir(identity_dir)
    info = GenerationInfo(generator="bench", model="m")
    times = []
    out.mkdir(parents=True, exist_ok=True)
    with open_store(db) as store, timed_stages() as stages:
        for path in paths:
            start = time.perf_counter()
            stamp_module.stamp(path, identity, info, store=store, output=out / path.name)
            times.append(time.perf_counter() - start)
        stage_totals = dict(stages)
    stage_totals["store record + rest"] = sum(times) - sum(stage_totals.values())
    return times, stage_totals


# --- the baseline ------------------------------------------------------------------


def _import_imwatermark() -> Any:
    # imwatermark imports torch at module level for rivaGan only; dwtDct never
    # touches it, so an empty stand-in module avoids a multi-GB install.
    if "torch" not in sys.modules:
        try:
            import torch  # noqa: F401
        except ImportError:
            sys.modules["torch"] = types.ModuleType("torch")
    from imwatermark import WatermarkEncoder

    return WatermarkEncoder


def run_baseline(paths: list[Path], out: Path, identity_dir: Path) -> tuple[list[float], dict[str, float]]:
    import c2pa
    import cv2

    encoder_cls = _import_imwatermark()
    identity = load_identity_dir(identity_dir)
    signer, _ = c2pa_bridge.make_signer(identity)
    definition = GenerationInfo(generator="bench", model="m").manifest_definition()
    out.mkdir(parents=True, exist_ok=True)
    times = []
    stages: dict[str, float] = defaultdict(float)
    for i, path in enumerate(paths):
        start = time.perf_counter()
        bgr = cv2.imread(str(path))
        t1 = time.perf_counter()
        encoder = encoder_cls()
        encoder.set_watermark("bytes", i.to_bytes(4, "big"))
        marked = encoder.encode(bgr, "dwtDct")
        t2 = time.perf_counter()
        ok, encoded = cv2.imencode(".jpg", marked, [cv2.IMWRITE_JPEG_QUALITY, 90])
        assert ok
        t3 = time.perf_counter()
        with c2pa.Builder(definition) as builder, open(out / path.name, "w+b") as dest:
            builder.sign(signer, "image/jpeg", io.BytesIO(encoded.tobytes()), dest)
        t4 = time.perf_counter()
        stages["decode"] += t1 - start
        stages["watermark embed"] += t2 - t1
        stages["encode"] += t3 - t2
        stages["sign (c2pa defaults) + write"] += t4 - t3
        times.append(t4 - start)
    return times, dict(stages)


def run_batch(paths: list[Path], out: Path, identity_dir: Path, db: Path, jobs: int) -> float:
    report = stamp_tree(
        [paths[0].parent],
        out,
        functools.partial(load_identity_dir, identity_dir),
        GenerationInfo(generator="bench", model="m"),
        store_path=db,
        jobs=jobs,
    )
    assert report.counts()["stamped"] == len(paths), report.failed
    return report.seconds


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=24, help="number of 1 MP JPEGs")
    parser.add_argument("--no-write", action="store_true", help="do not update results/stamp.txt")
    args = parser.parse_args(argv)

    lines: list[str] = []

    def say(text: str = "") -> None:
        print(text, flush=True)
        lines.append(text)

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        create_development_identity(root / "id")
        paths = make_inputs(root / "in", args.images)
        # Warm-up: imports, native library, contexts.
        run_ours(paths[:1], root / "warm", root / "id", root / "warm.db")
        run_baseline(paths[:1], root / "warm-b", root / "id")

        ours, our_stages = run_ours(paths, root / "ours", root / "id", root / "ours.db")
        base, base_stages = run_baseline(paths, root / "base", root / "id")
        jobs1 = run_batch(paths, root / "b1", root / "id", root / "b1.db", 1)
        cores = os.cpu_count() or 1
        jobsn = run_batch(paths, root / "bn", root / "id", root / "bn.db", cores)

    mo, mb = statistics.median(ours), statistics.median(base)
    say(f"stamp benchmark — {args.images} JPEGs of {SIDE[0]}x{SIDE[1]} (1.0 MP), quality 90")
    say(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"c2pa-rs {c2pa_bridge.sdk_version()}"
    )
    say(time.strftime("run: %Y-%m-%d %H:%M UTC", time.gmtime()))
    say()
    say("one process, per image            median ms    mean ms   images/s")
    say(
        f"provenance stamp                   {mo * 1000:9.1f}  {statistics.mean(ours) * 1000:9.1f}"
        f"  {1 / statistics.mean(ours):9.2f}"
    )
    say(
        f"dwtDct + c2pa-python defaults      {mb * 1000:9.1f}  {statistics.mean(base) * 1000:9.1f}"
        f"  {1 / statistics.mean(base):9.2f}"
    )
    say(f"ratio (ours / baseline, median)    {mo / mb:9.2f}x   (goal: at most 0.60x)")
    say()
    for title, stages, total in (
        ("provenance stamp", our_stages, sum(ours)),
        ("baseline", base_stages, sum(base)),
    ):
        say(f"share of time, {title}:")
        for stage, seconds in sorted(stages.items(), key=lambda kv: -kv[1]):
            say(f"  {stage:<32} {100 * seconds / total:5.1f}%   {1000 * seconds / len(paths):7.1f} ms/image")
    say()
    say("batch (provenance stamp DIR -o OUT), wall clock including worker start-up:")
    say(f"  --jobs 1   {jobs1:6.2f} s   {args.images / jobs1:6.2f} images/s")
    say(
        f"  --jobs {cores}   {jobsn:6.2f} s   {args.images / jobsn:6.2f} images/s   "
        f"speed-up {jobs1 / jobsn:.2f}x on {cores} cores"
    )
    text = "\n".join(lines) + "\n"
    if not args.no_write:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(text)
    return text


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
