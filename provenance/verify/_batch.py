"""Verifying many files: folders walked recursively, and a tally in plain words.

>>> from provenance.verify._batch import Tally
>>> tally = Tally()
>>> for outcome in ["trusted", "valid", "valid", "altered", "none"]:
...     tally.add(outcome)
>>> tally.sentence()
'5 files: 1 trusted, 2 valid (unknown signer), 1 altered, 1 without credentials'
"""

from __future__ import annotations

import os
import stat
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from provenance._internal.formats import OGG, sniff
from provenance.errors import UsageError
from provenance.verify._core import State

__all__ = ["Tally", "expand_inputs", "outcome_of"]

# Outcome names, in the order the tally lists them, with their words.
_WORDS = (
    ("trusted", "trusted"),
    ("valid", "valid (unknown signer)"),
    ("recovered", "recovered from the watermark"),
    ("altered", "altered"),
    ("invalid", "invalid credentials"),
    ("none", "without credentials"),
    ("remote", "not checked (credentials stored elsewhere)"),
    ("unreadable", "unreadable"),
    ("skipped", "skipped (not a media file)"),
)

# Codes that mean the content itself no longer matches what was signed.
_ALTERED = frozenset(
    {
        "assertion.dataHash.mismatch",
        "assertion.bmffHash.mismatch",
        "assertion.boxesHash.mismatch",
        "assertion.collectionHash.mismatch",
        "provenance.softBinding.mismatch",
        "provenance.content.mismatch",
    }
)


def outcome_of(
    state: State, failure_codes: Iterable[str], recovered: bool = False, *, remote: bool = False
) -> str:
    """The tally bucket of one verified file (``remote``: its credentials are stored elsewhere)."""
    if state is State.INVALID:
        return "altered" if _ALTERED & set(failure_codes) else "invalid"
    if recovered:
        return "recovered"
    if state is State.NONE and remote:
        return "remote"  # signed, with credentials that were not fetched: not "without"
    return str(state.value)


@dataclass
class Tally:
    """Counts of outcomes over a run."""

    counts: Counter[str] = field(default_factory=Counter)

    def add(self, outcome: str) -> None:
        self.counts[outcome] += 1

    @property
    def total(self) -> int:
        return sum(n for outcome, n in self.counts.items() if outcome != "skipped")

    def sentence(self) -> str:
        parts = [f"{self.counts[key]} {words}" for key, words in _WORDS if self.counts[key]]
        noun = "file" if self.total == 1 else "files"
        return f"{self.total} {noun}: " + ", ".join(parts)

    def to_dict(self) -> dict[str, int]:
        return {key: self.counts[key] for key, _ in _WORDS}


def expand_inputs(inputs: Iterable[str | os.PathLike[str]]) -> Iterator[tuple[Path, bool]]:
    """Every file to verify, with whether it was found by walking a folder.

    Folders are walked recursively in name order, leaving out hidden files and
    folders (as ``provenance stamp`` does) and the ``NAME.c2pa`` sidecar of an OGG
    file (checked with that file, not as a file of its own). A file named on the command line
    is yielded as it is, even if it does not exist, so that the error names it.
    """
    for item in inputs:
        path = Path(item)
        if not path.is_dir():
            yield path, False
            continue
        found = sorted(_walk(path))
        if not found:
            raise UsageError(f"{path}: the folder holds no files to verify")
        for file in found:
            yield file, True


def _walk(folder: Path) -> Iterator[Path]:
    for root, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        visible = [name for name in files if not name.startswith(".")]
        sidecars = _sidecars(Path(root), visible)
        for name in visible:
            if name not in sidecars:
                yield Path(root) / name


def _sidecars(folder: Path, names: list[str]) -> set[str]:
    """The ``NAME.c2pa`` files among ``names`` that are the credentials of an OGG file beside
    them: verified with that file (``verify_file`` reads them), not as inputs of their own."""
    stems = {Path(name).stem for name in names if Path(name).suffix.lower() == ".c2pa"}
    owned: set[str] = set()
    for name in names:
        path = Path(name)
        if path.suffix.lower() == ".c2pa" or path.stem not in stems:
            continue
        if _is_ogg(folder / name):
            owned.add(f"{path.stem}.c2pa")
    return {name for name in names if name in owned}


def _is_ogg(path: Path) -> bool:
    try:
        # Only a regular file is peeked at: opening a FIFO would wait for a writer forever.
        if not stat.S_ISREG(os.stat(path).st_mode):
            return False
        with open(path, "rb") as handle:
            return sniff(handle.read(64)) is OGG
    except OSError:
        return False
