"""Manifest store benchmark: lookups in a store of 1,000,000 records (SQLite and PostgreSQL),
and batch stamping throughput with ``--jobs`` against a Dask LocalCluster.

Run: ``make bench-store`` (or ``.venv/bin/python -m benchmarks.store_bench``; ``--records``,
``--lookups``, ``--images`` make it smaller or larger; ``--postgres URL`` uses an existing
server instead of starting a throwaway one from the Debian package).

Lookups are what a resolution service does for every ``byBinding`` request
(:meth:`ManifestStore.get_by_payload`, one identifier, the whole record back)
and for every manifest request (``get_by_label``), one client issuing them one
after another. The client is pinned to CPU 1 and the PostgreSQL server to CPU 0,
so the numbers are per core. Latency is measured around each call.

The 1,000,000 records are synthetic but shaped like real ones (distinct 8-byte
identifiers spread over the whole 64-bit space, UUID manifest labels, source
hashes and output paths), with a 1 KiB manifest and a 256-byte reference
image instead of the ~24 KiB and ~4 KiB a real stamp records, to keep each
database near 1.5 GB. :func:`bulk_load` (one COPY for PostgreSQL, one
transaction of executemany for SQLite) and :func:`payload_for` /
:func:`label_for` are meant for reuse by other benchmarks (the HTTP service's).

Writes the report to ``benchmarks/results/store.txt``.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import logging
import os
import platform
import random
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from manifests import GenerationInfo
from provenance.batch import stamp_tree
from provenance.keys import create_development_identity, load_identity_dir
from provenance.store import COLUMNS, ManifestStore, is_store_url, open_store

RESULTS = Path(__file__).resolve().parent / "results" / "store.txt"
RECORDS = 1_000_000

# Identifiers spread evenly over the whole 64-bit space (as random ones are)
# but increasing with i, so a bulk load appends to every index instead of
# inserting at random places: minutes faster, and a B-tree lookup costs the
# same either way. Room for 2**24 records.
_SPACING = 0xFFFF_FFFF_FF
_OFFSET = 0x5A5A
_MANIFEST = random.Random(1).randbytes(1024)
_BINARY = ("payload", "manifest_store", "fingerprint_image", "pdq_hash", "fingerprint_audio", "pdq_window")
_PG_TYPES = {c: "bytea" if c in _BINARY else "text" for c in COLUMNS}
_REFERENCE = random.Random(2).randbytes(256)


def payload_for(i: int) -> bytes:
    """The watermark identifier of synthetic record ``i`` (records 0..n-1 exist after ``bulk_load(n)``)."""
    return (i * _SPACING + _OFFSET).to_bytes(8, "big")


def label_for(i: int) -> str:
    """The manifest label of synthetic record ``i`` (UUID-shaped, like a real one)."""
    return f"urn:c2pa:{i >> 32:08x}-0000-4000-8000-{i & 0xFFFFFFFF:012x}"


_FIXED_ORDER = (
    "payload", "manifest_label", "manifest_store", "mime", "soft_binding_alg", "soft_binding_value",
    "fingerprint_image", "pdq_hash", "source_sha256", "asset_sha256", "output_path", "generator", "model",
    "title", "facts_sha256", "fingerprint_audio", "pdq_window", "created_at",
)  # fmt: skip
assert COLUMNS == _FIXED_ORDER, "update _rows for the new store columns"


def _rows(count: int, start: int = 0) -> Iterator[tuple[Any, ...]]:
    # Built inline, in COLUMNS order: generating the rows is most of a load's client time.
    alg, created = "io.github.provenance-kit.watermark.1", "2026-12-01T12:00:00+00:00"
    for i in range(start, start + count):
        yield (
            (i * _SPACING + _OFFSET).to_bytes(8, "big"),
            f"urn:c2pa:{i >> 32:08x}-0000-4000-8000-{i & 0xFFFFFFFF:012x}",
            _MANIFEST,
            "image/jpeg",
            alg,
            None,
            _REFERENCE,
            # A distinct pseudo-random PDQ hash per record, as a fingerprint index sees them.
            hashlib.blake2b(i.to_bytes(8, "big"), digest_size=32).digest(),
            f"{i:064x}",
            f"{i + 1:064x}",
            f"/data/stamped/{i // 1000:04d}/{i:07d}.jpg",
            "bench",
            "bench-model",
            f"{i:07d}.jpg",
            None,
            None,
            # The crop-tolerant window hash (schema v7): as distinct as the PDQ hash.
            hashlib.blake2b(i.to_bytes(8, "big"), digest_size=32, person=b"window").digest(),
            created,
        )


def bulk_load(location: str | os.PathLike[str], count: int, *, start: int = 0) -> float:
    """Add synthetic records ``start .. start+count-1`` to the store at ``location``; seconds taken.

    The store is created (and migrated) through :func:`open_store`, then filled
    directly: PostgreSQL with one ``COPY``, SQLite with ``executemany`` in one
    transaction. Both are a single transaction: a failed load adds nothing.
    """
    open_store(location).close()
    started = time.perf_counter()
    columns = ", ".join(COLUMNS)
    if is_store_url(location):
        import psycopg

        with psycopg.connect(str(location)) as conn, conn.cursor() as cursor:
            with cursor.copy(f"COPY manifests ({columns}) FROM STDIN (FORMAT BINARY)") as copy:
                copy.set_types([_PG_TYPES[c] for c in COLUMNS])
                for row in _rows(count, start):
                    copy.write_row(row)
            conn.execute("ANALYZE manifests")
    else:
        db = sqlite3.connect(location, isolation_level=None)
        try:
            db.execute("PRAGMA cache_size=-262144")  # 256 MiB of pages while the indexes grow
            db.execute("BEGIN IMMEDIATE")
            db.executemany(
                f"INSERT INTO manifests ({columns}) VALUES ({', '.join('?' for _ in COLUMNS)})",
                _rows(count, start),
            )
            db.execute("COMMIT")
            db.execute("ANALYZE")
        finally:
            db.close()
    return time.perf_counter() - started


def _latencies(
    call: Callable[[Any], object], keys: list[Any], expect_found: bool
) -> tuple[float, list[float]]:
    out = []
    started = time.perf_counter()
    for key in keys:
        t = time.perf_counter_ns()
        found = call(key)
        out.append((time.perf_counter_ns() - t) / 1e6)
        if (found is not None) != expect_found:
            raise AssertionError(f"lookup of {key!r}: expected found={expect_found}")
    return time.perf_counter() - started, out


def _line(what: str, seconds: float, lat: list[float]) -> str:
    q = statistics.quantiles(lat, n=100, method="inclusive")
    return (
        f"  {what:<26}{len(lat) / seconds:>9.0f}/s   p50 {statistics.median(lat):6.3f}   "
        f"p95 {q[94]:6.3f}   p99 {q[98]:6.3f}   max {max(lat):7.2f}"
    )


def bench_lookups(store: ManifestStore, records: int, lookups: int, seed: int = 7) -> list[str]:
    rng = random.Random(seed)
    hits = [payload_for(rng.randrange(records)) for _ in range(lookups)]
    # random 64-bit values: with 1M of 2**64 identifiers taken, none is a stored one
    misses = [rng.getrandbits(64).to_bytes(8, "big") for _ in range(lookups // 5)]
    labels = [label_for(rng.randrange(records)) for _ in range(lookups // 4)]
    _latencies(store.get_by_payload, hits[:500], True)  # warm-up: connections, prepared statements
    lines = []
    lines.append(_line("by binding (found)", *_latencies(store.get_by_payload, hits, True)))
    lines.append(_line("by binding (unknown)", *_latencies(store.get_by_payload, misses, False)))
    lines.append(_line("by manifest label", *_latencies(store.get_by_label, labels, True)))
    return lines


def _pin(cpus: set[int]) -> str:
    available = os.sched_getaffinity(0)
    chosen = cpus & available or available
    os.sched_setaffinity(0, chosen)
    return ",".join(str(c) for c in sorted(chosen))


class _CPUMeter:
    """CPU seconds used by this process and every process under it (pool and Dask workers,
    the PostgreSQL server) while it runs: sampled every 0.1 s by pid, so processes that
    exit mid-run still count (up to their last sample)."""

    def __init__(self, server_data: Path | None = None) -> None:
        import psutil

        self._psutil = psutil
        self._server_data = server_data
        self._seen: dict[tuple[int, float], tuple[float, bool]] = {}
        self._base: dict[tuple[int, float], float] = {}
        self._stop = threading.Event()
        self._sample(self._base)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _sample(self, into: dict[tuple[int, float], Any]) -> None:
        me = self._psutil.Process()
        processes = [me, *me.children(recursive=True)]
        if self._server_data is not None:  # pg_ctl daemonises the server: it is not our child
            try:
                pid = int((self._server_data / "postmaster.pid").read_text().split()[0])
                server = self._psutil.Process(pid)
                processes += [server, *server.children(recursive=True)]
            except (OSError, ValueError, IndexError, self._psutil.Error):
                pass
        for proc in processes:
            try:
                with proc.oneshot():
                    times = proc.cpu_times()
                    key = (proc.pid, proc.create_time())
                    postgres = "postgres" in proc.name()
            except self._psutil.Error:
                continue
            used = times.user + times.system
            into[key] = used if into is self._base else (used, postgres)

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            self._sample(self._seen)

    def stop(self) -> tuple[float, float]:
        """(CPU seconds of the stamping processes, of the PostgreSQL server) since the start."""
        self._stop.set()
        self._thread.join()
        self._sample(self._seen)
        ours = server = 0.0
        for key, (used, postgres) in self._seen.items():
            spent = used - self._base.get(key, 0.0)
            if postgres:
                server += spent
            else:
                ours += spent
        return ours, server


def _stamping(
    images: int,
    work: Path,
    pg_url: Callable[[], str],
    say: Callable[[str], None],
    server_data: Path | None = None,
) -> list[str]:
    import distributed

    from benchmarks.stamp_bench import make_inputs

    inputs = make_inputs(work / "in", images)
    create_development_identity(work / "identity")
    loader = functools.partial(load_identity_dir, work / "identity")
    info = GenerationInfo(generator="store-bench", model="m")
    lines = [
        f"batch stamping, {images} JPEGs of 1.0 MP: wall clock (the --jobs pool starts inside the run, "
        "a Dask cluster before it), and CPU time per image summed over every process of the run "
        "(client, pool or Dask workers and nannies; the PostgreSQL server apart), which the "
        "machine's other load inflates far less than the wall clock:",
        f"  {'':<46}{'wall':>8}   {'images/s':>8}   {'CPU/image':>9}   {'PostgreSQL CPU/image':>20}",
    ]

    def run(name: str, store: str, **kwargs: Any) -> None:
        out = work / f"out-{len(lines)}"
        load = os.getloadavg()[0]
        meter = _CPUMeter(server_data)
        started = time.perf_counter()
        report = stamp_tree([inputs[0].parent], out, loader, info, store_path=store, **kwargs)
        seconds = time.perf_counter() - started
        cpu, server = meter.stop()
        assert report.counts()["stamped"] == images, report.counts()
        lines.append(
            f"  {name:<46}{seconds:7.2f} s {images / seconds:8.2f}   {cpu / images * 1000:6.0f} ms"
            f"   {server / images * 1000:17.0f} ms   (load average {load:.1f} at start)"
        )
        say(lines[-1])

    run("--jobs 1, SQLite", str(work / "jobs1.db"), jobs=1)
    run("--jobs 2, SQLite", str(work / "jobs2.db"), jobs=2)
    run("--jobs 2, PostgreSQL", pg_url(), jobs=2)
    for workers in (1, 2):
        started = time.perf_counter()
        with (
            distributed.LocalCluster(
                n_workers=workers,
                threads_per_worker=1,
                processes=True,
                dashboard_address=None,
                silence_logs=logging.ERROR,
            ) as cluster,
            distributed.Client(cluster, set_as_default=False) as client,
        ):
            client.run(lambda: __import__("provenance.batch"))  # workers import the library once
            boot = time.perf_counter() - started
            # What the cluster burns doing nothing (heartbeats, event loops): paid per second,
            # not per image, so a run slowed down by other load shows more of it per image.
            meter, idle_started = _CPUMeter(), time.perf_counter()
            time.sleep(5)
            idle = meter.stop()[0] / (time.perf_counter() - idle_started)
            run(f"Dask LocalCluster {workers} worker(s), PostgreSQL", pg_url(), scheduler=client)
            lines[-1] += f"   (cluster start {boot:.1f} s; idle cluster {idle * 1000:.0f} ms CPU/s)"
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=RECORDS)
    parser.add_argument("--lookups", type=int, default=20_000)
    parser.add_argument("--images", type=int, default=48)
    parser.add_argument("--postgres", help="an existing server's URL (a database is created in it)")
    parser.add_argument("--no-stamping", action="store_true")
    parser.add_argument(
        "--stamping-only",
        action="store_true",
        help="only stamping --jobs vs Dask (report: benchmarks/results/stamp-dask.txt)",
    )
    parser.add_argument(
        "--server-cpu", default="0", help="CPU to pin the PostgreSQL server to ('any': not pinned)"
    )
    parser.add_argument("--output", type=Path)
    args = parser.parse_args(argv)
    if args.output is None:
        args.output = RESULTS.with_name("stamp-dask.txt") if args.stamping_only else RESULTS

    def say(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    all_cpus = os.sched_getaffinity(0)
    report = [
        f"store benchmark — {args.records:,} records, {args.lookups:,} lookups by binding per backend",
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        f"run: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, load average at start "
        f"{os.getloadavg()[0]:.1f} (the machine is shared)",
        "",
    ]
    server = None
    work = Path(tempfile.mkdtemp(prefix="store-bench-"))
    try:
        client_cpus = _pin({1})
        if args.postgres:
            base = args.postgres
        else:
            sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
            from tests.pgserver import INSTALL_HINT, PostgresServer, find_binaries

            bin_dir = find_binaries()
            if bin_dir is None:
                raise SystemExit(INSTALL_HINT)
            cpu = None if args.server_cpu == "any" else int(args.server_cpu)
            server = PostgresServer(bin_dir, cpu=cpu, fsync=True).start()
            base = server.url
        databases = iter(range(1, 1000))

        def new_database() -> str:
            import psycopg

            name = f"store_bench_{os.getpid()}_{next(databases)}"
            with psycopg.connect(base, autocommit=True) as conn:
                conn.execute(f'CREATE DATABASE "{name}"')
            return base.rsplit("/", 1)[0] + "/" + name

        where = "not pinned" if args.server_cpu == "any" or args.postgres else f"on CPU {args.server_cpu}"
        if args.stamping_only:
            report[0] = "stamping benchmark — --jobs against a Dask LocalCluster (benchmarks/store_bench.py)"
        else:
            report.append(
                f"lookups, one client on CPU {client_cpus}, PostgreSQL server {where}; latency in ms:"
            )
        for backend in () if args.stamping_only else ("SQLite", "PostgreSQL"):
            location = str(work / "store.db") if backend == "SQLite" else new_database()
            say(f"{backend}: loading {args.records:,} records ...")
            seconds = bulk_load(location, args.records)
            with open_store(location) as store:
                assert store.count() == args.records
                report.append(
                    f"{backend}: bulk load {seconds:.1f} s ({args.records / seconds:,.0f} records/s, "
                    f"{'one COPY' if backend == 'PostgreSQL' else 'executemany, one transaction'})"
                )
                if backend == "SQLite":
                    report[-1] += f", file {Path(location).stat().st_size / 1e9:.2f} GB"
                report += bench_lookups(store, args.records, args.lookups)
            say("\n".join(report[-4:]))
            if backend == "SQLite":
                for suffix in ("", "-wal", "-shm"):
                    Path(location + suffix).unlink(missing_ok=True)
        if not args.stamping_only:
            report.append("")
        if not args.no_stamping:
            os.sched_setaffinity(0, all_cpus)  # stamping is about using every core
            report += _stamping(
                args.images, work, new_database, say, server.root / "data" if server is not None else None
            )
    finally:
        if server is not None:
            server.stop()
        import shutil

        shutil.rmtree(work, ignore_errors=True)
    text = "\n".join(report) + "\n"
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text)
    print(text, end="")


if __name__ == "__main__":
    main()
