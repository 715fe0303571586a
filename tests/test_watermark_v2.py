"""Version 2 of the image watermark: synchronisation under any rotation, mirrors and
aspect changes, version 1 marks still read, and the p-value under the wider search.
(Robustness rates are measured by benchmarks/watermark_bench.py; here each new attack
is checked once at a mild strength on a few photos.)"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image
from skimage import data

import watermark
from cli.main import cli
from manifests import GenerationInfo
from provenance.keys import Identity
from provenance.sign import sign_bytes
from provenance.stamp import stamp
from provenance.store import SQLiteManifestStore, open_store
from provenance.verify import verify_bytes
from watermark import _core, _ecc, _image, _pattern, _sync

from .conftest import PUBLIC_JPEGS, encode

PAYLOAD = bytes.fromhex("0fedcba987654321")
INFO = GenerationInfo(generator="pipeline", model="diffusion-x", prompt="a cup of coffee")


def _embed_v1(image: Image.Image, payload: bytes, key: bytes = watermark.DEFAULT_KEY) -> Image.Image:
    """A mark as version 1 made it (the embedder is kept internally for this)."""
    marked, _ = _core.embed_normalised(_image.normalise_mode(image), payload, key, 1.0, version=1)
    return marked


def _rotate_cropped(deg: float) -> Callable[[Image.Image], Image.Image]:
    """Rotate, then keep the centred upright rectangle free of corner fill."""

    def f(im: Image.Image) -> Image.Image:
        w, h = im.size
        rot = im.rotate(deg, Image.Resampling.BICUBIC, expand=True)
        a = math.radians(deg)
        # Largest upright rectangle of aspect w:h inside the rotated frame (safe bound).
        k = 1.0 / (math.cos(a) + math.sin(a) * max(w / h, h / w))
        cw, ch = int(w * k) - 2, int(h * k) - 2
        bw, bh = rot.size
        return rot.crop(((bw - cw) // 2, (bh - ch) // 2, (bw - cw) // 2 + cw, (bh - ch) // 2 + ch))

    return f


def _aspect(sx: float, sy: float) -> Callable[[Image.Image], Image.Image]:
    return lambda im: im.resize((round(im.size[0] * sx), round(im.size[1] * sy)), Image.Resampling.BICUBIC)


def _jpeg(q: int) -> Callable[[Image.Image], Image.Image]:
    return lambda im: Image.open(io.BytesIO(encode(im.convert("RGB"), "JPEG", quality=q)))


def _off_centre_crop(area: float) -> Callable[[Image.Image], Image.Image]:
    def f(im: Image.Image) -> Image.Image:
        w, h = im.size
        cw, ch = round(w * math.sqrt(area)), round(h * math.sqrt(area))
        return im.crop((w - cw, 0, w, ch))  # top right corner

    return f


ATTACKS: dict[str, Callable[[Image.Image], Image.Image]] = {
    "rotate7+crop": _rotate_cropped(7.0),
    "rotate30+crop": _rotate_cropped(30.0),
    "rotate45+crop": _rotate_cropped(45.0),
    "rotate90": lambda im: im.transpose(Image.Transpose.ROTATE_90),
    "rotate270": lambda im: im.transpose(Image.Transpose.ROTATE_270),
    "flip-horizontal": lambda im: im.transpose(Image.Transpose.FLIP_LEFT_RIGHT),
    "flip-vertical": lambda im: im.transpose(Image.Transpose.FLIP_TOP_BOTTOM),
    "transpose": lambda im: im.transpose(Image.Transpose.TRANSPOSE),
    "aspect-x0.85": _aspect(0.85, 1.0),
    "aspect-y1.2": _aspect(1.0, 1.2),
    "crop30%-corner": _off_centre_crop(0.3),
    "jpeg40": _jpeg(40),
}


@pytest.fixture(scope="module")
def photos() -> dict[str, Image.Image]:
    camera = Image.open(PUBLIC_JPEGS / "truepic-20230212-landscape.jpg").convert("RGB")
    return {
        "astronaut": Image.fromarray(data.astronaut()),
        "coffee": Image.fromarray(data.coffee()),
        # A camera photo at a quarter of its size (keeps the test fast).
        "landscape": camera.reduce(4),
    }


@pytest.fixture(scope="module")
def marked(photos: dict[str, Image.Image]) -> dict[str, Image.Image]:
    return {name: watermark.embed(im, PAYLOAD) for name, im in photos.items()}


@pytest.mark.parametrize("name", ["astronaut", "coffee", "landscape"])
@pytest.mark.parametrize("attack", list(ATTACKS))
def test_version_2_survives(marked: dict[str, Image.Image], name: str, attack: str) -> None:
    found = watermark.detect(ATTACKS[attack](marked[name]))
    assert found.detected and found.payload == PAYLOAD
    assert found.version == 2 and found.algorithm == watermark.ALGORITHM
    assert found.p_value == _ecc.false_positive_probability(found.bit_errors_corrected, _core.MAX_ATTEMPTS)
    assert found.p_value < 1e-12


@pytest.mark.parametrize("attack", ["none", "jpeg40", "flip-horizontal", "rotate30+crop", "aspect-x0.85"])
def test_version_1_marks_are_still_read(photos: dict[str, Image.Image], attack: str) -> None:
    old = _embed_v1(photos["coffee"], PAYLOAD)
    image = old if attack == "none" else ATTACKS[attack](old)
    found = watermark.detect(image)
    assert found.detected and found.payload == PAYLOAD
    assert found.version == 1 and found.algorithm == watermark.ALGORITHM_V1


def test_versions_differ_in_the_pixels(photos: dict[str, Image.Image]) -> None:
    # Same payload and key, different bitstream: the pilot tells the versions apart.
    a = np.asarray(_embed_v1(photos["coffee"], PAYLOAD), dtype=np.int16)
    b = np.asarray(watermark.embed(photos["coffee"], PAYLOAD), dtype=np.int16)
    assert np.count_nonzero(a != b) > a.size // 4


@pytest.mark.parametrize("attack", ["flip-horizontal", "rotate30+crop", "aspect-y1.2"])
def test_wrong_key_finds_nothing(photos: dict[str, Image.Image], attack: str) -> None:
    key = b"someone else's key"
    image = ATTACKS[attack](watermark.embed(photos["astronaut"], PAYLOAD, key))
    assert not watermark.detect(image).detected
    assert watermark.detect(image, key).payload == PAYLOAD
    assert not watermark.detect(_embed_v1(photos["astronaut"], PAYLOAD, key)).detected


def test_unmarked_photos_stay_unmarked_under_the_wider_search(photos: dict[str, Image.Image]) -> None:
    for im in photos.values():
        for attack in ("none", "rotate30+crop", "flip-horizontal", "aspect-x0.85"):
            image = im if attack == "none" else ATTACKS[attack](im)
            found = watermark.detect(image)
            assert not found.detected and found.p_value == 1.0


def test_every_decode_is_paid_for(monkeypatch: pytest.MonkeyPatch, photos: dict[str, Image.Image]) -> None:
    """The p-value's union bound counts MAX_ATTEMPTS decodes: whatever the search
    tries (lattices, 16 pilot alignments, refinement), no detection decodes more."""
    calls: list[int] = []
    real = _ecc.decode_soft

    def counting(*args: object, **kwargs: object) -> tuple[bytes | None, int]:
        calls.append(1)
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(_ecc, "decode_soft", counting)
    # Unmarked photos with every gate removed: every attempt decodes, and steps 4b, 5
    # and 5b (with its grown map) always run.
    for gate in ("DECODE_MIN_Z", "HALF_FOLD_MIN_Z", "REFINE_MIN_Z", "FEW_SCAN_MIN_Z", "PART_MIN_Z",
                 "GROW_MIN_Z"):
        monkeypatch.setattr(_core, gate, -math.inf)
    monkeypatch.setattr(_core, "PART_SHIFT", _pattern.TILE)
    samples = [photos["coffee"], photos["astronaut"].rotate(20), _aspect(0.8, 1.0)(photos["landscape"]),
               _off_centre_crop(0.15)(photos["landscape"]), _perspective(photos["landscape"])]
    marked_once = watermark.embed(photos["coffee"], PAYLOAD)
    samples.append(_jpeg(15)(_rotate_cropped(25.0)(marked_once)))  # damaged: may refine
    counts = []
    for image in samples:
        calls.clear()
        watermark.detect(image)
        counts.append(len(calls))
        assert 1 <= len(calls) <= _core.MAX_ATTEMPTS
    assert max(counts) == _core.MAX_ATTEMPTS  # the bound is what the steps can use
    # The bound itself: identity, 3 lattices, the few-tile lattice (4b), refinement
    # (5), the sum of parts (5b); Chase and the keyed check.
    assert _core.MAX_ATTEMPTS == 1 + _sync.MAX_LATTICE_CANDIDATES + 1 + 1 + 1 == 7
    worst = _ecc.false_positive_probability(_ecc.CODE_BITS, _core.MAX_ATTEMPTS)
    assert worst == pytest.approx(_core.MAX_ATTEMPTS * _ecc.false_positive_probability(_ecc.CODE_BITS, 1))
    assert worst < 1e-15


def _perspective(im: Image.Image, seed: int = 0) -> Image.Image:
    """Each corner moved by up to 3 % of the side, warped back onto the same canvas
    (the benchmark's perspective3% attack)."""
    w, h = im.size
    src = np.array([[0, 0], [w, 0], [w, h], [0, h]], dtype=np.float32)
    shift = np.random.default_rng(seed).uniform(-0.03, 0.03, (4, 2)) * np.array([w, h])
    dst = src + shift.astype(np.float32)
    m = cv2.getPerspectiveTransform(src, dst)
    out = cv2.warpPerspective(np.asarray(im.convert("RGB")), m, (w, h), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_REFLECT)
    return Image.fromarray(out)


@pytest.fixture(scope="module")
def cameras() -> dict[str, Image.Image]:
    """Two camera photos at half size (2016 x 1512): big enough that a crop keeping
    15 % of the area is over 256 px."""
    return {name: Image.open(PUBLIC_JPEGS / f"truepic-20230212-{name}.jpg").convert("RGB").reduce(2)
            for name in ("landscape", "camera")}


def _bottom_left_crop(area: float) -> Callable[[Image.Image], Image.Image]:
    def f(im: Image.Image) -> Image.Image:
        w, h = im.size
        cw, ch = round(w * math.sqrt(area)), round(h * math.sqrt(area))
        return im.crop((0, h - ch, cw, h))

    return f


@pytest.mark.parametrize("name", ["landscape", "camera"])
def test_a_small_crop_is_read_by_the_few_tile_search(monkeypatch: pytest.MonkeyPatch,
                                                      cameras: dict[str, Image.Image], name: str) -> None:
    """A crop keeping 15 % of the area has about 3 tiles across: step 4b finds it.
    (Textured corner: the landscape's top right is sky, where the mark is weak.)"""
    crop = _bottom_left_crop(0.15)(watermark.embed(cameras[name], PAYLOAD))
    assert min(crop.size) >= 256
    found = watermark.detect(crop)
    assert found.detected and found.payload == PAYLOAD
    assert found.p_value == _ecc.false_positive_probability(found.bit_errors_corrected, _core.MAX_ATTEMPTS)
    assert not watermark.detect(crop, b"someone else's key").detected
    # Step 4b's periods, for comparison: without them the crop is not read.
    monkeypatch.setattr(_sync, "few_tile_periods", lambda *a, **k: [])
    assert watermark.detect(crop).payload != PAYLOAD


@pytest.mark.parametrize(("name", "seed"), [("landscape", 0), ("camera", 3)])
def test_a_perspective_warp_is_read_from_parts(monkeypatch: pytest.MonkeyPatch,
                                               cameras: dict[str, Image.Image], name: str, seed: int) -> None:
    """3 % corner shifts that no single lattice folds: step 5b reads them."""
    warped = _perspective(watermark.embed(cameras[name], PAYLOAD), seed=seed)
    found = watermark.detect(warped)
    assert found.detected and found.payload == PAYLOAD
    assert found.p_value == _ecc.false_positive_probability(found.bit_errors_corrected, _core.MAX_ATTEMPTS)
    assert not watermark.detect(warped, b"someone else's key").detected
    monkeypatch.setattr(_core, "_parts_fold", lambda *a: (None, 0.0))
    assert watermark.detect(warped).payload != PAYLOAD


def test_a_perspective_warp_is_read_along_a_grown_map(monkeypatch: pytest.MonkeyPatch,
                                                     marked: dict[str, Image.Image]) -> None:
    """A 3 % warp of a 512-px photo turns and scales the tile by several pixels across
    one part: the parts' sum shows the pilot but does not decode; the projective map
    grown from the best part does (still step 5b's one decode)."""
    warped = _perspective(marked["astronaut"], seed=3)
    found = watermark.detect(warped)
    assert found.detected and found.payload == PAYLOAD
    assert found.p_value == _ecc.false_positive_probability(found.bit_errors_corrected, _core.MAX_ATTEMPTS)
    assert not watermark.detect(warped, b"someone else's key").detected
    monkeypatch.setattr(_core, "GROW_MIN_Z", math.inf)
    assert watermark.detect(warped).payload != PAYLOAD


def test_parts_need_agreeing_neighbours() -> None:
    """Step 5b on noise: parts aligned at their own noise peaks never count (their
    translations do not agree), so nothing is summed or decoded."""
    rng = np.random.default_rng(5)
    for _ in range(5):
        w = np.clip(rng.normal(0.0, 1.0, (512, 768)), -3, 3).astype(np.float32)
        aligned, _ = _core._parts_fold(w, watermark.DEFAULT_KEY)
        assert aligned is None


def test_dihedral_alignment_finds_the_turn() -> None:
    rng = np.random.default_rng(3)
    pilot = np.where(rng.random((64, 64)) < 0.5, -1.0, 1.0).astype(np.float32)
    spectra = _sync.dihedral_spectra(pilot)
    for o in _sync.DIHEDRAL:
        assert np.array_equal(_sync.dihedral(_sync.dihedral(pilot, o), _sync.DIHEDRAL_INVERSE[o]), pilot)
        seen = np.roll(_sync.dihedral(pilot, _sync.DIHEDRAL_INVERSE[o]), (5, -9), axis=(0, 1))
        aligned, z, i = _sync.align_any(seen, spectra)
        assert i == o and z > 30
        assert np.array_equal(_sync.dihedral(aligned, o), pilot)


def test_lattice_search_finds_an_anisotropic_rotated_lattice(photos: dict[str, Image.Image]) -> None:
    # Rotated 20 degrees, then the width scaled by 0.85: two unequal, non-perpendicular
    # basis vectors, which version 1's square-lattice search could not represent.
    image = _aspect(0.85, 1.0)(watermark.embed(photos["astronaut"], PAYLOAD).rotate(20.0))
    lats = _sync.lattice_candidates(_sync.whiten(_image.work_luma(image)))
    t = math.radians(20.0)
    want = [np.array([64 * math.cos(t) * 0.85, -64 * math.sin(t)]),
            np.array([64 * math.sin(t) * 0.85, 64 * math.cos(t)])]
    best = lats[0]
    got = [np.array(best.v1), np.array(best.v2)]
    for w in want:
        assert min(min(np.linalg.norm(g - w), np.linalg.norm(g + w)) for g in got) < 1.0
    found = watermark.detect(image)
    assert found.payload == PAYLOAD


# ------------------------------------------------------------ provenance verify
@pytest.fixture
def store(tmp_path: Path) -> SQLiteManifestStore:
    return open_store(tmp_path / "manifests.db")


def _v1_stamped(identity: Identity, image: Image.Image, payload: bytes) -> bytes:
    """A file as a version-1 stamp made it: v1 pixels, credentials naming watermark.1."""
    claim = {
        "label": "c2pa.soft-binding",
        "data": {"alg": watermark.ALGORITHM_V1,
                 "blocks": [{"scope": {}, "value": watermark.soft_binding_value(payload)}]},
    }
    signed = sign_bytes(encode(_embed_v1(image, payload), "JPEG", quality=92), identity, INFO,
                        extra_assertions=[claim])
    assert signed.data is not None
    return signed.data


def test_verify_reports_a_version_1_stamp(identity: Identity, tmp_path: Path,
                                          photos: dict[str, Image.Image]) -> None:
    data_v1 = _v1_stamped(identity, photos["coffee"], PAYLOAD)
    result = verify_bytes(data_v1)
    assert result.watermark is not None and result.watermark.detected
    assert result.watermark.algorithm == watermark.ALGORITHM_V1
    assert result.watermark.payload == PAYLOAD.hex() and result.watermark.matches_manifest is True
    path = tmp_path / "v1.jpg"
    path.write_bytes(data_v1)
    out = CliRunner().invoke(cli, ["verify", "--json", str(path)])
    assert out.exit_code == 0, out.output
    doc = json.loads(out.stdout)
    assert doc["watermark"]["detected"] is True
    assert doc["watermark"]["algorithm"] == watermark.ALGORITHM_V1
    assert doc["watermark"]["matches_manifest"] is True
    assert any(d["algorithm"] == watermark.ALGORITHM_V1 and d["readable"] for d in doc["declared_watermarks"])


def test_verify_reports_a_version_2_stamp(identity: Identity, store: SQLiteManifestStore, tmp_path: Path,
                                          photos: dict[str, Image.Image]) -> None:
    stamped = stamp(encode(photos["coffee"], "JPEG", quality=92), identity, INFO, store=store)
    active = verify_bytes(stamped.data, store=store)
    assert active.active_manifest is not None
    assert active.active_manifest.soft_bindings == (
        {"algorithm": watermark.ALGORITHM, "value": stamped.soft_binding_value},)
    assert active.watermark is not None and active.watermark.algorithm == watermark.ALGORITHM
    assert active.watermark.matches_manifest is True
    path = tmp_path / "v2.jpg"
    path.write_bytes(stamped.data)
    out = CliRunner().invoke(cli, ["verify", "--json", "--store", str(tmp_path / "manifests.db"), str(path)])
    assert out.exit_code == 0, out.output
    doc = json.loads(out.stdout)
    assert doc["watermark"]["detected"] is True and doc["watermark"]["algorithm"] == watermark.ALGORITHM
    # Stripped and mirrored, the v2 mark still recovers the credentials from the store.
    mirrored = Image.open(io.BytesIO(stamped.data)).convert("RGB").transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    recovered = verify_bytes(encode(mirrored, "PNG"), store=store)
    assert recovered.recovered and recovered.watermark is not None
    assert recovered.watermark.payload == stamped.identifier



def test_square_slot_keeps_version1_rows() -> None:
    """Version 1's rows (small rotations, crops) on a photo whose own periodic
    structure fills the general lattice picks: the reserved square candidate finds the
    mark. (Without it, the library shelves rotated by 2 degrees were lost: the mark's
    (64, -2) vector was not among the vector picks, only its turn (2, 64).)"""
    photo = Image.open(PUBLIC_JPEGS / "truepic-20230212-library.jpg").convert("RGB")
    payload = np.random.default_rng(0).bytes(8)
    attacked = watermark.embed(photo, payload).rotate(2.0, Image.Resampling.BILINEAR, expand=False)
    lats = _sync.lattice_candidates(_sync.whiten(_image.work_luma(attacked)))
    assert len(lats) <= _sync.MAX_LATTICE_CANDIDATES
    found = watermark.detect(attacked)
    assert found.detected and found.payload == payload
    assert found.rotation_deg is not None and abs(found.rotation_deg + 2.0) < 0.3
    assert found.p_value == _ecc.false_positive_probability(found.bit_errors_corrected, _core.MAX_ATTEMPTS)
