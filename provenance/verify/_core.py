"""Verification core: validated manifest-store JSON in, a verdict object out. No I/O."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from manifests import IPTC_PREFIX, PROVENANCE_ASSERTION
from provenance.keys import DEVELOPMENT_ORGANIZATION

SCHEMA_VERSION = 1


class State(str, Enum):
    """The four verdicts, best first."""

    TRUSTED = "trusted"
    """Intact, and signed by a certificate that chains to a configured trust anchor."""
    VALID = "valid"
    """Intact, but the signer is not in the configured trust anchors."""
    INVALID = "invalid"
    """Tampered, broken signature, expired or revoked credential, ..."""
    NONE = "none"
    """No Content Credentials."""


# Codes the reference implementation lists as failures but which do not make a
# manifest invalid: an unknown signer is what separates "valid" from "trusted".
_TRUST_ONLY_FAILURES = frozenset({"signingCredential.untrusted"})


@dataclass(frozen=True)
class StatusCode:
    """One C2PA validation status entry."""

    code: str
    explanation: str = ""
    url: str = ""

    def to_dict(self) -> dict[str, str]:
        return {"code": self.code, "explanation": self.explanation, "url": self.url}


@dataclass(frozen=True)
class SignerInfo:
    common_name: str | None
    issuer: str | None
    algorithm: str | None
    serial_number: str | None
    signed_at: str | None
    development: bool
    timestamp_trusted: bool | None = None
    """True: ``signed_at`` comes from an RFC 3161 timestamp the verifier trusts;
    False: from a timestamp that did not validate or is not trusted; None: no timestamp."""
    timestamp_authority: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "common_name": self.common_name,
            "issuer": self.issuer,
            "algorithm": self.algorithm,
            "serial_number": self.serial_number,
            "signed_at": self.signed_at,
            "development": self.development,
            "timestamp_trusted": self.timestamp_trusted,
            "timestamp_authority": self.timestamp_authority,
        }


@dataclass(frozen=True)
class ManifestReport:
    """One node of the chain of custody."""

    label: str | None
    title: str | None
    format: str | None
    relationship: str
    parent: str | None
    depth: int
    state: State
    signer: SignerInfo | None = None
    claim_generator: str | None = None
    digital_source_type: str | None = None
    actions: tuple[dict[str, Any], ...] = ()
    model: str | None = None
    prompt_sha256: str | None = None
    soft_bindings: tuple[dict[str, Any], ...] = ()
    failures: tuple[StatusCode, ...] = ()
    informational: tuple[StatusCode, ...] = ()
    ingredients: tuple[ManifestReport, ...] = field(default=(), repr=False)
    signer_trusted: bool | None = None
    """True: the signer chains to a trust anchor; False: it does not (an unknown
    signer: information, not a failure); None: no signature to judge."""

    def to_dict(self, *, with_tree: bool = False) -> dict[str, Any]:
        out: dict[str, Any] = {
            "label": self.label,
            "title": self.title,
            "format": self.format,
            "relationship": self.relationship,
            "parent": self.parent,
            "depth": self.depth,
            "state": self.state.value,
            "signer": self.signer.to_dict() if self.signer else None,
            "claim_generator": self.claim_generator,
            "digital_source_type": self.digital_source_type,
            "actions": list(self.actions),
            "model": self.model,
            "prompt_sha256": self.prompt_sha256,
            "soft_bindings": list(self.soft_bindings),
            "failures": [f.to_dict() for f in self.failures],
            "informational": [f.to_dict() for f in self.informational],
            "signer_trusted": self.signer_trusted,
        }
        if with_tree:
            out["ingredients"] = [i.to_dict(with_tree=True) for i in self.ingredients]
        return out

    def walk(self) -> list[ManifestReport]:
        """This node and every node below it, depth first."""
        nodes = [self]
        for child in self.ingredients:
            nodes += child.walk()
        return nodes


def evaluate_store(store: Mapping[str, Any]) -> tuple[State, ManifestReport, list[StatusCode]]:
    """Steps 3-5 of verification on an already validated store.

    3. The verdict is the reference implementation's ``validation_state``
       (Trusted / Valid / Invalid), so it always agrees with c2pa-rs.
    4. Walk the manifest tree from the active manifest through every
       ingredient, giving each node its relationship and its own state.
    5. Collect the failed status codes: the active manifest's and those
       found again in its ingredients (``ingredientDeltas``). An unknown
       signer (``signingCredential.untrusted``) is not a failure: it moves to
       each node's ``informational`` codes and its ``signer_trusted`` flag.
    """
    # [3]
    raw_state = str(store.get("validation_state", "")).lower()
    state = {"trusted": State.TRUSTED, "valid": State.VALID}.get(raw_state, State.INVALID)
    results = store.get("validation_results") or {}
    active_results = results.get("activeManifest") or {}
    active_failures = _codes(active_results.get("failure"))
    if not results and store.get("validation_status"):
        active_failures = _codes(store.get("validation_status"))
    deltas = _ingredient_deltas(results)
    manifests: Mapping[str, Any] = store.get("manifests") or {}
    active_label = store.get("active_manifest")
    # [4]
    root = _node(
        manifests,
        active_label,
        manifests.get(active_label or "", {}),
        "active",
        None,
        0,
        state,
        _Codes(
            active_failures,
            _codes(active_results.get("informational")),
            _codes(active_results.get("success")),
        ),
        deltas,
        set(),
    )
    # [5]
    failures = list(root.failures)
    for codes in deltas.values():
        failures += [
            c
            for c in codes
            if not _is_success(c.to_dict()) and c.code not in _TRUST_ONLY_FAILURES and c not in failures
        ]
    return state, root, failures


@dataclass(frozen=True)
class _Codes:
    """The status codes recorded for one manifest."""

    failure: list[StatusCode]
    informational: list[StatusCode]
    success: list[StatusCode]


def _node(
    manifests: Mapping[str, Any],
    label: str | None,
    manifest: Mapping[str, Any],
    relationship: str,
    parent: str | None,
    depth: int,
    state: State,
    codes: _Codes,
    deltas: Mapping[str, list[StatusCode]],
    seen: set[str],
) -> ManifestReport:
    seen = seen | ({label} if label else set())
    children = []
    for ingredient in manifest.get("ingredients") or []:
        children.append(_ingredient_node(manifests, ingredient, label, depth + 1, deltas, seen))
    actions = _actions(manifest)
    generation = _assertion(manifest, PROVENANCE_ASSERTION) or {}
    hard = [f for f in codes.failure if f.code not in _TRUST_ONLY_FAILURES]
    trust_notes = [f for f in codes.failure if f.code in _TRUST_ONLY_FAILURES]
    successes = {c.code for c in codes.success}
    signer = _signer(manifest.get("signature_info"), codes)
    signer_trusted: bool | None = None
    if signer is not None:
        if "signingCredential.trusted" in successes or state is State.TRUSTED:
            signer_trusted = True
        elif trust_notes or state is State.VALID:
            signer_trusted = False
    return ManifestReport(
        label=label,
        title=manifest.get("title"),
        format=manifest.get("format"),
        relationship=relationship,
        parent=parent,
        depth=depth,
        state=state,
        signer=signer,
        claim_generator=_claim_generator(manifest),
        digital_source_type=_source_type(actions),
        actions=tuple(actions),
        model=generation.get("model") or _model_from_actions(actions),
        prompt_sha256=generation.get("prompt_sha256"),
        soft_bindings=tuple(_soft_bindings(manifest)),
        failures=tuple(hard),
        informational=tuple(_dedupe(trust_notes + codes.informational)),
        ingredients=tuple(children),
        signer_trusted=signer_trusted,
    )


def _ingredient_node(
    manifests: Mapping[str, Any],
    ingredient: Mapping[str, Any],
    parent: str | None,
    depth: int,
    deltas: Mapping[str, list[StatusCode]],
    seen: set[str],
) -> ManifestReport:
    relationship = str(ingredient.get("relationship") or "componentOf")
    child_label = ingredient.get("active_manifest")
    if not child_label or child_label not in manifests or child_label in seen:
        return ManifestReport(
            label=None,
            title=ingredient.get("title"),
            format=ingredient.get("format"),
            relationship=relationship,
            parent=parent,
            depth=depth,
            state=State.NONE,
        )
    recorded = ingredient.get("validation_results") or {}
    failures = _codes((recorded.get("activeManifest") or {}).get("failure"))
    failures += _codes([s for s in ingredient.get("validation_status") or [] if not _is_success(s)])
    successes = _codes((recorded.get("activeManifest") or {}).get("success"))
    for codes in deltas.values():
        for code in codes:
            if f"/c2pa/{child_label}/" not in code.url:
                continue
            if _is_success(code.to_dict()):
                successes.append(code)
            else:
                failures.append(code)
    if "signingCredential.trusted" in {c.code for c in successes}:
        failures = [f for f in failures if f.code != "signingCredential.untrusted"]
    failures = [f for f in _dedupe(failures) if _about(f, child_label)]
    hard = [f for f in failures if f.code not in _TRUST_ONLY_FAILURES]
    if hard:
        child_state = State.INVALID
    elif "signingCredential.trusted" in {c.code for c in successes}:
        child_state = State.TRUSTED
    else:
        child_state = State.VALID
    informational = _codes((recorded.get("activeManifest") or {}).get("informational"))
    return _node(
        manifests,
        child_label,
        manifests[child_label],
        relationship,
        parent,
        depth,
        child_state,
        _Codes(failures, informational, successes),
        deltas,
        seen,
    )


def _about(code: StatusCode, label: str) -> bool:
    # Status URLs name the manifest they concern; codes without a URL (old
    # stores) are attributed to the ingredient they were recorded on.
    return not code.url.startswith("self#jumbf=/c2pa/") or f"/c2pa/{label}/" in code.url


def _is_success(entry: Mapping[str, Any]) -> bool:
    code = str(entry.get("code", ""))
    return code.endswith((".validated", ".match", ".trusted", ".insideValidity", ".matched"))


def _ingredient_deltas(results: Mapping[str, Any]) -> dict[str, list[StatusCode]]:
    """Status codes found when re-validating ingredients now, keyed by ingredient URI.

    Successes are kept too: a ``signingCredential.trusted`` here overrides an
    ``untrusted`` recorded when the ingredient was added (trust is the
    verifier's, not the signer's, decision).
    """
    out: dict[str, list[StatusCode]] = {}
    for delta in results.get("ingredientDeltas") or []:
        found = delta.get("validationDeltas") or {}
        codes = _codes(found.get("failure")) + [
            StatusCode(c.code, c.explanation, c.url) for c in _codes(found.get("success"))
        ]
        if codes:
            out[str(delta.get("ingredientAssertionURI", ""))] = codes
    return out


def _codes(entries: Any) -> list[StatusCode]:
    out = []
    for entry in entries or []:
        if isinstance(entry, Mapping) and entry.get("code"):
            out.append(
                StatusCode(
                    str(entry["code"]), str(entry.get("explanation") or ""), str(entry.get("url") or "")
                )
            )
    return out


def _dedupe(codes: list[StatusCode]) -> list[StatusCode]:
    seen: set[tuple[str, str]] = set()
    out = []
    for c in codes:
        if (c.code, c.url) not in seen:
            seen.add((c.code, c.url))
            out.append(c)
    return out


def _signer(info: Any, codes: _Codes) -> SignerInfo | None:
    if not isinstance(info, Mapping):
        return None
    issuer = info.get("issuer")
    signed_at = info.get("time")
    # c2pa-rs reports a signing time only from an RFC 3161 timestamp token;
    # the timeStamp.* codes say whether that token validated and is trusted.
    stamps = [c for c in codes.success if c.code.startswith("timeStamp.")]
    bad = [c for c in codes.failure + codes.informational if c.code.startswith("timeStamp.")]
    trusted: bool | None = None
    if signed_at or stamps or bad:
        trusted = any(c.code == "timeStamp.trusted" for c in stamps) and not bad
    authority = None
    for c in stamps:
        if ": " in c.explanation:
            authority = c.explanation.split(": ", 1)[1]
            break
    return SignerInfo(
        common_name=info.get("common_name"),
        issuer=issuer,
        algorithm=str(info["alg"]).upper() if info.get("alg") else None,
        serial_number=info.get("cert_serial_number"),
        signed_at=signed_at,
        development=issuer == DEVELOPMENT_ORGANIZATION,
        timestamp_trusted=trusted,
        timestamp_authority=authority,
    )


def _claim_generator(manifest: Mapping[str, Any]) -> str | None:
    infos = manifest.get("claim_generator_info")
    if isinstance(infos, list) and infos:
        first = infos[0]
        if isinstance(first, Mapping) and first.get("name"):
            version = first.get("version")
            return f"{first['name']} {version}" if version else str(first["name"])
    generator = manifest.get("claim_generator")
    return str(generator) if generator else None


def _assertion(manifest: Mapping[str, Any], label: str) -> Mapping[str, Any] | None:
    for assertion in manifest.get("assertions") or []:
        if assertion.get("label") == label and isinstance(assertion.get("data"), Mapping):
            data: Mapping[str, Any] = assertion["data"]
            return data
    return None


def _actions(manifest: Mapping[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for assertion in manifest.get("assertions") or []:
        if str(assertion.get("label", "")).split("__")[0] in ("c2pa.actions", "c2pa.actions.v2"):
            for action in (assertion.get("data") or {}).get("actions") or []:
                entry: dict[str, Any] = {"action": action.get("action")}
                if action.get("digitalSourceType"):
                    entry["digital_source_type"] = _short_source(action["digitalSourceType"])
                agent = action.get("softwareAgent")
                if isinstance(agent, Mapping):
                    entry["software_agent"] = " ".join(
                        str(agent[k]) for k in ("name", "version") if agent.get(k)
                    )
                elif isinstance(agent, str):
                    entry["software_agent"] = agent
                if action.get("description"):
                    entry["description"] = action["description"]
                if action.get("when"):
                    entry["when"] = str(action["when"])
                out.append(entry)
    return out


def _short_source(uri: Any) -> str:
    text = str(uri)
    for prefix in (IPTC_PREFIX, IPTC_PREFIX.replace("http:", "https:")):
        text = text.removeprefix(prefix)
    return text


def _source_type(actions: list[dict[str, Any]]) -> str | None:
    for action in actions:
        if action.get("digital_source_type"):
            return str(action["digital_source_type"])
    return None


def _model_from_actions(actions: list[dict[str, Any]]) -> str | None:
    for action in actions:
        if action.get("action") == "c2pa.created" and action.get("software_agent"):
            return str(action["software_agent"])
    return None


def _soft_bindings(manifest: Mapping[str, Any]) -> list[dict[str, Any]]:
    out = []
    for assertion in manifest.get("assertions") or []:
        if str(assertion.get("label", "")).split("__")[0] == "c2pa.soft-binding":
            data = assertion.get("data") or {}
            for block in data.get("blocks") or []:
                out.append({"algorithm": data.get("alg"), "value": block.get("value")})
    return out


# Digital source types (IPTC terms) that say a trained AI model made some or
# all of the content.
GENERATIVE_AI_SOURCES = frozenset(
    {"trainedAlgorithmicMedia", "compositeWithTrainedAlgorithmicMedia", "trainedAlgorithmicData"}
)


@dataclass(frozen=True)
class Generation:
    """How the chain of custody says the content was made, rolled up over every manifest."""

    ai_generated: bool | None
    """True: some manifest records a trained AI model making (part of) it; False:
    the credentials state a non-AI origin and no AI step; None: they do not say."""
    generator: str | None = None
    model: str | None = None
    digital_source_type: str | None = None
    manifest: str | None = None
    """Label of the manifest that records it (the active one or an ingredient's)."""


def generation_facts(root: ManifestReport | None) -> Generation:
    """Roll the generation facts up from the whole chain, nearest manifest first.

    An AI step anywhere in the chain (the active manifest, a parent it was
    edited from, a component it contains) makes ``ai_generated`` true; the tool
    is that manifest's claim generator and the model its recorded model or the
    AI action's software agent.
    """
    if root is None:
        return Generation(None)
    stated: Generation | None = None
    for node in root.walk():
        for action in node.actions:
            source = action.get("digital_source_type")
            if not source:
                continue
            if source in GENERATIVE_AI_SOURCES:
                model = node.model or action.get("software_agent")
                return Generation(True, node.claim_generator, model, str(source), node.label)
            if stated is None:
                stated = Generation(False, node.claim_generator, None, str(source), node.label)
    return stated or Generation(None)
