"""``provenance store``: look into the manifest store."""

from __future__ import annotations

import json
import os
from pathlib import Path

import click

from provenance._internal.files import atomic_write, read_input
from provenance.errors import UsageError
from provenance.resolution import register
from provenance.store import StoreEntry, default_store_path, open_store

_STORE = click.option(
    "--store",
    "store_path",
    type=click.Path(path_type=Path),
    help="Manifest store (default: $PROVENANCE_HOME/manifests.db).",
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


def _find(store_path: Path | None, ref: str) -> StoreEntry:
    with open_store(store_path) as store:
        entry = None
        if len(ref) == 16:
            try:
                entry = store.get_by_payload(bytes.fromhex(ref))
            except ValueError:
                entry = None
        entry = entry or store.get_by_label(ref)
    if entry is None:
        raise UsageError(f"nothing in the store for {ref!r} (give an identifier or a manifest label)")
    return entry


@command.command("path")
def path() -> None:
    """Print where the default store is."""
    click.echo(str(default_store_path()))


@command.command("list")
@_STORE
@click.option("--limit", default=50, show_default=True, type=click.IntRange(min=1))
@click.option("--json", "as_json", is_flag=True)
def list_(store_path: Path | None, limit: int, as_json: bool) -> None:
    """List the newest entries."""
    with open_store(store_path) as store:
        entries = store.list(limit=limit)
        total = store.count()
    if as_json:
        click.echo(json.dumps({"count": total, "entries": [_summary(e) for e in entries]}, indent=2))
        return
    for e in entries:
        click.echo(f"{e.payload_hex}  {e.created_at}  {e.manifest_label}  {e.title or ''}")
    click.echo(f"{len(entries)} of {total} entries", err=True)


@command.command("show")
@click.argument("ref")
@_STORE
def show(ref: str, store_path: Path | None) -> None:
    """Show the entry for an identifier (16 hex digits) or a manifest label, as JSON."""
    click.echo(json.dumps(_summary(_find(store_path, ref)), indent=2))


@command.command("export")
@click.argument("ref")
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(path_type=Path),
    help="Where to write the manifest store (.c2pa).",
)
@_STORE
def export(ref: str, output: Path, store_path: Path | None) -> None:
    """Write the signed manifest store of an entry to a .c2pa file."""
    entry = _find(store_path, ref)
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
    entry = _find(store_path, ref)
    if asset is None and entry.output_path and Path(entry.output_path).is_file():
        asset = Path(entry.output_path)
    data = read_input(asset) if asset is not None else None
    answer = register(url, entry.manifest_store, data, token)
    click.echo(json.dumps(answer))
    if data is None:
        click.echo("note: no asset sent, so the service cannot match this image by its fingerprint", err=True)
