"""The manifest store: where signed manifests are kept so stripped credentials can be recovered.

    >>> import tempfile, os
    >>> from provenance.store import SQLiteManifestStore, StoreEntry
    >>> store = SQLiteManifestStore(os.path.join(tempfile.mkdtemp(), "manifests.db"))
    >>> entry = StoreEntry(payload=bytes(8), manifest_label="urn:c2pa:example",
    ...                    manifest_store=b"...", mime="image/png")
    >>> store.record(entry)
    True
    >>> store.get_by_payload(bytes(8)).manifest_label
    'urn:c2pa:example'

:class:`ManifestStore` is the small interface a resolution service needs;
:class:`SQLiteManifestStore` implements it with no set-up (one file, WAL
journal, safe for several processes writing at once, every write a
transaction so a killed process loses nothing already recorded).
:class:`PostgresManifestStore` (``open_store("postgresql://user@host/db")``,
needs ``pip install 'provenance-kit[postgres]'``) implements the same methods
for a store shared by many machines. Both go through the same numbered
schema migrations (:data:`MIGRATIONS`, one SQL text per backend) and refuse
a store whose schema is newer than this version understands.

Where a store is named, a path means SQLite and a ``postgresql://`` URL means
PostgreSQL; with no name, ``$PROVENANCE_STORE`` is used when set, else
``$PROVENANCE_HOME/manifests.db`` or the user data folder.

Backends implement the abstract methods; ``find``, ``iter_entries`` and
:func:`export_manifests` work on any backend (a backend may override
``iter_entries`` with a single streaming query, as both do). Export every
signed manifest in one pass::

    >>> report = export_manifests(store, tempfile.mkdtemp())
    >>> [p.name for p in report.written]
    ['0000000000000000.c2pa']
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import os
import sqlite3
import tempfile
import time
import urllib.parse
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from provenance._internal.files import _umask
from provenance.errors import EntryNotFoundError, OutputError, StoreError, UsageError

if TYPE_CHECKING:
    from provenance._internal.store_postgres import PostgresManifestStore

__all__ = [
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "STORE_ENV",
    "ExportReport",
    "ManifestStore",
    "Migration",
    "PostgresManifestStore",
    "SQLiteManifestStore",
    "StoreEntry",
    "default_store_location",
    "default_store_path",
    "describe_store",
    "export_manifests",
    "is_store_url",
    "open_existing_store",
    "open_store",
]

_log = logging.getLogger(__name__)

_Fingerprints = list[tuple[bytes, bytes, bytes | None]]
"""``(payload, pdq_hash, pdq_window)`` triples (``pdq_window`` None for entries recorded
before schema v7)."""

STORE_ENV = "PROVENANCE_STORE"
"""Environment variable naming the store (a path or a ``postgresql://`` URL) when none is given."""

_URL_SCHEMES = ("postgresql", "postgres")


@dataclass(frozen=True)
class StoreEntry:
    """One stamped asset: its watermark identifier and the manifest that describes it."""

    payload: bytes
    manifest_label: str
    manifest_store: bytes
    mime: str
    soft_binding_alg: str | None = None
    soft_binding_value: str | None = None
    fingerprint_image: bytes | None = None
    pdq_hash: bytes | None = None
    """32-byte PDQ perceptual hash of the published image (provenance/_internal/pdq.py)."""
    source_sha256: str | None = None
    asset_sha256: str | None = None
    output_path: str | None = None
    generator: str | None = None
    model: str | None = None
    title: str | None = None
    facts_sha256: str | None = None
    """Digest of what the stamp was made with (generation facts, watermark key,
    quality): a batch re-run with other facts stamps again instead of skipping."""
    fingerprint_audio: bytes | None = None
    """Spectral fingerprint of a stamped audio clip (provenance/_internal/audio_likeness.py):
    the likeness reference of audio, as ``fingerprint_image`` is of pictures."""
    pdq_window: bytes | None = None
    """32-byte PDQ hash of the blurred centre window of the published image, the
    crop-tolerant fingerprint (provenance/_internal/pdq.py, ``window_fingerprint``)."""
    created_at: str = field(
        default_factory=lambda: dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    )

    @property
    def payload_hex(self) -> str:
        return self.payload.hex()


COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(StoreEntry))
"""The stored columns, in :class:`StoreEntry` order (every backend reads and writes these)."""


def check_entry(entry: StoreEntry) -> None:
    """What every backend refuses before writing."""
    if not isinstance(entry, StoreEntry):
        raise UsageError(f"record takes a StoreEntry, not {type(entry).__name__}")
    if not isinstance(entry.payload, bytes) or len(entry.payload) != 8:
        raise StoreError("a watermark payload is exactly 8 bytes")


def entry_from_row(row: tuple[Any, ...]) -> StoreEntry:
    """A :class:`StoreEntry` from a row selected as :data:`COLUMNS`."""
    values = dict(zip(COLUMNS, row, strict=True))
    binary = ("payload", "manifest_store", "fingerprint_image", "pdq_hash", "fingerprint_audio", "pdq_window")
    for blob in binary:
        # Drivers may hand back memoryview/bytearray for binary columns.
        if values[blob] is not None and not isinstance(values[blob], bytes):
            values[blob] = bytes(values[blob])
    return StoreEntry(**values)


@dataclass(frozen=True)
class Migration:
    """One schema step, from version N-1 to N, written once per backend's SQL dialect.

    Statements are separated by ``;``. Every backend applies the same list in
    order inside one transaction per step, so both always have the same shape.
    """

    sqlite: str
    postgresql: str

    def statements(self, dialect: str) -> list[str]:
        text: str = getattr(self, dialect)
        return [s.strip() for s in text.split(";") if s.strip()]


# They only ever append: a store at version N has applied MIGRATIONS[:N].
MIGRATIONS: list[Migration] = [
    Migration(
        sqlite="""
        CREATE TABLE manifests (
            id INTEGER PRIMARY KEY,
            payload BLOB NOT NULL UNIQUE,
            manifest_label TEXT NOT NULL UNIQUE,
            manifest_store BLOB NOT NULL,
            mime TEXT NOT NULL,
            soft_binding_alg TEXT,
            soft_binding_value TEXT,
            fingerprint TEXT,
            created_at TEXT NOT NULL
        );
        """,
        postgresql="""
        CREATE TABLE manifests (
            id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
            payload BYTEA NOT NULL UNIQUE,
            manifest_label TEXT NOT NULL UNIQUE,
            manifest_store BYTEA NOT NULL,
            mime TEXT NOT NULL,
            soft_binding_alg TEXT,
            soft_binding_value TEXT,
            fingerprint TEXT,
            created_at TEXT NOT NULL
        );
        """,
    ),
    Migration(
        sqlite="""
        ALTER TABLE manifests ADD COLUMN source_sha256 TEXT;
        ALTER TABLE manifests ADD COLUMN asset_sha256 TEXT;
        ALTER TABLE manifests ADD COLUMN output_path TEXT;
        ALTER TABLE manifests ADD COLUMN generator TEXT;
        ALTER TABLE manifests ADD COLUMN model TEXT;
        ALTER TABLE manifests ADD COLUMN title TEXT;
        CREATE INDEX manifests_source ON manifests (source_sha256, output_path);
        """,
        postgresql="""
        ALTER TABLE manifests ADD COLUMN source_sha256 TEXT;
        ALTER TABLE manifests ADD COLUMN asset_sha256 TEXT;
        ALTER TABLE manifests ADD COLUMN output_path TEXT;
        ALTER TABLE manifests ADD COLUMN generator TEXT;
        ALTER TABLE manifests ADD COLUMN model TEXT;
        ALTER TABLE manifests ADD COLUMN title TEXT;
        CREATE INDEX manifests_source ON manifests (source_sha256, output_path);
        """,
    ),
    # v3: the 64-bit pHash of v1 could not tell a crop from another image; a
    # tiny greyscale reference image can (see provenance/_internal/likeness.py).
    Migration(
        sqlite="ALTER TABLE manifests ADD COLUMN fingerprint_image BLOB;",
        postgresql="ALTER TABLE manifests ADD COLUMN fingerprint_image BYTEA;",
    ),
    # v4: what a stamp was made with, so a re-run with other facts re-stamps.
    Migration(
        sqlite="ALTER TABLE manifests ADD COLUMN facts_sha256 TEXT;",
        postgresql="ALTER TABLE manifests ADD COLUMN facts_sha256 TEXT;",
    ),
    # v5: the PDQ perceptual hash (32 bytes) of the published image, for matching
    # copies whose watermark was destroyed.
    Migration(
        sqlite="ALTER TABLE manifests ADD COLUMN pdq_hash BLOB;",
        postgresql="ALTER TABLE manifests ADD COLUMN pdq_hash BYTEA;",
    ),
    # v6: the spectral fingerprint of stamped audio (the likeness check of recovered audio).
    Migration(
        sqlite="ALTER TABLE manifests ADD COLUMN fingerprint_audio BLOB;",
        postgresql="ALTER TABLE manifests ADD COLUMN fingerprint_audio BYTEA;",
    ),
    # v7: a second PDQ hash, of the blurred centre window, that a copy cut by a few
    # percent on every edge still holds (the whole-frame hash of a fine texture does not
    # survive a 2% crop). Older rows keep NULL and are searched by the frame hash alone.
    Migration(
        sqlite="ALTER TABLE manifests ADD COLUMN pdq_window BLOB;",
        postgresql="ALTER TABLE manifests ADD COLUMN pdq_window BYTEA;",
    ),
]

SCHEMA_VERSION = len(MIGRATIONS)


def check_schema_version(current: int, where: str) -> None:
    """Refuse a store written by a newer provenance-kit (its data might be lost or misread)."""
    if current > SCHEMA_VERSION:
        raise StoreError(
            f"{where}: store schema v{current} is newer than this version "
            f"understands (v{SCHEMA_VERSION}); upgrade provenance-kit"
        )


class ManifestStore(ABC):
    """What a manifest store must do; backends implement these methods."""

    @abstractmethod
    def record(self, entry: StoreEntry) -> bool:
        """Store ``entry``; False (and no change) if its payload or label is already there."""

    @abstractmethod
    def get_by_payload(self, payload: bytes) -> StoreEntry | None:
        """The entry whose watermark identifier is ``payload``."""

    @abstractmethod
    def get_by_label(self, label: str) -> StoreEntry | None:
        """The entry whose manifest label is ``label``."""

    @abstractmethod
    def find_stamped(self, source_sha256: str, output_path: str) -> StoreEntry | None:
        """The entry recorded for this source content written to this output, if any."""

    @abstractmethod
    def list(self, limit: int = 100, offset: int = 0) -> list[StoreEntry]:
        """Entries, newest first."""

    @abstractmethod
    def count(self) -> int:
        """How many entries there are."""

    def label_for_payload(self, payload: bytes) -> str | None:
        """The manifest label recorded for a watermark identifier (a resolution lookup).

        Backends override it to read the label alone, not the whole entry.
        """
        entry = self.get_by_payload(payload)
        return entry.manifest_label if entry is not None else None

    def fingerprints_after(self, cursor: int, limit: int = 10_000) -> tuple[int, _Fingerprints]:
        """PDQ fingerprints recorded after position ``cursor`` (0: from the start).

        Returns the new position and ``(payload, pdq_hash, pdq_window)`` for the entries
        among the next ``limit`` that have a fingerprint. A resolution service
        keeps the position and asks again for what was recorded since; a
        returned position equal to ``cursor`` means it is up to date. This
        generic version relies on :meth:`count` and :meth:`list` (stores only
        ever append); backends override it with an indexed range query.
        """
        total = self.count()
        n = min(limit, total - cursor)
        if n <= 0:
            return cursor, []
        # list() is newest first: the n oldest unseen entries end at offset total - cursor.
        entries = self.list(limit=n, offset=total - cursor - n)
        return cursor + n, [
            (e.payload, e.pdq_hash, e.pdq_window) for e in reversed(entries) if e.pdq_hash is not None
        ]

    def supersede(self, entry: StoreEntry) -> bool:
        """Replace the entry whose identifier is ``entry.payload`` by ``entry``; False if there is none.

        Used when an image that already carries a watermark is stamped again:
        it keeps its identifier, and the new manifest (which names the old
        credentials as its parent ingredient) is what recovery should find.
        """
        raise StoreError(f"{type(self).__name__} cannot replace an entry; this store cannot re-stamp")

    def find(self, ref: str) -> StoreEntry:
        """The entry for ``ref``: a watermark identifier (16 hex digits) or a manifest label.

        Raises :class:`~provenance.errors.EntryNotFoundError` when there is none.
        """
        if not isinstance(ref, str):
            raise UsageError(f"give an identifier or a manifest label as text, not {type(ref).__name__}")
        entry = None
        if len(ref) == 16:
            try:
                entry = self.get_by_payload(bytes.fromhex(ref))
            except ValueError:  # not hex: may still be a label
                entry = None
        entry = entry or self.get_by_label(ref)
        if entry is None:
            raise EntryNotFoundError(
                f"nothing in the store for {ref!r} (give a 16-digit identifier or a manifest label)"
            )
        return entry

    def iter_entries(self, batch_size: int = 500) -> Iterator[StoreEntry]:
        """Every entry, oldest first.

        This default pages through :meth:`list` (one query per ``batch_size``
        entries, so it works on any backend); backends override it with one
        streaming query.
        """
        total = self.count()
        # list() is newest first: walk pages from the end so the result is oldest first.
        for start in range(max(total - batch_size, 0), -batch_size, -batch_size):
            limit = batch_size if start >= 0 else batch_size + start
            yield from reversed(self.list(limit=limit, offset=max(start, 0)))

    def close(self) -> None:  # noqa: B027 - optional for backends without resources
        """Release connections."""

    def __enter__(self) -> ManifestStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def is_store_url(location: str | os.PathLike[str]) -> bool:
    """True for a PostgreSQL URL (``postgresql://...`` or ``postgres://...``)."""
    return isinstance(location, str) and location.split("://", 1)[0].lower() in _URL_SCHEMES and (
        "://" in location
    )


def describe_store(location: str | os.PathLike[str]) -> str:
    """The store's name as it may be shown or logged: a URL's password is masked."""
    if not is_store_url(location):
        return str(location)
    parts = urllib.parse.urlsplit(str(location))
    netloc = parts.netloc
    if "@" in netloc:
        user, host = netloc.rsplit("@", 1)
        if ":" in user:
            netloc = f"{user.split(':', 1)[0]}:***@{host}"
    query = urllib.parse.urlencode(
        [
            (k, "***" if k.lower() == "password" else v)
            for k, v in urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
        ]
    )
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc, query=query))


def default_store_path() -> Path:
    """``$PROVENANCE_HOME/manifests.db`` if set, else the user data directory."""
    home = os.environ.get("PROVENANCE_HOME")
    if home:
        return Path(home).expanduser() / "manifests.db"
    import platformdirs

    return Path(platformdirs.user_data_dir("provenance")) / "manifests.db"


def default_store_location() -> str | Path:
    """``$PROVENANCE_STORE`` (a path or a URL) if set, else :func:`default_store_path`."""
    named = os.environ.get(STORE_ENV, "").strip()
    if named:
        return named if is_store_url(named) else Path(named).expanduser()
    return default_store_path()


def open_store(location: str | os.PathLike[str] | None = None) -> ManifestStore:
    """Open (creating or migrating if needed) the store at ``location``.

    A ``postgresql://`` URL opens a :class:`PostgresManifestStore`; anything
    else is the path of a SQLite file; ``None`` is :func:`default_store_location`.
    """
    if location is not None and not isinstance(location, str | os.PathLike):
        raise UsageError(f"the store path must be a file path or a URL, not {type(location).__name__}")
    if location is None:
        location = default_store_location()
    if is_store_url(location):
        from provenance._internal.store_postgres import PostgresManifestStore

        return PostgresManifestStore(str(location))
    return SQLiteManifestStore(location)


def open_existing_store(location: str | os.PathLike[str] | None = None) -> ManifestStore | None:
    """The store to recover credentials from, or None: verifying never creates a store.

    A store that is named (``location`` or ``$PROVENANCE_STORE``) is opened and
    must work; the default SQLite file is used only when it exists.
    """
    if location is not None or os.environ.get(STORE_ENV, "").strip():
        return open_store(location)
    path = default_store_path()
    return open_store(path) if path.exists() else None


def _replace(path: Path, data: bytes, mode: int) -> None:
    """Write ``data`` to a temporary file beside ``path`` and rename it over ``path``."""
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise OutputError(f"{path}: cannot write ({exc.strerror or exc})") from None
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(tmp_name, mode)  # mkstemp makes 0600; outputs get the usual mode
        os.replace(tmp_name, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp_name)
        if isinstance(exc, OSError):
            raise OutputError(f"{path}: cannot write ({exc.strerror or exc})") from None
        raise


@dataclass(frozen=True)
class ExportReport:
    """What :func:`export_manifests` wrote: one ``.c2pa`` file per entry."""

    folder: Path
    written: tuple[Path, ...]
    entries: tuple[StoreEntry, ...]


def export_manifests(store: ManifestStore, folder: str | os.PathLike[str]) -> ExportReport:
    """Write every entry's signed manifest store to ``folder/<identifier>.c2pa``.

    One pass over the store (:meth:`ManifestStore.iter_entries`); each file is
    written atomically (a temporary file renamed into place), so an
    interrupted export leaves whole files only, and a re-run rewrites the
    same names. File names are the entry's 16 hex-digit identifier, never
    text from the manifest.
    """
    target = Path(folder)
    try:
        target.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise OutputError(f"{target}: exists and is not a folder") from None
    except OSError as exc:
        raise OutputError(f"{target}: cannot create the folder ({exc.strerror or exc})") from None
    written: list[Path] = []
    entries: list[StoreEntry] = []
    mode = 0o666 & ~_umask()
    for entry in store.iter_entries():
        path = target / f"{entry.payload_hex}.c2pa"
        _replace(path, entry.manifest_store, mode)
        written.append(path)
        entries.append(entry)
    # One durability barrier for the batch instead of two fsyncs per file
    # (atomic_write's): 0.7 instead of 11 ms per manifest on the benchmark
    # machine. Each file is still atomic; only its reaching the disk is batched.
    if written and hasattr(os, "sync"):
        os.sync()
    _log.debug("exported %d manifests to %s", len(written), target)
    return ExportReport(target, tuple(written), tuple(entries))


def __getattr__(name: str) -> Any:
    # The PostgreSQL backend lives in its own module (its driver is optional).
    if name == "PostgresManifestStore":
        from provenance._internal.store_postgres import PostgresManifestStore

        return PostgresManifestStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class SQLiteManifestStore(ManifestStore):
    """A manifest store in one SQLite file."""

    def __init__(self, path: str | os.PathLike[str], *, timeout: float = 30.0) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # isolation_level=None: transactions are explicit (BEGIN IMMEDIATE),
            # so a writer takes the lock up front instead of failing on upgrade.
            self._db = sqlite3.connect(self.path, timeout=timeout, isolation_level=None)
            self._db.execute(f"PRAGMA busy_timeout={int(timeout * 1000)}")
            self._open_shared(time.monotonic() + timeout)
            _log.debug("manifest store %s (schema v%d)", self.path, self.schema_version)
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{self.path}: cannot open the manifest store ({exc})") from None
        except OSError as exc:
            raise StoreError(f"{self.path}: cannot create the manifest store ({exc})") from None

    def _open_shared(self, deadline: float) -> None:
        """Switch to WAL and migrate, retrying while another process does the same.

        SQLite answers "database is locked" at once, without waiting out the busy
        timeout, when two connections open a new file together and both try to change
        its journal mode (waiting could deadlock), so the wait is here."""
        pause = 0.01
        while True:
            try:
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA synchronous=FULL")
                self._migrate()
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() + pause > deadline:
                    raise
            time.sleep(pause)
            pause = min(pause * 2, 0.5)

    @property
    def schema_version(self) -> int:
        return int(self._db.execute("PRAGMA user_version").fetchone()[0])

    def _migrate(self) -> None:
        with self._transaction():
            current = self.schema_version
            check_schema_version(current, str(self.path))
            for version in range(current, SCHEMA_VERSION):
                for statement in MIGRATIONS[version].statements("sqlite"):
                    self._db.execute(statement)
                self._db.execute(f"PRAGMA user_version={version + 1}")

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            # SQLite has already rolled back after some errors (disk full); the
            # original error is the one to report, not a failed ROLLBACK.
            if self._db.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def record(self, entry: StoreEntry) -> bool:
        check_entry(entry)
        placeholders = ", ".join("?" for _ in COLUMNS)
        values = [getattr(entry, c) for c in COLUMNS]
        try:
            with self._transaction():
                cursor = self._db.execute(
                    f"INSERT OR IGNORE INTO manifests ({', '.join(COLUMNS)}) VALUES ({placeholders})",
                    values,
                )
                return cursor.rowcount == 1
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{self.path}: cannot record the manifest ({exc})") from None

    def supersede(self, entry: StoreEntry) -> bool:
        check_entry(entry)
        columns = [c for c in COLUMNS if c != "payload"]
        assignments = ", ".join(f"{c} = ?" for c in columns)
        values = [getattr(entry, c) for c in columns]
        try:
            with self._transaction():
                cursor = self._db.execute(
                    f"UPDATE manifests SET {assignments} WHERE payload = ?", [*values, entry.payload]
                )
                return cursor.rowcount == 1
        except sqlite3.IntegrityError:
            return False  # the new manifest label is already recorded elsewhere
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{self.path}: cannot record the manifest ({exc})") from None

    def _one(self, where: str, args: tuple[object, ...]) -> StoreEntry | None:
        rows = self._select(f"WHERE {where} LIMIT 1", args)
        return rows[0] if rows else None

    def _select(self, tail: str, args: tuple[object, ...] = ()) -> list[StoreEntry]:
        try:
            rows = self._db.execute(f"SELECT {', '.join(COLUMNS)} FROM manifests {tail}", args)
            return [entry_from_row(row) for row in rows]
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{self.path}: cannot read the manifest store ({exc})") from None

    def get_by_payload(self, payload: bytes) -> StoreEntry | None:
        return self._one("payload = ?", (payload,))

    def get_by_label(self, label: str) -> StoreEntry | None:
        return self._one("manifest_label = ?", (label,))

    def find_stamped(self, source_sha256: str, output_path: str) -> StoreEntry | None:
        # Newest first: after an output was deleted and stamped again, the
        # latest record is the one describing the file on disk.
        rows = self._select(
            "WHERE source_sha256 = ? AND output_path = ? ORDER BY id DESC LIMIT 1",
            (source_sha256, output_path),
        )
        return rows[0] if rows else None

    def list(self, limit: int = 100, offset: int = 0) -> list[StoreEntry]:
        return self._select("ORDER BY id DESC LIMIT ? OFFSET ?", (limit, offset))

    def iter_entries(self, batch_size: int = 500) -> Iterator[StoreEntry]:
        # One query, streamed: rows are fetched batch_size at a time, never all at once.
        try:
            cursor = self._db.execute(f"SELECT {', '.join(COLUMNS)} FROM manifests ORDER BY id")
            while rows := cursor.fetchmany(batch_size):
                for row in rows:
                    yield entry_from_row(row)
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{self.path}: cannot read the manifest store ({exc})") from None

    def count(self) -> int:
        try:
            return int(self._db.execute("SELECT COUNT(*) FROM manifests").fetchone()[0])
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{self.path}: cannot read the manifest store ({exc})") from None

    def label_for_payload(self, payload: bytes) -> str | None:
        try:
            row = self._db.execute(
                "SELECT manifest_label FROM manifests WHERE payload = ?", (payload,)
            ).fetchone()
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{self.path}: cannot read the manifest store ({exc})") from None
        return str(row[0]) if row is not None else None

    def fingerprints_after(self, cursor: int, limit: int = 10_000) -> tuple[int, _Fingerprints]:
        # The row id is the position: an indexed range scan, whatever the store's size.
        try:
            rows = self._db.execute(
                "SELECT id, payload, pdq_hash, pdq_window FROM manifests WHERE id > ? ORDER BY id LIMIT ?",
                (cursor, limit),
            ).fetchall()
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{self.path}: cannot read the manifest store ({exc})") from None
        if not rows:
            return cursor, []
        return int(rows[-1][0]), [
            (bytes(p), bytes(h), bytes(w) if w is not None else None) for _, p, h, w in rows if h is not None
        ]

    def close(self) -> None:
        self._db.close()
