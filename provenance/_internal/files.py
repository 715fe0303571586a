"""Safe file I/O: inputs read with clear errors, outputs written atomically."""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from provenance.errors import (
    CorruptInputError,
    InputNotFoundError,
    OutputError,
    UnreadableInputError,
)


def read_input(path: str | os.PathLike[str]) -> bytes:
    """Read a whole input file, turning OS failures into one-line errors."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        raise InputNotFoundError(f"{p}: no such file") from None
    except IsADirectoryError:
        raise UnreadableInputError(f"{p}: is a directory, not a file") from None
    except PermissionError:
        raise UnreadableInputError(f"{p}: permission denied") from None
    except OSError as exc:
        raise UnreadableInputError(f"{p}: cannot read ({exc.strerror or exc})") from None
    if not data:
        raise CorruptInputError(f"{p}: file is empty")
    return data


def same_file(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> bool:
    """True when both paths name the same existing file (links and case included)."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike[str], mode: int | None = None) -> Iterator[IO[bytes]]:
    """Yield a read-write binary file that replaces ``path`` only if the block succeeds.

    The data goes to a temporary file in the destination folder (so the final
    rename is atomic on POSIX), is flushed to disk, then renamed over ``path``.
    On any exception the temporary file is removed and ``path`` is untouched:
    a reader never sees a half-written output.
    """
    dest = Path(path)
    folder = dest.parent if str(dest.parent) else Path(".")
    if dest.is_dir():
        raise OutputError(f"{dest}: is a directory; give a file name for the output")
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=folder)
    except FileNotFoundError:
        raise OutputError(f"{dest}: folder {folder} does not exist") from None
    except PermissionError:
        raise OutputError(f"{dest}: cannot write in {folder} (permission denied)") from None
    except OSError as exc:
        raise OutputError(f"{dest}: cannot write ({exc.strerror or exc})") from None
    tmp = Path(tmp_name)
    try:
        # mkstemp makes 0600 files; outputs get the usual umask-derived mode
        # unless the caller asks for a specific one (private keys: 0600).
        os.fchmod(fd, mode if mode is not None else 0o666 & ~_umask())
        with os.fdopen(fd, "w+b") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, dest)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        if isinstance(exc, OSError):
            if exc.errno == errno.ENOSPC:
                raise OutputError(f"{dest}: no space left on device") from None
            raise OutputError(f"{dest}: cannot write ({exc.strerror or exc})") from None
        raise
    _fsync_folder(folder)


def atomic_write(path: str | os.PathLike[str], data: bytes, mode: int | None = None) -> None:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_output`)."""
    with atomic_output(path, mode) as handle:
        handle.write(data)


def _fsync_folder(folder: Path) -> None:
    # The rename is only durable once the directory entry is on disk.
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _umask() -> int:
    # os.umask can only be read by setting it; restore it at once.
    current = os.umask(0)
    os.umask(current)
    return current
