"""``provenance store``: look into the manifest store."""

from __future__ import annotations

import json
from pathlib import Path

import click

from provenance._internal.files import atomic_write
from provenance.errors import UsageError
from provenance.store import StoreEntry, default_store_location, describe_store, open_store

_STORE = click.option(
    "--store",
    "store_path",
    help="Manifest store: a SQLite file or a postgresql:// URL "
    "(default: $PROVENANCE_STORE, else $PROVENANCE_HOME/manifests.db).",
)


@click.group("store")
def command() -> None:
    """List, show and export manifests recorded by 'provenance stamp'."""


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


def _find(store_path: str | None, ref: str) -> StoreEntry:
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
    """Print where the default store is (a URL's password masked)."""
    click.echo(describe_store(default_store_location()))


@command.command("list")
@_STORE
@click.option("--limit", default=50, show_default=True, type=click.IntRange(min=1))
@click.option("--json", "as_json", is_flag=True)
def list_(store_path: str | None, limit: int, as_json: bool) -> None:
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
def show(ref: str, store_path: str | None) -> None:
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
def export(ref: str, output: Path, store_path: str | None) -> None:
    """Write the signed manifest store of an entry to a .c2pa file."""
    entry = _find(store_path, ref)
    atomic_write(output, entry.manifest_store)
    click.echo(f"exported {entry.manifest_label} -> {output}", err=True)
