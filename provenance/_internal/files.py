"""Safe file I/O: inputs read with clear errors, outputs written atomically.

Inputs are opened once, checked to be regular files (a FIFO would block, a
device would never end), and read in pieces, so a 3 GB video never has to fit
in memory::

    >>> import tempfile, os
    >>> from provenance._internal.files import atomic_write, open_input
    >>> folder = tempfile.mkdtemp()
    >>> atomic_write(os.path.join(folder, "a.bin"), b"0123456789")
    >>> with open_input(os.path.join(folder, "a.bin")) as source:
    ...     len(source), source[2:5], source[-3:]
    (10, b'234', b'789')
    >>> os.listdir(folder)                       # no temporary file left behind
    ['a.bin']
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import re
import secrets
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import IO, BinaryIO, Protocol

from provenance.errors import (
    CorruptInputError,
    InputNotFoundError,
    OutputError,
    UnreadableInputError,
)


class ByteView(Protocol):
    """What format checks need: a length and byte slices (``bytes`` or an :class:`InputFile`)."""

    def __len__(self) -> int: ...

    def __getitem__(self, key: slice, /) -> bytes: ...


def display(path: str | os.PathLike[str] | bytes) -> str:
    """A path as text that can always be printed or put in JSON.

    File names are bytes on POSIX; Python carries undecodable ones as lone
    surrogates, which no UTF-8 encoder (nor the C2PA library's JSON parser)
    accepts. They are shown as ``\\xNN`` escapes instead.
    """
    raw = path if isinstance(path, bytes) else os.fsencode(path)
    return raw.decode("utf-8", "backslashreplace")


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


class InputFile:
    """A regular file opened for reading, sliced like ``bytes`` without loading it.

    ``source[a:b]`` reads just those bytes (``os.pread``); :meth:`stream`
    gives a file object for libraries that read sequentially.
    """

    def __init__(self, fd: int, size: int, name: str) -> None:
        self._fd = fd
        self.size = size
        self.name = name

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, key: slice, /) -> bytes:
        start, stop, step = key.indices(self.size)
        if step != 1:
            raise ValueError("InputFile slices must be contiguous")
        return self.read_at(start, stop - start)

    def read_at(self, offset: int, length: int) -> bytes:
        chunks = []
        while length > 0:
            chunk = os.pread(self._fd, length, offset)
            if not chunk:
                break  # the file shrank under us; callers see short data
            chunks.append(chunk)
            offset += len(chunk)
            length -= len(chunk)
        return b"".join(chunks)

    def stream(self) -> BinaryIO:
        """A new file object over the same open file, at offset 0.

        Pillow decodes lazily and keeps the stream as long as the image lives,
        so the stream closes itself when it is collected (quietly: that is its
        intended end, not a leak).
        """
        handle = _SelfClosingReader(_SelfClosingFile(os.dup(self._fd), "rb"))
        handle.seek(0)
        return handle

    def fileno(self) -> int:
        """The open file's descriptor (owned by this object: do not close it)."""
        return self._fd

    def read_all(self) -> bytes:
        return self.read_at(0, self.size)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


class _SelfClosingReader(io.BufferedReader):
    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()


class _SelfClosingFile(io.FileIO):
    # In a reference cycle the raw file may be collected before its buffer.
    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()


def as_stream(data: bytes | InputFile) -> BinaryIO:
    """A readable, seekable binary stream over ``data``."""
    return data.stream() if isinstance(data, InputFile) else io.BytesIO(data)


@contextlib.contextmanager
def open_input(path: str | os.PathLike[str]) -> Iterator[InputFile]:
    """Open an input file for reading in pieces; see :class:`InputFile`.

    Anything but a non-empty regular file is refused with a one-line error:
    a FIFO would block forever and a device (``/dev/zero``) never ends.
    """
    name = display(path)
    try:
        # O_NONBLOCK: opening a FIFO with no writer must not hang before we can refuse it.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise InputNotFoundError(f"{name}: no such file") from None
    except IsADirectoryError:
        raise UnreadableInputError(f"{name}: is a directory, not a file") from None
    except PermissionError:
        raise UnreadableInputError(f"{name}: permission denied") from None
    except OSError as exc:
        raise UnreadableInputError(f"{name}: cannot read ({exc.strerror or exc})") from None
    source = InputFile(fd, 0, name)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            what = _kind(info.st_mode)
            suffix = ", not a file" if what == "a directory" else "; only regular files are read"
            raise UnreadableInputError(f"{name}: is {what}{suffix}")
        os.set_blocking(fd, True)
        source.size = info.st_size
        if source.size == 0:
            raise CorruptInputError(f"{name}: file is empty")
        yield source
    finally:
        source.close()


def read_input(path: str | os.PathLike[str]) -> bytes:
    """Read a whole (regular) input file, turning OS failures into one-line errors."""
    with open_input(path) as source:
        try:
            data = source.read_all()
        except OSError as exc:
            raise UnreadableInputError(f"{source.name}: cannot read ({exc.strerror or exc})") from None
    if not data:
        raise CorruptInputError(f"{source.name}: file is empty")
    return data


def same_file(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> bool:
    """True when both paths name the same existing file (links and case included)."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def check_output(path: str | os.PathLike[str]) -> None:
    """Refuse an output path that exists and is not a regular file.

    Renaming over a FIFO, a device (``-o /dev/null`` as root) or a socket would
    replace the node itself; symlinks are followed to what they point to.
    """
    dest = Path(path)
    try:
        info = os.stat(dest)
    except OSError:
        return  # does not exist (or a dangling link): a new file is made
    if stat.S_ISDIR(info.st_mode):
        raise OutputError(f"{display(dest)}: is a directory; give a file name for the output")
    if not stat.S_ISREG(info.st_mode):
        raise OutputError(
            f"{display(dest)}: is {_kind(info.st_mode)}; outputs are only written to regular files"
        )


# Named temporary files carry the writer's pid, so a later run can tell a dead
# writer's leftovers (killed with SIGKILL, power loss) from a live one's.
_TMP_MARK = ".provenance-"
_TMP_NAME = re.compile(r"\.provenance-(\d+)-[0-9a-f]{8}\.tmp$")


def temporary_name(dest: Path) -> Path:
    return dest.parent / f".{dest.name}{_TMP_MARK}{os.getpid()}-{secrets.token_hex(4)}.tmp"


def remove_stale_temporaries(folder: Path, dest_name: str) -> list[Path]:
    """Remove the temporary files of ``dest_name`` left in ``folder`` by processes that died."""
    removed: list[Path] = []
    prefix = f".{dest_name}{_TMP_MARK}"
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        if not entry.name.startswith(prefix):
            continue
        match = _TMP_NAME.search(entry.name)
        if match is None or _alive(int(match.group(1))):
            continue
        with contextlib.suppress(OSError):
            os.unlink(entry.path)
            removed.append(Path(entry.path))
    return removed


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # exists, owned by someone else
    return True


_LINKABLE: dict[int, bool] = {}


def _anonymous_file(folder: Path) -> int | None:
    """An unnamed file in ``folder`` (Linux O_TMPFILE): it vanishes if we are killed.

    None where the platform, the filesystem or the mount set-up cannot create
    one and later give it a name (some containers refuse the link with EXDEV).
    """
    flag = getattr(os, "O_TMPFILE", 0)
    if not flag or not os.path.isdir("/proc/self/fd"):
        return None
    try:
        fd = os.open(folder, flag | os.O_RDWR | getattr(os, "O_CLOEXEC", 0), 0o600)
    except OSError as exc:
        if exc.errno in (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL, errno.ENOTSUP, errno.EXDEV):
            return None  # this filesystem cannot: fall back to a named temporary file
        raise
    device = os.fstat(fd).st_dev
    if device not in _LINKABLE:
        # Probe once per filesystem with an empty file of our own.
        probe_fd = os.open(folder, flag | os.O_RDWR | getattr(os, "O_CLOEXEC", 0), 0o600)
        probe = temporary_name(folder / "probe")
        try:
            _name_unnamed(probe_fd, probe)
            os.unlink(probe)
            _LINKABLE[device] = True
        except OSError:
            _LINKABLE[device] = False
        finally:
            os.close(probe_fd)
    if not _LINKABLE[device]:
        os.close(fd)
        return None
    return fd


def _name_unnamed(fd: int, path: Path) -> None:
    """Give the unnamed file ``fd`` the name ``path`` (in its own folder).

    linkat(2) with AT_SYMLINK_FOLLOW on ``/proc/self/fd/N`` does it without
    privileges. ``os.link`` calls plain link(2) unless a directory fd is given,
    and link(2) does not follow /proc's link (it fails with EXDEV), so the
    folder is passed as ``dst_dir_fd`` to get linkat.
    """
    flags = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0)
    folder_fd = os.open(path.parent, flags)
    try:
        os.link(f"/proc/self/fd/{fd}", path.name, dst_dir_fd=folder_fd, follow_symlinks=True)
    finally:
        os.close(folder_fd)


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike[str], mode: int | None = None) -> Iterator[IO[bytes]]:
    """Yield a read-write binary file that replaces ``path`` only if the block succeeds.

    The data goes to an unnamed file in the destination folder (``O_TMPFILE``:
    nothing is left behind even by ``kill -9``) or, where the filesystem cannot
    do that, to a temporary file named after this process, which a later run
    removes once the process is gone. It is flushed to disk, then renamed over
    ``path`` (atomic on POSIX). On any exception ``path`` is untouched: a reader
    never sees a half-written output. Existing outputs that are not regular
    files (FIFOs, devices) are refused, never replaced.
    """
    with pending_output(path, mode) as pending:
        yield pending.handle
        pending.publish()


class PendingOutput:
    """An output being written (see :func:`pending_output`): ``handle`` is its
    content so far; :meth:`publish` puts it in place."""

    def __init__(self, handle: IO[bytes], dest: Path, tmp: Path | None) -> None:
        self.handle = handle
        self.dest = dest
        self.tmp = tmp
        self.published = False

    def publish(self) -> None:
        """Flush to disk and rename over the destination (atomic on POSIX)."""
        self.handle.flush()
        os.fsync(self.handle.fileno())
        if self.tmp is None:
            # Give the unnamed file a name, then rename it into place: link
            # cannot replace an existing file, rename can.
            self.tmp = temporary_name(self.dest)
            _name_unnamed(self.handle.fileno(), self.tmp)
        check_output(self.dest)  # a FIFO made meanwhile must not be renamed over either
        os.replace(self.tmp, self.dest)
        self.published = True
        _fsync_folder(self.dest.parent if str(self.dest.parent) else Path("."))


@contextlib.contextmanager
def pending_output(path: str | os.PathLike[str], mode: int | None = None) -> Iterator[PendingOutput]:
    """:func:`atomic_output` whose rename is the caller's step (``publish()``), for
    work to do between writing and publishing (recording a stamp). Unpublished,
    the file is removed when the block ends."""
    dest = Path(path)
    folder = dest.parent if str(dest.parent) else Path(".")
    name = display(dest)
    check_output(dest)
    remove_stale_temporaries(folder, dest.name)
    pending: PendingOutput | None = None
    tmp: Path | None = None
    try:
        fd = _anonymous_file(folder)
        if fd is None:
            tmp = temporary_name(dest)
            fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o600)
    except FileNotFoundError:
        raise OutputError(f"{name}: folder {display(folder)} does not exist") from None
    except PermissionError:
        raise OutputError(f"{name}: cannot write in {display(folder)} (permission denied)") from None
    except OSError as exc:
        raise OutputError(f"{name}: cannot write ({exc.strerror or exc})") from None
    try:
        # Temporary files are made 0600; outputs get the usual umask-derived mode
        # unless the caller asks for a specific one (private keys: 0600).
        os.fchmod(fd, mode if mode is not None else 0o666 & ~_umask())
        with os.fdopen(fd, "w+b") as handle:
            pending = PendingOutput(handle, dest, tmp)
            yield pending
    except BaseException as exc:
        if isinstance(exc, OSError):
            if exc.errno == errno.ENOSPC:
                raise OutputError(f"{name}: no space left on device") from None
            raise OutputError(f"{name}: cannot write ({exc.strerror or exc})") from None
        raise
    finally:
        leftover = pending.tmp if pending is not None else tmp
        if leftover is not None and not (pending is not None and pending.published):
            with contextlib.suppress(FileNotFoundError):
                leftover.unlink()


@contextlib.contextmanager
def scratch_file(folder: Path) -> Iterator[IO[bytes]]:
    """A read-write file with no name in ``folder`` (a real disk beside the output,
    not a memory-backed /tmp), gone when closed or when the process dies."""
    try:
        fd = _anonymous_file(folder)
        if fd is None:
            # Named only for the moment between creating and unlinking it; a
            # later run removes it if we die in between (see remove_stale_temporaries).
            tmp = temporary_name(folder / "scratch")
            fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), 0o600)
            os.unlink(tmp)
    except FileNotFoundError:
        raise OutputError(f"folder {display(folder)} does not exist") from None
    except OSError as exc:
        raise OutputError(f"{display(folder)}: cannot write ({exc.strerror or exc})") from None
    with os.fdopen(fd, "w+b") as handle:
        yield handle


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


__all__ = [
    "ByteView",
    "InputFile",
    "PendingOutput",
    "as_stream",
    "atomic_output",
    "atomic_write",
    "check_output",
    "display",
    "open_input",
    "pending_output",
    "read_input",
    "remove_stale_temporaries",
    "same_file",
    "scratch_file",
]
