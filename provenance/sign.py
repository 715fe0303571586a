"""Attach signed Content Credentials (C2PA manifests) to generated media.

Sign an image a model just produced, straight from memory::

    >>> import tempfile
    >>> from PIL import Image
    >>> from manifests import GenerationInfo
    >>> from provenance.keys import create_development_identity, load_identity_dir
    >>> from provenance.sign import sign_image
    >>> folder = tempfile.mkdtemp()
    >>> _ = create_development_identity(folder)
    >>> identity = load_identity_dir(folder)
    >>> image = Image.new("RGB", (320, 240), "teal")
    >>> signed = sign_image(image, identity, GenerationInfo(generator="demo", model="m-1"))
    >>> signed.mime, signed.manifest_label.startswith("urn:c2pa:")
    ('image/png', True)

``sign_image`` takes a ``PIL.Image.Image`` or a numpy array straight from a
model: ``(H, W)``, ``(H, W, 3)`` or ``(H, W, 4)`` of ``uint8``, or of floats in
[0, 1] (other arrays are refused with a one-line reason, never clipped)::

    >>> import numpy as np
    >>> pixels = np.random.default_rng(0).random((240, 320, 3))    # floats in [0, 1]
    >>> sign_image(pixels, identity, GenerationInfo(generator="demo", model="m-1")).mime
    'image/png'

``sign_file`` signs a file into another (atomically; the input is never
modified unless ``in_place=True``), ``sign_bytes`` signs bytes. Pass
``parent=`` to record an edit of an existing asset: its credentials become a
``parentOf`` ingredient so the chain of custody survives the edit.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import uuid
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
from PIL import Image

from manifests import (
    Action,
    EditInfo,
    GenerationInfo,
    ManifestDefinitionError,
    edit_definition,
)
from provenance._internal import c2pa_bridge
from provenance._internal.arrays import as_pil_image
from provenance._internal.files import (
    InputFile,
    as_stream,
    atomic_output,
    check_output,
    display,
    open_input,
    same_file,
)
from provenance._internal.formats import (
    OGG,
    TIFF,
    MediaFormat,
    by_extension,
    by_mime,
    check_complete,
    is_fragmented,
    require_signable,
    sniff,
)
from provenance._internal.images import (
    THUMBNAIL_EDGE,
    check_all_frames,
    encode_image,
    frame_count,
    thumbnail_jpeg,
)
from provenance.errors import (
    ManifestDefinitionError as _DefinitionError,
)
from provenance.errors import (
    OutputError,
    UnsupportedFormatError,
    UsageError,
)
from provenance.keys import Identity

__all__ = [
    "ExtensionMismatchWarning",
    "SignedAsset",
    "sign_bytes",
    "sign_encoded_file",
    "sign_encoded_image",
    "sign_file",
    "sign_image",
    "sign_sidecar",
    "sign_to_stream",
    "signing_settings",
]

_log = logging.getLogger(__name__)

Source = bytes | str | os.PathLike[str]
_THUMBNAIL_URI = "provenance-thumbnail.jpg"


class ExtensionMismatchWarning(UserWarning):
    """A file's name says one format, its bytes another; the bytes win."""


@dataclass(frozen=True)
class SignedAsset:
    """The result of signing: the signed bytes (or where they were written)."""

    mime: str
    manifest_label: str
    manifest_store: bytes
    data: bytes | None = None
    path: Path | None = None


@dataclass(frozen=True)
class _Ingredient:
    data: bytes | InputFile
    mime: str
    title: str
    label: str
    manifest: bytes | None = None
    """Its manifest store when kept beside it (an OGG's ``NAME.c2pa``)."""


def sign_bytes(
    data: bytes,
    identity: Identity,
    info: GenerationInfo | None = None,
    *,
    edit: EditInfo | None = None,
    parent: Source | None = None,
    components: Sequence[Source] = (),
    title: str | None = None,
    thumbnail: bool | int = True,
    extra_assertions: Sequence[Mapping[str, Any]] = (),
    extra_actions: Sequence[Action] = (),
    name: str = "<bytes>",
) -> SignedAsset:
    """Sign ``data`` (any supported format, detected from its content).

    ``thumbnail`` is True (a 512 px claim thumbnail), False (none), or the
    long edge in pixels.
    """
    if isinstance(data, bytearray | memoryview):
        data = bytes(data)
    if not isinstance(data, bytes):
        hint = " (for an in-memory image use sign_image, for a path sign_file)"
        raise UsageError(f"sign_bytes takes the encoded file as bytes, not {type(data).__name__}{hint}")
    fmt = require_signable(data, name)
    out = io.BytesIO()
    label, store = _sign_into(
        data,
        fmt,
        out,
        identity,
        info,
        edit=edit,
        parent=parent,
        components=components,
        title=title,
        thumbnail=thumbnail,
        extra_assertions=extra_assertions,
        extra_actions=extra_actions,
        name=name,
    )
    return SignedAsset(fmt.mime, label, store, data=out.getvalue())


def sign_to_stream(
    data: bytes | InputFile,
    dest: IO[bytes],
    identity: Identity,
    info: GenerationInfo | None = None,
    *,
    edit: EditInfo | None = None,
    parent: Source | None = None,
    components: Sequence[Source] = (),
    title: str | None = None,
    thumbnail: bool | int = True,
    extra_assertions: Sequence[Mapping[str, Any]] = (),
    extra_actions: Sequence[Action] = (),
    name: str = "<bytes>",
) -> SignedAsset:
    """:func:`sign_bytes` from a file read in pieces into the writable, seekable ``dest``:
    neither the input nor the output is held in memory (an hour of WAV is 600 MB)."""
    fmt = require_signable(data, name)
    label, store = _sign_into(
        data,
        fmt,
        dest,
        identity,
        info,
        edit=edit,
        parent=parent,
        components=components,
        title=title,
        thumbnail=thumbnail,
        extra_assertions=extra_assertions,
        extra_actions=extra_actions,
        name=name,
    )
    return SignedAsset(fmt.mime, label, store)


def sign_file(
    input_path: str | os.PathLike[str],
    output_path: str | os.PathLike[str] | None,
    identity: Identity,
    info: GenerationInfo | None = None,
    *,
    in_place: bool = False,
    edit: EditInfo | None = None,
    parent: Source | None = None,
    components: Sequence[Source] = (),
    title: str | None = None,
    thumbnail: bool | int = True,
    extra_assertions: Sequence[Mapping[str, Any]] = (),
    extra_actions: Sequence[Action] = (),
) -> SignedAsset:
    """Sign the file at ``input_path`` into ``output_path``.

    The output appears whole or not at all. Writing over the input is refused
    unless ``in_place`` is True (then ``output_path`` may be None).
    """
    _require_path(input_path, "input_path")
    if output_path is not None:
        _require_path(output_path, "output_path")
    src = Path(input_path)
    if in_place:
        dest = Path(output_path) if output_path is not None else src
        if not same_file(src, dest):
            raise UsageError("in-place signing writes to the input itself; drop the output path")
    else:
        if output_path is None:
            raise UsageError("an output path is required (or ask for in-place signing)")
        dest = Path(output_path)
        if same_file(src, dest):
            raise OutputError(
                f"{display(dest)}: output is the input file; choose another name or sign in place explicitly"
            )
    check_output(dest)  # before any work: a FIFO or device is never an output
    # The input is read in pieces (a file stream for the C2PA library, slices
    # for the checks), never whole: memory stays flat for multi-GB videos.
    with open_input(src) as data:
        fmt = require_signable(data, data.name)
        _warn_on_lying_extension(src, fmt)
        mode = None
        if in_place:
            # Replace the file a symlink points to, not the link, and keep its permissions.
            dest = dest.resolve()
            mode = dest.stat().st_mode & 0o777
        with atomic_output(dest, mode) as handle:
            label, store = _sign_into(
                data,
                fmt,
                handle,
                identity,
                info,
                edit=edit,
                parent=parent,
                components=components,
                title=title or display(src.name),
                thumbnail=thumbnail,
                extra_assertions=extra_assertions,
                extra_actions=extra_actions,
                name=data.name,
            )
    return SignedAsset(fmt.mime, label, store, path=dest)


def sign_image(
    image: Image.Image | np.ndarray[Any, Any],
    identity: Identity,
    info: GenerationInfo | None = None,
    *,
    format: str = "PNG",
    save_options: Mapping[str, Any] | None = None,
    edit: EditInfo | None = None,
    parent: Source | None = None,
    components: Sequence[Source] = (),
    title: str | None = None,
    thumbnail: bool | int = True,
    extra_assertions: Sequence[Mapping[str, Any]] = (),
    extra_actions: Sequence[Action] = (),
) -> SignedAsset:
    """Encode an in-memory image once (PNG by default) and sign it; no temporary files.

    ``image`` is a ``PIL.Image.Image`` or a numpy array (see the module docstring);
    anything else raises :class:`~provenance.errors.UsageError`.
    """
    picture = as_pil_image(image)
    if not isinstance(format, str):
        raise UsageError(f"format must be a name such as 'PNG' or 'JPEG', not {format!r}")
    encoded, mime = encode_image(picture, format, **dict(save_options or {}))
    return sign_encoded_image(
        encoded,
        mime,
        picture,
        identity,
        info,
        edit=edit,
        parent=parent,
        components=components,
        title=title,
        thumbnail=thumbnail,
        extra_assertions=extra_assertions,
        extra_actions=extra_actions,
    )


def sign_encoded_image(
    encoded: bytes,
    mime: str,
    image: Image.Image,
    identity: Identity,
    info: GenerationInfo | None = None,
    *,
    edit: EditInfo | None = None,
    parent: Source | None = None,
    components: Sequence[Source] = (),
    title: str | None = None,
    thumbnail: bool | int = True,
    extra_assertions: Sequence[Mapping[str, Any]] = (),
    extra_actions: Sequence[Action] = (),
) -> SignedAsset:
    """Sign ``encoded``, the encoding of ``image``; the thumbnail is made from ``image``
    so the bytes are never decoded again."""
    fmt = by_mime(mime) or require_signable(encoded, "<image>")
    out = io.BytesIO()
    label, store = _sign_into(
        encoded,
        fmt,
        out,
        identity,
        info,
        edit=edit,
        parent=parent,
        components=components,
        title=title,
        thumbnail=thumbnail,
        extra_assertions=extra_assertions,
        extra_actions=extra_actions,
        name="<image>",
        decoded=image,
    )
    return SignedAsset(fmt.mime, label, store, data=out.getvalue())


def sign_encoded_file(
    encoded: InputFile,
    mime: str,
    preview: Image.Image,
    dest: Any,
    identity: Identity,
    info: GenerationInfo | None = None,
    *,
    edit: EditInfo | None = None,
    parent: Source | None = None,
    title: str | None = None,
    extra_assertions: Sequence[Mapping[str, Any]] = (),
    extra_actions: Sequence[Action] = (),
    name: str = "<image>",
) -> tuple[str, bytes]:
    """Sign ``encoded``, an encoded picture too large to hold (an open file, read
    in pieces), into the binary file ``dest``; the thumbnail is made from
    ``preview``, a reduced decode of it. Returns the manifest label and store."""
    fmt = by_mime(mime) or require_signable(encoded, name)
    return _sign_into(
        encoded,
        fmt,
        dest,
        identity,
        info,
        edit=edit,
        parent=parent,
        components=(),
        title=title,
        thumbnail=True,
        extra_assertions=extra_assertions,
        extra_actions=extra_actions,
        name=name,
        decoded=preview,
    )


def sign_sidecar(
    data: bytes | InputFile,
    identity: Identity,
    info: GenerationInfo | None = None,
    *,
    edit: EditInfo | None = None,
    parent: Source | None = None,
    parent_manifest: bytes | None = None,
    title: str | None = None,
    extra_assertions: Sequence[Mapping[str, Any]] = (),
    extra_actions: Sequence[Action] = (),
    name: str = "<bytes>",
) -> SignedAsset:
    """Sign ``data`` without touching it: the manifest store, bound to the file's SHA-256,
    is returned to be kept beside it (``NAME.c2pa``; ``verify --manifest`` checks it).

    ``parent_manifest`` is the manifest store kept beside ``parent`` (an earlier version
    of an OGG file and its ``NAME.c2pa``): its credentials become those of the parent
    ingredient, validated against it by the C2PA library, as embedded ones would.

    For OGG (Opus, Vorbis), which the C2PA library cannot embed a manifest into;
    other formats are refused (sign them with :func:`sign_bytes`).
    """
    if not isinstance(data, bytes | InputFile):
        raise UsageError(f"sign_sidecar takes the encoded file as bytes, not {type(data).__name__}")
    if sniff(data) is not OGG:
        raise UnsupportedFormatError(f"{name}: sidecar signing is for OGG files; sign others with sign_bytes")
    label, store = _sign_into(
        data,
        OGG,
        None,
        identity,
        info,
        edit=edit,
        parent=parent,
        components=(),
        title=title,
        thumbnail=False,
        extra_assertions=extra_assertions,
        extra_actions=extra_actions,
        name=name,
        detached=True,
        parent_manifest=parent_manifest,
    )
    return SignedAsset(OGG.mime, label, store)


def signing_settings(fragmented: bool = False) -> dict[str, Any]:
    """c2pa-rs settings for signing: our own thumbnail, no network, bounded memory.

    ``fragmented``: the asset is a fragmented MP4/MOV, whose media data must be hashed
    flat (c2pa-rs signs its ``moof`` fragments with Merkle leaves into a manifest that
    its own validation then refuses: ``assertion.bmffHash.mismatch``)."""
    settings: dict[str, Any] = {
        # c2pa-rs stages the signed asset in memory up to this size before
        # spilling to a temporary file: its default let a 300 MB video take
        # 650 MB to sign (370 MB with this; benchmarks/results/memory.txt).
        "core": {
            "backing_store_memory_threshold_in_mb": 16,
            # MP4/MOV: hash the media data as a Merkle tree of 1 MB leaves. A flat
            # hash makes c2pa-rs read it in 256 MB pieces, signing and verifying
            # alike (about 0.5 GB for a 1 GB video); with leaves both stay near 30 MB.
            # Only BMFF formats have such trees; the cost is 32 bytes a leaf in the manifest.
            "merkle_tree_chunk_size_in_kb": 1024,
        },
        "builder": {"thumbnail": {"enabled": False}},
        "verify": {"verify_after_sign": False, "remote_manifest_fetch": False, "ocsp_fetch": False},
    }
    if fragmented:
        del settings["core"]["merkle_tree_chunk_size_in_kb"]
    return settings


def _sign_into(
    data: bytes | InputFile,
    fmt: MediaFormat,
    dest: io.BytesIO | Any,
    identity: Identity,
    info: GenerationInfo | None,
    *,
    edit: EditInfo | None,
    parent: Source | None,
    components: Sequence[Source],
    title: str | None,
    thumbnail: bool | int,
    extra_assertions: Sequence[Mapping[str, Any]],
    extra_actions: Sequence[Action],
    name: str,
    decoded: Image.Image | None = None,
    detached: bool = False,
    parent_manifest: bytes | None = None,
) -> tuple[str, bytes]:
    _check_arguments(identity, info, edit, parent, components, thumbnail)
    with contextlib.ExitStack() as inputs:
        return _sign_checked(
            data,
            fmt,
            dest,
            identity,
            info,
            inputs,
            edit=edit,
            parent=parent,
            components=components,
            title=title,
            thumbnail=thumbnail,
            extra_assertions=extra_assertions,
            extra_actions=extra_actions,
            name=name,
            decoded=decoded,
            detached=detached,
            parent_manifest=parent_manifest,
        )


def _sign_checked(
    data: bytes | InputFile,
    fmt: MediaFormat,
    dest: io.BytesIO | Any,
    identity: Identity,
    info: GenerationInfo | None,
    inputs: contextlib.ExitStack,
    *,
    edit: EditInfo | None,
    parent: Source | None,
    components: Sequence[Source],
    title: str | None,
    thumbnail: bool | int,
    extra_assertions: Sequence[Mapping[str, Any]],
    extra_actions: Sequence[Action],
    name: str,
    decoded: Image.Image | None,
    detached: bool = False,
    parent_manifest: bytes | None = None,
) -> tuple[str, bytes]:
    identity.check_valid_now()
    check_complete(data, fmt, name)
    parent_ing = None
    if parent is not None:
        parent_ing = _load_ingredient(parent, "parentOf", "parent", inputs, parent_manifest)
    component_ings = [
        _load_ingredient(c, "componentOf", f"component-{i}", inputs) for i, c in enumerate(components)
    ]
    labels = [c.label for c in component_ings]
    try:
        if info is not None:
            if extra_actions:
                info = info.with_actions(*extra_actions)
            definition = info.manifest_definition(
                title=title,
                parent=parent_ing.label if parent_ing else None,
                components=labels,
                edit_actions=edit.actions if edit else (),
                extra_assertions=extra_assertions,
            )
        elif parent_ing is not None:
            chosen = edit or EditInfo()
            if extra_actions:
                chosen = EditInfo(
                    (*chosen.actions, *extra_actions),
                    chosen.generator,
                    chosen.generator_version,
                    chosen.title,
                )
            definition = edit_definition(
                chosen, parent_ing.label, components=labels, extra_assertions=extra_assertions
            )
            if title and "title" not in definition:
                definition["title"] = title
        else:
            raise _DefinitionError(
                "say how the content was made: pass generation info, or a parent for an edit"
            )
    except ManifestDefinitionError as exc:
        raise _DefinitionError(str(exc)) from None
    label = f"urn:c2pa:{uuid.uuid4()}"
    definition["label"] = label
    definition["format"] = fmt.mime
    resources: dict[str, bytes] = {}
    if thumbnail and fmt.is_image:
        edge = THUMBNAIL_EDGE if thumbnail is True else int(thumbnail)
        resources[_THUMBNAIL_URI] = thumbnail_jpeg(decoded if decoded is not None else data, name, edge)
        definition["thumbnail"] = {"format": "image/jpeg", "identifier": _THUMBNAIL_URI}
    elif fmt.is_image and decoded is None:
        # Without a thumbnail nothing else decodes the pixels; a truncated
        # image must still be refused rather than signed.
        thumbnail_jpeg(data, name, 64)
    if fmt.is_image:
        # Thumbnails decode the first frame only: a file cut in a later frame
        # of an animation (or page of a TIFF) must be refused too.
        frames = check_all_frames(data, name) if decoded is None else frame_count(decoded)
        if fmt is TIFF and frames > 1:
            # c2pa-rs rewrites the first IFD only; later pages come out unreadable.
            raise UnsupportedFormatError(
                f"{name}: a TIFF with {frames} pages cannot be signed without damaging all but "
                "the first (the C2PA library rewrites only the first page); split it into single pages"
            )
    ingredients = []
    for ing, rel in ([(parent_ing, "parentOf")] if parent_ing else []) + [
        (c, "componentOf") for c in component_ings
    ]:
        ingredient: dict[str, Any] = {"title": ing.title, "relationship": rel, "label": ing.label}
        if ing.manifest is not None:
            ingredient, kept_beside = c2pa_bridge.ingredient_with_sidecar(
                ingredient, ing.mime, ing.data, ing.manifest, signing_settings(), name
            )
            resources.update(kept_beside)
        ingredients.append((ingredient, ing.mime, ing.data))
    _log.debug(
        "signing %s (%s, %d bytes) as %s with %s, %d ingredient(s)",
        name,
        fmt.mime,
        len(data),
        label,
        identity.algorithm.value,
        len(ingredients),
    )
    if detached:
        with contextlib.closing(as_stream(data)) as source:
            return label, c2pa_bridge.sign_detached(
                definition,
                signing_settings(),
                identity,
                source,
                ingredients=ingredients,
                name=name,
                resources=resources,
            )
    with contextlib.closing(as_stream(data)) as source:
        store = c2pa_bridge.sign_stream(
            definition,
            signing_settings(fragmented=is_fragmented(data, fmt)),
            identity,
            fmt.mime,
            source,
            dest,
            resources=resources,
            ingredients=ingredients,
            name=name,
        )
    return label, store


def _require_path(value: object, what: str) -> None:
    if not isinstance(value, str | os.PathLike):
        raise UsageError(f"{what} must be a file path, not {type(value).__name__}")


def _check_arguments(
    identity: object, info: object, edit: object, parent: object, components: object, thumbnail: object
) -> None:
    """Wrong argument types become one-line usage errors, not AttributeErrors deep inside."""
    if not isinstance(identity, Identity):
        raise UsageError(
            f"identity must be a provenance Identity (load_identity_dir, load_identity or "
            f"Identity.from_callback), not {type(identity).__name__}"
        )
    if info is not None and not isinstance(info, GenerationInfo):
        raise UsageError(f"info must be a GenerationInfo, not {type(info).__name__}")
    if edit is not None and not isinstance(edit, EditInfo):
        raise UsageError(f"edit must be an EditInfo, not {type(edit).__name__}")
    if isinstance(components, str | bytes) or not isinstance(components, Sequence):
        raise UsageError("components must be a list of paths or bytes")
    for source, what in [(parent, "parent"), *((c, "a component") for c in components)]:
        if source is not None and not isinstance(source, bytes | str | os.PathLike):
            raise UsageError(f"{what} must be a path or the file's bytes, not {type(source).__name__}")
    if not isinstance(thumbnail, bool) and (not isinstance(thumbnail, int) or thumbnail < 16):
        raise UsageError(
            f"thumbnail must be True, False or a long edge of at least 16 pixels, not {thumbnail!r}"
        )


def _load_ingredient(
    source: Source,
    relationship: str,
    label: str,
    inputs: contextlib.ExitStack,
    manifest: bytes | None = None,
) -> _Ingredient:
    data: bytes | InputFile
    if isinstance(source, bytes):
        data, title = source, f"{relationship} ingredient"
        name = f"<{relationship} bytes>"
    else:
        data = inputs.enter_context(open_input(source))
        title, name = display(Path(source).name), data.name
    if manifest is not None:
        c2pa_bridge.require_manifest_store(manifest, f"{name}'s manifest")
        # An OGG cannot carry credentials, so it is not "signable"; beside its manifest it is.
        fmt = OGG if sniff(data) is OGG else require_signable(data, name)
        return _Ingredient(data, fmt.mime, title, label, manifest)
    fmt = require_signable(data, name)
    return _Ingredient(data, fmt.mime, title, label)


def _warn_on_lying_extension(path: Path, fmt: MediaFormat) -> None:
    ext = path.suffix.lower().lstrip(".")
    if not ext:
        return
    claimed = by_extension(ext)
    if claimed is not None and claimed.mime != fmt.mime:
        warnings.warn(
            f"{display(path)}: named .{ext} but the content is {fmt.extension.upper()}; signing it as "
            f"{fmt.extension.upper()}",
            ExtensionMismatchWarning,
            stacklevel=3,
        )
