"""Likeness benchmark: does recovery tell the stamped picture from a copied identifier?

Run from the repository root (pinned to one core, about five minutes)::

    taskset -c 1 .venv/bin/python -m benchmarks.likeness_bench     # or: make bench-likeness

The output is printed and written to benchmarks/results/likeness.txt.

Pictures: 16 photographs that ship with scikit-image and, from the committed C2PA test
files (tests/fixtures/c2pa), two whole photos and the four quadrants of each of the
four large camera photos (16 distinct pictures, reduced to 1024 px): 34 pictures.
Each is watermarked and its likeness reference made as ``provenance.stamp`` does.

Variants: plain attacks (JPEG, resizing, crops) and the screen captures, caption
strips and borders of ``tests/frames.py`` (the frames the recovery tests use), plus a
full-screen 1366x768 capture. For each variant the watermark is detected with its
region, as ``verify`` does before a recovery (when the whole image shows no mark, again
inside ``likeness.picture_box``), and the likeness is computed:

* genuine: against the picture's own reference;
* copied: against the references of 4 other pictures (drawn at random, fixed seed;
  "before" uses the first of them only):
  the situation of an identifier copied from those pictures onto this one (the mark is
  embedded with the public key into a different photo, which is then posted, framed
  or screen-captured). Only the reference and the region enter the likeness, and the
  region does not depend on which identifier the mark carries, so this is the same
  computation as re-embedding each other identifier.

"before" is the likeness without the region (the algorithm before this benchmark):
the whole image searched inside the reference.
"""

from __future__ import annotations

import argparse
import platform
import random
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image
from skimage import data as skdata

import watermark
from provenance._internal import likeness
from tests.frames import SCREENSHOT_FRAMES, browser_screenshot, jpeg, resized

ROOT = Path(__file__).resolve().parent.parent
JPEGS = ROOT / "tests" / "fixtures" / "c2pa" / "image" / "jpeg"
RESULTS = ROOT / "benchmarks" / "results" / "likeness.txt"

SKIMAGE = [
    "astronaut", "brick", "camera", "cell", "chelsea", "clock", "coffee", "coins", "grass", "gravel",
    "hubble_deep_field", "immunohistochemistry", "moon", "retina", "rocket", "stereo_motorcycle",
]
WHOLE = ["adobe-20220124-A.jpg", "adobe-20220124-I.jpg"]
QUARTERED = [
    "nikon-20221019-building.jpeg", "truepic-20230212-camera.jpg", "truepic-20230212-landscape.jpg",
    "truepic-20230212-library.jpg",
]
COPIED_PER_VARIANT = 4

Attack = Callable[[Image.Image], Image.Image]


def _crop(fraction: float) -> Attack:
    def f(im: Image.Image) -> Image.Image:
        w, h = im.size
        cw, ch = round(w * fraction), round(h * fraction)
        return im.crop(((w - cw) // 2, (h - ch) // 3, (w - cw) // 2 + cw, (h - ch) // 3 + ch))
    return f


PLAIN: dict[str, Attack] = {
    "JPEG 80": lambda im: jpeg(im, 80),
    "resize 0.5 + JPEG 85": lambda im: jpeg(resized(im, 0.5), 85),
    "crop 80 %": _crop(0.8),
    "crop 60 % + JPEG 85": lambda im: jpeg(_crop(0.6)(im), 85),
}
SCREENS: dict[str, Attack] = {
    **SCREENSHOT_FRAMES,
    "full screen 1366x768, 67%": lambda im: browser_screenshot(im, size=(1366, 768)),
}


def pictures(quick: bool) -> list[tuple[str, Image.Image]]:
    out: list[tuple[str, Image.Image]] = []
    for name in SKIMAGE[:6] if quick else SKIMAGE:
        array = getattr(skdata, name)()
        if name == "stereo_motorcycle":
            array = array[0]
        out.append((name, Image.fromarray(array).convert("RGB")))
    for name in WHOLE:
        out.append((name.split("-")[-1].split(".")[0], Image.open(JPEGS / name).convert("RGB")))
    for name in QUARTERED[:1] if quick else QUARTERED:
        image = Image.open(JPEGS / name)
        image.draft("RGB", (image.width // 2, image.height // 2))
        image = image.convert("RGB")
        w, h = image.size
        for i, (x, y) in enumerate(((0, 0), (w // 2, 0), (0, h // 2), (w // 2, h // 2))):
            quarter = image.crop((x, y, x + w // 2, y + h // 2))
            quarter.thumbnail((1024, 1024), Image.Resampling.LANCZOS)
            out.append((f"{name.split('-')[2].split('.')[0]}-q{i + 1}", quarter))
    return out


def _source(name: str) -> str:
    """The photo a picture comes from (quarters of one photo share it)."""
    return name.split("-q")[0]


def _pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a third of the pictures")
    args = parser.parse_args(argv)
    rng = random.Random(2026)
    pics = pictures(args.quick)
    refs: dict[str, bytes] = {}
    marked: dict[str, Image.Image] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", watermark.WeakWatermarkWarning)
        for i, (name, image) in enumerate(pics):
            marked[name] = watermark.embed(image, i.to_bytes(8, "big"))
            refs[name] = likeness.reference(marked[name])
    attacks = {**PLAIN, **SCREENS}
    genuine: dict[str, list[float]] = {a: [] for a in attacks}
    copied: dict[str, list[float]] = {a: [] for a in attacks}
    before_genuine: dict[str, list[float]] = {a: [] for a in attacks}
    before_copied: dict[str, list[float]] = {a: [] for a in attacks}
    missed: dict[str, list[str]] = {a: [] for a in attacks}
    rescued: dict[str, int] = dict.fromkeys(attacks, 0)
    worst: list[tuple[float, str, str, str]] = []
    timings: list[float] = []
    for name, image in marked.items():
        others = [o for o in refs if o != name]
        for attack_name, attack in attacks.items():
            shot = attack(image)
            found = watermark.detect(shot, locate=True)
            if not found.detected:
                # As verify does before a recovery: look again inside the picture.
                inside = likeness.detect_in_picture(shot, watermark.DEFAULT_KEY)
                if inside is None:
                    missed[attack_name].append(name)
                    continue
                shot, found = inside
                rescued[attack_name] += 1
            t0 = time.perf_counter()
            score = likeness.similarity(refs[name], shot, found.region)
            timings.append(time.perf_counter() - t0)
            genuine[attack_name].append(score)
            before_genuine[attack_name].append(likeness.similarity(refs[name], shot))
            for k, other in enumerate(rng.sample(others, COPIED_PER_VARIANT)):
                c = likeness.similarity(refs[other], shot, found.region)
                copied[attack_name].append(c)
                if k == 0:  # the old check is slow on large screenshots: one sample
                    before_copied[attack_name].append(likeness.similarity(refs[other], shot))
                worst.append((c, attack_name, name, other))
        print(f"  {name}", file=sys.stderr, flush=True)
    threshold = likeness.SAME_CONTENT
    lines = [
        "Likeness benchmark (benchmarks/likeness_bench.py): stamped picture vs copied identifier",
        f"python {platform.python_version()}, {platform.machine()}; {len(pics)} pictures, "
        f"{len(attacks)} variants each, {COPIED_PER_VARIANT} copied comparisons per variant; "
        f"threshold SAME_CONTENT = {threshold}",
        "",
        "Per variant (scores of variants whose watermark was detected; 'before' = without the mark region)",
        f"{'variant':34s} {'detected':>9s} {'genuine min/median':>19s} {'before':>12s} "
        f"{'copied max/median':>18s} {'before':>12s}",
    ]
    for a in attacks:
        g, c, bg, bc = genuine[a], copied[a], before_genuine[a], before_copied[a]
        n = len(g) + len(missed[a])
        if not g:
            lines.append(f"{a:34s} {len(g):>4d}/{n:<4d}  (watermark not found in any)")
            continue
        lines.append(
            f"{a:34s} {len(g):>4d}/{n:<4d} {min(g):>9.2f} / {statistics.median(g):.2f} "
            f"{min(bg):>5.2f} / {statistics.median(bg):.2f} {max(c):>8.2f} / {statistics.median(c):.2f} "
            f"{max(bc):>5.2f} / {statistics.median(bc):.2f}"
        )
    groups = {"plain attacks": list(PLAIN), "screenshots, captions, borders": list(SCREENS)}
    all_g = [s for a in attacks for s in genuine[a]]
    all_c = [s for a in attacks for s in copied[a]]
    lines += ["", "Distributions (percentiles)"]
    for label, names in groups.items():
        g = [s for a in names for s in genuine[a]]
        c = [s for a in names for s in copied[a]]
        bg = [s for a in names for s in before_genuine[a]]
        bc = [s for a in names for s in before_copied[a]]
        lines.append(
            f"  {label}: genuine n={len(g)} min {min(g):.3f} p1 {_pct(g, 1):.3f} p5 {_pct(g, 5):.3f} "
            f"median {_pct(g, 50):.3f} | copied n={len(c)} median {_pct(c, 50):.3f} p95 {_pct(c, 95):.3f} "
            f"p99 {_pct(c, 99):.3f} max {max(c):.3f}"
        )
        lines.append(
            f"    before: genuine min {min(bg):.3f} p5 {_pct(bg, 5):.3f} median {_pct(bg, 50):.3f} | "
            f"copied p99 {_pct(bc, 99):.3f} max {max(bc):.3f}"
        )
    lines += ["", "Histogram (all variants, 0.05 bins): genuine | copied"]
    bins = np.arange(0.0, 1.0001, 0.05)
    hg, _ = np.histogram(all_g, bins)
    hc, _ = np.histogram(all_c, bins)
    for lo, a, b in zip(bins[:-1], hg, hc, strict=True):
        if a or b:
            lines.append(f"  {lo:.2f}-{lo + 0.05:.2f} {a:>5d} | {b:>5d}")
    unrelated = [c for c, _, n, o in worst if _source(n) != _source(o)]
    lines += ["", "Threshold sweep: false rejects (genuine below) / false accepts (copied at or above;"
              " also without pairs of quarters of one photo)"]
    for t in (0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9):
        frr = sum(s < t for s in all_g) / len(all_g)
        far = sum(s >= t for s in all_c) / len(all_c)
        bfrr = sum(s < t for a in attacks for s in before_genuine[a]) / len(all_g)
        far_apart = sum(c >= t for c, _, n, o in worst if _source(n) != _source(o)) / max(1, len(unrelated))
        mark = "  <- SAME_CONTENT" if abs(t - threshold) < 1e-9 else ""
        lines.append(f"  {t:.2f}: FRR {frr:6.2%}  FAR {far:6.2%} (other source photo: {far_apart:6.2%})"
                     f"   (before: FRR {bfrr:6.2%}){mark}")
    lines += ["", "Highest copied scores"]
    for c, a, name, other in sorted(worst, reverse=True)[:8]:
        lines.append(f"  {c:.3f}  {name} ({a}) against the reference of {other}")
    low = sorted((s, a) for a in attacks for s in genuine[a])[:5]
    lines += ["", "Lowest genuine scores: " + ", ".join(f"{s:.3f} ({a})" for s, a in low)]
    lines += ["", "Found only by looking again inside the picture (likeness.picture_box), as verify does:"]
    lines += [f"  {a}: {n}" for a, n in rescued.items() if n]
    not_found = {a: m for a, m in missed.items() if m}
    lines += ["", "Watermark not found (recovery impossible whatever the likeness; a detection limit):"]
    for a, m in not_found.items():
        names = ", ".join(m[:8]) + ("..." if len(m) > 8 else "")
        lines.append(f"  {a}: {len(m)} of {len(m) + len(genuine[a])} ({names})")
    lines.append("")
    lines.append(f"Likeness time per comparison with a region: median "
                 f"{statistics.median(timings) * 1000:.0f} ms (max {max(timings) * 1000:.0f} ms)")
    text = "\n".join(lines) + "\n"
    print(text)
    if not args.quick:
        RESULTS.write_text(text)
    return text


if __name__ == "__main__":
    main()
