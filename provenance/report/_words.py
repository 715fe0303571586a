"""The words of the verify page and the HTML report, in one place.

    >>> from provenance.verify import State, VerificationResult
    >>> words = explain(VerificationResult(State.NONE, "No Content Credentials found.", "image/jpeg"))
    >>> words.kind, words.headline
    ('none', 'No Content Credentials')
    >>> words.ai
    'Unknown: with no Content Credentials, nothing says whether AI was involved.'

The answers themselves (made with AI? altered? who signed?), the details and
the phrases for actions and source types come from
:func:`provenance.verify.explain`, the function the CLI prints, so the page,
the report and ``provenance verify`` say the same words. This module adds only
what a page needs on top: the verdict banner (title and a sentence on what it
means), what the watermark result means, and the labels of the history tree.
"""

from __future__ import annotations

from dataclasses import dataclass

from provenance.verify import ManifestReport, State, VerificationResult
from provenance.verify import explain as shared_explain
from provenance.verify._explain import action_phrase as shared_action_phrase
from provenance.verify._explain import source_phrase, watermark_lines

__all__ = ["Plain", "action_phrase", "explain", "node_verdict", "relationship_phrase", "watermark_meaning"]


@dataclass(frozen=True)
class Plain:
    """A verification result in plain language, most important first."""

    kind: str
    """``trusted``, ``valid``, ``invalid``, ``none`` or ``recovered``: the look of the verdict."""
    headline: str
    lead: str
    ai: str
    """Made or changed with AI, with what tool and model (the CLI's answer)."""
    altered: str
    """Altered since it was signed? (the CLI's answer)"""
    signer: str
    """Who signed it, and is the signer trusted? (the CLI's answer)"""
    details: tuple[str, ...]
    """The CLI's further facts (timestamps, recorded changes, notes), watermark lines aside."""
    watermark: tuple[str, ...]
    """What the watermark check found (the CLI's lines), then what that means."""


_RELATIONSHIPS = {
    "active": "This file",
    "parentOf": "Made from",
    "componentOf": "Includes",
    "inputTo": "Used as input",
}


def explain(result: VerificationResult, *, trust_anchor_count: int | None = None) -> Plain:
    """The verdict banner and the CLI's plain-language answers for ``result``."""
    kind, headline, lead = _verdict(result)
    if trust_anchor_count == 0 and result.state in (State.VALID, State.INVALID):
        lead += " This checker has no trust list, so every signer shows as unknown."
    answer = shared_explain(result)
    found = watermark_lines(result)
    return Plain(
        kind=kind,
        headline=headline,
        lead=lead,
        ai=answer.ai,
        altered=answer.altered,
        signer=answer.signer,
        details=tuple(d for d in answer.details if d not in found),
        watermark=(*(_under_heading(line) for line in found), watermark_meaning(result)),
    )


def _verdict(result: VerificationResult) -> tuple[str, str, str]:
    if result.state is State.INVALID:
        if result.recovered:
            return (
                "invalid",
                "Credentials do not belong to this file",
                "An invisible watermark points to Content Credentials, but they do not hold for this "
                "file. Do not rely on what they say.",
            )
        return (
            "invalid",
            "Altered: Content Credentials do not match",
            "This file or its Content Credentials were changed after signing, or the signature is "
            "broken. Do not rely on what the credentials say.",
        )
    if result.state is State.NONE and result.remote_manifest_url:
        return (
            "none",
            "Content Credentials not checked",
            "This file's Content Credentials are stored elsewhere and were not fetched, so nothing "
            "about it could be checked. This is not the same as having none.",
        )
    if result.state is State.NONE:
        return (
            "none",
            "No Content Credentials",
            "This file says nothing verifiable about where it comes from or how it was made. "
            "That alone does not mean it is fake, nor that it is genuine.",
        )
    who = (
        "signed by someone in the trust list"
        if result.state is State.TRUSTED
        else "signed by someone this checker does not know"
    )
    if result.recovered:
        return (
            "recovered",
            "Content Credentials recovered from the invisible watermark",
            "The file's own credentials were removed (for example by re-saving it or taking a "
            f"screenshot), but an invisible watermark in the {_medium(result)} leads to its original "
            f"credentials, which are intact and {who}.",
        )
    if result.state is State.TRUSTED:
        return (
            "trusted",
            "Verified Content Credentials",
            "The file has not changed since it was signed, and the signer is in the trust list.",
        )
    return (
        "valid",
        "Content Credentials intact, signer unknown",
        "The file has not changed since it was signed, but the signer is not in this checker's "
        "trust list, so who signed it is unconfirmed. This is not a sign of tampering.",
    )


def _under_heading(line: str) -> str:
    # Shown under an "Invisible watermark" heading: the CLI's label would repeat it.
    rest = line.removeprefix("Invisible watermark: ")
    return rest[:1].upper() + rest[1:]


def watermark_meaning(result: VerificationResult) -> str:
    """What the invisible-watermark result means for the reader."""
    wm = result.watermark
    if wm is None:
        if any(w.startswith("watermark not checked") for w in result.warnings):
            return (
                f"The {_medium(result)} could not be decoded, so it was not checked for the invisible "
                "watermark."
            )
        if result.mime and not result.mime.startswith(("image/", "audio/")):
            return "Only pictures and sound carry this watermark; this file was not checked for one."
        return "This file was not checked for the invisible watermark."
    if not wm.detected:
        if result.intact and any("declare an invisible watermark" in w for w in result.warnings):
            return (
                "The credentials declare a watermark that was not found (made with another key, or too "
                "weak to read); the credentials themselves are intact."
            )
        return "Most files carry no invisible watermark; that alone means nothing."
    audio = _medium(result) == "sound"
    if result.recovered and result.intact:
        still = "the audio still sounds like the clip" if audio else "the picture still looks like the one"
        return (
            "It leads to the credentials shown here, recorded in this checker's manifest store, and "
            f"{still} they were issued for."
        )
    if result.recovered and audio:
        return (
            "The audio does not sound like the clip the recorded credentials were issued for: the "
            "watermark may have been copied onto other audio."
        )
    if result.recovered:
        return (
            "The picture does not look like the one the recorded credentials were issued for: the "
            "watermark may have been copied onto another picture."
        )
    if wm.matches_manifest is True:
        return "The watermark and the credentials belong together."
    if wm.matches_manifest is False:
        other = "other audio" if audio else "another picture"
        return f"The credentials were made for {other} and attached to this one."
    if wm.known_to_store is False:
        return (
            "Its identifier is not in this checker's manifest store, so the credentials it stands "
            "for cannot be shown."
        )
    return "No manifest store was available to look its identifier up."


def _medium(result: VerificationResult) -> str:
    """What carries the watermark, in words: "sound" for audio files, else "picture"."""
    return "sound" if (result.mime or "").startswith("audio/") else "picture"


def node_verdict(node: ManifestReport) -> str:
    """A chain node's own state, in words."""
    return {
        State.TRUSTED: "Credentials intact · signer trusted",
        State.VALID: "Credentials intact · signer unknown",
        State.INVALID: "Altered or invalid credentials",
        State.NONE: "No Content Credentials of its own",
    }[node.state]


def relationship_phrase(relationship: str, *, recovered: bool = False) -> str:
    """How a chain node relates to the file that uses it."""
    if recovered and relationship == "active":
        return "The original, as recorded in the manifest store"
    return _RELATIONSHIPS.get(relationship, relationship)


def action_phrase(action: dict[str, object]) -> str:
    """One recorded action, in the CLI's words: ``Created (generated by a trained AI model), with X``."""
    text = shared_action_phrase(str(action.get("action") or "c2pa.unknown"))
    text = text[:1].upper() + text[1:]
    source = action.get("digital_source_type")
    if source:
        text += f" ({source_phrase(str(source))})"
    agent = action.get("software_agent")
    if agent:
        text += f", with {agent}"
    return text
