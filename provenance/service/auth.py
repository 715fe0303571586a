"""Bearer tokens and their scopes for ``provenance serve``.

    >>> tokens = Tokens(read=("r-secret",), write=("w-secret",))
    >>> sorted(tokens.scopes("w-secret"))
    ['fetch:manifests', 'register:manifests']
    >>> sorted(tokens.scopes("r-secret")), tokens.scopes("guess")
    (['fetch:manifests'], None)

Scopes attach to a token by the list it is given in (both from the environment,
never from argv): a *read* token (``$PROVENANCE_READ_TOKENS``) carries the C2PA
``fetch:manifests`` scope; a *write* token (``$PROVENANCE_WRITE_TOKENS``)
carries ``register:manifests`` and, since a host that registers manifests must
be able to check them, ``fetch:manifests`` too. Reads are public until the
operator sets read tokens; writes are refused until it sets write tokens.

Only SHA-256 digests of the tokens are kept, and a presented token is compared
with every one of them in constant time, so neither timing nor a memory dump of
the lookup table gives a token away.
"""

from __future__ import annotations

import hashlib
import hmac

from starlette.requests import Request

from provenance.service import ServiceConfig, ServiceHTTPError

__all__ = ["FETCH", "REGISTER", "Tokens", "require"]

FETCH = "fetch:manifests"
"""Search and read manifests (the scope named by the Soft Binding Resolution API)."""
REGISTER = "register:manifests"
"""Add manifests and their soft bindings to the store (this service's own scope)."""


class Tokens:
    """The operator's tokens, kept as digests, each with its scopes."""

    def __init__(self, read: tuple[str, ...] = (), write: tuple[str, ...] = ()) -> None:
        self.reads_public = not read
        self._entries: list[tuple[bytes, frozenset[str]]] = [
            (_digest(t), frozenset({FETCH})) for t in read
        ] + [(_digest(t), frozenset({FETCH, REGISTER})) for t in write]

    @classmethod
    def from_config(cls, config: ServiceConfig) -> Tokens:
        return cls(config.read_tokens, config.write_tokens)

    @property
    def accepts_writes(self) -> bool:
        return any(REGISTER in scopes for _, scopes in self._entries)

    def scopes(self, token: str) -> frozenset[str] | None:
        """The scopes of ``token``; None for a token this service does not know."""
        presented = _digest(token)
        found: frozenset[str] | None = None
        # No early exit: every comparison runs whatever matched.
        for digest, scopes in self._entries:
            if hmac.compare_digest(presented, digest):
                found = scopes if found is None else found | scopes
        return found


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).digest()


def require(request: Request, tokens: Tokens, scope: str) -> None:
    """Raise 401/403 unless the request may act with ``scope``."""
    if scope == FETCH and tokens.reads_public:
        return
    if scope == REGISTER and not tokens.accepts_writes:
        raise ServiceHTTPError(
            403, "this service accepts no registrations (the operator set no write tokens)"
        )
    challenge = f'Bearer realm="provenance", scope="{scope}"'
    header = request.headers.get("authorization", "")
    kind, _, token = header.partition(" ")
    if kind.lower() != "bearer" or not token.strip():
        raise ServiceHTTPError(
            401, f"a bearer token with the {scope} scope is required", {"WWW-Authenticate": challenge}
        )
    scopes = tokens.scopes(token.strip())
    if scopes is None:
        raise ServiceHTTPError(
            401, "the bearer token is not valid", {"WWW-Authenticate": challenge + ', error="invalid_token"'}
        )
    if scope not in scopes:
        raise ServiceHTTPError(
            403,
            f"the bearer token lacks the {scope} scope",
            {"WWW-Authenticate": challenge + ', error="insufficient_scope"'},
        )
