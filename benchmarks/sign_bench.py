"""Signing cost and where it goes: the claim thumbnail.

Run: ``.venv/bin/python -m benchmarks.sign_bench`` (part of ``make bench``).
Signs a 1-megapixel JPEG (a) with c2pa-python's default settings, which make the
claim thumbnail inside the C2PA library, (b) with provenance-kit's own
thumbnail (libjpeg DCT-domain downscale, 512 px), and (c) with no thumbnail.
Writes ``benchmarks/results/sign.txt``.
"""

from __future__ import annotations

import io
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import c2pa
from PIL import Image
from skimage import data as skdata

from manifests import GenerationInfo
from provenance._internal import c2pa_bridge
from provenance.keys import create_development_identity, load_identity_dir
from provenance.sign import sign_bytes

RESULTS = Path(__file__).resolve().parent / "results" / "sign.txt"
RUNS = 30


def _median_ms(fn: Callable[[], object]) -> float:
    fn()  # warm-up
    times = []
    for _ in range(RUNS):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def main() -> str:
    out = io.BytesIO()
    Image.fromarray(skdata.astronaut()).resize((1155, 866)).save(out, "JPEG", quality=90)
    jpeg = out.getvalue()
    info = GenerationInfo(generator="bench", model="m")
    with tempfile.TemporaryDirectory() as tmp:
        create_development_identity(tmp)
        identity = load_identity_dir(tmp)
        signer, _ = c2pa_bridge.make_signer(identity)
        definition = info.manifest_definition()

        def library_defaults() -> None:
            with c2pa.Builder(definition) as builder:
                builder.sign(signer, "image/jpeg", io.BytesIO(jpeg), io.BytesIO())

        rows = [
            ("c2pa-python defaults (its own thumbnail)", _median_ms(library_defaults)),
            ("provenance-kit, 512 px thumbnail", _median_ms(lambda: sign_bytes(jpeg, identity, info))),
            (
                "provenance-kit, --no-thumbnail",
                _median_ms(lambda: sign_bytes(jpeg, identity, info, thumbnail=False)),
            ),
        ]
    lines = [
        f"sign benchmark — one 1155x866 (1.0 MP) JPEG, median of {RUNS} runs, one process",
        f"machine: {platform.machine()}, Python {platform.python_version()}, "
        f"c2pa-rs {c2pa_bridge.sdk_version()}",
        time.strftime("run: %Y-%m-%d %H:%M UTC", time.gmtime()),
        "",
        f"{'configuration':<44}{'ms':>8}{'vs defaults':>14}",
    ]
    base = rows[0][1]
    lines += [f"{name:<44}{ms:8.1f}{ms / base:13.2f}x" for name, ms in rows]
    text = "\n".join(lines) + "\n"
    print(text, end="")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(text)
    return text


if __name__ == "__main__":
    main()
