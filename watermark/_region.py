"""Where in the image the mark is: once a payload has decoded, the whole tile is known
(pilot and data cells), so every block of the whitened image can be correlated with
what the mark should look like there. Blocks of a screenshot's browser bar, a caption
strip or a border score like noise; blocks of the marked picture score well above it.

Only called after a successful decode (``detect(..., locate=True)``), so detection of
unmarked images never pays for it.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from . import _ecc, _pattern, _sync
from ._pattern import TILE

F32 = npt.NDArray[np.float32]

# A block is marked when its smoothed correlation z-score (unit variance without a
# mark) reaches this. Marked picture blocks of a JPEG'd screenshot score ~3-15.
BLOCK_MIN_Z = 2.5
MIN_BLOCK = 12  # detector pixels


@dataclass(frozen=True)
class MarkRegion:
    """The part of the image that carries the mark, in input pixels.

    ``box`` is ``(left, top, right, bottom)`` (right and bottom exclusive) around the
    largest connected area of marked blocks, accurate to about ``block`` pixels (it
    errs inwards: its edges are rarely more than a block outside the marked area, and
    up to about two blocks inside it);
    ``tile`` is the tile period in input pixels (the mark's scale: it is
    ``64 / work_scale`` pixels of the image as it was marked, so the ratio of the two
    is how much the marked picture was resized); ``coverage`` is the fraction of the
    box's blocks that carry the mark."""

    box: tuple[int, int, int, int]
    tile: float
    block: float
    coverage: float


def _bins(shape: tuple[int, int], v1: tuple[float, float], v2: tuple[float, float],
          phase: float) -> npt.NDArray[np.int32]:
    """Tile bin (row * TILE + column) of every pixel along the lattice (v1, v2), as
    _sync.Folder computes it (floor(inv @ (x, y) + phase) mod TILE)."""
    h, w = shape
    (ax, ay), (bx, by) = v1, v2
    det = ax * by - bx * ay
    i00, i01, i10, i11 = TILE * by / det, -TILE * bx / det, -TILE * ay / det, TILE * ax / det
    ys = np.arange(h, dtype=np.float64)
    xs = np.arange(w, dtype=np.float64)
    # Row term + column term, floored in place; "& (TILE - 1)" is "mod TILE" for the
    # power of two (and for negative values), several times cheaper than "%".
    u = np.add.outer(i01 * ys + phase, i00 * xs)
    np.floor(u, out=u)
    v = np.add.outer(i11 * ys + phase, i10 * xs)
    np.floor(v, out=v)
    out: npt.NDArray[np.int32] = (v.astype(np.int32) & (TILE - 1)) * TILE
    out |= u.astype(np.int32) & (TILE - 1)
    return out


def locate(w: F32, v1: tuple[float, float], v2: tuple[float, float], phase: float,
           payload: bytes, key: bytes, to_input: tuple[float, float], *, version: int = 1,
           orientation: int = 0) -> MarkRegion | None:
    """The marked region of the whitened detector image ``w`` whose mark (``payload``
    under ``key``, bitstream ``version``) lies on the lattice (v1, v2) in dihedral
    ``orientation`` (see _sync.dihedral); ``to_input`` = input pixels per detector
    pixel along (x, y)."""
    expected_tile = _sync.dihedral(_pattern.tile_for(_ecc.encode(payload, key, version), key, version),
                                   _sync.DIHEDRAL_INVERSE[orientation])
    bins = _bins(w.shape, v1, v2, phase)
    flat = bins.ravel()
    counts = np.bincount(flat, minlength=TILE * TILE)
    folded = (np.bincount(flat, weights=w.ravel(), minlength=TILE * TILE) / np.maximum(counts, 1))
    # The fold's translation relative to the tile (cyclic cross-correlation).
    corr = np.fft.irfft2(np.fft.rfft2(folded.reshape(TILE, TILE)) * np.conj(np.fft.rfft2(expected_tile)),
                         (TILE, TILE))
    dy, dx = divmod(int(np.argmax(corr)), TILE)
    shifted = np.roll(expected_tile, (dy, dx), axis=(0, 1)).ravel()
    signal = (w * shifted[bins]).astype(np.float32)
    # Blocks of half a period: fine enough to place the edges, large enough (~1/4 of
    # a tile's cells) for a usable z-score per block.
    period = float(np.hypot(*v1))
    block = max(MIN_BLOCK, round(period / 2))
    h, wd = w.shape
    nby, nbx = h // block, wd // block
    if nby < 2 or nbx < 2:
        return None
    crop = (slice(0, nby * block), slice(0, nbx * block))

    def block_sums(a: F32) -> npt.NDArray[np.float64]:
        blocks = a[crop].reshape(nby, block, nbx, block)
        out: npt.NDArray[np.float64] = blocks.sum(axis=(1, 3), dtype=np.float64)
        return out

    s = block_sums(signal)
    e = block_sums(w * w)
    # 3x3 neighbourhoods: the sum of nine unit-variance block scores over sqrt(9).
    num = cv2.boxFilter(s, -1, (3, 3), normalize=False, borderType=cv2.BORDER_CONSTANT)
    den = cv2.boxFilter(e, -1, (3, 3), normalize=False, borderType=cv2.BORDER_CONSTANT)
    z = num / np.sqrt(np.maximum(den, 1e-9))
    marked = (z >= BLOCK_MIN_Z).astype(np.uint8)
    # A 3x3 neighbourhood reaches one block past the marked area (the page around a
    # screenshot's picture scores from its marked neighbours): eroding by one block
    # takes that back, and drops small specks of chance correlation in text. Outside
    # the image counts as unmarked, or a border as wide as a block would survive.
    core: npt.NDArray[np.uint8] = np.asarray(
        cv2.erode(marked, np.ones((3, 3), np.uint8), borderType=cv2.BORDER_CONSTANT, borderValue=0),
        dtype=np.uint8)
    if core.any():
        marked = core
    n, labels, stats, _ = cv2.connectedComponentsWithStats(marked, connectivity=8)
    if n < 2:
        return None
    best = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    bx0, by0 = int(stats[best, cv2.CC_STAT_LEFT]), int(stats[best, cv2.CC_STAT_TOP])
    bx1 = bx0 + int(stats[best, cv2.CC_STAT_WIDTH])
    by1 = by0 + int(stats[best, cv2.CC_STAT_HEIGHT])
    # Whitened text is not white noise, so a page's headline or toolbar can score a
    # few chance blocks that touch the picture's: trim edge rows and columns that
    # are mostly unmarked (a picture is a rectangle; a protrusion is not).
    part = labels == best
    while bx1 - bx0 > 2 and by1 - by0 > 2:
        edges = {
            "top": part[by0, bx0:bx1].mean(), "bottom": part[by1 - 1, bx0:bx1].mean(),
            "left": part[by0:by1, bx0].mean(), "right": part[by0:by1, bx1 - 1].mean(),
        }
        side = min(edges, key=lambda k: edges[k])
        if edges[side] >= 0.5:
            break
        if side == "top":
            by0 += 1
        elif side == "bottom":
            by1 -= 1
        elif side == "left":
            bx0 += 1
        else:
            bx1 -= 1
    inside = part[by0:by1, bx0:bx1]
    bw, bh = bx1 - bx0, by1 - by0
    sx, sy = to_input
    box = (
        round(bx0 * block * sx),
        round(by0 * block * sy),
        round(min((bx0 + bw) * block, wd) * sx),
        round(min((by0 + bh) * block, h) * sy),
    )
    return MarkRegion(box, period * sx, block * sx, float(inside.mean()))
