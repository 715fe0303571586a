"""The PostgreSQL manifest store: one database shared by many stamping machines and services.

    >>> from provenance.store import open_store
    >>> open_store("postgresql://nobody@127.0.0.1:1/none")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    provenance.errors.StoreError: postgresql://nobody@127.0.0.1:1/none: cannot connect to the manifest ...

Any libpq connection URL works (``postgresql://user@host:5432/db``); the
password is best left out of it and given by ``$PGPASSWORD`` or
``~/.pgpass``, as libpq reads them. The schema is the one of
:data:`provenance.store.MIGRATIONS`, applied under a transaction-scoped
advisory lock so that many workers opening the same new database at once
migrate it exactly once; its version is kept in the ``provenance_schema``
table. Every write is one transaction (``INSERT ... ON CONFLICT DO NOTHING``
gives the same "recorded once" answer as SQLite under concurrent writers);
reads go through a small thread-safe connection pool, so one store object can
serve several threads.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from provenance.errors import StoreError
from provenance.store import (
    COLUMNS,
    MIGRATIONS,
    SCHEMA_VERSION,
    ManifestStore,
    StoreEntry,
    _Fingerprints,
    check_entry,
    check_schema_version,
    describe_store,
    entry_from_row,
)

if TYPE_CHECKING:
    import psycopg
    import psycopg_pool

__all__ = ["PostgresManifestStore"]

# pg_advisory_xact_lock key for schema migrations: an arbitrary constant that
# every provenance-kit process agrees on ("prov" in ASCII).
_MIGRATION_LOCK = 0x70726F76
_SELECT = f"SELECT {', '.join(COLUMNS)} FROM manifests"
_INSERT = (
    f"INSERT INTO manifests ({', '.join(COLUMNS)}) VALUES ({', '.join('%s' for _ in COLUMNS)}) "
    "ON CONFLICT DO NOTHING"
)


def _driver() -> Any:
    try:
        import psycopg
        import psycopg_pool
    except ImportError:
        raise StoreError(
            "a PostgreSQL store needs the psycopg driver: pip install 'provenance-kit[postgres]'"
        ) from None
    return psycopg, psycopg_pool


class PostgresManifestStore(ManifestStore):
    """A manifest store in a PostgreSQL database (``postgresql://`` URL)."""

    def __init__(self, url: str, *, pool_size: int = 4, timeout: float = 30.0) -> None:
        driver, pools = _driver()
        self.url = url
        self._name = describe_store(url)
        self._errors: tuple[type[BaseException], ...] = (driver.Error, pools.PoolTimeout)
        self._unique_violation: type[BaseException] = driver.errors.UniqueViolation
        try:
            # One direct connection first: a wrong host, database or password
            # is reported at once with libpq's own words, not as a pool timeout.
            with driver.connect(url, autocommit=True, connect_timeout=int(timeout)) as conn:
                self._migrate(conn)
        except driver.Error as exc:
            raise StoreError(
                f"{self._name}: cannot connect to the manifest store ({_first_line(exc)})"
            ) from None
        # autocommit: a lookup is one round trip; writes open their own transaction.
        self._pool: psycopg_pool.ConnectionPool[psycopg.Connection[Any]] = pools.ConnectionPool(
            url,
            min_size=1,
            max_size=max(1, pool_size),
            kwargs={"autocommit": True},
            timeout=timeout,
            open=False,
            name="provenance-store",
        )
        self._pool.open(wait=False)

    def _migrate(self, conn: psycopg.Connection[Any]) -> None:
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
            conn.execute("CREATE TABLE IF NOT EXISTS provenance_schema (version INTEGER NOT NULL)")
            row = conn.execute("SELECT version FROM provenance_schema").fetchone()
            if row is None:
                conn.execute("INSERT INTO provenance_schema (version) VALUES (0)")
                current = 0
            else:
                current = int(row[0])
            check_schema_version(current, self._name)
            for version in range(current, SCHEMA_VERSION):
                for statement in MIGRATIONS[version].statements("postgresql"):
                    conn.execute(statement)
                conn.execute("UPDATE provenance_schema SET version = %s", (version + 1,))

    @contextlib.contextmanager
    def _connection(self, doing: str) -> Iterator[psycopg.Connection[Any]]:
        try:
            with self._pool.connection() as conn:
                yield conn
        except self._errors as exc:
            raise StoreError(f"{self._name}: cannot {doing} ({_first_line(exc)})") from None

    @property
    def schema_version(self) -> int:
        with self._connection("read the manifest store") as conn:
            row = conn.execute("SELECT version FROM provenance_schema").fetchone()
            return int(row[0]) if row else 0

    def record(self, entry: StoreEntry) -> bool:
        check_entry(entry)
        with self._connection("record the manifest") as conn:
            cursor = conn.execute(_INSERT, [getattr(entry, c) for c in COLUMNS])
            return cursor.rowcount == 1

    def supersede(self, entry: StoreEntry) -> bool:
        check_entry(entry)
        columns = [c for c in COLUMNS if c != "payload"]
        assignments = ", ".join(f"{c} = %s" for c in columns)
        with self._connection("record the manifest") as conn:
            try:
                cursor = conn.execute(
                    f"UPDATE manifests SET {assignments} WHERE payload = %s",
                    [*(getattr(entry, c) for c in columns), entry.payload],
                )
            except self._unique_violation:
                return False  # the new manifest label is already recorded elsewhere
            return cursor.rowcount == 1

    def _select(self, tail: str, args: tuple[object, ...] = ()) -> list[StoreEntry]:
        with self._connection("read the manifest store") as conn:
            rows = conn.execute(f"{_SELECT} {tail}", args).fetchall()
        return [entry_from_row(row) for row in rows]

    def _one(self, tail: str, args: tuple[object, ...]) -> StoreEntry | None:
        rows = self._select(tail, args)
        return rows[0] if rows else None

    def get_by_payload(self, payload: bytes) -> StoreEntry | None:
        return self._one("WHERE payload = %s LIMIT 1", (payload,))

    def get_by_label(self, label: str) -> StoreEntry | None:
        return self._one("WHERE manifest_label = %s LIMIT 1", (label,))

    def find_stamped(self, source_sha256: str, output_path: str) -> StoreEntry | None:
        # Newest first, as in SQLite: the latest record describes the file on disk.
        return self._one(
            "WHERE source_sha256 = %s AND output_path = %s ORDER BY id DESC LIMIT 1",
            (source_sha256, output_path),
        )

    def list(self, limit: int = 100, offset: int = 0) -> list[StoreEntry]:
        return self._select("ORDER BY id DESC LIMIT %s OFFSET %s", (limit, offset))

    def iter_entries(self, batch_size: int = 500) -> Iterator[StoreEntry]:
        # One query, streamed through a server-side cursor: batch_size rows at a time.
        with (
            self._connection("read the manifest store") as conn,
            conn.transaction(),
            conn.cursor(name="provenance_iter_entries") as cursor,
        ):
            cursor.itersize = batch_size
            cursor.execute(f"{_SELECT} ORDER BY id")
            for row in cursor:
                yield entry_from_row(row)

    def label_for_payload(self, payload: bytes) -> str | None:
        with self._connection("read the manifest store") as conn:
            query = "SELECT manifest_label FROM manifests WHERE payload = %s"
            row = conn.execute(query, (payload,)).fetchone()
        return str(row[0]) if row is not None else None

    def fingerprints_after(self, cursor: int, limit: int = 10_000) -> tuple[int, _Fingerprints]:
        # The row id is the position: an indexed range scan, not the generic
        # version's COUNT(*), which reads the whole table on every refresh.
        with self._connection("read the manifest store") as conn:
            rows = conn.execute(
                "SELECT id, payload, pdq_hash, pdq_window FROM manifests WHERE id > %s ORDER BY id LIMIT %s",
                (cursor, limit),
            ).fetchall()
        if not rows:
            return cursor, []
        return int(rows[-1][0]), [
            (bytes(p), bytes(h), bytes(w) if w is not None else None) for _, p, h, w in rows if h is not None
        ]

    def count(self) -> int:
        with self._connection("read the manifest store") as conn:
            row = conn.execute("SELECT COUNT(*) FROM manifests").fetchone()
            return int(row[0]) if row else 0

    def close(self) -> None:
        self._pool.close()


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
