"""``provenance store``: look into the manifest store."""

from __future__ import annotations

import json
import os
from pathlib import Path

import click

from provenance._internal.files import atomic_write, read_input
from provenance._internal.names import printable
from provenance.errors import UsageError
from provenance.resolution import register
from provenance.store import StoreEntry, default_store_location, describe_store, export_manifests, open_store

_STORE = click.option(
    "--store",
    "store_path",
    help="Manifest store: a SQLite file or a postgresql:// URL "
    "(default: $PROVENANCE_STORE, else $PROVENANCE_HOME/manifests.db).",
)


@click.group("store")
def command() -> None:
    """List, show, export and push manifests recorded by 'provenance stamp'."""


def _summary(entry: StoreEntry) -> dict[str, object]:
    return {
        "identifier": entry.payload_hex,
        "manifest_label": entry.manifest_label,
        "format": entry.mime,
        "title": entry.title,
        "generator": entry.generator,
        "model": entry.model,
        "soft_binding": {"alg": entry.soft_binding_alg, "value": entry.soft_binding_value},
        "fingerprint_bytes": len(entry.fingerprint_image or b""),
        "output_path": entry.output_path,
        "created_at": entry.created_at,
        "manifest_bytes": len(entry.manifest_store),
    }


_COLUMNS = ("IDENTIFIER", "CREATED", "FORMAT", "MODEL", "TITLE", "MANIFEST LABEL")


def _row(entry: StoreEntry) -> tuple[str, ...]:
    return (
        entry.payload_hex,
        entry.created_at,
        entry.mime,
        entry.model or "-",
        entry.title or "-",
        entry.manifest_label,
    )


@command.command("path")
def path() -> None:
    """Print where the default store is (a URL's password masked)."""
    click.echo(describe_store(default_store_location()))


@command.command("list")
@_STORE
@click.option("--limit", default=50, show_default=True, type=click.IntRange(min=1))
@click.option("--offset", default=0, show_default=True, type=click.IntRange(min=0), help="Skip the newest N.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def list_(store_path: str | None, limit: int, offset: int, as_json: bool) -> None:
    """List the newest entries, as a table with a header (or JSON)."""
    with open_store(store_path) as store:
        entries = store.list(limit=limit, offset=offset)
        total = store.count()
    if as_json:
        click.echo(json.dumps({"count": total, "entries": [_summary(e) for e in entries]}, indent=2))
        return
    if not entries:
        click.echo(f"no entries (the store holds {total})", err=True)
        return
    rows = [_COLUMNS, *(_row(e) for e in entries)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(_COLUMNS) - 1)]
    for r in rows:
        click.echo("  ".join([*(cell.ljust(w) for cell, w in zip(r, widths, strict=False)), r[-1]]))
    click.echo(f"{len(entries)} of {total} entries", err=True)


@command.command("show")
@click.argument("ref")
@_STORE
def show(ref: str, store_path: str | None) -> None:
    """Show the entry for an identifier (16 hex digits) or a manifest label, as JSON."""
    with open_store(store_path) as store:
        entry = store.find(ref)
    click.echo(json.dumps(_summary(entry), indent=2))


@command.command("export")
@click.argument("ref", required=False)
@click.option(
    "-o",
    "--output",
    type=click.Path(path_type=Path),
    help="Where to write the manifest store of REF (.c2pa).",
)
@click.option(
    "--all",
    "all_dir",
    type=click.Path(path_type=Path),
    help="Export every entry into this folder, as IDENTIFIER.c2pa files (one pass).",
)
@click.option("--json", "as_json", is_flag=True, help="With --all: list what was written, as JSON.")
@_STORE
def export(
    ref: str | None, output: Path | None, all_dir: Path | None, as_json: bool, store_path: str | None
) -> None:
    """Write signed manifest stores to .c2pa files: REF -o FILE, or --all FOLDER."""
    if (ref is None) == (all_dir is None):
        raise click.UsageError("give either an identifier or label with -o FILE, or --all FOLDER")
    if all_dir is not None:
        if output is not None:
            raise click.UsageError("--all writes into its folder; drop -o")
        with open_store(store_path) as store:
            report = export_manifests(store, all_dir)
        if as_json:
            listing = [
                {"identifier": e.payload_hex, "manifest_label": e.manifest_label, "path": printable(p)}
                for e, p in zip(report.entries, report.written, strict=True)
            ]
            click.echo(json.dumps({"folder": printable(report.folder), "exported": listing}, indent=2))
        click.echo(f"exported {len(report.written)} manifests to {report.folder}", err=True)
        return
    if output is None:
        raise click.UsageError("-o FILE is required when exporting one entry")
    assert ref is not None  # checked above: exactly one of REF and --all
    with open_store(store_path) as store:
        entry = store.find(ref)
    atomic_write(output, entry.manifest_store)
    click.echo(f"exported {entry.manifest_label} -> {output}", err=True)


@command.command("push")
@click.argument("ref")
@click.option("--to", "url", required=True, metavar="URL", help="The resolution service (provenance serve).")
@click.option(
    "--asset",
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    help="The published file, so the service can fingerprint it (default: the stamped output, if it exists).",
)
@_STORE
def push(ref: str, url: str, asset: Path | None, store_path: Path | None) -> None:
    """Register an entry with a resolution service (bearer token in $PROVENANCE_TOKEN)."""
    token = os.environ.get("PROVENANCE_TOKEN", "")
    if not token:
        raise UsageError("set PROVENANCE_TOKEN to a write token of the service (never on the command line)")
    with open_store(store_path) as store:
        entry = store.find(ref)
    if asset is None and entry.output_path and Path(entry.output_path).is_file():
        asset = Path(entry.output_path)
    data = read_input(asset) if asset is not None else None
    answer = register(url, entry.manifest_store, data, token)
    click.echo(json.dumps(answer))
    if data is None:
        click.echo("note: no asset sent, so the service cannot match this image by its fingerprint", err=True)
