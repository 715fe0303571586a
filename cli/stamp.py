"""``provenance stamp``: watermark + sign + record every image of a folder tree."""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path

import click
from tqdm import tqdm

from cli._identity import identity_loader, identity_options
from cli.sign import generation_info, generation_options
from provenance._internal.names import printable
from provenance.batch import DEFAULT_INCLUDE, BatchInterrupted, BatchReport, FileOutcome, stamp_tree
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
@click.option(
    "--include",
    "includes",
    multiple=True,
    metavar="GLOB",
    help="Stamp only files of the folders whose name (or relative path, with a /) matches; "
    f"repeatable, case-insensitive. Default: image and audio names ({' '.join(DEFAULT_INCLUDE[:4])} ... "
    "*.wav *.flac *.mp3 *.m4a *.ogg *.opus).",
)
@click.option(
    "--exclude", "excludes", multiple=True, metavar="GLOB", help="Leave out matching files; repeatable."
)
@click.option(
    "--force", is_flag=True, help="Stamp again files already stamped and recorded (new identifiers)."
)
@click.option(
    "--quality",
    type=click.IntRange(1, 100),
    help="JPEG/WebP output quality (default: keep the original's); PNG and TIFF are lossless. "
    "Audio is not affected (see --bitrate).",
)
@click.option(
    "--bitrate",
    "bitrate_kbps",
    type=click.IntRange(8, 512),
    metavar="KBPS",
    help="MP3, M4A and OGG output bit rate in kbit/s (default: each file's own; the audio watermark "
    "may not survive low ones); WAV and FLAC are lossless.",
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
    includes: tuple[str, ...],
    excludes: tuple[str, ...],
    force: bool,
    quality: int | None,
    bitrate_kbps: int | None,
    identity_dir: Path | None,
    key_path: Path | None,
    cert_path: Path | None,
    tsa_url: str | None,
    as_json: bool,
    **generation: object,
) -> None:
    """Stamp INPUTS (images, audio or folders) into OUTDIR: invisible watermark, signed
    Content Credentials, and a record in the manifest store.

    \b
    Re-running skips what is already stamped and recorded with the same
    generation facts; other facts (say, --model) stamp again. Files of the
    folders that are not images or audio (WAV, FLAC, MP3, M4A, OGG) are
    ignored and counted. OGG cannot embed credentials: they are written
    beside it as NAME.c2pa (verify finds them there). One bad file is
    reported and the rest go on; the exit code is 6 if any file failed.
    Ctrl-C or SIGTERM stops handing out files, lets the ones in progress
    finish and reports what was done (exit 130, or 143 for SIGTERM); a
    second Ctrl-C abandons the files in progress. Re-run to resume.
    """
    loader = identity_loader(identity_dir, key_path, cert_path, tsa_url)
    info = generation_info(generation, required=True)
    assert info is not None
    store = store_path or default_store_location()
    interactive = sys.stderr.isatty()
    bar = tqdm(unit="file", disable=not interactive, file=sys.stderr, dynamic_ncols=True)

    def planned(total: int) -> None:
        bar.total = total
        bar.refresh()

    def say(text: str) -> None:
        (bar.write if interactive else click.echo)(printable(text), file=sys.stderr)

    def progress(outcome: FileOutcome) -> None:
        if outcome.status == "ignored":
            return  # counted in the summary, listed in --json
        for warning in outcome.warnings:
            say(f"warning: {warning}")
        if outcome.note:
            say(f"note: {outcome.input}: {outcome.note}")
        if interactive:
            if outcome.output is not None:
                bar.update(1)
            if outcome.status == "failed":
                say(f"failed: {outcome.error}")
        else:
            detail = outcome.error if outcome.status == "failed" else outcome.identifier
            say(f"{outcome.status}: {outcome.input} ({detail})")

    def interrupted(signum: int) -> None:
        say(
            f"{signal.Signals(signum).name}: finishing the files in progress, then stopping "
            "(press Ctrl-C again to abandon them)"
        )

    try:
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
            include=includes or None,
            exclude=excludes,
            force=force,
            quality=quality,
            bit_rate=bitrate_kbps * 1000 if bitrate_kbps is not None else None,
            on_interrupt=interrupted,
            scheduler=scheduler,
        )
    except BatchInterrupted as stopped:
        bar.close()
        _summary(stopped.report, store, as_json)
        raise SystemExit(128 + stopped.signum) from None
    bar.close()
    _summary(report, store, as_json)
    if report.failed:
        raise SystemExit(int(ExitCode.PARTIAL_FAILURE))


def _summary(report: BatchReport, store: str | Path, as_json: bool) -> None:
    counts = report.counts()
    rate = counts["stamped"] / report.seconds if report.seconds else 0.0
    ignored = ""
    if counts["ignored"]:
        names = [Path(o.input).name for o in report.outcomes if o.status == "ignored"]
        shown = ", ".join(names[:3]) + (", ..." if len(names) > 3 else "")
        ignored = f", {counts['ignored']} ignored ({shown})"
    line = (
        f"{counts['stamped']} stamped, {counts['skipped']} already done{ignored}, {counts['failed']} failed "
        f"in {report.seconds:.1f}s ({rate:.1f} files/s); store: {describe_store(store)}"
    )
    if report.interrupted_by is not None:
        line = (
            f"interrupted: {line}; {len(report.not_done)} not done "
            "(run the same command again to finish them)"
        )
    click.echo(printable(line), err=True)
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2))
