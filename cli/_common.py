"""What several commands share: running over many files with one exit code."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NoReturn

import click

from provenance.errors import ExitCode, ProvenanceError

# Worst first when several files give different outcomes: any error, then
# invalid credentials, then nothing found, then success.
_RANK = {ExitCode.OK: 0, ExitCode.NO_CREDENTIALS: 1, ExitCode.INVALID_CREDENTIALS: 2}


def run_per_file(
    files: Sequence[Path],
    work: Callable[[Path], ExitCode],
    finish: Callable[[], None] | None = None,
) -> NoReturn:
    """Apply ``work`` to each file, then ``finish``, and exit with the worst outcome.

    With one file its error propagates (one line, its own exit code); with
    several, an unreadable file is reported and the others are still done.
    """
    worst = ExitCode.OK
    for path in files:
        try:
            code = work(path)
        except ProvenanceError as exc:
            if len(files) == 1:
                raise
            click.echo(f"error: {exc}", err=True)
            code = exc.exit_code
        if _RANK.get(code, 3) > _RANK.get(worst, 3):
            worst = code
    if finish is not None:
        finish()
    raise SystemExit(int(worst))
