"""The manifest store, on both backends (SQLite and PostgreSQL): lookups, schema
migration, concurrent writers, crash safety, how a store is named."""

from __future__ import annotations

import json
import multiprocessing
import sqlite3
import subprocess
import sys
import textwrap
import threading
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner

from provenance.errors import StoreError
from provenance.store import (
    SCHEMA_VERSION,
    STORE_ENV,
    SQLiteManifestStore,
    StoreEntry,
    default_store_location,
    default_store_path,
    describe_store,
    is_store_url,
    open_existing_store,
    open_store,
)

from .pgserver import PostgresServer


def _entry(i: int) -> StoreEntry:
    return StoreEntry(
        payload=i.to_bytes(8, "big"),
        manifest_label=f"urn:c2pa:test-{i}",
        manifest_store=b"jumbf" * 10,
        mime="image/png",
        fingerprint_image=b"png",
        source_sha256=f"{i:064x}",
        output_path=f"/out/{i}.png",
        created_at="2026-12-01T12:00:00+00:00",
    )


def _backend(location: str) -> str:
    return "postgresql" if is_store_url(location) else "sqlite"


def test_record_lookup_list_and_no_duplicates(store_location: str) -> None:
    with open_store(store_location) as store:
        assert store.record(_entry(1)) is True
        assert store.record(_entry(1)) is False  # same identifier: recorded once
        assert store.record(_entry(2)) is True
        clash = StoreEntry(
            payload=(9).to_bytes(8, "big"),
            manifest_label="urn:c2pa:test-2",
            manifest_store=b"x",
            mime="image/png",
        )
        assert store.record(clash) is False  # same manifest label: refused too
        assert store.count() == 2
        assert store.get_by_payload((1).to_bytes(8, "big")) == _entry(1)
        assert store.get_by_label("urn:c2pa:test-2") == _entry(2)
        assert store.get_by_payload(b"\xff" * 8) is None
        assert store.get_by_label("urn:c2pa:nothing") is None
        assert [e.manifest_label for e in store.list()] == ["urn:c2pa:test-2", "urn:c2pa:test-1"]
        assert [e.manifest_label for e in store.list(limit=1, offset=1)] == ["urn:c2pa:test-1"]
        assert store.find_stamped(f"{1:064x}", "/out/1.png") == _entry(1)
        assert store.find_stamped(f"{1:064x}", "/elsewhere.png") is None
        assert store.schema_version == SCHEMA_VERSION
        with pytest.raises(StoreError, match="exactly 8 bytes"):
            store.record(StoreEntry(payload=b"short", manifest_label="l", manifest_store=b"", mime="x"))


def test_find_stamped_returns_the_newest_record(store_location: str) -> None:
    with open_store(store_location) as store:
        first = StoreEntry(
            payload=b"\x01" * 8,
            manifest_label="urn:a",
            manifest_store=b"a",
            mime="image/png",
            source_sha256="s",
            output_path="/o.png",
            asset_sha256="old",
        )
        second = StoreEntry(
            payload=b"\x02" * 8,
            manifest_label="urn:b",
            manifest_store=b"b",
            mime="image/png",
            source_sha256="s",
            output_path="/o.png",
            asset_sha256="new",
        )
        assert store.record(first) and store.record(second)
        found = store.find_stamped("s", "/o.png")
        assert found is not None and found.asset_sha256 == "new"


def test_the_store_survives_reopening(store_location: str) -> None:
    with open_store(store_location) as store:
        store.record(_entry(5))
    with open_store(store_location) as again:
        assert again.get_by_payload((5).to_bytes(8, "big")) == _entry(5)
        assert again.count() == 1


def test_supersede_replaces_the_entry_of_an_identifier(store_location: str) -> None:
    import dataclasses

    with open_store(store_location) as store:
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


def test_fingerprints_and_labels_for_resolution(store_location: str) -> None:
    # What a resolution service reads: the new fingerprints since its last look
    # (an indexed range on both backends) and a label by identifier.
    with open_store(store_location) as store:
        for i in range(1, 5):
            entry = _entry(i)
            # Entry 2 as recorded before schema v7: no window hash.
            window = bytes([100 + i]) * 32 if i != 2 else None
            store.record(replace(entry, pdq_hash=bytes([i]) * 32, pdq_window=window) if i != 3 else entry)
        cursor, rows = store.fingerprints_after(0, limit=2)
        assert rows == [
            (_entry(1).payload, bytes([1]) * 32, bytes([101]) * 32),
            (_entry(2).payload, bytes([2]) * 32, None),
        ]
        cursor, rows = store.fingerprints_after(cursor)
        assert rows == [(_entry(4).payload, bytes([4]) * 32, bytes([104]) * 32)]  # entry 3 has no fingerprint
        assert store.fingerprints_after(cursor) == (cursor, [])
        store.record(replace(_entry(5), pdq_hash=bytes([5]) * 32))
        assert store.fingerprints_after(cursor)[1] == [(_entry(5).payload, bytes([5]) * 32, None)]
        assert store.get_by_payload(_entry(4).payload).pdq_window == bytes([104]) * 32  # type: ignore[union-attr]
        assert store.label_for_payload(_entry(2).payload) == "urn:c2pa:test-2"
        assert store.label_for_payload(bytes(8)) is None


def test_default_location_follows_provenance_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROVENANCE_HOME", str(tmp_path))
    monkeypatch.delenv(STORE_ENV, raising=False)
    assert default_store_path() == tmp_path / "manifests.db"
    assert default_store_location() == tmp_path / "manifests.db"
    assert open_existing_store() is None  # verifying never creates a store
    with open_store() as store:
        store.record(_entry(7))
    assert (tmp_path / "manifests.db").exists()
    existing = open_existing_store()
    assert existing is not None and existing.count() == 1
    existing.close()


def test_provenance_store_names_the_default_store(
    store_location: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(STORE_ENV, store_location)
    with open_store() as store:
        store.record(_entry(8))
    with open_store(store_location) as store:
        assert store.count() == 1
    named = open_existing_store()
    assert named is not None and named.count() == 1
    named.close()
    from cli.main import cli  # here: the writer processes of this module should start fast

    result = CliRunner().invoke(cli, ["store", "list", "--json"])
    assert result.exit_code == 0, result.stderr
    assert '"count": 1' in result.stdout


def test_migrates_a_version_1_sqlite_store_keeping_its_data(tmp_path: Path) -> None:
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


def test_migrates_a_version_1_postgresql_store_keeping_its_data(
    postgres_server: PostgresServer, postgres_url: str
) -> None:
    postgres_server.execute(
        postgres_url,
        """
        CREATE TABLE manifests (id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
            payload BYTEA NOT NULL UNIQUE, manifest_label TEXT NOT NULL UNIQUE,
            manifest_store BYTEA NOT NULL, mime TEXT NOT NULL, soft_binding_alg TEXT,
            soft_binding_value TEXT, fingerprint TEXT, created_at TEXT NOT NULL);
        INSERT INTO manifests (payload, manifest_label, manifest_store, mime, created_at)
            VALUES ('\\x0000000000000001', 'urn:c2pa:old', '\\x00', 'image/jpeg', '2026-01-01');
        CREATE TABLE provenance_schema (version INTEGER NOT NULL);
        INSERT INTO provenance_schema VALUES (1);
    """,
    )
    with open_store(postgres_url) as store:
        assert store.schema_version == SCHEMA_VERSION
        old = store.get_by_label("urn:c2pa:old")
        assert old is not None and old.payload == (1).to_bytes(8, "big")
        assert old.source_sha256 is None and old.fingerprint_image is None
        assert store.record(_entry(3))


def _make_newer(location: str, server: PostgresServer | None) -> None:
    if _backend(location) == "sqlite":
        db = sqlite3.connect(location)
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
        db.close()
    else:
        assert server is not None
        server.execute(location, f"UPDATE provenance_schema SET version = {SCHEMA_VERSION + 1}")


def test_refuses_a_newer_schema(store_location: str, request: pytest.FixtureRequest) -> None:
    server = request.getfixturevalue("postgres_server") if _backend(store_location) == "postgresql" else None
    if server is not None:
        open_store(store_location).close()  # PostgreSQL: create it, then pretend a newer version wrote it
    _make_newer(store_location, server)
    with pytest.raises(StoreError, match="newer than this version understands"):
        open_store(store_location)


def test_not_a_database(tmp_path: Path) -> None:
    (tmp_path / "junk.db").write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match="cannot open"):
        open_store(tmp_path / "junk.db")


def test_unreachable_or_missing_postgresql_database(postgres_server: PostgresServer) -> None:
    with pytest.raises(StoreError, match="cannot connect to the manifest store") as missing:
        open_store(postgres_server.url_for("no_such_database"))
    assert "no_such_database" in str(missing.value) and "\n" not in str(missing.value)
    with pytest.raises(StoreError, match="cannot connect"):
        open_store("postgresql://someone:hunter2@127.0.0.1:1/db")


def test_a_url_password_is_never_shown() -> None:
    assert describe_store("postgresql://ann:s3cret@db.example/prov") == "postgresql://ann:***@db.example/prov"
    assert "s3cret" not in describe_store("postgres://db/prov?password=s3cret&sslmode=require")
    assert describe_store("/tmp/m.db") == "/tmp/m.db"
    assert is_store_url("postgres://h/db") and not is_store_url("postgresql.db")
    assert not is_store_url(Path("postgresql://h/db"))  # a Path is always a file


def test_a_password_in_the_url_does_not_leak_into_errors() -> None:
    with pytest.raises(StoreError) as err:
        open_store("postgresql://someone:hunter2@127.0.0.1:1/db")
    assert "hunter2" not in str(err.value)


def test_missing_driver_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)
    with pytest.raises(StoreError, match=r"pip install 'provenance-kit\[postgres\]'"):
        open_store("postgresql://localhost/db")


def _writer(location: str, start: int) -> None:
    with open_store(location) as store:
        for i in range(start, start + 40):
            store.record(_entry(i))


def test_concurrent_writers_from_several_processes(store_location: str) -> None:
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_writer, args=(store_location, n * 40)) for n in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
        assert p.exitcode == 0
    with open_store(store_location) as store:
        assert store.count() == 160


def _racer(location: str, results: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    # Every process opens a brand-new store at once (racing the migration)
    # and tries to record the same entries: each must be recorded exactly once.
    with open_store(location) as store:
        results.put(sum(store.record(_entry(i)) for i in range(30)))


def test_racing_writers_record_each_entry_exactly_once(store_location: str) -> None:
    ctx = multiprocessing.get_context("spawn")
    results = ctx.Queue()
    procs = [ctx.Process(target=_racer, args=(store_location, results)) for _ in range(4)]
    for p in procs:
        p.start()
    counts = [results.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    assert sum(counts) == 30
    with open_store(store_location) as store:
        assert store.count() == 30
        assert store.schema_version == SCHEMA_VERSION


def test_one_postgresql_store_serves_several_threads(postgres_url: str) -> None:
    with open_store(postgres_url) as store:
        errors: list[BaseException] = []

        def work(start: int) -> None:
            try:
                for i in range(start, start + 25):
                    assert store.record(_entry(i))
                    assert store.get_by_payload(i.to_bytes(8, "big")) == _entry(i)
            except BaseException as exc:  # reported below: a thread's failure must fail the test
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(n * 25,)) for n in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        assert store.count() == 150


_KILLED_WRITER = {
    "sqlite": """
        import os, sqlite3
        db = sqlite3.connect({location!r}, isolation_level=None)
        db.execute("BEGIN IMMEDIATE")
        db.execute("INSERT INTO manifests (payload, manifest_label, manifest_store, mime, created_at)"
                   " VALUES (x'00000000000000ff', 'urn:c2pa:half', x'00', 'image/png', 'now')")
        os._exit(9)
    """,
    "postgresql": """
        import os, psycopg
        db = psycopg.connect({location!r})
        db.execute("INSERT INTO manifests (payload, manifest_label, manifest_store, mime, created_at)"
                   " VALUES ('\\\\x00000000000000ff', 'urn:c2pa:half', '\\\\x00', 'image/png', 'now')")
        assert db.execute("SELECT count(*) FROM manifests").fetchone()[0] == 2  # inside its transaction
        os._exit(9)
    """,
}


def test_a_process_killed_mid_write_loses_nothing_committed(store_location: str) -> None:
    with open_store(store_location) as store:
        store.record(_entry(1))
    # A writer that dies (SIGKILL-like os._exit) inside an open transaction.
    script = textwrap.dedent(_KILLED_WRITER[_backend(store_location)].format(location=store_location))
    proc = subprocess.run([sys.executable, "-c", script], check=False, capture_output=True, text=True)
    assert proc.returncode == 9, proc.stderr
    with open_store(store_location) as store:
        assert store.count() == 1
        assert store.get_by_label("urn:c2pa:half") is None
        assert store.record(_entry(2))  # and the store is writable again


def test_sqlite_store_is_still_the_sqlite_class(tmp_path: Path) -> None:
    assert isinstance(open_store(tmp_path / "m.db"), SQLiteManifestStore)


def test_every_command_takes_either_store(store_location: str, identity_dir: Path, tmp_path: Path) -> None:
    from PIL import Image

    from cli.main import cli

    from .conftest import encode, photo

    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "coffee.png").write_bytes(encode(photo("coffee"), "PNG"))
    runner = CliRunner()
    args = ["stamp", str(tmp_path / "in"), "-o", str(tmp_path / "out"), "--identity", str(identity_dir)]
    stamped = runner.invoke(cli, [*args, "--store", store_location, "--jobs", "1", "--json"])
    assert stamped.exit_code == 0, stamped.stderr
    identifier = json.loads(stamped.stdout)["files"][0]["identifier"]
    # Strip the credentials: the pixels (and the watermark) stay, the manifest goes.
    Image.open(tmp_path / "out" / "coffee.png").convert("RGB").save(tmp_path / "stripped.jpg", quality=92)
    stripped = str(tmp_path / "stripped.jpg")
    verified = runner.invoke(cli, ["verify", stripped, "--store", store_location, "--json"])
    assert verified.exit_code == 0, verified.stderr
    report = json.loads(verified.stdout)
    assert report["recovered"] is True and report["watermark"]["payload"] == identifier
    shown = runner.invoke(cli, ["store", "show", identifier, "--store", store_location])
    assert shown.exit_code == 0 and json.loads(shown.stdout)["identifier"] == identifier
    exported = runner.invoke(
        cli, ["store", "export", identifier, "-o", str(tmp_path / "m.c2pa"), "--store", store_location]
    )
    assert exported.exit_code == 0 and (tmp_path / "m.c2pa").stat().st_size > 1000


def test_store_path_shows_the_named_store_without_its_password(monkeypatch: pytest.MonkeyPatch) -> None:
    from cli.main import cli

    monkeypatch.setenv(STORE_ENV, "postgresql://ann:s3cret@db.example.org/prov")
    result = CliRunner().invoke(cli, ["store", "path"])
    assert result.exit_code == 0
    assert result.stdout.strip() == "postgresql://ann:***@db.example.org/prov"


def test_an_unreachable_postgresql_store_is_one_clear_cli_error() -> None:
    from cli.main import cli

    result = CliRunner().invoke(cli, ["store", "list", "--store", "postgresql://ann:s3cret@127.0.0.1:1/prov"])
    assert result.exit_code == 8
    assert result.stderr.startswith("error: postgresql://ann:***@127.0.0.1:1/prov: cannot connect")
    assert "s3cret" not in result.stderr and "Traceback" not in result.stderr and result.stdout == ""


def test_find_iterate_and_export_on_either_backend(store_location: str, tmp_path: Path) -> None:
    from provenance.errors import EntryNotFoundError
    from provenance.store import export_manifests

    with open_store(store_location) as store:
        for i in (3, 1, 2):
            store.record(_entry(i))
        assert store.find((1).to_bytes(8, "big").hex()) == _entry(1)
        assert store.find("urn:c2pa:test-2") == _entry(2)
        with pytest.raises(EntryNotFoundError):
            store.find("urn:c2pa:nothing")
        assert [e.manifest_label for e in store.iter_entries(batch_size=2)] == [
            "urn:c2pa:test-3",
            "urn:c2pa:test-1",
            "urn:c2pa:test-2",
        ]  # oldest first, across batches
        report = export_manifests(store, tmp_path / "exported")
    assert sorted(p.name for p in report.written) == [f"{i:016x}.c2pa" for i in (1, 2, 3)]
    assert (tmp_path / "exported" / f"{2:016x}.c2pa").read_bytes() == _entry(2).manifest_store



def _open_new_store_together(path: str, barrier: threading.Barrier) -> str:
    barrier.wait()
    try:
        SQLiteManifestStore(path).close()
    except StoreError as exc:
        return exc.message
    return "ok"


def test_processes_creating_one_new_store_together_all_open_it(tmp_path: Path) -> None:
    # Batch runs started together on a fresh store: SQLite refuses a concurrent
    # switch to WAL at once ("database is locked") instead of waiting it out.
    context = multiprocessing.get_context("fork")
    failures: list[str] = []
    with context.Manager() as manager, context.Pool(4) as pool:
        for trial in range(8):
            path = str(tmp_path / f"new-{trial}.db")
            barrier = manager.Barrier(4)
            results = pool.starmap(_open_new_store_together, [(path, barrier)] * 4)
            failures += [r for r in results if r != "ok"]
    assert failures == []
