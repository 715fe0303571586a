"""Signing identities: development identities, real PEM keys, callback (KMS-style) signers."""

from __future__ import annotations

import datetime as dt
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from manifests import GenerationInfo
from provenance.errors import (
    CertificateExpiredError,
    IdentityError,
    IdentityNotFoundError,
    KeyMismatchError,
    SigningError,
    WrongPassphraseError,
)
from provenance.keys import (
    DEVELOPMENT_MARKER,
    Identity,
    SigningAlgorithm,
    create_development_identity,
    load_identity,
    load_identity_dir,
)
from provenance.sign import sign_bytes
from provenance.trust import TrustPolicy
from provenance.verify import State, verify_bytes

from .conftest import encode, photo

INFO = GenerationInfo(generator="tests", model="test-model")


def _small_jpeg() -> bytes:
    return encode(photo("astronaut", (256, 256)), "JPEG", quality=85)


def test_development_identity_files_and_modes(tmp_path: Path) -> None:
    paths = create_development_identity(tmp_path / "id")
    assert stat.S_IMODE(paths.key.stat().st_mode) == 0o600
    leaf = x509.load_pem_x509_certificate(paths.chain.read_bytes())
    root = x509.load_pem_x509_certificate(paths.root.read_bytes())  # type: ignore[union-attr]
    assert leaf.issuer == root.subject
    assert leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    assert root.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is True
    usage = leaf.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.digital_signature and not usage.key_cert_sign
    ekus = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.EMAIL_PROTECTION in ekus
    ous = [a.value for a in leaf.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)]
    assert DEVELOPMENT_MARKER in ous
    assert load_identity_dir(tmp_path / "id").is_development


def test_init_refuses_to_overwrite(tmp_path: Path) -> None:
    create_development_identity(tmp_path)
    with pytest.raises(IdentityError, match="already exists"):
        create_development_identity(tmp_path)
    create_development_identity(tmp_path, overwrite=True)


@pytest.mark.parametrize("algorithm", list(SigningAlgorithm))
def test_every_algorithm_signs_credentials_the_reference_trusts(
    tmp_path: Path, algorithm: SigningAlgorithm
) -> None:
    paths = create_development_identity(tmp_path, algorithm=algorithm)
    identity = load_identity_dir(tmp_path)
    assert identity.algorithm is algorithm
    signed = sign_bytes(_small_jpeg(), identity, INFO)
    assert signed.data is not None
    policy = TrustPolicy.from_files([paths.root])  # type: ignore[list-item]
    assert verify_bytes(signed.data, policy=policy).state is State.TRUSTED
    assert verify_bytes(signed.data).state is State.VALID


def _encrypted_copy(identity_dir: Path, tmp_path: Path, passphrase: bytes) -> Path:
    key = serialization.load_pem_private_key((identity_dir / "signing-key.pem").read_bytes(), None)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(passphrase),
    )
    path = tmp_path / "encrypted.pem"
    path.write_bytes(pem)
    return path


def test_encrypted_key_needs_the_right_passphrase(identity_dir: Path, tmp_path: Path) -> None:
    key = _encrypted_copy(identity_dir, tmp_path, b"correct horse")
    chain = identity_dir / "signing-chain.pem"
    with pytest.raises(WrongPassphraseError, match="encrypted"):
        load_identity(key, chain)
    with pytest.raises(WrongPassphraseError, match="wrong passphrase"):
        load_identity(key, chain, passphrase="battery staple")
    identity = load_identity(key, chain, passphrase="correct horse")
    assert sign_bytes(_small_jpeg(), identity, INFO).data


def test_key_that_does_not_match_the_certificate(identity_dir: Path, tmp_path: Path) -> None:
    other = create_development_identity(tmp_path / "other")
    with pytest.raises(KeyMismatchError):
        load_identity(other.key, identity_dir / "signing-chain.pem")


def test_missing_identity_explains_how_to_create_one(tmp_path: Path) -> None:
    with pytest.raises(IdentityNotFoundError, match="provenance keys init"):
        load_identity_dir(tmp_path / "nothing-here")


def test_garbage_files_are_refused(tmp_path: Path, identity_dir: Path) -> None:
    (tmp_path / "key.pem").write_text("not a key")
    with pytest.raises(IdentityError, match="not a PEM private key"):
        load_identity(tmp_path / "key.pem", identity_dir / "signing-chain.pem")
    (tmp_path / "chain.pem").write_text("not a certificate")
    with pytest.raises(IdentityError, match="not a PEM certificate"):
        load_identity(identity_dir / "signing-key.pem", tmp_path / "chain.pem")


def test_expired_certificate_is_refused(tmp_path: Path) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "expired")])
    past = dt.datetime(2020, 1, 1, tzinfo=dt.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(past)
        .not_valid_after(past + dt.timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    (tmp_path / "k.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    (tmp_path / "c.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    with pytest.raises(CertificateExpiredError, match="expired on 2020-01-31"):
        load_identity(tmp_path / "k.pem", tmp_path / "c.pem")


class SoftwareKms:
    """Stands in for an HSM or cloud KMS: holds the key, exposes only 'sign these bytes'."""

    def __init__(self, key_pem: bytes) -> None:
        self._key = serialization.load_pem_private_key(key_pem, None)
        self.calls = 0

    def sign(self, data: bytes) -> bytes:
        self.calls += 1
        assert isinstance(self._key, ec.EllipticCurvePrivateKey)
        return self._key.sign(data, ec.ECDSA(hashes.SHA256()))


def test_callback_signer_produces_credentials_the_reference_trusts(
    identity_dir: Path, trusting_policy: TrustPolicy
) -> None:
    kms = SoftwareKms((identity_dir / "signing-key.pem").read_bytes())
    identity = Identity.from_callback(kms.sign, (identity_dir / "signing-chain.pem").read_bytes(), "es256")
    signed = sign_bytes(_small_jpeg(), identity, INFO)
    assert kms.calls == 2  # the self-test probe, then the claim
    assert signed.data is not None
    assert verify_bytes(signed.data, policy=trusting_policy).state is State.TRUSTED


def test_callback_signer_with_the_wrong_key_is_caught(identity_dir: Path, tmp_path: Path) -> None:
    other = create_development_identity(tmp_path)
    kms = SoftwareKms(other.key.read_bytes())
    with pytest.raises(KeyMismatchError, match="do not verify"):
        Identity.from_callback(kms.sign, (identity_dir / "signing-chain.pem").read_bytes(), "es256")


def test_callback_signer_raw_ecdsa_signatures_are_accepted(identity_dir: Path) -> None:
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

    kms = SoftwareKms((identity_dir / "signing-key.pem").read_bytes())

    def raw_sign(data: bytes) -> bytes:  # the r||s form most KMS APIs return
        r, s = decode_dss_signature(kms.sign(data))
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")

    identity = Identity.from_callback(raw_sign, (identity_dir / "signing-chain.pem").read_bytes(), "es256")
    signed = sign_bytes(_small_jpeg(), identity, INFO)
    assert signed.data is not None and verify_bytes(signed.data).state is State.VALID


def test_callback_failures_are_reported_with_their_reason(identity_dir: Path) -> None:
    calls = []

    def flaky(data: bytes) -> bytes:
        calls.append(data)
        if len(calls) > 1:
            raise ConnectionError("KMS unreachable")
        return SoftwareKms((identity_dir / "signing-key.pem").read_bytes()).sign(data)

    identity = Identity.from_callback(flaky, (identity_dir / "signing-chain.pem").read_bytes(), "es256")
    with pytest.raises(SigningError, match="KMS unreachable"):
        sign_bytes(_small_jpeg(), identity, INFO)


def test_wrong_passphrase_is_named_even_when_the_padding_happens_to_be_valid(tmp_path: Path) -> None:
    # AES-CBC decrypts a wrong passphrase to valid padding about 1 time in 256; the
    # garbage then fails as key data, which must still read as a wrong passphrase.
    from provenance.errors import WrongPassphraseError
    from provenance.keys import _load_private_key

    key = ec.generate_private_key(ec.SECP256R1())
    for attempt in range(600):
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"right"),
        )
        path = tmp_path / f"k{attempt}.pem"
        path.write_bytes(pem)
        with pytest.raises(WrongPassphraseError):
            _load_private_key(path, "wrong")
