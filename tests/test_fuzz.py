"""Fuzz targets for every parser entry point: mutated media must give a result or a
``ProvenanceError`` (a one-line message and an exit code), never a crash.

``make test`` runs a few dozen mutations per target; ``make fuzz`` runs thousands
(``PROVENANCE_FUZZ=fuzz``, ``PROVENANCE_FUZZ_EXAMPLES=N`` to choose how many).
Inputs that once crashed are kept in ``tests/fixtures/fuzz/`` and replayed here.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from manifests import GenerationInfo
from provenance._internal.formats import check_complete, sniff
from provenance._internal.images import check_all_frames, load_image, thumbnail_jpeg
from provenance.errors import ProvenanceError
from provenance.keys import Identity
from provenance.sign import sign_bytes
from provenance.verify import verify_bytes
from tests.conftest import MEDIA, PUBLIC_JPEGS, encode, photo

FUZZ = Path(__file__).resolve().parent / "fixtures" / "fuzz"
INFO = GenerationInfo(generator="fuzz", model="m")

settings.register_profile(
    "ci", max_examples=50, deadline=None, database=None, suppress_health_check=list(HealthCheck)
)
settings.register_profile(
    "fuzz",
    max_examples=int(os.environ.get("PROVENANCE_FUZZ_EXAMPLES", "2000")),
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
settings.load_profile(os.environ.get("PROVENANCE_FUZZ", "ci"))


def _animated_gif() -> bytes:
    frames = [photo("astronaut", (48, 48)).rotate(30 * i).convert("P") for i in range(3)]
    out = io.BytesIO()
    frames[0].save(out, "GIF", save_all=True, append_images=frames[1:], duration=50)
    return out.getvalue()


def _seeds() -> list[bytes]:
    small = photo("astronaut", (64, 64))
    return [
        encode(small, "JPEG", quality=80),
        encode(small, "PNG"),
        encode(small, "WEBP", quality=80),
        encode(small, "TIFF"),
        encode(small, "AVIF", quality=50),
        _animated_gif(),
        (MEDIA / "clip.mp4").read_bytes(),
        (MEDIA / "tone.mp3").read_bytes(),
        (PUBLIC_JPEGS / "adobe-20220124-CA.jpg").read_bytes(),  # carries a manifest store
        b'<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" width="4" height="4"/>',
    ]


SEEDS = _seeds()

_mutation = st.one_of(
    st.tuples(st.just("flip"), st.floats(0, 1, exclude_max=True), st.integers(1, 255)),
    st.tuples(st.just("cut"), st.floats(0, 1, exclude_max=True), st.just(0)),
    st.tuples(st.just("zero"), st.floats(0, 1, exclude_max=True), st.integers(1, 64)),
    st.tuples(st.just("insert"), st.floats(0, 1, exclude_max=True), st.integers(0, 255)),
)


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A seed file with a few byte flips, zeroed runs, insertions or a cut."""
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for kind, where, value in draw(st.lists(_mutation, min_size=1, max_size=4)):
        at = int(where * len(data))
        if kind == "flip":
            data[at] ^= value
        elif kind == "cut":
            del data[max(at, 1) :]
        elif kind == "zero":
            data[at : at + value] = bytes(min(value, len(data) - at))
        else:
            data[at:at] = bytes([value]) * 16
        if not data:
            data = bytearray(b"\x00")
    return bytes(data)


def _must_not_crash(target: Callable[[bytes], Any], data: bytes) -> None:
    try:
        target(data)
    except ProvenanceError as exc:
        assert str(exc) and "\n" not in str(exc)  # one line for the user


def _parse(data: bytes) -> None:
    fmt = sniff(data)
    if fmt is not None:
        check_complete(data, fmt, "<fuzz>")


def _image(data: bytes) -> None:
    load_image(data, "<fuzz>")
    thumbnail_jpeg(data, "<fuzz>", 64)
    check_all_frames(data, "<fuzz>")


@given(mutated())
def test_fuzz_verify_bytes(data: bytes) -> None:
    _must_not_crash(verify_bytes, data)


@given(mutated())
def test_fuzz_image_loading(data: bytes) -> None:
    _must_not_crash(_image, data)


@given(mutated())
def test_fuzz_format_checks(data: bytes) -> None:
    _must_not_crash(_parse, data)


@given(data=mutated())
def test_fuzz_sign_bytes(identity: Identity, data: bytes) -> None:
    _must_not_crash(lambda d: sign_bytes(d, identity, INFO, thumbnail=64), data)


@pytest.mark.parametrize(
    "path", sorted(p for p in FUZZ.glob("*") if p.name != "README.md"), ids=lambda p: p.name
)
def test_fuzz_regressions(path: Path, identity: Identity) -> None:
    data = path.read_bytes()
    for target in (verify_bytes, _image, _parse, lambda d: sign_bytes(d, identity, INFO)):
        _must_not_crash(target, data)
