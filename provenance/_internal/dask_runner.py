"""Batch stamping on a Dask cluster: ``stamp_tree(..., scheduler="tcp://host:8786")``.

    >>> from provenance._internal.dask_runner import check_shared_store
    >>> check_shared_store("/data/manifests.db")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    provenance.errors.UsageError: stamping on a Dask cluster needs ..., not /data/manifests.db

Each file is one task. A worker process loads the signing identity and opens
the shared PostgreSQL store once per batch, then stamps with exactly the code
of a local batch (:func:`provenance.batch._stamp_one`), so resuming (a file
already stamped and recorded is skipped) and per-file error reporting are the
same. Workers must see the inputs, the output folder and the identity folder
at the same paths as the client (a shared filesystem), and run the same
provenance-kit version. Needs ``pip install 'provenance-kit[dask]'``.
"""

from __future__ import annotations

import collections
import ctypes
import os
import sys
import threading
import uuid
from collections.abc import Callable
from typing import Any

from provenance import batch
from provenance._internal.signals import deferred_signals
from provenance.errors import ProvenanceError, UsageError
from provenance.store import default_store_location, describe_store, is_store_url

__all__ = ["check_shared_store", "stamp_on_cluster"]

# Waiting this long for the scheduler to answer before giving up with a clear error.
_CONNECT_TIMEOUT = "20s"


def check_shared_store(store: str | os.PathLike[str] | None) -> None:
    """Refuse a store the workers cannot share: a SQLite file is local to one machine."""
    store = store if store is not None else default_store_location()
    if not is_store_url(store):
        raise UsageError(
            "stamping on a Dask cluster needs a PostgreSQL store every worker can reach "
            f"(--store postgresql://... or $PROVENANCE_STORE), not {describe_store(store)}"
        )


def _distributed() -> Any:
    try:
        import distributed
    except ImportError:
        raise UsageError(
            "stamping on a Dask cluster needs Dask: pip install 'provenance-kit[dask]'"
        ) from None
    return distributed


def stamp_on_cluster(
    scheduler: Any,
    queue: collections.deque[tuple[str, str]],
    settings: Any,
    stop: Any,
    deliver: Callable[[batch.FileOutcome], None],
) -> None:
    """Stamp every queued (input, output) pair on the cluster, delivering outcomes as they come.

    ``scheduler`` is the scheduler's address (``tcp://host:8786``) or a
    ``distributed.Client``; ``settings`` is what a worker is initialised with
    (:class:`provenance.batch._Settings`). A pair leaves ``queue`` when its
    outcome is delivered; after the first signal (``stop.signum``) no more
    files are handed out and the rest stay queued (not done). Tasks already
    running on a worker finish there; a re-run waits for them (see
    :func:`_stamp_on_worker`) and skips what they recorded.
    """
    check_shared_store(settings.store_path)
    distributed = _distributed()
    own_client = not isinstance(scheduler, distributed.Client)
    if own_client:
        try:
            client = distributed.Client(scheduler, timeout=_CONNECT_TIMEOUT, set_as_default=False)
        except (OSError, TimeoutError, ValueError) as exc:
            raise UsageError(f"cannot reach the Dask scheduler at {scheduler} ({exc})") from None
    else:
        client = scheduler
    token = uuid.uuid4().hex
    futures: dict[Any, tuple[str, str]] = {}
    try:
        for index, pair in enumerate(queue):
            # pure=False: the same file stamped twice is two tasks (resuming is
            # the store's job, not Dask's result cache).
            future = client.submit(
                _stamp_on_worker, token, settings, pair, key=f"provenance-stamp-{token}-{index}", pure=False
            )
            futures[future] = pair
        for future in distributed.as_completed(list(futures), loop=client.loop):
            if stop.signum is not None:
                break
            src, dst = futures[future]
            try:
                outcome: batch.FileOutcome = future.result()
            except Exception as exc:  # a worker died or the task could not run: that file failed
                outcome = batch.FileOutcome(
                    src, dst, "failed", error=f"{src}: the Dask worker failed ({type(exc).__name__}: {exc})"
                )
            with deferred_signals():  # a file is either reported or left queued, never lost between
                queue.remove((src, dst))
                deliver(outcome)
    finally:
        # Stopped or interrupted: nothing more starts on the cluster.
        client.cancel([f for f in futures if not f.done()])
        if own_client:
            client.close()


# --- worker side --------------------------------------------------------------

_LOCK = threading.Lock()
_ACTIVE: dict[str, str] = {}  # the batch this worker process is initialised for


def _stamp_on_worker(token: str, settings: Any, pair: tuple[str, str]) -> batch.FileOutcome:
    # One task per output file at a time, cluster-wide: a task cancelled by an
    # interrupted batch keeps running on its worker, and the resumed batch
    # must find its record (and skip) rather than stamp the file a second time.
    with _distributed().Lock(f"provenance-stamp:{pair[1]}"), _LOCK:
        # One stamp at a time per process (a worker may run several threads):
        # the identity and store connection are shared, set up once per batch.
        if _ACTIVE.get("batch") != token:
            previous = batch._WORKER.get("store")
            if previous is not None:
                previous.close()
            _ACTIVE.clear()
            _reuse_freed_memory()
            try:
                batch._init_worker(settings, None)  # None: the worker's signals stay Dask's
            except ProvenanceError as exc:
                batch._WORKER.clear()
                return batch.FileOutcome(pair[0], pair[1], "failed", error=str(exc))
            _ACTIVE["batch"] = token
        return batch._stamp_one(pair)


def _reuse_freed_memory() -> None:
    # Dask starts workers with MALLOC_TRIM_THRESHOLD_=65536, which also turns
    # off glibc's adaptive mmap threshold: every large temporary array of the
    # watermark is then mmapped and page-faulted afresh, and stamping took
    # twice as long as in a --jobs worker (measured, benchmarks/store_bench.py).
    # Restore the thresholds glibc would have adapted to (32 MiB, trim at twice that).
    if "MALLOC_TRIM_THRESHOLD_" not in os.environ or not sys.platform.startswith("linux"):
        return
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # not glibc
        return
    mallopt(-3, 32 << 20)  # M_MMAP_THRESHOLD
    mallopt(-1, 64 << 20)  # M_TRIM_THRESHOLD
