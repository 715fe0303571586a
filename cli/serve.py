"""``provenance serve``: the HTTP service over a manifest store."""

from __future__ import annotations

import os
from pathlib import Path

import click

from provenance.errors import UsageError
from provenance.resolution import check_url, configured_resolvers
from provenance.service import ServiceConfig, bind, configure_logging, run
from provenance.store import default_store_path


def _tokens(variable: str) -> tuple[str, ...]:
    # Tokens are secrets: they come from the environment, never from argv.
    raw = os.environ.get(variable, "")
    return tuple(t.strip() for t in raw.split(",") if t.strip())


@click.command("serve")
@click.option(
    "--store",
    "store",
    help="Manifest store path or URL (default: $PROVENANCE_STORE, else $PROVENANCE_HOME/manifests.db).",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(0, 65535), help="Port.")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64), help="Worker processes.")
@click.option(
    "--trust-anchors",
    "anchors",
    multiple=True,
    type=click.Path(path_type=Path, exists=True, dir_okay=False),
    help="PEM file or bundle of trusted root certificates. Repeatable.",
)
@click.option(
    "--resolver",
    "resolvers",
    multiple=True,
    metavar="URL",
    help="Soft Binding Resolution service the verify page asks when a file has no credentials "
    "(repeatable; default: the resolvers list of $PROVENANCE_HOME/config.toml).",
)
@click.option(
    "--max-body",
    "max_body_mb",
    default=64,
    show_default=True,
    type=click.IntRange(1, 4096),
    help="Largest request body in MiB (larger ones get 413).",
)
@click.option(
    "--timeout",
    default=60.0,
    show_default=True,
    type=click.FloatRange(1, 3600),
    help="Seconds a request may take before it is answered 503.",
)
def command(
    store: str | None,
    host: str,
    port: int,
    workers: int,
    anchors: tuple[Path, ...],
    resolvers: tuple[str, ...],
    max_body_mb: int,
    timeout: float,
) -> None:
    """Serve the manifest store over HTTP.

    \b
    Bearer tokens come from the environment, never the command line:
      PROVENANCE_READ_TOKENS   comma-separated; when set, reads need one of them
      PROVENANCE_WRITE_TOKENS  comma-separated; needed to register manifests
    """
    chosen = store or os.environ.get("PROVENANCE_STORE") or str(default_store_path())
    if not chosen:
        raise UsageError("no manifest store: give --store")
    config = ServiceConfig(
        store=chosen,
        trust_anchors=tuple(str(a) for a in anchors),
        resolvers=tuple(check_url(url) for url in resolvers) or tuple(configured_resolvers()),
        max_body_bytes=max_body_mb * 1024 * 1024,
        request_timeout=timeout,
        read_tokens=_tokens("PROVENANCE_READ_TOKENS"),
        write_tokens=_tokens("PROVENANCE_WRITE_TOKENS"),
    )
    try:
        sock = bind(host, port)
    except OSError as exc:
        raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    bound_host, bound_port = sock.getsockname()[:2]
    shown = f"[{bound_host}]" if ":" in bound_host else bound_host
    configure_logging()
    click.echo(f"serving {chosen}", err=True)
    click.echo(f"open http://{shown}:{bound_port}/ in a browser (Ctrl-C to stop)", err=True)
    run(config, sock, workers=workers)

