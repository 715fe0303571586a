"""PDQ perceptual fingerprints and a Hamming-distance index over them.

    >>> from PIL import Image, ImageFilter
    >>> from skimage import data
    >>> image = Image.fromarray(data.astronaut())
    >>> blurred = image.filter(ImageFilter.GaussianBlur(2)).resize((200, 200))
    >>> distance(fingerprint(image), fingerprint(blurred)) <= MATCH_DISTANCE
    True
    >>> index = FingerprintIndex()
    >>> index.add([1], [fingerprint(image)])
    >>> [(ref, d <= MATCH_DISTANCE) for ref, d in index.nearest(fingerprint(blurred), 5)]
    [(1, True)]

PDQ (Meta's open perceptual hash, 256 bits) comes from the maintained ``pdqhash``
bindings to the reference C++ code. The index is a packed ``(N, 32)`` byte
matrix searched by FAISS's Hamming scan: a linear scan, but one that runs at
memory speed (about 6 ms of CPU for 1,000,000 fingerprints on one core; see
``benchmarks/results/resolution.txt``), so it needs no tuning, no training and
no second copy of the data in the store.

Besides the frame hash, :func:`window_fingerprint` hashes the blurred centre window of
the picture (stored as ``pdq_window``, schema v7): a copy cut by a few percent on every
edge still holds that window, where the whole frame of a fine texture is lost
(:func:`window_fingerprints` finds it in such a copy).
"""

from __future__ import annotations

import threading

import cv2
import numpy as np
import numpy.typing as npt
import pdqhash
from PIL import Image

__all__ = [
    "ALGORITHM",
    "CROP_GUESSES",
    "HASH_BYTES",
    "MATCH_DISTANCE",
    "MIN_QUALITY",
    "WINDOW_CROPS",
    "WINDOW_INSET",
    "FingerprintIndex",
    "distance",
    "fingerprint",
    "fingerprint_and_quality",
    "score",
    "uncropped_fingerprints",
    "window_fingerprint",
    "window_fingerprints",
    "working_copy",
]

ALGORITHM = "io.github.provenance-py.pdq.1"
"""Soft-binding algorithm name. PDQ is not on the C2PA soft-binding algorithm list,
so the name is namespaced like this library's watermark."""

HASH_BYTES = 32

MATCH_DISTANCE = 64
"""Largest Hamming distance (of 256 bits) treated as a candidate match.

Meta's guidance for PDQ is 31 for near-certain matches; heavy blur plus a 0.4x
downscale plus JPEG 35 moves the hash further than that, so candidates go up to
64 and every fingerprint-only candidate must then pass the likeness check
(``provenance/_internal/likeness.py``). Unrelated images sit around 128; the
benchmark measures how many fall under 64."""

_EDGE = 512  # PDQ works on a 64x64 reduction; a box-filtered 512 px copy keeps it fast for any size


MIN_QUALITY = 50
"""PDQ's own quality score (0-100) below which a hash is too unreliable to search
with (flat or nearly featureless images); Meta's recommended cut-off."""


def fingerprint(image: Image.Image) -> bytes:
    """The 32-byte PDQ hash of ``image`` (as published: after any watermark)."""
    return fingerprint_and_quality(image)[0]


def working_copy(image: Image.Image) -> Image.Image:
    """``image`` reduced as every hash here reduces it first (a no-op on its own result): a
    caller computing several hashes of one large image reduces it once."""
    if max(image.size) <= _EDGE:
        return image
    if image.mode.startswith("I;16"):
        image = image.convert("RGB")  # Pillow cannot reduce these 16-bit modes
    scale = _EDGE / max(image.size)
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image.resize(size, Image.Resampling.BOX, reducing_gap=2.0)


def fingerprint_and_quality(image: Image.Image) -> tuple[bytes, int]:
    """The PDQ hash and its quality (0-100; see :data:`MIN_QUALITY`)."""
    rgb = np.asarray(working_copy(image).convert("RGB"))
    bits, quality = pdqhash.compute(rgb)
    return np.packbits(np.asarray(bits, dtype=np.uint8)).tobytes(), int(quality)


CROP_GUESSES = (0.075,)
"""Fractions of one edge that :func:`uncropped_fingerprints` assumes were cut off.

One guess between 5 and 10% finds about 90% of copies cut by 5 or 10% along one
edge; guessing 5% and 10% separately finds them all but doubles the scan (over
1,000,000 fingerprints, each guess costs ~4 ms of CPU, paid by every query that
matches nothing). See benchmarks/results/resolution.txt."""

_VARIANT_EDGE = 128  # PDQ reduces to 64x64 anyway; a 128 px copy hashes in ~1 ms (17 ms at 512)


def uncropped_fingerprints(image: Image.Image) -> list[bytes]:
    """PDQ hashes of ``image`` as it may have been before a crop off one edge.

    PDQ squeezes the whole frame into 64x64, so cutting 5% off one side shifts
    and stretches everything and moves the hash about as far as an unrelated
    image's (100-128 bits for a 10% cut). For each edge and each of
    :data:`CROP_GUESSES`, the missing strip is put back as a mirror of the
    edge that remains: the picture is then near where it was in the original
    and only the strip differs, which brings the distance back to 10-60 bits on
    the benchmark's photos. Four hashes (one guess); search them with
    :meth:`FingerprintIndex.nearest_any`.
    """
    small = image.convert("RGB")
    scale = _VARIANT_EDGE / max(small.size)
    if scale < 1:
        size = (max(1, round(small.width * scale)), max(1, round(small.height * scale)))
        small = small.resize(size, Image.Resampling.BOX, reducing_gap=2.0)
    rgb = np.asarray(small)
    height, width = rgb.shape[:2]
    hashes = []
    for fraction in CROP_GUESSES:
        grow = fraction / (1 - fraction)
        across, down = min(width - 1, round(width * grow)), min(height - 1, round(height * grow))
        for pad in (
            ((0, 0), (across, 0), (0, 0)),  # the left edge was cut
            ((0, 0), (0, across), (0, 0)),  # the right
            ((down, 0), (0, 0), (0, 0)),  # the top
            ((0, down), (0, 0), (0, 0)),  # the bottom
        ):
            bits, _ = pdqhash.compute(np.ascontiguousarray(np.pad(rgb, pad, mode="reflect")))
            hashes.append(np.packbits(np.asarray(bits, dtype=np.uint8)).tobytes())
    return hashes


WINDOW_INSET = 0.05
"""Fraction of each side left out of the window :func:`window_fingerprint` hashes.

A copy cut by up to this much on each edge still holds the whole window, so a
query can hash exactly the content that was hashed at stamping."""

WINDOW_CROPS = (0.0, 0.01, 0.02, 0.03, 0.04)
"""Cuts per edge that :func:`window_fingerprints` assumes, to find the window in a copy.

A guess 0.5% off (a 1% scale error) costs up to ~34 bits on the benchmark's brick
photo under blur 3.5 + 0.4x + JPEG 35 (the photos: up to 16); 2% steps cost up to 48,
too near :data:`MATCH_DISTANCE`. Random cuts of 0-3% per edge (not the same on each
side) land within 56. See benchmarks/results/resolution.txt."""

_WINDOW_EDGE = 128  # the window is hashed at this size (PDQ reduces to 64x64 anyway)
_WINDOW_BLUR = 0.015
"""Gaussian blur applied before hashing the window, as a fraction of its long edge.

PDQ's 64x64 reduction aliases a fine regular texture (a brick wall's 16 columns)
into its 16x16 low frequencies, where blur, downscaling and JPEG move the bits by
68 of 256 with no crop at all. Blurring first leaves only what those frequencies
really hold: 24 bits for the same attack."""


def window_fingerprint(image: Image.Image) -> bytes:
    """The crop-tolerant fingerprint recorded at stamping: PDQ of the blurred centre window
    (each side inset by :data:`WINDOW_INSET`) of ``image`` as published.

    PDQ of the whole frame cannot find a copy cut by 2% on every edge when the
    picture is a fine texture (the cut changes the scale by 4% and moves the
    hash ~100 bits); this window is still inside such a copy, and
    :func:`window_fingerprints` hashes it there.

        >>> from PIL import ImageFilter
        >>> from skimage import data
        >>> wall = Image.fromarray(data.brick())
        >>> copy = wall.filter(ImageFilter.GaussianBlur(2)).crop((10, 10, 502, 502))
        >>> distance(fingerprint(wall), fingerprint(copy)) > MATCH_DISTANCE
        True
        >>> min(distance(window_fingerprint(wall), h) for h in window_fingerprints(copy)) <= MATCH_DISTANCE
        True
    """
    return _window_hash(_window_work(image), WINDOW_INSET)


def window_fingerprints(image: Image.Image) -> list[bytes]:
    """The window's hash as it would be in ``image`` if ``image`` were a copy cut by each of
    :data:`WINDOW_CROPS` on every edge: one hash per guess, to search with
    :meth:`FingerprintIndex.nearest_any` among :func:`window_fingerprint` hashes."""
    work = _window_work(image)
    return [
        _window_hash(work, inset)
        for inset in ((WINDOW_INSET - cut) / (1 - 2 * cut) for cut in WINDOW_CROPS)
    ]


def _window_work(image: Image.Image) -> Image.Image:
    # Greyscale (PDQ's luminance has the same weights as Pillow's "L"): a third of the work.
    small = working_copy(image)
    if small.mode not in ("L", "RGB"):
        small = small.convert("RGB")  # as fingerprint() reads it (alpha dropped, 16-bit scaled)
    return small.convert("L") if small.mode != "L" else small


def _window_hash(work: Image.Image, inset: float) -> bytes:
    width, height = work.size
    box = (width * inset, height * inset, width * (1 - inset), height * (1 - inset))
    scale = _WINDOW_EDGE / max(box[2] - box[0], box[3] - box[1])
    size = (max(1, round((box[2] - box[0]) * scale)), max(1, round((box[3] - box[1]) * scale)))
    # Fractional box edges: the window is cut where the guess puts it, not at the nearest pixel.
    window = np.asarray(work.resize(size, Image.Resampling.BOX, box=box), dtype=np.float32)
    grey = cv2.GaussianBlur(window, (0, 0), _WINDOW_BLUR * max(size), borderType=cv2.BORDER_REFLECT)
    rgb = np.repeat(np.clip(np.rint(grey), 0, 255).astype(np.uint8)[:, :, None], 3, axis=2)
    bits, _ = pdqhash.compute(rgb)
    return np.packbits(np.asarray(bits, dtype=np.uint8)).tobytes()


def distance(a: bytes, b: bytes) -> int:
    """Hamming distance between two hashes."""
    return int.from_bytes(bytes(x ^ y for x, y in zip(a, b, strict=True)), "big").bit_count()


def score(hamming: int) -> int:
    """0-100 similarity score: 100 identical, 0 at the distance of unrelated images (128)."""
    return max(0, min(100, round(100 * (1 - hamming / 128))))


class FingerprintIndex:
    """Fingerprints in one packed ``(N, 32)`` byte matrix, with an integer reference per row.

    Searched by FAISS's Hamming k-nearest-neighbour scan (``faiss.knn_hamming``,
    Meta's maintained similarity-search library: a popcount loop specialised for
    32-byte codes, about twice as fast per query as numpy's XOR + popcount
    passes and five times for a batch of queries). Thread-safe: rows are
    appended under a lock into spare capacity and a search works on a
    consistent snapshot (the first ``len`` rows, which appends never touch).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._codes: npt.NDArray[np.uint8] = np.zeros((0, HASH_BYTES), dtype=np.uint8)
        self._refs: npt.NDArray[np.int64] = np.zeros(0, dtype=np.int64)
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def add(self, refs: list[int] | npt.NDArray[np.int64], hashes: list[bytes]) -> None:
        """Append fingerprints; ``refs[i]`` is what a search returns for ``hashes[i]``."""
        if len(refs) == 0:
            return
        packed = np.frombuffer(b"".join(hashes), dtype=np.uint8).reshape(-1, HASH_BYTES)
        with self._lock:
            need = self._size + len(refs)
            if need > len(self._refs):
                # Grow geometrically so appending one at a time stays amortised O(1);
                # a search holding the old arrays keeps a consistent snapshot.
                capacity = max(need, 2 * len(self._refs), 1024)
                codes = np.zeros((capacity, HASH_BYTES), dtype=np.uint8)
                refs_grown = np.zeros(capacity, dtype=np.int64)
                codes[: self._size] = self._codes[: self._size]
                refs_grown[: self._size] = self._refs[: self._size]
                self._codes, self._refs = codes, refs_grown
            self._codes[self._size : need] = packed
            self._refs[self._size : need] = np.asarray(refs, dtype=np.int64)
            self._size = need

    def nearest(self, query: bytes, k: int, max_distance: int = MATCH_DISTANCE) -> list[tuple[int, int]]:
        """Up to ``k`` ``(ref, distance)`` pairs within ``max_distance``, closest first."""
        return self.nearest_any([query], k, max_distance)

    def nearest_any(
        self, queries: list[bytes], k: int, max_distance: int = MATCH_DISTANCE
    ) -> list[tuple[int, int]]:
        """As :meth:`nearest`, a row's distance being its smallest to any of ``queries``.

        The ``k`` nearest rows of each query, merged: a row among the ``k``
        closest by its smallest distance is among the ``k`` closest of the
        query that gives it that distance, so nothing is lost by the merge.
        """
        with self._lock:
            size, codes, refs = self._size, self._codes, self._refs
        if size == 0 or k <= 0 or not queries:
            return []
        q = np.frombuffer(b"".join(queries), dtype=np.uint8).reshape(-1, HASH_BYTES)
        distances, rows = _knn_hamming(q, codes[:size], min(k, size))
        best: dict[int, int] = {}
        for row, hamming in zip(rows.ravel().tolist(), distances.ravel().tolist(), strict=True):
            if row >= 0 and hamming <= max_distance and hamming < best.get(row, max_distance + 1):
                best[row] = hamming
        order = sorted(best.items(), key=lambda item: (item[1], item[0]))[:k]
        return [(int(refs[row]), hamming) for row, hamming in order]


def _knn_hamming(
    queries: npt.NDArray[np.uint8], codes: npt.NDArray[np.uint8], k: int
) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.int64]]:
    import faiss

    # One OpenMP thread per search: the service runs one search per request thread
    # already, and more would fight over the cores (and hide the cost of a request
    # from its thread's CPU time).
    with _FAISS_LOCK:
        if faiss.omp_get_max_threads() != 1:
            faiss.omp_set_num_threads(1)
    distances, rows = faiss.knn_hamming(queries, codes, k)
    return distances, rows


_FAISS_LOCK = threading.Lock()
