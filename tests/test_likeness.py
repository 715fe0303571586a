"""Recovery from real screenshots: the likeness check compares the region of the image
that carries the watermark, so a stamped picture inside a web page, above a caption or
in a border recovers, and an identifier copied onto another picture is still refused."""

from __future__ import annotations

import io
from collections.abc import Callable

import pytest
from PIL import Image

import watermark
from manifests import GenerationInfo
from provenance._internal import likeness
from provenance.keys import Identity
from provenance.stamp import StampResult, stamp
from provenance.store import SQLiteManifestStore, open_store
from provenance.verify import CONTENT_MISMATCH, State, verify_bytes

from .conftest import PUBLIC_JPEGS, encode, photo
from .frames import border, browser_screenshot, caption_strip, jpeg, resized

INFO = GenerationInfo(generator="pipeline", model="diffusion-x", prompt="a cup of coffee")

Frame = Callable[[Image.Image], Image.Image]

# The recovery tests' frames: a browser window around the picture at 67 % page zoom
# (tab strip, address bar, headline, paragraphs, sidebar), a social post's caption
# strip, 40 px borders, and the same re-encoded as JPEG.
FRAMES: dict[str, Frame] = {
    "browser page, 67% zoom": lambda im: browser_screenshot(im),
    "browser page, 67% zoom, JPEG 95": lambda im: jpeg(browser_screenshot(im, seed=1), 95),
    "browser page, 100%, picture cut off, JPEG 85": lambda im: jpeg(
        browser_screenshot(im, zoom=1.0, size=(im.width + 900, 170 + im.height * 2 // 3)), 85
    ),
    "caption strip": caption_strip,
    "caption strip, JPEG 80": lambda im: jpeg(caption_strip(im), 80),
    "white border 40 px": border,
    "black border 40 px, JPEG 80": lambda im: jpeg(border(im, colour="#000000"), 80),
    "border and caption, resized 0.75, JPEG 80": lambda im: jpeg(
        resized(caption_strip(border(im, 24)), 0.75), 80
    ),
}


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> SQLiteManifestStore:
    return open_store(tmp_path_factory.mktemp("likeness") / "manifests.db")


@pytest.fixture(scope="module")
def camera_stamp(identity: Identity, store: SQLiteManifestStore) -> StampResult:
    # A real 1024x683 camera photograph (C2PA public test file), stamped as the PNG a
    # generator would write.
    camera = (PUBLIC_JPEGS / "adobe-20220124-A.jpg").read_bytes()
    return stamp(camera, identity, INFO, store=store, format="PNG")


def _pixels(result: StampResult) -> Image.Image:
    return Image.open(io.BytesIO(result.data)).convert("RGB")


@pytest.mark.parametrize("frame", list(FRAMES))
def test_a_framed_or_screen_captured_picture_recovers_as_valid(
    frame: str, camera_stamp: StampResult, store: SQLiteManifestStore
) -> None:
    shot = FRAMES[frame](_pixels(camera_stamp))
    result = verify_bytes(encode(shot, "PNG"), store=store)
    assert result.watermark is not None and result.watermark.payload == camera_stamp.identifier
    assert result.recovered and result.state is State.VALID, result.summary
    assert CONTENT_MISMATCH not in result.to_dict()["failures"]
    assert result.fingerprint_similarity is not None and result.fingerprint_similarity >= 0.9
    assert result.summary.startswith("Content Credentials recovered from the invisible watermark")
    if frame in ("browser page, 67% zoom", "caption strip", "white border 40 px"):
        # Why the region matters: compared as a whole (the previous check), these
        # frames score far below the threshold ("copied onto another image").
        entry = store.get_by_payload(camera_stamp.payload)
        assert entry is not None and entry.fingerprint_image is not None
        assert likeness.similarity(entry.fingerprint_image, shot) < likeness.SAME_CONTENT


@pytest.mark.parametrize(
    ("name", "frame"),
    [
        ("coffee", "caption strip, JPEG 80"),
        ("coffee", "black border 40 px, JPEG 80"),
        ("chelsea", "browser page, 100%, picture cut off, JPEG 85"),
    ],
)
def test_skimage_photographs_in_frames_recover(
    name: str, frame: str, identity: Identity, store: SQLiteManifestStore
) -> None:
    stamped = stamp(encode(photo(name), "PNG"), identity, INFO, store=store)
    result = verify_bytes(encode(FRAMES[frame](_pixels(stamped)), "PNG"), store=store)
    assert result.recovered and result.state is State.VALID, result.summary


@pytest.mark.parametrize(
    "frame", ["browser page, 100%, picture cut off, JPEG 85", "caption strip, JPEG 80", "white border 40 px"]
)
def test_an_identifier_copied_onto_another_photo_is_refused_in_a_frame_too(
    frame: str, camera_stamp: StampResult, store: SQLiteManifestStore
) -> None:
    # Anyone can embed a known identifier with the public key into a different photo,
    # then post it framed or screen-capture it: the region holds the other photo.
    forged = watermark.embed(photo("coffee"), camera_stamp.payload)
    result = verify_bytes(encode(FRAMES[frame](forged), "PNG"), store=store)
    assert result.watermark is not None and result.watermark.payload == camera_stamp.identifier
    assert result.state is State.INVALID
    assert CONTENT_MISMATCH in result.to_dict()["failures"]
    assert result.fingerprint_similarity is not None and result.fingerprint_similarity < likeness.SAME_CONTENT
    assert "copied onto another image" in result.summary


def test_a_copied_identifier_on_a_photo_of_the_same_kind_is_refused(
    camera_stamp: StampResult, store: SQLiteManifestStore
) -> None:
    # Another real camera photograph from the same test set, carrying the identifier.
    other = Image.open(PUBLIC_JPEGS / "adobe-20220124-I.jpg").convert("RGB")
    forged = jpeg(border(watermark.embed(other, camera_stamp.payload), 40), 85)
    result = verify_bytes(encode(forged, "PNG"), store=store)
    assert result.watermark is not None and result.watermark.payload == camera_stamp.identifier
    assert result.state is State.INVALID and CONTENT_MISMATCH in result.to_dict()["failures"]


# --- where the mark is -----------------------------------------------------------


@pytest.fixture(scope="module")
def marked_coffee() -> Image.Image:
    return watermark.embed(photo("coffee"), bytes.fromhex("0123456789abcdef"))


def _close(box: tuple[int, int, int, int], truth: tuple[int, int, int, int], tolerance: float) -> bool:
    return all(abs(a - b) <= tolerance for a, b in zip(box, truth, strict=True))


def test_the_region_is_the_picture_inside_a_border(marked_coffee: Image.Image) -> None:
    found = watermark.detect(border(marked_coffee, 40), locate=True)
    assert found.detected and found.region is not None
    w, h = marked_coffee.size
    # Errs inwards: never more than a block outside the picture, at most 2 blocks in.
    left, top, right, bottom = found.region.box
    block = found.region.block
    assert 40 - block <= left <= 40 + 2 * block and 40 - block <= top <= 40 + 2 * block
    assert 40 + w - 2 * block <= right <= 40 + w + block
    assert 40 + h - 2 * block <= bottom <= 40 + h + block
    assert found.region.coverage > 0.9
    assert found.region.tile == pytest.approx(64.0, rel=0.02)  # the picture was not resized


def test_the_region_leaves_out_a_caption_strip_and_follows_a_resize(marked_coffee: Image.Image) -> None:
    shot = resized(caption_strip(marked_coffee, 0.25), 0.8)
    found = watermark.detect(jpeg(shot, 85), locate=True)
    assert found.detected and found.region is not None
    picture_bottom = marked_coffee.height * 0.8
    assert found.region.box[3] <= picture_bottom + found.region.block
    assert found.region.tile == pytest.approx(64.0 * 0.8, rel=0.03)


def test_the_region_is_only_computed_on_request(marked_coffee: Image.Image) -> None:
    assert watermark.detect(marked_coffee).region is None
    whole = watermark.detect(marked_coffee, locate=True).region
    assert whole is not None
    w, h = marked_coffee.size
    assert _close(whole.box, (0, 0, w, h), 2 * whole.block)
    assert watermark.detect(photo("coffee"), locate=True).region is None  # no mark, no region


def test_the_region_in_a_browser_window(marked_coffee: Image.Image) -> None:
    shot = browser_screenshot(marked_coffee, zoom=1.0, size=(1500, 436))
    found = watermark.detect(shot, locate=True)
    assert found.region is not None
    # The picture is pasted at (220, 170), full width, cut off by the window's bottom.
    assert _close(found.region.box, (220, 170, 820, 436), 2 * found.region.block)
