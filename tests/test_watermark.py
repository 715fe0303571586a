"""Tests for the watermark package (robustness is measured by
benchmarks/watermark_bench.py; here each attack is checked once at a mild strength)."""

from __future__ import annotations

import ast
import doctest
import io
import math
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageEnhance, ImageFilter
from skimage import data

import watermark
from watermark import _core, _ecc, _image, _sync

from .conftest import PUBLIC_JPEGS

PAYLOAD = bytes.fromhex("0123456789abcdef")


@pytest.fixture(scope="module")
def astronaut() -> Image.Image:
    return Image.fromarray(data.astronaut())


@pytest.fixture(scope="module")
def coffee() -> Image.Image:
    return Image.fromarray(data.coffee())


@pytest.fixture(scope="module")
def marked_coffee(coffee: Image.Image) -> Image.Image:
    return watermark.embed(coffee, PAYLOAD)


def psnr(a: Image.Image, b: Image.Image) -> float:
    x = np.asarray(a.convert("RGB"), dtype=np.float64)
    y = np.asarray(b.convert("RGB"), dtype=np.float64)
    return 10 * math.log10(255**2 / float(np.mean((x - y) ** 2)))


# ----------------------------------------------------------------- round trips
def test_round_trip_rgb(astronaut: Image.Image) -> None:
    marked = watermark.embed(astronaut, PAYLOAD)
    assert marked.mode == "RGB" and marked.size == astronaut.size
    assert psnr(astronaut, marked) > 41.0
    found = watermark.detect(marked)
    assert found.detected and found.payload == PAYLOAD
    assert found.bit_errors_corrected == 0
    assert found.p_value < 1e-30
    assert found.confidence == 1.0 - found.p_value
    assert found.p_value == _ecc.false_positive_probability(0, _core.MAX_ATTEMPTS)


def test_unmarked_not_detected(astronaut: Image.Image) -> None:
    found = watermark.detect(astronaut)
    assert not found.detected and found.payload is None
    assert found.p_value == 1.0 and found.confidence == 0.0


def test_rgba_alpha_untouched(coffee: Image.Image) -> None:
    alpha = Image.fromarray(np.random.default_rng(0).integers(0, 256, coffee.size[::-1],
                                                                dtype=np.uint8))
    rgba = coffee.copy()
    rgba.putalpha(alpha)
    marked = watermark.embed(rgba, PAYLOAD)
    assert marked.mode == "RGBA"
    assert np.array_equal(np.asarray(marked.getchannel("A")), np.asarray(alpha))
    assert watermark.detect(marked).payload == PAYLOAD


def test_grayscale(coffee: Image.Image) -> None:
    grey = coffee.convert("L")
    marked = watermark.embed(grey, PAYLOAD)
    assert marked.mode == "L"
    assert watermark.detect(marked).payload == PAYLOAD


@pytest.mark.parametrize("mode", ["I;16", "I"])
def test_sixteen_bit(coffee: Image.Image, mode: str) -> None:
    arr = np.asarray(coffee.convert("L"), dtype=np.uint16) * 257
    im = Image.fromarray(arr) if mode == "I;16" else Image.fromarray(arr.astype(np.int32))
    assert im.mode == mode
    marked = watermark.embed(im, PAYLOAD)
    assert marked.mode == mode and marked.size == im.size
    out = np.asarray(marked).astype(np.int64)
    assert out.max() > 255  # still 16-bit data, not squashed to 8 bits
    assert watermark.detect(marked).payload == PAYLOAD


@pytest.mark.parametrize(("mode", "expected"), [
    ("CMYK", "CMYK"), ("LA", "LA"), ("YCbCr", "YCbCr"), ("P", "RGB"), ("1", "L"),
    ("HSV", "RGB"),
])
def test_other_modes(coffee: Image.Image, mode: str, expected: str) -> None:
    im = coffee.convert(mode)
    marked = watermark.embed(im, PAYLOAD)
    assert marked.mode == expected and marked.size == im.size
    if mode != "1":  # a bilevel image has no room for an invisible mark
        assert watermark.detect(marked).payload == PAYLOAD


def test_info_copied(coffee: Image.Image) -> None:
    im = coffee.copy()
    im.info["dpi"] = (300, 300)
    im.info["icc_profile"] = b"not really a profile"
    marked = watermark.embed(im, PAYLOAD)
    assert marked.info["dpi"] == (300, 300)
    assert marked.info["icc_profile"] == b"not really a profile"


def test_private_key_and_wrong_key(coffee: Image.Image) -> None:
    key = b"acme corp secret watermark key"
    marked = watermark.embed(coffee, PAYLOAD, key=key)
    assert watermark.detect(marked, key=key).payload == PAYLOAD
    assert not watermark.detect(marked).detected
    assert not watermark.detect(marked, key=b"another key").detected


def test_marked_with_default_key_not_found_with_other(marked_coffee: Image.Image) -> None:
    for i in range(5):
        assert not watermark.detect(marked_coffee, key=f"wrong {i}".encode()).detected


# ----------------------------------------------------------------- attacks
def _reencode(fmt: str, quality: int) -> Callable[[Image.Image], Image.Image]:
    def f(im: Image.Image) -> Image.Image:
        buf = io.BytesIO()
        im.save(buf, fmt, quality=quality)
        return Image.open(io.BytesIO(buf.getvalue()))
    return f


def _resize(s: float) -> Callable[[Image.Image], Image.Image]:
    return lambda im: im.resize((round(im.width * s), round(im.height * s)),
                                Image.Resampling.BICUBIC)


def _crop80(im: Image.Image) -> Image.Image:
    side = math.sqrt(0.8)
    w, h = round(im.width * side), round(im.height * side)
    return im.crop((im.width - w - 3, 7, im.width - 3, 7 + h))  # off-centre


def _noise(im: Image.Image) -> Image.Image:
    a = np.asarray(im, dtype=np.float64)
    a = a + np.random.default_rng(1).normal(0, 5, a.shape)
    return Image.fromarray(np.clip(np.rint(a), 0, 255).astype(np.uint8))


ATTACKS: dict[str, Callable[[Image.Image], Image.Image]] = {
    "jpeg75": _reencode("JPEG", 75),
    "webp80": _reencode("WEBP", 80),
    "resize0.75": _resize(0.75),
    "resize1.5": _resize(1.5),
    "crop80": _crop80,
    "brightness1.2": lambda im: ImageEnhance.Brightness(im).enhance(1.2),
    "brightness0.8": lambda im: ImageEnhance.Brightness(im).enhance(0.8),
    "contrast0.8": lambda im: ImageEnhance.Contrast(im).enhance(0.8),
    "noise5": _noise,
    "blur1": lambda im: im.filter(ImageFilter.GaussianBlur(1.0)),
}


@pytest.mark.parametrize("attack", list(ATTACKS))
def test_survives_attack(marked_coffee: Image.Image, attack: str) -> None:
    found = watermark.detect(ATTACKS[attack](marked_coffee))
    assert found.detected and found.payload == PAYLOAD
    assert found.p_value < 1e-12


def test_straight_edges_do_not_hide_a_cropped_mark() -> None:
    # The bookshelves in this camera photo correlate with themselves along whole rows
    # and columns; before ridges were suppressed in the lattice search they outscored
    # the mark after every crop (the search found a 30 px "lattice" instead of 71.6).
    shelves = Image.open(PUBLIC_JPEGS / "truepic-20230212-library.jpg").convert("RGB")
    shelves = shelves.reduce(2)
    marked = watermark.embed(shelves, PAYLOAD)
    found = watermark.detect(_crop80(marked))
    assert found.payload == PAYLOAD
    assert found.scale == pytest.approx(1 / math.sqrt(0.8), rel=0.01)


def test_refinement_recovers_a_slightly_wrong_lattice(astronaut: Image.Image) -> None:
    # Resized by 0.8 the tile period is 51.2 px. Start 0.25 px and 0.3 degrees off,
    # which over eight tiles puts the far cells a whole cell out of place.
    marked = watermark.embed(astronaut, PAYLOAD).resize((410, 410), Image.Resampling.BICUBIC)
    w = _sync.whiten(_image.work_luma(marked))
    spectra = _core._pilot_spectra(watermark.DEFAULT_KEY)
    off = _sync.Lattice((51.45, 0.27), (-0.27, 51.45))
    rolled, z_off, pilot = _sync.align_any(_sync.fold(w, off), spectra)
    assert _core._PILOTS[pilot] == (2, 0)  # version 2, tile not turned
    start = _core._Tried(z_off, off, rolled, None, pilot)
    better = _core._refine(_sync.Folder(w), start, spectra[pilot])
    assert better is not None and better.z > z_off
    for v in (better.lat.v1, (better.lat.v2[1], -better.lat.v2[0])):
        assert abs(v[0] - 51.25) < 0.15 and abs(v[1]) < 0.15
    found = _core._decode_aligned(better.aligned, better.z, better.lat, watermark.DEFAULT_KEY, 2)
    assert found is not None and found.payload == PAYLOAD and found.algorithm == watermark.ALGORITHM


def _reference_fold(w: np.ndarray, lat: _sync.Lattice) -> np.ndarray:
    """Folding written the slow, obvious way: float bin coordinates and np.add.at."""
    h, wd = w.shape
    inv = np.linalg.inv(np.array([[lat.v1[0], lat.v2[0]], [lat.v1[1], lat.v2[1]]]) / 64)
    ys, xs = np.mgrid[0:h, 0:wd]
    u = np.floor(inv[0, 0] * xs + inv[0, 1] * ys + lat.phase).astype(int) % 64
    v = np.floor(inv[1, 0] * xs + inv[1, 1] * ys + lat.phase).astype(int) % 64
    sums = np.zeros((64, 64))
    counts = np.zeros((64, 64))
    np.add.at(sums, (v, u), w)
    np.add.at(counts, (v, u), 1)
    return sums / np.maximum(counts, 1)


@pytest.mark.parametrize("lattice", [_sync.Lattice((51.3, 1.2), (-1.2, 51.3)),
                                     _sync.Lattice((90.7, -7.1), (7.1, 90.7)),
                                     _sync.Lattice((128.0, 0.0), (0.0, 128.0), phase=0.0),
                                     # A regular split of the rows (even/odd) would fill
                                     # only every fourth tile row here.
                                     _sync.Lattice((32.0, 0.0), (0.0, 32.0))])
def test_fold_matches_a_direct_computation(lattice: _sync.Lattice) -> None:
    w = np.random.default_rng(1).uniform(-3, 3, (301, 257)).astype(np.float32)
    folder = _sync.Folder(w)
    fast, slow = folder.fold(lattice), _reference_fold(w, lattice)
    # Fixed-point bin coordinates (1/1024 bin) put a pixel lying within ~1e-3 of a
    # bin edge into the neighbouring bin now and then, which changes the mean of the
    # few bins that pixel moves between (3-4 % of the bins here); every other bin must
    # agree to float rounding.
    assert np.mean(np.abs(fast - slow) < 1e-4) > 0.95
    # The two halves of the rows add up to exactly the full fold, and each half alone
    # fills (nearly) every bin the full fold fills: a half fold verifies candidate
    # lattices in detection.
    half = folder.sums(lattice, 0)
    halves = half + folder.sums(lattice, 1)
    np.testing.assert_allclose(folder.mean(halves), fast, atol=1e-5)
    filled_by_half = np.rint(half / 2.0**20) > 0
    filled = np.rint(halves / 2.0**20) > 0
    assert filled_by_half.sum() > 0.9 * filled.sum()


def test_fold_counts_survive_extreme_weights() -> None:
    # Sums and counts share one bincount (counts ride on a 2**20 offset per weight):
    # whitened values are clipped to +-3, and a bin full of them must still average
    # to exactly that.
    w = np.full((200, 300), 3.0, dtype=np.float32)
    w[::2] = -3.0
    folded = _sync.Folder(w).fold(_sync.Lattice((64.0, 0.0), (0.0, 64.0), phase=0.25))
    assert set(np.unique(folded).tolist()) == {-3.0, 3.0}


def test_lattice_search_on_a_very_wide_working_image() -> None:
    # OpenCV's remap takes maps under 32767 px a side; the search must not need one.
    w = np.random.default_rng(0).standard_normal((120, 33000)).astype(np.float32)
    assert len(_sync.lattice_candidates(w)) <= _sync.MAX_LATTICE_CANDIDATES


# ----------------------------------------------------------------- bad input
@pytest.mark.parametrize("size", [(1, 1), (10, 5000), (5000, 10), (255, 4000), (100, 100)])
def test_too_small(size: tuple[int, int]) -> None:
    im = Image.new("RGB", size, (90, 120, 150))
    with pytest.raises(watermark.ImageTooSmallError) as info:
        watermark.embed(im, PAYLOAD)
    assert isinstance(info.value, watermark.WatermarkError)
    assert "\n" not in str(info.value) and str(watermark.MIN_SIZE) in str(info.value)
    assert not watermark.detect(im).detected


def test_min_size_exactly(astronaut: Image.Image) -> None:
    im = astronaut.resize((watermark.MIN_SIZE, watermark.MIN_SIZE + 40))
    marked = watermark.embed(im, PAYLOAD)
    assert marked.size == im.size
    assert watermark.detect(marked).payload == PAYLOAD


def _odd_images() -> list[Image.Image]:
    rng = np.random.default_rng(3)
    noise = rng.integers(0, 256, (300, 400, 3), dtype=np.uint8)
    ims = [
        Image.new("RGB", (1, 1)),
        Image.new("L", (10, 5000)),
        Image.new("RGB", (5000, 10)),
        Image.new("RGB", (600, 400)),  # black
        Image.new("L", (400, 400), 255),
        Image.fromarray(noise).convert("P"),
        Image.fromarray(noise).convert("CMYK"),
        Image.fromarray(noise).convert("LA"),
        Image.fromarray(noise).convert("1"),
        Image.fromarray(noise).convert("HSV"),
        Image.fromarray(rng.integers(0, 65536, (300, 300), dtype=np.uint16)),
        Image.fromarray(np.full((300, 300), np.nan, dtype=np.float32)),
        Image.fromarray(np.full((300, 300), np.inf, dtype=np.float32)),
        Image.fromarray(rng.normal(0, 1e30, (300, 300)).astype(np.float32)),
        Image.fromarray(noise),
    ]
    buf = io.BytesIO()
    Image.fromarray(noise).save(buf, "PNG")
    truncated = Image.open(io.BytesIO(buf.getvalue()[: len(buf.getvalue()) // 2]))
    ims.append(truncated)  # decoding fails lazily inside detect
    return ims


@pytest.mark.parametrize("index", range(16))
def test_detect_never_raises(index: int) -> None:
    im = _odd_images()[index]
    found = watermark.detect(im)
    assert not found.detected and found.payload is None


def test_bad_arguments(coffee: Image.Image) -> None:
    with pytest.raises(watermark.WatermarkError):
        watermark.embed(coffee, b"short")
    with pytest.raises(watermark.WatermarkError):
        watermark.embed(coffee, PAYLOAD, key=b"")
    with pytest.raises(watermark.WatermarkError):
        watermark.embed(coffee, PAYLOAD, strength=0.0)
    assert not watermark.detect(coffee, key=b"").detected


@pytest.mark.parametrize("value", [0, 6, 250])
def test_flat_image_warns(value: int) -> None:
    im = Image.new("RGB", (400, 300), (value, value, value))
    with pytest.warns(watermark.WeakWatermarkWarning):
        marked = watermark.embed(im, PAYLOAD)
    assert marked.size == im.size and marked.mode == "RGB"
    assert watermark.estimate_strength(im) < watermark.WEAK_STRENGTH


def test_photo_does_not_warn(coffee: Image.Image) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", watermark.WeakWatermarkWarning)
        watermark.embed(coffee, PAYLOAD)
    assert watermark.estimate_strength(coffee) > 0.9


# ----------------------------------------------------------------- false positives
def test_no_false_positives_on_unmarked_crops() -> None:
    sources = [data.astronaut(), data.coffee(), data.chelsea(), data.rocket(),
               data.camera(), data.brick(), data.grass(), data.page(), data.text()]
    rng = np.random.default_rng(2024)
    hits = 0
    for i in range(200):
        src = Image.fromarray(sources[i % len(sources)])
        w, h = src.size
        cw = int(rng.integers(min(w, 100), w + 1))
        ch = int(rng.integers(min(h, 100), h + 1))
        x0, y0 = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
        crop = src.crop((x0, y0, x0 + cw, y0 + ch))
        s = float(rng.uniform(0.6, 1.3))
        crop = crop.resize((max(1, round(cw * s)), max(1, round(ch * s))))
        hits += watermark.detect(crop).detected
    assert hits == 0


def test_false_positive_formula() -> None:
    # Random read-outs must essentially never decode: check the bound's ingredients.
    assert _ecc.false_positive_probability(0, 1) < _ecc.false_positive_probability(16, 1)
    assert _ecc.false_positive_probability(_ecc.CODE_BITS, _core.MAX_ATTEMPTS) < 1e-12
    rng = np.random.default_rng(5)
    for _ in range(300):
        bits = rng.integers(0, 2, _ecc.CODE_BITS).astype(np.uint8)
        assert _ecc.decode(bits, watermark.DEFAULT_KEY)[0] is None


# ----------------------------------------------------------------- C2PA identity
def test_soft_binding_round_trip() -> None:
    value = watermark.soft_binding_value(PAYLOAD)
    assert value == "ASNFZ4mrze8="
    assert watermark.payload_from_soft_binding_value(value) == PAYLOAD
    for bad in ["", "not base64!", "AAAA", "ASNFZ4mrze8AAA=="]:
        with pytest.raises(watermark.WatermarkError):
            watermark.payload_from_soft_binding_value(bad)
    with pytest.raises(watermark.WatermarkError):
        watermark.soft_binding_value(b"123")


def test_algorithm_name() -> None:
    assert watermark.ALGORITHM == "io.github.provenance-py.watermark.2"
    assert watermark.ALGORITHMS == (watermark.ALGORITHM, "io.github.provenance-py.watermark.1")
    assert watermark.ALGORITHM_V1 == "io.github.provenance-py.watermark.1"
    assert isinstance(watermark.DEFAULT_KEY, bytes) and watermark.MIN_SIZE == 256


def test_does_not_import_provenance() -> None:
    for path in Path(watermark.__file__).parent.glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            assert not any(n.split(".")[0] == "provenance" for n in names), path


def test_module_docstring_example() -> None:
    result = doctest.testmod(watermark, verbose=False)
    assert result.attempted > 0 and result.failed == 0
