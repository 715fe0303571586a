"""``provenance verify``: check Content Credentials and the chain of custody."""

from __future__ import annotations

import json
from pathlib import Path

import click

from cli._common import run_per_file
from provenance import report
from provenance._internal.names import printable
from provenance.errors import ExitCode, ProvenanceError, StoreError, UnsupportedFormatError, UsageError
from provenance.resolution import check_url, configured_resolvers
from provenance.store import open_existing_store
from provenance.trust import TrustPolicy
from provenance.verify import (
    State,
    Tally,
    VerificationResult,
    expand_inputs,
    outcome_of,
    store_unavailable,
    to_text,
    verify_file,
)
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
@click.option(
    "--manifest",
    "manifest_path",
    type=click.Path(path_type=Path),
    help="Check the file against this manifest store (a .c2pa sidecar or an exported manifest).",
)
@click.option("--no-watermark", is_flag=True, help="Do not look for the invisible watermark.")
@click.option(
    "--key-file", type=click.Path(path_type=Path), help="Watermark key file (default: the public key)."
)
@click.option(
    "--resolver",
    "resolvers",
    multiple=True,
    metavar="URL",
    help="Soft Binding Resolution service to ask when the file has no credentials (repeatable; "
    "also `resolvers` in $PROVENANCE_HOME/config.toml). Without one, verification stays offline.",
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="One JSON document per file on stdout (schema: docs/verify-schema.json).",
)
@click.option(
    "--html",
    "html_path",
    metavar="REPORT.html",
    help="Also write a self-contained HTML report (thumbnails embedded, no external links); "
    "'-' writes it to stdout instead of the text.",
)
def verify(
    files: tuple[Path, ...],
    anchors: tuple[Path, ...],
    allow_network: bool,
    store_path: str | None,
    manifest_path: Path | None,
    no_watermark: bool,
    key_file: Path | None,
    resolvers: tuple[str, ...],
    as_json: bool,
    html_path: str | None,
) -> None:
    """Verify the Content Credentials of FILES (files or folders, walked recursively).

    \b
    Exit codes: 0 intact (trusted or valid), 1 invalid, 3 no credentials,
    4 unreadable or unsupported file, 2 usage error. With several files: the
    worst, and a tally of the outcomes.
    """
    verbose = bool(click.get_current_context().find_root().params.get("verbose"))
    targets = list(expand_inputs(files))
    if manifest_path is not None and len(targets) != 1:
        raise UsageError("--manifest checks one file against one manifest store; give exactly one file")
    if html_path == "-" and as_json:
        raise UsageError("--html - and --json both write to stdout: give --html a file name")
    policy = TrustPolicy.from_files(anchors, allow_network=allow_network)
    key = None if no_watermark else read_key_file(key_file)
    store = None
    try:
        store = open_existing_store(store_path)
    except StoreError as exc:
        # The store only serves recovery: what the files carry is still verified.
        click.echo(f"warning: {store_unavailable(exc)}", err=True)
    if store is not None:
        click.get_current_context().call_on_close(store.close)
    walked = {path for path, from_folder in targets if from_folder}
    tally = Tally()

    remote = [check_url(url) for url in resolvers] or configured_resolvers()
    evidence: list[report.Evidence] = []

    def check(path: Path) -> ExitCode:
        try:
            result = verify_file(
                path,
                policy=policy,
                store=store,
                watermark_key=key,
                manifest=manifest_path,
                resolvers=remote,
            )
        except UnsupportedFormatError:
            if path in walked:  # a notes.txt inside a folder is not a failure
                tally.add("skipped")
                click.echo(f"skipped {path}: not a supported media file", err=True)
                return ExitCode.OK
            tally.add("unreadable")
            raise
        except ProvenanceError:
            tally.add("unreadable")
            raise
        tally.add(
            outcome_of(
                result.state,
                (f.code for f in result.failures),
                result.recovered,
                remote=result.remote_manifest_url is not None,
            )
        )
        if html_path is not None:
            evidence.append(
                report.collect_file(path, result, store=store, trust_anchor_count=policy.anchor_count)
            )
        if as_json:
            click.echo(json.dumps({"file": printable(path), **result.to_dict()}))
        elif html_path != "-":
            click.echo(render(printable(path), result, verbose=verbose))
        return _EXIT[result.state]

    def report_tally() -> None:
        if len(targets) > 1 and tally.total:
            click.echo(tally.sentence(), err=as_json or html_path == "-")

    def write_html() -> None:
        if html_path is None or not evidence:
            return
        if html_path == "-":
            click.echo(report.render_document(evidence), nl=False)
        else:
            report.write_report(html_path, evidence)
            click.echo(f"wrote the report to {html_path}", err=True)

    click.get_current_context().call_on_close(report_tally)
    try:
        run_per_file([path for path, _ in targets], check, write_html)
    except SystemExit as done:
        # Exit 0 says "credentials present and intact": not when every file was skipped.
        if done.code == ExitCode.OK and not tally.total:
            raise UsageError(f"no media files to verify ({tally.counts['skipped']} skipped)") from None
        raise


def render(name: str, result: VerificationResult, *, verbose: bool = False) -> str:
    """The human-readable report (the wording lives in provenance.verify._explain)."""
    return to_text(name, result, verbose=verbose)
