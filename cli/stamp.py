"""``provenance stamp``: watermark + sign + record every image of a folder tree."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
from tqdm import tqdm

from cli._identity import identity_loader, identity_options
from cli.sign import generation_info, generation_options
from provenance.batch import FileOutcome, stamp_tree
from provenance.errors import ExitCode
from provenance.store import default_store_location, describe_store
from provenance.watermarks import read_key_file


@click.command("stamp")
@click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option(
    "-o",
    "--output",
    "outdir",
    required=True,
    type=click.Path(path_type=Path),
    help="Output folder; input folder structure is mirrored inside it.",
)
@click.option("-j", "--jobs", type=click.IntRange(min=1), help="Worker processes (default: all cores).")
@click.option(
    "--store",
    "store_path",
    help="Manifest store: a SQLite file or a postgresql:// URL (default: $PROVENANCE_STORE, "
    "else $PROVENANCE_HOME/manifests.db or the user data folder).",
)
@click.option(
    "--scheduler",
    metavar="ADDRESS",
    help="Stamp on a Dask cluster (tcp://HOST:8786) into a shared PostgreSQL --store; "
    "workers must see the same paths. Needs provenance-kit[dask].",
)
@click.option(
    "--key-file", type=click.Path(path_type=Path), help="Watermark key file (default: the public key)."
)
@generation_options
@identity_options
@click.option("--json", "as_json", is_flag=True, help="Print a report of every file on stdout.")
def command(
    inputs: tuple[Path, ...],
    outdir: Path,
    jobs: int | None,
    store_path: str | None,
    scheduler: str | None,
    key_file: Path | None,
    identity_dir: Path | None,
    key_path: Path | None,
    cert_path: Path | None,
    tsa_url: str | None,
    as_json: bool,
    **generation: object,
) -> None:
    """Stamp INPUTS (images or folders) into OUTDIR: invisible watermark, signed
    Content Credentials, and a record in the manifest store.

    Re-running skips what is already stamped and recorded. One bad file is
    reported and the rest go on; the exit code is 6 if any file failed.
    """
    loader = identity_loader(identity_dir, key_path, cert_path, tsa_url)
    info = generation_info(generation, required=True)
    assert info is not None
    store = store_path or default_store_location()
    interactive = sys.stderr.isatty()
    bar = tqdm(unit="img", disable=not interactive, file=sys.stderr, dynamic_ncols=True)

    def planned(total: int) -> None:
        bar.total = total
        bar.refresh()

    def progress(outcome: FileOutcome) -> None:
        for warning in outcome.warnings:
            (bar.write if interactive else click.echo)(f"warning: {warning}", file=sys.stderr)
        if interactive:
            bar.update(1)
            if outcome.status == "failed":
                bar.write(f"failed: {outcome.error}", file=sys.stderr)
        else:
            detail = outcome.error if outcome.status == "failed" else outcome.identifier
            click.echo(f"{outcome.status}: {outcome.input} ({detail})", err=True)

    report = stamp_tree(
        inputs,
        outdir,
        loader,
        info,
        store_path=store,
        jobs=jobs,
        key=read_key_file(key_file),
        on_result=progress,
        on_plan=planned,
        scheduler=scheduler,
    )
    bar.close()
    counts = report.counts()
    rate = counts["stamped"] / report.seconds if report.seconds else 0.0
    click.echo(
        f"{counts['stamped']} stamped, {counts['skipped']} already done, {counts['failed']} failed "
        f"in {report.seconds:.1f}s ({rate:.1f} images/s); store: {describe_store(store)}",
        err=True,
    )
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2))
    if report.failed:
        raise SystemExit(int(ExitCode.PARTIAL_FAILURE))
