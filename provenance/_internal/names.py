"""File names as people and JSON can read them, whatever bytes the filesystem allows.

    >>> import os
    >>> printable(os.fsdecode(b"caf\\xe9.jpg"))
    'caf\\\\xe9.jpg'
    >>> printable("café.jpg")
    'café.jpg'

POSIX file names are bytes; Python decodes the ones that are not UTF-8 with
lone surrogates, which neither SQLite, JSON parsers nor the C2PA library
accept. Shown names escape each undecodable byte as ``\\xNN`` instead.
"""

from __future__ import annotations

import os


def printable(text: str | os.PathLike[str]) -> str:
    """``text`` with every undecodable file-name byte shown as ``\\xNN``."""
    value = os.fspath(text)
    try:
        return value.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # a surrogate that did not come from a file name
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
