"""Critical sections that a signal cannot split.

    >>> with deferred_signals():
    ...     pass  # SIGINT/SIGTERM arriving here are delivered on exit

Recording a stamp and renaming its output into place must both happen or
neither: a Ctrl-C or SIGTERM arriving between the two is held back until the
pair is done (SIGKILL cannot be, which is why the record is written first).

Python runs signal handlers in the main thread whichever thread the kernel
delivered the signal to, so blocking signals with a thread's mask would not
hold them back; instead the handlers themselves are swapped for one that
notes the signal, and the noted signals are raised again on exit.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType

_DEFERRED = (signal.SIGINT, signal.SIGTERM)


@contextlib.contextmanager
def deferred_signals() -> Iterator[None]:
    """Hold SIGINT and SIGTERM back for the duration of the block (main thread only:
    other threads never run Python signal handlers)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    pending: list[int] = []

    def hold(signum: int, frame: FrameType | None) -> None:
        pending.append(signum)

    previous = {}
    for sig in _DEFERRED:
        if signal.getsignal(sig) is not None:  # None: installed outside Python, leave it
            previous[sig] = signal.signal(sig, hold)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        for signum in dict.fromkeys(pending):
            signal.raise_signal(signum)
