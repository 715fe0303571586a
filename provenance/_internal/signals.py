"""Critical sections that a signal cannot split.

    >>> with deferred_signals():
    ...     pass  # SIGINT/SIGTERM arriving here are delivered on exit

Recording a stamp and renaming its output into place must both happen or
neither: a Ctrl-C or SIGTERM arriving between the two is held back until the
pair is done (SIGKILL cannot be, which is why the record is written first).
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator

_DEFERRED = {signal.SIGINT, signal.SIGTERM}


@contextlib.contextmanager
def deferred_signals() -> Iterator[None]:
    """Hold SIGINT and SIGTERM back for the duration of the block (POSIX; a no-op elsewhere)."""
    if not hasattr(signal, "pthread_sigmask"):  # pragma: no cover - Windows
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, _DEFERRED)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
