"""The ``provenance`` command: parse arguments, call the library, print results.

    $ provenance keys init
    $ provenance sign generated.png -o signed.png --model my-model
    $ provenance verify signed.png --trust-anchors ~/.config/provenance/identity/root-ca.pem

Data goes to stdout (``--json`` for machines), messages to stderr. Exit codes
are listed in :class:`provenance.errors.ExitCode`.
"""

from __future__ import annotations

import logging
import signal
import sys
import traceback
import warnings
from typing import Any

import click

from cli import _interrupted_while_starting
from provenance.errors import ExitCode, ProvenanceError


class _Group(click.Group):
    """Turns library errors into one line on stderr and a distinct exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        verbose = bool(ctx.params.get("verbose"))
        try:
            _ctrl_c_is_keyboard_interrupt()
            with warnings.catch_warnings():
                warnings.simplefilter("always")
                warnings.showwarning = _show_warning
                return super().invoke(ctx)
        except ProvenanceError as exc:
            if verbose:
                traceback.print_exc(file=sys.stderr)
            click.echo(f"error: {exc}", err=True)
            ctx.exit(int(exc.exit_code))
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            ctx.exit(130)
        except Exception as exc:  # a bug: report it briefly, in full only with -v
            if verbose:
                traceback.print_exc(file=sys.stderr)
            click.echo(f"internal error: {type(exc).__name__}: {exc} (run with -v for details)", err=True)
            ctx.exit(int(ExitCode.INTERNAL))


_OURS = ("provenance", "watermark", "manifests", "cli")
"""Our loggers: DEBUG with -v. Everything else stays at WARNING, so -v never
shows a library's internals (Pillow logs every TIFF tag it reads at DEBUG)."""
_NOISY = ("PIL",)
"""Third-party loggers pinned to WARNING even if something lowers the root level."""


class _StderrHandler(logging.Handler):
    """Writes to whatever stderr is current (click's test runner swaps it per call)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            click.echo(self.format(record), err=True)
        except Exception:  # logging must never break the command
            self.handleError(record)


_HANDLER = _StderrHandler()
_HANDLER.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))


def configure_logging(verbose: bool) -> None:
    """Our loggers at DEBUG with ``-v`` (else WARNING); third-party ones at WARNING."""
    root = logging.getLogger()
    if _HANDLER not in root.handlers:
        root.addHandler(_HANDLER)
    root.setLevel(logging.WARNING)
    for name in _OURS:
        logging.getLogger(name).setLevel(logging.DEBUG if verbose else logging.WARNING)
    for name in _NOISY:
        logging.getLogger(name).setLevel(logging.WARNING)
    # libvips warns of each strip it could not read of a truncated picture, then fails
    # with the error we report: bad input stays one line (the warnings with -v).
    logging.getLogger("pyvips").setLevel(logging.WARNING if verbose else logging.ERROR)


def _show_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: Any = None,
    line: str | None = None,
) -> None:
    click.echo(f"warning: {message}", err=True)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", is_flag=True, help="Show tracebacks and debug logging.")
@click.version_option(package_name="provenance-kit", prog_name="provenance")
def cli(verbose: bool) -> None:
    """Sign, watermark and verify the provenance of AI-generated media."""
    configure_logging(verbose)


def _register() -> None:
    from cli import keys, serve, sign, stamp, store, verify, watermark

    cli.add_command(keys.keys)
    cli.add_command(sign.sign)
    cli.add_command(verify.verify)
    cli.add_command(stamp.command)
    cli.add_command(store.command)
    cli.add_command(watermark.command)
    cli.add_command(serve.command)


def _ctrl_c_is_keyboard_interrupt() -> None:
    """From here on Ctrl-C is a KeyboardInterrupt again, handled by _Group.invoke:
    exit 130, temporary files removed. Until here (imports, argument parsing) the
    console script's start-up handler exits 130 at once (see cli/__init__.py)."""
    if signal.getsignal(signal.SIGINT) is _interrupted_while_starting:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="provenance")


_register()
