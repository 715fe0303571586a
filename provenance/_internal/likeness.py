"""Does this image show the same content as the one that was stamped?

A watermark made with the public key can be copied onto any image, so a
watermark alone does not prove that recovered credentials belong to the image
in hand. At stamping time we keep a tiny greyscale reference (long edge
:data:`REFERENCE_EDGE` px, ~10 KB as PNG); at recovery we search for the query
inside it by normalised cross-correlation over a range of scales, which
tolerates re-encoding, resizing and cropping (a crop is a sub-window of the
reference). On the benchmark's 34 pictures (benchmarks/results/likeness.txt) the same
content scores 0.95-1.00 and unrelated pictures 0.47 at the median, with a tail up to
about 0.9 for look-alikes (quarters of one landscape, two grey textures).

A screenshot of a web page, a post with a caption strip or a framed picture holds the
stamped picture *and* things that were never stamped. Given the watermark's
:class:`~watermark.MarkRegion` (where in the image the mark is), the comparison is
also made on that region: shrunk by the region's accuracy it is a crop of the picture
(searched inside the reference as above); grown by it, it holds the whole picture (the
reference is searched inside it, at the few scales the region's size allows).

    >>> from skimage import data
    >>> from PIL import Image
    >>> photo, other = Image.fromarray(data.astronaut()), Image.fromarray(data.coffee())
    >>> ref = reference(photo)
    >>> similarity(ref, photo.resize((300, 300))) > SAME_CONTENT
    True
    >>> similarity(ref, other) < SAME_CONTENT
    True
"""

from __future__ import annotations

import io
from dataclasses import replace

import cv2
import numpy as np
import numpy.typing as npt
from PIL import Image, ImageFilter

import watermark
from watermark import MarkRegion

REFERENCE_EDGE = 128
SAME_CONTENT = 0.9
"""Scores at or above this are treated as the same content. Chosen from
benchmarks/results/likeness.txt (34 pictures, plain attacks and screenshot frames):
genuine matches found by the watermark score 0.95-1.00, copied identifiers 0.46 at
the median with a tail up to 0.93 among look-alike pictures (quarters of one
landscape, two grey textures): at 0.8, 4.8 % of copied cases passed; at 0.9, 0.06 %."""
# A mark region (grown by its accuracy) covering at least this much of the image:
# the image is the picture.
_MOSTLY = 0.6

# Query sizes tried, as a fraction of the reference's long edge: from a 40% crop
# (after any resize) up to the whole frame.
_FRACTIONS = np.geomspace(0.4, 1.0, 20)
_MIN_SIDE = 24

F64 = npt.NDArray[np.float64]


_REDUCE_FIRST_ABOVE = 24_000_000
_EIGHT_BIT = ("RGB", "RGBA", "RGBX", "L", "LA", "CMYK", "YCbCr")


def _grey(image: Image.Image, long_edge: int) -> F64:
    scale = long_edge / max(image.size)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    factor = int(1 / scale / 3.0)
    if image.width * image.height > _REDUCE_FIRST_ABOVE and factor > 1 and image.mode in _EIGHT_BIT:
        # A huge picture is box-reduced before the grey conversion, which would
        # otherwise copy it whole (the same averages, up to rounding).
        image = image.reduce(factor)
    small = image.convert("L") if image.mode != "L" else image
    small = small.resize(size, Image.Resampling.BOX, reducing_gap=3.0)
    # A slight blur makes the match tolerant of the residual scale error
    # between grid steps and of small rotations.
    return np.asarray(small.filter(ImageFilter.GaussianBlur(1.0)), dtype=np.float64)


def reference(image: Image.Image) -> bytes:
    """The reference kept in the store for ``image``."""
    grey = _grey(image, REFERENCE_EDGE).round().clip(0, 255).astype(np.uint8)
    out = io.BytesIO()
    Image.fromarray(grey).save(out, "PNG", optimize=True)
    return out.getvalue()


def similarity(reference_png: bytes, image: Image.Image, region: MarkRegion | None = None) -> float:
    """How well ``image`` matches the reference (0..1): the best normalised
    cross-correlation of the image inside the reference, and with ``region`` (where
    the watermark is, see the module docstring) of the picture the region holds."""
    ref = np.asarray(Image.open(io.BytesIO(reference_png)).convert("L"), dtype=np.float64)
    left, top, right, bottom = region.box if region is not None else (0, 0, *image.size)
    # (The box errs inwards by up to two blocks: a small crop's box can be a third of it.)
    reach = 2 * region.block if region is not None else 0.0
    covered = (right - left + 2 * reach) * (bottom - top + 2 * reach)
    if region is None or covered >= _MOSTLY * image.width * image.height:
        # The image is (mostly) the picture: compare all of it, as a crop of the
        # reference. With the picture inside a page this is not done: shrunk into the
        # reference, a page of text and white space correlates with unrelated
        # pictures up to ~0.75.
        whole = _inside_reference(ref, image)
        if region is None:
            return max(0.0, min(1.0, whole))
    else:
        whole = 0.0
    # The box's edges are rarely more than a block outside the marked picture, and up
    # to two blocks inside it (watermark.MarkRegion).
    shrink, grow = round(region.block), round(region.block * 2)
    best = whole
    inner = (left + shrink, top + shrink, right - shrink, bottom - shrink)
    if inner[2] - inner[0] >= _MIN_SIDE and inner[3] - inner[1] >= _MIN_SIDE:
        best = max(best, _inside_reference(ref, image.crop(inner)))
    outer = (max(0, left - grow), max(0, top - grow),
             min(image.width, right + grow), min(image.height, bottom + grow))
    best = max(best, _reference_inside(ref, image.crop(outer), 2 * (grow + shrink)))
    return max(0.0, min(1.0, best))


def _inside_reference(ref: F64, image: Image.Image) -> float:
    """Best normalised cross-correlation of ``image`` (the whole picture or a crop of
    it, at any size) inside the reference."""

    def score(edge: int) -> float:
        query = _grey(image, edge)
        qh, qw = query.shape
        if qh < _MIN_SIDE or qw < _MIN_SIDE or qh > ref.shape[0] + 1 or qw > ref.shape[1] + 1:
            return 0.0
        return _max_ncc(ref, query[: ref.shape[0], : ref.shape[1]])

    coarse = {round(REFERENCE_EDGE * f): 0.0 for f in _FRACTIONS}
    for edge in coarse:
        coarse[edge] = score(edge)
    best_edge = max(coarse, key=lambda e: coarse[e])
    # Then every whole-pixel size between the grid's neighbours of the best: texture
    # (brick, grass) decorrelates within the grid's 5 % steps.
    step = max(1, round(best_edge * (_FRACTIONS[1] / _FRACTIONS[0] - 1)))
    fine = [score(e) for e in range(best_edge - step + 1, best_edge + step) if e not in coarse]
    return max([coarse[best_edge], *fine])


# Scales tried when the whole reference is searched inside a region: the picture's
# extent along the reference's long axis, as a fraction of the region's, from the
# region minus its slack up to all of it; then finer steps around the best.
_REGION_STEPS = 12
_REGION_FINE = 4


def _reference_inside(ref: F64, region: Image.Image, slack: int) -> float:
    """Best normalised cross-correlation of the whole reference inside ``region``,
    which holds the picture with up to ``slack`` pixels of something else along each
    axis (a border, the page around it)."""
    rh, rw = ref.shape
    extent = region.width if rw >= rh else region.height
    low = max(0.5, 1.0 - slack / max(extent, 1))

    def score(fraction: float) -> float:
        scale = max(rw, rh) / (extent * fraction)
        grey = _grey(region, round(max(region.size) * scale))
        if grey.shape[0] < rh or grey.shape[1] < rw:
            return 0.0
        return _max_ncc(grey, ref)

    grid = np.geomspace(low, 1.0, _REGION_STEPS)
    scores = [score(f) for f in grid]
    i = int(np.argmax(scores))
    ratio = grid[1] / grid[0] if len(grid) > 1 else 1.0
    fine = [score(grid[i] * ratio ** (k / (_REGION_FINE + 1)))
            for k in range(-_REGION_FINE, _REGION_FINE + 1) if k != 0]
    return max([scores[i], *fine])


def _max_ncc(ref: F64, query: F64) -> float:
    """Maximum normalised cross-correlation of ``query`` over every position in ``ref``
    where it fits (OpenCV's TM_CCOEFF_NORMED: both sides centred on their means)."""
    qh, qw = query.shape
    if qh > ref.shape[0] or qw > ref.shape[1] or float(query.std()) < 1e-3:
        return 0.0
    ncc = cv2.matchTemplate(ref.astype(np.float32), query.astype(np.float32), cv2.TM_CCOEFF_NORMED)
    return float(np.nanmax(ncc)) if ncc.size else 0.0


# --- where a picture sits in a screenshot, without the watermark -------------------

_UI_BLOCK = 16  # pixels, at the working size below
_UI_EDGE = 1024  # long edge the search runs at
# A block is page or interface (flat colour, text on a flat background) when at least
# this fraction of its pixels is within _UI_TOLERANCE grey levels of its commonest
# value (JPEG rings around text by a few levels); photographs rarely have such a
# dominant value.
_UI_FLAT = 0.5
_UI_TOLERANCE = 8


def picture_box(image: Image.Image) -> tuple[int, int, int, int] | None:
    """The bounding box (left, top, right, bottom) of the largest picture-like area of
    a screenshot: what is left after flat colour and text on flat backgrounds (a
    browser's bars, margins, paragraphs, a caption strip, a border) are trimmed. None
    when the picture-like area is the whole image (nothing to trim) or absent.

    The watermark's synchronisation can lose the mark of a picture that covers a
    small part of a page full of text and straight lines; looking again inside this
    box finds it."""
    scale = min(1.0, _UI_EDGE / max(image.size))
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    grey = np.asarray(image.convert("L").resize(size, Image.Resampling.BOX), dtype=np.int16)
    nby, nbx = grey.shape[0] // _UI_BLOCK, grey.shape[1] // _UI_BLOCK
    if nby < 3 or nbx < 3:
        return None
    blocks = grey[: nby * _UI_BLOCK, : nbx * _UI_BLOCK].reshape(nby, _UI_BLOCK, nbx, _UI_BLOCK)
    blocks = blocks.transpose(0, 2, 1, 3).reshape(nby, nbx, _UI_BLOCK * _UI_BLOCK)
    # Each block's commonest value, from one histogram of (block, value) pairs.
    index = np.arange(nby * nbx, dtype=np.int64).reshape(nby, nbx, 1) * 256 + blocks
    mode = np.bincount(index.ravel(), minlength=nby * nbx * 256).reshape(nby, nbx, 256).argmax(axis=2)
    near = (np.abs(blocks - mode[..., None]) <= _UI_TOLERANCE).mean(axis=2)
    photo = (near < _UI_FLAT).astype(np.uint8)
    # Close small gaps (a clipped highlight, a flat patch of sky) inside the picture.
    photo = np.asarray(cv2.morphologyEx(photo, cv2.MORPH_CLOSE, np.ones((3, 3), np.uint8)), dtype=np.uint8)
    n, _, stats, _ = cv2.connectedComponentsWithStats(photo, connectivity=4)
    if n < 2:
        return None
    best = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    x, y = int(stats[best, cv2.CC_STAT_LEFT]), int(stats[best, cv2.CC_STAT_TOP])
    w, h = int(stats[best, cv2.CC_STAT_WIDTH]), int(stats[best, cv2.CC_STAT_HEIGHT])
    if w * h >= 0.9 * nbx * nby or w < 4 or h < 4:
        return None
    unit = _UI_BLOCK / scale
    return (round(x * unit), round(y * unit), min(image.width, round((x + w) * unit)),
            min(image.height, round((y + h) * unit)))


def detect_in_picture(image: Image.Image, key: bytes) -> tuple[Image.Image, watermark.Detection] | None:
    """Look for the watermark again inside :func:`picture_box` (for an image in which
    it was not found as a whole): ``image`` and the detection, whose region is in
    ``image``'s coordinates; None if the mark is not found there either."""
    box = picture_box(image)
    if box is None:
        return None
    picture = image.crop(box)
    found = watermark.detect(picture, key, locate=True)
    if not found.detected or found.payload is None or found.region is None:
        return None
    # The box can miss smooth parts of the picture (an out-of-focus background reads
    # as flat): with the mark's geometry known, find all of it in the whole image.
    # (The geometry read from a small crop can be too coarse for that: then the part
    # found in the crop is the region.)
    left, top, right, bottom = found.region.box
    in_crop = replace(found.region, box=(left + box[0], top + box[1], right + box[0], bottom + box[1]))
    whole = watermark.locate(image, found.payload, found.region.tile, found.rotation_deg or 0.0, key)
    if whole is None or _area(whole.box) < _area(in_crop.box):
        whole = in_crop
    return image, replace(found, region=whole)


def _area(box: tuple[int, int, int, int]) -> int:
    return max(0, box[2] - box[0]) * max(0, box[3] - box[1])
