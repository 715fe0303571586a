"""The C2PA Soft Binding Resolution API over a manifest store.

    >>> import tempfile, os
    >>> from provenance.service import ServiceConfig, create_app
    >>> app = create_app(ServiceConfig(store=os.path.join(tempfile.mkdtemp(), "m.db")))
    >>> sorted(p for p in app.state.openapi["paths"] if p.startswith(("/matches", "/services")))
    ['/matches/byBinding', '/matches/byContent', '/services/supportedAlgorithms']

The four operations of the API, at these paths from the server root:

* ``GET /matches/byBinding?alg=&value=&maxResults=`` and ``POST /matches/byBinding``
  (``{"alg", "value"}``): manifests whose soft binding is ``value`` (base64). With
  the watermark algorithm that is an exact identifier lookup; with the PDQ
  algorithm, the nearest recorded fingerprints (``similarityScore`` 0-100).
* ``POST /matches/byContent`` with an image body: the service reads the
  watermark; without one (or with an unknown one) it matches the image's PDQ
  fingerprint, and confirms each candidate with the likeness check against the
  reference recorded at stamping, so a near-miss fingerprint never resolves.
  When nothing is confirmed it searches again with the fingerprints the image
  would have had before a 5-10% crop off any one edge
  (:func:`provenance._internal.pdq.uncropped_fingerprints`), then among the
  crop-tolerant window fingerprints recorded at stamping, with the window found
  where a cut of 0-4% per edge would have left it
  (:func:`provenance._internal.pdq.window_fingerprints`).
  With an audio body (WAV, FLAC, MP3, M4A, OGG) it reads the audio watermark and
  answers only when the clip matches the spectral fingerprint recorded at stamping.
* ``GET /manifests/{manifestId}``: the signed manifest store, ``application/c2pa``.
* ``GET /services/supportedAlgorithms``.

Plus this service's own ``POST /manifests`` (a write, bearer token with the
``register:manifests`` scope) and ``GET /references/{manifestId}`` (the
likeness reference, so a remote verifier can run the same check the local
store runs). CPU-heavy work (decoding, watermark detection, fingerprints,
likeness) runs in the thread pool, never on the event loop.
"""

from __future__ import annotations

import base64
import binascii
import json
import threading
from typing import Any

import numpy as np
from PIL import Image
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

import watermark
import watermark.audio
from provenance._internal import audio_likeness, likeness, pdq
from provenance._internal.audio import DETECT_SECONDS, decode_audio, is_audio
from provenance._internal.images import load_image
from provenance.errors import CorruptInputError, ImageTooLargeError, ProvenanceError, UnsupportedFormatError
from provenance.resolution import AUDIO_REFERENCE_TYPE
from provenance.service import ServiceConfig, ServiceHTTPError, read_body
from provenance.service.auth import FETCH, REGISTER, Tokens, require
from provenance.store import ManifestStore, StoreEntry, open_store

__all__ = ["OPENAPI", "Resolver", "routes", "startup"]

_JSON_LIMIT = 64 * 1024  # a soft-binding query is a few hundred bytes
_MAX_RESULTS = 100
_ID_LIMIT = 512


class Resolver:
    """The store, the fingerprint index and the matching logic behind the routes."""

    def __init__(self, config: ServiceConfig) -> None:
        self.config = config
        self.tokens = Tokens.from_config(config)
        self._local = threading.local()
        self.index = pdq.FingerprintIndex()
        self.window_index = pdq.FingerprintIndex()
        """The entries' crop-tolerant window hashes (those recorded since schema v7)."""
        self._cursor = 0
        self._refresh_lock = threading.Lock()

    def store(self) -> ManifestStore:
        """This thread's store connection (SQLite connections are per thread)."""
        store: ManifestStore | None = getattr(self._local, "store", None)
        if store is None:
            store = open_store(self.config.store)
            self._local.store = store
        return store

    def refresh(self) -> None:
        """Add fingerprints recorded since the last call (by any process) to the index."""
        with self._refresh_lock:
            store = self.store()
            while True:
                cursor, rows = store.fingerprints_after(self._cursor, 100_000)
                if rows:
                    # The watermark identifier is the row's reference: 8 bytes, one int64.
                    refs = np.frombuffer(b"".join(p for p, _, _ in rows), dtype=">i8").astype(np.int64)
                    self.index.add(refs, [h for _, h, _ in rows])
                    windows = [(ref, w) for ref, (_, _, w) in zip(refs.tolist(), rows, strict=True) if w]
                    self.window_index.add([ref for ref, _ in windows], [w for _, w in windows])
                if cursor == self._cursor:
                    return
                self._cursor = cursor

    def by_binding(self, alg: str, value: str, max_results: int) -> list[dict[str, Any]]:
        # Image and audio marks carry identifiers drawn from one store: the same lookup
        # (both image watermark versions included).
        if alg in (*watermark.ALGORITHMS, watermark.audio.ALGORITHM):
            try:
                payload = watermark.payload_from_soft_binding_value(value)
            except watermark.WatermarkError:
                raise ServiceHTTPError(
                    400, f"value is not the base64 of a {watermark.PAYLOAD_SIZE}-byte identifier"
                ) from None
            label = self.store().label_for_payload(payload)
            return [{"manifestId": label}] if label is not None else []
        if alg == pdq.ALGORITHM:
            query = _b64(value, pdq.HASH_BYTES, "a PDQ hash")
            self.refresh()
            found = []
            for ref, hamming in self.index.nearest(query, max_results):
                label = self.store().label_for_payload(ref.to_bytes(8, "big", signed=True))
                if label is not None:
                    found.append({"manifestId": label, "similarityScore": pdq.score(hamming)})
            return found
        raise ServiceHTTPError(
            400, f"unknown soft-binding algorithm {alg!r}; see /services/supportedAlgorithms"
        )

    def by_content(
        self, data: bytes, alg: str | None, max_results: int, hint: tuple[str, str] | None
    ) -> list[dict[str, Any]]:
        """Runs in the thread pool: decoding and matching are CPU-bound."""
        if is_audio(data):
            return self._by_audio(data, alg, max_results)
        try:
            image = load_image(data, "request body")
        except UnsupportedFormatError:
            raise ServiceHTTPError(415, "the body is not an image this service can read") from None
        except CorruptInputError as exc:
            raise ServiceHTTPError(400, str(exc)) from None
        except ImageTooLargeError as exc:
            raise ServiceHTTPError(413, str(exc)) from None
        matches: list[dict[str, Any]] = []
        seen: set[str] = set()

        def add(entry: StoreEntry, score: int) -> None:
            if entry.manifest_label not in seen and len(matches) < max_results:
                seen.add(entry.manifest_label)
                matches.append({"manifestId": entry.manifest_label, "similarityScore": score})

        if hint is not None and hint[0] in watermark.ALGORITHMS:
            for m in self.by_binding(hint[0], hint[1], max_results):
                entry = self.store().get_by_label(m["manifestId"])
                if entry is not None and _same_content(entry, image) is not None:
                    add(entry, 100)
        if alg is None or alg in watermark.ALGORITHMS:
            detection = watermark.detect(image, watermark.DEFAULT_KEY)
            if detection.detected and detection.payload is not None:
                entry = self.store().get_by_payload(detection.payload)
                if entry is not None:
                    add(entry, 100)
        if matches or alg in watermark.ALGORITHMS:
            return matches
        # No (known) watermark: the fingerprint, then the likeness check, since a
        # PDQ near-miss alone is not enough to hand out someone's credentials.
        reduced = pdq.working_copy(image)  # once, for the three kinds of hash below
        query, quality = pdq.fingerprint_and_quality(reduced)
        if hint is not None and hint[0] == pdq.ALGORITHM:
            query, quality = _b64(hint[1], pdq.HASH_BYTES, "a PDQ hash"), pdq.MIN_QUALITY
        if quality < pdq.MIN_QUALITY:
            return matches  # a featureless image: its hash would match anything flat
        self.refresh()
        checked: set[int] = set()

        def confirm(candidates: list[tuple[int, int]]) -> None:
            for ref, _ in candidates:
                if ref in checked:
                    continue
                checked.add(ref)
                entry = self.store().get_by_payload(ref.to_bytes(8, "big", signed=True))
                similarity = _same_content(entry, image) if entry is not None else None
                if entry is not None and similarity is not None:
                    add(entry, round(similarity * 100))

        want = max(max_results, 10)
        confirm(self.index.nearest(query, want))
        if not matches:
            # PDQ is crop-sensitive: 5-10% off one edge moves the hash as far as
            # an unrelated image's. Search again as if each edge had been cut
            # (one pass over the index for the four guesses); the likeness
            # check, which tolerates crops, still has the last word.
            confirm(self.index.nearest_any(pdq.uncropped_fingerprints(image), want))
        if not matches and len(self.window_index):
            # A fine texture (a brick wall) moves the whole-frame hash ~100 bits for a
            # 2% cut on every edge, beyond either search above. The window hash recorded
            # at stamping leaves the edges out; find that window in this copy for a few
            # guesses of how much was cut, and search them together.
            confirm(self.window_index.nearest_any(pdq.window_fingerprints(reduced), want))
        matches.sort(key=lambda m: -int(m["similarityScore"]))
        return matches

    def _by_audio(self, data: bytes, alg: str | None, max_results: int) -> list[dict[str, Any]]:
        """Audio: the audio watermark, confirmed by the likeness of the clip to the fingerprint
        recorded at stamping (the public-key mark can be copied onto other audio; a verifier
        checks it again with the fingerprint ``/references`` serves)."""
        if alg not in (None, watermark.audio.ALGORITHM):
            return []  # no audio fingerprint is searchable on its own
        try:
            clip = decode_audio(data, "request body", seconds=DETECT_SECONDS)
        except UnsupportedFormatError:
            raise ServiceHTTPError(415, "the body is not audio this service can read") from None
        except CorruptInputError as exc:
            raise ServiceHTTPError(400, str(exc)) from None
        detection = watermark.audio.detect(clip.samples, clip.sample_rate, watermark.audio.DEFAULT_KEY)
        if not detection.detected or detection.payload is None or max_results < 1:
            return []
        entry = self.store().get_by_payload(detection.payload)
        if entry is None or not entry.fingerprint_audio:
            return []
        similarity = audio_likeness.similarity(entry.fingerprint_audio, clip.samples, clip.sample_rate)
        if similarity < audio_likeness.SAME_AUDIO:
            return []
        return [{"manifestId": entry.manifest_label, "similarityScore": round(similarity * 100)}]

    def register(self, manifest: bytes, asset: bytes | None) -> dict[str, Any]:
        """Runs in the thread pool: validate a signed manifest store and record it."""
        from provenance.verify import validate_recovered_store

        try:
            checked = validate_recovered_store(manifest, None)
        except ProvenanceError as exc:
            raise ServiceHTTPError(400, f"the manifest cannot be read: {exc}") from None
        if checked is None:
            raise ServiceHTTPError(400, "the manifest field holds no C2PA manifest store")
        root, problems = checked
        if problems:
            raise ServiceHTTPError(400, "the manifest does not validate: " + ", ".join(problems))
        values = [b["value"] for b in root.soft_bindings if b.get("algorithm") in watermark.ALGORITHMS]
        if not values or root.label is None:
            raise ServiceHTTPError(
                400, f"the active manifest declares no {watermark.ALGORITHM} soft binding to resolve"
            )
        payload = watermark.payload_from_soft_binding_value(str(values[0]))
        reference = fingerprint = window = None
        if asset is not None:
            try:
                image = load_image(asset, "asset")
            except ProvenanceError as exc:
                raise ServiceHTTPError(400, f"the asset cannot be read: {exc}") from None
            found = watermark.detect(image, watermark.DEFAULT_KEY)
            if found.payload != payload:
                raise ServiceHTTPError(400, "the asset does not carry the watermark its manifest declares")
            reduced = pdq.working_copy(image)
            reference, fingerprint = likeness.reference(image), pdq.fingerprint(reduced)
            window = pdq.window_fingerprint(reduced)
        entry = StoreEntry(
            payload=payload,
            manifest_label=root.label,
            manifest_store=manifest,
            mime="application/c2pa",
            soft_binding_alg=watermark.ALGORITHM,
            soft_binding_value=str(values[0]),
            fingerprint_image=reference,
            pdq_hash=fingerprint,
            pdq_window=window,
            generator=root.claim_generator,
            model=root.model,
            title=root.title,
        )
        if not self.store().record(entry):
            raise ServiceHTTPError(409, "this manifest or its watermark identifier is already registered")
        bindings = [{"alg": watermark.ALGORITHM, "value": entry.soft_binding_value}]
        if fingerprint is not None:
            bindings.append({"alg": pdq.ALGORITHM, "value": base64.b64encode(fingerprint).decode()})
        return {"manifestId": root.label, "softBindings": bindings}


def _same_content(entry: StoreEntry, image: Image.Image) -> float | None:
    """The likeness score if ``image`` shows the entry's content, else None."""
    if not entry.fingerprint_image:
        return None
    similarity = likeness.similarity(entry.fingerprint_image, image)
    return similarity if similarity >= likeness.SAME_CONTENT else None


def _b64(value: str, size: int, what: str) -> bytes:
    try:
        raw = base64.b64decode(value.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise ServiceHTTPError(400, "value is not valid base64") from None
    if len(raw) != size:
        raise ServiceHTTPError(400, f"value is not the base64 of {what} ({size} bytes)")
    return raw


def _max_results(request: Request) -> int:
    raw = request.query_params.get("maxResults")
    if raw is None:
        return 10
    try:
        value = int(raw)
    except ValueError:
        raise ServiceHTTPError(400, "maxResults must be an integer") from None
    if value < 1:
        raise ServiceHTTPError(400, "maxResults must be at least 1")
    return min(value, _MAX_RESULTS)


def _known_alg(alg: str | None, what: str = "alg") -> str | None:
    if alg is not None and alg not in (*watermark.ALGORITHMS, watermark.audio.ALGORITHM, pdq.ALGORITHM):
        raise ServiceHTTPError(400, f"unknown {what} {alg!r}; see /services/supportedAlgorithms")
    return alg


def startup(app: Starlette) -> None:
    """Load the fingerprint index before the worker answers its first request."""
    resolver = Resolver(app.state.config)
    resolver.refresh()
    resolver.index.nearest(bytes(pdq.HASH_BYTES), 1)  # loads the search library now, not on a request
    app.state.resolver = resolver


def _resolver(request: Request) -> Resolver:
    resolver: Resolver | None = getattr(request.app.state, "resolver", None)
    if resolver is None:  # an app run without its lifespan (e.g. a bare test client)
        resolver = request.app.state.resolver = Resolver(request.app.state.config)
    return resolver


async def _by_binding_get(request: Request) -> Response:
    resolver = _resolver(request)
    require(request, resolver.tokens, FETCH)
    alg, value = request.query_params.get("alg"), request.query_params.get("value")
    if not alg or value is None:
        raise ServiceHTTPError(400, "the alg and value query parameters are required")
    return await _binding_response(resolver, alg, value, _max_results(request))


async def _by_binding_post(request: Request) -> Response:
    resolver = _resolver(request)
    require(request, resolver.tokens, FETCH)
    body = await _json_body(request)
    alg, value = body.get("alg"), body.get("value")
    if not isinstance(alg, str) or not isinstance(value, str):
        raise ServiceHTTPError(400, 'the body must be {"alg": "...", "value": "<base64>"}')
    return await _binding_response(resolver, alg, value, _max_results(request))


async def _binding_response(resolver: Resolver, alg: str, value: str, max_results: int) -> Response:
    if alg == pdq.ALGORITHM:
        # A scan of the whole index: off the event loop.
        matches = await run_in_threadpool(resolver.by_binding, alg, value, max_results)
    else:
        # An indexed lookup of one row: cheaper than a thread hop.
        matches = resolver.by_binding(alg, value, max_results)
    return JSONResponse({"matches": matches})


async def _json_body(request: Request) -> dict[str, Any]:
    kind = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
    if kind != "application/json":
        raise ServiceHTTPError(415, "the body must be application/json")
    raw = await read_body(request, min(_JSON_LIMIT, request.app.state.config.max_body_bytes))
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise ServiceHTTPError(400, "the body is not valid JSON") from None
    if not isinstance(body, dict):
        raise ServiceHTTPError(400, "the body must be a JSON object")
    return body


async def _by_content(request: Request) -> Response:
    resolver = _resolver(request)
    require(request, resolver.tokens, FETCH)
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind and not (kind.startswith(("image/", "audio/")) or kind == "application/octet-stream"):
        raise ServiceHTTPError(415, f"{kind} is not supported: this service matches images and audio")
    alg = _known_alg(request.query_params.get("alg"))
    max_results = _max_results(request)
    hint_alg = _known_alg(request.query_params.get("hintAlg"), "hintAlg")
    hint_value = request.query_params.get("hintValue")
    if (hint_alg is None) != (hint_value is None):
        raise ServiceHTTPError(400, "hintAlg and hintValue go together")
    hint = (hint_alg, hint_value) if hint_alg is not None and hint_value is not None else None
    data = await read_body(request)
    if not data:
        raise ServiceHTTPError(400, "the body is empty: send the image")
    matches = await run_in_threadpool(resolver.by_content, data, alg, max_results, hint)
    return JSONResponse({"matches": matches})


def _entry_for(request: Request) -> StoreEntry:
    resolver = _resolver(request)
    require(request, resolver.tokens, FETCH)
    manifest_id = request.path_params["manifestId"]
    if len(manifest_id) > _ID_LIMIT or not manifest_id.isprintable() or ":" not in manifest_id:
        raise ServiceHTTPError(400, "not a C2PA manifest identifier (expected a URN such as urn:c2pa:...)")
    entry = resolver.store().get_by_label(manifest_id)
    if entry is None:
        raise ServiceHTTPError(404, f"no manifest {manifest_id} in this store")
    return entry


async def _manifest(request: Request) -> Response:
    raw = request.query_params.get("returnActiveManifest", "false").lower()
    if raw not in ("true", "false", "1", "0"):
        raise ServiceHTTPError(400, "returnActiveManifest must be true or false")
    entry = _entry_for(request)
    # Always the whole store; the header says so. c2pa-python (0.38) cannot cut
    # the active manifest out of a signed store as JUMBF: its Reader yields JSON,
    # resources (thumbnails, an ingredient's whole manifest_data) and validation
    # results; its Builder only signs a new manifest (a different signature) or
    # writes builder archives. Doing it here would mean re-implementing JUMBF,
    # and the cut-out manifest would not validate on its own anyway: its
    # ingredient assertions point by hashed URI at the parents' manifests in the
    # same store. A stamped image without a parent has only the active manifest.
    headers = {
        "Content-Disposition": 'attachment; filename="manifest.c2pa"',
        "X-C2PA-Manifest-Scope": "store",
    }
    return Response(entry.manifest_store, media_type="application/c2pa", headers=headers)


async def _reference(request: Request) -> Response:
    entry = _entry_for(request)
    if entry.fingerprint_audio:
        return Response(entry.fingerprint_audio, media_type=AUDIO_REFERENCE_TYPE)
    if not entry.fingerprint_image:
        raise ServiceHTTPError(404, "no likeness reference was recorded for this manifest")
    return Response(entry.fingerprint_image, media_type="image/png")


async def _supported(request: Request) -> Response:
    return JSONResponse(
        {
            "watermarks": [*({"alg": a} for a in watermark.ALGORITHMS), {"alg": watermark.audio.ALGORITHM}],
            "fingerprints": [{"alg": pdq.ALGORITHM}],
        }
    )


async def _register(request: Request) -> Response:
    resolver = _resolver(request)
    require(request, resolver.tokens, REGISTER)
    kind = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
    if kind != "application/json":
        raise ServiceHTTPError(415, "the body must be application/json")
    raw = await read_body(request)
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise ServiceHTTPError(400, "the body is not valid JSON") from None
    if not isinstance(body, dict) or not isinstance(body.get("manifest"), str):
        raise ServiceHTTPError(400, 'the body must be {"manifest": "<base64>", "asset": "<base64>"?}')
    try:
        manifest = base64.b64decode(body["manifest"], validate=True)
        asset = base64.b64decode(body["asset"], validate=True) if isinstance(body.get("asset"), str) else None
    except (binascii.Error, ValueError):
        raise ServiceHTTPError(400, "manifest and asset must be valid base64") from None
    result = await run_in_threadpool(resolver.register, manifest, asset)
    return JSONResponse(result, status_code=201)


def routes(config: ServiceConfig) -> list[BaseRoute]:
    """The resolution routes (their :class:`Resolver` is made on first use)."""
    return [
        Route("/matches/byBinding", _by_binding_get, methods=["GET"]),
        Route("/matches/byBinding", _by_binding_post, methods=["POST"]),
        Route("/matches/byContent", _by_content, methods=["POST"]),
        Route("/manifests/{manifestId:str}", _manifest, methods=["GET"]),
        Route("/references/{manifestId:str}", _reference, methods=["GET"]),
        Route("/services/supportedAlgorithms", _supported, methods=["GET"]),
        Route("/manifests", _register, methods=["POST"]),
    ]


# --- the OpenAPI document (the C2PA Soft Binding Resolution API 1.0.0 shapes) ----

_ERROR = {"$ref": "#/components/responses/Error"}
_READ_SECURITY: list[dict[str, list[str]]] = [{}, {"auth": []}]
_MAX_RESULTS_PARAM = {
    "name": "maxResults",
    "in": "query",
    "description": "Most manifest identifiers to return (at most 100).",
    "schema": {"type": "integer", "minimum": 1, "default": 10},
}
_RESULT = {
    "description": "The matching manifest identifiers.",
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/c2pa.softBindingQueryResult"}}},
}


def _alg_param(name: str, required: bool, text: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": required,
        "description": text,
        "schema": {"type": "string"},
    }


OPENAPI: dict[str, Any] = {
    "paths": {
        "/matches/byBinding": {
            "get": {
                "tags": ["query"],
                "operationId": "queryByBinding",
                "summary": "Manifest identifiers for a soft binding value.",
                "parameters": [
                    {
                        "name": "value",
                        "in": "query",
                        "required": True,
                        "description": "The soft binding value, base64 (as in c2pa.soft-binding).",
                        "schema": {"type": "string"},
                    },
                    _alg_param("alg", True, "Soft binding algorithm; see /services/supportedAlgorithms."),
                    _MAX_RESULTS_PARAM,
                ],
                "responses": {"200": _RESULT, "400": _ERROR, "401": _ERROR, "403": _ERROR, "500": _ERROR},
                "security": _READ_SECURITY,
            },
            "post": {
                "tags": ["query"],
                "operationId": "queryByLargeBinding",
                "summary": "Manifest identifiers for a soft binding value sent as JSON.",
                "parameters": [_MAX_RESULTS_PARAM],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/c2pa.softBindingQuery"}}
                    },
                },
                "responses": {
                    "200": _RESULT,
                    "400": _ERROR,
                    "401": _ERROR,
                    "403": _ERROR,
                    "413": _ERROR,
                    "415": _ERROR,
                    "500": _ERROR,
                },
                "security": _READ_SECURITY,
            },
        },
        "/matches/byContent": {
            "post": {
                "tags": ["query"],
                "operationId": "uploadFile",
                "summary": "Manifest identifiers for an image (its watermark, else its PDQ fingerprint) "
                "or audio (its audio watermark).",
                "description": "Fingerprint candidates are confirmed by a likeness check against the "
                "reference recorded at stamping; similarityScore is 100 for a watermark match, else the "
                "likeness in percent. Audio matches are confirmed by the spectral fingerprint recorded "
                "at stamping; their similarityScore is that likeness in percent.",
                "parameters": [
                    _alg_param("alg", False, "Only match with this algorithm."),
                    _MAX_RESULTS_PARAM,
                    _alg_param("hintAlg", False, "Algorithm of a soft binding the caller already read."),
                    _alg_param("hintValue", False, "Its value, base64."),
                ],
                "requestBody": {
                    "required": True,
                    "content": {
                        "image/*": {"schema": {"type": "string", "format": "binary"}},
                        "audio/*": {"schema": {"type": "string", "format": "binary"}},
                        "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
                    },
                },
                "responses": {
                    "200": _RESULT,
                    "400": _ERROR,
                    "401": _ERROR,
                    "403": _ERROR,
                    "413": _ERROR,
                    "415": _ERROR,
                    "500": _ERROR,
                },
                "security": _READ_SECURITY,
            }
        },
        "/manifests/{manifestId}": {
            "get": {
                "tags": ["fetch"],
                "operationId": "getManifestById",
                "summary": "The signed C2PA manifest store holding this manifest.",
                "description": "returnActiveManifest is accepted, but the whole store is always returned "
                "(header X-C2PA-Manifest-Scope: store): the C2PA library cannot cut one manifest out of a "
                "signed store, and the active manifest alone would not validate when it has parent "
                "ingredients. A stamped image without a parent has only its active manifest.",
                "parameters": [
                    {
                        "name": "returnActiveManifest",
                        "in": "query",
                        "description": "Accepted (true or false); either way the whole manifest store is "
                        "returned, as the X-C2PA-Manifest-Scope response header says.",
                        "schema": {"type": "boolean", "default": False},
                    },
                    {"name": "manifestId", "in": "path", "required": True, "schema": {"type": "string"}},
                ],
                "responses": {
                    "200": {
                        "description": "The whole signed C2PA manifest store holding this manifest (its "
                        "active manifest and any parent ingredients' manifests), also when "
                        "returnActiveManifest=true.",
                        "headers": {
                            "X-C2PA-Manifest-Scope": {
                                "description": "Always 'store': the body is the whole manifest store.",
                                "schema": {"type": "string", "enum": ["store"]},
                            }
                        },
                        "content": {"application/c2pa": {}},
                    },
                    "400": _ERROR,
                    "401": _ERROR,
                    "403": _ERROR,
                    "404": _ERROR,
                    "500": _ERROR,
                },
                "security": _READ_SECURITY,
            }
        },
        "/services/supportedAlgorithms": {
            "get": {
                "tags": ["service"],
                "operationId": "getSupportedBindings",
                "summary": "The soft binding algorithms this service resolves.",
                "responses": {
                    "200": {
                        "description": "Watermark and fingerprint algorithms.",
                        "content": {
                            "application/json": {
                                "schema": {"$ref": "#/components/schemas/c2pa.softBindingAlgList"}
                            }
                        },
                    },
                    "500": _ERROR,
                },
            }
        },
        "/manifests": {
            "post": {
                "tags": ["register"],
                "operationId": "registerManifest",
                "summary": "Register a signed manifest store and its soft bindings (this service's own).",
                "description": "For stamping hosts that publish through this service. The manifest is "
                "validated (signature, assertions, certificate; its hard binding is not checked, the asset "
                "may be absent); its watermark identifier is read from its own c2pa.soft-binding assertion. "
                "With the published asset, the service also records its PDQ fingerprint and likeness "
                "reference, after checking it carries the declared watermark. Needs a bearer token with "
                "the register:manifests scope.",
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/registration"}}
                    },
                },
                "responses": {
                    "201": {
                        "description": "Registered.",
                        "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/registered"}}
                        },
                    },
                    "400": _ERROR,
                    "401": _ERROR,
                    "403": _ERROR,
                    "409": _ERROR,
                    "413": _ERROR,
                    "415": _ERROR,
                },
                "security": [{"auth": []}],
            }
        },
        "/references/{manifestId}": {
            "get": {
                "tags": ["fetch"],
                "operationId": "getLikenessReference",
                "summary": "The likeness reference recorded for a manifest (not part of the C2PA API).",
                "description": "For an image, a 128-px greyscale PNG; for an audio clip, its spectral "
                "fingerprint. Verifiers compare their image or audio with it before accepting "
                "credentials found by fingerprint or by a public-key watermark.",
                "parameters": [
                    {"name": "manifestId", "in": "path", "required": True, "schema": {"type": "string"}}
                ],
                "responses": {
                    "200": {
                        "description": "The reference.",
                        "content": {"image/png": {}, AUDIO_REFERENCE_TYPE: {}},
                    },
                    "400": _ERROR,
                    "404": _ERROR,
                },
                "security": _READ_SECURITY,
            }
        },
    },
    "components": {
        "schemas": {
            "c2pa.softBindingAlgList": {
                "type": "object",
                "properties": {
                    "watermarks": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["alg"],
                            "properties": {"alg": {"type": "string"}},
                        },
                    },
                    "fingerprints": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["alg"],
                            "properties": {"alg": {"type": "string"}},
                        },
                    },
                },
            },
            "c2pa.softBindingQuery": {
                "type": "object",
                "required": ["alg", "value"],
                "properties": {"alg": {"type": "string"}, "value": {"type": "string", "format": "byte"}},
            },
            "c2pa.softBindingQueryResult": {
                "type": "object",
                "properties": {
                    "matches": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["manifestId"],
                            "properties": {
                                "manifestId": {"type": "string"},
                                "endpoint": {"type": "string"},
                                "similarityScore": {"type": "integer", "minimum": 0, "maximum": 100},
                            },
                        },
                    }
                },
            },
            "registration": {
                "type": "object",
                "required": ["manifest"],
                "properties": {
                    "manifest": {
                        "type": "string",
                        "format": "byte",
                        "description": "application/c2pa bytes.",
                    },
                    "asset": {"type": "string", "format": "byte", "description": "The published image."},
                },
            },
            "registered": {
                "type": "object",
                "properties": {
                    "manifestId": {"type": "string"},
                    "softBindings": {
                        "type": "array",
                        "items": {"$ref": "#/components/schemas/c2pa.softBindingQuery"},
                    },
                },
            },
            "error": {
                "type": "object",
                "properties": {
                    "error": {
                        "type": "object",
                        "properties": {"status": {"type": "integer"}, "message": {"type": "string"}},
                    }
                },
            },
        },
        "responses": {
            "Error": {
                "description": "An error, as JSON.",
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/error"}}},
            }
        },
        "securitySchemes": {
            "auth": {
                "type": "http",
                "scheme": "bearer",
                "description": "Tokens issued by the operator ($PROVENANCE_READ_TOKENS: fetch:manifests, "
                "$PROVENANCE_WRITE_TOKENS: register:manifests and fetch:manifests). Reads are public "
                "unless the operator sets read tokens.",
            }
        },
    },
}
