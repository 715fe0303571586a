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

from provenance.errors import ExitCode, ProvenanceError


class _Group(click.Group):
    """Turns library errors into one line on stderr and a distinct exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        verbose = bool(ctx.params.get("verbose"))
        try:
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
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING, stream=sys.stderr)


def _register() -> None:
    from cli import keys, sign, stamp, store, verify, watermark

    cli.add_command(keys.keys)
    cli.add_command(sign.sign)
    cli.add_command(verify.verify)
    cli.add_command(stamp.command)
    cli.add_command(store.command)
    cli.add_command(watermark.command)


def main() -> None:
    """Console-script entry point."""
    # From here on Ctrl-C is a KeyboardInterrupt again (see cli/__init__.py),
    # handled above: exit 130, temporary files removed.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    cli(prog_name="provenance")


_register()
