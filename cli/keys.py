"""``provenance keys``: create and inspect signing identities."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click

from cli._identity import load_cli_identity
from provenance.errors import UsageError, WrongPassphraseError
from provenance.keys import (
    PASSPHRASE_ENV,
    ImportedIdentity,
    SigningAlgorithm,
    create_development_identity,
    create_signing_request,
    default_identity_dir,
    identity_paths,
    import_certificate_chain,
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


_ALGORITHMS = click.Choice([a.value for a in SigningAlgorithm])


@keys.command("csr")
@click.option(
    "--dir",
    "folder",
    type=click.Path(path_type=Path),
    help="Identity folder to create (default: $PROVENANCE_HOME/identity or the user config folder).",
)
@click.option(
    "--cn",
    "common_name",
    required=True,
    help="Common name (CN): the signer as people read it, e.g. 'Example News image signer'.",
)
@click.option(
    "--org",
    "organization",
    required=True,
    help="Organization (O): the legal name the CA checks; validators show it as who signed.",
)
@click.option("--country", help="Country (C), two letters, e.g. DE.")
@click.option("--ou", "organizational_unit", help="Organizational unit (OU), optional.")
@click.option("--email", help="Contact address: adds emailProtection and a subject alternative name.")
@click.option("--alg", "algorithm", type=_ALGORITHMS, default="es256", show_default=True)
@click.option(
    "--encrypt",
    is_flag=True,
    help=f"Encrypt the private key with a passphrase from ${PASSPHRASE_ENV} or a prompt.",
)
@click.option("--force", is_flag=True, help="Replace an identity already in the folder.")
def csr(
    folder: Path | None,
    common_name: str,
    organization: str,
    country: str | None,
    organizational_unit: str | None,
    email: str | None,
    algorithm: str,
    encrypt: bool,
    force: bool,
) -> None:
    """Make a PRODUCTION private key and a certificate signing request for a CA.

    Prints the request (PEM) on stdout. Send it to a CA that issues C2PA
    claim signing (or document signing) certificates, then install what it
    returns with 'provenance keys import CHAIN.pem --dir DIR'.
    """
    passphrase = _new_passphrase() if encrypt else None
    request = create_signing_request(
        folder,
        common_name=common_name,
        organization=organization,
        country=country,
        organizational_unit=organizational_unit,
        email=email,
        algorithm=algorithm,
        passphrase=passphrase,
        overwrite=force,
    )
    click.echo(request.pem.decode("ascii"), nl=False)
    state = "encrypted, mode 0600" if request.encrypted else "NOT encrypted, mode 0600"
    click.echo(f"private key ({state}): {request.key}", err=True)
    click.echo(f"certificate request:   {request.csr}", err=True)
    click.echo(
        f"next: have a CA sign it, then 'provenance keys import CHAIN.pem --dir {request.folder}'", err=True
    )


@keys.command("import")
@click.argument("chain", type=click.Path(path_type=Path))
@click.option(
    "--dir",
    "folder",
    type=click.Path(path_type=Path),
    help="Identity folder holding the key from 'keys csr' (default: $PROVENANCE_HOME/identity).",
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def import_(chain: Path, folder: Path | None, as_json: bool) -> None:
    """Check a CA-issued certificate chain against the key and install it.

    CHAIN is PEM certificates (any order) or PKCS#7. It must hold the
    certificate for the key in the folder, be valid today and meet the C2PA
    certificate profile. The folder is then used with '--identity DIR'.
    """
    secret = os.environ.get(PASSPHRASE_ENV)
    try:
        result = import_certificate_chain(chain, folder, passphrase=secret)
    except WrongPassphraseError:
        if secret is not None or not sys.stdin.isatty():
            raise
        secret = click.prompt("Passphrase for the signing key", hide_input=True, err=True)
        result = import_certificate_chain(chain, folder, passphrase=secret)
    if as_json:
        click.echo(json.dumps(_imported(result), indent=2))
    click.echo(f"installed a production identity in {result.paths.folder}", err=True)
    click.echo(f"  signer: {result.subject}", err=True)
    click.echo(f"  issued by: {result.issuer}, valid until {result.not_after:%Y-%m-%d}", err=True)
    if result.reordered:
        click.echo("  the chain was given out of order; it was stored leaf first", err=True)
    if result.paths.root is not None:
        click.echo(f"  root CA for verifiers to trust: {result.paths.root}", err=True)
    for note in result.notes:
        click.echo(f"note: {note}", err=True)


def _imported(result: ImportedIdentity) -> dict[str, object]:
    return {
        "folder": str(result.paths.folder),
        "subject": result.subject,
        "issuer": result.issuer,
        "algorithm": result.algorithm.value,
        "not_after": result.not_after.isoformat(),
        "certificates": result.certificates,
        "root_ca": str(result.paths.root) if result.paths.root else None,
        "reordered": result.reordered,
        "notes": list(result.notes),
    }


def _new_passphrase() -> str:
    """From the environment, else asked twice on a terminal; never from argv."""
    secret = os.environ.get(PASSPHRASE_ENV)
    if secret:
        return secret
    if not sys.stdin.isatty():
        raise UsageError(f"--encrypt needs a passphrase: set {PASSPHRASE_ENV} or run in a terminal")
    value: str = click.prompt(
        "Passphrase for the new key", hide_input=True, confirmation_prompt=True, err=True
    )
    return value
