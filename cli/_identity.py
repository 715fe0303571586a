"""Identity options shared by the commands that sign."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from provenance.errors import UsageError, WrongPassphraseError
from provenance.keys import (
    PASSPHRASE_ENV,
    Identity,
    default_identity_dir,
    load_identity,
    load_identity_dir,
)

F = TypeVar("F", bound=Callable[..., Any])


def identity_options(func: F) -> F:
    """Add --identity / --key / --cert / --tsa-url."""
    options = [
        click.option(
            "--identity",
            "identity_dir",
            type=click.Path(path_type=Path),
            help="Identity folder made by 'provenance keys init' "
            "(default: $PROVENANCE_HOME/identity or the user config folder).",
        ),
        click.option(
            "--key",
            "key_path",
            type=click.Path(path_type=Path),
            help="PEM private key (with --cert). Encrypted keys read the passphrase "
            f"from ${PASSPHRASE_ENV} or a prompt, never from the command line.",
        ),
        click.option(
            "--cert",
            "cert_path",
            type=click.Path(path_type=Path),
            help="PEM certificate chain, signing certificate first (with --key).",
        ),
        click.option("--tsa-url", help="RFC 3161 timestamp authority URL (contacted when signing)."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def load_cli_identity(
    identity_dir: Path | None, key_path: Path | None, cert_path: Path | None, tsa_url: str | None
) -> Identity:
    """The identity the options name; asks for a passphrase only on a terminal."""
    return identity_loader(identity_dir, key_path, cert_path, tsa_url)()


def identity_loader(
    identity_dir: Path | None, key_path: Path | None, cert_path: Path | None, tsa_url: str | None
) -> Callable[[], Identity]:
    """A picklable loader for worker processes, with the passphrase already resolved.

    The identity is loaded once here so that a wrong passphrase or a missing
    key fails before any work starts; workers cannot prompt.
    """
    if (key_path is None) != (cert_path is None):
        raise UsageError("--key and --cert go together")
    if identity_dir is not None and key_path is not None:
        raise UsageError("use either --identity or --key/--cert, not both")

    def make(secret: str | None) -> Callable[[], Identity]:
        if key_path is not None and cert_path is not None:
            return functools.partial(
                load_identity, key_path, cert_path, passphrase=secret, timestamp_url=tsa_url
            )
        # Resolved here, not in the worker: stamp workers come from a forkserver
        # started once per process, whose environment (PROVENANCE_HOME) may be stale.
        folder = identity_dir or default_identity_dir()
        return functools.partial(load_identity_dir, folder, passphrase=secret, timestamp_url=tsa_url)

    loader = make(os.environ.get(PASSPHRASE_ENV))
    try:
        loader()
        return loader
    except WrongPassphraseError:
        if os.environ.get(PASSPHRASE_ENV) is not None or not sys.stdin.isatty():
            raise
    loader = make(click.prompt("Passphrase for the signing key", hide_input=True, err=True))
    loader()
    return loader
