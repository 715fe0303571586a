"""The plain-language verify answer: AI? altered? who signed it, and do you trust them?

Built on files signed here with this library (a ChatGPT-like chain whose active
certificate has expired, stamped files, other vendors' watermarks) and on the
C2PA public test files in tests/fixtures/c2pa.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import socket
import sys
import time
from pathlib import Path
from typing import Any

import c2pa
import jsonschema
import pytest
from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier

import watermark
from cli.main import cli
from manifests import Action, EditInfo, GenerationInfo
from provenance._internal import c2pa_bridge, likeness
from provenance.keys import Identity
from provenance.sign import sign_bytes
from provenance.stamp import WATERMARK_ACTION, stamp, watermark_action
from provenance.store import open_store
from provenance.trust import TrustPolicy
from provenance.verify import State, explain, verify_bytes, verify_file
from provenance.verify._explain import false_alarm_phrase, soft_binding_name, source_phrase

from .conftest import PUBLIC_JPEGS, ROOT, encode, photo

SCHEMA = json.loads((ROOT / "docs" / "verify-schema.json").read_text())
CHATGPT = GenerationInfo(generator="ChatGPT", model="GPT-4o", prompt="a lighthouse at dawn")


def _chain(
    common_name: str,
    organization: str,
    *,
    lifetime: dt.timedelta = dt.timedelta(days=365),
    ca_organization: str | None = None,
) -> tuple[ec.EllipticCurvePrivateKey, str, dt.datetime]:
    """A C2PA signing certificate from a throw-away root, valid from yesterday to ``lifetime`` ahead."""
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    root_key = ec.generate_private_key(ec.SECP256R1())
    root_name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, f"{ca_organization or organization} test root"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, ca_organization or organization),
        ]
    )
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    start, end = now - dt.timedelta(days=1), now + lifetime
    leaf = (
        x509.CertificateBuilder()
        .subject_name(
            x509.Name(
                [
                    x509.NameAttribute(NameOID.COMMON_NAME, common_name),
                    x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
                ]
            )
        )
        .issuer_name(root_name)
        .public_key(leaf_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True
        )
        .add_extension(
            x509.ExtendedKeyUsage(
                [ObjectIdentifier("1.3.6.1.5.5.7.3.36"), ExtendedKeyUsageOID.EMAIL_PROTECTION]
            ),
            critical=False,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(leaf_key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(root_key.public_key()), critical=False
        )
        .sign(root_key, hashes.SHA256())
    )
    return leaf_key, leaf.public_bytes(serialization.Encoding.PEM).decode(), end


def _identity(key: ec.EllipticCurvePrivateKey, chain: str) -> Identity:
    def sign(data: bytes) -> bytes:
        return key.sign(data, ec.ECDSA(hashes.SHA256()))

    return Identity.from_callback(sign, chain, "es256")


@pytest.fixture(scope="module")
def chatgpt_like() -> bytes:
    """A ChatGPT-like image: the parent manifest records GPT-4o generation, and the active
    manifest's certificate has expired since it signed, with no trusted timestamp.

    c2pa-python refuses to sign with an already expired certificate ("not valid at
    time of signing"), which is also how real files end up this way: signed while the
    certificate was valid, checked after it ran out. So the active manifest is signed
    with a certificate that expires two seconds later, and the test waits that out.
    """
    parent_key, parent_chain, _ = _chain("ChatGPT", "OpenAI")
    generated = sign_bytes(
        encode(photo("astronaut", (256, 256)), "PNG"), _identity(parent_key, parent_chain), CHATGPT
    )
    assert generated.data is not None
    key, chain, end = _chain("Publisher conversion service", "OpenAI", lifetime=dt.timedelta(seconds=2))
    converted = sign_bytes(
        encode(photo("astronaut", (256, 256)), "JPEG", quality=90),
        _identity(key, chain),
        edit=EditInfo((Action("c2pa.converted"),), generator="ChatGPT"),
        parent=generated.data,
    )
    assert converted.data is not None
    time.sleep(max(0.0, (end - dt.datetime.now(dt.timezone.utc)).total_seconds()) + 1.1)
    return converted.data


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def _doc(result: Any) -> dict[str, Any]:
    doc: dict[str, Any] = result.to_dict()
    jsonschema.validate(doc, SCHEMA)
    return doc


# --- AI facts rolled up from the whole chain --------------------------------------


def test_ai_generation_in_the_parent_survives_an_expired_active_certificate(chatgpt_like: bytes) -> None:
    result = verify_bytes(chatgpt_like)
    doc = _doc(result)
    assert doc["state"] == "invalid"
    assert (doc["ai_generated"], doc["generator"], doc["model"]) == (True, "ChatGPT", "GPT-4o")
    assert doc["failures"] == ["signingCredential.expired"]
    assert "claim it was generated by a trained AI model" in result.summary
    assert "GPT-4o" in result.summary and "cannot be relied on" in result.summary
    assert "expired" in result.summary
    answer = explain(result)
    assert answer.ai.startswith("Yes, its credentials claim it was generated by a trained AI model")
    assert "GPT-4o" in answer.ai and "earlier step" in answer.ai and "cannot be relied on" in answer.ai
    assert answer.altered.startswith("Cannot be relied on") and "expired" in answer.altered


def test_ai_answer_comes_first_on_the_command_line(
    runner: CliRunner, chatgpt_like: bytes, tmp_path: Path
) -> None:
    path = tmp_path / "chatgpt.jpg"
    path.write_bytes(chatgpt_like)
    result = runner.invoke(cli, ["verify", str(path)])
    assert result.exit_code == 1 and result.stderr == ""
    lines = result.stdout.splitlines()
    assert lines[0] == f"{path}: INVALID (the credentials cannot be relied on)"
    assert lines[1].split()[:3] == ["Made", "with", "AI?"] and "GPT-4o" in lines[1] and "ChatGPT" in lines[1]
    assert lines[2].split()[0] == "Altered?" and "expired" in lines[2]
    assert lines[3].split()[:2] == ["Signed", "by:"] and "Trusted: unknown" in lines[3]
    assert "made from" in result.stdout


def test_own_generated_file_and_camera_origin(identity: Identity) -> None:
    signed = sign_bytes(encode(photo("astronaut", (200, 200)), "PNG"), identity, CHATGPT)
    assert signed.data is not None
    doc = _doc(verify_bytes(signed.data))
    assert (doc["ai_generated"], doc["generator"], doc["model"]) == (True, "ChatGPT", "GPT-4o")
    camera = GenerationInfo(generator="camera-app", digital_source_type="digitalCapture")
    shot = sign_bytes(encode(photo("chelsea"), "JPEG"), identity, camera)
    assert shot.data is not None
    result = verify_bytes(shot.data)
    assert result.to_dict()["ai_generated"] is False
    assert explain(result).ai.startswith("No, its credentials say it was captured by a camera")


def test_an_ai_generated_component_is_not_the_whole_picture(identity: Identity) -> None:
    # A camera photo that contains an AI-generated inset was not "generated by a
    # trained AI model" as a whole: it contains an element that was.
    inset = sign_bytes(encode(photo("astronaut", (96, 96)), "PNG"), identity, CHATGPT)
    assert inset.data is not None
    camera = GenerationInfo(generator="camera-app", digital_source_type="digitalCapture")
    shot = sign_bytes(encode(photo("chelsea"), "JPEG"), identity, camera, components=[inset.data])
    assert shot.data is not None
    result = verify_bytes(shot.data)
    doc = _doc(result)
    assert (doc["ai_generated"], doc["model"]) == (True, "GPT-4o")
    answer = explain(result).ai
    assert answer.startswith("Yes, in part: its credentials say it contains an element that was generated by")
    assert "GPT-4o" in answer
    assert "Edited from an original" not in result.summary
    assert result.summary.startswith("Its credentials say it contains an element that was generated by")


def test_ai_is_unknown_without_a_source_type() -> None:
    doc = _doc(verify_file(PUBLIC_JPEGS / "nikon-20221019-building.jpeg"))
    assert (doc["ai_generated"], doc["generator"], doc["model"]) == (None, None, None)
    assert explain(verify_file(PUBLIC_JPEGS / "nikon-20221019-building.jpeg")).ai.startswith("Not stated")


# --- an unknown signer is information, once ----------------------------------------


@pytest.mark.parametrize(
    "name",
    ["adobe-20220124-CA.jpg", "adobe-20220124-CAIAIIICAICIICAIICICA.jpg", "adobe-20220124-CIE-sig-CA.jpg"],
)
def test_unknown_signer_is_not_a_failure_and_is_reported_once(name: str) -> None:
    result = verify_file(PUBLIC_JPEGS / name)
    doc = _doc(result)
    assert doc["state"] == "valid"
    assert "signingCredential.untrusted" not in doc["failures"]
    assert all(n["failures"] == [] or n["state"] == "invalid" for n in doc["chain"])
    assert all("signingCredential.untrusted" not in [f["code"] for f in n["failures"]] for n in doc["chain"])
    assert [i["code"] for i in doc["informational"]].count("signingCredential.untrusted") == 1
    assert doc["signer_trusted"] is False
    assert "Trusted: unknown" in explain(result).signer


def test_trusted_signer_is_said_plainly(identity: Identity, trusting_policy: TrustPolicy) -> None:
    signed = sign_bytes(encode(photo("astronaut", (200, 200)), "PNG"), identity, CHATGPT)
    assert signed.data is not None
    result = verify_bytes(signed.data, policy=trusting_policy)
    doc = _doc(result)
    assert doc["signer_trusted"] is True and "signingCredential.untrusted" not in str(doc["informational"])
    assert "Trusted: yes" in explain(result).signer


# --- time: the signer's claim vs a trusted timestamp ------------------------------


def test_signer_organisation_is_not_called_the_issuer() -> None:
    # c2pa-rs reports the organisation of the signing certificate's own subject
    # under "issuer"; naming it as the CA that issued the certificate is wrong.
    key, chain, _ = _chain("Desk signer", "Example News", ca_organization="Example CA Inc")
    signed = sign_bytes(encode(photo("astronaut", (128, 128)), "PNG"), _identity(key, chain), CHATGPT)
    assert signed.data is not None
    result = verify_bytes(signed.data)
    assert result.active_manifest is not None and result.active_manifest.signer is not None
    assert result.active_manifest.signer.issuer == "Example News"
    answer = explain(result)
    assert answer.signer.startswith("Desk signer (organisation: Example News).")
    assert "issued by Example News" not in answer.signer + result.summary
    assert "Desk signer (organisation: Example News)" in result.summary


def test_trusted_timestamp_is_named_as_such() -> None:
    answer = explain(verify_file(PUBLIC_JPEGS / "adobe-20220124-CA.jpg"))
    stamped = [d for d in answer.details if d.startswith("Trusted timestamp:")]
    assert stamped == [
        "Trusted timestamp: signed no later than 2023-01-24 14:48:56 UTC, proven by an independent "
        "RFC 3161 timestamp from DigiCert Timestamp 2022 - 2."
    ]
    assert not any("No trusted timestamp" in d for d in answer.details)


def test_no_timestamp_never_shows_a_signing_time(identity: Identity) -> None:
    signed = sign_bytes(encode(photo("astronaut", (200, 200)), "PNG"), identity, CHATGPT)
    assert signed.data is not None
    result = verify_bytes(signed.data)
    details = explain(result).details
    assert "No trusted timestamp: nothing independent shows when it was signed." in details
    assert not any("Trusted timestamp:" in d or "signed at" in d.lower() for d in details)
    signer = result.to_dict()["active_manifest"]["signer"]
    assert signer["signed_at"] is None and signer["timestamp_trusted"] is None


# --- no jargon without -v ----------------------------------------------------------


def test_text_has_no_jargon_unless_verbose(runner: CliRunner, identity: Identity, tmp_path: Path) -> None:
    signed = sign_bytes(encode(photo("astronaut", (200, 200)), "PNG"), identity, CHATGPT)
    assert signed.data is not None
    path = tmp_path / "gen.png"
    path.write_bytes(signed.data)
    files = [
        str(path),
        str(PUBLIC_JPEGS / "adobe-20220124-CAICAI.jpg"),
        str(PUBLIC_JPEGS / "nikon-20221019-building.jpeg"),
    ]
    plain = runner.invoke(cli, ["verify", *files])
    for jargon in (
        "trainedAlgorithmicMedia",
        "parentOf",
        "componentOf",
        "p-value",
        "signingCredential",
        "c2pa.",
    ):
        assert jargon not in plain.stdout
    assert "generated by a trained AI model" in plain.stdout
    assert "made from: A.jpg" in plain.stdout and "contains: CAI.jpg" in plain.stdout
    verbose = runner.invoke(cli, ["-v", "verify", *files])
    assert "trainedAlgorithmicMedia" in verbose.stdout and "signingCredential.expired" in verbose.stdout
    assert plain.exit_code == verbose.exit_code == 1


def test_false_alarm_wording_scales_with_the_value() -> None:
    assert false_alarm_phrase(2.9e-42) == "chance of a false alarm below 1 in a trillion"
    assert false_alarm_phrase(3e-10) == "chance of a false alarm below 1 in a billion"
    assert false_alarm_phrase(5e-8) == "chance of a false alarm below 1 in a million"
    assert false_alarm_phrase(2e-4) == "chance of a false alarm below 1 in a thousand"
    assert false_alarm_phrase(0.01) == "chance of a false alarm about 1 in 100"
    assert false_alarm_phrase(0.9) == "too weak to be sure"


def test_every_iptc_source_type_has_words() -> None:
    from manifests import DigitalSourceType

    for term in DigitalSourceType:
        assert not source_phrase(term.uri).startswith("of the digital source type"), term
    assert (
        source_phrase("http://example.com/madeUp") == "of the digital source type 'http://example.com/madeUp'"
    )


@pytest.fixture(scope="module")
def stamped(identity: Identity, tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, Path]:
    """One stamped JPEG and the store that records it, shared by the tests below."""
    db = tmp_path_factory.mktemp("stamped") / "m.db"
    with open_store(db) as store:
        result = stamp(encode(photo("coffee"), "JPEG", quality=90), identity, CHATGPT, store=store)
    return result.data, db


def test_watermark_line_says_the_false_alarm_chance(stamped: tuple[bytes, Path]) -> None:
    data, db = stamped
    with open_store(db) as store:
        result = verify_bytes(data, store=store)
    line = next(d for d in explain(result).details if d.startswith("Invisible watermark"))
    assert "chance of a false alarm below 1 in a" in line and "it matches the credentials" in line
    assert "p-value" not in line


def test_recovered_likeness_and_its_threshold_are_said_in_the_same_unit(stamped: tuple[bytes, Path]) -> None:
    from PIL import Image

    data, db = stamped
    shared = io.BytesIO()
    Image.open(io.BytesIO(data)).save(shared, "JPEG", quality=85)  # re-encoding drops the credentials
    with open_store(db) as store:
        result = verify_bytes(shared.getvalue(), store=store)
    assert result.recovered and result.fingerprint_similarity is not None
    line = next(d for d in explain(result).details if d.startswith("Likeness"))
    # "100% (0.8 or more is the same picture)" mixed a percentage with a fraction.
    assert line == (
        f"Likeness to the picture they were issued for: {result.fingerprint_similarity:.0%} "
        f"({likeness.SAME_CONTENT:.0%} or more is the same picture)."
    )


# --- no credentials never reads as authentic -------------------------------------


def test_no_credentials_says_what_it_does_not_mean(runner: CliRunner) -> None:
    result = runner.invoke(cli, ["verify", str(PUBLIC_JPEGS / "adobe-20220124-A.jpg")])
    assert result.exit_code == 3 and result.stderr == ""
    assert "NO CREDENTIALS" in result.stdout
    assert "does not make it authentic or fake" in result.stdout
    assert "authentic" not in result.stdout.replace("authentic or fake", "")


# --- recorded edits are summarised ----------------------------------------------------


def test_recorded_edits_are_summarised_in_plain_words() -> None:
    result = verify_file(PUBLIC_JPEGS / "adobe-20220124-CAICAI.jpg")
    assert "do not say how it was made" not in result.summary
    assert result.summary.startswith("Its credentials record these changes: colours adjusted")
    assert "resized" in result.summary


def test_crop_and_resize_in_an_editor(identity: Identity) -> None:
    camera = GenerationInfo(generator="camera-app", digital_source_type="digitalCapture")
    shot = sign_bytes(encode(photo("chelsea"), "JPEG"), identity, camera)
    assert shot.data is not None
    edit = EditInfo((Action("c2pa.cropped"), Action("c2pa.resized")), generator="Adobe Photoshop")
    edited = sign_bytes(encode(photo("chelsea", (200, 150)), "JPEG"), identity, edit=edit, parent=shot.data)
    assert edited.data is not None
    result = verify_bytes(edited.data)
    answer = explain(result)
    assert "Changes recorded: cropped, resized (with Adobe Photoshop)." in answer.details
    assert "captured by a camera" in result.summary
    lone = sign_bytes(
        encode(photo("chelsea", (200, 150)), "JPEG"),
        identity,
        edit=edit,
        parent=encode(photo("chelsea"), "JPEG"),
    )
    assert lone.data is not None
    assert verify_bytes(lone.data).summary.startswith(
        "Its credentials record these changes: cropped, resized (with Adobe Photoshop)."
    )


# --- other vendors' soft bindings ---------------------------------------------------


@pytest.mark.parametrize(
    ("alg", "words", "name"),
    [
        ("com.adobe.trustmark.Q", "declare a TrustMark watermark, which this tool cannot read", "TrustMark"),
        ("com.digimarc.validate.1", "declare a Digimarc watermark, which this tool cannot read", "Digimarc"),
        ("com.google.synthid.image", "declare a SynthID watermark, which this tool cannot read", "SynthID"),
        ("io.iscc.v0", "declare an ISCC fingerprint, which this tool cannot read", "ISCC"),
        ("org.example.mark.1", "org.example.mark.1", "org.example.mark.1"),
    ],
)
def test_other_soft_bindings_are_named_not_ignored(
    identity: Identity, alg: str, words: str, name: str
) -> None:
    binding = {
        "label": "c2pa.soft-binding",
        "data": {"alg": alg, "blocks": [{"scope": {}, "value": "AAECAw=="}]},
    }
    signed = sign_bytes(
        encode(photo("astronaut", (200, 200)), "PNG"), identity, CHATGPT, extra_assertions=[binding]
    )
    assert signed.data is not None
    result = verify_bytes(signed.data)
    doc = _doc(result)
    assert doc["declared_watermarks"][0]["algorithm"] == alg and doc["declared_watermarks"][0]["name"] == name
    assert doc["declared_watermarks"][0]["readable"] is False
    text = "\n".join(explain(result).details)
    assert words in text and "Invisible watermark: none found." not in text
    assert soft_binding_name(alg)[0] == name


# --- C2PA 2.4: the watermark action ---------------------------------------------------


def test_stamp_declares_the_bound_watermark_and_the_reference_implementation_accepts_it(
    stamped: tuple[bytes, Path],
) -> None:
    from .conftest import reference_state, reference_store

    data = stamped[0]
    raw = reference_store(data, "image/jpeg")
    active = raw["manifests"][raw["active_manifest"]]
    actions = next(a for a in active["assertions"] if a["label"].startswith("c2pa.actions"))["data"][
        "actions"
    ]
    bound = [a for a in actions if a["action"] == WATERMARK_ACTION]
    assert WATERMARK_ACTION == "c2pa.watermarked.bound" and len(bound) == 1
    assert bound[0]["parameters"]["soft_binding_alg"] == watermark.ALGORITHM
    assert any(a["label"] == "c2pa.soft-binding" for a in active["assertions"])
    assert reference_state(data, "image/jpeg") == "valid"
    failures = raw["validation_results"]["activeManifest"].get("failure", [])
    assert "assertion.action.softBindingMissing" not in {f["code"] for f in failures}


def test_the_bound_action_is_tied_to_the_soft_binding_assertion(identity: Identity) -> None:
    # Without the c2pa.soft-binding assertion the reference implementation refuses the action.
    info = GenerationInfo(generator="g").with_actions(watermark_action())
    lone = sign_bytes(encode(photo("astronaut", (100, 100)), "PNG"), identity, info)
    assert lone.data is not None
    result = verify_bytes(lone.data)
    assert result.state is State.INVALID
    assert [f.code for f in result.failures] == ["assertion.action.softBindingMissing"]


def test_the_older_watermarked_action_is_still_understood(
    identity: Identity, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stamp_module = sys.modules["provenance.stamp"]  # the package re-exports the function as provenance.stamp
    monkeypatch.setattr(
        stamp_module,
        "watermark_action",
        lambda: Action("c2pa.watermarked", parameters={"soft_binding_alg": watermark.ALGORITHM}),
    )
    with open_store(tmp_path / "m.db") as store:
        stamped = stamp(encode(photo("coffee"), "JPEG", quality=90), identity, CHATGPT, store=store)
        result = verify_bytes(stamped.data, store=store)
    assert [a["action"] for a in result.chain[0].actions] == ["c2pa.created", "c2pa.watermarked"]
    assert result.state is State.VALID
    assert result.watermark is not None and result.watermark.matches_manifest is True
    assert "Changes recorded: invisibly watermarked" in " ".join(explain(result).details)


# --- many files, folders, sidecars, remote manifests ----------------------------------


def test_verify_walks_folders_and_prints_a_tally(runner: CliRunner, tmp_path: Path) -> None:
    folder = tmp_path / "inbox"
    (folder / "sub").mkdir(parents=True)
    for name in ("adobe-20220124-CA.jpg", "adobe-20220124-E-dat-CA.jpg", "adobe-20220124-A.jpg"):
        (folder / name).write_bytes((PUBLIC_JPEGS / name).read_bytes())
    (folder / "sub" / "C.jpg").write_bytes((PUBLIC_JPEGS / "adobe-20220124-C.jpg").read_bytes())
    (folder / "notes.txt").write_text("not media")
    (folder / ".hidden.jpg").write_bytes(b"ignored")
    text = runner.invoke(cli, ["verify", str(folder)])
    assert text.exit_code == 1
    assert (
        text.stdout.splitlines()[-1]
        == "4 files: 2 valid (unknown signer), 1 altered, 1 without credentials, 1 skipped (not a media file)"
    )
    assert text.stderr.strip() == f"skipped {folder / 'notes.txt'}: not a supported media file"
    as_json = runner.invoke(cli, ["verify", "--json", str(folder)])
    docs = [json.loads(line) for line in as_json.stdout.splitlines()]
    assert sorted(Path(d["file"]).name for d in docs) == [
        "C.jpg",
        "adobe-20220124-A.jpg",
        "adobe-20220124-CA.jpg",
        "adobe-20220124-E-dat-CA.jpg",
    ]
    assert (
        "4 files: 2 valid (unknown signer), 1 altered, 1 without credentials, 1 skipped (not a media file)"
        in as_json.stderr
    )
    empty = tmp_path / "empty"
    empty.mkdir()
    refused = runner.invoke(cli, ["verify", str(empty)])
    assert refused.exit_code == 2 and "no files to verify" in refused.stderr


def test_a_folder_with_no_media_is_not_a_success(runner: CliRunner, tmp_path: Path) -> None:
    # Exit 0 means "credentials present and intact"; a folder of notes verified nothing.
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "a.txt").write_text("not media")
    (folder / "b.txt").write_text("not media either")
    result = runner.invoke(cli, ["verify", str(folder)])
    assert result.exit_code == 2 and result.stdout == ""
    assert result.stderr.splitlines()[-1] == "error: no media files to verify (2 skipped)"


def _sidecar(identity: Identity) -> tuple[bytes, bytes]:
    data = encode(photo("astronaut", (128, 128)), "JPEG")
    signer, _ = c2pa_bridge.make_signer(identity)
    with c2pa.Builder(CHATGPT.manifest_definition()) as builder:
        builder.set_no_embed()
        out = io.BytesIO()
        manifest = builder.sign(signer, "image/jpeg", io.BytesIO(data), out)
    return out.getvalue(), manifest


def test_verify_against_a_sidecar_manifest(runner: CliRunner, identity: Identity, tmp_path: Path) -> None:
    asset, manifest = _sidecar(identity)
    (tmp_path / "gen.jpg").write_bytes(asset)
    (tmp_path / "gen.c2pa").write_bytes(manifest)
    (tmp_path / "other.jpg").write_bytes(encode(photo("coffee", (128, 128)), "JPEG"))
    alone = runner.invoke(cli, ["verify", str(tmp_path / "gen.jpg")])
    assert alone.exit_code == 3
    paired = runner.invoke(
        cli, ["verify", str(tmp_path / "gen.jpg"), "--manifest", str(tmp_path / "gen.c2pa"), "--json"]
    )
    assert paired.exit_code == 0, paired.stderr
    doc = json.loads(paired.stdout)
    assert doc["state"] == "valid" and doc["embedded"] is False and doc["model"] == "GPT-4o"
    assert any("kept outside the file" in d for d in doc["explanation"]["details"])
    wrong = runner.invoke(
        cli, ["verify", str(tmp_path / "other.jpg"), "--manifest", str(tmp_path / "gen.c2pa")]
    )
    assert wrong.exit_code == 1 and "changed after it was signed" in wrong.stdout
    two = runner.invoke(
        cli,
        [
            "verify",
            str(tmp_path / "gen.jpg"),
            str(tmp_path / "other.jpg"),
            "--manifest",
            str(tmp_path / "gen.c2pa"),
        ],
    )
    assert two.exit_code == 2 and "exactly one file" in two.stderr


def test_a_manifest_that_is_not_a_manifest_store_is_named_in_the_error(
    runner: CliRunner, identity: Identity, tmp_path: Path
) -> None:
    asset, _ = _sidecar(identity)
    (tmp_path / "gen.jpg").write_bytes(asset)
    (tmp_path / "notes.c2pa").write_bytes(b"not a manifest store at all\n")
    (tmp_path / "picture.c2pa").write_bytes(asset)  # a JPEG given where the manifest goes
    for wrong in ("notes.c2pa", "picture.c2pa"):
        result = runner.invoke(
            cli, ["verify", str(tmp_path / "gen.jpg"), "--manifest", str(tmp_path / wrong)]
        )
        assert result.exit_code == 4 and result.stdout == ""
        # The manifest is what is wrong, not the picture.
        assert result.stderr.startswith(f"error: {tmp_path / wrong}: not a C2PA manifest store")
        assert "gen.jpg" not in result.stderr and "Traceback" not in result.stderr


def _remote_asset(identity: Identity, url: str) -> bytes:
    """A JPEG whose credentials are not embedded but stored at ``url``."""
    data = encode(photo("astronaut", (128, 128)), "JPEG")
    signer, _ = c2pa_bridge.make_signer(identity)
    with c2pa.Builder(CHATGPT.manifest_definition()) as builder:
        builder.set_no_embed()
        builder.set_remote_url(url)
        out = io.BytesIO()
        builder.sign(signer, "image/jpeg", io.BytesIO(data), out)
    return out.getvalue()


def test_remote_credentials_never_read_as_none(runner: CliRunner, identity: Identity, tmp_path: Path) -> None:
    # The file points to credentials kept elsewhere: it is signed, they are just not
    # checked. "NO CREDENTIALS", "Signed by: Nobody" and "most files carry no
    # credentials" all say the opposite.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/manifest.c2pa"
    path = tmp_path / "remote.jpg"
    path.write_bytes(_remote_asset(identity, url))
    for args, how in (([], "allow network access"), (["--allow-network"], "fetching them failed")):
        result = runner.invoke(cli, ["verify", str(path), *args])
        assert result.exit_code == 3
        first, ai, altered, signer, *details = result.stdout.splitlines()
        assert altered == "  Altered?       Cannot tell until its credentials are checked."
        assert first == f"{path}: CREDENTIALS NOT CHECKED (its credentials are stored elsewhere)"
        assert "NO CREDENTIALS" not in result.stdout and "Nobody" not in signer
        assert "most files carry no credentials" not in result.stdout
        assert ai == "  Made with AI?  Unknown until its credentials are checked."
        assert signer == "  Signed by:     Not checked: the signature is in the credentials stored elsewhere."
        assert url in details[0] and how in details[0]


def test_the_tally_does_not_count_remote_credentials_as_none(
    runner: CliRunner, identity: Identity, tmp_path: Path
) -> None:
    folder = tmp_path / "inbox"
    folder.mkdir()
    (folder / "remote.jpg").write_bytes(_remote_asset(identity, "http://127.0.0.1:9/manifest.c2pa"))
    (folder / "A.jpg").write_bytes((PUBLIC_JPEGS / "adobe-20220124-A.jpg").read_bytes())
    result = runner.invoke(cli, ["verify", str(folder)])
    assert result.exit_code == 3
    assert result.stdout.splitlines()[-1] == (
        "2 files: 1 without credentials, 1 not checked (credentials stored elsewhere)"
    )


def test_failed_remote_fetch_keeps_the_url_and_warns(
    runner: CliRunner, identity: Identity, tmp_path: Path
) -> None:
    # A port nobody listens on: the fetch fails at once, as with no network, and cannot hang.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/manifest.c2pa"
    path = tmp_path / "remote.jpg"
    path.write_bytes(_remote_asset(identity, url))
    started = time.monotonic()
    result = runner.invoke(cli, ["verify", str(path), "--allow-network", "--json"])
    assert time.monotonic() - started < 30
    doc = json.loads(result.stdout)
    jsonschema.validate(doc, SCHEMA)
    assert result.exit_code == 3
    assert doc["remote_manifest_url"] == url
    assert "fetching them failed" in doc["summary"] and "No Content Credentials found" not in doc["summary"]
    assert any(w.startswith("fetching the remote manifest failed") for w in doc["warnings"])
    text = runner.invoke(cli, ["verify", str(path), "--allow-network"])
    assert url in text.stdout and "fetching the remote manifest failed" in text.stdout
    offline = runner.invoke(cli, ["verify", str(path), "--json"])
    assert json.loads(offline.stdout)["remote_manifest_url"] == url
    assert "allow network access" in json.loads(offline.stdout)["summary"]


def test_a_file_name_that_is_not_utf8_is_shown_escaped(tmp_path: Path) -> None:
    # The answer's first line named the file raw: an internal error (exit 70) on a strict UTF-8 stdout.
    path = Path(os.fsdecode(bytes(tmp_path) + b"/caf\xe9.jpg"))
    path.write_bytes(encode(photo("coffee"), "JPEG", quality=90))
    result = CliRunner().invoke(cli, ["verify", str(path)])
    assert result.exit_code == 3, result.stderr
    assert result.stdout.startswith(f"{tmp_path}/caf\\xe9.jpg: NO CREDENTIALS")
