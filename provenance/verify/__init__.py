"""Check a file's Content Credentials and its whole chain of custody.

    >>> from provenance.verify import verify_file
    >>> result = verify_file("tests/fixtures/c2pa/image/jpeg/adobe-20220124-E-dat-CA.jpg")
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
8. Say it in one plain sentence (``summary``); :func:`explain` gives the
   plain-language answers (AI? altered? who signed it?) that the command
   line prints and a web page can reuse.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import watermark
import watermark.audio
from provenance._internal import audio_likeness, c2pa_bridge, likeness
from provenance._internal.audio import (
    AUDIO_FORMATS,
    DETECT_SECONDS,
    AudioClip,
    decode_audio,
    unwatermarkable_rate,
)
from provenance._internal.files import InputFile, as_stream, display, open_input, read_input
from provenance._internal.formats import OGG, require_signable, sniff
from provenance._internal.images import load_for_analysis
from provenance.errors import (
    CorruptInputError,
    FileError,
    ImageTooLargeError,
    StoreError,
    UnsupportedFormatError,
    UsageError,
)
from provenance.store import ManifestStore, StoreEntry
from provenance.trust import TrustPolicy
from provenance.verify._batch import Tally, expand_inputs, outcome_of
from provenance.verify._core import (
    SCHEMA_VERSION,
    Generation,
    ManifestReport,
    SignerInfo,
    State,
    StatusCode,
    evaluate_store,
    generation_facts,
)
from provenance.verify._explain import (
    NO_CREDENTIALS_MEANING,
    RECOVERED_NOTE,
    Explanation,
    declared_soft_bindings,
    explain,
    store_unavailable,
    summary_sentence,
    to_text,
)

__all__ = [
    "Explanation",
    "Generation",
    "ManifestReport",
    "SignerInfo",
    "State",
    "StatusCode",
    "Tally",
    "VerificationResult",
    "WatermarkReport",
    "expand_inputs",
    "explain",
    "outcome_of",
    "store_unavailable",
    "to_text",
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
    recovered_from: str | None = None
    """Where recovered credentials came from: "store" (the local manifest store) or a resolver URL."""
    informational: tuple[StatusCode, ...] = ()
    """Status codes that are information, not failure: an unknown signer
    (``signingCredential.untrusted``, reported here once), OCSP not checked..."""

    @property
    def generation(self) -> Generation:
        """Was it made by AI, with what tool and model: rolled up from the whole chain."""
        return generation_facts(self.active_manifest)

    @property
    def signer_trusted(self) -> bool | None:
        """True: in your trust anchors; False: an unknown signer; None: no signature to judge."""
        return self.active_manifest.signer_trusted if self.active_manifest else None

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
        generation = self.generation
        return {
            "schema_version": SCHEMA_VERSION,
            "state": self.state.value,
            "summary": self.summary,
            "ai_generated": generation.ai_generated,
            "generator": generation.generator,
            "model": generation.model,
            "digital_source_type": generation.digital_source_type,
            "signer_trusted": self.signer_trusted,
            "informational": [f.to_dict() for f in self.informational],
            "declared_watermarks": declared_soft_bindings(self.active_manifest),
            "explanation": explain(self).to_dict(),
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
            "recovered_from": self.recovered_from,
        }


def verify_file(
    path: str | os.PathLike[str],
    *,
    policy: TrustPolicy | None = None,
    store: ManifestStore | None = None,
    watermark_key: bytes | None = watermark.DEFAULT_KEY,
    resolvers: Sequence[str] = (),
    resolver_timeout: float = 10.0,
    manifest: str | os.PathLike[str] | None = None,
) -> VerificationResult:
    """Verify the file at ``path`` (see the module docstring for the steps).

    The file is read in pieces (a stream for the C2PA library), never whole,
    so memory does not grow with the size of a video. ``manifest`` is a
    manifest store kept beside the file (a ``.c2pa`` sidecar, or one exported
    with ``provenance store export``): the file is checked against it instead
    of against credentials embedded in it. An OGG file, which cannot embed
    credentials, is checked against ``NAME.c2pa`` beside it when there is one.
    """
    if not isinstance(path, str | os.PathLike):
        raise UsageError(
            f"verify_file takes a path, not {type(path).__name__}; for bytes in memory use verify_bytes"
        )
    sidecar = None
    if manifest is None:
        manifest = _sidecar_beside(path)
    if manifest is not None:
        sidecar = read_input(manifest)
        c2pa_bridge.require_manifest_store(sidecar, display(manifest))
    with open_input(path) as source:  # [1]
        chosen = policy or TrustPolicy()
        return _verify(
            source,
            chosen=chosen,
            store=store,
            watermark_key=watermark_key,
            name=source.name,
            resolvers=resolvers,
            resolver_timeout=resolver_timeout,
            manifest=sidecar,
        )


def _sidecar_beside(path: str | os.PathLike[str]) -> Path | None:
    """``NAME.c2pa`` beside an OGG file (which cannot embed credentials), when there is one."""
    candidate = Path(path).with_suffix(".c2pa")
    try:
        # Only a regular file is peeked at: opening a FIFO would wait for a writer forever.
        if not stat.S_ISREG(os.stat(path).st_mode):
            return None
        with open(path, "rb") as handle:
            head = handle.read(64)
    except OSError:
        return None  # open_input reports the problem with the file itself
    return candidate if sniff(head) is OGG and candidate.is_file() else None


def verify_bytes(
    data: bytes,
    *,
    policy: TrustPolicy | None = None,
    store: ManifestStore | None = None,
    watermark_key: bytes | None = watermark.DEFAULT_KEY,
    name: str = "<bytes>",
    resolvers: Sequence[str] = (),
    resolver_timeout: float = 10.0,
    manifest: bytes | None = None,
) -> VerificationResult:
    """Verify an asset held in memory.

    ``watermark_key=None`` skips watermark detection; ``store`` is where
    credentials are recovered from when the file has none; ``manifest`` is a
    sidecar or exported manifest store to check the asset against. Then
    ``resolvers`` (Soft Binding Resolution services, asked in turn over the
    network: the watermark's binding first, then the content) when the file
    has no credentials and the store none; without them nothing leaves the machine.
    """
    if isinstance(data, bytearray | memoryview):
        data = bytes(data)
    if not isinstance(data, bytes):
        hint = "; for a path use verify_file" if isinstance(data, str | os.PathLike) else ""
        raise UsageError(f"verify_bytes takes the file's bytes, not {type(data).__name__}{hint}")
    return _verify(
        data,
        chosen=policy or TrustPolicy(),
        store=store,
        watermark_key=watermark_key,
        name=name,
        resolvers=resolvers,
        resolver_timeout=resolver_timeout,
        manifest=manifest,
    )


DAMAGED_MANIFEST = "provenance.manifest.damaged"
"""Not a C2PA code: the credentials in the file cannot even be decoded (bad CBOR, missing claim box)."""


def _verify(
    data: bytes | InputFile,
    *,
    chosen: TrustPolicy,
    store: ManifestStore | None,
    watermark_key: bytes | None,
    name: str,
    resolvers: Sequence[str] = (),
    resolver_timeout: float = 10.0,
    manifest: bytes | None = None,
) -> VerificationResult:
    arguments: dict[str, Any] = {
        "chosen": chosen,
        "watermark_key": watermark_key,
        "name": name,
        "resolvers": resolvers,
        "resolver_timeout": resolver_timeout,
        "manifest": manifest,
    }
    try:
        return _verify_once(data, store=store, **arguments)
    except StoreError as exc:
        if store is None:
            raise
        # The store only serves recovery and the watermark's "known to the store":
        # a store that opened but fails on a query (corrupt pages, a lost
        # connection) must not hide what the file itself carries. Verify again
        # without it (only on this rare path) and say so.
        result = _verify_once(data, store=None, **arguments)
        note = f"{exc}; verified without the manifest store (stripped credentials cannot be recovered)"
        return replace(result, warnings=(*result.warnings, note))


def _verify_once(
    data: bytes | InputFile,
    *,
    chosen: TrustPolicy,
    store: ManifestStore | None,
    watermark_key: bytes | None,
    name: str,
    resolvers: Sequence[str] = (),
    resolver_timeout: float = 10.0,
    manifest: bytes | None = None,
) -> VerificationResult:
    # [1] OGG cannot embed credentials, but it is verified against a sidecar and
    # its audio watermark read (voice messages arrive as Ogg Opus).
    fmt = OGG if sniff(data) is OGG else require_signable(data, name)
    if manifest is not None:
        c2pa_bridge.require_manifest_store(manifest, "manifest")
    try:
        if fmt is OGG and manifest is None:
            found_store = c2pa_bridge.StoreRead(None, None, True)
        else:
            with as_stream(data) as stream:
                found_store = c2pa_bridge.read_store_full(  # [2]
                    fmt.mime, stream, chosen.c2pa_settings(), name, manifest
                )
    except c2pa_bridge.DamagedManifestError as exc:
        # Credentials that cannot be decoded are a verdict, not a file error.
        sentence = "Its Content Credentials are damaged and cannot be read: they were altered or corrupted."
        return VerificationResult(
            State.INVALID, sentence, fmt.mime, failures=(StatusCode(DAMAGED_MANIFEST, exc.detail),)
        )
    store_json, remote_url, embedded = found_store.store, found_store.remote_url, found_store.embedded
    notes: tuple[str, ...] = ()
    if found_store.fetch_error:
        notes = (f"fetching the remote manifest failed: {found_store.fetch_error}",)
    if manifest is not None:
        embedded = False
    if fmt in AUDIO_FORMATS:
        return _verify_audio(
            data,
            fmt.mime,
            name,
            found_store,
            chosen=chosen,
            store=store,
            watermark_key=watermark_key,
            embedded=embedded,
            notes=notes,
            resolvers=resolvers,
            resolver_timeout=resolver_timeout,
        )
    image, undecodable = _pixels(data, name) if fmt.is_image and watermark_key is not None else (None, None)
    if store_json is None and isinstance(undecodable, CorruptInputError):
        # Nothing verifiable and the pixels do not decode: a corrupt file (exit 4), not "no credentials".
        raise undecodable
    skipped = f"watermark not checked: {undecodable}" if undecodable else None
    # Where the mark is matters only for recovery (the likeness check compares that region).
    recovering = store_json is None and store is not None
    detection = (  # [6]
        watermark.detect(image, watermark_key, locate=recovering)
        if image is not None and watermark_key is not None
        else None
    )
    if recovering and detection is not None and not detection.detected and image is not None:
        assert watermark_key is not None
        # A picture covering a small part of a screenshot full of text and lines can
        # hide its mark from the synchronisation: look again inside the picture.
        inside = likeness.detect_in_picture(image, watermark_key)
        if inside is not None:
            image, detection = inside
    if store_json is None:
        found = _watermark_report(detection, declared=None, store=store)
        if found is not None and found.known_to_store and store is not None and image is not None:
            assert detection is not None
            return _recovered(store, found, image, chosen, fmt.mime, detection.region)  # [7]
        remote_warnings: list[str] = []
        if resolvers and image is not None:
            asset = data if isinstance(data, bytes) else data.read_all()  # an image: pixel-limited
            remote, remote_warnings = _recover_remotely(
                asset, image, found, resolvers, chosen, fmt.mime, resolver_timeout
            )
            if remote is not None:
                return remote
        return VerificationResult(
            State.NONE,
            _summary_none(remote_url, chosen.allow_network, found, found_store.fetch_error),
            fmt.mime,
            remote_manifest_url=remote_url,
            embedded=embedded,
            watermark=found,
            warnings=notes + ((skipped,) if skipped else ()) + tuple(remote_warnings),
        )
    result = result_from_store(store_json, fmt.mime, remote_url=remote_url, embedded=embedded)
    if detection is None:
        return replace(result, warnings=(skipped,)) if skipped else result
    declared = _declared_payloads(result.active_manifest)
    report = _watermark_report(detection, declared=declared, store=store)
    return _with_watermark(result, report)


def _verify_audio(
    data: bytes | InputFile,
    mime: str,
    name: str,
    found_store: c2pa_bridge.StoreRead,
    *,
    chosen: TrustPolicy,
    store: ManifestStore | None,
    watermark_key: bytes | None,
    embedded: bool,
    notes: tuple[str, ...],
    resolvers: Sequence[str] = (),
    resolver_timeout: float = 10.0,
) -> VerificationResult:
    """Steps [6] and [7] for audio: the audio watermark, and recovery from the store
    (or, failing that, from the ``resolvers``) confirmed by the spectral likeness of the clip."""
    store_json, remote_url = found_store.store, found_store.remote_url
    clip: AudioClip | None = None
    skipped = None
    if watermark_key is not None:
        try:
            clip = decode_audio(data, name, seconds=DETECT_SECONDS)
        except FileError as exc:
            if store_json is None and isinstance(exc, CorruptInputError):
                raise  # nothing verifiable and the audio does not decode: a corrupt file (exit 4)
            skipped = f"watermark not checked: {exc}"
    unreadable = unwatermarkable_rate(clip) if clip is not None else None
    if unreadable is not None:
        # Outside the rates the mark is defined for nothing can be read: "not checked", not "none".
        skipped, clip = f"watermark not checked: {unreadable}", None
    detection = (
        watermark.audio.detect(clip.samples, clip.sample_rate, watermark_key)
        if clip is not None and watermark_key is not None
        else None
    )
    algorithm = watermark.audio.ALGORITHM
    if store_json is None:
        found = _watermark_report(detection, declared=None, store=store, algorithm=algorithm)
        if found is not None and found.known_to_store and store is not None and clip is not None:
            entry = store.get_by_payload(bytes.fromhex(str(found.payload)))
            assert entry is not None
            recovered = _recovered_entry(entry, found, clip, chosen, mime)  # [7]
            assert recovered is not None
            return recovered
        remote_warnings: list[str] = []
        if resolvers and clip is not None:
            # As for images: the audio watermark's binding first, then the clip itself (a file
            # too large for a service's body limit is looked up by its binding only).
            from provenance.resolution import MAX_CONTENT_BYTES

            small = len(data) <= MAX_CONTENT_BYTES
            asset = (data if isinstance(data, bytes) else data.read_all()) if small else None
            remote, remote_warnings = _recover_remotely(
                asset, clip, found, resolvers, chosen, mime, resolver_timeout, algorithm=algorithm
            )
            if remote is not None:
                return remote
        return VerificationResult(
            State.NONE,
            _summary_none(remote_url, chosen.allow_network, found, found_store.fetch_error),
            mime,
            remote_manifest_url=remote_url,
            embedded=embedded,
            watermark=found,
            warnings=notes + ((skipped,) if skipped else ()) + tuple(remote_warnings),
        )
    result = result_from_store(store_json, mime, remote_url=remote_url, embedded=embedded)
    if detection is None:
        return replace(result, warnings=(skipped,)) if skipped else result
    declared = _declared_payloads(result.active_manifest, algorithm)
    report = _watermark_report(detection, declared=declared, store=store, algorithm=algorithm)
    return _with_watermark(result, report)


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
        informational=_once(root.informational),
    )


def _once(codes: tuple[StatusCode, ...]) -> tuple[StatusCode, ...]:
    """Each informational code once, however many manifests report it."""
    seen: dict[str, StatusCode] = {}
    for code in codes:
        seen.setdefault(code.code, code)
    return tuple(seen.values())


def _pixels(data: bytes | InputFile, name: str) -> tuple[Any, FileError | None]:
    """The decoded image for watermark detection, or why it was skipped.

    A file too large or too damaged to decode still gets its C2PA verdict;
    only the watermark check is skipped, and the report says so.
    """
    try:
        # Large images are decoded reduced (see load_for_analysis): verifying a
        # 200-megapixel picture must not take gigabytes.
        return load_for_analysis(data, name), None
    except (ImageTooLargeError, CorruptInputError, UnsupportedFormatError) as exc:
        return None, exc


def _declared_payloads(
    root: ManifestReport | None, algorithm: str = watermark.ALGORITHM
) -> list[bytes] | None:
    """Payloads the active manifest declares for our watermark (``algorithm``: the image or
    the audio one); None if it declares none."""
    if root is None:
        return None
    # The image watermark is read in every version, so a manifest naming any of them counts.
    accepted = watermark.ALGORITHMS if algorithm == watermark.ALGORITHM else (algorithm,)
    values = [b["value"] for b in root.soft_bindings if b.get("algorithm") in accepted]
    if not values:
        return None
    payloads = []
    for value in values:
        try:
            payloads.append(watermark.payload_from_soft_binding_value(str(value)))
        except watermark.WatermarkError:
            payloads.append(b"")
    return payloads


def _watermark_report(
    detection: watermark.Detection | None,
    *,
    declared: list[bytes] | None,
    store: ManifestStore | None,
    algorithm: str = watermark.ALGORITHM,
) -> WatermarkReport | None:
    if detection is None:
        return None
    matches = None
    if declared is not None:
        matches = detection.detected and detection.payload in declared
    known = None
    if detection.detected and store is not None and detection.payload is not None:
        known = store.get_by_payload(detection.payload) is not None
    return WatermarkReport(
        detected=detection.detected,
        payload=detection.payload.hex() if detection.payload else None,
        # The version actually read for the image mark (audio detections carry none).
        algorithm=(detection.algorithm or algorithm) if detection.detected else None,
        confidence=detection.confidence if detection.detected else None,
        p_value=detection.p_value if detection.detected else None,
        bit_errors_corrected=detection.bit_errors_corrected if detection.detected else None,
        matches_manifest=matches,
        known_to_store=known,
    )


SOFT_BINDING_MISMATCH = "provenance.softBinding.mismatch"
"""Not a C2PA code: the pixels carry a different watermark than the manifest declares."""

CONTENT_MISMATCH = "provenance.content.mismatch"
"""Not a C2PA code: a watermark leads to credentials issued for different-looking content."""


def _with_watermark(result: VerificationResult, report: WatermarkReport | None) -> VerificationResult:
    if report is None or report.matches_manifest is not False:
        return replace(result, watermark=report)
    if not report.detected:
        # The hard binding holds, so these are the pixels that were signed: the
        # mark is just not readable (another key, a weak mark). Not a forgery.
        note = (
            "the credentials declare an invisible watermark that was not found "
            "(made with another key, or too weak to read)"
        )
        return replace(result, watermark=report, warnings=(*result.warnings, note))
    # [6] The pixels carry another identifier than the credentials declare:
    # the credentials were made for another image and attached to this one.
    sentence = (
        "These Content Credentials belong to a different image: the invisible watermark "
        f"in the pixels ({report.payload}) is not the one they declare."
    )
    if report.algorithm == watermark.audio.ALGORITHM:
        sentence = (
            "These Content Credentials belong to different audio: the invisible watermark "
            f"in the sound ({report.payload}) is not the one they declare."
        )
    failure = StatusCode(SOFT_BINDING_MISMATCH, sentence)
    return replace(
        result,
        state=State.INVALID,
        summary=sentence,
        watermark=report,
        failures=(*result.failures, failure),
    )


# Hard-binding codes: they necessarily fail for recovered credentials, whose
# asset was re-encoded; the manifest itself can still be intact.
_HARD_BINDING = frozenset(
    {
        "assertion.dataHash.mismatch",
        "assertion.bmffHash.mismatch",
        "assertion.boxesHash.mismatch",
        "assertion.collectionHash.mismatch",
    }
)


def _recovered(
    store: ManifestStore,
    report: WatermarkReport,
    image: Any,
    policy: TrustPolicy,
    mime: str,
    region: watermark.MarkRegion | None = None,
) -> VerificationResult:
    """[7] Validate the manifest recorded for the watermark's identifier; ``region``
    is where the mark is in ``image`` (the picture inside a screenshot)."""
    assert report.payload is not None
    entry = store.get_by_payload(bytes.fromhex(report.payload))
    assert entry is not None
    recovered = _recovered_entry(entry, report, image, policy, mime, region=region)
    assert recovered is not None
    return recovered


def _check_recovered(
    manifest_store: bytes, policy: TrustPolicy
) -> tuple[State, ManifestReport, list[StatusCode]] | None:
    """Validate a manifest store kept apart from its asset: the hard binding is not held against it."""
    store_json, _, _ = c2pa_bridge.read_store(
        "application/c2pa", manifest_store, policy.c2pa_settings(), "recovered manifest"
    )
    if store_json is None:
        return None
    state, root, failures = evaluate_store(store_json)
    soft = [f for f in failures if f.code not in _HARD_BINDING]
    if state is State.INVALID and not [f for f in soft if f.code != "signingCredential.untrusted"]:
        trusted = any(c.code == "signingCredential.trusted" for c in _success_codes(store_json))
        state = State.TRUSTED if trusted else State.VALID
        root = replace(
            root, state=state, failures=tuple(f for f in root.failures if f.code not in _HARD_BINDING)
        )
    return state, root, soft


def validate_recovered_store(
    manifest_store: bytes, policy: TrustPolicy | None = None
) -> tuple[ManifestReport, list[str]] | None:
    """The active manifest of a detached manifest store and the failure codes that count.

    What recovery accepts: the hard binding (the asset is elsewhere) and an
    unknown signer are not failures. None when the bytes hold no manifest store.
    """
    checked = _check_recovered(manifest_store, policy or TrustPolicy())
    if checked is None:
        return None
    _, root, soft = checked
    return root, [f.code for f in soft if f.code != "signingCredential.untrusted"]


def _recovered_entry(
    entry: StoreEntry,
    report: WatermarkReport | None,
    image: Any,
    policy: TrustPolicy,
    mime: str,
    *,
    origin: str | None = None,
    by_fingerprint: bool = False,
    region: watermark.MarkRegion | None = None,
) -> VerificationResult | None:
    """Validate recovered credentials (from the local store, or from the service at ``origin``);
    ``region`` is where the watermark is in ``image`` (the picture inside a screenshot).

    None when a fingerprint-only match cannot be confirmed by the likeness check.
    """
    checked = _check_recovered(entry.manifest_store, policy)
    where = f"the resolution service {origin}" if origin else "the manifest store"
    if checked is None:
        if by_fingerprint:
            return None
        return VerificationResult(State.NONE, _summary_none(None, False, report), mime, watermark=report)
    state, root, soft = checked
    remote_note = f"the file itself carries no credentials; they come from {where}"
    notes = [RECOVERED_NOTE if origin is None else remote_note]
    similarity = None
    threshold = audio_likeness.SAME_AUDIO if isinstance(image, AudioClip) else likeness.SAME_CONTENT
    if isinstance(image, AudioClip):
        if entry.fingerprint_audio:
            similarity = round(
                audio_likeness.similarity(entry.fingerprint_audio, image.samples, image.sample_rate), 3
            )
        else:
            notes.append("no fingerprint was recorded, so the audio could not be compared")
    elif entry.fingerprint_image:
        similarity = round(likeness.similarity(entry.fingerprint_image, image, region), 3)
    elif by_fingerprint:
        return None
    else:
        notes.append("no fingerprint was recorded, so the image could not be compared")
    if by_fingerprint and (similarity is None or similarity < threshold):
        return None
    if report is not None and report.detected:
        report = replace(report, matches_manifest=True)
    if similarity is not None and similarity < threshold:
        assert report is not None
        # The default watermark key is public: anyone can copy an identifier
        # onto other content. Credentials are only recovered for the content
        # they were issued for.
        if isinstance(image, AudioClip):
            sentence = (
                f"An invisible audio watermark ({report.payload}) points to Content Credentials in "
                f"{where}, but this audio does not sound like the clip they were issued for (likeness "
                f"{similarity:.0%}): the watermark was copied onto other audio, or the audio was "
                "heavily edited."
            )
        else:
            sentence = (
                f"An invisible watermark ({report.payload}) points to Content Credentials in "
                f"{where}, but this image does not look like the one they were issued for (likeness "
                f"{similarity:.0%}): the watermark was copied onto another image, or the image was "
                "heavily edited."
            )
        return VerificationResult(
            State.INVALID,
            sentence,
            mime,
            active_manifest=root,
            failures=(*soft, StatusCode(CONTENT_MISMATCH, sentence)),
            watermark=report,
            recovered=True,
            fingerprint_similarity=similarity,
            warnings=tuple(notes),
            recovered_from=origin or "store",
            informational=_once(root.informational),
        )
    if by_fingerprint:
        what = "audio" if isinstance(image, AudioClip) else "image"
        how = f"Content Credentials recovered by matching the {what}'s fingerprint through {origin}. "
    else:
        assert report is not None
        how = f"Content Credentials recovered from the invisible watermark ({report.payload})"
        how += f" through {origin}. " if origin else ". "
    summary = how + summarize(state, root, soft)
    if similarity is not None:
        what = "audio" if isinstance(image, AudioClip) else "image"
        summary += f" The {what} matches the recorded original (likeness {similarity:.0%})."
    return VerificationResult(
        state,
        summary,
        mime,
        active_manifest=root,
        failures=tuple(soft),
        watermark=report,
        recovered=True,
        fingerprint_similarity=similarity,
        warnings=tuple(notes),
        recovered_from=origin or "store",
        informational=_once(root.informational),
    )


def _recover_remotely(
    data: bytes | None,
    image: Any,
    found: WatermarkReport | None,
    resolvers: Sequence[str],
    policy: TrustPolicy,
    mime: str,
    timeout: float,
    *,
    algorithm: str = watermark.ALGORITHM,
) -> tuple[VerificationResult | None, list[str]]:
    """Ask the resolution services in turn; warnings say what failed on the way.

    ``image`` is the decoded picture or :class:`AudioClip`; what a service returns
    is validated by :func:`_recovered_entry`, as an entry of the local store is,
    with the service's likeness reference in place of the recorded one.
    """
    from provenance import resolution

    audio = isinstance(image, AudioClip)
    payload = bytes.fromhex(found.payload) if found is not None and found.payload else None
    warnings: list[str] = []
    for url in resolvers:
        match = resolution.resolve(
            url,
            data,
            mime,
            payload,
            timeout=timeout,
            warnings=warnings,
            # A service that checks reads wants a fetch:manifests token; a secret, so never from argv.
            token=os.environ.get("PROVENANCE_RESOLVER_TOKEN") or None,
            algorithm=algorithm,
        )
        if match is None:
            continue
        if match.by_watermark and payload is not None:
            # Found through the watermark: the credentials must declare that very watermark
            # (a store's entry does by construction; a service's answer is checked).
            checked = _check_recovered(match.manifest_store, policy)
            declared = _declared_payloads(checked[1], algorithm) if checked is not None else None
            if checked is not None and payload not in (declared or []):
                warnings.append(
                    f"{match.url}: its manifest does not declare the watermark {payload.hex()}; ignored"
                )
                continue
        # The reference must be of the medium being verified: an image thumbnail is no
        # likeness reference for a clip, nor an audio fingerprint for a picture.
        is_audio_reference = match.reference_type == resolution.AUDIO_REFERENCE_TYPE
        reference = match.reference if is_audio_reference == audio else None
        entry = StoreEntry(
            payload=payload or b"",
            manifest_label=match.manifest_id,
            manifest_store=match.manifest_store,
            mime="application/c2pa",
            fingerprint_image=None if audio else reference,
            fingerprint_audio=reference if audio else None,
        )
        result = _recovered_entry(
            entry,
            found,
            image,
            policy,
            mime,
            origin=match.url,
            by_fingerprint=not match.by_watermark,
        )
        if result is not None:
            return replace(result, warnings=(*warnings, *result.warnings)), []
        looks = "does not sound like this audio" if audio else "does not look like this image"
        warnings.append(f"{match.url}: its fingerprint match {looks}; ignored")
    return None, warnings


def _success_codes(store_json: dict[str, Any]) -> list[StatusCode]:
    active = (store_json.get("validation_results") or {}).get("activeManifest") or {}
    return [StatusCode(str(e.get("code"))) for e in active.get("success") or []]


# --- plain language -----------------------------------------------------------


def _summary_none(
    remote_url: str | None,
    allow_network: bool,
    found: WatermarkReport | None = None,
    fetch_error: str | None = None,
) -> str:
    if remote_url:
        if allow_network:
            return (
                f"Its Content Credentials are stored remotely at {remote_url}, but fetching them failed, "
                "so they could not be checked (this is not the same as having none)."
            )
        return (
            f"Its Content Credentials are stored remotely at {remote_url}; "
            "allow network access to fetch and check them."
        )
    if found is not None and found.detected:
        where = (
            "it is not in the manifest store you have"
            if found.known_to_store is False
            else "no manifest store was available to look it up"
        )
        return (
            f"No Content Credentials in the file, but it carries an invisible watermark "
            f"(identifier {found.payload}); {where}."
        )
    return f"No Content Credentials found. {NO_CREDENTIALS_MEANING}"


def summarize(state: State, root: ManifestReport, failures: list[StatusCode]) -> str:
    """The one-sentence verdict a non-technical reader understands."""
    return summary_sentence(state, root, failures)
