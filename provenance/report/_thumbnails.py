"""Thumbnails for the report: the file's own, and one per node of the chain of custody."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

from provenance._internal import c2pa_bridge
from provenance._internal.images import open_image, thumbnail_jpeg
from provenance.errors import ProvenanceError, StoreError
from provenance.store import ManifestStore
from provenance.verify import ManifestReport, VerificationResult

EDGE = 320
"""Long edge of every thumbnail shown, in pixels: small enough to embed, big enough to recognise."""

MAX_THUMBNAIL_PIXELS = 40_000_000
"""A manifest "thumbnail" larger than this is not decoded (a few MB of PNG can hide a huge image)."""


def data_url(jpeg: bytes | None) -> str | None:
    return "data:image/jpeg;base64," + base64.b64encode(jpeg).decode("ascii") if jpeg else None


def _small(data: bytes, name: str) -> bytes | None:
    # Thumbnails inside a manifest are attacker-controlled bytes: decode them
    # under the pixel limit and re-encode, so only a plain JPEG is ever shown.
    try:
        width, height = open_image(data, name).size  # lazy: reads the header only
        if width * height > MAX_THUMBNAIL_PIXELS:
            return None
        return thumbnail_jpeg(data, name, EDGE)
    except ProvenanceError:
        return None


def file_thumbnail(data: bytes, result: VerificationResult, name: str) -> bytes | None:
    """The file's own picture, when it is one."""
    if result.mime is None or not result.mime.startswith("image/"):
        return None
    try:  # the file itself was already decoded under the library's pixel limit by verification
        return thumbnail_jpeg(data, name, EDGE)
    except ProvenanceError:
        return None


def chain_thumbnails(
    data: bytes, result: VerificationResult, name: str, store: ManifestStore | None
) -> list[bytes | None]:
    """One thumbnail (or None) per node of ``result.chain``, in the same order."""
    root = result.active_manifest
    if root is None:
        return []
    source, mime = data, result.mime
    if result.recovered and store is not None and result.watermark and result.watermark.payload:
        try:
            entry = store.get_by_payload(bytes.fromhex(result.watermark.payload))
        except StoreError:  # the verdict stands; only the pictures are missing
            entry = None
        if entry is None:
            return [None] * len(result.chain)
        source, mime = entry.manifest_store, "application/c2pa"
    try:
        store_json, resources = c2pa_bridge.read_thumbnails(mime, source, name)
    except ProvenanceError:
        return [None] * len(result.chain)
    manifests: Mapping[str, Any] = (store_json or {}).get("manifests") or {}
    active = manifests.get(root.label or "")
    if not isinstance(active, Mapping):
        return [None] * len(result.chain)
    found = _walk(root, active, manifests, resources, _identifier(active.get("thumbnail")))
    return [_small(raw, name) if raw else None for raw in found]


def _identifier(ref: Any) -> str | None:
    return ref.get("identifier") if isinstance(ref, Mapping) else None


def _walk(
    node: ManifestReport,
    manifest: Mapping[str, Any],
    manifests: Mapping[str, Any],
    resources: Mapping[str, bytes],
    thumbnail: str | None,
) -> list[bytes | None]:
    # Same order as ManifestReport.walk(): the node, then each ingredient's subtree,
    # built from the same "ingredients" list verification walked.
    out: list[bytes | None] = [resources.get(thumbnail) if thumbnail else None]
    ingredients = manifest.get("ingredients") or []
    for index, child in enumerate(node.ingredients):
        ingredient = ingredients[index] if index < len(ingredients) else {}
        child_manifest = manifests.get(ingredient.get("active_manifest") or "") if child.label else None
        child_manifest = child_manifest if isinstance(child_manifest, Mapping) else {}
        ident = _identifier(ingredient.get("thumbnail")) or _identifier(child_manifest.get("thumbnail"))
        out += _walk(child, child_manifest, manifests, resources, ident)
    return out
