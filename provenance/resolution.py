"""Ask C2PA Soft Binding Resolution services for stripped credentials (``verify --resolver``).

    >>> from provenance.resolution import configured_resolvers
    >>> import os, tempfile
    >>> home = tempfile.mkdtemp()
    >>> with open(os.path.join(home, "config.toml"), "w") as f:
    ...     _ = f.write('resolvers = ["https://resolver.example.org"]\\n')
    >>> configured_resolvers(home)
    ['https://resolver.example.org']

:func:`resolve` asks one service the way the API intends: the watermark's
binding first (``/matches/byBinding``, with the image or the audio watermark's
algorithm), then the content itself (``/matches/byContent``, the image or the
audio as the body), then fetches the manifest store (``/manifests/{id}``) and
this service's likeness reference when it has one (an image thumbnail, or the
spectral fingerprint of an audio clip), so the caller can run the same
likeness check as on its own store.
Every request has a timeout and every answer a size cap; a network error, a
timeout, an error status or a malformed answer becomes a one-line warning,
never an exception, so verification falls back to its offline verdict.

The client is ``httpx`` (maintained, typed, with per-phase timeouts and
streaming reads for the size cap).
"""

from __future__ import annotations

import base64
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

import watermark
import watermark.audio
from provenance.errors import StoreError, UsageError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

__all__ = ["MAX_MANIFEST_BYTES", "RemoteMatch", "check_url", "configured_resolvers", "register", "resolve"]

MAX_MANIFEST_BYTES = 32 * 1024 * 1024
"""Largest manifest store accepted from a service."""
MAX_CONTENT_BYTES = 64 * 1024 * 1024
"""Largest asset sent to ``/matches/byContent`` (a service's default body limit); a larger
file is looked up by its watermark's binding only."""
AUDIO_REFERENCE_TYPE = "application/vnd.provenance.audio-fingerprint"
"""Media type of an audio clip's likeness reference (``provenance/_internal/audio_likeness.py``)
as ``GET /references/{manifestId}`` serves it; an image's is ``image/png``."""
_MAX_JSON_BYTES = 1024 * 1024
_MAX_REFERENCE_BYTES = 1024 * 1024


@dataclass(frozen=True)
class RemoteMatch:
    """What a resolution service returned for an asset."""

    url: str
    manifest_id: str
    manifest_store: bytes
    reference: bytes | None
    by_watermark: bool
    similarity_score: int | None = None
    reference_type: str | None = None
    """``image/png`` (an image's likeness reference) or :data:`AUDIO_REFERENCE_TYPE`."""


class _Refused(Exception):
    """A service answer we cannot use; the message becomes a warning."""


def check_url(url: str) -> str:
    """``url`` without a trailing slash, or a usage error if it is not http(s)."""
    parsed = httpx.URL(url) if url.startswith(("http://", "https://")) else None
    if parsed is None or not parsed.host:
        raise UsageError(f"resolver {url!r} is not an http:// or https:// URL")
    return url.rstrip("/")


def configured_resolvers(home: str | os.PathLike[str] | None = None) -> list[str]:
    """The ``resolvers`` list of ``config.toml`` in ``home`` ($PROVENANCE_HOME, else the user config dir)."""
    if home is None:
        env = os.environ.get("PROVENANCE_HOME")
        if env:
            home = Path(env).expanduser()
        else:
            import platformdirs

            home = platformdirs.user_config_dir("provenance")
    path = Path(home) / "config.toml"
    try:
        with open(path, "rb") as handle:
            config = tomllib.load(handle)
    except FileNotFoundError:
        return []
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise UsageError(f"{path}: cannot read the configuration ({exc})") from None
    resolvers = config.get("resolvers", [])
    if not isinstance(resolvers, list) or not all(isinstance(r, str) for r in resolvers):
        raise UsageError(f"{path}: resolvers must be a list of URLs")
    return [check_url(r) for r in resolvers]


def resolve(
    url: str,
    data: bytes | None,
    mime: str,
    payload: bytes | None,
    *,
    timeout: float = 10.0,
    warnings: list[str] | None = None,
    token: str | None = None,
    algorithm: str = watermark.ALGORITHM,
) -> RemoteMatch | None:
    """Ask the service at ``url`` for the credentials of ``data``; None (and a warning) if it has none.

    ``payload`` is the identifier of the watermark read from ``data`` (its
    ``algorithm``: the image watermark's, or ``watermark.audio.ALGORITHM``), None
    when none was found; ``data`` None sends no content (only the binding is asked).
    """
    base = url.rstrip("/")
    headers = {"Accept": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    try:
        with httpx.Client(timeout=httpx.Timeout(timeout), headers=headers, follow_redirects=False) as client:
            return _resolve(client, base, data, mime, payload, algorithm)
    except _Refused as exc:
        message = f"resolver {base}: {exc}"
    except httpx.TimeoutException:
        message = f"resolver {base}: no answer within {timeout:g} s"
    except httpx.HTTPError as exc:
        message = f"resolver {base}: cannot reach it ({type(exc).__name__}: {exc})"
    if warnings is not None:
        warnings.append(message)
    return None


def register(
    url: str, manifest_store: bytes, asset: bytes | None, token: str, *, timeout: float = 60.0
) -> dict[str, Any]:
    """``POST /manifests``: publish a recorded manifest (and its asset) to the service at ``url``.

    Returns the service's answer (``manifestId``, ``softBindings``); a refusal
    or a network failure is a :class:`~provenance.errors.StoreError`.
    """
    body: dict[str, str] = {"manifest": base64.b64encode(manifest_store).decode("ascii")}
    if asset is not None:
        body["asset"] = base64.b64encode(asset).decode("ascii")
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
    base = check_url(url)
    try:
        with httpx.Client(timeout=httpx.Timeout(timeout), headers=headers, follow_redirects=False) as client:
            response = client.post(f"{base}/manifests", json=body)
    except httpx.TimeoutException:
        raise StoreError(f"{base}: no answer within {timeout:g} s") from None
    except httpx.HTTPError as exc:
        raise StoreError(f"{base}: cannot reach it ({type(exc).__name__}: {exc})") from None
    if response.status_code != 201:
        raise StoreError(f"{base}: registration refused: {response.status_code}{_detail(response)}")
    answer = response.json()
    if not isinstance(answer, dict):
        raise StoreError(f"{base}: registration answer is not a JSON object")
    return answer


def _resolve(
    client: httpx.Client, base: str, data: bytes | None, mime: str, payload: bytes | None, algorithm: str
) -> RemoteMatch | None:
    by_watermark = True
    matches: list[dict[str, Any]] = []
    if payload is not None:
        body = {"alg": algorithm, "value": watermark.soft_binding_value(payload)}
        matches = _matches(_request(client, "POST", f"{base}/matches/byBinding", _MAX_JSON_BYTES, json=body))
    if not matches and data is None:
        raise _Refused("no matching credentials (the content was not sent: it is too large)")
    if not matches:
        by_watermark = False
        answer = _request(
            client,
            "POST",
            f"{base}/matches/byContent",
            _MAX_JSON_BYTES,
            content=data,
            headers={"Content-Type": mime},
        )
        matches = _matches(answer)
        # A byContent match with score 100 is the service reading the watermark itself;
        # audio is only ever matched through its watermark (then confirmed by likeness).
        audio = algorithm == watermark.audio.ALGORITHM
        by_watermark = (
            bool(matches) and payload is not None and (audio or matches[0].get("similarityScore") == 100)
        )
    if not matches:
        raise _Refused("no matching credentials")
    best = matches[0]
    manifest_id = best["manifestId"]
    if best.get("endpoint"):
        raise _Refused(f"the manifest is held by another service ({best['endpoint']}); not followed")
    quoted = quote(manifest_id, safe=":")
    store = _request(client, "GET", f"{base}/manifests/{quoted}", MAX_MANIFEST_BYTES, raw=True)
    reference_type: str | None = None
    try:
        reference: bytes | None
        reference, reference_type = _request(
            client, "GET", f"{base}/references/{quoted}", _MAX_REFERENCE_BYTES, raw=True, typed=True
        )
    except _Refused:
        reference = None  # a service without references: the likeness check cannot run
    score = best.get("similarityScore")
    return RemoteMatch(
        base,
        manifest_id,
        store,
        reference,
        by_watermark,
        score if isinstance(score, int) else None,
        reference_type,
    )


def _request(
    client: httpx.Client,
    method: str,
    url: str,
    cap: int,
    *,
    raw: bool = False,
    typed: bool = False,
    **kw: Any,
) -> Any:
    with client.stream(method, url, **kw) as response:
        media_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
        if response.status_code != 200:
            response.read() if int(response.headers.get("content-length", "0") or 0) < 65536 else None
            raise _Refused(
                f"{method} {httpx.URL(url).path} answered {response.status_code}{_detail(response)}"
            )
        chunks, total = [], 0
        for chunk in response.iter_bytes():
            total += len(chunk)
            if total > cap:
                raise _Refused(f"{method} {httpx.URL(url).path} answered more than {cap} bytes")
            chunks.append(chunk)
    body = b"".join(chunks)
    if raw:
        return (body, media_type) if typed else body
    try:
        import json

        return json.loads(body)
    except ValueError:
        raise _Refused(f"{method} {httpx.URL(url).path} did not answer JSON") from None


def _detail(response: httpx.Response) -> str:
    try:
        message = response.json()["error"]["message"]
    except Exception:
        return ""
    return f" ({str(message)[:200]})"


def _matches(answer: Any) -> list[dict[str, Any]]:
    if not isinstance(answer, dict) or not isinstance(answer.get("matches"), list):
        raise _Refused("the answer is not a soft-binding query result")
    found = [m for m in answer["matches"] if isinstance(m, dict) and isinstance(m.get("manifestId"), str)]
    return sorted(found, key=_score_of, reverse=True)


def _score_of(match: dict[str, Any]) -> int:
    score = match.get("similarityScore")
    return score if isinstance(score, int) else 100
