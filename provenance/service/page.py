"""The verify page: ``GET /`` serves it, ``POST /api/verify`` answers it.

    >>> import os, tempfile
    >>> from provenance.service import ServiceConfig
    >>> from provenance.service.page import routes
    >>> [r.path for r in routes(ServiceConfig(store=os.path.join(tempfile.mkdtemp(), "m.db")))]
    ['/', '/assets/{name}', '/api/verify']

The uploaded file is verified in memory and never written anywhere: the body
is read through :func:`provenance.service.read_body` (size-capped), verified
with the same :func:`provenance.verify.verify_bytes`, trust anchors and
manifest store as ``provenance verify``, and dropped with the response. The
answer is the ``verify --json`` document plus what the page shows: the
thumbnails as data URLs and the answer already rendered by
:mod:`provenance.report` (the renderer of ``verify --html``).
"""

from __future__ import annotations

import contextlib
from dataclasses import replace
from functools import lru_cache
from html import escape
from importlib.resources import files
from pathlib import PurePosixPath, PureWindowsPath
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from provenance.errors import FileError, ProvenanceError, StoreError, UnsupportedFormatError
from provenance.report import collect, render_fragment, report_css, result_document
from provenance.report._thumbnails import data_url
from provenance.service import ServiceConfig, ServiceHTTPError, read_body
from provenance.store import ManifestStore, open_store
from provenance.trust import TrustPolicy
from provenance.verify import store_unavailable, verify_bytes

__all__ = ["OPENAPI", "routes"]

# The page loads only its own script, style and data: thumbnails; it can talk
# only to this server. Server-rendered answers are escaped, and even if one
# were not, no inline script could run.
_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
_HEADERS = {
    "Content-Security-Policy": _CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}
_ASSETS = {"page.js": "text/javascript", "page.css": "text/css", "report.css": "text/css"}


def routes(config: ServiceConfig) -> list[BaseRoute]:
    policy = TrustPolicy.from_files(config.trust_anchors)
    anchors = policy.anchor_count

    async def index(request: Request) -> Response:
        return Response(_index(anchors, config.max_body_bytes), media_type="text/html", headers=_HEADERS)

    async def asset(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in _ASSETS:
            raise ServiceHTTPError(404, f"no asset {name!r}")
        return Response(_asset(name), media_type=_ASSETS[name], headers=_HEADERS)

    async def verify(request: Request) -> Response:
        data = await read_body(request)
        if not data:
            raise ServiceHTTPError(400, "no file was sent: send the file's bytes as the request body")
        name = _display_name(request.query_params.get("name", ""))
        answer = await run_in_threadpool(_verify, data, name, config, policy, anchors)
        return JSONResponse(answer, headers={"Cache-Control": "no-store"})

    return [
        Route("/", index, methods=["GET"]),
        Route("/assets/{name}", asset, methods=["GET"]),
        Route("/api/verify", verify, methods=["POST"]),
    ]


def _verify(
    data: bytes, name: str, config: ServiceConfig, policy: TrustPolicy, anchors: int
) -> dict[str, Any]:
    """Blocking work, run off the event loop: the same verification as the CLI."""
    notes: tuple[str, ...] = ()
    try:
        store: ManifestStore | None = open_store(config.store)
    except StoreError as exc:
        # As `provenance verify`: the store only serves recovery, what the file carries is still verified.
        store = None
        notes = (store_unavailable(exc),)
    try:
        with store if store is not None else contextlib.nullcontext():
            # The same resolvers as `provenance verify --resolver`, so the page and the CLI agree.
            result = verify_bytes(data, policy=policy, store=store, name=name, resolvers=config.resolvers)
            result = replace(result, warnings=result.warnings + notes)
            evidence = collect(name, data, result, store=store, trust_anchor_count=anchors)
    except UnsupportedFormatError as exc:
        hint = "this page checks pictures, videos, sound and PDF files"
        raise ServiceHTTPError(415, f"{exc} — {hint}") from None
    except StoreError as exc:
        raise ServiceHTTPError(503, str(exc)) from None
    except FileError as exc:
        raise ServiceHTTPError(422, str(exc)) from None
    except ProvenanceError as exc:
        raise ServiceHTTPError(400, str(exc)) from None
    return {
        **result_document(evidence),
        "headline": evidence.words.headline,
        "thumbnails": {
            "file": data_url(evidence.file_thumbnail),
            "chain": [data_url(t) for t in evidence.chain_thumbnails],
        },
        "html": render_fragment(evidence),
    }


def _display_name(raw: str) -> str:
    # Only ever displayed (escaped); keep the last path component, bounded.
    base = PureWindowsPath(PurePosixPath(raw).name).name.strip()
    return (base or "uploaded file")[:200]


@lru_cache(maxsize=8)
def _asset(name: str) -> str:
    if name == "report.css":
        return report_css()
    return files("provenance.service").joinpath("static").joinpath(name).read_text(encoding="utf-8")


def _index(anchors: int, max_body: int) -> str:
    if anchors:
        trust = f"Signers are checked against {anchors} trusted certificate{'s' if anchors != 1 else ''}."
    else:
        trust = "This checker has no trust list: every signer shows as unknown, which is not a failure."
    limit = f"{max_body / (1024 * 1024):g} MB"
    page = _asset("index.html")
    filled = page.replace("{{trust}}", escape(trust)).replace("{{limit}}", escape(limit))
    return filled.replace("{{max_bytes}}", str(max_body))


OPENAPI: dict[str, Any] = {
    "paths": {
        "/api/verify": {
            "post": {
                "summary": "Verify an uploaded file (in memory, never stored)",
                "description": (
                    "The body is the file's bytes. The answer is the `provenance verify --json` "
                    "document plus `headline`, `thumbnails` (data URLs) and `html` (the rendered answer)."
                ),
                "parameters": [
                    {
                        "name": "name",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "string"},
                        "description": "The file name, for display only.",
                    }
                ],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
                    },
                },
                "responses": {
                    "200": {"description": "The verification result"},
                    "400": {"description": "Empty body"},
                    "413": {"description": "The file is larger than the server accepts"},
                    "415": {"description": "Not a media format this service reads"},
                    "422": {"description": "The file is damaged or cannot be decoded"},
                },
            }
        }
    }
}
