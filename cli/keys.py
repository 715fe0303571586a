"""``provenance keys``: create and inspect signing identities."""

from __future__ import annotations

import json
from pathlib import Path

import click

from cli._identity import load_cli_identity
from provenance.keys import (
    SigningAlgorithm,
    create_development_identity,
    default_identity_dir,
    identity_paths,
)


@click.group()
def keys() -> None:
    """Create and inspect signing identities."""


@keys.command("init")
@click.option(
    "--dir",
    "folder",
    type=click.Path(path_type=Path),
    help="Where to create it (default: $PROVENANCE_HOME/identity or the user config folder).",
)
@click.option(
    "--alg",
    "algorithm",
    type=click.Choice([a.value for a in SigningAlgorithm]),
    default="es256",
    show_default=True,
    help="Signature algorithm.",
)
@click.option("--force", is_flag=True, help="Replace an existing identity.")
@click.option("--if-missing", is_flag=True, help="Do nothing (exit 0) if an identity exists.")
def init(folder: Path | None, algorithm: str, force: bool, if_missing: bool) -> None:
    """Create a DEVELOPMENT signing identity (root CA + signing certificate).

    Content signed with it is labelled as signed by a development identity and
    is only 'trusted' by verifiers that add its root-ca.pem as a trust anchor.
    """
    target = folder or default_identity_dir()
    if if_missing and (target / "signing-key.pem").exists():
        click.echo(f"identity already present in {target}", err=True)
        return
    paths = create_development_identity(target, algorithm=algorithm, overwrite=force)
    click.echo(f"created a development identity ({algorithm.upper()}) in {paths.folder}", err=True)
    click.echo(f"  private key (mode 0600): {paths.key}", err=True)
    click.echo(f"  certificate chain:       {paths.chain}", err=True)
    click.echo(f"  root CA to trust:        {paths.root}", err=True)
    click.echo("DEVELOPMENT IDENTITY: not for production content.", err=True)


@keys.command("show")
@click.option("--dir", "folder", type=click.Path(path_type=Path), help="Identity folder.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def show(folder: Path | None, as_json: bool) -> None:
    """Describe the identity used for signing."""
    identity = load_cli_identity(folder, None, None, None)
    paths = identity_paths(folder)
    cert = identity.certificate
    info = {
        "folder": str(paths.folder),
        "subject": identity.subject,
        "issuer": cert.issuer.rfc4514_string(),
        "algorithm": identity.algorithm.value,
        "not_before": cert.not_valid_before_utc.isoformat(),
        "not_after": cert.not_valid_after_utc.isoformat(),
        "development": identity.is_development,
        "root_ca": str(paths.root) if paths.root else None,
    }
    if as_json:
        click.echo(json.dumps(info, indent=2))
        return
    for key, value in info.items():
        click.echo(f"{key:>11}: {value}")
    if identity.is_development:
        click.echo("DEVELOPMENT IDENTITY: not for production content.")
