"""Exporting the manifest store: one command per manifest versus ``store export --all``.

Run: ``taskset -c 1 .venv/bin/python -m benchmarks.store_export_bench``.
Records 202 real signed manifests (512x384 images with their claim thumbnails,
as ``stamp`` records them), then times (a) ``provenance store export ID -o
FILE`` run once per manifest (measured on the first 20, the rest
extrapolated: each run pays the same interpreter start-up), (b) one
``provenance store export --all DIR`` process for all 202, and (c) the
library's ``export_manifests`` in-process, also on a 5,000-entry store.
Writes ``benchmarks/results/store_export.txt``.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image
from skimage import data as skdata

from manifests import GenerationInfo
from provenance.keys import create_development_identity, load_identity_dir
from provenance.sign import sign_image
from provenance.store import StoreEntry, export_manifests, open_store

RESULTS = Path(__file__).resolve().parent / "results" / "store_export.txt"
ENTRIES = 202
ONE_BY_ONE_SAMPLE = 20
LARGE = 5000


def _cli(*args: str, env: dict[str, str]) -> float:
    start = time.perf_counter()
    # The installed console script, as a user runs it (interpreter start-up included).
    command = str(Path(sys.executable).with_name("provenance"))
    subprocess.run([command, *args], check=True, env=env, capture_output=True)
    return time.perf_counter() - start


def _fill(db: Path, manifests: list[bytes], count: int) -> list[str]:
    idents = []
    with open_store(db) as store:
        for i in range(count):
            payload = (0x5EED_0000_0000 + i).to_bytes(8, "big")
            store.record(
                StoreEntry(
                    payload=payload,
                    manifest_label=f"urn:c2pa:bench-{i}",
                    manifest_store=manifests[i % len(manifests)],
                    mime="image/jpeg",
                )
            )
            idents.append(payload.hex())
    return idents


def main() -> str:
    photo = Image.fromarray(skdata.astronaut()).resize((512, 384))
    info = GenerationInfo(generator="bench", model="m")
    lines = [
        "store export: one process per manifest vs one pass",
        f"python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} cores "
        "(run pinned to one core)",
        "",
    ]
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        create_development_identity(tmp / "identity")
        identity = load_identity_dir(tmp / "identity")
        start = time.perf_counter()
        manifests = []
        for i in range(ENTRIES):
            tinted = Image.blend(photo, Image.new("RGB", photo.size, (i, 255 - i, 128)), 0.1)
            manifests.append(sign_image(tinted, identity, info, format="JPEG").manifest_store)
        sizes = sorted(len(m) for m in manifests)
        lines.append(
            f"{ENTRIES} real manifests signed in {time.perf_counter() - start:.1f} s; "
            f"manifest size median {sizes[len(sizes) // 2] / 1024:.0f} KiB"
        )
        db = tmp / "manifests.db"
        idents = _fill(db, manifests, ENTRIES)
        env = {**os.environ, "PROVENANCE_HOME": str(tmp / "home")}

        _cli("store", "export", idents[0], "-o", str(tmp / "warm.c2pa"), "--store", str(db), env=env)
        one = [
            _cli("store", "export", ident, "-o", str(tmp / f"{ident}.c2pa"), "--store", str(db), env=env)
            for ident in idents[:ONE_BY_ONE_SAMPLE]
        ]
        per_call = sum(one) / len(one)
        lines.append(
            f"(a) 'store export ID -o FILE' per manifest: {per_call * 1000:.0f} ms per call "
            f"(mean of {ONE_BY_ONE_SAMPLE}) -> {per_call * ENTRIES:.1f} s for {ENTRIES}"
        )
        out = tmp / "all"
        elapsed = _cli("store", "export", "--all", str(out), "--store", str(db), env=env)
        written = len(list(out.iterdir()))
        assert written == ENTRIES, written
        lines.append(
            f"(b) 'store export --all DIR', one process: {elapsed:.2f} s for {written} manifests "
            f"({per_call * ENTRIES / elapsed:.0f}x faster)"
        )
        shutil.rmtree(out)
        with open_store(db) as store:
            start = time.perf_counter()
            report = export_manifests(store, out)
            in_process = time.perf_counter() - start
        lines.append(
            f"(c) export_manifests() in-process: {in_process * 1000:.0f} ms for {len(report.written)} "
            f"({in_process / ENTRIES * 1000:.2f} ms per manifest; each file atomic, one sync for the batch)"
        )
        big = tmp / "big.db"
        _fill(big, manifests, LARGE)
        with open_store(big) as store:
            start = time.perf_counter()
            report = export_manifests(store, tmp / "big")
            large = time.perf_counter() - start
        lines.append(
            f"(c) export_manifests() on {LARGE} entries: {large:.1f} s "
            f"({large / LARGE * 1000:.2f} ms per manifest; one streaming query)"
        )
    text = "\n".join(lines) + "\n"
    RESULTS.write_text(text)
    return text


if __name__ == "__main__":
    print(main(), end="")
