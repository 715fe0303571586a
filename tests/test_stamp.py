"""Durable Content Credentials: stamp, strip, recover; transplant and unknown identifiers."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

import watermark
from cli.main import cli
from manifests import GenerationInfo
from provenance.errors import UnsupportedFormatError, WatermarkFailure
from provenance.keys import Identity
from provenance.sign import sign_bytes
from provenance.stamp import stamp
from provenance.store import SQLiteManifestStore, open_store
from provenance.trust import TrustPolicy
from provenance.verify import State, verify_bytes
from provenance.watermarks import watermark_file

from .conftest import PUBLIC_JPEGS, encode, photo

INFO = GenerationInfo(generator="pipeline", model="diffusion-x", prompt="a cup of coffee")


@pytest.fixture
def store(tmp_path: Path) -> SQLiteManifestStore:
    return open_store(tmp_path / "manifests.db")


def _strip_and_degrade(data: bytes) -> bytes:
    """What a re-upload does: decode, resize to 0.75, re-encode as JPEG 80, no metadata."""
    image = Image.open(io.BytesIO(data)).convert("RGB")
    w, h = image.size
    return encode(image.resize((int(w * 0.75), int(h * 0.75)), Image.Resampling.BICUBIC), "JPEG", quality=80)


def test_stamp_then_verify_is_intact_and_the_watermark_matches(
    identity: Identity, store: SQLiteManifestStore, trusting_policy: TrustPolicy
) -> None:
    result = stamp(encode(photo("coffee"), "JPEG", quality=90), identity, INFO, store=store)
    assert result.mime == "image/jpeg" and len(result.payload) == 8
    verdict = verify_bytes(result.data, policy=trusting_policy, store=store)
    assert verdict.state is State.TRUSTED and not verdict.recovered
    assert verdict.watermark is not None
    assert verdict.watermark.detected and verdict.watermark.payload == result.identifier
    assert verdict.watermark.matches_manifest is True and verdict.watermark.known_to_store is True
    active = verdict.active_manifest
    assert active is not None
    assert [a["action"] for a in active.actions] == ["c2pa.created", "c2pa.watermarked.bound"]
    assert active.soft_bindings == ({"algorithm": watermark.ALGORITHM, "value": result.soft_binding_value},)
    entry = store.get_by_payload(result.payload)
    assert entry is not None and entry.manifest_label == result.manifest_label
    assert store.get_by_label(result.manifest_label) == entry


def test_stripped_reencoded_resized_image_recovers_its_credentials(
    identity: Identity, store: SQLiteManifestStore
) -> None:
    # A real 1024x683 photograph, as a generator would emit at about that size.
    camera = (PUBLIC_JPEGS / "adobe-20220124-A.jpg").read_bytes()
    stamped = stamp(camera, identity, INFO, store=store)
    degraded = _strip_and_degrade(stamped.data)
    assert verify_bytes(degraded).state is State.NONE  # no store: nothing to recover
    result = verify_bytes(degraded, store=store)
    assert result.recovered
    assert result.state is State.VALID
    assert result.active_manifest is not None
    assert result.active_manifest.label == stamped.manifest_label
    assert result.active_manifest.model == "diffusion-x"
    assert result.watermark is not None and result.watermark.payload == stamped.identifier
    assert result.fingerprint_similarity is not None and result.fingerprint_similarity > 0.85
    assert result.summary.startswith("Content Credentials recovered from the invisible watermark")
    assert "assertion.dataHash.mismatch" not in result.to_dict()["failures"]


def test_transplanted_manifest_is_flagged(identity: Identity, store: SQLiteManifestStore) -> None:
    first = stamp(encode(photo("astronaut"), "PNG"), identity, INFO, store=store)
    second = stamp(encode(photo("coffee"), "PNG"), identity, INFO, store=store)
    # Credentials claiming the second image's watermark, attached to the first image's pixels.
    claim = {
        "label": "c2pa.soft-binding",
        "data": {"alg": watermark.ALGORITHM, "blocks": [{"scope": {}, "value": second.soft_binding_value}]},
    }
    pixels = encode(Image.open(io.BytesIO(first.data)), "PNG")  # metadata stripped, pixels kept
    forged = sign_bytes(pixels, identity, INFO, extra_assertions=[claim])
    assert forged.data is not None
    result = verify_bytes(forged.data, store=store)
    assert result.state is State.INVALID
    assert "provenance.softBinding.mismatch" in result.to_dict()["failures"]
    assert result.watermark is not None and result.watermark.matches_manifest is False
    assert "different image" in result.summary


def test_declared_watermark_missing_from_pixels_keeps_the_verdict_with_a_warning(
    identity: Identity, store: SQLiteManifestStore
) -> None:
    # The hard binding holds, so these are the signed pixels; the mark is simply
    # unreadable (another key): the C2PA verdict stands, the report says why.
    claim = {
        "label": "c2pa.soft-binding",
        "data": {
            "alg": watermark.ALGORITHM,
            "blocks": [{"scope": {}, "value": watermark.soft_binding_value(bytes(8))}],
        },
    }
    signed = sign_bytes(encode(photo("astronaut"), "PNG"), identity, INFO, extra_assertions=[claim])
    assert signed.data is not None
    result = verify_bytes(signed.data, store=store)
    assert result.state is State.VALID
    assert result.watermark is not None and result.watermark.matches_manifest is False
    assert any("was not found" in w for w in result.warnings)


def test_a_watermark_copied_onto_another_image_recovers_nothing(
    identity: Identity, store: SQLiteManifestStore, tmp_path: Path
) -> None:
    stamped = stamp(encode(photo("astronaut"), "PNG"), identity, INFO, store=store)
    # Anyone can embed a known identifier with the public key:
    (tmp_path / "other.png").write_bytes(encode(photo("coffee"), "PNG"))
    watermark_file(tmp_path / "other.png", tmp_path / "forged.png", stamped.payload)
    result = verify_bytes((tmp_path / "forged.png").read_bytes(), store=store)
    assert result.state is State.INVALID
    assert "provenance.content.mismatch" in result.to_dict()["failures"]
    assert result.fingerprint_similarity is not None and result.fingerprint_similarity < 0.8
    assert "copied onto another image" in result.summary


def test_recovery_survives_a_crop(identity: Identity, store: SQLiteManifestStore) -> None:
    camera = (PUBLIC_JPEGS / "adobe-20220124-A.jpg").read_bytes()
    stamped = stamp(camera, identity, INFO, store=store)
    image = Image.open(io.BytesIO(stamped.data)).convert("RGB")
    w, h = image.size
    cropped = encode(
        image.crop((w // 10, h // 10, w // 10 + int(w * 0.894), h // 10 + int(h * 0.894))), "PNG"
    )
    result = verify_bytes(cropped, store=store)
    assert result.recovered and result.state is State.VALID
    assert result.fingerprint_similarity is not None and result.fingerprint_similarity >= 0.85


def test_a_mark_that_cannot_be_read_back_is_never_declared(
    identity: Identity, store: SQLiteManifestStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Whatever the reason (an image too noisy or flat for the encoder), credentials
    # must not declare a watermark the file does not carry.
    monkeypatch.setattr(
        watermark, "detect", lambda image, key=watermark.DEFAULT_KEY: watermark.Detection(False, None, 1.0, 0)
    )
    with pytest.raises(WatermarkFailure, match="not stamped"):
        stamp(photo("coffee"), identity, INFO, store=store, format="JPEG")
    assert store.count() == 0


def test_an_identifier_that_does_not_read_back_is_replaced_by_another(
    identity: Identity, store: SQLiteManifestStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    # About 1 identifier in 130 does not survive the encoder on a small photo; the
    # stamp then draws another instead of failing the file.
    real_detect = watermark.detect
    calls: list[bytes | None] = []

    def first_read_fails(image: Image.Image, key: bytes = watermark.DEFAULT_KEY) -> watermark.Detection:
        found = real_detect(image, key)
        calls.append(found.payload)
        return watermark.Detection(False, None, 1.0, 0) if len(calls) == 1 else found

    monkeypatch.setattr(watermark, "detect", first_read_fails)
    stamped = stamp(photo("coffee"), identity, INFO, store=store, format="JPEG")
    assert calls[0] is not None and calls[0] != stamped.identifier  # the first identifier was dropped
    assert store.count() == 1 and store.get_by_payload(calls[0]) is None
    monkeypatch.setattr(watermark, "detect", real_detect)
    result = verify_bytes(stamped.data, store=store)
    assert result.watermark is not None and result.watermark.matches_manifest is True


def test_flat_image_is_stamped_with_a_warning(identity: Identity, store: SQLiteManifestStore) -> None:
    flat = Image.new("RGB", (600, 400), (128, 128, 128))
    with pytest.warns(watermark.WeakWatermarkWarning):
        result = stamp(flat, identity, INFO, store=store)
    assert verify_bytes(result.data, store=store).watermark.matches_manifest  # type: ignore[union-attr]


def test_stamping_a_signed_image_keeps_its_credentials_as_the_parent(
    identity: Identity, store: SQLiteManifestStore
) -> None:
    signed = sign_bytes(encode(photo("coffee"), "PNG"), identity, INFO)
    assert signed.data is not None
    result = stamp(signed.data, identity, INFO, store=store)
    verdict = verify_bytes(result.data, store=store)
    assert [n.relationship for n in verdict.chain] == ["active", "parentOf"]
    assert verdict.chain[1].label == signed.manifest_label
    assert [a["action"] for a in verdict.chain[0].actions] == ["c2pa.opened", "c2pa.watermarked.bound"]


def test_unknown_identifier_is_reported_never_recovered(store: SQLiteManifestStore, tmp_path: Path) -> None:
    src = tmp_path / "in.png"
    src.write_bytes(encode(photo("astronaut"), "PNG"))
    watermark_file(src, tmp_path / "marked.png", bytes.fromhex("0123456789abcdef"))
    result = verify_bytes((tmp_path / "marked.png").read_bytes(), store=store)
    assert result.state is State.NONE and not result.recovered
    assert result.watermark is not None
    assert result.watermark.payload == "0123456789abcdef"
    assert result.watermark.known_to_store is False
    assert "not in the manifest store" in result.summary


def test_jpeg_is_encoded_once_with_its_quality_and_metadata(
    identity: Identity, store: SQLiteManifestStore
) -> None:
    image = photo("coffee")
    exif = Image.Exif()
    exif[0x010F] = "TestCam"  # Make
    icc = b"\x00" * 8  # Pillow stores the profile as given; presence is what we check
    src = encode(image, "JPEG", quality=70, exif=exif.tobytes(), icc_profile=icc)
    result = stamp(src, identity, INFO, store=store)
    original = Image.open(io.BytesIO(src))
    stamped = Image.open(io.BytesIO(result.data))
    assert stamped.quantization == original.quantization  # same quality, no double compression
    assert stamped.getexif()[0x010F] == "TestCam"
    assert stamped.info.get("icc_profile") == icc


def test_in_memory_pipeline_alpha_and_formats(identity: Identity, store: SQLiteManifestStore) -> None:
    rgba = photo("astronaut").convert("RGBA")
    result = stamp(rgba, identity, INFO, store=store)
    assert result.mime == "image/png"
    back = Image.open(io.BytesIO(result.data))
    assert back.mode == "RGBA"
    assert back.getchannel("A").tobytes() == rgba.getchannel("A").tobytes()
    webp = stamp(photo("coffee"), identity, INFO, store=store, format="WEBP")
    assert webp.mime == "image/webp"
    assert verify_bytes(webp.data, store=store).watermark.matches_manifest  # type: ignore[union-attr]
    with pytest.raises(UnsupportedFormatError, match="cannot stamp GIF"):
        stamp(photo("coffee"), identity, INFO, store=store, format="GIF")


def test_too_small_to_watermark(identity: Identity, store: SQLiteManifestStore) -> None:
    with pytest.raises(WatermarkFailure, match="at least"):
        stamp(photo("astronaut", (120, 120)), identity, INFO, store=store)
    assert store.count() == 0


def test_cli_stamp_strip_recover(identity_dir: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "gen.jpg").write_bytes((PUBLIC_JPEGS / "adobe-20220124-A.jpg").read_bytes())
    db = tmp_path / "m.db"
    stamped = runner.invoke(
        cli,
        [
            "stamp",
            str(tmp_path / "in"),
            "-o",
            str(tmp_path / "out"),
            "--identity",
            str(identity_dir),
            "--store",
            str(db),
            "--model",
            "m-2",
            "--jobs",
            "1",
        ],
    )
    assert stamped.exit_code == 0, stamped.stderr
    out = tmp_path / "out" / "gen.jpg"
    (tmp_path / "shared.jpg").write_bytes(_strip_and_degrade(out.read_bytes()))
    text = runner.invoke(cli, ["verify", str(tmp_path / "shared.jpg"), "--store", str(db)])
    assert text.exit_code == 0, text.stderr
    assert "Content Credentials recovered from the invisible watermark" in text.stdout
    doc = json.loads(
        runner.invoke(cli, ["verify", str(tmp_path / "shared.jpg"), "--store", str(db), "--json"]).stdout
    )
    assert doc["recovered"] is True and doc["state"] == "valid"
    assert doc["watermark"]["detected"] is True and doc["watermark"]["algorithm"] == watermark.ALGORITHM
    listed = json.loads(runner.invoke(cli, ["store", "list", "--store", str(db), "--json"]).stdout)
    assert listed["count"] == 1
    ident = listed["entries"][0]["identifier"]
    assert doc["watermark"]["payload"] == ident
    exported = runner.invoke(
        cli, ["store", "export", ident, "-o", str(tmp_path / "m.c2pa"), "--store", str(db)]
    )
    assert exported.exit_code == 0 and (tmp_path / "m.c2pa").stat().st_size > 1000
