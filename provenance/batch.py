"""Stamp whole folders of generated images and audio: parallel, resumable, one bad file never stops it.

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
    >>> _ = (home / "in" / "notes.txt").write_text("not an image")
    >>> report = stamp_tree([home / "in"], home / "out",
    ...                     functools.partial(load_identity_dir, home / "id"),
    ...                     GenerationInfo(generator="demo"), store_path=home / "m.db", jobs=1)
    >>> report.counts()
    {'stamped': 1, 'skipped': 0, 'ignored': 1, 'failed': 0}

Which files: inside a folder, files whose names match ``include`` (default:
image and audio extensions, :data:`DEFAULT_INCLUDE`, case-insensitive) and no
``exclude`` pattern; the others are *ignored* (counted and listed, never a
failure). Hidden files and folders are left out, symbolic links to folders are
not followed (listed as ignored), and an entry that cannot be read (a
symbolic-link loop, a broken link, a folder without permission) is one failed
entry: the rest is stamped. A file named directly is always attempted.

Re-running skips every file whose stamped output exists and is recorded in
the store (matched by the source's SHA-256 and the output path) with the same
generation facts, watermark key and quality; with other facts it is stamped
again (the outcome says why), and ``force=True`` stamps everything again. So
an interrupted batch resumes where it stopped and nothing is stamped or
recorded twice. Outputs mirror the input folders under the output folder and
are written atomically; inputs are never modified.

Concurrency and signals: each output is locked while it is stamped (a byte
range of ``OUTDIR/.provenance-stamp.lock``), so two runs over the same folder
share the work instead of racing. A first SIGINT or SIGTERM stops submitting
files at once, lets the files in progress finish, and raises
:class:`BatchInterrupted` carrying the report of what was done; a second one
abandons the files in progress (they are rolled back). Worker processes exit
with their parent, even when it is killed with SIGKILL.
"""

from __future__ import annotations

import collections
import concurrent.futures as futures
import contextlib
import errno
import fnmatch
import hashlib
import multiprocessing
import os
import select
import signal
import stat
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

import watermark
from manifests import GenerationInfo
from provenance._internal.audio import AUDIO_FORMATS, audio_format
from provenance._internal.files import open_input
from provenance._internal.formats import OGG
from provenance._internal.names import printable
from provenance._internal.signals import deferred_signals
from provenance.errors import OutputError, ProvenanceError, UsageError
from provenance.keys import Identity
from provenance.stamp import recorded_output_path, sidecar_path, stamp, stamp_facts
from provenance.store import StoreEntry, open_store

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no output locks
    fcntl = None  # type: ignore[assignment]

__all__ = ["DEFAULT_INCLUDE", "BatchInterrupted", "BatchReport", "FileOutcome", "plan", "stamp_tree"]

IdentityLoader = Callable[[], Identity]
"""Loads the signing identity in each worker process; must be picklable
(``functools.partial(load_identity_dir, folder)``)."""

DEFAULT_INCLUDE = (
    "*.jpg", "*.jpeg", "*.jpe", "*.jfif", "*.png", "*.webp", "*.tif", "*.tiff",
    "*.gif", "*.bmp", "*.avif", "*.heic", "*.heif",
    "*.wav", "*.flac", "*.mp3", "*.m4a", "*.ogg", "*.opus",
)  # fmt: skip
"""Image and audio file names stamped by default inside folders (OGG gets its manifest
beside it, as ``NAME.c2pa``). Images in a format
stamping cannot write (GIF, BMP, AVIF, HEIC) are attempted so that they are reported as
failed rather than silently left out; everything else is ignored."""

OGG_SUFFIXES = (".ogg", ".opus", ".oga")
"""Output names whose credentials are written beside them (``NAME.c2pa``)."""

LOCK_NAME = ".provenance-stamp.lock"
"""The lock file in the output folder; hidden, so never taken for an input."""


@dataclass(frozen=True)
class FileOutcome:
    """What happened to one input file.

    ``status`` is "stamped", "skipped" (already stamped and recorded),
    "ignored" (not selected: ``note`` says why) or "failed" (``error`` says why).
    """

    input: str
    output: str | None
    status: str
    identifier: str | None = None
    manifest_label: str | None = None
    error: str | None = None
    seconds: float = 0.0
    warnings: tuple[str, ...] = ()
    stage_seconds: dict[str, float] = field(default_factory=dict)
    note: str | None = None

    def to_dict(self) -> dict[str, Any]:
        # Names are shown with odd bytes escaped: JSON cannot carry them raw.
        return {
            "input": printable(self.input),
            "output": printable(self.output) if self.output is not None else None,
            "status": self.status,
            "identifier": self.identifier,
            "manifest_label": self.manifest_label,
            "error": printable(self.error) if self.error is not None else None,
            "note": printable(self.note) if self.note is not None else None,
            "warnings": [printable(w) for w in self.warnings],
            "seconds": round(self.seconds, 4),
        }


@dataclass
class BatchReport:
    """Every file's outcome, plus timing; after an interruption, what was not done."""

    outcomes: list[FileOutcome] = field(default_factory=list)
    seconds: float = 0.0
    not_done: list[str] = field(default_factory=list)
    interrupted_by: int | None = None
    """The signal number that stopped the batch, or None when it ran to the end."""

    def counts(self) -> dict[str, int]:
        out = {"stamped": 0, "skipped": 0, "ignored": 0, "failed": 0}
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
            "interrupted": self.interrupted_by is not None,
            "not_done": [printable(p) for p in self.not_done],
            "files": [o.to_dict() for o in self.outcomes],
        }


class BatchInterrupted(KeyboardInterrupt):
    """The batch was stopped by a signal (or Ctrl-C); ``report`` lists what was done."""

    def __init__(self, report: BatchReport, signum: int) -> None:
        super().__init__(f"interrupted by signal {signum}")
        self.report = report
        self.signum = signum


@dataclass
class _Survey:
    pairs: list[tuple[Path, Path]] = field(default_factory=list)
    ignored: list[tuple[Path, str]] = field(default_factory=list)
    problems: list[tuple[Path, str]] = field(default_factory=list)


def plan(
    inputs: Iterable[str | os.PathLike[str]],
    outdir: str | os.PathLike[str],
    *,
    include: Iterable[str] | None = None,
    exclude: Iterable[str] = (),
) -> list[tuple[Path, Path]]:
    """Pair every selected input file with its output path under ``outdir``.

    Folders are walked recursively (hidden files and the output folder itself
    are left out) and their structure is mirrored; a file named directly is
    written at the top of ``outdir``. Paths that would land outside ``outdir``
    are refused.
    """
    return _survey(inputs, outdir, include, exclude).pairs


def _survey(
    inputs: Iterable[str | os.PathLike[str]],
    outdir: str | os.PathLike[str],
    include: Iterable[str] | None,
    exclude: Iterable[str],
) -> _Survey:
    out_root = Path(outdir).resolve()
    chooser = _Chooser(DEFAULT_INCLUDE if include is None else tuple(include), tuple(exclude))
    result = _Survey()
    for item in inputs:
        source = Path(item)
        if not source.exists():
            raise UsageError(f"{printable(source)}: no such file or folder")
        if source.is_dir():
            for path in sorted(_walk(source, out_root, result)):
                relative = path.relative_to(source)
                reason = chooser.reason_to_ignore(relative)
                if reason is not None:
                    result.ignored.append((path, reason))
                    continue
                problem = _unusable(path)
                if problem is not None:
                    result.problems.append((path, problem))
                    continue
                result.pairs.append((path, _inside(out_root, relative)))
        else:
            result.pairs.append((source, _inside(out_root, Path(source.name))))
    sources = {_resolved(src) for src, _ in result.pairs}
    seen: set[Path] = set()
    for _, target in result.pairs:
        if target in seen:
            raise UsageError(f"two inputs would both be written to {printable(target)}")
        if target in sources:
            raise UsageError(
                f"{printable(target)}: the output would overwrite an input; choose another output folder"
            )
        seen.add(target)
    # OGG keeps its credentials beside it as NAME.c2pa: a.ogg and a.opus would
    # share one sidecar, the second overwriting the first's credentials.
    sidecars: dict[Path, Path] = {}
    for _, target in result.pairs:
        if target.suffix.lower() not in OGG_SUFFIXES:
            continue
        beside = sidecar_path(target)
        other = sidecars.setdefault(beside, target)
        if other != target:
            raise UsageError(
                f"{printable(other)} and {printable(target)} would both keep their credentials in "
                f"{printable(beside)}; rename one of them"
            )
        if beside in seen:
            raise UsageError(
                f"{printable(beside)} would be both an output and where the credentials of "
                f"{printable(target)} are kept; rename one of them"
            )
    return result


class _Chooser:
    """``--include``/``--exclude``: case-insensitive globs on the name, or on the
    path relative to the input folder when the pattern contains a ``/``."""

    def __init__(self, include: tuple[str, ...], exclude: tuple[str, ...]) -> None:
        self.include = include
        self.exclude = exclude
        self.default = include == DEFAULT_INCLUDE

    @staticmethod
    def _matches(relative: Path, pattern: str) -> bool:
        subject = relative.as_posix() if "/" in pattern else relative.name
        return fnmatch.fnmatchcase(subject.lower(), pattern.lower())

    def reason_to_ignore(self, relative: Path) -> str | None:
        if not any(self._matches(relative, p) for p in self.include):
            if self.default:
                return "not an image or audio file name (use --include to stamp it)"
            return "matches no --include pattern"
        for pattern in self.exclude:
            if self._matches(relative, pattern):
                return f"excluded by --exclude {pattern}"
        return None


def _walk(folder: Path, out_root: Path, result: _Survey) -> Iterator[Path]:
    def unreadable(exc: OSError) -> None:
        where = Path(exc.filename) if exc.filename else folder
        result.problems.append(
            (
                where,
                f"{printable(where)}: cannot read this folder ({exc.strerror or exc}); "
                "nothing in it was stamped",
            )
        )

    for root, dirs, files in os.walk(folder, onerror=unreadable):
        here = Path(root)
        kept = []
        for name in dirs:
            path = here / name
            if name.startswith(".") or _resolved(path) == out_root:
                continue
            if path.is_symlink():
                result.ignored.append((path, "a symbolic link to a folder (not followed)"))
                continue
            kept.append(name)
        dirs[:] = kept
        for name in files:
            if not name.startswith("."):
                yield here / name


def _unusable(path: Path) -> str | None:
    """Why an entry of a folder cannot be stamped, or None when it is a readable-looking file."""
    try:
        info = os.stat(path)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return f"{printable(path)}: symbolic link loop"
        if exc.errno == errno.ENOENT:
            return f"{printable(path)}: broken symbolic link (its target does not exist)"
        return f"{printable(path)}: cannot read ({exc.strerror or exc})"
    if not stat.S_ISREG(info.st_mode):
        return f"{printable(path)}: not a regular file"
    return None


def _resolved(path: Path) -> Path:
    try:
        return path.resolve()
    except (OSError, RuntimeError):  # a symbolic-link loop; the entry is reported elsewhere
        return path.absolute()


def _inside(out_root: Path, relative: Path) -> Path:
    target = _resolved(out_root / relative)
    if out_root not in target.parents:
        raise OutputError(f"{printable(relative)}: would be written outside {printable(out_root)}; refused")
    return target


@dataclass(frozen=True)
class _Settings:
    """Everything a worker needs; picklable."""

    loader: IdentityLoader
    info: GenerationInfo
    store_path: str | os.PathLike[str] | None
    key: bytes
    force: bool
    quality: int | None
    lock_path: str | None
    facts: str
    bit_rate: int | None = None
    """Bits per second of stamped MP3, M4A and OGG (None: each file's own)."""

    def facts_of(self, entry: StoreEntry) -> str:
        """The facts a stamp of ``entry``'s kind is made with: ``quality`` for pictures,
        ``bit_rate`` for compressed audio, neither for WAV and FLAC."""
        if not entry.mime.startswith("audio/"):
            return self.facts
        compressed = entry.mime in _COMPRESSED_AUDIO
        return stamp_facts(self.info, self.key, None, self.bit_rate if compressed else None)


_COMPRESSED_AUDIO = ("audio/mpeg", "audio/mp4", "audio/ogg")


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
    include: Iterable[str] | None = None,
    exclude: Iterable[str] = (),
    force: bool = False,
    quality: int | None = None,
    bit_rate: int | None = None,
    on_interrupt: Callable[[int], None] | None = None,
    handle_signals: bool = True,
    scheduler: Any = None,
) -> BatchReport:
    """Stamp every selected file under ``inputs`` into ``outdir``; see the module docstring.

    ``on_plan`` is told how many files will be stamped before work starts,
    ``on_result`` receives each file's outcome as it completes (ignored and
    unreadable entries first), ``on_interrupt`` the signal number when the
    first SIGINT/SIGTERM arrives. With ``handle_signals`` (and when called
    from the main thread without an application handler for them) the batch
    handles SIGINT and SIGTERM itself as described above; the previous
    handlers are restored when it returns. With ``scheduler`` (a Dask
    scheduler address or ``distributed.Client``) the files are stamped on that
    cluster's workers into a shared PostgreSQL store (see
    :mod:`provenance._internal.dask_runner`); ``jobs`` is then unused.
    ``quality`` applies to JPEG and WebP pictures, ``bit_rate`` (bits per second) to
    MP3, M4A and OGG audio; lossless files keep all they have.
    """
    started = time.perf_counter()
    if scheduler is not None:
        from provenance._internal import dask_runner

        dask_runner.check_shared_store(store_path)
    survey = _survey(inputs, outdir, include, exclude)
    out_root = Path(outdir)
    _make_output_folder(out_root)
    # Open (and migrate) the store here, so a bad store is one clear error
    # before any worker starts rather than a crash inside each of them.
    open_store(store_path).close()
    report = BatchReport()

    def deliver(outcome: FileOutcome) -> None:
        report.outcomes.append(outcome)
        if on_result:
            on_result(outcome)

    for path, reason in survey.ignored:
        deliver(FileOutcome(str(path), None, "ignored", note=reason))
    for path, message in survey.problems:
        deliver(FileOutcome(str(path), None, "failed", error=message))
    if on_plan:
        on_plan(len(survey.pairs))
    settings = _Settings(
        identity_loader,
        info,
        store_path,
        key,
        force,
        quality,
        str(out_root.resolve() / LOCK_NAME) if fcntl is not None else None,
        stamp_facts(info, key, quality),
        bit_rate,
    )
    workers = max(1, jobs if jobs is not None else (os.cpu_count() or 1))
    queue = collections.deque((str(src), str(dst)) for src, dst in survey.pairs)
    stop = _Stop()
    with _signals_handled(stop, handle_signals, on_interrupt):
        try:
            if scheduler is not None:
                dask_runner.stamp_on_cluster(scheduler, queue, settings, stop, deliver)
            elif workers == 1 or len(queue) <= 1:
                _run_here(queue, settings, stop, deliver)
            else:
                _run_pool(queue, min(workers, len(queue)), settings, stop, deliver)
        except KeyboardInterrupt:
            stop.signum = stop.signum or signal.SIGINT
            _settle(queue, stop.abandoned, settings, deliver)
    report.not_done = [src for src, _ in queue]
    order = {str(p): i for i, p in enumerate(sorted(_all_inputs(survey)))}
    report.outcomes.sort(key=lambda o: order.get(o.input, len(order)))
    report.seconds = time.perf_counter() - started
    if stop.signum is not None:
        report.interrupted_by = int(stop.signum)
        raise BatchInterrupted(report, int(stop.signum))
    return report


def _settle(
    queue: collections.deque[tuple[str, str]],
    abandoned: int,
    settings: _Settings,
    deliver: Callable[[FileOutcome], None],
) -> None:
    """After abandoning the files in progress, report those that completed anyway.

    A file whose record and output were both written just before its worker
    stopped is done; the report must say so rather than list it as not done.
    """
    with open_store(settings.store_path) as store:
        for pair in list(queue)[:abandoned]:
            src, dst = pair
            try:
                digest = hashlib.sha256(Path(src).read_bytes()).hexdigest()
                entry = store.find_stamped(digest, recorded_output_path(dst))
            except (OSError, ProvenanceError):
                continue
            done = entry is not None and entry.facts_sha256 == settings.facts_of(entry)
            if done and entry is not None and _output_is(dst, entry):
                queue.remove(pair)
                deliver(
                    FileOutcome(
                        src, dst, "stamped", entry.payload_hex, entry.manifest_label,
                        note="completed while the batch was being stopped",
                    )
                )  # fmt: skip


def _all_inputs(survey: _Survey) -> Iterator[str]:
    yield from (str(src) for src, _ in survey.pairs)
    yield from (str(path) for path, _ in survey.ignored)
    yield from (str(path) for path, _ in survey.problems)


def _make_output_folder(out_root: Path) -> None:
    try:
        out_root.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise OutputError(
            f"{printable(out_root)}: exists and is not a folder; cannot write outputs in it"
        ) from None
    except OSError as exc:
        raise OutputError(
            f"{printable(out_root)}: cannot create the output folder ({exc.strerror or exc})"
        ) from None


class _Stop:
    """Set by the first signal; a second one raises KeyboardInterrupt (abandon the files in progress)."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self.abandon = False
        self.abandoned = 0  # files in progress when the batch was abandoned: the head of the queue


@contextlib.contextmanager
def _signals_handled(
    stop: _Stop, enabled: bool, on_interrupt: Callable[[int], None] | None
) -> Iterator[None]:
    if not enabled or threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: FrameType | None) -> None:
        if stop.signum is None:
            stop.signum = signum
            if on_interrupt:
                on_interrupt(signum)
            return
        stop.abandon = True
        raise KeyboardInterrupt

    previous: dict[int, Any] = {}
    hook = sys.unraisablehook
    sys.unraisablehook = _quiet_when_stopping(hook)
    for sig, default in ((signal.SIGINT, signal.default_int_handler), (signal.SIGTERM, signal.SIG_DFL)):
        if signal.getsignal(sig) is default:  # an application's own handler wins
            previous[sig] = signal.signal(sig, handler)
    try:
        yield
    finally:
        sys.unraisablehook = hook
        for signum, old in previous.items():
            signal.signal(signum, old)


def _run_here(
    queue: collections.deque[tuple[str, str]],
    settings: _Settings,
    stop: _Stop,
    deliver: Callable[[FileOutcome], None],
) -> None:
    _init_worker(settings, None)
    while queue and stop.signum is None:
        stop.abandoned = 1
        outcome = _stamp_one(queue[0])  # stays queued (not done) if interrupted mid-file
        stop.abandoned = 0
        if stop.abandon and outcome.status == "failed":
            return  # the interrupt surfaced as an error inside native code: rolled back, not done
        with deferred_signals():  # a file is either reported or left queued, never lost between
            queue.popleft()
            deliver(outcome)


def _run_pool(
    queue: collections.deque[tuple[str, str]],
    workers: int,
    settings: _Settings,
    stop: _Stop,
    deliver: Callable[[FileOutcome], None],
) -> None:
    # forkserver: workers must not inherit the parent's native C2PA state;
    # preloading the heavy imports in the server makes each worker start fast.
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["provenance.batch"])
    _start_fork_server()
    while queue and stop.signum is None:
        pool = futures.ProcessPoolExecutor(
            max_workers=workers,
            mp_context=context,
            initializer=_init_worker,
            initargs=(settings, os.getpid()),
        )
        in_flight: dict[futures.Future[FileOutcome], tuple[str, str]] = {}
        broken = False
        try:
            while True:
                # At most one file per worker is handed out, so that stopping
                # never waits for files queued inside the pool.
                while queue and not broken and len(in_flight) < workers and stop.signum is None:
                    with deferred_signals():
                        pair = queue[0]
                        in_flight[pool.submit(_stamp_one, pair)] = pair
                        queue.popleft()
                if not in_flight:
                    break
                done, _ = futures.wait(in_flight, return_when=futures.FIRST_COMPLETED)
                for future in done:
                    pair = in_flight[future]
                    try:
                        outcome = future.result()
                    except BrokenProcessPool:
                        # A worker was killed (out of memory, a stray signal); the
                        # pool stops them all, each rolling back its file.
                        broken = True
                        outcome = FileOutcome(
                            pair[0], pair[1], "failed",
                            error=f"{printable(pair[0])}: a worker process was killed while this "
                            "file was stamped; it was not stamped",
                        )  # fmt: skip
                    with deferred_signals():
                        del in_flight[future]
                        deliver(outcome)
        except BaseException:
            # Abandon the files in progress: the workers roll them back.
            queue.extendleft(reversed(list(in_flight.values())))
            stop.abandoned = len(in_flight)
            _terminate(pool)
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        pool.shutdown(wait=True)  # a broken pool takes no more work: a fresh one goes on


def _start_fork_server() -> None:
    """Start the fork server with SIGINT blocked, so that it and every worker it
    forks are deaf to Ctrl-C from birth (the mask survives fork and exec); a
    worker that died of Ctrl-C before its initializer ran would break the pool."""
    from multiprocessing import forkserver, resource_tracker

    if not hasattr(signal, "pthread_sigmask"):  # pragma: no cover - not POSIX
        forkserver.ensure_running()
        return
    # The fork server starts the resource tracker, which unblocks SIGINT
    # afterwards (whatever the mask was): start it first, outside the mask.
    resource_tracker.ensure_running()
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        forkserver.ensure_running()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _terminate(pool: futures.ProcessPoolExecutor) -> None:
    processes = getattr(pool, "_processes", None) or {}
    for process in list(processes.values()):
        with contextlib.suppress(Exception):
            process.terminate()


# --- worker side --------------------------------------------------------------

_WORKER: dict[str, Any] = {}


class _WorkerState:
    busy = False
    terminating = False


def _init_worker(settings: _Settings, parent_pid: int | None) -> None:
    # Each process loads the identity and opens its own store connection once;
    # SQLite serialises the writers.
    _WORKER.clear()
    if parent_pid is not None:
        # Ctrl-C reaches the whole process group; the parent decides what it
        # means. SIGTERM (from the parent, or from the watch below) rolls back
        # the file in progress and exits.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, _on_worker_sigterm)
        sys.unraisablehook = _quiet_when_stopping(sys.unraisablehook)
        _watch_parent(parent_pid)
    try:
        _WORKER["identity"] = settings.loader()
    except ProvenanceError as exc:
        _WORKER["error"] = str(exc)
    _WORKER["settings"] = settings
    _WORKER["store"] = open_store(settings.store_path)
    _WORKER["lock"] = None


class _Terminated(BaseException):
    """Raised in a worker by SIGTERM while it stamps a file."""


def _on_worker_sigterm(signum: int, frame: FrameType | None) -> None:
    _WorkerState.terminating = True
    if not _WorkerState.busy:
        os._exit(128 + signum)
    raise _Terminated


def _quiet_when_stopping(hook: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """An interrupt raised inside the C2PA library's signing callback cannot
    propagate through native code: Python would print it as an "exception
    ignored" traceback. It is expected there (the signature fails and the file
    is rolled back), so it is dropped; anything else is still reported."""

    def quiet(unraisable: Any) -> Any:
        if isinstance(unraisable.exc_value, _Terminated | KeyboardInterrupt):
            return None
        return hook(unraisable)

    return quiet


def _watch_parent(parent_pid: int) -> None:
    """Exit with the parent: a worker's own parent is the fork server, so
    PR_SET_PDEATHSIG would not fire when the batch's process dies."""

    def watch() -> None:
        try:
            handle = os.pidfd_open(parent_pid)
        except ProcessLookupError:
            handle = None
        except (AttributeError, OSError):  # no pidfd (old kernel, not Linux): poll
            while _alive(parent_pid):
                time.sleep(0.5)
            handle = None
        if handle is not None:
            select.select([handle], [], [])  # readable once the process has exited
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _stamp_one(pair: tuple[str, str]) -> FileOutcome:
    src, dst = pair
    started = time.perf_counter()
    if "error" in _WORKER:
        return FileOutcome(src, dst, "failed", error=_WORKER["error"])
    _WorkerState.busy = True
    try:
        outcome = _stamp_file(src, dst, started)
    except _Terminated:
        os._exit(128 + signal.SIGTERM)  # the file in progress was rolled back while unwinding
    finally:
        _WorkerState.busy = False
    if _WorkerState.terminating:
        # SIGTERM came inside native code (the signing callback), which turned
        # it into an ordinary failure; the parent is gone or asked us to stop.
        os._exit(128 + signal.SIGTERM)
    return outcome


def _read_for_stamping(src: str) -> tuple[str, str | None]:
    """The file's SHA-256, read in pieces, and for audio its container ("wav", "mp3"...).

    Never read whole: stamp streams a 200-megapixel PNG (250 MB) from its path, and
    audio in blocks (an hour of WAV)."""
    with open_input(src) as source:
        fmt = audio_format(source)
        digest = hashlib.sha256()
        for offset in range(0, len(source), 1 << 20):
            digest.update(source.read_at(offset, 1 << 20))
        return digest.hexdigest(), None if fmt is None else AUDIO_FORMATS[fmt]


def _stamp_file(src: str, dst: str, started: float) -> FileOutcome:
    settings: _Settings = _WORKER["settings"]
    store = _WORKER["store"]
    shown = printable(src)
    try:
        digest, container = _read_for_stamping(src)
        with _output_locked(dst):
            note = None
            existing = store.find_stamped(digest, recorded_output_path(dst))
            if existing is not None and _output_is(dst, existing):
                changed = None if settings.force else _what_changed(existing, settings)
                if settings.force:
                    note = "stamped again (--force)"
                elif changed is None:
                    return FileOutcome(
                        src,
                        dst,
                        "skipped",
                        existing.payload_hex,
                        existing.manifest_label,
                        seconds=time.perf_counter() - started,
                    )
                else:
                    note = f"stamped again: {changed}"
            folder = Path(dst).parent
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise OutputError(
                    f"{printable(folder)}: cannot create the output folder ({exc.strerror or exc})"
                ) from None
            with warnings.catch_warnings(record=True) as caught:
                # Warnings (a weak mark on a flat image) belong in the file's report,
                # not on the worker's stderr.
                warnings.simplefilter("always")
                result = stamp(
                    src,
                    _WORKER["identity"],
                    settings.info,
                    store=store,
                    output=dst,
                    key=settings.key,
                    title=Path(src).name,
                    source_name=src,
                    # --quality is the JPEG/WebP quality of a folder's pictures, --bitrate
                    # that of its compressed audio; lossless WAV and FLAC have neither
                    quality=settings.quality if container is None else None,
                    bit_rate=settings.bit_rate if container in ("mp3", "m4a", "ogg") else None,
                )
        return FileOutcome(
            src,
            dst,
            "stamped",
            result.identifier,
            result.manifest_label,
            seconds=time.perf_counter() - started,
            warnings=tuple(f"{shown}: {w.message}" for w in caught),
            note=note,
        )
    except ProvenanceError as exc:
        return FileOutcome(src, dst, "failed", error=str(exc), seconds=time.perf_counter() - started)
    except OSError as exc:
        return FileOutcome(
            src, dst, "failed", error=f"{shown}: {exc.strerror or exc}", seconds=time.perf_counter() - started
        )
    except Exception as exc:  # a bug on one file must not stop the batch; it is reported as such
        return FileOutcome(
            src,
            dst,
            "failed",
            error=f"{shown}: internal error: {type(exc).__name__}: {exc}",
            seconds=time.perf_counter() - started,
        )


def _what_changed(existing: StoreEntry, settings: _Settings) -> str | None:
    """Why a recorded stamp no longer matches this run, or None when it does."""
    if existing.facts_sha256 == settings.facts_of(existing):
        return None
    info = settings.info
    differences = [
        f"{label} was {old!r}, now {new!r}"
        for label, old, new in (
            ("generator", existing.generator, info.generator),
            ("model", existing.model, info.model),
        )
        if old != new
    ]
    if differences:
        return "; ".join(differences)
    if existing.facts_sha256 is None:
        return None  # recorded before facts were kept: generator and model are all we know
    return "the generation facts, watermark key or quality differ from the recorded stamp"


@contextlib.contextmanager
def _output_locked(dst: str) -> Iterator[None]:
    """Hold the lock of one output (a byte of the shared lock file chosen by its path)."""
    settings: _Settings = _WORKER["settings"]
    if settings.lock_path is None or fcntl is None:
        yield
        return
    if _WORKER["lock"] is None:
        # One descriptor per process, kept open: POSIX record locks are
        # released when any descriptor of the file is closed.
        _WORKER["lock"] = os.open(settings.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    fd = _WORKER["lock"]
    offset = int.from_bytes(hashlib.sha256(os.fsencode(dst)).digest()[:6], "big")
    fcntl.lockf(fd, fcntl.LOCK_EX, 1, offset)
    try:
        yield
    finally:
        fcntl.lockf(fd, fcntl.LOCK_UN, 1, offset)


def _output_is(path: str, entry: StoreEntry) -> bool:
    """Whether the output on disk is what ``entry`` recorded: the file, and for OGG its
    ``NAME.c2pa`` beside it (without which the output has no credentials)."""
    try:
        data = Path(path).read_bytes()
        if entry.asset_sha256 is None or hashlib.sha256(data).hexdigest() != entry.asset_sha256:
            return False
        if entry.mime == OGG.mime:
            return sidecar_path(path).read_bytes() == entry.manifest_store
    except OSError:
        return False
    return True
