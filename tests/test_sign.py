"""Signing real media of every format generators produce, and the chain of custody."""

from __future__ import annotations

import errno
import io
import os
import tempfile
import wave
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import provenance._internal.images  # noqa: F401  (registers the HEIF codec with Pillow)
from manifests import Action, EditInfo, GenerationInfo
from provenance.errors import (
    CorruptInputError,
    ManifestDefinitionError,
    OutputError,
    UnsupportedFormatError,
)
from provenance.keys import Identity
from provenance.sign import ExtensionMismatchWarning, sign_bytes, sign_file, sign_image, sign_to_stream
from provenance.trust import TrustPolicy
from provenance.verify import State, verify_bytes, verify_file

from .conftest import MEDIA, encode, photo, reference_state, reference_store

INFO = GenerationInfo(
    generator="tests",
    generator_version="1.0",
    model="diffusion-x",
    model_version="3",
    prompt="an astronaut, oil painting",
)


def _wav() -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        tone = (np.sin(np.arange(16000) * 2 * np.pi * 440 / 16000) * 8000).astype("<i2")
        w.writeframes(tone.tobytes())
    return out.getvalue()


def _pdf() -> bytes:
    return encode(photo("astronaut", (200, 200)), "PDF")


SMALL = photo("astronaut", (320, 320))
FORMATS = {
    "jpeg": (lambda: encode(SMALL, "JPEG", quality=90), "image/jpeg"),
    "png": (lambda: encode(SMALL, "PNG"), "image/png"),
    "webp": (lambda: encode(SMALL, "WEBP", quality=85), "image/webp"),
    "tiff": (lambda: encode(SMALL, "TIFF"), "image/tiff"),
    "gif": (lambda: encode(SMALL.convert("P"), "GIF"), "image/gif"),
    "avif": (lambda: encode(SMALL, "AVIF", quality=60), "image/avif"),
    "heic": (lambda: encode(SMALL, "HEIF", quality=80), "image/heic"),
    "wav": (_wav, "audio/wav"),
    "mp3": (lambda: (MEDIA / "tone.mp3").read_bytes(), "audio/mpeg"),
    "flac": (lambda: (MEDIA / "tone.flac").read_bytes(), "audio/flac"),
    "m4a": (lambda: (MEDIA / "tone.m4a").read_bytes(), "audio/mp4"),
    "mp4": (lambda: (MEDIA / "clip.mp4").read_bytes(), "video/mp4"),
    "mov": (lambda: (MEDIA / "clip.mov").read_bytes(), "video/quicktime"),
    "pdf": (_pdf, "application/pdf"),
}


@pytest.mark.parametrize("kind", sorted(FORMATS))
def test_each_format_signs_and_the_reference_implementation_validates_it(
    kind: str, identity: Identity, trusting_policy: TrustPolicy
) -> None:
    make, mime = FORMATS[kind]
    original = make()
    signed = sign_bytes(original, identity, INFO)
    assert signed.mime == mime
    assert signed.data is not None and signed.data != original
    assert reference_state(signed.data, mime) == "valid"
    result = verify_bytes(signed.data, policy=trusting_policy)
    assert result.state is State.TRUSTED, result.failures
    active = result.active_manifest
    assert active is not None and active.label == signed.manifest_label
    assert active.digital_source_type == "trainedAlgorithmicMedia"
    assert active.model == "diffusion-x"


def test_manifest_says_how_it_was_made_and_hides_the_prompt(identity: Identity) -> None:
    signed = sign_bytes(encode(SMALL, "PNG"), identity, INFO)
    assert signed.data is not None
    store = reference_store(signed.data, "image/png")
    manifest = store["manifests"][store["active_manifest"]]
    assert manifest["claim_generator_info"][0]["name"] == "tests"
    labels = {a["label"] for a in manifest["assertions"]}
    assert {"c2pa.actions.v2", "cawg.training-mining", "io.github.provenance-kit.generation"} <= labels
    created = manifest["assertions"][0]["data"]["actions"][0]
    assert created["action"] == "c2pa.created"
    assert created["digitalSourceType"].endswith("/trainedAlgorithmicMedia")
    assert created["softwareAgent"]["name"] == "diffusion-x"
    assert b"oil painting" not in signed.data
    assert INFO.prompt_sha256 is not None and INFO.prompt_sha256 in str(manifest)


def test_raw_prompt_only_when_asked(identity: Identity) -> None:
    info = GenerationInfo(generator="t", prompt="secret recipe", store_prompt=True)
    signed = sign_bytes(encode(SMALL, "PNG"), identity, info)
    assert signed.data is not None and b"secret recipe" in signed.data


def test_in_memory_image_is_signed_without_temporary_files(
    identity: Identity, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    signed = sign_image(photo("coffee"), identity, INFO, format="JPEG")
    assert signed.mime == "image/jpeg" and signed.data is not None
    assert verify_bytes(signed.data).state is State.VALID
    assert list(tmp_path.iterdir()) == []


def test_thumbnail_is_small_and_can_be_turned_off(identity: Identity) -> None:
    data = encode(photo("astronaut"), "JPEG", quality=90)
    with_thumb = sign_bytes(data, identity, INFO)
    without = sign_bytes(data, identity, INFO, thumbnail=False)
    assert with_thumb.data is not None and without.data is not None
    store = reference_store(with_thumb.data, "image/jpeg")
    assert "thumbnail" in store["manifests"][store["active_manifest"]]
    store = reference_store(without.data, "image/jpeg")
    assert "thumbnail" not in store["manifests"][store["active_manifest"]]
    assert 2_000 < len(with_thumb.data) - len(without.data) < 60_000


def test_sign_file_is_atomic_and_never_touches_the_input(identity: Identity, tmp_path: Path) -> None:
    src = tmp_path / "gen.png"
    src.write_bytes(encode(SMALL, "PNG"))
    before = src.read_bytes()
    out = tmp_path / "signed.png"
    result = sign_file(src, out, identity, INFO)
    assert result.path == out and src.read_bytes() == before
    assert verify_file(out).state is State.VALID
    with pytest.raises(OutputError, match="output is the input"):
        sign_file(src, src, identity, INFO)
    assert src.read_bytes() == before


def test_in_place_signing_must_be_explicit(identity: Identity, tmp_path: Path) -> None:
    src = tmp_path / "gen.jpg"
    src.write_bytes(encode(SMALL, "JPEG"))
    sign_file(src, None, identity, INFO, in_place=True)
    assert verify_file(src).state is State.VALID
    assert [p.name for p in tmp_path.iterdir()] == ["gen.jpg"]


def test_truncated_image_leaves_nothing_behind(identity: Identity, tmp_path: Path) -> None:
    src = tmp_path / "cut.jpg"
    full = encode(photo("astronaut"), "JPEG", quality=90)
    src.write_bytes(full[: len(full) // 2])
    with pytest.raises(CorruptInputError, match="truncated"):
        sign_file(src, tmp_path / "out.jpg", identity, INFO)
    assert [p.name for p in tmp_path.iterdir()] == ["cut.jpg"]


def test_unsupported_format_names_the_supported_ones(identity: Identity) -> None:
    with pytest.raises(UnsupportedFormatError, match=r"supported: .*JPG.*PNG"):
        sign_bytes(b"just some text, not media", identity, INFO)


def test_lying_extension_is_signed_by_content_with_a_warning(identity: Identity, tmp_path: Path) -> None:
    src = tmp_path / "really-a-jpeg.png"
    src.write_bytes(encode(SMALL, "JPEG"))
    with pytest.warns(ExtensionMismatchWarning, match="content is JPG"):
        result = sign_file(src, tmp_path / "out.jpg", identity, INFO)
    assert result.mime == "image/jpeg"


def test_description_is_required(identity: Identity) -> None:
    with pytest.raises(ManifestDefinitionError, match="say how the content was made"):
        sign_bytes(encode(SMALL, "PNG"), identity)


def test_edit_records_the_parent_so_the_chain_survives(
    identity: Identity, trusting_policy: TrustPolicy
) -> None:
    original = sign_bytes(encode(SMALL, "JPEG"), identity, INFO)
    assert original.data is not None
    edited_pixels = Image.open(io.BytesIO(original.data)).crop((0, 0, 200, 200))
    edited = sign_bytes(
        encode(edited_pixels, "JPEG"),
        identity,
        edit=EditInfo((Action("c2pa.cropped"),)),
        parent=original.data,
    )
    assert edited.data is not None
    result = verify_bytes(edited.data, policy=trusting_policy)
    assert result.state is State.TRUSTED
    chain = result.chain
    assert [n.relationship for n in chain] == ["active", "parentOf"]
    assert chain[1].label == original.manifest_label
    assert chain[1].state is State.TRUSTED
    assert [a["action"] for a in chain[0].actions] == ["c2pa.opened", "c2pa.cropped"]
    assert result.summary.startswith("Edited from an original its credentials say was generated by a trained")


def test_ai_edit_of_a_photo_is_composite(identity: Identity) -> None:
    camera = encode(photo("chelsea"), "JPEG")
    info = GenerationInfo(
        generator="inpaint-app", model="fill-1", digital_source_type="compositeWithTrainedAlgorithmicMedia"
    )
    signed = sign_bytes(camera, identity, info, parent=camera)
    assert signed.data is not None
    result = verify_bytes(signed.data)
    assert result.active_manifest is not None
    assert result.active_manifest.digital_source_type == "compositeWithTrainedAlgorithmicMedia"
    assert result.chain[1].state is State.NONE  # the camera file had no credentials


def test_components_are_recorded(identity: Identity) -> None:
    part = sign_bytes(encode(photo("coffee", (128, 128)), "PNG"), identity, INFO)
    assert part.data is not None
    collage = sign_bytes(encode(SMALL, "PNG"), identity, INFO, components=[part.data])
    assert collage.data is not None
    result = verify_bytes(collage.data)
    assert [(n.relationship, n.state) for n in result.chain] == [
        ("active", State.VALID),
        ("componentOf", State.VALID),
    ]
    assert "c2pa.placed" in [a["action"] for a in result.chain[0].actions]


def test_signing_leaves_no_temporary_files_on_failure(identity: Identity, tmp_path: Path) -> None:
    src = tmp_path / "in.png"
    src.write_bytes(encode(SMALL, "PNG"))
    with pytest.raises(OutputError):
        sign_file(src, tmp_path / "missing-folder" / "out.png", identity, INFO)
    assert sorted(os.listdir(tmp_path)) == ["in.png"]


def test_in_place_keeps_permissions_and_symlinks(identity: Identity, tmp_path: Path) -> None:
    real = tmp_path / "real.png"
    real.write_bytes(encode(SMALL, "PNG"))
    real.chmod(0o640)
    link = tmp_path / "link.png"
    link.symlink_to(real)
    sign_file(link, None, identity, INFO, in_place=True)
    assert link.is_symlink() and (real.stat().st_mode & 0o777) == 0o640
    assert verify_file(real).state is State.VALID


@pytest.mark.parametrize("kind", ["mp4", "mov", "m4a", "mp3", "wav", "pdf", "avif"])
def test_truncated_media_is_refused_not_signed(kind: str, identity: Identity) -> None:
    make, _ = FORMATS[kind]
    whole = make()
    with pytest.raises(CorruptInputError, match=r"truncated|cannot parse"):
        sign_bytes(whole[: len(whole) * 2 // 3], identity, INFO)


class _FullDisk(io.RawIOBase):
    """A seekable output that fails as a full disk does after ``room`` bytes."""

    def __init__(self, room: int) -> None:
        self._buffer = io.BytesIO()
        self._room = room

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def readable(self) -> bool:
        return True

    def write(self, data: object) -> int:
        chunk = bytes(data)  # type: ignore[call-overload]
        if self._buffer.tell() + len(chunk) > self._room:
            raise OSError(errno.ENOSPC, "No space left on device")
        return self._buffer.write(chunk)

    def read(self, size: int = -1) -> bytes:
        return self._buffer.read(size)

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._buffer.seek(offset, whence)

    def tell(self) -> int:
        return self._buffer.tell()


def test_a_full_disk_while_signing_into_a_stream_is_an_output_error(identity: Identity) -> None:
    data = encode(photo(size=(640, 480)), "JPEG")
    with pytest.raises(OutputError) as caught:
        sign_to_stream(data, _FullDisk(len(data) // 2), identity, INFO, name="in.jpg")  # type: ignore[arg-type]
    # The C2PA library reports only "JPEG write error", which read as an unparsable input.
    assert "no space left on device" in str(caught.value)


def test_a_fragmented_mp4_signs_into_a_valid_file(identity: Identity, tmp_path: Path) -> None:
    import av

    source = tmp_path / "recording.mp4"
    # As a browser's MediaRecorder or a streaming packager writes it: moof fragments.
    with av.open(str(source), "w", options={"movflags": "frag_keyframe+empty_moov+default_base_moof"}) as out:
        stream = out.add_stream("mpeg4", rate=25)
        stream.width, stream.height, stream.pix_fmt, stream.gop_size = 64, 48, "yuv420p", 10
        frames = np.random.default_rng(1).integers(0, 255, (50, 48, 64, 3), dtype=np.uint8)
        for pixels in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    assert b"moof" in source.read_bytes()
    out_path = tmp_path / "signed.mp4"
    sign_file(source, out_path, identity, INFO)
    # With 1 MB Merkle leaves c2pa-rs signed it into assertion.bmffHash.mismatch.
    result = verify_file(out_path)
    assert result.state in (State.VALID, State.TRUSTED), result.failures
