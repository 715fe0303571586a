"""Verification results as HTML: the verify page's answer and the shareable report.

One renderer serves both ``provenance serve``'s page and ``provenance verify
FILE --html REPORT.html``, so they always say the same thing::

    >>> from provenance.report import collect, render_document
    >>> from provenance.verify import verify_file
    >>> path = "tests/fixtures/c2pa/image/jpeg/adobe-20220124-E-dat-CA.jpg"
    >>> evidence = collect("E-dat-CA.jpg", open(path, "rb").read(), verify_file(path))
    >>> page = render_document([evidence])
    >>> "Altered: Content Credentials do not match" in page, "data:image/jpeg;base64," in page
    (True, True)

Everything a file or its manifests say (names, titles, tools, signers) is
attacker-controlled and escaped; the report carries no script at all, and its
Content-Security-Policy forbids loading anything: it displays offline, as one file.
"""

from __future__ import annotations

import base64
import json
import os
from dataclasses import dataclass
from datetime import datetime, timezone
from html import escape
from importlib.resources import files
from pathlib import Path
from typing import Any

from provenance._internal.files import atomic_write, read_input
from provenance._internal.names import printable
from provenance.report import _thumbnails
from provenance.report._words import (
    Plain,
    action_phrase,
    explain,
    node_verdict,
    relationship_phrase,
)
from provenance.store import ManifestStore
from provenance.verify import ManifestReport, State, StatusCode, VerificationResult

__all__ = [
    "Evidence",
    "collect",
    "collect_file",
    "render_document",
    "render_fragment",
    "report_css",
    "result_document",
    "write_report",
]


@dataclass(frozen=True)
class Evidence:
    """A verification result plus what showing it needs: the name and the thumbnails."""

    name: str
    result: VerificationResult
    file_thumbnail: bytes | None = None
    """The file's own picture (JPEG), when it is one."""
    chain_thumbnails: tuple[bytes | None, ...] = ()
    """One JPEG (or None) per node of ``result.chain``, in the same order."""
    trust_anchor_count: int | None = None
    """How many trust anchors the check used (None: not said)."""

    @property
    def words(self) -> Plain:
        return explain(self.result, trust_anchor_count=self.trust_anchor_count)


def collect(
    name: str,
    data: bytes,
    result: VerificationResult,
    *,
    store: ManifestStore | None = None,
    trust_anchor_count: int | None = None,
) -> Evidence:
    """Gather the thumbnails for ``result`` (the verification of ``data``)."""
    chain = _thumbnails.chain_thumbnails(data, result, name, store)
    own = _thumbnails.file_thumbnail(data, result, name)
    if own is None and chain:
        own = chain[0]  # audio, video, PDF: the claim thumbnail stands for the file
    return Evidence(name, result, own, tuple(chain), trust_anchor_count)


def collect_file(
    path: str | os.PathLike[str],
    result: VerificationResult,
    *,
    store: ManifestStore | None = None,
    trust_anchor_count: int | None = None,
) -> Evidence:
    """:func:`collect` for a file on disk."""
    # A name that is not UTF-8 is shown escaped (it could not be written into the report).
    name = printable(path)
    return collect(name, read_input(path), result, store=store, trust_anchor_count=trust_anchor_count)


def result_document(evidence: Evidence) -> dict[str, Any]:
    """The ``verify --json`` document of this file."""
    return {"file": evidence.name, **evidence.result.to_dict()}


def report_css() -> str:
    """The style sheet of the answer (inlined in reports, served to the page)."""
    return files("provenance.report").joinpath("report.css").read_text(encoding="utf-8")


def render_fragment(evidence: Evidence, *, index: int = 0, heading_level: int = 2) -> str:
    """One file's answer as an ``<article>``: the verdict first, then layers of detail."""
    return _Renderer(evidence, index, heading_level).article()


def render_document(evidences: list[Evidence], *, generated_at: datetime | None = None) -> str:
    """A whole self-contained HTML report (inline style, embedded thumbnails, no script)."""
    when = (generated_at or datetime.now(timezone.utc)).strftime("%Y-%m-%d %H:%M UTC")
    names = ", ".join(e.name for e in evidences)
    articles = "\n".join(render_fragment(e, index=i) for i, e in enumerate(evidences))
    # No script, nothing fetched: only inline style and data: images may load.
    csp = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'"
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="{escape(csp)}">
<meta name="referrer" content="no-referrer">
<title>Content Credentials report: {escape(names)}</title>
<style>
{report_css()}
</style>
</head>
<body class="cr-document">
<header class="cr-page-head">
<h1><span class="cr-pin" aria-hidden="true">CR</span> Content Credentials report</h1>
<p class="cr-muted">Made by provenance-kit on {escape(when)}. It checks the file's Content Credentials
(C2PA), its invisible watermark and its history. Keep the original file with this report.</p>
</header>
<main>
{articles}
</main>
</body>
</html>
"""


def write_report(
    path: str | os.PathLike[str], evidences: list[Evidence], *, generated_at: datetime | None = None
) -> None:
    """Write :func:`render_document` to ``path`` atomically."""
    atomic_write(Path(path), render_document(evidences, generated_at=generated_at).encode("utf-8"))


# Symbols beside the colour, so the verdict never rests on colour alone.
_ICONS = {"trusted": "✔", "valid": "✔", "recovered": "↺", "invalid": "✖", "none": "○"}


class _Renderer:
    def __init__(self, evidence: Evidence, index: int, level: int) -> None:
        self.e = evidence
        self.r = evidence.result
        self.w = evidence.words
        self.id = f"cr-{index}"
        self.h = level

    def article(self) -> str:
        parts = [
            f'<article class="cr-report cr-{self.w.kind}" aria-labelledby="{self.id}-verdict">',
            self.summary(),
            self.facts(),
            self.watermark(),
            self.chain(),
            self.expert(),
            self.download(),
            "</article>",
        ]
        return "\n".join(p for p in parts if p)

    def heading(self, offset: int, text: str, ident: str = "") -> str:
        level = min(6, self.h + offset)
        attr = f' id="{ident}"' if ident else ""
        return f"<h{level}{attr}>{text}</h{level}>"

    def summary(self) -> str:
        image = _image(self.e.file_thumbnail, f"Preview of {self.e.name}", "cr-thumb")
        if image is None:
            label = escape(_format_label(self.r.mime))
            image = f'<div class="cr-thumb cr-nothumb" aria-hidden="true">{label}</div>'
        icon = f'<span class="cr-icon" aria-hidden="true">{_ICONS[self.w.kind]}</span> '
        return (
            '<div class="cr-summary">'
            f"{image}"
            '<div class="cr-verdict">'
            f'<p class="cr-file"><span class="cr-pin" aria-hidden="true">CR</span> '
            f'<span class="cr-name">{escape(self.e.name)}</span></p>'
            + self.heading(0, icon + escape(self.w.headline), f"{self.id}-verdict")
            + f'<p class="cr-lead">{escape(self.w.lead)}</p>'
            "</div></div>"
        )

    def facts(self) -> str:
        rows = [
            ("Made or changed with AI?", self.w.ai),
            ("Altered since it was signed?", self.w.altered),
            ("Signed by", self.w.signer),
        ]
        body = "".join(f"<div><dt>{escape(k)}</dt><dd>{escape(v)}</dd></div>" for k, v in rows)
        more = "".join(f"<li>{escape(d)}</li>" for d in self.w.details)
        listing = f'<ul class="cr-details" aria-label="More about this file">{more}</ul>' if more else ""
        return f'<dl class="cr-facts">{body}</dl>{listing}'

    def watermark(self) -> str:
        lines = "".join(f"<p>{escape(line)}</p>" for line in self.w.watermark)
        return '<section class="cr-section">' + self.heading(1, "Invisible watermark") + lines + "</section>"

    def chain(self) -> str:
        root = self.r.active_manifest
        if root is None:
            return ""
        thumbs = list(self.e.chain_thumbnails)
        counter = iter(range(len(self.r.chain)))
        tree = self.node(root, thumbs, counter)
        intro = (
            "Each step in the file's history, as its Content Credentials record it: the file itself, "
            "then what it was made from. Every step has its own check."
        )
        return (
            '<section class="cr-section">'
            + self.heading(1, "History (chain of custody)")
            + f'<p class="cr-muted">{intro}</p>'
            f'<ol class="cr-tree">{tree}</ol></section>'
        )

    def node(self, node: ManifestReport, thumbs: list[bytes | None], counter: Any) -> str:
        position = next(counter)
        title = node.title or _untitled(node, self.e.name, self.r.recovered)
        thumb = thumbs[position] if position < len(thumbs) else None
        image = _image(thumb, f"Thumbnail of {title}", "cr-node-thumb")
        if image is None:
            image = '<div class="cr-node-thumb cr-nothumb" aria-hidden="true">no preview</div>'
        meta = []
        if node.signer and node.signer.common_name:
            meta.append(f"Signed by {node.signer.common_name}")
        if node.claim_generator:
            meta.append(f"Tool: {node.claim_generator}")
        if node.model:
            meta.append(f"Model: {node.model}")
        actions = "".join(f"<li>{escape(action_phrase(a))}</li>" for a in node.actions)
        children = "".join(self.node(c, thumbs, counter) for c in node.ingredients)
        state = "invalid" if node.state is State.INVALID else node.state.value
        relation = relationship_phrase(node.relationship, recovered=self.r.recovered)
        return (
            f'<li><div class="cr-node cr-node-{state}">{image}<div class="cr-node-body">'
            f'<p class="cr-rel">{escape(relation)}</p>'
            + self.heading(2, escape(title))
            + f'<p class="cr-badge">{escape(node_verdict(node))}</p>'
            + (f'<ul class="cr-actions" aria-label="Recorded actions">{actions}</ul>' if actions else "")
            + (f'<p class="cr-meta">{escape(" · ".join(meta))}</p>' if meta else "")
            + "</div></div>"
            + (f'<ol class="cr-tree">{children}</ol>' if children else "")
            + "</li>"
        )

    def expert(self) -> str:
        rows: list[str] = []
        for node in self.r.chain:
            where = node.title or node.label or "(untitled)"
            for code in node.failures:
                rows.append(_code_row(where, "failure", code))
            for code in node.informational:
                rows.append(_code_row(where, "informational", code))
        for code in self.r.failures:
            if code.code.startswith("provenance."):
                rows.append(_code_row("this file", "failure", code))
        table = (
            '<table class="cr-codes"><caption>Validation status codes</caption>'
            "<thead><tr><th scope=col>Where</th><th scope=col>Kind</th><th scope=col>Code</th>"
            "<th scope=col>Explanation</th></tr></thead><tbody>" + "".join(rows) + "</tbody></table>"
            if rows
            else "<p>No failed or informational status codes.</p>"
        )
        facts = [
            ("Verdict (state)", self.r.state.value + (" (recovered)" if self.r.recovered else "")),
            ("Format", self.r.mime or "unknown"),
            ("Active manifest", self.r.active_manifest.label if self.r.active_manifest else None),
            ("Remote manifest", self.r.remote_manifest_url),
        ]
        wm = self.r.watermark
        if wm is not None and wm.detected:
            facts += [
                ("Watermark identifier", wm.payload),
                ("Watermark algorithm", wm.algorithm),
                ("Watermark p-value", f"{wm.p_value:.1e}" if wm.p_value is not None else None),
                ("Bit errors corrected", str(wm.bit_errors_corrected)),
            ]
        if self.r.fingerprint_similarity is not None:
            facts.append(("Likeness to the recorded original", f"{self.r.fingerprint_similarity:.0%}"))
        root = self.r.active_manifest
        if root is not None and root.signer is not None:
            facts += [
                ("Signature algorithm", root.signer.algorithm),
                ("Certificate serial", root.signer.serial_number),
            ]
        if root is not None and root.prompt_sha256:
            facts.append(("Prompt SHA-256 (the prompt itself is not stored)", root.prompt_sha256))
        listing = "".join(
            f"<div><dt>{escape(k)}</dt><dd>{escape(v)}</dd></div>" for k, v in facts if v is not None
        )
        notes = "".join(f"<li>{escape(w)}</li>" for w in self.r.warnings)
        return (
            '<details class="cr-expert"><summary>Technical details for experts</summary>'
            f'<dl class="cr-facts cr-small">{listing}</dl>'
            + (f'<ul class="cr-notes" aria-label="Notes">{notes}</ul>' if notes else "")
            + table
            + "</details>"
        )

    def download(self) -> str:
        document = json.dumps(result_document(self.e), indent=2, ensure_ascii=False)
        href = "data:application/json;base64," + base64.b64encode(document.encode("utf-8")).decode("ascii")
        stem = Path(self.e.name).name.rsplit(".", 1)[0] or "result"
        return (
            f'<p class="cr-download-row"><a class="cr-download" href="{href}" '
            f'download="{escape(stem)}.verify.json">Download the full result (JSON)</a> '
            '<span class="cr-muted">the same document as <code>provenance verify --json</code></span></p>'
        )


def _code_row(where: str, kind: str, code: StatusCode) -> str:
    return (
        f"<tr><td>{escape(where)}</td><td>{escape(kind)}</td><td><code>{escape(code.code)}</code></td>"
        f"<td>{escape(code.explanation)}</td></tr>"
    )


def _image(jpeg: bytes | None, alt: str, cls: str) -> str | None:
    url = _thumbnails.data_url(jpeg)
    return f'<img class="{cls}" src="{url}" alt="{escape(alt)}">' if url else None


def _untitled(node: ManifestReport, name: str, recovered: bool) -> str:
    if node.relationship == "active":
        return "The original" if recovered else Path(name).name
    return f"Untitled {_format_label(node.format)}"


def _format_label(mime: str | None) -> str:
    if not mime:
        return "file"
    kind, _, sub = mime.partition("/")
    if kind in ("audio", "video", "image"):
        return f"{kind} ({sub.upper()})"
    return sub.upper() if sub else mime
