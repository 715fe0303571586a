"""``provenance verify``: check Content Credentials and the chain of custody."""

from __future__ import annotations

import json
from pathlib import Path

import click

from cli._common import run_per_file
from provenance.errors import ExitCode
from provenance.store import open_existing_store
from provenance.trust import TrustPolicy
from provenance.verify import ManifestReport, State, VerificationResult, verify_file
from provenance.watermarks import read_key_file

_EXIT = {
    State.TRUSTED: ExitCode.OK,
    State.VALID: ExitCode.OK,
    State.INVALID: ExitCode.INVALID_CREDENTIALS,
    State.NONE: ExitCode.NO_CREDENTIALS,
}


@click.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "--trust-anchors",
    "anchors",
    multiple=True,
    type=click.Path(path_type=Path),
    help="PEM file or bundle of trusted root certificates. Repeatable.",
)
@click.option(
    "--allow-network",
    is_flag=True,
    help="Allow fetching remote manifests and OCSP revocation checks (off by default).",
)
@click.option(
    "--store",
    "store_path",
    help="Manifest store to recover stripped credentials from: a SQLite file or a postgresql:// URL "
    "(default: $PROVENANCE_STORE, else $PROVENANCE_HOME/manifests.db when it exists).",
)
@click.option("--no-watermark", is_flag=True, help="Do not look for the invisible watermark.")
@click.option(
    "--key-file", type=click.Path(path_type=Path), help="Watermark key file (default: the public key)."
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="One JSON document per file on stdout (schema: docs/verify-schema.json).",
)
def verify(
    files: tuple[Path, ...],
    anchors: tuple[Path, ...],
    allow_network: bool,
    store_path: str | None,
    no_watermark: bool,
    key_file: Path | None,
    as_json: bool,
) -> None:
    """Verify the Content Credentials of FILES.

    \b
    Exit codes: 0 intact (trusted or valid), 1 invalid, 3 no credentials,
    4 unreadable or unsupported file, 2 usage error.
    """
    policy = TrustPolicy.from_files(anchors, allow_network=allow_network)
    key = None if no_watermark else read_key_file(key_file)
    store = open_existing_store(store_path)
    if store is not None:
        click.get_current_context().call_on_close(store.close)

    def check(path: Path) -> ExitCode:
        result = verify_file(path, policy=policy, store=store, watermark_key=key)
        if as_json:
            click.echo(json.dumps({"file": str(path), **result.to_dict()}))
        else:
            click.echo(render(str(path), result))
        return _EXIT[result.state]

    run_per_file(files, check)


_MARK = {
    State.TRUSTED: "TRUSTED",
    State.VALID: "VALID",
    State.INVALID: "INVALID",
    State.NONE: "NO CREDENTIALS",
}


def render(name: str, result: VerificationResult) -> str:
    """The human-readable report: verdict, sentence, then the chain as a tree."""
    mark = _MARK[result.state] + (" (RECOVERED FROM WATERMARK)" if result.recovered else "")
    lines = [f"{name}: {mark}", f"  {result.summary}"]
    wm = result.watermark
    if wm is not None:
        if wm.detected:
            agreement = {
                True: "matches the credentials",
                False: "DOES NOT MATCH the credentials",
                None: "no credentials declare it",
            }[wm.matches_manifest]
            store_note = {
                True: "; recorded in the manifest store",
                False: "; unknown identifier (not in the manifest store)",
                None: "",
            }[wm.known_to_store]
            lines.append(f"  watermark: {wm.payload} (p-value {wm.p_value:.1e}), {agreement}{store_note}")
        else:
            lines.append("  watermark: none found")
    lines += [f"  note: {warning}" for warning in result.warnings]
    if result.remote_manifest_url:
        lines.append(f"  remote manifest: {result.remote_manifest_url}")
    if result.active_manifest is not None:
        lines += _tree(result.active_manifest, "  ")
    return "\n".join(lines)


def _tree(node: ManifestReport, indent: str) -> list[str]:
    title = node.title or node.format or "(untitled)"
    head = f"{indent}{node.relationship}: {title} [{node.state.value}]"
    lines = [head]
    pad = indent + "    "
    if node.label:
        lines.append(f"{pad}manifest: {node.label}")
    if node.signer:
        dev = "  ** DEVELOPMENT IDENTITY **" if node.signer.development else ""
        untrusted = any(f.code == "signingCredential.untrusted" for f in node.failures)
        trust = " - not in your trust list" if untrusted else ""
        lines.append(f"{pad}signed by: {node.signer.common_name} (issuer: {node.signer.issuer}){trust}{dev}")
        if node.signer.signed_at:
            lines.append(f"{pad}signed at: {node.signer.signed_at}")
    if node.claim_generator:
        lines.append(f"{pad}tool: {node.claim_generator}")
    if node.digital_source_type:
        lines.append(f"{pad}source type: {node.digital_source_type}")
    if node.model:
        lines.append(f"{pad}model: {node.model}")
    if node.actions:
        lines.append(f"{pad}actions: " + ", ".join(str(a["action"]) for a in node.actions))
    for failure in node.failures:
        if failure.code == "signingCredential.untrusted":
            continue
        lines.append(f"{pad}failed: {failure.code} ({failure.explanation})")
    for child in node.ingredients:
        lines += _tree(child, pad)
    return lines
