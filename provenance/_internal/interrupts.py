"""Ctrl-C during native code: remembered at once, acted on where it is safe.

c2pa-python calls back into Python to read and write the asset. A
``KeyboardInterrupt`` raised inside such a callback cannot cross the native
frames: it is printed as a traceback and the library sees a short read (a
truncated stream it may sign as if whole) or panics. Inside
:func:`deferred_interrupts`, SIGINT only sets a flag; the stream wrappers then
fail their next read or write, which makes the native call return an error
promptly, and the interrupt is raised once control is back in Python::

    >>> import io
    >>> from provenance._internal.interrupts import deferred_interrupts
    >>> with deferred_interrupts() as state:
    ...     state.guard(io.BytesIO(b"abc")).read()
    b'abc'
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Callable, Iterator
from types import FrameType
from typing import IO, Any


class Interrupted(Exception):
    """Raised by a guarded stream after Ctrl-C; native callers turn it into an error."""


class InterruptState:
    """Whether SIGINT arrived while interrupts were deferred."""

    def __init__(self) -> None:
        self.interrupted = False
        self.write_error: OSError | None = None
        """The first OS error of a guarded write (disk full): the native caller reports
        only that it could not write, which would read as a broken input."""

    def check(self) -> None:
        if self.interrupted:
            raise Interrupted("interrupted")

    def guard(self, stream: IO[bytes]) -> _GuardedStream:
        """``stream``, failing every read, write and seek once an interrupt arrived."""
        return _GuardedStream(stream, self)


class _GuardedStream:
    def __init__(self, stream: IO[bytes], state: InterruptState) -> None:
        self._stream = stream
        self._state = state

    def read(self, size: int = -1) -> bytes:
        self._state.check()
        return self._stream.read(size)

    def readinto(self, buffer: Any) -> int | None:
        self._state.check()
        readinto = getattr(self._stream, "readinto", None)
        if readinto is None:
            data = self._stream.read(len(buffer))
            buffer[: len(data)] = data
            return len(data)
        result: int | None = readinto(buffer)
        return result

    def write(self, data: Any) -> int:
        self._state.check()
        try:
            return self._stream.write(data)
        except OSError as exc:
            self._state.write_error = self._state.write_error or exc
            raise

    def seek(self, offset: int, whence: int = 0) -> int:
        self._state.check()
        return self._stream.seek(offset, whence)

    def tell(self) -> int:
        return self._stream.tell()

    def flush(self) -> None:
        self._state.check()
        try:
            self._stream.flush()
        except OSError as exc:
            self._state.write_error = self._state.write_error or exc
            raise


@contextlib.contextmanager
def deferred_interrupts() -> Iterator[InterruptState]:
    """Defer SIGINT for the block; raise ``KeyboardInterrupt`` after it if one came.

    Only where Python's default SIGINT handler is installed, in the main
    thread: a program that handles or ignores SIGINT itself keeps its choice.
    """
    state = InterruptState()
    if threading.current_thread() is not threading.main_thread():
        yield state
        return
    previous = signal.getsignal(signal.SIGINT)
    if previous is not signal.default_int_handler:
        yield state
        return

    def remember(signum: int, frame: FrameType | None) -> None:
        state.interrupted = True

    signal.signal(signal.SIGINT, remember)
    try:
        yield state
    except BaseException:
        # Whatever the native call made of its failed reads, the cause was Ctrl-C.
        if state.interrupted:
            raise KeyboardInterrupt from None
        raise
    finally:
        signal.signal(signal.SIGINT, previous)
    if state.interrupted:
        raise KeyboardInterrupt


class CallbackFile:
    """A file handed to libsndfile, which reads, writes and seeks it from C callbacks.

    An exception raised in such a callback cannot cross the C frames: cffi prints it as
    "Exception ignored" and returns 0, so a Ctrl-C was lost (with a wrong position handed
    to libsndfile, which then carried on) and a full disk was a short write. The first
    exception is kept here instead, every later call fails, and :meth:`raising` raises it
    once the libsndfile call is back in Python (a Ctrl-C is deferred until then).

        >>> import io
        >>> source = CallbackFile(io.BytesIO(b"abc"))
        >>> with source.raising():
        ...     source.read(2)
        b'ab'

    """

    def __init__(self, file: IO[bytes]) -> None:
        self._file = file
        self.error: BaseException | None = None

    def _call(self, method: Callable[..., Any], *args: Any, failed: Any) -> Any:
        if self.error is not None:
            return failed
        try:
            return method(*args)
        except BaseException as exc:
            self.error = exc
            return failed

    def read(self, size: int = -1) -> bytes:
        data: bytes = self._call(self._file.read, size, failed=b"")
        return data

    def write(self, data: bytes) -> int:
        written: int = self._call(self._file.write, data, failed=0)
        return written

    def seek(self, offset: int, whence: int = 0) -> int:
        position: int = self._call(self._file.seek, offset, whence, failed=-1)
        return position

    def tell(self) -> int:
        position: int = self._call(self._file.tell, failed=-1)
        return position

    @contextlib.contextmanager
    def raising(self) -> Iterator[None]:
        """Run a libsndfile call: Ctrl-C waits until it is back (the callbacks have Python
        code of their own, outside these methods, where it would be lost too), then the
        kept exception is raised, whatever libsndfile made of it."""
        with deferred_interrupts():
            try:
                yield
            except Exception:
                if self.error is None:
                    raise
            if self.error is not None:
                raise self.error
