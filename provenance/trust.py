"""Which signers a verifier trusts, and whether it may touch the network.

Trust the official C2PA trust list you downloaded, plus your own root::

    >>> from provenance.trust import TrustPolicy
    >>> policy = TrustPolicy()                  # trusts nobody, no network
    >>> policy.anchor_count, policy.allow_network
    (0, False)

``TrustPolicy.from_files(["C2PA-TRUST-LIST.pem", "my-root.pem"])`` loads PEM
files or bundles; with no anchors a file can at best be ``valid`` (intact but
from an unknown signer), never ``trusted``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from provenance.errors import FileError, InputNotFoundError

__all__ = ["ALLOWED_EKUS", "TrustPolicy"]

ALLOWED_EKUS: tuple[str, ...] = (
    "1.3.6.1.5.5.7.3.4",  # id-kp-emailProtection
    "1.3.6.1.5.5.7.3.36",  # id-kp-documentSigning
    "1.3.6.1.5.5.7.3.8",  # id-kp-timeStamping
    "1.3.6.1.5.5.7.3.9",  # id-kp-OCSPSigning
    "1.3.6.1.4.1.62558.2.1",  # c2pa-kp-claimSigning
)
"""Extended key usages a signing certificate may carry (C2PA 2.x, section 14)."""


@dataclass(frozen=True)
class TrustPolicy:
    """Trust anchors plus the network switch used for every verification.

    ``allow_network`` lets the C2PA library fetch remote manifests and check
    revocation over OCSP; it is off by default so verifying a file never
    reveals to anyone that it is being looked at.
    """

    anchors_pem: str = ""
    allow_network: bool = False

    @classmethod
    def from_files(
        cls, paths: Iterable[str | os.PathLike[str]], *, allow_network: bool = False
    ) -> TrustPolicy:
        """Load trust anchors from PEM files (single certificates or bundles)."""
        parts = [_load_anchor_file(Path(p)) for p in paths]
        return cls("".join(parts), allow_network)

    @property
    def anchor_count(self) -> int:
        if not self.anchors_pem:
            return 0
        return len(x509.load_pem_x509_certificates(self.anchors_pem.encode()))

    def c2pa_settings(self) -> dict[str, Any]:
        """The reference implementation's settings for this policy."""
        settings: dict[str, Any] = {
            "verify": {
                "verify_trust": True,
                "ocsp_fetch": self.allow_network,
                "remote_manifest_fetch": self.allow_network,
            }
        }
        if self.anchors_pem:
            settings["trust"] = {
                "trust_anchors": self.anchors_pem,
                "trust_config": "\n".join(ALLOWED_EKUS) + "\n",
            }
        return settings


def _load_anchor_file(path: Path) -> str:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise InputNotFoundError(f"{path}: trust anchor file not found") from None
    except OSError as exc:
        raise FileError(f"{path}: cannot read trust anchors ({exc.strerror or exc})") from None
    try:
        certs = x509.load_pem_x509_certificates(data)
    except ValueError:
        raise FileError(f"{path}: not a PEM certificate or bundle") from None
    # Re-encode so stray text between blocks never reaches the native parser.
    return "".join(c.public_bytes(serialization.Encoding.PEM).decode("ascii") for c in certs)
