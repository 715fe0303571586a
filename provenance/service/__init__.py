"""The HTTP service: ``provenance serve``.

One ASGI application (Starlette on uvicorn) serves everything the library offers
over HTTP, all of it on top of the same verification and the same manifest
store as the CLI::

    >>> import tempfile, os
    >>> from provenance.service import ServiceConfig, create_app
    >>> config = ServiceConfig(store=os.path.join(tempfile.mkdtemp(), "manifests.db"))
    >>> app = create_app(config)
    >>> {"/healthz", "/openapi.json"} <= {r.path for r in app.routes}
    True

What the service guarantees to every route, written once here:

* every error is a JSON body ``{"error": {"status": N, "message": "..."}}`` with
  the right 4xx status (a bug is a 500 with the same shape, never a traceback);
* request bodies are read through :func:`read_body`, which refuses an oversize
  body (413) as soon as it is announced or exceeded, without buffering it;
* a request that runs longer than ``request_timeout`` seconds is answered 503;
* one structured (JSON) access-log line per request on the
  ``provenance.service.access`` logger.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import asdict, dataclass, field
from types import ModuleType
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = [
    "ServiceConfig",
    "ServiceHTTPError",
    "bind",
    "configure_logging",
    "create_app",
    "error_response",
    "read_body",
    "run",
]

ACCESS_LOG = logging.getLogger("provenance.service.access")
_LOG = logging.getLogger("provenance.service")
_CONFIG_ENV = "PROVENANCE_SERVICE_CONFIG"


@dataclass(frozen=True)
class ServiceConfig:
    """How the service runs. Every field has a safe default for a laptop."""

    store: str | None = None
    """Manifest store path or URL (``None``: the default store)."""
    trust_anchors: tuple[str, ...] = ()
    """PEM files of trusted roots, as ``verify --trust-anchors``."""
    resolvers: tuple[str, ...] = ()
    """Other Soft Binding Resolution services that verification may ask."""
    max_body_bytes: int = 64 * 1024 * 1024
    """Largest request body accepted; larger ones get 413 without being read."""
    request_timeout: float = 60.0
    """Seconds a request may take before it is answered 503."""
    read_tokens: tuple[str, ...] = ()
    """Bearer tokens with the ``fetch:manifests`` scope; empty means reads are public."""
    write_tokens: tuple[str, ...] = ()
    """Bearer tokens allowed to register manifests; empty means writes are refused."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Room for route modules' own settings, carried to every worker."""

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> ServiceConfig:
        raw = json.loads(text)
        for name in ("trust_anchors", "resolvers", "read_tokens", "write_tokens"):
            raw[name] = tuple(raw.get(name) or ())
        return cls(**raw)


class ServiceHTTPError(Exception):
    """Raise inside a route to answer with ``status`` and a one-line JSON error."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers


def error_response(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """The one error shape of the whole service."""
    body = {"error": {"status": status, "message": message}}
    return JSONResponse(body, status_code=status, headers=headers)


async def read_body(request: Request, limit: int | None = None) -> bytes:
    """The request body, refusing more than ``limit`` bytes (413) without buffering them."""
    config: ServiceConfig = request.app.state.config
    cap = config.max_body_bytes if limit is None else limit
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            size = int(declared)
        except ValueError:
            raise ServiceHTTPError(400, "the Content-Length header is not a number") from None
        if size > cap:
            raise ServiceHTTPError(413, f"the body is {size} bytes; this service accepts at most {cap}")
    chunks: list[bytes] = []
    total = 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > cap:
            raise ServiceHTTPError(413, f"the body is larger than this service accepts ({cap} bytes)")
        chunks.append(chunk)
    return b"".join(chunks)


class _Guard:
    """Access log, timeout and last-resort error handling around every request."""

    def __init__(self, app: ASGIApp, timeout: float) -> None:
        self.app = app
        self.timeout = timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = {"code": 0, "sent": False}
        request_id = uuid.uuid4().hex[:16]

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                status["sent"] = True
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await asyncio.wait_for(self.app(scope, receive, send_wrapper), timeout=self.timeout)
        except asyncio.TimeoutError:
            if not status["sent"]:
                await error_response(503, f"the request took longer than {self.timeout:g} s")(
                    scope, receive, send_wrapper
                )
        except Exception:  # a bug in a route: log it in full, answer a JSON 500
            _LOG.exception("unhandled error for %s %s", scope.get("method"), scope.get("path"))
            if not status["sent"]:
                await error_response(500, "internal error; the service logged the details")(
                    scope, receive, send_wrapper
                )
        finally:
            client = scope.get("client")
            ACCESS_LOG.info(
                json.dumps(
                    {
                        "request_id": request_id,
                        "client": client[0] if client else None,
                        "method": scope.get("method"),
                        "path": scope.get("path"),
                        "status": status["code"],
                        "ms": round((time.perf_counter() - started) * 1000, 2),
                    }
                )
            )


async def _http_error(request: Request, exc: Exception) -> Response:
    if isinstance(exc, ServiceHTTPError):
        return error_response(exc.status, exc.message, exc.headers)
    assert isinstance(exc, HTTPException)
    return error_response(exc.status_code, str(exc.detail), dict(exc.headers or {}))


async def _healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def _openapi(request: Request) -> Response:
    document: dict[str, Any] = request.app.state.openapi
    return JSONResponse(document)


def _route_modules() -> list[ModuleType]:
    """The modules that contribute routes.

    Each has ``routes(config: ServiceConfig) -> list[BaseRoute]`` and may have
    ``OPENAPI``, a dict with the ``paths`` (and ``components``) it serves, and
    ``startup(app)``, run (in a thread) before the worker serves its first request.
    """
    from provenance.service import page, resolution

    return [page, resolution]


def _openapi_document(routes_openapi: list[dict[str, Any]]) -> dict[str, Any]:
    from importlib.metadata import version

    paths: dict[str, Any] = {}
    components: dict[str, Any] = {}
    for part in routes_openapi:
        paths.update(part.get("paths", {}))
        for kind, entries in part.get("components", {}).items():
            components.setdefault(kind, {}).update(entries)
    return {
        "openapi": "3.0.3",
        "info": {"title": "provenance-kit service", "version": version("provenance-kit")},
        "paths": paths,
        "components": components,
    }


def create_app(config: ServiceConfig) -> Starlette:
    """The ASGI application for ``config``."""
    routes: list[BaseRoute] = [
        Route("/healthz", _healthz, methods=["GET"]),
        Route("/openapi.json", _openapi, methods=["GET"]),
    ]
    openapi_parts: list[dict[str, Any]] = []
    startups: list[Callable[[Starlette], None]] = []
    for module in _route_modules():
        routes.extend(module.routes(config))
        openapi_parts.append(getattr(module, "OPENAPI", {}))
        if hasattr(module, "startup"):
            startups.append(module.startup)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        for hook in startups:
            await run_in_threadpool(hook, app)
        yield

    handlers: dict[Any, Callable[[Request, Exception], Awaitable[Response]]] = {
        HTTPException: _http_error,
        ServiceHTTPError: _http_error,
    }
    app = Starlette(
        routes=routes,
        middleware=[Middleware(_Guard, timeout=config.request_timeout)],
        exception_handlers=handlers,
        lifespan=lifespan,
    )
    app.state.config = config
    app.state.openapi = _openapi_document(openapi_parts)
    return app


def configure_logging() -> None:
    """One JSON access-log line per request on stderr (idempotent)."""
    if any(getattr(h, "_provenance_access", False) for h in ACCESS_LOG.handlers):
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    handler._provenance_access = True  # type: ignore[attr-defined]
    ACCESS_LOG.addHandler(handler)
    ACCESS_LOG.setLevel(logging.INFO)
    ACCESS_LOG.propagate = False


def app_from_environment() -> Starlette:
    """Factory for uvicorn's worker processes: the configuration travels in the environment."""
    configure_logging()
    return create_app(ServiceConfig.from_json(os.environ[_CONFIG_ENV]))


def bind(host: str, port: int) -> socket.socket:
    """A listening socket; ``port`` 0 picks a free one (read it back from the socket)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Accepted connections inherit it: without it a response written as headers
    # then body waits for the client's delayed ACK (~40 ms per keep-alive request).
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((host, port))
    # Listening now means the printed address accepts connections at once.
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def run(config: ServiceConfig, sock: socket.socket, *, workers: int = 1) -> None:
    """Serve on ``sock`` (from :func:`bind`) until interrupted (``provenance serve``)."""
    import uvicorn

    os.environ[_CONFIG_ENV] = config.to_json()
    uvicorn.run(
        "provenance.service:app_from_environment",
        factory=True,
        fd=sock.fileno(),
        workers=workers,
        log_level="warning",
        access_log=False,  # our own structured access log replaces uvicorn's
        timeout_keep_alive=5,
        limit_concurrency=256,
        h11_max_incomplete_event_size=64 * 1024,
    )
