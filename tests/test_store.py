"""The SQLite manifest store: lookups, schema migration, concurrent writers, crash safety."""

from __future__ import annotations

import multiprocessing
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from provenance.errors import StoreError
from provenance.store import SCHEMA_VERSION, StoreEntry, default_store_path, open_store


def _entry(i: int) -> StoreEntry:
    return StoreEntry(
        payload=i.to_bytes(8, "big"),
        manifest_label=f"urn:c2pa:test-{i}",
        manifest_store=b"jumbf" * 10,
        mime="image/png",
        fingerprint_image=b"png",
        source_sha256=f"{i:064x}",
        output_path=f"/out/{i}.png",
    )


def test_record_lookup_list_and_no_duplicates(tmp_path: Path) -> None:
    with open_store(tmp_path / "m.db") as store:
        assert store.record(_entry(1)) is True
        assert store.record(_entry(1)) is False  # same identifier: recorded once
        assert store.record(_entry(2)) is True
        assert store.count() == 2
        assert store.get_by_payload((1).to_bytes(8, "big")) == _entry(1)
        assert store.get_by_label("urn:c2pa:test-2") == _entry(2)
        assert store.get_by_payload(b"\xff" * 8) is None
        assert [e.manifest_label for e in store.list()] == ["urn:c2pa:test-2", "urn:c2pa:test-1"]
        assert store.find_stamped(f"{1:064x}", "/out/1.png") == _entry(1)
        assert store.find_stamped(f"{1:064x}", "/elsewhere.png") is None


def test_supersede_replaces_the_entry_of_an_identifier(tmp_path: Path) -> None:
    import dataclasses

    with open_store(tmp_path / "m.db") as store:
        store.record(_entry(1))
        store.record(_entry(2))
        newer = dataclasses.replace(_entry(1), manifest_label="urn:c2pa:restamped", facts_sha256="f" * 64)
        assert store.supersede(newer) is True
        assert store.count() == 2
        assert store.get_by_payload((1).to_bytes(8, "big")) == newer
        assert store.get_by_label("urn:c2pa:test-1") is None
        assert store.supersede(_entry(3)) is False  # no such identifier: nothing changes
        clash = dataclasses.replace(_entry(1), manifest_label="urn:c2pa:test-2")
        assert store.supersede(clash) is False  # that label belongs to another entry
        assert store.get_by_payload((1).to_bytes(8, "big")) == newer


def test_default_location_follows_provenance_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROVENANCE_HOME", str(tmp_path))
    assert default_store_path() == tmp_path / "manifests.db"
    with open_store() as store:
        store.record(_entry(7))
    assert (tmp_path / "manifests.db").exists()


def test_migrates_a_version_1_store_keeping_its_data(tmp_path: Path) -> None:
    db = sqlite3.connect(tmp_path / "old.db")
    db.executescript("""
        CREATE TABLE manifests (id INTEGER PRIMARY KEY, payload BLOB NOT NULL UNIQUE,
            manifest_label TEXT NOT NULL UNIQUE, manifest_store BLOB NOT NULL, mime TEXT NOT NULL,
            soft_binding_alg TEXT, soft_binding_value TEXT, fingerprint TEXT, created_at TEXT NOT NULL);
        INSERT INTO manifests (payload, manifest_label, manifest_store, mime, created_at)
            VALUES (x'0000000000000001', 'urn:c2pa:old', x'00', 'image/jpeg', '2026-01-01');
        PRAGMA user_version = 1;
    """)
    db.close()
    with open_store(tmp_path / "old.db") as store:
        assert store.schema_version == SCHEMA_VERSION
        old = store.get_by_label("urn:c2pa:old")
        assert old is not None and old.source_sha256 is None and old.fingerprint_image is None
        assert store.record(_entry(3))


def test_refuses_a_newer_schema(tmp_path: Path) -> None:
    db = sqlite3.connect(tmp_path / "new.db")
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.close()
    with pytest.raises(StoreError, match="newer"):
        open_store(tmp_path / "new.db")


def test_not_a_database(tmp_path: Path) -> None:
    (tmp_path / "junk.db").write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match="cannot open"):
        open_store(tmp_path / "junk.db")


def _writer(path: str, start: int) -> None:
    with open_store(path) as store:
        for i in range(start, start + 40):
            store.record(_entry(i))


def test_concurrent_writers_from_several_processes(tmp_path: Path) -> None:
    path = str(tmp_path / "shared.db")
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(path, n * 40)) for n in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
        assert p.exitcode == 0
    with open_store(path) as store:
        assert store.count() == 160


def test_a_process_killed_mid_write_loses_nothing_committed(tmp_path: Path) -> None:
    path = tmp_path / "crash.db"
    with open_store(path) as store:
        store.record(_entry(1))
    # A writer that dies (SIGKILL-like os._exit) inside an open transaction.
    script = textwrap.dedent(f"""
        import os, sqlite3
        db = sqlite3.connect({str(path)!r}, isolation_level=None)
        db.execute("BEGIN IMMEDIATE")
        db.execute("INSERT INTO manifests (payload, manifest_label, manifest_store, mime, created_at)"
                   " VALUES (x'00000000000000ff', 'urn:c2pa:half', x'00', 'image/png', 'now')")
        os._exit(9)
    """)
    proc = subprocess.run([sys.executable, "-c", script], check=False)
    assert proc.returncode == 9
    with open_store(path) as store:
        assert store.count() == 1
        assert store.get_by_label("urn:c2pa:half") is None
        assert store.record(_entry(2))  # and the store is writable again
