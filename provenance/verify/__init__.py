"""Check a file's Content Credentials and its whole chain of custody.

    >>> from provenance.verify import verify_file
    >>> result = verify_file("../shared/c2pa-public-testfiles/image/jpeg/adobe-20220124-E-dat-CA.jpg")
    >>> result.state.value
    'invalid'
    >>> result.summary
    'This file was changed after it was signed: its content no longer matches its Content Credentials.'

Verification follows these steps (tagged ``[n]`` in the code):

1. Read the bytes and identify the format from the content, not the name.
2. Have the C2PA reference implementation (c2pa-python) parse and validate the
   manifest store under the :class:`~provenance.trust.TrustPolicy`: no
   network access unless the policy allows it.
3. Take the verdict from the reference implementation's validation state.
4. Walk the manifest tree: every ingredient, its relationship, its own state.
5. Collect the failed status codes.
6. Look for the invisible watermark; with credentials present, check that the
   soft binding they declare matches the watermark found in the pixels.
7. With no credentials but a watermark, look its identifier up in the
   manifest store and validate the recovered manifest.
8. Say it in one plain sentence.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from provenance._internal import c2pa_bridge
from provenance._internal.files import read_input
from provenance._internal.formats import require_signable
from provenance.trust import TrustPolicy
from provenance.verify._core import (
    SCHEMA_VERSION,
    ManifestReport,
    SignerInfo,
    State,
    StatusCode,
    evaluate_store,
)

__all__ = [
    "ManifestReport",
    "SignerInfo",
    "State",
    "StatusCode",
    "VerificationResult",
    "WatermarkReport",
    "verify_bytes",
    "verify_file",
]


@dataclass(frozen=True)
class WatermarkReport:
    """What the invisible watermark says, and whether it agrees with the credentials."""

    detected: bool
    payload: str | None = None
    algorithm: str | None = None
    confidence: float | None = None
    p_value: float | None = None
    bit_errors_corrected: int | None = None
    matches_manifest: bool | None = None
    known_to_store: bool | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "detected": self.detected,
            "payload": self.payload,
            "algorithm": self.algorithm,
            "confidence": self.confidence,
            "p_value": self.p_value,
            "bit_errors_corrected": self.bit_errors_corrected,
            "matches_manifest": self.matches_manifest,
            "known_to_store": self.known_to_store,
        }


@dataclass(frozen=True)
class VerificationResult:
    """Everything verification found, with a verdict and a plain-language summary."""

    state: State
    summary: str
    mime: str | None
    active_manifest: ManifestReport | None = None
    failures: tuple[StatusCode, ...] = ()
    remote_manifest_url: str | None = None
    embedded: bool = True
    watermark: WatermarkReport | None = None
    recovered: bool = False
    fingerprint_similarity: float | None = None
    warnings: tuple[str, ...] = field(default=())

    @property
    def intact(self) -> bool:
        """True for ``trusted`` and ``valid``."""
        return self.state in (State.TRUSTED, State.VALID)

    @property
    def chain(self) -> list[ManifestReport]:
        """Every node of the chain of custody, the active manifest first."""
        return self.active_manifest.walk() if self.active_manifest else []

    def to_dict(self) -> dict[str, Any]:
        """The ``--json`` document; its schema is ``docs/verify-schema.json``."""
        return {
            "schema_version": SCHEMA_VERSION,
            "state": self.state.value,
            "summary": self.summary,
            "format": self.mime,
            "failures": [f.code for f in self.failures],
            "failure_details": [f.to_dict() for f in self.failures],
            "active_manifest": self.active_manifest.to_dict() if self.active_manifest else None,
            "chain": [node.to_dict() for node in self.chain],
            "remote_manifest_url": self.remote_manifest_url,
            "embedded": self.embedded,
            "watermark": self.watermark.to_dict() if self.watermark else None,
            "recovered": self.recovered,
            "fingerprint_similarity": self.fingerprint_similarity,
            "warnings": list(self.warnings),
        }


def verify_file(
    path: str | os.PathLike[str],
    *,
    policy: TrustPolicy | None = None,
) -> VerificationResult:
    """Verify the file at ``path`` (see the module docstring for the steps)."""
    return verify_bytes(read_input(path), policy=policy, name=str(Path(path)))  # [1]


def verify_bytes(
    data: bytes,
    *,
    policy: TrustPolicy | None = None,
    name: str = "<bytes>",
) -> VerificationResult:
    """Verify an asset held in memory."""
    chosen = policy or TrustPolicy()
    fmt = require_signable(data, name)  # [1]
    store, remote_url, embedded = c2pa_bridge.read_store(  # [2]
        fmt.mime, data, chosen.c2pa_settings(), name
    )
    if store is None:
        return VerificationResult(
            State.NONE,
            _summary_none(remote_url, chosen.allow_network),
            fmt.mime,
            remote_manifest_url=remote_url,
            embedded=embedded,
        )
    return result_from_store(store, fmt.mime, remote_url=remote_url, embedded=embedded)


def result_from_store(
    store: dict[str, Any],
    mime: str | None,
    *,
    remote_url: str | None = None,
    embedded: bool = True,
) -> VerificationResult:
    """Steps 3-5 and 8 on a parsed, validated manifest store."""
    state, root, failures = evaluate_store(store)  # [3] [4] [5]
    return VerificationResult(
        state,
        summarize(state, root, failures),  # [8]
        mime,
        active_manifest=root,
        failures=tuple(failures),
        remote_manifest_url=remote_url,
        embedded=embedded,
    )


# --- plain language -----------------------------------------------------------

_FAILURE_SENTENCES = (
    ("assertion.dataHash.mismatch",
     "This file was changed after it was signed: its content no longer matches its "
     "Content Credentials."),
    ("assertion.bmffHash.mismatch",
     "This file was changed after it was signed: its content no longer matches its "
     "Content Credentials."),
    ("assertion.boxesHash.mismatch",
     "This file was changed after it was signed: its content no longer matches its "
     "Content Credentials."),
    ("claimSignature.mismatch",
     "The signature on its Content Credentials is broken: they were altered or forged."),
    ("signingCredential.revoked",
     "The certificate that signed its Content Credentials has been revoked."),
    ("signingCredential.expired",
     "The certificate that signed its Content Credentials has expired, and no trusted timestamp shows it was signed in time."),
    ("assertion.hashedURI.mismatch",
     "Part of its Content Credentials was altered after they were signed."),
    ("ingredient.manifest.missing",
     "Its Content Credentials refer to an ingredient whose credentials are missing."),
)

_ORIGINS = {
    "trainedAlgorithmicMedia": "Generated by an AI model",
    "compositeWithTrainedAlgorithmicMedia": "Made by combining other media with AI-generated content",
    "trainedAlgorithmicData": "Data generated by an AI model",
    "algorithmicMedia": "Generated by an algorithm (not a trained AI model)",
    "algorithmicallyEnhanced": "Enhanced by an algorithm",
    "compositeSynthetic": "A composite including synthetic elements",
    "digitalCapture": "Captured by a camera or recorder",
    "computationalCapture": "Captured by a camera with computational processing",
    "compositeCapture": "A composite of several captures",
    "digitalCreation": "Created digitally by a person",
    "minorHumanEdits": "Captured, then lightly edited by a person",
    "screenCapture": "A screenshot or screen recording",
    "composite": "A composite of several pieces of media",
}


def _summary_none(remote_url: str | None, allow_network: bool) -> str:
    if remote_url:
        if allow_network:
            return f"Its Content Credentials are stored remotely at {remote_url} but could not be read."
        return (
            f"Its Content Credentials are stored remotely at {remote_url}; "
            "allow network access to fetch and check them."
        )
    return "No Content Credentials found: this file says nothing verifiable about how it was made."


def summarize(state: State, root: ManifestReport, failures: list[StatusCode]) -> str:
    """The one-sentence verdict a non-technical reader understands."""
    if state is State.INVALID:
        codes = {f.code for f in failures}
        for code, sentence in _FAILURE_SENTENCES:
            if code in codes:
                return sentence
        shown = ", ".join(sorted(codes - {"signingCredential.untrusted"})) or "unknown"
        return f"Its Content Credentials are invalid ({shown})."
    origin = _origin(root)
    signer = _signer_phrase(root.signer)
    trust = (
        "the signer is in your trust list"
        if state is State.TRUSTED
        else "the signer is not in your trust list, so who signed it is unconfirmed"
    )
    return f"{origin}. Signed by {signer}; {trust}."


def _origin(root: ManifestReport) -> str:
    node: ManifestReport | None = root
    edited = False
    while node is not None:
        source = node.digital_source_type
        if source:
            text = _ORIGINS.get(source, f"Digital source type: {source}")
            model = f" ({node.model})" if node.model and "AI" in text else ""
            if edited and node is not root:
                return f"Edited from an original: {text[0].lower()}{text[1:]}{model}"
            return f"{text}{model}"
        parents = [i for i in node.ingredients if i.relationship == "parentOf"]
        edited = edited or bool(parents)
        node = parents[0] if parents else None
    return "Its credentials do not say how it was made"


def _signer_phrase(signer: SignerInfo | None) -> str:
    if signer is None:
        return "an unknown signer"
    name = signer.common_name or "an unnamed certificate"
    issuer = f" (issued by {signer.issuer})" if signer.issuer else ""
    dev = ", a development identity" if signer.development else ""
    return f"{name}{issuer}{dev}"
