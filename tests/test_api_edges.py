"""The public API's edges: every mistake a caller can make is a ProvenanceError with one line."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

import provenance
from manifests import GenerationInfo
from provenance.errors import (
    AlgorithmMismatchError,
    ExitCode,
    IdentityError,
    InvalidChoiceError,
    ProvenanceError,
    UsageError,
)
from provenance.keys import Identity, SigningAlgorithm, create_development_identity, load_identity
from provenance.sign import sign_bytes, sign_file, sign_image
from provenance.verify import State, verify_bytes

INFO = GenerationInfo(generator="tests", model="test-model")


def _decoded(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


# --- numpy input -------------------------------------------------------------


@pytest.mark.parametrize(
    ("shape", "mode"),
    [((48, 64), "L"), ((48, 64, 1), "L"), ((48, 64, 3), "RGB"), ((48, 64, 4), "RGBA")],
)
def test_sign_image_takes_uint8_arrays_pixel_for_pixel(
    identity: Identity, shape: tuple[int, ...], mode: str
) -> None:
    pixels = np.random.default_rng(1).integers(0, 256, shape, dtype=np.uint8)
    signed = sign_image(pixels, identity, INFO)
    assert signed.data is not None and signed.mime == "image/png"
    image = _decoded(signed.data)
    assert image.mode == mode and image.size == (64, 48)
    assert np.array_equal(
        np.asarray(image), pixels.reshape(48, 64, -1).squeeze(-1) if mode == "L" else pixels
    )
    assert verify_bytes(signed.data).state is State.VALID


def test_sign_image_takes_floats_in_zero_one_like_diffusers_output(identity: Identity) -> None:
    pixels = np.random.default_rng(2).random((40, 30, 3), dtype=np.float32)
    signed = sign_image(pixels, identity, INFO, format="PNG")
    assert signed.data is not None
    assert np.array_equal(np.asarray(_decoded(signed.data)), np.rint(pixels * 255).astype(np.uint8))


def test_sign_image_takes_wider_integer_arrays_within_0_255(identity: Identity) -> None:
    pixels = np.arange(0, 256, dtype=np.int64).reshape(16, 16)
    signed = sign_image(pixels, identity, INFO)
    assert signed.data is not None
    assert np.array_equal(np.asarray(_decoded(signed.data)), pixels.astype(np.uint8))


@pytest.mark.parametrize(
    ("array", "reason"),
    [
        (np.full((8, 8, 3), 200.0), "floats must be in [0, 1]"),
        (np.full((8, 8, 3), -0.5), "floats must be in [0, 1]"),
        (np.full((8, 8), np.nan), "NaN"),
        (np.zeros((3, 32, 32), np.uint8), "transpose(1, 2, 0)"),
        (np.zeros((1, 32, 32, 3), np.uint8), "array[0]"),
        (np.zeros((32, 32, 2), np.uint8), "not an image"),
        (np.zeros((32,), np.uint8), "not an image"),
        (np.zeros((0, 32, 3), np.uint8), "empty"),
        (np.full((8, 8), 300, np.uint16), "0..255"),
        (np.zeros((8, 8), bool), "not images"),
    ],
)
def test_sign_image_refuses_arrays_it_would_have_to_guess(
    identity: Identity, array: np.ndarray[Any, Any], reason: str
) -> None:
    with pytest.raises(UsageError, match=None) as caught:
        sign_image(array, identity, INFO)
    assert reason in str(caught.value)
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda i: sign_image("picture.png", i, INFO), "use sign_file or sign_bytes"),
        (lambda i: sign_image([[0, 1]], i, INFO), "got list"),
        (lambda i: sign_image(Image.new("RGB", (8, 8)), i, INFO, format=None), "format"),
        (lambda i: sign_image(Image.new("RGB", (8, 8)), None, INFO), "identity must be"),
        (lambda i: sign_image(Image.new("RGB", (8, 8)), i, {"model": "m"}), "GenerationInfo"),
        (lambda i: sign_image(Image.new("RGB", (8, 8)), i, INFO, thumbnail=-1), "thumbnail"),
        (lambda i: sign_bytes("not bytes", i, INFO), "sign_bytes takes the encoded file as bytes"),
        (lambda i: sign_bytes(np.zeros((8, 8), np.uint8), i, INFO), "use sign_image"),
        (lambda i: sign_image(Image.new("RGB", (8, 8)), i, INFO, parent=5), "parent must be a path"),
        (lambda i: sign_file(None, "out.png", i, INFO), "input_path must be a file path"),
    ],
)
def test_wrong_argument_types_are_usage_errors(identity: Identity, call: Any, message: str) -> None:
    with pytest.raises(UsageError) as caught:
        call(identity)
    assert message in str(caught.value)
    assert caught.value.exit_code is ExitCode.USAGE


def test_unknown_algorithm_names_are_usage_errors_and_still_value_errors() -> None:
    assert SigningAlgorithm("ES384") is SigningAlgorithm.ES384  # names are case-insensitive
    with pytest.raises(InvalidChoiceError, match="choose one of: es256"):
        SigningAlgorithm("rsa")
    with pytest.raises(ValueError):  # code written against the plain enum keeps working
        SigningAlgorithm("rsa")
    with pytest.raises(UsageError):
        create_development_identity("unused", algorithm="rsa-sha1")


def test_identity_helpers_refuse_wrong_types(identity_dir: Path) -> None:
    key, chain = identity_dir / "signing-key.pem", identity_dir / "signing-chain.pem"
    with pytest.raises(UsageError, match="private key path"):
        load_identity(None, chain)  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="passphrase must be text or bytes"):
        load_identity(key, chain, passphrase=1234)  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="timestamp authority URL"):
        load_identity(key, chain, timestamp_url=5)  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="valid_days"):
        create_development_identity(identity_dir.parent / "short", valid_days=-5)
    with pytest.raises(UsageError, match="PEM text or bytes"):
        Identity.from_callback(lambda d: d, 5, "es256")  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="sign must be a function"):
        Identity.from_callback(None, chain.read_bytes(), "es256")  # type: ignore[arg-type]
    with pytest.raises(IdentityError, match="not a PEM certificate chain"):
        Identity.from_callback(lambda d: d, "é not a certificate", "es256")


# --- the declared algorithm must fit the certificate's key --------------------


@pytest.fixture(scope="module")
def identities(tmp_path_factory: pytest.TempPathFactory) -> dict[str, provenance.Identity]:
    made = {}
    for alg in ("es256", "es384", "ps256", "ed25519"):
        folder = tmp_path_factory.mktemp(alg)
        create_development_identity(folder, algorithm=alg)
        made[alg] = provenance.load_identity_dir(folder)
    return made


@pytest.mark.parametrize(
    ("key_alg", "declared", "expected"),
    [
        ("es256", "ed25519", "EC P-256 key, which signs with ES256, not ED25519"),
        ("es256", "ps256", "EC P-256 key, which signs with ES256, not PS256"),
        ("es256", "es384", "EC P-256 key, which signs with ES256, not ES384"),
        ("es384", "es256", "EC P-384 key, which signs with ES384, not ES256"),
        ("es384", "es512", "EC P-384 key, which signs with ES384, not ES512"),
        ("ps256", "es256", "RSA 3072-bit key, which signs with PS256, not ES256"),
        ("ed25519", "es256", "Ed25519 key, which signs with ED25519, not ES256"),
    ],
)
def test_callback_signer_refuses_an_algorithm_its_key_cannot_sign_with(
    identities: dict[str, provenance.Identity], key_alg: str, declared: str, expected: str
) -> None:
    real = identities[key_alg]
    for self_test in (True, False):  # the check does not depend on the probe signature
        with pytest.raises(AlgorithmMismatchError) as caught:
            Identity.from_callback(real.sign, real.chain_pem(), declared, self_test=self_test)
        assert expected in str(caught.value)
        assert isinstance(caught.value, ProvenanceError)
        assert caught.value.exit_code is ExitCode.IDENTITY_ERROR
    # ...and the right declaration still works
    Identity.from_callback(real.sign, real.chain_pem(), key_alg)


def test_ec_signer_declared_ps256_used_to_sign_invalid_files(
    identities: dict[str, provenance.Identity],
) -> None:
    # What the check prevents: the same mismatch, built without the check, signs
    # a file the reference implementation rejects.
    real = identities["es256"]
    with pytest.raises(AlgorithmMismatchError):  # the dataclass itself refuses it
        Identity(real.certificate_chain, SigningAlgorithm.PS256, real.sign)
    unchecked = Identity(real.certificate_chain, SigningAlgorithm.ES256, real.sign)
    object.__setattr__(unchecked, "algorithm", SigningAlgorithm.PS256)  # forced past every check
    image = Image.new("RGB", (64, 64), "teal")
    signed = sign_image(image, unchecked, INFO)
    assert signed.data is not None
    assert verify_bytes(signed.data).state is State.INVALID


def test_load_identity_refuses_a_declared_algorithm_that_does_not_fit(identity_dir: Path) -> None:
    key, chain = identity_dir / "signing-key.pem", identity_dir / "signing-chain.pem"
    with pytest.raises(AlgorithmMismatchError, match="not ES384"):
        load_identity(key, chain, algorithm="es384")
    assert load_identity(key, chain, algorithm="ES256").algorithm is SigningAlgorithm.ES256


def test_stamp_takes_numpy_arrays_like_sign_image(identity: Identity, tmp_path: Path) -> None:
    from skimage import data as skdata

    info = GenerationInfo(generator="g", model="m")
    with provenance.open_store(tmp_path / "m.db") as store:
        stamped = provenance.stamp(skdata.astronaut(), identity, info, store=store)
        found = verify_bytes(stamped.data, store=store).watermark
        assert found is not None and found.matches_manifest is True
        with pytest.raises(UsageError, match="stamp takes a path, encoded bytes"):
            provenance.stamp(12345, identity, info, store=store)  # type: ignore[arg-type]


def test_verify_entry_points_say_what_they_take(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="for a path use verify_file"):
        verify_bytes("photo.jpg")  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="verify_bytes takes the file's bytes, not ndarray"):
        verify_bytes(np.zeros((4, 4), np.uint8))  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="verify_file takes a path, not NoneType"):
        provenance.verify_file(None)  # type: ignore[arg-type]
    jpeg = io.BytesIO()
    Image.new("RGB", (64, 64), "teal").save(jpeg, "JPEG")
    assert verify_bytes(bytearray(jpeg.getvalue())).state is State.NONE  # bytes-like is fine


# --- generation info through the front door ------------------------------------


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: provenance.GenerationInfo(generator=" "), "generator: a non-empty name is required"),
        (lambda: provenance.GenerationInfo(generator="g", model=3), "model: expected text, got int"),
        (
            lambda: provenance.GenerationInfo(generator="g", digital_source_type="painting"),
            "unknown digital source type 'painting'",
        ),
        (
            lambda: provenance.GenerationInfo(generator="g", custom_assertions={"x": {1, 2}}),
            "data must be JSON-serialisable",
        ),
        (lambda: provenance.GenerationInfo.from_dict({"generator": "g", "colour": 1}), "unknown field(s)"),
        (lambda: provenance.GenerationInfo.from_template("/no/such/template.json"), "template not found"),
    ],
)
def test_generation_info_errors_are_provenance_errors(make: Any, message: str) -> None:
    with pytest.raises(ProvenanceError) as caught:
        make()
    assert caught.value.exit_code == ExitCode.USAGE
    assert message in str(caught.value) and "\n" not in str(caught.value)
    # Still the manifests package's error (a ValueError) for code written against it.
    assert isinstance(caught.value, ValueError)


def test_front_door_generation_info_is_the_manifests_class_and_signs(identity: Identity) -> None:
    info = provenance.GenerationInfo.from_dict({"generator": "g", "model": "m"})
    assert isinstance(info, GenerationInfo) and type(info.with_actions()) is provenance.GenerationInfo
    signed = sign_image(Image.new("RGB", (64, 64), "white"), identity, info)
    assert verify_bytes(signed.data).state is State.VALID


def test_stamp_reads_an_image_path_once(
    identity: Identity, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The audio check and the image decode share one read: a second would hold a
    # large file twice and could stamp a file that changed between the reads.
    import importlib

    from provenance.store import open_store

    from .conftest import photo

    stamping = importlib.import_module("provenance.stamp")  # the module, not provenance.stamp()
    source = tmp_path / "photo.png"
    photo(size=(384, 288)).save(source)
    reads: list[str] = []
    real = stamping.read_input

    def counted(path: Any) -> bytes:
        reads.append(str(path))
        return real(path)

    monkeypatch.setattr(stamping, "read_input", counted)
    with open_store(tmp_path / "m.db") as store:
        result = stamping.stamp(source, identity, GenerationInfo(generator="g"), store=store)
    assert result.data[:8] == b"\x89PNG\r\n\x1a\n"
    assert reads == [str(source)]
