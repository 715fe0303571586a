"""The one place that talks to c2pa-python: contexts, signers, readers, errors."""

from __future__ import annotations

import errno
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

from provenance._internal.files import InputFile, as_stream
from provenance._internal.interrupts import deferred_interrupts
from provenance.errors import (
    CorruptInputError,
    IdentityError,
    OutputError,
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


class DamagedManifestError(CorruptInputError):
    """The asset parses, but the Content Credentials in it do not: a verdict (invalid), not a
    file error, for a verifier; ``detail`` is the C2PA library's own words."""

    def __init__(self, message: str, detail: str) -> None:
        super().__init__(message)
        self.detail = detail


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


# What the C2PA library says when the asset's own structure (not its manifest) is broken.
_ASSET_BROKEN = ("asset could not be parsed", "failed to fill whole buffer", "unexpected eof")


def _translate(exc: Exception, name: str, signing: bool) -> ProvenanceError:
    kind = type(exc).__name__.lstrip("_").removeprefix("C2pa")
    text = _text(exc)
    if kind == "NotSupported":
        return UnsupportedFormatError(f"{name}: format not supported by the C2PA library ({text})")
    if not signing:
        # A verifier never talks about signing: a manifest that cannot be
        # decoded (bad CBOR, missing claim box, unparsable certificate) is
        # damaged credentials; only a broken container is a file error.
        if any(b in text.lower() for b in _ASSET_BROKEN):
            return CorruptInputError(f"{name}: the file is truncated or corrupt ({text})")
        return DamagedManifestError(f"{name}: its Content Credentials are damaged ({text})", text)
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
    ingredients: list[tuple[dict[str, Any], str, bytes | InputFile]],
    name: str,
) -> bytes:
    """Sign ``source`` into ``dest``; returns the manifest store bytes."""
    signer, callback = make_signer(identity)
    try:
        with (
            deferred_interrupts() as interrupts,
            translated(name, signing=True),
            c2pa.Builder(definition, context=context(settings)) as builder,
        ):
            for uri, data in resources.items():
                builder.add_resource(uri, io.BytesIO(data))
            for ingredient_json, ingredient_mime, ingredient in ingredients:
                with as_stream(ingredient) as stream:
                    builder.add_ingredient(ingredient_json, ingredient_mime, interrupts.guard(stream))
            try:
                # Guarded streams make a Ctrl-C abort the native call (their next
                # read or write fails) instead of truncating what it hashes.
                manifest: bytes = builder.sign(signer, mime, interrupts.guard(source), interrupts.guard(dest))
            except c2pa.C2paError:
                if callback.error is not None:
                    raise SigningError(
                        f"{name}: the signer failed: {type(callback.error).__name__}: {callback.error}"
                    ) from None
                if interrupts.write_error is not None:
                    raise _output_failed(name, interrupts.write_error) from None
                raise
            return manifest
    finally:
        signer.close()


def _output_failed(name: str, exc: OSError) -> OutputError:
    why = "no space left on device" if exc.errno == errno.ENOSPC else exc.strerror or str(exc)
    return OutputError(f"{name}: cannot write the signed copy ({why})")


def sign_detached(
    definition: dict[str, Any],
    settings: dict[str, Any],
    identity: Identity,
    source: IO[bytes],
    *,
    ingredients: list[tuple[dict[str, Any], str, bytes | InputFile]],
    name: str,
    resources: dict[str, bytes] | None = None,
) -> bytes:
    """A signed manifest store kept beside ``source`` (a ``.c2pa`` sidecar), for formats the
    C2PA library cannot embed into (OGG); its hard binding is a ``c2pa.hash.data`` over
    the whole file, which the library validates when the sidecar is read with the file.

    c2pa-python does not wrap the C API's data-hash signing (c2pa-rs
    ``Builder::sign_data_hashed_embeddable``), so it is called here through the library
    c2pa-python loads, with c2pa-python's own builder, signer and stream handles and the
    locks it takes around its native calls. The hashing, claim, COSE signature and JUMBF
    are all the reference implementation's.
    """
    import ctypes

    from c2pa import c2pa as native

    lib = native._lib
    ubyte_out = ctypes.POINTER(ctypes.POINTER(ctypes.c_ubyte))
    placeholder = lib.c2pa_builder_data_hashed_placeholder
    placeholder.argtypes = [ctypes.POINTER(native.C2paBuilder), ctypes.c_size_t, ctypes.c_char_p, ubyte_out]
    placeholder.restype = ctypes.c_int64
    sign_hashed = lib.c2pa_builder_sign_data_hashed_embeddable
    sign_hashed.argtypes = [
        ctypes.POINTER(native.C2paBuilder),
        ctypes.POINTER(native.C2paSigner),
        ctypes.c_char_p,
        ctypes.c_char_p,
        ctypes.POINTER(native.C2paStream),
        ubyte_out,
    ]
    sign_hashed.restype = ctypes.c_int64
    # The whole file is hashed: a sidecar leaves nothing inside the asset to exclude.
    data_hash = json.dumps(
        {"exclusions": [], "name": "jumbf manifest", "alg": "sha256", "hash": [], "pad": []}
    )
    signer, callback = make_signer(identity)
    try:
        with (
            deferred_interrupts(),
            translated(name, signing=True),
            c2pa.Builder(definition, context=context(settings)) as builder,
        ):
            for uri, data in (resources or {}).items():
                builder.add_resource(uri, io.BytesIO(data))
            for ingredient_json, ingredient_mime, ingredient in ingredients:
                with as_stream(ingredient) as stream:
                    builder.add_ingredient(ingredient_json, ingredient_mime, stream)
            stream = c2pa.Stream(source)
            try:
                with builder._exclusive_native_call(), signer._native_call():
                    reserve = lib.c2pa_signer_reserve_size(signer._handle)
                    native._check_ffi_operation_result(reserve, "signer size: {}", check=lambda r: r < 0)
                    out = ctypes.POINTER(ctypes.c_ubyte)()
                    size = placeholder(builder._handle, reserve, b"application/c2pa", ctypes.byref(out))
                    native._check_ffi_operation_result(size, "placeholder: {}", check=lambda r: r < 0)
                    lib.c2pa_free(out)
                    out = ctypes.POINTER(ctypes.c_ubyte)()
                    size = sign_hashed(
                        builder._handle,
                        signer._handle,
                        data_hash.encode(),
                        b"application/c2pa",
                        stream._stream,
                        ctypes.byref(out),
                    )
                    if size < 0 and callback.error is not None:
                        raise SigningError(
                            f"{name}: the signer failed: {type(callback.error).__name__}: {callback.error}"
                        )
                    native._check_ffi_operation_result(size, "signing: {}", check=lambda r: r < 0)
                    try:
                        return ctypes.string_at(out, size)
                    finally:
                        lib.c2pa_free(out)
            finally:
                stream.close()
    finally:
        signer.close()


def ingredient_with_sidecar(
    ingredient: dict[str, Any],
    mime: str,
    data: bytes | InputFile,
    manifest: bytes,
    settings: dict[str, Any],
    name: str,
) -> tuple[dict[str, Any], dict[str, bytes]]:
    """The definition of an ingredient whose manifest store is kept beside it (an OGG's
    ``NAME.c2pa``), and the resource to add for it.

    The C2PA library reads an ingredient's credentials only from inside the asset; for
    one kept beside it, the ingredient names the manifest store as its ``manifest_data``
    and carries the validation results and active manifest that the library's own
    Reader gives for the asset with that store (nothing here validates anything).
    """
    with as_stream(data) as stream:
        found = read_store_full(mime, stream, settings, name, manifest)
    if found.store is None:
        return ingredient, {}
    uri = f"{ingredient.get('label', 'ingredient')}.manifest.c2pa"
    described = {
        **ingredient,
        "manifest_data": {"format": "application/c2pa", "identifier": uri},
        "active_manifest": found.store.get("active_manifest"),
        "validation_results": found.store.get("validation_results"),
    }
    return described, {uri: manifest}


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
    with deferred_interrupts() as interrupts, translated(name):
        try:
            reader = c2pa.Reader(mime, interrupts.guard(stream), manifest_data, context(settings))
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


def has_credentials(data: bytes | InputFile) -> bool:
    """Whether the asset carries a C2PA manifest store (no validation)."""
    if isinstance(data, InputFile) and not _mentions_c2pa(data):
        # The C2PA library reads some formats whole (twice: 250 MB for a 100 MB
        # JPEG) even to find nothing; an embedded manifest store always holds
        # its JUMBF label "c2pa", so a file without those bytes has none.
        return False
    with as_stream(data) as stream:
        try:
            reader = c2pa.Reader.try_create(
                None, stream, None, context({"verify": {"verify_after_reading": False}})
            )
        except c2pa.C2paError:
            return False
        if reader is None:
            return False
        reader.close()
        return True


def _mentions_c2pa(data: InputFile, piece: int = 1 << 20) -> bool:
    """Whether the bytes ``c2pa`` occur anywhere in ``data`` (read in pieces)."""
    tail = b""
    for offset in range(0, len(data), piece):
        chunk = tail + data.read_at(offset, piece)
        if b"c2pa" in chunk:
            return True
        tail = chunk[-3:]
    return False


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
