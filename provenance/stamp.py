"""Durable Content Credentials: watermark + signed manifest + manifest store, in one pass.

Inside a generation pipeline, with no temporary files::

    >>> import tempfile, os
    >>> from skimage import data
    >>> from PIL import Image
    >>> from manifests import GenerationInfo
    >>> from provenance.keys import create_development_identity, load_identity_dir
    >>> from provenance.stamp import stamp
    >>> from provenance.store import open_store
    >>> home = tempfile.mkdtemp()
    >>> _ = create_development_identity(home)
    >>> identity = load_identity_dir(home)
    >>> store = open_store(os.path.join(home, "manifests.db"))
    >>> image = Image.fromarray(data.astronaut())          # what the model produced
    >>> result = stamp(image, identity, GenerationInfo(generator="demo", model="m"), store=store)
    >>> len(result.identifier), result.mime
    (16, 'image/png')

``stamp`` assigns a fresh 64-bit identifier, embeds it as an invisible
watermark, signs a manifest that declares it (``c2pa.soft-binding`` and the
``c2pa.watermarked`` action), records the signed manifest in the store with a
perceptual fingerprint, and returns the stamped bytes. The image is encoded
exactly once, in its original format with its quality settings, EXIF and ICC.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

import imagehash
from PIL import Image

import watermark
from manifests import Action, GenerationInfo
from provenance._internal.files import atomic_write, read_input, same_file
from provenance._internal.images import (
    STAMPABLE_FORMATS,
    load_image,
    preserving_save_options,
    stamp_format,
)
from provenance.errors import OutputError, WatermarkFailure
from provenance.keys import Identity
from provenance.sign import sign_image
from provenance.store import ManifestStore, StoreEntry

__all__ = ["STAMPABLE_FORMATS", "StampResult", "fingerprint", "fingerprint_similarity", "stamp"]


@dataclass(frozen=True)
class StampResult:
    """The stamped asset and what was recorded about it."""

    data: bytes
    mime: str
    payload: bytes
    manifest_label: str
    soft_binding_value: str
    fingerprint: str
    path: Path | None = None

    @property
    def identifier(self) -> str:
        """The watermark payload as 16 hex digits."""
        return self.payload.hex()


def fingerprint(image: Image.Image) -> str:
    """64-bit perceptual hash (pHash) of an image, as 16 hex digits."""
    # pHash only looks at 32x32 pixels; shrinking with a box filter first keeps
    # it cheap on large images without changing the hash in any meaningful way.
    factor = max(1, min(image.size) // 256)
    small = image.reduce(factor) if factor > 1 else image
    return str(imagehash.phash(small.convert("RGB") if small.mode not in ("RGB", "L") else small))


def fingerprint_similarity(a: str, b: str) -> float:
    """1.0 for identical fingerprints, about 0.5 for unrelated images."""
    distance = imagehash.hex_to_hash(a) - imagehash.hex_to_hash(b)
    return 1.0 - distance / 64.0


def stamp(
    source: bytes | str | os.PathLike[str] | Image.Image,
    identity: Identity,
    info: GenerationInfo,
    *,
    store: ManifestStore,
    output: str | os.PathLike[str] | None = None,
    key: bytes = watermark.DEFAULT_KEY,
    format: str | None = None,
    title: str | None = None,
    source_name: str | None = None,
) -> StampResult:
    """Watermark, sign and record one image; see the module docstring.

    ``source`` is a path, encoded bytes, or an in-memory ``PIL.Image`` (then
    ``format`` picks the encoding, PNG by default). With ``output`` the result
    is also written there atomically (never over the source). The store entry
    is written after the output, so an interrupted stamp never leaves a record
    pointing at an asset that does not exist.
    """
    name, raw, image = _load(source, source_name)
    if output is not None and isinstance(source, str | os.PathLike) and same_file(source, output):
        raise OutputError(f"{output}: output is the input file; stamping never modifies inputs")
    fmt = stamp_format(image, format, name)
    save_options = preserving_save_options(image, fmt)
    payload = _fresh_payload(store)
    try:
        marked = watermark.embed(image, payload, key)
    except watermark.ImageTooSmallError as exc:
        raise WatermarkFailure(f"{name}: {exc}") from None
    except watermark.WatermarkError as exc:
        raise WatermarkFailure(f"{name}: cannot watermark ({exc})") from None
    value = watermark.soft_binding_value(payload)
    soft_binding = {
        "label": "c2pa.soft-binding",
        "data": {"alg": watermark.ALGORITHM, "blocks": [{"scope": {}, "value": value}]},
    }
    signed = sign_image(
        marked,
        identity,
        info,
        format=fmt,
        save_options=save_options,
        title=title or (Path(name).name if source_name or not name.startswith("<") else None),
        extra_assertions=[soft_binding],
        extra_actions=[Action("c2pa.watermarked", parameters={"soft_binding_alg": watermark.ALGORITHM})],
    )
    assert signed.data is not None
    phash = fingerprint(marked)
    if output is not None:
        atomic_write(output, signed.data)
    store.record(
        StoreEntry(
            payload=payload,
            manifest_label=signed.manifest_label,
            manifest_store=signed.manifest_store,
            mime=signed.mime,
            soft_binding_alg=watermark.ALGORITHM,
            soft_binding_value=value,
            fingerprint=phash,
            source_sha256=hashlib.sha256(raw).hexdigest() if raw is not None else None,
            asset_sha256=hashlib.sha256(signed.data).hexdigest(),
            output_path=str(Path(output).resolve()) if output is not None else None,
            generator=info.generator,
            model=info.model,
            title=title,
        )
    )
    return StampResult(
        signed.data,
        signed.mime,
        payload,
        signed.manifest_label,
        value,
        phash,
        Path(output) if output is not None else None,
    )


def _load(
    source: bytes | str | os.PathLike[str] | Image.Image, source_name: str | None
) -> tuple[str, bytes | None, Image.Image]:
    if isinstance(source, Image.Image):
        return source_name or "<image>", None, source
    if isinstance(source, bytes):
        name = source_name or "<bytes>"
        return name, source, load_image(source, name)
    raw = read_input(source)
    return str(source), raw, load_image(raw, str(source))


def _fresh_payload(store: ManifestStore) -> bytes:
    while True:
        payload = secrets.token_bytes(8)
        if store.get_by_payload(payload) is None:
            return payload
