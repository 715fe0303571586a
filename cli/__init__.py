"""Command-line interface: a thin layer over the ``provenance`` library."""

import os
import signal
import sys
from types import FrameType


def _interrupted_while_starting(signum: int, frame: FrameType | None) -> None:
    # Ctrl-C while the libraries are still being imported: nothing has been
    # read or written yet, so leave at once, quietly (no import traceback).
    sys.stderr.write("interrupted\n")
    os._exit(130)


# Only for the console script (`provenance ...`): cli.main.main() puts Python's
# default handler back once everything is imported.
if os.path.basename(sys.argv[0] if sys.argv else "") == "provenance":
    signal.signal(signal.SIGINT, _interrupted_while_starting)
