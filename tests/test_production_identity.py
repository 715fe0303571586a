"""Production identities: ``keys csr`` makes a key and a request, a CA signs it, ``keys import`` installs it.

The CA is built here with ``cryptography`` (a root and an intermediate, as
commercial CAs issue), so the whole path is exercised offline: request,
issuance, checks, signing, and verification as ``trusted`` against the root.
"""

from __future__ import annotations

import datetime as dt
import json
import stat
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs7
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from cli.main import cli
from provenance.errors import (
    CertificateExpiredError,
    CertificateProfileError,
    ExitCode,
    IdentityError,
    IdentityNotFoundError,
    KeyMismatchError,
    UsageError,
    WrongPassphraseError,
)
from provenance.keys import (
    PASSPHRASE_ENV,
    create_development_identity,
    create_signing_request,
    import_certificate_chain,
    load_identity_dir,
)

from .conftest import encode, photo

C2PA_CLAIM_SIGNING = x509.ObjectIdentifier("1.3.6.1.4.1.62558.2.1")
DOCUMENT_SIGNING = x509.ObjectIdentifier("1.3.6.1.5.5.7.3.36")
NOW = dt.datetime.now(dt.timezone.utc)


@dataclass
class CA:
    root: x509.Certificate
    root_key: ec.EllipticCurvePrivateKey
    intermediate: x509.Certificate
    intermediate_key: ec.EllipticCurvePrivateKey

    def issue(
        self,
        csr: x509.CertificateSigningRequest,
        *,
        extensions: list[tuple[x509.ExtensionType, bool]] | None = None,
        not_before: dt.datetime | None = None,
        days: int = 365,
        aki: bool = True,
    ) -> x509.Certificate:
        """Sign a request as a CA does: its subject and key, the requested extensions
        (or ``extensions`` instead), key identifiers."""
        assert csr.is_signature_valid
        start = not_before or NOW - dt.timedelta(minutes=5)
        builder = (
            x509.CertificateBuilder()
            .subject_name(csr.subject)
            .issuer_name(self.intermediate.subject)
            .public_key(csr.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(start + dt.timedelta(days=days))
        )
        chosen = extensions if extensions is not None else [(e.value, e.critical) for e in csr.extensions]
        for value, critical in chosen:
            builder = builder.add_extension(value, critical)
        builder = builder.add_extension(x509.SubjectKeyIdentifier.from_public_key(csr.public_key()), False)
        if aki:
            builder = builder.add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.intermediate_key.public_key()), False
            )
        return builder.sign(self.intermediate_key, hashes.SHA256())

    def chain_pem(self, leaf: x509.Certificate, *, order: str = "leaf-first") -> bytes:
        certs = [leaf, self.intermediate, self.root]
        if order == "root-first":
            certs.reverse()
        return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)


def _ca_cert(
    subject: x509.Name, issuer: x509.Name, key: ec.EllipticCurvePrivateKey, signer: ec.EllipticCurvePrivateKey
) -> x509.Certificate:
    usage = x509.KeyUsage(False, False, False, False, False, True, True, False, False)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - dt.timedelta(days=1))
        .not_valid_after(NOW + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .add_extension(usage, True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(signer.public_key()), False)
        .sign(signer, hashes.SHA256())
    )


@pytest.fixture(scope="module")
def ca() -> CA:
    root_key, inter_key = ec.generate_private_key(ec.SECP384R1()), ec.generate_private_key(ec.SECP256R1())
    root_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Test C2PA Root CA")])
    inter_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Test C2PA Issuing CA")])
    root = _ca_cert(root_name, root_name, root_key, root_key)
    intermediate = _ca_cert(inter_name, root_name, inter_key, root_key)
    return CA(root, root_key, intermediate, inter_key)


def _request(folder: Path, **extra: object) -> x509.CertificateSigningRequest:
    made = create_signing_request(
        folder,
        common_name="Example News image signer",
        organization="Example News",
        **extra,  # type: ignore[arg-type]
    )
    return x509.load_pem_x509_csr(made.pem)


def test_csr_then_import_then_sign_and_verify_trusted(
    ca: CA, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runner = CliRunner()
    folder = tmp_path / "prod"
    monkeypatch.setenv(PASSPHRASE_ENV, "correct horse battery staple")
    made = runner.invoke(
        cli,
        ["keys", "csr", "--dir", str(folder), "--cn", "Example News image signer", "--org", "Example News",
         "--country", "de", "--email", "signing@example.org", "--encrypt"],
    )  # fmt: skip
    assert made.exit_code == 0, made.stderr
    assert made.stdout.startswith("-----BEGIN CERTIFICATE REQUEST-----")
    assert "encrypted, mode 0600" in made.stderr and "keys import" in made.stderr
    key_file = folder / "signing-key.pem"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert b"ENCRYPTED PRIVATE KEY" in key_file.read_bytes()
    with pytest.raises(TypeError):  # needs the passphrase
        serialization.load_pem_private_key(key_file.read_bytes(), None)

    # the request carries what the C2PA certificate profile needs
    csr = x509.load_pem_x509_csr(made.stdout.encode())
    assert csr.is_signature_valid
    assert csr.subject.rfc4514_string() == "CN=Example News image signer,O=Example News,C=DE"
    usage = csr.extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical and usage.value.digital_signature and not usage.value.key_cert_sign
    ekus = set(csr.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
    assert ekus == {DOCUMENT_SIGNING, C2PA_CLAIM_SIGNING, ExtendedKeyUsageOID.EMAIL_PROTECTION}
    assert csr.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.RFC822Name) == ["signing@example.org"]

    # before the CA answers, the folder says what is missing
    pending = runner.invoke(cli, ["keys", "show", "--dir", str(folder)])
    assert pending.exit_code == ExitCode.IDENTITY_ERROR and "keys import" in pending.stderr

    # the CA's answer, root first as some CAs deliver it
    chain_file = tmp_path / "from-ca.pem"
    chain_file.write_bytes(ca.chain_pem(ca.issue(csr), order="root-first"))
    imported = runner.invoke(cli, ["keys", "import", str(chain_file), "--dir", str(folder), "--json"])
    assert imported.exit_code == 0, imported.stderr
    info = json.loads(imported.stdout)
    assert info["reordered"] is True and info["certificates"] == 2 and info["algorithm"] == "es256"
    assert info["subject"] == "CN=Example News image signer,O=Example News,C=DE"
    assert "stored leaf first" in imported.stderr
    installed = x509.load_pem_x509_certificates((folder / "signing-chain.pem").read_bytes())
    assert [c.subject for c in installed] == [csr.subject, ca.intermediate.subject]  # no root in x5chain
    assert x509.load_pem_x509_certificate((folder / "root-ca.pem").read_bytes()) == ca.root

    shown = runner.invoke(cli, ["keys", "show", "--dir", str(folder), "--json"])
    assert shown.exit_code == 0, shown.stderr
    assert json.loads(shown.stdout)["development"] is False

    picture = tmp_path / "generated.png"
    picture.write_bytes(encode(photo("astronaut", (256, 256)), "PNG"))
    out = tmp_path / "signed.png"
    signed = runner.invoke(
        cli, ["sign", str(picture), "-o", str(out), "--identity", str(folder), "--model", "m"]
    )
    assert signed.exit_code == 0, signed.stderr
    verified = runner.invoke(
        cli, ["verify", str(out), "--json", "--trust-anchors", str(folder / "root-ca.pem")]
    )
    assert verified.exit_code == 0, verified.stderr
    doc = json.loads(verified.stdout)
    assert doc["state"] == "trusted", doc


def test_import_accepts_pkcs7_and_a_chain_without_its_root(ca: CA, tmp_path: Path) -> None:
    csr = _request(tmp_path / "a")
    leaf = ca.issue(csr)
    bundle = pkcs7.serialize_certificates([ca.intermediate, leaf, ca.root], serialization.Encoding.DER)
    result = import_certificate_chain(bundle, tmp_path / "a")
    assert result.root_included and result.reordered and result.certificates == 2
    assert load_identity_dir(tmp_path / "a").certificate == leaf

    csr = _request(tmp_path / "b")
    result = import_certificate_chain(ca.chain_pem(ca.issue(csr))[: -len(_pem(ca.root))], tmp_path / "b")
    assert not result.root_included and result.paths.root is None
    assert any("trust anchor" in note for note in result.notes)
    assert len(load_identity_dir(tmp_path / "b").certificate_chain) == 2


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _ku(*, digital_signature: bool = True, cert_sign: bool = False) -> x509.KeyUsage:
    return x509.KeyUsage(digital_signature, False, False, False, False, cert_sign, cert_sign, False, False)


def _eku(*purposes: x509.ObjectIdentifier) -> tuple[x509.ExtendedKeyUsage, bool]:
    return x509.ExtendedKeyUsage(list(purposes)), False


_KU = (_ku(), True)
_CA = (x509.BasicConstraints(True, None), True)


@pytest.mark.parametrize(
    ("extensions", "message"),
    [
        ([_KU, (x509.BasicConstraints(False, None), True)], "no extended key usage"),
        ([_KU, _eku(ExtendedKeyUsageOID.SERVER_AUTH)], "not for claim signing"),
        ([_KU, _eku(DOCUMENT_SIGNING, ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE)], "anyExtendedKeyUsage"),
        ([_KU, _eku(DOCUMENT_SIGNING, ExtendedKeyUsageOID.TIME_STAMPING)], "timeStamping"),
        ([(_ku(digital_signature=False), True), _eku(DOCUMENT_SIGNING)], "digitalSignature"),
        ([_eku(DOCUMENT_SIGNING)], "no key usage"),
        ([(_ku(cert_sign=True), True), _CA, _eku(DOCUMENT_SIGNING)], "is a CA certificate"),
    ],
)
def test_import_refuses_certificates_outside_the_c2pa_profile(
    ca: CA,
    tmp_path: Path,
    extensions: list[tuple[x509.ExtensionType, bool]],
    message: str,
) -> None:
    csr = _request(tmp_path)
    with pytest.raises(CertificateProfileError) as caught:
        import_certificate_chain(ca.chain_pem(ca.issue(csr, extensions=extensions)), tmp_path)
    assert message in str(caught.value)
    assert not (tmp_path / "signing-chain.pem").exists()  # nothing installed


def test_import_refuses_expired_and_not_yet_valid_certificates(ca: CA, tmp_path: Path) -> None:
    csr = _request(tmp_path)
    expired = ca.issue(csr, not_before=NOW - dt.timedelta(days=30), days=10)
    with pytest.raises(CertificateExpiredError, match="expired on"):
        import_certificate_chain(ca.chain_pem(expired), tmp_path)
    future = ca.issue(csr, not_before=NOW + dt.timedelta(days=2))
    with pytest.raises(CertificateExpiredError, match="not valid until"):
        import_certificate_chain(ca.chain_pem(future), tmp_path)


def test_import_refuses_a_missing_authority_key_identifier(ca: CA, tmp_path: Path) -> None:
    csr = _request(tmp_path)
    with pytest.raises(CertificateProfileError, match="authority key identifier"):
        import_certificate_chain(ca.chain_pem(ca.issue(csr, aki=False)), tmp_path)


def test_import_refuses_a_chain_for_another_key_or_with_strangers(ca: CA, tmp_path: Path) -> None:
    mine, other = _request(tmp_path / "mine"), _request(tmp_path / "other")
    with pytest.raises(KeyMismatchError, match="none of its 3 certificate"):
        import_certificate_chain(ca.chain_pem(ca.issue(other)), tmp_path / "mine")
    stranger = ca.issue(other)
    with pytest.raises(CertificateProfileError, match="not part of the signing certificate's chain"):
        import_certificate_chain(ca.chain_pem(ca.issue(mine)) + _pem(stranger), tmp_path / "mine")
    with pytest.raises(IdentityError, match="not a certificate chain"):
        import_certificate_chain(b"garbage", tmp_path / "mine")
    with pytest.raises(IdentityNotFoundError, match="keys csr"):
        import_certificate_chain(ca.chain_pem(ca.issue(mine)), tmp_path / "empty")


def test_import_needs_the_passphrase_of_an_encrypted_key(ca: CA, tmp_path: Path) -> None:
    csr = _request(tmp_path, passphrase="s3cret passphrase")
    chain = ca.chain_pem(ca.issue(csr))
    with pytest.raises(WrongPassphraseError):
        import_certificate_chain(chain, tmp_path)
    with pytest.raises(WrongPassphraseError):
        import_certificate_chain(chain, tmp_path, passphrase="wrong")
    import_certificate_chain(chain, tmp_path, passphrase="s3cret passphrase")
    assert load_identity_dir(tmp_path, passphrase="s3cret passphrase").is_development is False


def test_csr_checks_its_fields_and_never_clobbers_a_folder(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="organization"):
        create_signing_request(tmp_path / "x", common_name="Signer", organization=" ")
    with pytest.raises(UsageError, match="two-letter"):
        create_signing_request(tmp_path / "x", common_name="Signer", organization="Org", country="Germany")
    with pytest.raises(UsageError, match="email"):
        create_signing_request(tmp_path / "x", common_name="Signer", organization="Org", email="nobody")
    documents = tmp_path / "documents"
    documents.mkdir()
    (documents / "thesis.txt").write_text("years of work")
    for make in (
        lambda: create_signing_request(documents, common_name="Signer", organization="Org"),
        lambda: create_development_identity(documents),
    ):
        with pytest.raises(IdentityError, match="holds other files"):
            make()
    assert (documents / "thesis.txt").read_text() == "years of work"
    _request(tmp_path / "id")
    with pytest.raises(IdentityError, match="already exists"):
        _request(tmp_path / "id")


def test_csr_cli_without_a_passphrase_source_is_a_usage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(PASSPHRASE_ENV, raising=False)
    result = CliRunner().invoke(
        cli, ["keys", "csr", "--dir", str(tmp_path / "k"), "--cn", "S", "--org", "O", "--encrypt"]
    )
    assert result.exit_code == ExitCode.USAGE and PASSPHRASE_ENV in result.stderr
    assert not (tmp_path / "k").exists()
    no_passphrase_option = CliRunner().invoke(cli, ["keys", "csr", "--help"])
    assert "--passphrase" not in no_passphrase_option.stdout


@pytest.mark.parametrize("algorithm", ["es384", "es512", "ps256", "ed25519"])
def test_every_algorithm_goes_from_request_to_trusted_credentials(
    ca: CA, tmp_path: Path, algorithm: str
) -> None:
    from manifests import GenerationInfo
    from provenance.sign import sign_image
    from provenance.trust import TrustPolicy
    from provenance.verify import State, verify_bytes

    csr = _request(tmp_path, algorithm=algorithm)
    result = import_certificate_chain(ca.chain_pem(ca.issue(csr)), tmp_path)
    assert result.algorithm.value == algorithm
    identity = load_identity_dir(tmp_path)
    signed = sign_image(photo("astronaut", (128, 128)), identity, GenerationInfo(generator="t", model="m"))
    assert signed.data is not None
    policy = TrustPolicy.from_files([tmp_path / "root-ca.pem"])
    assert verify_bytes(signed.data, policy=policy).state is State.TRUSTED


def test_import_cli_errors_are_one_line_with_the_identity_code(ca: CA, tmp_path: Path) -> None:
    _request(tmp_path / "mine")
    other = _request(tmp_path / "other")
    chain = tmp_path / "chain.pem"
    chain.write_bytes(ca.chain_pem(ca.issue(other)))
    result = CliRunner().invoke(cli, ["keys", "import", str(chain), "--dir", str(tmp_path / "mine")])
    assert result.exit_code == ExitCode.IDENTITY_ERROR
    assert result.stdout == "" and result.stderr.count("\n") == 1
    assert result.stderr.startswith("error: ") and "another key" in result.stderr
    missing = CliRunner().invoke(
        cli, ["keys", "import", str(tmp_path / "nope.pem"), "--dir", str(tmp_path / "mine")]
    )
    assert missing.exit_code == ExitCode.IDENTITY_ERROR and "not found" in missing.stderr


def test_a_self_signed_leaf_is_refused(tmp_path: Path) -> None:
    csr = _request(tmp_path)
    key = serialization.load_pem_private_key((tmp_path / "signing-key.pem").read_bytes(), None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    own = (
        x509.CertificateBuilder()
        .subject_name(csr.subject)
        .issuer_name(csr.subject)
        .public_key(csr.public_key())
        .serial_number(1)
        .not_valid_before(NOW - dt.timedelta(days=1))
        .not_valid_after(NOW + dt.timedelta(days=30))
        .add_extension(_ku(), True)
        .add_extension(x509.ExtendedKeyUsage([DOCUMENT_SIGNING]), False)
        .sign(key, hashes.SHA256())
    )
    with pytest.raises(CertificateProfileError, match="self-signed"):
        import_certificate_chain(_pem(own), tmp_path)
