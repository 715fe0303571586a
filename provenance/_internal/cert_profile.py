"""The C2PA certificate profile, checked before a CA-issued chain is installed.

What a claim signing certificate needs (C2PA specification, "X.509
Certificates" / "Certificate Profiles"; the reference implementation,
c2pa-rs ``check_certificate_profile``, enforces the same points at validation
time, so a certificate that fails here yields credentials every validator
rejects):

- X.509 v3, valid now; signed with ECDSA (SHA-256/384/512), RSA PKCS#1 v1.5
  (SHA-256/384/512), RSASSA-PSS or Ed25519; an EC key on P-256, P-384 or
  P-521, an RSA key of at least 2048 bits, or an Ed25519 key;
- key usage with ``digitalSignature`` (and the extension marked critical);
- extended key usage present, without ``anyExtendedKeyUsage``, naming a claim
  signing purpose: id-kp-documentSigning (1.3.6.1.5.5.7.3.36),
  id-kp-emailProtection (1.3.6.1.5.5.7.3.4) or c2pa-kp-claimSigning
  (1.3.6.1.4.1.62558.2.1), and not mixed with timeStamping / OCSPSigning;
- an end-entity certificate (not a CA), with an authority key identifier and
  no issuer/subject unique identifiers;
- CA certificates above it: basic constraints CA, ``keyCertSign``, a subject
  key identifier.

    >>> sorted(CLAIM_SIGNING_EKUS.values())
    ['Microsoft C2PA signing', 'c2pa-kp-claimSigning', 'id-kp-documentSigning', 'id-kp-emailProtection']
"""

from __future__ import annotations

import datetime as dt

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, SignatureAlgorithmOID

from provenance.errors import CertificateExpiredError, CertificateProfileError

__all__ = [
    "C2PA_CLAIM_SIGNING",
    "CLAIM_SIGNING_EKUS",
    "DOCUMENT_SIGNING",
    "check_ca_certificate",
    "check_signing_certificate",
    "check_validity",
    "label",
]

DOCUMENT_SIGNING = x509.ObjectIdentifier("1.3.6.1.5.5.7.3.36")
"""id-kp-documentSigning (RFC 9336)."""
C2PA_CLAIM_SIGNING = x509.ObjectIdentifier("1.3.6.1.4.1.62558.2.1")
"""c2pa-kp-claimSigning, the C2PA's own purpose."""
_MS_C2PA_SIGNING = x509.ObjectIdentifier("1.3.6.1.4.1.311.76.59.1.9")

CLAIM_SIGNING_EKUS = {
    DOCUMENT_SIGNING: "id-kp-documentSigning",
    ExtendedKeyUsageOID.EMAIL_PROTECTION: "id-kp-emailProtection",
    C2PA_CLAIM_SIGNING: "c2pa-kp-claimSigning",
    _MS_C2PA_SIGNING: "Microsoft C2PA signing",
}
"""Extended key usages that make a certificate a C2PA claim signer."""

_SERVICE_EKUS = {ExtendedKeyUsageOID.TIME_STAMPING, ExtendedKeyUsageOID.OCSP_SIGNING}

_SIGNATURE_ALGORITHMS = {
    SignatureAlgorithmOID.ECDSA_WITH_SHA256,
    SignatureAlgorithmOID.ECDSA_WITH_SHA384,
    SignatureAlgorithmOID.ECDSA_WITH_SHA512,
    SignatureAlgorithmOID.RSA_WITH_SHA256,
    SignatureAlgorithmOID.RSA_WITH_SHA384,
    SignatureAlgorithmOID.RSA_WITH_SHA512,
    SignatureAlgorithmOID.RSASSA_PSS,
    SignatureAlgorithmOID.ED25519,
}


def label(cert: x509.Certificate) -> str:
    """A certificate's subject as people read it."""
    return cert.subject.rfc4514_string() or "(empty subject)"


def check_validity(cert: x509.Certificate, now: dt.datetime) -> None:
    if now < cert.not_valid_before_utc:
        raise CertificateExpiredError(
            f"certificate '{label(cert)}' is not valid until {cert.not_valid_before_utc:%Y-%m-%d %H:%M} UTC"
        )
    if now > cert.not_valid_after_utc:
        raise CertificateExpiredError(
            f"certificate '{label(cert)}' expired on {cert.not_valid_after_utc:%Y-%m-%d}"
        )


def _common(cert: x509.Certificate) -> None:
    if cert.version is not x509.Version.v3:
        raise CertificateProfileError(f"certificate '{label(cert)}' is not X.509 v3")
    if cert.signature_algorithm_oid not in _SIGNATURE_ALGORITHMS:
        name = getattr(cert.signature_algorithm_oid, "_name", cert.signature_algorithm_oid.dotted_string)
        raise CertificateProfileError(
            f"certificate '{label(cert)}' is signed with {name}, which C2PA does not allow "
            "(ECDSA, RSA or RSASSA-PSS with SHA-256/384/512, or Ed25519)"
        )


def _extension(
    cert: x509.Certificate, kind: type[x509.ExtensionType]
) -> x509.Extension[x509.ExtensionType] | None:
    try:
        return cert.extensions.get_extension_for_class(kind)
    except x509.ExtensionNotFound:
        return None
    except ValueError as exc:  # a malformed or duplicated extension
        raise CertificateProfileError(f"certificate '{label(cert)}' has invalid extensions ({exc})") from None


def _is_ca(cert: x509.Certificate) -> bool:
    found = _extension(cert, x509.BasicConstraints)
    return bool(found is not None and isinstance(found.value, x509.BasicConstraints) and found.value.ca)


def check_signing_certificate(cert: x509.Certificate) -> list[str]:
    """Refuse a leaf that cannot sign C2PA claims; return notes on what is tolerated."""
    notes: list[str] = []
    _common(cert)
    who = label(cert)
    if cert.subject == cert.issuer:
        raise CertificateProfileError(f"'{who}' is self-signed; C2PA needs a certificate issued by a CA")
    if _is_ca(cert):
        raise CertificateProfileError(f"'{who}' is a CA certificate; C2PA claims are signed by an end entity")
    usage = _extension(cert, x509.KeyUsage)
    if usage is None or not isinstance(usage.value, x509.KeyUsage):
        raise CertificateProfileError(f"'{who}' has no key usage extension (digitalSignature is required)")
    if not usage.value.digital_signature:
        raise CertificateProfileError(f"'{who}': its key usage does not include digitalSignature")
    if usage.value.key_cert_sign:
        raise CertificateProfileError(f"'{who}': an end-entity certificate must not have keyCertSign")
    if not usage.critical:
        notes.append("the key usage extension is not marked critical, as the C2PA profile asks")
    found = _extension(cert, x509.ExtendedKeyUsage)
    if found is None or not isinstance(found.value, x509.ExtendedKeyUsage):
        raise CertificateProfileError(
            f"'{who}' has no extended key usage; a C2PA signer needs one of: "
            + ", ".join(CLAIM_SIGNING_EKUS.values())
        )
    purposes = set(found.value)
    if ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE in purposes:
        raise CertificateProfileError(f"'{who}': anyExtendedKeyUsage is not allowed in a C2PA certificate")
    if not purposes & CLAIM_SIGNING_EKUS.keys():
        raise CertificateProfileError(
            f"'{who}' is not for claim signing: its extended key usage has none of "
            + ", ".join(CLAIM_SIGNING_EKUS.values())
        )
    if purposes & _SERVICE_EKUS:
        raise CertificateProfileError(
            f"'{who}' mixes timeStamping/OCSPSigning with signing purposes, which C2PA refuses"
        )
    if _extension(cert, x509.AuthorityKeyIdentifier) is None:
        raise CertificateProfileError(f"'{who}' has no authority key identifier, which C2PA requires")
    if not cert.subject.get_attributes_for_oid(x509.NameOID.ORGANIZATION_NAME):
        notes.append("the subject has no organization (O); validators show it as the signer's name")
    return notes


def check_ca_certificate(cert: x509.Certificate) -> None:
    """Refuse a certificate above the leaf that cannot issue certificates."""
    _common(cert)
    who = label(cert)
    if not _is_ca(cert):
        raise CertificateProfileError(f"'{who}' issues the chain's certificates but is not a CA")
    usage = _extension(cert, x509.KeyUsage)
    if usage is not None and isinstance(usage.value, x509.KeyUsage) and not usage.value.key_cert_sign:
        raise CertificateProfileError(f"'{who}': a CA certificate needs keyCertSign in its key usage")
    if _extension(cert, x509.SubjectKeyIdentifier) is None:
        raise CertificateProfileError(f"'{who}': a CA certificate needs a subject key identifier")
