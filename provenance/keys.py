"""Signing identities: who signs Content Credentials, and with which key.

Create a development identity and sign with it::

    >>> import tempfile
    >>> from provenance.keys import create_development_identity, load_identity_dir
    >>> folder = tempfile.mkdtemp()
    >>> paths = create_development_identity(folder)
    >>> identity = load_identity_dir(folder)
    >>> identity.is_development, identity.algorithm.value
    (True, 'es256')

A production identity is a PEM private key (optionally encrypted) and its PEM
certificate chain, loaded with :func:`load_identity`; a key that lives in an
HSM or a cloud KMS is used through :meth:`Identity.from_callback`, which only
needs a function that signs bytes. :func:`create_signing_request` makes a key
and a certificate signing request with what the C2PA certificate profile asks
for, and :func:`import_certificate_chain` checks the chain a CA returns
against the key and the profile before installing it as an identity folder.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa, utils
from cryptography.hazmat.primitives.serialization import pkcs7
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from provenance._internal import cert_profile
from provenance._internal.files import atomic_write
from provenance.errors import (
    AlgorithmMismatchError,
    CertificateExpiredError,
    CertificateProfileError,
    IdentityError,
    IdentityNotFoundError,
    InvalidChoiceError,
    KeyMismatchError,
    UsageError,
    WrongPassphraseError,
)

__all__ = [
    "DEVELOPMENT_MARKER",
    "DEVELOPMENT_ORGANIZATION",
    "PASSPHRASE_ENV",
    "Identity",
    "IdentityPaths",
    "ImportedIdentity",
    "SigningAlgorithm",
    "SigningRequest",
    "check_algorithm_fits",
    "create_development_identity",
    "create_signing_request",
    "default_identity_dir",
    "import_certificate_chain",
    "load_identity",
    "load_identity_dir",
]

DEVELOPMENT_MARKER = "DEVELOPMENT IDENTITY - NOT FOR PRODUCTION"
"""Organisational unit of every development certificate."""

DEVELOPMENT_ORGANIZATION = "provenance-kit development identity"
"""Organisation of every development certificate: C2PA reports show the issuer's
organisation and the signer's common name, so the label travels with the file."""

_log = logging.getLogger(__name__)

PASSPHRASE_ENV = "PROVENANCE_KEY_PASSPHRASE"
"""Environment variable the CLI reads a key passphrase from (never from argv)."""

KEY_FILE = "signing-key.pem"
CHAIN_FILE = "signing-chain.pem"
ROOT_FILE = "root-ca.pem"
META_FILE = "identity.json"
CSR_FILE = "signing-request.csr"
_IDENTITY_FILES = {KEY_FILE, CHAIN_FILE, ROOT_FILE, META_FILE, CSR_FILE}

# documentSigning is what C2PA 2.x asks of claim signers; emailProtection keeps
# older validators (and the reference implementation's default EKU list) happy.
_DOCUMENT_SIGNING = cert_profile.DOCUMENT_SIGNING


class SigningAlgorithm(str, Enum):
    """COSE signature algorithms C2PA allows, each tied to one key type.

    ``SigningAlgorithm("ES256")`` works too; an unknown name raises
    :class:`~provenance.errors.InvalidChoiceError` (a ``UsageError`` and a ``ValueError``).
    """

    ES256 = "es256"
    """ECDSA with SHA-256 on an EC P-256 key."""
    ES384 = "es384"
    """ECDSA with SHA-384 on an EC P-384 key."""
    ES512 = "es512"
    """ECDSA with SHA-512 on an EC P-521 key."""
    PS256 = "ps256"
    """RSASSA-PSS with SHA-256 on an RSA key of 2048 bits or more."""
    ED25519 = "ed25519"
    """EdDSA on an Ed25519 key."""

    @classmethod
    def _missing_(cls, value: object) -> SigningAlgorithm:
        if isinstance(value, str):
            for member in cls:
                if member.value == value.strip().lower():
                    return member
        names = ", ".join(a.value for a in cls)
        raise InvalidChoiceError(f"unknown signing algorithm {value!r} (choose one of: {names})")


SignCallback = Callable[[bytes], bytes]
PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey


@dataclass(frozen=True)
class IdentityPaths:
    """Where an identity's files are."""

    folder: Path
    key: Path
    chain: Path
    root: Path | None


@dataclass(frozen=True)
class Identity:
    """A certificate chain plus a way to sign with the matching private key.

    ``sign`` receives the exact bytes C2PA needs signed and returns the
    signature; the private key itself never leaves the callback.
    """

    certificate_chain: tuple[x509.Certificate, ...]
    algorithm: SigningAlgorithm
    sign: SignCallback = field(repr=False)
    timestamp_url: str | None = None

    @classmethod
    def from_callback(
        cls,
        sign: SignCallback,
        certificate_chain_pem: bytes | str,
        algorithm: SigningAlgorithm | str,
        *,
        timestamp_url: str | None = None,
        self_test: bool = True,
    ) -> Identity:
        """An identity whose key is held elsewhere (an HSM, a cloud KMS).

        ``sign(data)`` must return the signature of ``data`` under the key of the
        chain's first certificate (ECDSA as DER or raw r||s). With ``self_test``
        (the default) it signs one probe now and checks it against the
        certificate, so a callback wired to the wrong key fails here with
        :class:`~provenance.errors.KeyMismatchError` instead of producing
        credentials no validator accepts. The algorithm must be the one the
        certificate's key signs with (ES256 for P-256, ES384 for P-384, ES512
        for P-521, PS256 for RSA, Ed25519), else
        :class:`~provenance.errors.AlgorithmMismatchError`.
        """
        if not callable(sign):
            raise UsageError(f"sign must be a function that signs bytes, not {type(sign).__name__}")
        chain = _parse_chain(_as_bytes(certificate_chain_pem, "certificate_chain_pem"), "certificate chain")
        alg = _parse_algorithm(algorithm)
        # Checked even without the self-test: a key type the algorithm cannot
        # describe makes every signature invalid, whatever the callback does.
        check_algorithm_fits(chain[0].public_key(), alg)
        _check_timestamp_url(timestamp_url)
        identity = cls(chain, alg, sign, timestamp_url)
        if self_test:
            verify_signature_roundtrip(identity)
        return identity

    def __post_init__(self) -> None:
        # Built directly (not through the loaders) the same rules hold: a chain,
        # a known algorithm that fits the certificate's key, a callable signer.
        if not self.certificate_chain or not all(
            isinstance(c, x509.Certificate) for c in self.certificate_chain
        ):
            raise UsageError("certificate_chain must be a non-empty tuple of x509 certificates")
        object.__setattr__(self, "algorithm", _parse_algorithm(self.algorithm))
        if not callable(self.sign):
            raise UsageError(f"sign must be a function that signs bytes, not {type(self.sign).__name__}")
        check_algorithm_fits(self.certificate_chain[0].public_key(), self.algorithm)

    @property
    def certificate(self) -> x509.Certificate:
        """The signing (end-entity) certificate."""
        return self.certificate_chain[0]

    @property
    def is_development(self) -> bool:
        """True for identities made by :func:`create_development_identity`."""
        return is_development_certificate(self.certificate)

    @property
    def subject(self) -> str:
        return self.certificate.subject.rfc4514_string()

    def chain_pem(self) -> str:
        """The chain as PEM text, leaf first, as the C2PA library wants it."""
        return "".join(
            c.public_bytes(serialization.Encoding.PEM).decode("ascii") for c in self.certificate_chain
        )

    def check_valid_now(self, now: _dt.datetime | None = None) -> None:
        """Raise :class:`CertificateExpiredError` unless the leaf is valid at ``now``."""
        moment = now or _dt.datetime.now(_dt.timezone.utc)
        cert = self.certificate
        if moment < cert.not_valid_before_utc:
            raise CertificateExpiredError(
                f"signing certificate is not valid until {cert.not_valid_before_utc:%Y-%m-%d}"
            )
        if moment > cert.not_valid_after_utc:
            raise CertificateExpiredError(
                f"signing certificate expired on {cert.not_valid_after_utc:%Y-%m-%d}"
            )


def is_development_certificate(cert: x509.Certificate) -> bool:
    units = cert.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)
    return any(a.value == DEVELOPMENT_MARKER for a in units)


def default_identity_dir() -> Path:
    """``$PROVENANCE_HOME/identity`` if set, else the user config directory."""
    home = os.environ.get("PROVENANCE_HOME")
    if home:
        return Path(home).expanduser() / "identity"
    import platformdirs

    return Path(platformdirs.user_config_dir("provenance")) / "identity"


def create_development_identity(
    folder: str | os.PathLike[str] | None = None,
    *,
    algorithm: SigningAlgorithm | str = SigningAlgorithm.ES256,
    common_name: str = "Development signer (not for production)",
    valid_days: int = 365,
    overwrite: bool = False,
) -> IdentityPaths:
    """Create a root CA and a C2PA signing certificate for development.

    The certificates carry the extensions C2PA validators require (key usage
    digitalSignature, EKU documentSigning/emailProtection, CA/leaf basic
    constraints, key identifiers) and the organisational unit
    :data:`DEVELOPMENT_MARKER`. The root's private key is discarded once the
    leaf is issued: nothing else can be issued under it. The signing key is
    written with mode 0600.
    """
    target = Path(folder) if folder is not None else default_identity_dir()
    alg = _parse_algorithm(algorithm)
    if not isinstance(valid_days, int) or valid_days < 1:
        raise UsageError(f"valid_days must be a whole number of days, at least 1 (got {valid_days!r})")
    key_path, chain_path, root_path = target / KEY_FILE, target / CHAIN_FILE, target / ROOT_FILE
    staging = _staging_folder(target, overwrite)

    now = _dt.datetime.now(_dt.timezone.utc) - _dt.timedelta(minutes=5)
    root_key = _generate_key(alg)
    root_name = _name("Provenance development root CA")
    root = (
        _base_builder(root_name, root_name, root_key.public_key(), now, valid_days * 2)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(cert_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(root_key.public_key()), critical=False)
        .sign(root_key, _hash_for(alg))
    )
    leaf_key = _generate_key(alg)
    leaf = (
        _base_builder(_name(common_name), root_name, leaf_key.public_key(), now, valid_days)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(cert_sign=False), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([_DOCUMENT_SIGNING, ExtendedKeyUsageOID.EMAIL_PROTECTION]),
            critical=False,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(leaf_key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(root_key.public_key()),
            critical=False,
        )
        .sign(root_key, _hash_for(alg))
    )
    key_pem = leaf_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    meta = {"algorithm": alg.value, "development": True, "created": now.isoformat()}
    try:
        atomic_write(staging / KEY_FILE, key_pem, mode=0o600)
        atomic_write(staging / CHAIN_FILE, leaf.public_bytes(serialization.Encoding.PEM))
        atomic_write(staging / ROOT_FILE, root.public_bytes(serialization.Encoding.PEM))
        atomic_write(staging / META_FILE, json.dumps(meta, indent=2).encode())
        _swap_into_place(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return IdentityPaths(target, key_path, chain_path, root_path)


def _staging_folder(target: Path, overwrite: bool) -> Path:
    """A fresh sibling of ``target`` to write a new identity into, then swap into place.

    Writing beside and renaming means a crash never leaves a key next to a
    chain it does not match. The swap replaces the whole folder, so a folder
    holding anything but identity files is refused: ``--dir ~/Documents``
    must never delete documents.
    """
    if (target / KEY_FILE).exists() and not overwrite:
        raise IdentityError(f"{target}: an identity already exists (use --force to replace it)")
    if target.exists() and not target.is_dir():
        raise IdentityError(f"{target}: exists and is not a folder")
    if target.is_dir():
        others = sorted(p.name for p in target.iterdir() if p.name not in _IDENTITY_FILES)
        if others:
            raise IdentityError(
                f"{target}: the folder holds other files ({', '.join(others[:3])}); "
                "choose an empty or new folder for the identity"
            )
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    except OSError as exc:
        raise IdentityError(f"{target}: cannot create folder ({exc.strerror or exc})") from None


def _swap_into_place(staging: Path, target: Path) -> None:
    old = None
    if target.exists():
        old = target.with_name(f".{target.name}.old-{os.getpid()}")
        os.replace(target, old)
    os.replace(staging, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def load_identity(
    key_path: str | os.PathLike[str],
    chain_path: str | os.PathLike[str],
    *,
    passphrase: bytes | str | None = None,
    algorithm: SigningAlgorithm | str | None = None,
    timestamp_url: str | None = None,
) -> Identity:
    """Load a PEM private key and its PEM certificate chain (leaf first).

    The key may be encrypted; pass its ``passphrase`` (the CLI reads it from
    :data:`PASSPHRASE_ENV` or a prompt). The algorithm defaults to the one the
    key type implies (ES256/384/512 by curve, PS256 for RSA, Ed25519). The key
    must match the certificate, the algorithm must fit the key, and the
    certificate must be valid today.
    """
    key = _load_private_key(key_path, passphrase)
    chain = _parse_chain(_read_identity_file(chain_path, "certificate chain"), str(chain_path))
    alg = _parse_algorithm(algorithm) if algorithm is not None else _algorithm_for_key(key.public_key())
    _check_key_matches(key, chain[0], key_path, chain_path)
    check_algorithm_fits(chain[0].public_key(), alg)
    _check_timestamp_url(timestamp_url)
    identity = Identity(chain, alg, _local_signer(key, alg), timestamp_url)
    identity.check_valid_now()
    _log.debug(
        "identity %s: %s, %s, %d certificate(s), valid until %s",
        identity.subject,
        alg.value,
        "development" if identity.is_development else "production",
        len(chain),
        identity.certificate.not_valid_after_utc.date(),
    )
    return identity


def _load_private_key(key_path: str | os.PathLike[str], passphrase: bytes | str | None) -> PrivateKey:
    """A PEM private key C2PA can sign with, decrypted with ``passphrase`` if it is encrypted."""
    if passphrase is not None and not isinstance(passphrase, str | bytes):
        raise UsageError(f"the passphrase must be text or bytes, not {type(passphrase).__name__}")
    key_pem = _read_identity_file(key_path, "private key")
    secret = passphrase.encode() if isinstance(passphrase, str) else passphrase
    try:
        key = serialization.load_pem_private_key(key_pem, password=secret)
    except TypeError:
        if secret is None:
            raise WrongPassphraseError(
                f"{key_path}: the private key is encrypted; set {PASSPHRASE_ENV} "
                "or run interactively to be asked for the passphrase"
            ) from None
        raise IdentityError(f"{key_path}: the private key is not encrypted; drop the passphrase") from None
    except ValueError as exc:
        # A wrong passphrase sometimes decrypts to valid padding (about 1 in 256 for
        # AES-CBC) and then fails as undecodable key data: for an encrypted PEM any
        # failure with a passphrase given is a wrong passphrase.
        encrypted = b"ENCRYPTED PRIVATE KEY" in key_pem or b"Proc-Type: 4,ENCRYPTED" in key_pem
        if secret is not None and encrypted:
            raise WrongPassphraseError(f"{key_path}: wrong passphrase for the private key") from None
        if (secret is not None and "password" in str(exc).lower()) or "decrypt" in str(exc).lower():
            raise WrongPassphraseError(f"{key_path}: wrong passphrase for the private key") from None
        raise IdentityError(f"{key_path}: not a PEM private key") from None
    except UnsupportedAlgorithm:
        raise IdentityError(f"{key_path}: unsupported private key type") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey):
        raise IdentityError(f"{key_path}: key type {type(key).__name__} cannot sign C2PA claims")
    return key


def load_identity_dir(
    folder: str | os.PathLike[str] | None = None,
    *,
    passphrase: bytes | str | None = None,
    timestamp_url: str | None = None,
) -> Identity:
    """Load the identity stored in ``folder`` (default: :func:`default_identity_dir`)."""
    target = Path(folder) if folder is not None else default_identity_dir()
    if not (target / KEY_FILE).exists():
        raise IdentityNotFoundError(
            f"no signing identity in {target}; create one with 'provenance keys init'"
        )
    if not (target / CHAIN_FILE).exists() and (target / CSR_FILE).exists():
        raise IdentityNotFoundError(
            f"{target} holds a key and a certificate request ({CSR_FILE}) but no certificate yet: "
            f"have a CA sign the request, then run 'provenance keys import CHAIN.pem --dir {target}'"
        )
    return load_identity(
        target / KEY_FILE, target / CHAIN_FILE, passphrase=passphrase, timestamp_url=timestamp_url
    )


def identity_paths(folder: str | os.PathLike[str] | None = None) -> IdentityPaths:
    target = Path(folder) if folder is not None else default_identity_dir()
    root = target / ROOT_FILE
    return IdentityPaths(target, target / KEY_FILE, target / CHAIN_FILE, root if root.exists() else None)


# --- production identities: a key and a CSR, then the CA's chain ------------------


@dataclass(frozen=True)
class SigningRequest:
    """What :func:`create_signing_request` wrote."""

    folder: Path
    key: Path
    csr: Path
    encrypted: bool
    pem: bytes
    """The certificate signing request (PEM), to send to the CA."""


def create_signing_request(
    folder: str | os.PathLike[str] | None = None,
    *,
    common_name: str,
    organization: str,
    country: str | None = None,
    organizational_unit: str | None = None,
    email: str | None = None,
    algorithm: SigningAlgorithm | str = SigningAlgorithm.ES256,
    passphrase: bytes | str | None = None,
    overwrite: bool = False,
) -> SigningRequest:
    """Make a private key and a certificate signing request for a C2PA claim signer.

    The request asks for what the C2PA certificate profile requires: key
    usage digitalSignature (critical), extended key usage documentSigning and
    c2pa-kp-claimSigning (plus emailProtection and the address as a subject
    alternative name when ``email`` is given), an end-entity certificate, and
    a subject naming the organisation (O) and signer (CN); validators show
    the organisation as who signed. The key is written with mode 0600,
    encrypted when ``passphrase`` is given. Install the chain the CA returns
    with :func:`import_certificate_chain`.
    """
    target = Path(folder) if folder is not None else default_identity_dir()
    alg = _parse_algorithm(algorithm)
    subject = _production_subject(common_name, organization, country, organizational_unit, email)
    if passphrase is not None and (not isinstance(passphrase, str | bytes) or not passphrase):
        raise UsageError("the passphrase must be non-empty text or bytes")
    secret = passphrase.encode() if isinstance(passphrase, str) else passphrase
    purposes = [_DOCUMENT_SIGNING, cert_profile.C2PA_CLAIM_SIGNING]
    if email:
        purposes.append(ExtendedKeyUsageOID.EMAIL_PROTECTION)
    key = _generate_key(alg)
    builder = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(subject)
        .add_extension(_key_usage(cert_sign=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage(purposes), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
    )
    if email:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.RFC822Name(email)]), critical=False
        )
    csr = builder.sign(key, _hash_for(alg))
    csr_pem = csr.public_bytes(serialization.Encoding.PEM)
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(secret) if secret else serialization.NoEncryption()
    )
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)
    meta = {
        "algorithm": alg.value,
        "development": False,
        "state": "awaiting certificate",
        "subject": subject.rfc4514_string(),
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    staging = _staging_folder(target, overwrite)
    try:
        atomic_write(staging / KEY_FILE, key_pem, mode=0o600)
        atomic_write(staging / CSR_FILE, csr_pem)
        atomic_write(staging / META_FILE, json.dumps(meta, indent=2).encode())
        _swap_into_place(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    _log.debug("certificate request for %s (%s) in %s", subject.rfc4514_string(), alg.value, target)
    return SigningRequest(target, target / KEY_FILE, target / CSR_FILE, secret is not None, csr_pem)


def _production_subject(
    common_name: object,
    organization: object,
    country: object,
    organizational_unit: object,
    email: object,
) -> x509.Name:
    for value, what in [(common_name, "common name (CN)"), (organization, "organization (O)")]:
        if not isinstance(value, str) or not value.strip():
            raise UsageError(f"the {what} is required")
        if len(value) > 64:
            raise UsageError(f"the {what} is longer than 64 characters")
    attributes = []
    if country is not None:
        if not isinstance(country, str) or len(country) != 2 or not country.isalpha():
            raise UsageError(f"country must be a two-letter ISO 3166 code such as 'DE', not {country!r}")
        attributes.append(x509.NameAttribute(NameOID.COUNTRY_NAME, country.upper()))
    attributes.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, str(organization).strip()))
    if organizational_unit is not None:
        if not isinstance(organizational_unit, str) or not organizational_unit.strip():
            raise UsageError("the organizational unit (OU) must be non-empty text")
        attributes.append(x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, organizational_unit.strip()))
    attributes.append(x509.NameAttribute(NameOID.COMMON_NAME, str(common_name).strip()))
    if email is not None and (not isinstance(email, str) or "@" not in email or " " in email):
        raise UsageError(f"not an email address: {email!r}")
    return x509.Name(attributes)


@dataclass(frozen=True)
class ImportedIdentity:
    """What :func:`import_certificate_chain` installed, and what it noticed."""

    paths: IdentityPaths
    subject: str
    issuer: str
    algorithm: SigningAlgorithm
    not_after: _dt.datetime
    certificates: int
    """Certificates in the signing chain (leaf and intermediates; the root is kept apart)."""
    root_included: bool
    reordered: bool
    notes: tuple[str, ...]


def import_certificate_chain(
    chain: str | os.PathLike[str] | bytes,
    folder: str | os.PathLike[str] | None = None,
    *,
    passphrase: bytes | str | None = None,
    now: _dt.datetime | None = None,
) -> ImportedIdentity:
    """Check a CA-issued chain against the folder's private key and install it.

    ``chain`` is a file (PEM certificates, or PKCS#7 in PEM or DER, as CAs
    deliver them) or its bytes. The chain must contain the certificate for
    the key made by :func:`create_signing_request` (the order does not
    matter: it is rebuilt leaf first, each certificate verified against its
    issuer), every certificate must be valid now, and the leaf must meet the
    C2PA certificate profile (see :mod:`provenance._internal.cert_profile`).
    A self-signed root, if present, is written to ``root-ca.pem`` (for
    verifiers to trust) and left out of the signing chain, as C2PA asks.
    The folder is then usable with ``--identity`` / :func:`load_identity_dir`.
    """
    target = Path(folder) if folder is not None else default_identity_dir()
    moment = now or _dt.datetime.now(_dt.timezone.utc)
    if not (target / KEY_FILE).exists():
        raise IdentityNotFoundError(
            f"no private key in {target}; make one with 'provenance keys csr' first"
        )
    key = _load_private_key(target / KEY_FILE, passphrase)
    if isinstance(chain, bytes | bytearray):
        data, name = bytes(chain), "<certificate chain>"
    else:
        data, name = _read_identity_file(chain, "certificate chain"), str(chain)
    certs = _read_certificates(data, name)
    ordered, root, reordered = _build_chain(certs, key, name, target)
    for cert in (*ordered, *([root] if root else [])):
        cert_profile.check_validity(cert, moment)
    leaf = ordered[0]
    notes = cert_profile.check_signing_certificate(leaf)
    for ca in ordered[1:] + ([root] if root else []):
        cert_profile.check_ca_certificate(ca)
    alg = _algorithm_for_key(leaf.public_key())
    identity = Identity(tuple(ordered), alg, _local_signer(key, alg))
    verify_signature_roundtrip(identity)
    if root is None:
        notes.append(
            f"the chain stops at '{cert_profile.label(ordered[-1])}'; verifiers need its issuer "
            f"'{ordered[-1].issuer.rfc4514_string()}' as a trust anchor"
        )
    _install_chain(target, ordered, root, alg)
    return ImportedIdentity(
        paths=identity_paths(target),
        subject=leaf.subject.rfc4514_string(),
        issuer=leaf.issuer.rfc4514_string(),
        algorithm=alg,
        not_after=leaf.not_valid_after_utc,
        certificates=len(ordered),
        root_included=root is not None,
        reordered=reordered,
        notes=tuple(notes),
    )


def _read_certificates(data: bytes, name: str) -> list[x509.Certificate]:
    try:
        if b"-----BEGIN PKCS7-----" in data:
            certs = pkcs7.load_pem_pkcs7_certificates(data)
        elif b"-----BEGIN" in data:
            certs = x509.load_pem_x509_certificates(data)
        else:
            try:
                certs = [x509.load_der_x509_certificate(data)]
            except ValueError:
                certs = pkcs7.load_der_pkcs7_certificates(data)
    except ValueError:
        raise IdentityError(
            f"{name}: not a certificate chain (PEM certificates or PKCS#7 are accepted)"
        ) from None
    if not certs:
        raise IdentityError(f"{name}: contains no certificate")
    return list(certs)


def _issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    if cert.issuer != issuer.subject:
        return False
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
        return False
    return True


def _build_chain(
    certs: list[x509.Certificate], key: PrivateKey, name: str, folder: Path
) -> tuple[list[x509.Certificate], x509.Certificate | None, bool]:
    """Leaf first, each followed by its verified issuer; the self-signed root apart."""
    fmt = serialization.PublicFormat.SubjectPublicKeyInfo
    mine = key.public_key().public_bytes(serialization.Encoding.DER, fmt)
    leaves = [c for c in certs if c.public_key().public_bytes(serialization.Encoding.DER, fmt) == mine]
    if not leaves:
        raise KeyMismatchError(
            f"{name}: none of its {len(certs)} certificate(s) is for the private key in {folder} "
            "(was the request made with another key?)"
        )
    path = [leaves[0]]
    unused = [c for c in certs if c is not leaves[0]]
    while path[-1].subject != path[-1].issuer:
        issuer = next((c for c in unused if _issued_by(path[-1], c)), None)
        if issuer is None:
            break
        path.append(issuer)
        unused.remove(issuer)
    stray = [c for c in unused if c not in path]  # a certificate given twice is not stray
    if stray:
        raise CertificateProfileError(
            f"{name}: certificate '{cert_profile.label(stray[0])}' is not part of the signing "
            f"certificate's chain ({' <- '.join(cert_profile.label(c) for c in path)})"
        )
    distinct: list[x509.Certificate] = []
    for cert in certs:
        if cert not in distinct:
            distinct.append(cert)
    reordered = distinct != path
    root = None
    if len(path) > 1 and path[-1].subject == path[-1].issuer and _issued_by(path[-1], path[-1]):
        root = path.pop()
    return path, root, reordered


def _install_chain(
    target: Path, ordered: list[x509.Certificate], root: x509.Certificate | None, alg: SigningAlgorithm
) -> None:
    meta_path = target / META_FILE
    try:
        meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
    except (OSError, ValueError):
        meta = {}
    meta.update(
        {
            "algorithm": alg.value,
            "development": False,
            "state": "ready",
            "subject": ordered[0].subject.rfc4514_string(),
            "imported": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        }
    )
    pem = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in ordered)
    atomic_write(meta_path, json.dumps(meta, indent=2).encode())
    if root is not None:
        atomic_write(target / ROOT_FILE, root.public_bytes(serialization.Encoding.PEM))
    else:
        # A root from an earlier chain would mislead whoever trusts it.
        (target / ROOT_FILE).unlink(missing_ok=True)
    # The chain goes last: its presence is what makes the folder a usable identity.
    atomic_write(target / CHAIN_FILE, pem)
    _log.debug("installed %d certificate(s) for %s in %s", len(ordered), ordered[0].subject, target)


# --- plumbing -----------------------------------------------------------------


def _as_bytes(value: object, what: str) -> bytes:
    if isinstance(value, str):
        # PEM is ASCII; anything else cannot be a certificate chain.
        return value.encode("ascii", errors="replace")
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    raise UsageError(f"{what} must be PEM text or bytes, not {type(value).__name__}")


def _parse_algorithm(value: object) -> SigningAlgorithm:
    if isinstance(value, SigningAlgorithm):
        return value
    if not isinstance(value, str):
        names = ", ".join(a.value for a in SigningAlgorithm)
        raise InvalidChoiceError(f"unknown signing algorithm {value!r} (choose one of: {names})")
    return SigningAlgorithm(value)


def _check_timestamp_url(url: object) -> None:
    if url is None:
        return
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise UsageError(f"timestamp authority URL must start with http:// or https://: {url!r}")


def _read_identity_file(path: str | os.PathLike[str], what: str) -> bytes:
    if not isinstance(path, str | os.PathLike):
        raise UsageError(f"the {what} path must be a file path, not {type(path).__name__}")
    try:
        return Path(path).read_bytes()
    except FileNotFoundError:
        raise IdentityNotFoundError(f"{path}: {what} not found") from None
    except OSError as exc:
        raise IdentityError(f"{path}: cannot read {what} ({exc.strerror or exc})") from None


def _parse_chain(pem: bytes, name: str) -> tuple[x509.Certificate, ...]:
    try:
        chain = tuple(x509.load_pem_x509_certificates(pem))
    except ValueError:
        raise IdentityError(f"{name}: not a PEM certificate chain") from None
    if not chain:
        raise IdentityError(f"{name}: contains no certificate")
    return chain


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, DEVELOPMENT_ORGANIZATION),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, DEVELOPMENT_MARKER),
        ]
    )


def _base_builder(
    subject: x509.Name,
    issuer: x509.Name,
    public_key: ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey,
    not_before: _dt.datetime,
    days: int,
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_before + _dt.timedelta(days=days))
    )


def _key_usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not cert_sign,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _generate_key(alg: SigningAlgorithm) -> PrivateKey:
    if alg is SigningAlgorithm.ES256:
        return ec.generate_private_key(ec.SECP256R1())
    if alg is SigningAlgorithm.ES384:
        return ec.generate_private_key(ec.SECP384R1())
    if alg is SigningAlgorithm.ES512:
        return ec.generate_private_key(ec.SECP521R1())
    if alg is SigningAlgorithm.PS256:
        return rsa.generate_private_key(public_exponent=65537, key_size=3072)
    return ed25519.Ed25519PrivateKey.generate()


def _hash_for(alg: SigningAlgorithm) -> hashes.SHA256 | hashes.SHA384 | hashes.SHA512 | None:
    if alg is SigningAlgorithm.ED25519:
        return None  # Ed25519 signs the message itself
    if alg is SigningAlgorithm.ES384:
        return hashes.SHA384()
    if alg is SigningAlgorithm.ES512:
        return hashes.SHA512()
    return hashes.SHA256()


_BY_CURVE = {
    "secp256r1": SigningAlgorithm.ES256,
    "secp384r1": SigningAlgorithm.ES384,
    "secp521r1": SigningAlgorithm.ES512,
}
_CURVE_NAMES = {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}
_MIN_RSA_BITS = 2048  # the C2PA certificate profile's floor


def describe_key(public: object) -> str:
    """``"an EC P-256 key"``, ``"an RSA 3072-bit key"``, ``"an Ed25519 key"``."""
    if isinstance(public, ec.EllipticCurvePublicKey):
        return f"an EC {_CURVE_NAMES.get(public.curve.name, public.curve.name)} key"
    if isinstance(public, rsa.RSAPublicKey):
        return f"an RSA {public.key_size}-bit key"
    if isinstance(public, ed25519.Ed25519PublicKey):
        return "an Ed25519 key"
    return f"a {type(public).__name__}"


def _algorithm_for_key(public: object) -> SigningAlgorithm:
    """The one C2PA algorithm ``public`` signs with; refuses keys C2PA does not allow."""
    if isinstance(public, ed25519.Ed25519PublicKey):
        return SigningAlgorithm.ED25519
    if isinstance(public, rsa.RSAPublicKey):
        if public.key_size < _MIN_RSA_BITS:
            raise IdentityError(
                f"{describe_key(public)} is too short for C2PA (at least {_MIN_RSA_BITS} bits)"
            )
        return SigningAlgorithm.PS256
    if isinstance(public, ec.EllipticCurvePublicKey):
        if public.curve.name not in _BY_CURVE:
            raise IdentityError(
                f"elliptic curve {public.curve.name} is not allowed by C2PA (P-256, P-384 or P-521)"
            )
        return _BY_CURVE[public.curve.name]
    raise IdentityError(f"{describe_key(public)} cannot sign C2PA claims (EC, RSA or Ed25519 only)")


def check_algorithm_fits(public: object, algorithm: SigningAlgorithm) -> None:
    """Refuse an algorithm the certificate's key does not sign with.

    COSE ties each algorithm to one key type (ES256 is ECDSA on P-256 with
    SHA-256, and so on); a mismatch makes every signature invalid, so it is
    refused before anything is signed.

        >>> from cryptography.hazmat.primitives.asymmetric import ec
        >>> key = ec.generate_private_key(ec.SECP256R1()).public_key()
        >>> check_algorithm_fits(key, SigningAlgorithm.ES256)
        >>> check_algorithm_fits(key, SigningAlgorithm.PS256)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        provenance.errors.AlgorithmMismatchError: ... an EC P-256 key, which signs with ES256, not PS256
    """
    expected = _algorithm_for_key(public)
    if algorithm is not expected:
        raise AlgorithmMismatchError(
            f"the certificate holds {describe_key(public)}, which signs with "
            f"{expected.value.upper()}, not {algorithm.value.upper()}"
        )


def _check_key_matches(
    key: PrivateKey,
    cert: x509.Certificate,
    key_path: str | os.PathLike[str],
    chain_path: str | os.PathLike[str],
) -> None:
    fmt = serialization.PublicFormat.SubjectPublicKeyInfo
    mine = key.public_key().public_bytes(serialization.Encoding.DER, fmt)
    theirs = cert.public_key().public_bytes(serialization.Encoding.DER, fmt)
    if mine != theirs:
        raise KeyMismatchError(f"{key_path} does not belong to the first certificate of {chain_path}")


def _local_signer(key: PrivateKey, alg: SigningAlgorithm) -> SignCallback:
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return key.sign
    if isinstance(key, rsa.RSAPrivateKey):
        pss = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)

        def sign_rsa(data: bytes) -> bytes:
            return key.sign(data, pss, hashes.SHA256())

        return sign_rsa
    digest = _hash_for(alg) or hashes.SHA256()  # never None here: the algorithm fits the EC key

    def sign_ec(data: bytes) -> bytes:
        return key.sign(data, ec.ECDSA(digest))

    return sign_ec


def verify_signature_roundtrip(identity: Identity) -> None:
    """Sign a probe with the identity and check it under the certificate.

    Catches a callback signer wired to the wrong key before it produces
    credentials no validator accepts.
    """
    probe = b"provenance-kit identity self-test"
    public = identity.certificate.public_key()
    check_algorithm_fits(public, identity.algorithm)
    try:
        signature = identity.sign(probe)
    except Exception as exc:  # the callback is user code: report what it raised
        raise IdentityError(f"the signer callback failed: {type(exc).__name__}: {exc}") from None
    if not isinstance(signature, bytes | bytearray) or not signature:
        raise IdentityError(f"the signer callback returned {type(signature).__name__}, not signature bytes")
    try:
        if isinstance(public, ed25519.Ed25519PublicKey):
            public.verify(signature, probe)
        elif isinstance(public, rsa.RSAPublicKey):
            public.verify(
                signature,
                probe,
                padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32),
                hashes.SHA256(),
            )
        elif isinstance(public, ec.EllipticCurvePublicKey):
            digest = _hash_for(identity.algorithm) or hashes.SHA256()  # the algorithm fits: ES*
            public.verify(_der_ecdsa(bytes(signature), public), probe, ec.ECDSA(digest))
        else:
            raise IdentityError(f"unsupported certificate key type {type(public).__name__}")
    except InvalidSignature:
        raise KeyMismatchError(
            "the signer's signatures do not verify under its certificate (wrong key?)"
        ) from None


def _der_ecdsa(signature: bytes, public: ec.EllipticCurvePublicKey) -> bytes:
    """DER form of an ECDSA signature given as DER or as raw r||s (COSE, most KMSes)."""
    size = (public.curve.key_size + 7) // 8
    try:
        utils.decode_dss_signature(signature)
        return signature
    except ValueError:
        pass
    if len(signature) == 2 * size:
        r = int.from_bytes(signature[:size], "big")
        s = int.from_bytes(signature[size:], "big")
        return utils.encode_dss_signature(r, s)
    return signature
