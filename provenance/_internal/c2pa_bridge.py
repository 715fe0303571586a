"""The one place that talks to c2pa-python: contexts, signers, readers, errors."""

from __future__ import annotations

import io
import json
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from typing import IO, Any

import c2pa

from provenance.errors import (
    CorruptInputError,
    IdentityError,
    ProvenanceError,
    SigningError,
    UnsupportedFormatError,
)
from provenance.keys import Identity, SigningAlgorithm

_ALGORITHMS = {
    SigningAlgorithm.ES256: c2pa.C2paSigningAlg.ES256,
    SigningAlgorithm.ES384: c2pa.C2paSigningAlg.ES384,
    SigningAlgorithm.ES512: c2pa.C2paSigningAlg.ES512,
    SigningAlgorithm.PS256: c2pa.C2paSigningAlg.PS256,
    SigningAlgorithm.ED25519: c2pa.C2paSigningAlg.ED25519,
}


def sdk_version() -> str:
    return str(c2pa.sdk_version())


@lru_cache(maxsize=32)
def _context(settings_json: str, pid: int) -> Any:
    # Contexts are immutable once built and cheap to share; building one per
    # call would re-parse trust bundles every time. The pid is part of the key
    # because c2pa-python invalidates native handles inherited through fork.
    return c2pa.Context.from_json(settings_json)


def context(settings: dict[str, Any]) -> Any:
    return _context(json.dumps(settings, sort_keys=True), os.getpid())


class _CallbackSigner:
    """Wraps an identity's sign callback so its failures are not lost.

    c2pa-python turns any exception in a callback into a generic "signature
    invalid"; keeping the exception lets us tell the user what really failed.
    """

    def __init__(self, identity: Identity) -> None:
        self.identity = identity
        self.error: Exception | None = None

    def __call__(self, data: bytes) -> bytes:
        try:
            signature = self.identity.sign(data)
            if not isinstance(signature, bytes | bytearray) or not signature:
                raise TypeError(f"the signer returned {type(signature).__name__}, not signature bytes")
            return bytes(signature)
        except Exception as exc:
            self.error = exc
            raise


def make_signer(identity: Identity) -> tuple[Any, _CallbackSigner]:
    callback = _CallbackSigner(identity)
    try:
        signer = c2pa.Signer.from_callback(
            callback,
            _ALGORITHMS[identity.algorithm],
            identity.chain_pem(),
            identity.timestamp_url,
        )
    except c2pa.C2paError as exc:
        raise IdentityError(f"the C2PA library rejected the signing identity: {_text(exc)}") from None
    return signer, callback


@contextmanager
def translated(name: str, *, signing: bool = False) -> Iterator[None]:
    """Turn c2pa-python's exceptions into this library's one-line errors."""
    try:
        yield
    except ProvenanceError:
        raise
    except c2pa.C2paError as exc:
        raise _translate(exc, name, signing) from None


def _translate(exc: Exception, name: str, signing: bool) -> ProvenanceError:
    kind = type(exc).__name__.lstrip("_").removeprefix("C2pa")
    text = _text(exc)
    if kind == "NotSupported":
        return UnsupportedFormatError(f"{name}: format not supported by the C2PA library ({text})")
    if kind == "Signature":
        return SigningError(f"{name}: signing failed ({text}); check the identity's key")
    lowered = text.lower()
    unparsable = ("jumbf", "could not be parsed", "unexpected eof")
    if kind in ("Decoding", "Io", "Json", "Manifest", "Encoding") or any(u in lowered for u in unparsable):
        return CorruptInputError(f"{name}: cannot parse the file ({text})")
    if signing:
        return SigningError(f"{name}: the C2PA library could not sign it ({text})")
    return CorruptInputError(f"{name}: the C2PA library could not read it ({text})")


def _text(exc: Exception) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:300]


def sign_stream(
    definition: dict[str, Any],
    settings: dict[str, Any],
    identity: Identity,
    mime: str,
    source: IO[bytes],
    dest: IO[bytes],
    *,
    resources: dict[str, bytes],
    ingredients: list[tuple[dict[str, Any], str, bytes]],
    name: str,
) -> bytes:
    """Sign ``source`` into ``dest``; returns the manifest store bytes."""
    signer, callback = make_signer(identity)
    try:
        with translated(name, signing=True), c2pa.Builder(definition, context=context(settings)) as builder:
            for uri, data in resources.items():
                builder.add_resource(uri, io.BytesIO(data))
            for ingredient_json, ingredient_mime, data in ingredients:
                builder.add_ingredient(ingredient_json, ingredient_mime, io.BytesIO(data))
            try:
                manifest: bytes = builder.sign(signer, mime, source, dest)
            except c2pa.C2paError:
                if callback.error is not None:
                    raise SigningError(
                        f"{name}: the signer failed: {type(callback.error).__name__}: {callback.error}"
                    ) from None
                raise
            return manifest
    finally:
        signer.close()


@dataclass(frozen=True)
class StoreRead:
    """What reading an asset's credentials gave."""

    store: dict[str, Any] | None
    """The validated manifest store as JSON; None when none was found or fetched."""
    remote_url: str | None
    embedded: bool
    fetch_error: str | None = None
    """Why a remote manifest could not be fetched (network allowed but it failed)."""


def read_store(
    mime: str | None,
    data: bytes | IO[bytes],
    settings: dict[str, Any],
    name: str,
    manifest_data: bytes | None = None,
) -> tuple[dict[str, Any] | None, str | None, bool]:
    """Parse and validate the manifest store of an asset.

    Returns ``(store_json, remote_url, embedded)``; ``store_json`` is None
    when the asset carries no credentials.
    """
    found = read_store_full(mime, data, settings, name, manifest_data)
    return found.store, found.remote_url, found.embedded


def read_store_full(
    mime: str | None,
    data: bytes | IO[bytes],
    settings: dict[str, Any],
    name: str,
    manifest_data: bytes | None = None,
) -> StoreRead:
    """:func:`read_store` with the reason a remote fetch failed.

    ``manifest_data`` is a manifest store kept beside the asset (a ``.c2pa``
    sidecar or an exported manifest): it is validated against the asset.
    """
    stream = io.BytesIO(data) if isinstance(data, bytes) else data
    with translated(name):
        try:
            reader = c2pa.Reader(mime, stream, manifest_data, context(settings))
        except c2pa.C2paError as exc:
            kind = type(exc).__name__
            if "ManifestNotFound" in kind:
                return StoreRead(None, None, True)
            if "Remote" in kind or str(exc).startswith("Remote"):
                url = _remote_url_from(exc)
                fetching = bool((settings.get("verify") or {}).get("remote_manifest_fetch"))
                return StoreRead(None, url, False, _text(exc) if fetching else None)
            raise
        with reader:
            store = json.loads(reader.json())
            return StoreRead(store, reader.get_remote_url(), reader.is_embedded())


def _remote_url_from(exc: Exception) -> str | None:
    found = re.search(r"https?://[^\s()<>\"']+", str(exc))
    return found.group(0).rstrip(".,;") if found else None


def require_manifest_store(data: bytes, name: str) -> None:
    """Refuse, naming ``name``, data that is not a C2PA manifest store (a sidecar or an export).

    A manifest store is one JUMBF superbox (ISO/IEC 19566-5): a 4-byte size,
    then the box type ``jumb``. Checked here because the C2PA library's own
    error ("invalid JUMBF header") would name the asset, not the manifest.
    """
    if data[4:8] != b"jumb":
        raise CorruptInputError(
            f"{name}: not a C2PA manifest store (expected a .c2pa sidecar or an exported manifest)"
        )


def has_credentials(data: bytes) -> bool:
    """Whether the asset carries a C2PA manifest store (no validation)."""
    try:
        reader = c2pa.Reader.try_create(
            None, io.BytesIO(data), None, context({"verify": {"verify_after_reading": False}})
        )
    except c2pa.C2paError:
        return False
    if reader is None:
        return False
    reader.close()
    return True


MAX_RESOURCE_BYTES = 4 * 1024 * 1024
"""Largest thumbnail extracted for display; a bigger one is skipped, not decoded."""


def read_thumbnails(
    mime: str | None, data: bytes, name: str
) -> tuple[dict[str, Any] | None, dict[str, bytes]]:
    """The manifest store JSON and the bytes of every claim and ingredient thumbnail in it.

    No validation (the verdict comes from :func:`read_store`): this only
    reads what the manifests carry, keyed by the resource identifier the JSON
    uses. A thumbnail that cannot be extracted is left out.
    """
    settings = {"verify": {"verify_after_reading": False, "remote_manifest_fetch": False}}
    with translated(name):
        try:
            reader = c2pa.Reader(mime, io.BytesIO(data), None, context(settings))
        except c2pa.C2paError:
            return None, {}
        with reader:
            store = json.loads(reader.json())
            resources: dict[str, bytes] = {}
            for identifier in _thumbnail_identifiers(store):
                out = io.BytesIO()
                try:
                    reader.resource_to_stream(identifier, out)
                except c2pa.C2paError:
                    continue
                if 0 < out.tell() <= MAX_RESOURCE_BYTES:
                    resources[identifier] = out.getvalue()
            return store, resources


def _thumbnail_identifiers(store: dict[str, Any]) -> list[str]:
    found: list[str] = []
    for manifest in (store.get("manifests") or {}).values():
        if not isinstance(manifest, dict):
            continue
        refs = [manifest.get("thumbnail")] + [i.get("thumbnail") for i in manifest.get("ingredients") or []]
        for ref in refs:
            identifier = ref.get("identifier") if isinstance(ref, dict) else None
            if isinstance(identifier, str) and identifier not in found:
                found.append(identifier)
    return found
