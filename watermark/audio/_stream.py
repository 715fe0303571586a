"""Embedding a long recording in pieces, in memory proportional to a piece.

>>> import numpy as np
>>> from watermark import audio
>>> rng = np.random.default_rng(0)
>>> t = np.arange(50 * 8000) / 8000
>>> clip = (0.2 * np.sin(2 * np.pi * 220 * t) * (1 + np.sin(2 * np.pi * 3 * t))
...         + 0.05 * rng.standard_normal(len(t))).astype(np.float32)
>>> pieces = (clip[i : i + 30000] for i in range(0, len(clip), 30000))   # as a decoder hands them out
>>> marked = np.concatenate(list(audio.embed_stream(pieces, 8000, bytes(range(8)))))
>>> marked.shape == clip.shape
True
>>> audio.detect(marked[-6 * 8000 :], 8000).payload == bytes(range(8))
True

The mark is a block structure repeated from the first sample (2.048 s blocks, see
``watermark/AUDIO.md``), so a segment that starts on a block boundary and is marked
on its own carries the same mark as the whole clip would there. Segments of
``SEGMENT_BLOCKS`` blocks are marked one by one, each extended ``OVERLAP_BLOCKS``
blocks into the next; in that overlap the two marks are crossfaded, so neither
segment's edge (where its short-time analysis is cut) is heard or read alone, and an
excerpt across a seam reads like any other. A clip shorter than about two segments
is marked in one piece, exactly as :func:`watermark.audio.embed` marks it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from fractions import Fraction

import numpy as np
import numpy.typing as npt

from .. import WatermarkError
from . import _stdm

F32 = npt.NDArray[np.float32]

SEGMENT_BLOCKS = 10
"""Blocks (2.048 s each) marked per segment: about 20 s."""
OVERLAP_BLOCKS = 1
"""Blocks each segment is extended into the next, where the two marks are crossfaded."""


def block_boundary(k: int, sample_rate: int) -> int:
    """The sample (at ``sample_rate``) where block ``k`` of the mark starts, rounded: exact
    whenever 2.048 s is a whole number of samples (16 and 48 kHz; every 5 blocks at 44.1 and
    22.05 kHz), otherwise within half a sample, far below what the detector resolves."""
    block = Fraction(_stdm.BLOCK_FRAMES * _stdm.HOP, _stdm.SR)
    return round(k * block * sample_rate)


def embed_stream(
    pieces: Iterable[npt.ArrayLike],
    sample_rate: int,
    payload: bytes,
    key: bytes | None = None,
    *,
    segment_blocks: int = SEGMENT_BLOCKS,
    overlap_blocks: int = OVERLAP_BLOCKS,
) -> Iterator[F32]:
    """Mark a recording handed over in ``pieces`` (float32 ``(n,)`` or ``(n, channels)``,
    any lengths, all of one shape); yields the marked recording in pieces (other lengths,
    the same total). Errors as :func:`watermark.audio.embed` (a recording shorter than one
    block raises :class:`~watermark.audio.AudioTooShortError` once it has all been read)."""
    from . import DEFAULT_KEY, embed

    chosen = DEFAULT_KEY if key is None else key
    if segment_blocks < 1 or overlap_blocks < 1:
        raise WatermarkError("segments and their overlap must be at least one block")
    # The recording not yet emitted, as the pieces it came in (owned copies): joined only
    # for the stretch a segment needs, not re-joined for every piece (a decoder's 10 s
    # pieces made that a copy of ~50 s of audio per piece, ~15 % of the time).
    held: list[F32] = []
    nheld = 0
    channels: int | None = None
    flat: bool | None = None
    start = 0  # absolute sample index of held[0][0]
    segment = 0
    tail: F32 | None = None  # the previous segment's mark over the overlap, from `start`

    def bound(k: int) -> int:
        return block_boundary(k, sample_rate)

    def mark(x: F32) -> F32:
        out: F32 = embed(x, sample_rate, payload, chosen) - x
        return out

    def first(k: int) -> F32:
        """The first ``k`` held samples as one array."""
        parts, need = [], k
        for part in held:
            if need <= 0:
                break
            parts.append(part[:need])
            need -= len(parts[-1])
        if not parts:
            return np.zeros((0, channels or 1), np.float32)
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def drop(k: int) -> None:
        nonlocal nheld
        nheld -= k
        while k > 0:
            if len(held[0]) <= k:
                k -= len(held.pop(0))
            else:
                held[0] = held[0][k:]
                k = 0

    def emit(x: F32, m: F32, overlap: F32 | None) -> F32:
        # m is this segment's own mark (its part before the overlap into the next one),
        # so the crossfade may write into it
        if overlap is not None:
            n = len(overlap)
            # raised-cosine crossfade: the old mark fades out as the new one fades in
            w = (0.5 - 0.5 * np.cos(np.pi * (np.arange(n) + 0.5) / n)).astype(np.float32)[:, None]
            m[:n] = overlap * (1 - w) + m[:n] * w
        y = x + m
        np.clip(y, -1.0, 1.0, out=y)
        return y[:, 0] if flat else y

    for piece in pieces:
        arr = np.asarray(piece)
        if arr.dtype.kind != "f":
            raise WatermarkError(f"samples must be floating point in [-1, 1], not {arr.dtype}")
        if flat is None:
            flat = arr.ndim == 1
        arr2 = arr[:, None] if arr.ndim == 1 else arr
        if arr2.ndim != 2 or (channels is not None and arr2.shape[1] != channels):
            raise WatermarkError("every piece must have the shape (n,) or (n, channels) of the first")
        channels = arr2.shape[1]
        held.append(np.array(arr2, dtype=np.float32))  # a copy: the caller may reuse its array
        nheld += len(arr2)
        # A segment is marked once the recording is known to go on for at least another
        # whole segment past its overlap, so the last one is never shorter than a segment.
        while True:
            seg_start = bound(segment * segment_blocks)
            core_end = bound((segment + 1) * segment_blocks)
            ext_end = bound((segment + 1) * segment_blocks + overlap_blocks)
            needed = bound((segment + 2) * segment_blocks + overlap_blocks)
            if start + nheld < needed:
                break
            assert seg_start == start
            x = first(ext_end - start)
            m = mark(x)
            keep = core_end - start
            yield emit(x[:keep], m[:keep], tail)
            tail = m[keep:]
            drop(keep)
            start = core_end
            segment += 1
    # the rest (or nothing at all: embed's own "too short" error)
    rest = first(nheld)
    m = mark(rest)
    yield emit(rest, m, tail)
