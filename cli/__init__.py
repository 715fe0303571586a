"""Command-line interface: a thin layer over the ``provenance`` library."""

# Ctrl-C while the libraries are still being imported (a second or more on a
# loaded machine) must leave quietly: nothing has been read or written yet.
# The handler goes in before anything else is imported, through the builtin
# _signal module (``import signal`` itself imports enum and takes time).
import _signal  # type: ignore[import-not-found]  # builtin, without a stub
import os
import sys


def _interrupted_while_starting(signum: int, frame: object) -> None:
    sys.stderr.write("interrupted\n")
    os._exit(130)


# Only for the console script (`provenance ...`): the command group puts
# Python's default handler back once it is inside its error handling
# (cli.main._Group.invoke), where Ctrl-C means exit 130 and clean-up.
if os.path.basename(sys.argv[0] if sys.argv else "") == "provenance":
    _signal.signal(_signal.SIGINT, _interrupted_while_starting)
