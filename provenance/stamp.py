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
watermark, signs a manifest that declares it (the ``c2pa.soft-binding`` assertion and
the C2PA 2.4 ``c2pa.watermarked.bound`` action), records the signed manifest in the store with a
small greyscale reference of the picture, and returns the stamped bytes. The image is encoded
exactly once, in its original format with its quality settings (or ``quality=``), EXIF and ICC.

Audio (a path or the bytes of WAV, FLAC, MP3, M4A or OGG) is stamped the same way with
the audio watermark (``watermark.audio``), re-encoded in its own format, rate, layout and
bit rate, and recorded with a spectral fingerprint for the likeness check. OGG cannot
embed a manifest: it is signed beside the file (``StampResult.sidecar``, written as
``NAME.c2pa`` next to ``output``).

An image that already carries this library's watermark (a stamped output
stamped again) keeps its identifier: the mark is not embedded a second time,
the old credentials become the parent ingredient of the new manifest, and the
store's entry for that identifier is replaced by the new manifest.

With ``output=``, the record and the file both exist or neither does: the
output is written to a temporary file first, the record is committed, then the
file is renamed into place (Ctrl-C and SIGTERM are held back across the two).
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import hashlib
import json
import os
import secrets
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
import numpy.typing as npt
from PIL import Image

import watermark
import watermark.audio
from manifests import Action, EditInfo, GenerationInfo
from provenance._internal import audio_likeness, c2pa_bridge, likeness, pdq
from provenance._internal.arrays import as_pil_image
from provenance._internal.audio import DETECT_SECONDS, decode_audio, is_audio, output_bit_rate
from provenance._internal.audio_stream import StreamFormat, encode_audio_stream, open_audio
from provenance._internal.files import (
    InputFile,
    PendingOutput,
    atomic_output,
    check_output,
    open_input,
    pending_output,
    read_input,
    same_file,
    scratch_file,
)
from provenance._internal.images import (
    REDUCE_ABOVE,
    STAMPABLE_FORMATS,
    canonical_format,
    encode_image,
    frame_count,
    load_for_analysis,
    load_image,
    open_image,
    preserving_save_options,
    stamp_format,
    stamp_mime,
)
from provenance._internal.names import printable
from provenance._internal.signals import deferred_signals
from provenance._internal.streaming import STREAMED_FORMATS, open_streamable, release_heap, write_marked
from provenance.errors import (
    CorruptInputError,
    OutputError,
    ProvenanceError,
    StoreError,
    UsageError,
    WatermarkFailure,
)
from provenance.keys import Identity
from provenance.sign import sign_encoded_file, sign_encoded_image, sign_sidecar, sign_to_stream
from provenance.store import ManifestStore, StoreEntry

__all__ = ["STAMPABLE_FORMATS", "StampResult", "stamp", "stamp_facts"]


@dataclass(frozen=True)
class StampResult:
    """The stamped asset and what was recorded about it."""

    held: bytes | None
    """The stamped bytes, or None when they were written to ``path`` without being held
    in memory (audio is stamped in blocks, a picture above 24 megapixels stamped from a
    path to ``output`` is streamed; see :attr:`data`)."""
    mime: str
    payload: bytes
    manifest_label: str
    soft_binding_value: str
    path: Path | None = None
    manifest_path: Path | None = None
    """Where the signed manifest was written beside the output (``NAME.c2pa``), for
    formats that cannot carry it (OGG); None when it is embedded."""
    sidecar: bytes | None = None
    """The signed manifest store to keep beside ``data`` (OGG); None when it is embedded."""

    @property
    def data(self) -> bytes:
        """The stamped bytes (read back from :attr:`path` for audio stamped into a file:
        an hour-long recording is not held in memory unless asked for)."""
        if self.held is not None:
            return self.held
        assert self.path is not None
        return read_input(self.path)

    @property
    def identifier(self) -> str:
        """The watermark payload as 16 hex digits."""
        return self.payload.hex()


def stamp_facts(
    info: GenerationInfo,
    key: bytes = watermark.DEFAULT_KEY,
    quality: int | None = None,
    bit_rate: int | None = None,
) -> str:
    """A digest of everything a stamp is made with besides the pixels and the signer.

    Recorded with each stamp; a batch re-run whose facts differ stamps again.
    The raw prompt enters only through its SHA-256, like in the manifest.
    """
    facts = dataclasses.asdict(dataclasses.replace(info, prompt=info.prompt_sha256))
    document: dict[str, Any] = {"info": facts, "key": hashlib.sha256(key).hexdigest(), "quality": quality}
    if bit_rate is not None:  # absent, not null, so digests recorded before it existed still match
        document["bit_rate"] = bit_rate
    text = json.dumps(document, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8", "backslashreplace")).hexdigest()


FRESH_IDENTIFIER_ATTEMPTS = 3
"""Identifiers tried before an image is declared unable to hold the watermark."""


def stamp(
    source: bytes | str | os.PathLike[str] | Image.Image | npt.NDArray[Any],
    identity: Identity,
    info: GenerationInfo,
    *,
    store: ManifestStore,
    output: str | os.PathLike[str] | None = None,
    key: bytes = watermark.DEFAULT_KEY,
    format: str | None = None,
    title: str | None = None,
    source_name: str | None = None,
    quality: int | None = None,
    bit_rate: int | None = None,
) -> StampResult:
    """Watermark, sign and record one image or audio file; see the module docstring.

    ``source`` is a path, encoded bytes, an in-memory ``PIL.Image`` or a numpy array as
    :func:`~provenance.sign.sign_image` takes it (then
    ``format`` picks the encoding, PNG by default). With ``output`` the result
    is also written there atomically (never over the source). ``quality``
    (1-100) sets the JPEG/WebP encoder quality instead of keeping the
    original's; PNG and TIFF are lossless and ignore it.

    Audio is written in its own format, rate, layout and bit rate: ``bit_rate`` (bits
    per second) chooses another bit rate for MP3, M4A and OGG; ``quality``, a
    ``format`` other than the input's, and ``bit_rate`` for lossless WAV/FLAC are
    refused with a :class:`~provenance.errors.UsageError` rather than ignored.
    """
    if quality is not None and not 1 <= quality <= 100:
        raise UsageError(f"quality must be between 1 and 100, not {quality}")
    if isinstance(source, str | os.PathLike) and output is not None:
        streamed = _stamp_large(
            source, identity, info, store=store, output=output, key=key, format=format,
            title=title, source_name=source_name, quality=quality,
        )
        if streamed is not None:
            return streamed
    read: bytes | None = None
    if isinstance(source, str | os.PathLike):
        with open_input(source) as opened:
            if is_audio(opened):
                # Audio is stamped in blocks from the file itself: never read whole.
                if output is not None and same_file(source, output):
                    raise OutputError(
                        f"{printable(output)}: output is the input file; stamping never modifies inputs"
                    )
                return _stamp_audio(
                    opened,
                    printable(source_name or str(source)),
                    identity,
                    info,
                    store=store,
                    output=output,
                    key=key,
                    title=title,
                    named=True,
                    quality=quality,
                    format=format,
                    bit_rate=bit_rate,
                    path=source,
                )
        # Read once: images below use these bytes too (a second read would hold
        # a large file twice and could see a file changed meanwhile).
        read = read_input(source)
    elif isinstance(source, bytes | bytearray | memoryview) and is_audio(source := bytes(source)):
        return _stamp_audio(
            source,
            printable(source_name or "<bytes>"),
            identity,
            info,
            store=store,
            output=output,
            key=key,
            title=title,
            named=bool(source_name),
            quality=quality,
            format=format,
            bit_rate=bit_rate,
            path=None,
        )
    if bit_rate is not None:
        raise UsageError("bit_rate applies to compressed audio (MP3, M4A, OGG); images take quality=")
    name, raw, image = _load(source, source_name, read)
    name = printable(name)
    if output is not None and isinstance(source, str | os.PathLike) and same_file(source, output):
        raise OutputError(f"{printable(output)}: output is the input file; stamping never modifies inputs")
    fmt = stamp_format(image, format, name)
    options = preserving_save_options(image, fmt)
    if quality is not None and fmt in ("JPEG", "WEBP"):
        options.pop("qtables", None)
        options["quality"] = quality
    # An image that already carries credentials keeps them: it becomes the
    # parent ingredient and the new manifest records only the watermarking.
    parent = raw if raw is not None and c2pa_bridge.has_credentials(raw) else None
    # A stamped output stamped again already carries a mark; a second one on
    # top would garble both, so it keeps its identifier. Looking costs a
    # detection, so only images with credentials are checked up front; the
    # others only when the new mark does not read back.
    kept = _existing_mark(image, key) if parent is not None else None
    # Pixels decoded here (from a path or bytes) are marked in place: a second
    # full-size image is 800 MB for 200 megapixels. A retry decodes them again.
    owned = raw is not None
    if kept is None:
        # Whether a mark reads back after encoding depends a little on its bits
        # (about 1 identifier in 130 fails on a 256 px photo): another identifier
        # then usually reads. An image that fails them all cannot hold a mark.
        for attempt in range(FRESH_IDENTIFIER_ATTEMPTS):
            payload = _fresh_payload(store)
            if attempt and owned:
                assert raw is not None
                image = load_image(raw, name)
            marked = _embed(image, payload, key, name, in_place=owned)
            encoded, mime = encode_image(marked, fmt, **options)
            try:
                published = _check_readable(encoded, payload, key, name, fmt)
                break
            except WatermarkFailure:
                if attempt == 0:
                    if owned:
                        assert raw is not None
                        image = load_image(raw, name)
                    kept = _existing_mark(image, key)
                    if kept is not None:
                        break
                if attempt == FRESH_IDENTIFIER_ATTEMPTS - 1:
                    raise
    replacing = False
    if kept is not None:
        payload, marked = kept, image
        replacing = store.get_by_payload(payload) is not None
        if replacing and parent is None:
            raise WatermarkFailure(
                f"{name}: already carries watermark {payload.hex()}, whose credentials are in the "
                "manifest store but no longer in the file (`provenance verify` recovers them); "
                "stamp the original image instead"
            )
        encoded, mime = encode_image(marked, fmt, **options)
        published = _check_readable(encoded, payload, key, name, fmt)
    value = watermark.soft_binding_value(payload)
    soft_binding = {
        "label": "c2pa.soft-binding",
        "data": {"alg": watermark.ALGORITHM, "blocks": [{"scope": {}, "value": value}]},
    }
    watermarked = watermark_action()
    if title is None and (source_name or not name.startswith("<")):
        title = Path(name).name
    title = printable(title) if title is not None else None
    # With a parent (credentials already there) the new manifest is an edit whose
    # action is declaring the watermark; the mark itself may be older (kept).
    edit = EditInfo((watermarked,)) if parent is not None else None
    actions = [] if parent is not None else [watermarked]
    signed = sign_encoded_image(
        encoded,
        mime,
        marked,
        identity,
        info,
        parent=parent,
        edit=edit,
        title=title,
        extra_assertions=[soft_binding],
        extra_actions=actions,
    )
    assert signed.data is not None
    entry = StoreEntry(
        payload=payload,
        manifest_label=signed.manifest_label,
        manifest_store=signed.manifest_store,
        mime=signed.mime,
        soft_binding_alg=watermark.ALGORITHM,
        soft_binding_value=value,
        fingerprint_image=likeness.reference(marked),
        # Fingerprint the pixels as published (after the watermark and the encoder):
        # both move a perceptual hash, and copies in the wild descend from these.
        pdq_hash=pdq.fingerprint(reduced := pdq.working_copy(published)),
        pdq_window=pdq.window_fingerprint(reduced),
        source_sha256=hashlib.sha256(raw).hexdigest() if raw is not None else None,
        asset_sha256=hashlib.sha256(signed.data).hexdigest(),
        output_path=recorded_output_path(output) if output is not None else None,
        generator=info.generator,
        model=info.model,
        title=title,
        facts_sha256=stamp_facts(info, key, quality),
    )

    _record_and_write(store, entry, name, replacing=replacing, files={output: signed.data})
    return StampResult(
        signed.data,
        signed.mime,
        payload,
        signed.manifest_label,
        value,
        Path(output) if output is not None else None,
    )


class _Unchanged:
    """A marker that leaves the pixels as they are (an image keeping its existing mark)."""

    def rows(self, width: int) -> int:
        return max(16, 2_000_000 // max(1, width))

    def mark(self, rows: npt.NDArray[np.uint8], mode: str, y0: int) -> npt.NDArray[np.uint8]:
        return rows


def _stamp_large(
    source: str | os.PathLike[str],
    identity: Identity,
    info: GenerationInfo,
    *,
    store: ManifestStore,
    output: str | os.PathLike[str],
    key: bytes,
    format: str | None,
    title: str | None,
    source_name: str | None,
    quality: int | None,
) -> StampResult | None:
    """Stamp a picture too large to hold (above ``REDUCE_ABOVE`` pixels) from its
    file to ``output`` without decoding it whole; None when it is not such a
    picture or cannot be streamed (see ``provenance._internal.streaming``), for the
    whole-picture path to do (and to report any error).

    The source is read by libvips in strips, each strip marked and streamed to the
    encoder, into an unnamed file beside the output; the read-back check, the
    fingerprints and the claim thumbnail come from a reduced decode of that file,
    which is then signed into the output. The result holds no bytes
    (``StampResult.data`` reads the file back only when asked for).
    """
    with open_input(source) as data:
        name = printable(source_name or str(source))
        try:
            header = open_image(data, name)
        except ProvenanceError:
            return None
        width, height = header.size
        if width * height <= REDUCE_ABOVE or frame_count(header) > 1:
            return None
        fmt = canonical_format(format or header.format or "PNG")
        if fmt not in STREAMED_FORMATS or (header.format or "").upper() not in STREAMED_FORMATS:
            return None
        if open_streamable(data, name) is None:
            return None
        if same_file(source, output):
            raise OutputError(
                f"{printable(output)}: output is the input file; stamping never modifies inputs"
            )
        check_output(output)
        options = preserving_save_options(header, fmt)
        if quality is not None and fmt == "JPEG":
            options.pop("qtables", None)
            options["quality"] = quality
        del header
        parent: Path | None = Path(source) if c2pa_bridge.has_credentials(data) else None
        preview = load_for_analysis(data, name)
        kept = _existing_mark(preview, key) if parent is not None else None
        folder = Path(output).parent if str(Path(output).parent) else Path(".")
        with scratch_file(folder) as encoded:
            published: Image.Image | None = None
            if kept is None:
                for attempt in range(FRESH_IDENTIFIER_ATTEMPTS):
                    payload = _fresh_payload(store)
                    try:
                        marker = watermark.strip_marker(preview, (width, height), payload, key)
                    except watermark.ImageTooSmallError as exc:
                        raise WatermarkFailure(f"{name}: {exc}") from None
                    except watermark.WatermarkError as exc:
                        raise WatermarkFailure(f"{name}: cannot watermark ({exc})") from None
                    published = _encode_streamed(data, marker, fmt, options, encoded, name, payload, key)
                    if published is not None:
                        break
                    if attempt == 0:
                        kept = _existing_mark(preview, key)
                        if kept is not None:
                            break
                else:
                    raise WatermarkFailure(
                        f"{name}: the watermark does not survive encoding as {fmt} (the image is too flat, "
                        "too noisy or too small to hold it); not stamped"
                    )
            replacing = False
            if kept is not None:
                payload = kept
                replacing = store.get_by_payload(payload) is not None
                if replacing and parent is None:
                    raise WatermarkFailure(
                        f"{name}: already carries watermark {payload.hex()}, whose credentials are in the "
                        "manifest store but no longer in the file (`provenance verify` recovers them); "
                        "stamp the original image instead"
                    )
                published = _encode_streamed(data, _Unchanged(), fmt, options, encoded, name, payload, key)
                if published is None:
                    raise WatermarkFailure(
                        f"{name}: the watermark does not survive encoding as {fmt} (the image is too flat, "
                        "too noisy or too small to hold it); not stamped"
                    )
            assert published is not None
            value = watermark.soft_binding_value(payload)
            soft_binding = {
                "label": "c2pa.soft-binding",
                "data": {"alg": watermark.ALGORITHM, "blocks": [{"scope": {}, "value": value}]},
            }
            watermarked = watermark_action()
            title = printable(title if title is not None else Path(name).name)
            mime = stamp_mime(fmt)
            with pending_output(output) as pending:
                encoded_file = InputFile(os.dup(encoded.fileno()), os.fstat(encoded.fileno()).st_size, name)
                try:
                    label, manifest_store = sign_encoded_file(
                        encoded_file,
                        mime,
                        published,
                        pending.handle,
                        identity,
                        info,
                        parent=parent,
                        edit=EditInfo((watermarked,)) if parent is not None else None,
                        title=title,
                        extra_assertions=[soft_binding],
                        extra_actions=[] if parent is not None else [watermarked],
                        name=name,
                    )
                finally:
                    encoded_file.close()
                entry = StoreEntry(
                    payload=payload,
                    manifest_label=label,
                    manifest_store=manifest_store,
                    mime=mime,
                    soft_binding_alg=watermark.ALGORITHM,
                    soft_binding_value=value,
                    # From the reduced decode of the output: the reference and the
                    # perceptual hash work on far smaller pictures anyway.
                    fingerprint_image=likeness.reference(published),
                    pdq_hash=pdq.fingerprint(reduced := pdq.working_copy(published)),
                    pdq_window=pdq.window_fingerprint(reduced),
                    source_sha256=_file_sha256(data.stream()),
                    asset_sha256=_file_sha256(pending.handle),
                    output_path=recorded_output_path(output),
                    generator=info.generator,
                    model=info.model,
                    title=title,
                    facts_sha256=stamp_facts(info, key, quality),
                )
                _record_and_write(store, entry, name, replacing=replacing, files={}, pending=pending)
    return StampResult(None, mime, payload, label, value, Path(output))


def _encode_streamed(
    data: InputFile,
    marker: Any,
    fmt: str,
    options: dict[str, Any],
    encoded: IO[bytes],
    name: str,
    payload: bytes,
    key: bytes,
) -> Image.Image | None:
    """Encode ``data`` marked by ``marker`` into ``encoded`` (replacing what it held);
    the reduced decode of the result when it carries ``payload``, else None."""
    picture = open_streamable(data, name)
    if picture is None:  # it was streamable a moment ago: the file changed under us
        raise CorruptInputError(f"{name}: the file changed while it was being stamped")
    encoded.seek(0)
    encoded.truncate()
    write_marked(picture, marker, fmt, options, encoded.fileno(), name)
    del picture
    written = InputFile(os.dup(encoded.fileno()), os.fstat(encoded.fileno()).st_size, name)
    try:
        published = load_for_analysis(written, name)
    finally:
        written.close()
    found = watermark.detect(published, key)
    release_heap()
    return published if found.payload == payload else None


def _file_sha256(handle: IO[bytes]) -> str:
    """SHA-256 of a whole file read from its start in pieces."""
    handle.seek(0)
    digest = hashlib.sha256()
    while piece := handle.read(1 << 20):
        digest.update(piece)
    return digest.hexdigest()


def recorded_output_path(output: str | os.PathLike[str]) -> str:
    """How an output path is written in the store (absolute; odd bytes escaped)."""
    return printable(Path(output).resolve())


def _embed(image: Image.Image, payload: bytes, key: bytes, name: str, *, in_place: bool) -> Image.Image:
    try:
        return watermark.embed(image, payload, key, in_place=in_place)
    except watermark.ImageTooSmallError as exc:
        raise WatermarkFailure(f"{name}: {exc}") from None
    except watermark.WatermarkError as exc:
        raise WatermarkFailure(f"{name}: cannot watermark ({exc})") from None


def _existing_mark(image: Image.Image, key: bytes) -> bytes | None:
    try:
        found = watermark.detect(image, key)
    except watermark.WatermarkError:
        return None
    return found.payload if found.detected else None


WATERMARK_ACTION = "c2pa.watermarked.bound"
"""C2PA 2.4: a watermark inserted to create a soft binding that this manifest's
``c2pa.soft-binding`` assertion declares (``c2pa.watermarked`` is the older form)."""


def watermark_action(algorithm: str = watermark.ALGORITHM) -> Action:
    """The action recording the watermark, tied to the ``c2pa.soft-binding`` assertion.

    C2PA 2.4 ties the two by the manifest itself: a validator refuses a
    ``c2pa.watermarked.bound`` action whose claim has no soft-binding assertion
    (``assertion.action.softBindingMissing``). The optional
    ``relatedAssertions`` parameter would need the hashed URI of that
    assertion, which c2pa-python computes only while signing (with a random
    salt) and cannot fill in; a placeholder hash would be a false reference,
    so the algorithm name is recorded instead.
    """
    return Action(
        WATERMARK_ACTION,
        description="invisible watermark carrying the identifier declared in the c2pa.soft-binding assertion",
        parameters={"soft_binding_alg": algorithm},
    )


def _load(
    source: bytes | str | os.PathLike[str] | Image.Image | npt.NDArray[Any],
    source_name: str | None,
    read: bytes | None = None,
) -> tuple[str, bytes | None, Image.Image]:
    if isinstance(source, Image.Image) or hasattr(source, "__array_interface__"):
        # A PIL image or a numpy array (as sign_image accepts; bad arrays are refused there).
        return source_name or "<image>", None, as_pil_image(source, "source")
    if isinstance(source, bytearray | memoryview):
        source = bytes(source)
    if isinstance(source, bytes):
        name = source_name or "<bytes>"
        return name, source, load_image(source, name)
    if not isinstance(source, str | os.PathLike):
        raise UsageError(
            f"stamp takes a path, encoded bytes, a PIL image or a numpy array, not {type(source).__name__}"
        )
    raw = read if read is not None else read_input(source)
    return str(source), raw, load_image(raw, str(source))


def _check_readable(encoded: bytes, payload: bytes, key: bytes, name: str, fmt: str) -> Image.Image:
    """Refuse to issue credentials that declare a watermark the file does not carry.

    Returns the decoded output (reduced if large, see ``load_for_analysis``), as
    verifiers will see it.
    """
    published = load_for_analysis(encoded, name)
    found = watermark.detect(published, key)
    if found.payload != payload:
        raise WatermarkFailure(
            f"{name}: the watermark does not survive encoding as {fmt} (the image is too flat, "
            "too noisy or too small to hold it); not stamped"
        )
    return published


def _fresh_payload(store: ManifestStore) -> bytes:
    while True:
        payload = secrets.token_bytes(8)
        if store.get_by_payload(payload) is None:
            return payload


# --- audio ----------------------------------------------------------------------


def _stamp_audio(
    source: bytes | InputFile,
    name: str,
    identity: Identity,
    info: GenerationInfo,
    *,
    store: ManifestStore,
    output: str | os.PathLike[str] | None,
    key: bytes,
    title: str | None,
    named: bool,
    quality: int | None,
    format: str | None,
    bit_rate: int | None,
    path: str | os.PathLike[str] | None,
) -> StampResult:
    """Watermark, sign and record one audio file (WAV, FLAC, MP3, M4A, OGG), re-encoded in its
    own format, sample format, rate and layout, at its own bit rate when compressed.

    Everything is done in blocks, through temporary files beside the output: the audio is
    decoded, marked (``watermark.audio.embed_stream``) and encoded piece by piece, signed
    from a file stream into a file, and fingerprinted block by block, so an hour-long file
    takes the memory of a few seconds of it."""
    with open_audio(source, name) as probe:
        kind = probe.format
    out_rate = _audio_options(kind, name, quality=quality, format=format, bit_rate=bit_rate)
    detached = kind.container == "ogg"  # the C2PA library cannot embed into OGG: a sidecar
    parent: bytes | str | os.PathLike[str] | None = None
    parent_manifest = _sidecar_of(path) if detached and path is not None else None
    if parent_manifest is not None or (not detached and c2pa_bridge.has_credentials(source)):
        # Credentials already there (embedded, or an OGG's NAME.c2pa) become the parent ingredient.
        parent = path if path is not None else source if isinstance(source, bytes) else None
    kept = _existing_audio_mark(source, name, key) if parent is not None else None
    folder = None
    if output is not None:
        # Refused before the work, not after it: a folder that is not there, a FIFO or a device.
        check_output(output)
        folder = Path(output).parent if str(Path(output).parent) else Path(".")
        if not folder.is_dir():
            raise OutputError(f"{printable(output)}: folder {printable(folder)} does not exist")
        if detached and path is not None and _same_place(sidecar_path(output), sidecar_path(path)):
            # a.ogg -> a.opus: the new NAME.c2pa would replace the input's (or, if it had
            # none, would sit beside it as credentials of other audio: read as tampered).
            raise OutputError(
                f"{printable(output)}: its manifest {printable(sidecar_path(output))} would be the input's "
                f"{printable(sidecar_path(path))}; stamping never modifies inputs"
            )
    with _disk_errors(output, name), contextlib.ExitStack() as scratch:

        def temporary() -> IO[bytes]:
            return scratch.enter_context(tempfile.TemporaryFile(dir=folder, prefix=".provenance-stamp-"))

        encoded = temporary()
        if kept is None:
            for attempt in range(FRESH_IDENTIFIER_ATTEMPTS):
                payload = _fresh_payload(store)
                encoded.seek(0)
                encoded.truncate()
                encode_audio_stream(source, name, kind, out_rate, encoded, payload, key)
                if _audio_readable(encoded, payload, key, name):
                    break
                if attempt == 0:
                    kept = _existing_audio_mark(source, name, key)
                    if kept is not None:
                        break
            else:
                raise WatermarkFailure(
                    f"{name}: the audio watermark does not survive encoding as {_describe(kind)} (the clip "
                    "is too quiet, too noisy or too short to hold it); not stamped"
                )
        replacing = False
        if kept is not None:
            payload = kept
            replacing = store.get_by_payload(payload) is not None
            if replacing and parent is None:
                raise WatermarkFailure(
                    f"{name}: already carries audio watermark {payload.hex()}, whose credentials are in the "
                    "manifest store but no longer in the file (`provenance verify` recovers them); "
                    "stamp the original audio instead"
                )
            encoded.seek(0)
            encoded.truncate()
            encode_audio_stream(source, name, kind, out_rate, encoded, None, key)
            if not _audio_readable(encoded, payload, key, name):
                raise WatermarkFailure(
                    f"{name}: its audio watermark {payload.hex()} does not survive encoding as "
                    f"{_describe(kind)}"
                )
        algorithm = watermark.audio.ALGORITHM
        value = watermark.soft_binding_value(payload)
        soft_binding = {
            "label": "c2pa.soft-binding",
            "data": {"alg": algorithm, "blocks": [{"scope": {}, "value": value}]},
        }
        watermarked = watermark_action(algorithm)
        if title is None and named:
            title = Path(name).name
        title = printable(title) if title is not None else None
        edit = EditInfo((watermarked,)) if parent is not None else None
        published = _temporary_input(encoded, name)
        scratch.callback(published.close)
        if detached:
            signed = sign_sidecar(
                published,
                identity,
                info,
                parent=parent,
                parent_manifest=parent_manifest,
                edit=edit,
                title=title,
                extra_assertions=[soft_binding],
                extra_actions=[] if parent is not None else [watermarked],
                name=name,
            )
            final = encoded
        else:
            final = temporary()
            signed = sign_to_stream(
                published,
                final,
                identity,
                info,
                parent=parent,
                edit=edit,
                title=title,
                thumbnail=False,
                extra_assertions=[soft_binding],
                extra_actions=[] if parent is not None else [watermarked],
                name=name,
            )
        final.flush()
        entry = StoreEntry(
            payload=payload,
            manifest_label=signed.manifest_label,
            manifest_store=signed.manifest_store,
            mime=signed.mime,
            soft_binding_alg=algorithm,
            soft_binding_value=value,
            # The audio as published (after the watermark and the encoder): copies descend from it.
            fingerprint_audio=_audio_fingerprint(published, name),
            source_sha256=_sha256(source),
            asset_sha256=_sha256(final),
            output_path=recorded_output_path(output) if output is not None else None,
            generator=info.generator,
            model=info.model,
            title=title,
            facts_sha256=stamp_facts(info, key, quality, bit_rate),
        )
        sidecar = sidecar_path(output) if detached and output is not None else None
        final.seek(0)
        outputs: dict[str | os.PathLike[str] | None, bytes | IO[bytes]] = {output: final}
        if sidecar is not None:
            outputs[sidecar] = signed.manifest_store
        _record_and_write(store, entry, name, replacing=replacing, files=outputs)
        held = None
        if output is None:
            final.seek(0)
            held = final.read()
    return StampResult(
        held,
        signed.mime,
        payload,
        signed.manifest_label,
        value,
        Path(output) if output else None,
        manifest_path=sidecar,
        sidecar=signed.manifest_store if detached else None,
    )


@contextlib.contextmanager
def _disk_errors(output: str | os.PathLike[str] | None, name: str) -> Iterator[None]:
    """A full disk while writing the temporary files beside the output, as an output error."""
    try:
        yield
    except OSError as exc:
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
            raise
        where = printable(output) if output is not None else name
        raise OutputError(f"{where}: cannot write ({os.strerror(exc.errno).lower()})") from None


def _audio_options(
    kind: StreamFormat, name: str, *, quality: int | None, format: str | None, bit_rate: int | None
) -> int | None:
    """The bit rate the stamped copy is encoded at; options that do not apply to this audio
    are refused rather than ignored."""
    if quality is not None:
        raise UsageError(
            f"{name}: quality applies to JPEG and WebP images; audio is encoded at a bit rate "
            "(bit_rate=, `--bitrate`), its own by default"
        )
    if format is not None and format.strip().lower().lstrip(".") not in _AUDIO_NAMES[kind.container]:
        raise UsageError(
            f"{name}: audio is stamped in its own format ({kind.container.upper()}), not {format!r}; "
            "convert it first"
        )
    if bit_rate is not None:
        if kind.container in ("wav", "flac"):
            raise UsageError(
                f"{name}: {kind.container.upper()} is lossless and has no bit rate; "
                "bit_rate applies to MP3, M4A and OGG"
            )
        if not MIN_BIT_RATE <= bit_rate <= MAX_BIT_RATE:
            raise UsageError(
                f"bit rate must be between {MIN_BIT_RATE // 1000} and {MAX_BIT_RATE // 1000} kbit/s, "
                f"not {bit_rate / 1000:g}"
            )
        return bit_rate
    return output_bit_rate(kind)


_AUDIO_NAMES = {
    "wav": ("wav", "wave", "audio/wav", "audio/x-wav"),
    "flac": ("flac", "audio/flac"),
    "mp3": ("mp3", "audio/mpeg"),
    "m4a": ("m4a", "aac", "mp4", "audio/mp4"),
    "ogg": ("ogg", "opus", "audio/ogg"),
}
MIN_BIT_RATE = 8_000
MAX_BIT_RATE = 512_000
"""Bit rates (bits per second) ``stamp(bit_rate=)`` accepts for compressed audio."""


def _same_place(a: Path, b: Path) -> bool:
    """Whether two paths name the same file, whether or not it exists yet."""
    return same_file(a, b) or a.resolve() == b.resolve()


def _sidecar_of(path: str | os.PathLike[str]) -> bytes | None:
    """The manifest store kept beside an OGG input (``NAME.c2pa``, as stamping writes it)."""
    beside = sidecar_path(path)
    if not beside.is_file():
        return None
    data = read_input(beside)
    return data if data[4:8] == b"jumb" else None


def _temporary_input(handle: IO[bytes], name: str) -> InputFile:
    """A temporary file as an input (read in pieces, like a file the user named)."""
    handle.flush()
    return InputFile(os.dup(handle.fileno()), os.fstat(handle.fileno()).st_size, name)


def _sha256(data: bytes | InputFile | IO[bytes]) -> str:
    if isinstance(data, bytes):
        return hashlib.sha256(data).hexdigest()
    digest = hashlib.sha256()
    if isinstance(data, InputFile):
        for offset in range(0, len(data), 1 << 20):
            digest.update(data.read_at(offset, 1 << 20))
        return digest.hexdigest()
    data.seek(0)
    while chunk := data.read(1 << 20):
        digest.update(chunk)
    return digest.hexdigest()


def _audio_fingerprint(published: InputFile, name: str) -> bytes:
    with open_audio(published, name) as src:
        maker = audio_likeness.Fingerprinter(src.format.sample_rate)
        for block in src.blocks():
            maker.add(block)
    return maker.finish()


def _record_and_write(
    store: ManifestStore,
    entry: StoreEntry,
    name: str,
    *,
    replacing: bool,
    files: Mapping[str | os.PathLike[str] | None, bytes | IO[bytes]],
    pending: PendingOutput | None = None,
) -> None:
    """Record ``entry`` and write ``files`` (path -> bytes, or a file to copy from its current
    position; a ``None`` path is not written) and ``pending``, an output already written
    but not yet in place.

    Record first, rename second: each file is a synced temporary file until the
    record is committed, so a failed record (store full) leaves no output carrying
    an identifier the store does not know, and a file with a sidecar gets both or neither.
    """
    with deferred_signals(), contextlib.ExitStack() as opened:
        for path, data in files.items():
            if path is None:
                continue
            handle = opened.enter_context(atomic_output(path))
            if isinstance(data, bytes):
                handle.write(data)
            else:
                shutil.copyfileobj(data, handle, 1 << 20)
            handle.flush()
            os.fsync(handle.fileno())
        recorded = store.supersede(entry) if replacing else store.record(entry)
        if not recorded:
            # Another writer took this identifier between our check and our insert.
            raise StoreError(f"{name}: identifier {entry.payload.hex()} is already in the store; stamp again")
        if pending is not None:
            pending.publish()


def sidecar_path(output: str | os.PathLike[str]) -> Path:
    """Where the manifest of an output that cannot embed one is kept: ``NAME.c2pa`` beside it."""
    return Path(output).with_suffix(".c2pa")


def _describe(clip: StreamFormat) -> str:
    kind = clip.container.upper()
    if clip.subtype == "PCM_U8":
        return f"{kind} with 8-bit samples (too coarse for the mark)"
    if clip.bit_rate and clip.container in ("mp3", "m4a", "ogg"):
        return f"{kind} at {clip.bit_rate // 1000} kbit/s"
    return kind


def _existing_audio_mark(source: bytes | InputFile, name: str, key: bytes) -> bytes | None:
    clip = decode_audio(source, name, seconds=DETECT_SECONDS)
    found = watermark.audio.detect(clip.samples, clip.sample_rate, key)
    return found.payload if found.detected else None


def _audio_readable(encoded: IO[bytes], payload: bytes, key: bytes, name: str) -> bool:
    """Whether the encoded audio carries ``payload`` where verifiers look (its first
    ``DETECT_SECONDS``): credentials never declare a watermark the file does not carry."""
    published = _temporary_input(encoded, name)
    try:
        clip = decode_audio(published, name, seconds=DETECT_SECONDS)
    finally:
        published.close()
    found = watermark.audio.detect(clip.samples, clip.sample_rate, key)
    return found.payload == payload
