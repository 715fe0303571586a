"""Verification agrees with the C2PA reference implementation on the public test files."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import c2pa
import jsonschema
import pytest

from manifests import GenerationInfo
from provenance._internal import c2pa_bridge
from provenance.keys import Identity
from provenance.sign import sign_bytes
from provenance.trust import TrustPolicy
from provenance.verify import State, verify_bytes, verify_file

from .conftest import PUBLIC_JPEGS, PUBLIC_PDF, ROOT, encode, photo, reference_state

PUBLIC_FILES = [*sorted(PUBLIC_JPEGS.glob("*.jp*g")), PUBLIC_PDF]
SCHEMA = json.loads((ROOT / "docs" / "verify-schema.json").read_text())

# What the reference implementation says offline with no trust anchors: the
# deliberately broken adobe E-* files and X* (content changed) are invalid, the
# Nikon credential has expired, and the Truepic files no longer validate.
EXPECTED = {
    "adobe-20220124-A.jpg": State.NONE,
    "adobe-20220124-I.jpg": State.NONE,
    "adobe-20220124-E-clm-CAICAI.jpg": State.INVALID,
    "adobe-20220124-E-dat-CA.jpg": State.INVALID,
    "adobe-20220124-E-sig-CA.jpg": State.INVALID,
    "adobe-20220124-E-uri-CA.jpg": State.INVALID,
    "adobe-20220124-E-uri-CIE-sig-CA.jpg": State.INVALID,
    "adobe-20220124-XCA.jpg": State.INVALID,
    "adobe-20220124-XCI.jpg": State.INVALID,
    "nikon-20221019-building.jpeg": State.INVALID,
    "truepic-20230212-camera.jpg": State.INVALID,
    "truepic-20230212-landscape.jpg": State.INVALID,
    "truepic-20230212-library.jpg": State.INVALID,
}


@pytest.mark.parametrize("path", PUBLIC_FILES, ids=lambda p: p.name)
def test_verdict_matches_the_reference_implementation(path: Path) -> None:
    result = verify_file(path)
    mime = "application/pdf" if path.suffix == ".pdf" else "image/jpeg"
    reference = reference_state(path.read_bytes(), mime)
    assert result.state.value == (reference or "none")
    assert result.state is EXPECTED.get(path.name, State.VALID)
    jsonschema.validate(result.to_dict(), SCHEMA)


@pytest.mark.parametrize(
    ("name", "code", "sentence"),
    [
        ("adobe-20220124-E-dat-CA.jpg", "assertion.dataHash.mismatch", "changed after it was signed"),
        ("adobe-20220124-XCA.jpg", "assertion.dataHash.mismatch", "changed after it was signed"),
        ("adobe-20220124-E-sig-CA.jpg", "claimSignature.mismatch", "signature"),
        ("adobe-20220124-E-uri-CA.jpg", "assertion.hashedURI.mismatch", "altered"),
        ("nikon-20221019-building.jpeg", "signingCredential.expired", "expired"),
    ],
)
def test_failures_are_named_and_explained(name: str, code: str, sentence: str) -> None:
    result = verify_file(PUBLIC_JPEGS / name)
    assert code in result.to_dict()["failures"]
    assert sentence in result.summary


def test_whole_ingredient_tree_is_walked() -> None:
    result = verify_file(PUBLIC_JPEGS / "adobe-20220124-CAIAIIICAICIICAIICICA.jpg")
    chain = result.chain
    manifests = [n for n in chain if n.label]
    store = json.loads(_reference_json(PUBLIC_JPEGS / "adobe-20220124-CAIAIIICAICIICAIICICA.jpg"))
    assert {n.label for n in manifests} == set(store["manifests"])
    assert chain[0].relationship == "active" and chain[0].depth == 0
    assert {n.relationship for n in chain[1:]} <= {"parentOf", "componentOf", "inputTo"}
    for node in chain[1:]:
        assert node.parent in {m.label for m in manifests}


def test_broken_ingredient_is_flagged_while_the_active_manifest_stays_valid() -> None:
    # CIE-sig-CA: a valid manifest whose component had a broken signature when placed.
    result = verify_file(PUBLIC_JPEGS / "adobe-20220124-CIE-sig-CA.jpg")
    assert result.state is State.VALID
    component = result.chain[1]
    assert component.relationship == "componentOf"
    assert component.state is State.INVALID
    assert "claimSignature.mismatch" in {f.code for f in component.failures}


def test_pdf_chain() -> None:
    result = verify_file(PUBLIC_PDF)
    assert result.state is State.VALID
    assert len([n for n in result.chain if n.label]) == 3


def test_trust_anchors_make_it_trusted(identity: Identity, identity_dir: Path) -> None:
    signed = sign_bytes(
        encode(photo("astronaut", (200, 200)), "PNG"), identity, GenerationInfo(generator="t")
    )
    assert signed.data is not None
    assert verify_bytes(signed.data).state is State.VALID
    trusted = verify_bytes(signed.data, policy=TrustPolicy.from_files([identity_dir / "root-ca.pem"]))
    assert trusted.state is State.TRUSTED
    assert trusted.active_manifest is not None and trusted.active_manifest.signer is not None
    assert trusted.active_manifest.signer.development
    assert "development identity" in trusted.summary
    jsonschema.validate(trusted.to_dict(), SCHEMA)


def test_someone_elses_root_does_not_make_it_trusted(identity: Identity, tmp_path: Path) -> None:
    from provenance.keys import create_development_identity

    other = create_development_identity(tmp_path)
    signed = sign_bytes(
        encode(photo("astronaut", (200, 200)), "PNG"), identity, GenerationInfo(generator="t")
    )
    assert signed.data is not None
    policy = TrustPolicy.from_files([other.root])  # type: ignore[list-item]
    assert verify_bytes(signed.data, policy=policy).state is State.VALID


def test_json_has_the_documented_top_level_fields(identity: Identity) -> None:
    signed = sign_bytes(
        encode(photo("astronaut", (200, 200)), "PNG"), identity, GenerationInfo(generator="g", model="m")
    )
    assert signed.data is not None
    doc = verify_bytes(signed.data).to_dict()
    assert {"state", "failures", "active_manifest", "chain"} <= set(doc)
    assert {"signer", "claim_generator", "digital_source_type", "actions"} <= set(doc["active_manifest"])
    assert doc["chain"][0]["relationship"] == "active"


def test_remote_manifest_is_reported_not_fetched(identity: Identity) -> None:
    data = encode(photo("astronaut", (128, 128)), "JPEG")
    url = "https://manifests.invalid/abc.c2pa"
    definition = GenerationInfo(generator="t").manifest_definition()
    signer, _ = c2pa_bridge.make_signer(identity)
    with c2pa.Builder(definition) as builder:
        builder.set_no_embed()
        builder.set_remote_url(url)
        out = io.BytesIO()
        builder.sign(signer, "image/jpeg", io.BytesIO(data), out)
    result = verify_bytes(out.getvalue())
    assert result.state is State.NONE
    assert result.remote_manifest_url == url
    assert "allow network access" in result.summary


def _reference_json(path: Path) -> Any:
    with c2pa.Reader(str(path)) as reader:
        return reader.json()
