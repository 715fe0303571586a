"""Stamp whole folders of generated images: parallel, resumable, one bad file never stops it.

    >>> import functools, tempfile, os
    >>> from pathlib import Path
    >>> from PIL import Image
    >>> from manifests import GenerationInfo
    >>> from provenance.keys import create_development_identity, load_identity_dir
    >>> from provenance.batch import stamp_tree
    >>> home = Path(tempfile.mkdtemp())
    >>> _ = create_development_identity(home / "id")
    >>> (home / "in").mkdir()
    >>> fractal = Image.effect_mandelbrot((512, 512), (-2, -1.5, 1, 1.5), 100)
    >>> fractal.convert("RGB").save(home / "in" / "a.png")
    >>> report = stamp_tree([home / "in"], home / "out",
    ...                     functools.partial(load_identity_dir, home / "id"),
    ...                     GenerationInfo(generator="demo"), store_path=home / "m.db", jobs=1)
    >>> report.counts()
    {'stamped': 1, 'skipped': 0, 'failed': 0}

Re-running skips every file whose stamped output exists and is recorded in
the store (matched by the source's SHA-256 and the output path), so an
interrupted batch resumes where it stopped and nothing is stamped or
recorded twice. Outputs mirror the input folders under the output folder and
are written atomically; inputs are never modified.
"""

from __future__ import annotations

import concurrent.futures as futures
import hashlib
import multiprocessing
import os
import time
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import watermark
from manifests import GenerationInfo
from provenance._internal.files import read_input
from provenance.errors import OutputError, ProvenanceError, UsageError
from provenance.keys import Identity
from provenance.stamp import stamp
from provenance.store import open_store

__all__ = ["BatchReport", "FileOutcome", "plan", "stamp_tree"]

IdentityLoader = Callable[[], Identity]
"""Loads the signing identity in each worker process; must be picklable
(``functools.partial(load_identity_dir, folder)``)."""


@dataclass(frozen=True)
class FileOutcome:
    """What happened to one input file."""

    input: str
    output: str | None
    status: str  # "stamped", "skipped" or "failed"
    identifier: str | None = None
    manifest_label: str | None = None
    error: str | None = None
    seconds: float = 0.0
    warnings: tuple[str, ...] = ()
    stage_seconds: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "input": self.input,
            "output": self.output,
            "status": self.status,
            "identifier": self.identifier,
            "manifest_label": self.manifest_label,
            "error": self.error,
            "warnings": list(self.warnings),
            "seconds": round(self.seconds, 4),
        }


@dataclass
class BatchReport:
    """Every file's outcome, plus timing."""

    outcomes: list[FileOutcome] = field(default_factory=list)
    seconds: float = 0.0

    def counts(self) -> dict[str, int]:
        out = {"stamped": 0, "skipped": 0, "failed": 0}
        for outcome in self.outcomes:
            out[outcome.status] += 1
        return out

    @property
    def failed(self) -> list[FileOutcome]:
        return [o for o in self.outcomes if o.status == "failed"]

    def to_dict(self) -> dict[str, Any]:
        return {
            "counts": self.counts(),
            "seconds": round(self.seconds, 3),
            "files": [o.to_dict() for o in self.outcomes],
        }


def plan(inputs: Iterable[str | os.PathLike[str]], outdir: str | os.PathLike[str]) -> list[tuple[Path, Path]]:
    """Pair every input file with its output path under ``outdir``.

    Folders are walked recursively (hidden files and the output folder itself
    are left out) and their structure is mirrored; a file named directly is
    written at the top of ``outdir``. Paths that would land outside ``outdir``
    are refused.
    """
    out_root = Path(outdir).resolve()
    pairs: list[tuple[Path, Path]] = []
    seen: set[Path] = set()
    for item in inputs:
        source = Path(item)
        if not source.exists():
            raise UsageError(f"{source}: no such file or folder")
        if source.is_dir():
            for path in sorted(_walk(source, out_root)):
                pairs.append((path, _inside(out_root, path.relative_to(source))))
        else:
            pairs.append((source, _inside(out_root, Path(source.name))))
    sources = {src.resolve() for src, _ in pairs}
    for _, target in pairs:
        if target in seen:
            raise UsageError(f"two inputs would both be written to {target}")
        if target in sources:
            raise UsageError(f"{target}: the output would overwrite an input; choose another output folder")
        seen.add(target)
    return pairs


def _walk(folder: Path, out_root: Path) -> Iterator[Path]:
    for root, dirs, files in os.walk(folder):
        here = Path(root)
        dirs[:] = [d for d in dirs if not d.startswith(".") and (here / d).resolve() != out_root]
        for name in files:
            if not name.startswith("."):
                yield here / name


def _inside(out_root: Path, relative: Path) -> Path:
    target = (out_root / relative).resolve()
    if out_root not in target.parents:
        raise OutputError(f"{relative}: would be written outside {out_root}; refused")
    return target


def stamp_tree(
    inputs: Iterable[str | os.PathLike[str]],
    outdir: str | os.PathLike[str],
    identity_loader: IdentityLoader,
    info: GenerationInfo,
    *,
    store_path: str | os.PathLike[str] | None = None,
    jobs: int | None = None,
    key: bytes = watermark.DEFAULT_KEY,
    on_result: Callable[[FileOutcome], None] | None = None,
    on_plan: Callable[[int], None] | None = None,
    scheduler: Any = None,
) -> BatchReport:
    """Stamp every file under ``inputs`` into ``outdir``; see the module docstring.

    ``on_plan`` is told how many files there are before work starts,
    ``on_result`` receives each file's outcome as it completes. With
    ``scheduler`` (a Dask scheduler address or ``distributed.Client``) the
    files are stamped on that cluster's workers into a shared PostgreSQL store
    (see :mod:`provenance._internal.dask_runner`); ``jobs`` is then unused.
    """
    started = time.perf_counter()
    pairs = plan(inputs, outdir)
    if scheduler is not None:
        from provenance._internal import dask_runner

        dask_runner.check_shared_store(store_path)
    # Open (and migrate) the store here, so a bad store is one clear error
    # before any worker starts rather than a crash inside each of them.
    open_store(store_path).close()
    if on_plan:
        on_plan(len(pairs))
    report = BatchReport()
    workers = max(1, jobs if jobs is not None else (os.cpu_count() or 1))
    args = [(str(src), str(dst)) for src, dst in pairs]
    if scheduler is not None:
        config = (identity_loader, info, store_path, key)
        report.outcomes = dask_runner.stamp_on_cluster(scheduler, args, config, on_result)
    elif workers == 1 or len(args) <= 1:
        _init_worker(identity_loader, info, store_path, key)
        results: Iterable[FileOutcome] = map(_stamp_one, args)
        for outcome in results:
            report.outcomes.append(outcome)
            if on_result:
                on_result(outcome)
    else:
        # forkserver: workers must not inherit the parent's native C2PA state;
        # preloading the heavy imports in the server makes each worker start fast.
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(["provenance.batch"])
        with futures.ProcessPoolExecutor(
            max_workers=workers,
            mp_context=context,
            initializer=_init_worker,
            initargs=(identity_loader, info, store_path, key),
        ) as pool:
            pending = [pool.submit(_stamp_one, a) for a in args]
            for future in futures.as_completed(pending):
                outcome = future.result()
                report.outcomes.append(outcome)
                if on_result:
                    on_result(outcome)
        order = {a[0]: i for i, a in enumerate(args)}
        report.outcomes.sort(key=lambda o: order[o.input])
    report.seconds = time.perf_counter() - started
    return report


# --- worker side --------------------------------------------------------------

_WORKER: dict[str, Any] = {}


def _init_worker(
    loader: IdentityLoader,
    info: GenerationInfo,
    store_path: str | os.PathLike[str] | None,
    key: bytes,
) -> None:
    # Each process loads the identity and opens its own store connection once;
    # SQLite serialises the writers.
    _WORKER.clear()
    try:
        _WORKER["identity"] = loader()
    except ProvenanceError as exc:
        _WORKER["error"] = str(exc)
    _WORKER["info"] = info
    _WORKER["store"] = open_store(store_path)
    _WORKER["key"] = key


def _stamp_one(pair: tuple[str, str]) -> FileOutcome:
    src, dst = pair
    started = time.perf_counter()
    if "error" in _WORKER:
        return FileOutcome(src, dst, "failed", error=_WORKER["error"])
    store = _WORKER["store"]
    try:
        raw = read_input(src)
        digest = hashlib.sha256(raw).hexdigest()
        existing = store.find_stamped(digest, dst)
        if existing is not None and _output_is(dst, existing.asset_sha256):
            return FileOutcome(
                src,
                dst,
                "skipped",
                existing.payload_hex,
                existing.manifest_label,
                seconds=time.perf_counter() - started,
            )
        Path(dst).parent.mkdir(parents=True, exist_ok=True)
        with warnings.catch_warnings(record=True) as caught:
            # Warnings (a weak mark on a flat image) belong in the file's report,
            # not on the worker's stderr.
            warnings.simplefilter("always")
            result = stamp(
                raw,
                _WORKER["identity"],
                _WORKER["info"],
                store=store,
                output=dst,
                key=_WORKER["key"],
                title=Path(src).name,
                source_name=src,
            )
        return FileOutcome(
            src,
            dst,
            "stamped",
            result.identifier,
            result.manifest_label,
            seconds=time.perf_counter() - started,
            warnings=tuple(f"{src}: {w.message}" for w in caught),
        )
    except ProvenanceError as exc:
        return FileOutcome(src, dst, "failed", error=str(exc), seconds=time.perf_counter() - started)
    except OSError as exc:
        return FileOutcome(
            src, dst, "failed", error=f"{src}: {exc.strerror or exc}", seconds=time.perf_counter() - started
        )
    except Exception as exc:  # a bug on one file must not stop the batch; it is reported as such
        return FileOutcome(
            src,
            dst,
            "failed",
            error=f"{src}: internal error: {type(exc).__name__}: {exc}",
            seconds=time.perf_counter() - started,
        )


def _output_is(path: str, expected_sha256: str | None) -> bool:
    try:
        data = Path(path).read_bytes()
    except OSError:
        return False
    return expected_sha256 is not None and hashlib.sha256(data).hexdigest() == expected_sha256
