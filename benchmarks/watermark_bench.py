"""Watermark benchmark: invisibility, robustness, false positives and speed, side by
side with the invisible-watermark package (dwtDct, dwtDctSvd, rivaGan).

Run from the repository root::

    .venv/bin/python -m benchmarks.watermark_bench            # full run
    .venv/bin/python -m benchmarks.watermark_bench --quick    # a few minutes

The output is printed and written to benchmarks/results/watermark.txt.
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import io
import math
import os
import platform
import sys
import time
import types
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageEnhance, ImageFilter

import watermark
from watermark import _core, _ecc

ROOT = Path(__file__).resolve().parent.parent
JPEG_DIR = ROOT / ".." / "shared" / "c2pa-public-testfiles" / "image" / "jpeg"
RESULTS = ROOT / "benchmarks" / "results" / "watermark.txt"

SKIMAGE_PHOTOS = [
    "astronaut", "chelsea", "coffee", "rocket", "motorcycle_left", "hubble_deep_field",
    "retina",
]
# Non-photographic or grey skimage images used only as unmarked negatives.
SKIMAGE_NEGATIVES = [
    "camera", "moon", "coins", "page", "text", "horse", "brick", "grass", "gravel",
    "immunohistochemistry", "motorcycle_right", "cell", "clock", "colorwheel",
    "logo", "microaneurysms",
]

Attack = Callable[[Image.Image, np.random.Generator], Image.Image]


# --------------------------------------------------------------------------- attacks
def _jpeg(q: int) -> Attack:
    def f(im: Image.Image, rng: np.random.Generator) -> Image.Image:
        buf = io.BytesIO()
        im.convert("RGB").save(buf, "JPEG", quality=q)
        return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")
    return f


def _webp(q: int) -> Attack:
    def f(im: Image.Image, rng: np.random.Generator) -> Image.Image:
        buf = io.BytesIO()
        im.convert("RGB").save(buf, "WEBP", quality=q)
        return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")
    return f


def _resize(s: float, resample: Image.Resampling = Image.Resampling.BICUBIC) -> Attack:
    def f(im: Image.Image, rng: np.random.Generator) -> Image.Image:
        w, h = im.size
        return im.resize((max(1, round(w * s)), max(1, round(h * s))), resample)
    return f


def _crop(area: float) -> Attack:
    def f(im: Image.Image, rng: np.random.Generator) -> Image.Image:
        w, h = im.size
        side = math.sqrt(area)
        cw, ch = round(w * side), round(h * side)
        # Off-centre: a random position, never the centred one.
        x0 = int(rng.integers(0, w - cw + 1))
        y0 = int(rng.integers(0, h - ch + 1))
        if abs(x0 - (w - cw) // 2) < 3 and abs(y0 - (h - ch) // 2) < 3:
            x0, y0 = 0, h - ch
        return im.crop((x0, y0, x0 + cw, y0 + ch))
    return f


def _enhance(kind: str, factor: float) -> Attack:
    def f(im: Image.Image, rng: np.random.Generator) -> Image.Image:
        enh = ImageEnhance.Brightness(im) if kind == "b" else ImageEnhance.Contrast(im)
        return enh.enhance(factor)
    return f


def _noise(sigma: float) -> Attack:
    def f(im: Image.Image, rng: np.random.Generator) -> Image.Image:
        a = np.asarray(im, dtype=np.float32)
        a = a + rng.normal(0.0, sigma, a.shape).astype(np.float32)
        return Image.fromarray(np.clip(np.rint(a), 0, 255).astype(np.uint8))
    return f


def _blur(sigma: float) -> Attack:
    def f(im: Image.Image, rng: np.random.Generator) -> Image.Image:
        return im.filter(ImageFilter.GaussianBlur(sigma))
    return f


def _rotate(deg: float) -> Attack:
    def f(im: Image.Image, rng: np.random.Generator) -> Image.Image:
        return im.rotate(deg, Image.Resampling.BILINEAR, expand=False)
    return f


def _chain(*fs: Attack) -> Attack:
    def f(im: Image.Image, rng: np.random.Generator) -> Image.Image:
        for g in fs:
            im = g(im, rng)
        return im
    return f


def _screenshot(im: Image.Image, rng: np.random.Generator) -> Image.Image:
    w, h = im.size
    shot = im.resize((round(w * 0.9), round(h * 0.9)), Image.Resampling.BILINEAR,
                     reducing_gap=None)
    buf = io.BytesIO()
    shot.save(buf, "PNG")
    return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")


REQUIRED: list[tuple[str, Attack]] = [
    ("none", lambda im, rng: im),
    ("jpeg90", _jpeg(90)),
    ("jpeg75", _jpeg(75)),
    ("jpeg50", _jpeg(50)),
    ("webp80", _webp(80)),
    ("resize0.5", _resize(0.5)),
    ("resize0.75", _resize(0.75)),
    ("resize1.5", _resize(1.5)),
    ("crop80%", _crop(0.8)),
    ("bright0.8", _enhance("b", 0.8)),
    ("bright1.2", _enhance("b", 1.2)),
    ("contrast0.8", _enhance("c", 0.8)),
    ("contrast1.2", _enhance("c", 1.2)),
    ("noise5", _noise(5.0)),
    ("blur1", _blur(1.0)),
]
STRETCH: list[tuple[str, Attack]] = [
    ("crop50%", _crop(0.5)),
    ("rotate2", _rotate(2.0)),
    ("rotate5", _rotate(5.0)),
    ("jpg75+rs.75+crop80", _chain(_jpeg(75), _resize(0.75), _crop(0.8))),
    ("screenshot90%", _screenshot),
]
ATTACKS = REQUIRED + STRETCH


# --------------------------------------------------------------------------- methods
@dataclass
class Method:
    name: str
    bits: int
    embed: Callable[[Image.Image, np.ndarray], Image.Image]
    # Returns (recovered bits or None if the method reports "nothing", raw bits for
    # bit accuracy or None).
    detect: Callable[[Image.Image], tuple[np.ndarray | None, np.ndarray | None]]
    max_trials: int | None = None
    note: str = ""


def _ours() -> Method:
    def emb(im: Image.Image, bits: np.ndarray) -> Image.Image:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", watermark.WeakWatermarkWarning)
            return watermark.embed(im, np.packbits(bits).tobytes())

    def det(im: Image.Image) -> tuple[np.ndarray | None, np.ndarray | None]:
        d, raw = _core.detect_with_bits(im, watermark.DEFAULT_KEY)
        if d.payload is not None:
            found = np.unpackbits(np.frombuffer(d.payload, dtype=np.uint8))
            return found, found
        # BCH is systematic: the first 64 codeword bits are the payload.
        return None, None if raw is None else raw[:64]

    return Method("ours", 64, emb, det)


def _install_torch_shim() -> None:
    """imwatermark's rivaGan imports torch only to shuffle numpy arrays; a 2 GB
    install for that is not worth it, so provide the few calls it makes."""
    try:
        import torch  # noqa: F401
        return
    except ImportError:
        pass

    class T:
        def __init__(self, a: Any) -> None:
            self.a = np.asarray(a)

        def __truediv__(self, o: float) -> T:
            return T(self.a / o)

        def __sub__(self, o: float) -> T:
            return T(self.a - o)

        def __add__(self, o: float) -> T:
            return T(self.a + o)

        def __mul__(self, o: float) -> T:
            return T(self.a * o)

        def __getitem__(self, k: Any) -> T:
            return T(self.a[k])

        def permute(self, *d: int) -> T:
            return T(np.transpose(self.a, d))

        def unsqueeze(self, d: int) -> T:
            return T(np.expand_dims(self.a, d))

        def detach(self) -> T:
            return self

        def cpu(self) -> T:
            return self

        def numpy(self) -> Any:
            return self.a

    shim = types.ModuleType("torch")
    shim.from_numpy = lambda a: T(a)  # type: ignore[attr-defined]
    shim.clamp = lambda t, min, max: T(np.clip(t.a, min, max))  # type: ignore[attr-defined]
    sys.modules["torch"] = shim


def _baselines() -> list[Method]:
    try:
        _install_torch_shim()
        import cv2
        from imwatermark import WatermarkDecoder, WatermarkEncoder
    except Exception as exc:  # noqa: BLE001
        print(f"# invisible-watermark unavailable ({exc}); baselines skipped")
        return []
    cv2.setNumThreads(1)

    def make(kind: str, nbits: int, max_trials: int | None, note: str) -> Method:
        if kind == "rivaGan":
            WatermarkEncoder.loadModel()

        def emb(im: Image.Image, bits: np.ndarray) -> Image.Image:
            enc = WatermarkEncoder()
            enc.set_watermark("bits", [int(b) for b in bits])
            bgr = cv2.cvtColor(np.asarray(im.convert("RGB")), cv2.COLOR_RGB2BGR)
            out = enc.encode(bgr, kind)
            return Image.fromarray(cv2.cvtColor(out, cv2.COLOR_BGR2RGB))

        def det(im: Image.Image) -> tuple[np.ndarray | None, np.ndarray | None]:
            try:
                dec = WatermarkDecoder("bits", nbits)
                bgr = cv2.cvtColor(np.asarray(im.convert("RGB")), cv2.COLOR_RGB2BGR)
                got = np.array(dec.decode(bgr, kind), dtype=np.uint8)[:nbits]
            except Exception:  # noqa: BLE001 - e.g. images too small for its DWT
                return None, None
            # These methods always output bits; "detection" = exact match, so the
            # raw bits are the found bits.
            return got, got

        return Method(kind, nbits, emb, det, max_trials, note)

    return [
        make("dwtDct", 64, None, ""),
        make("dwtDctSvd", 64, None, ""),
        make("rivaGan", 32, 6, "32-bit payload; fewer trials (slow)"),
    ]


# --------------------------------------------------------------------------- images
def load_skimage(name: str) -> Image.Image:
    from skimage import data

    if name == "motorcycle_left":
        arr = data.stereo_motorcycle()[0]
    elif name == "motorcycle_right":
        arr = data.stereo_motorcycle()[1]
    else:
        arr = getattr(data, name)()
    if arr.dtype != np.uint8:
        arr = (np.clip(arr, 0, 1) * 255).astype(np.uint8) if arr.dtype.kind == "f" else \
            arr.astype(np.uint8)
    im = Image.fromarray(arr)
    return im.convert("RGB") if im.mode not in ("RGB", "L") else im


def camera_jpegs() -> list[tuple[str, Image.Image]]:
    """The c2pa test JPEGs, de-duplicated by pixel content (many are re-signed copies)."""
    out: list[tuple[str, Image.Image]] = []
    seen: set[str] = set()
    for f in sorted(glob.glob(str(JPEG_DIR / "*.jp*g"))):
        im = Image.open(f)
        im.load()
        h = hashlib.md5(np.asarray(im.convert("L").resize((32, 32))).tobytes()).hexdigest()
        if h in seen:
            continue
        seen.add(h)
        out.append((Path(f).stem, im.convert("RGB")))
    return out
