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
bindings to the reference C++ code. The index is a packed ``(N, 4)`` uint64
matrix searched by XOR and popcount: a linear scan, but one that numpy runs at
memory speed (tens of milliseconds for 1,000,000 fingerprints on one core; see
``benchmarks/results/resolution.txt``), so it needs no tuning, no training and
no second copy of the data in the store.
"""

from __future__ import annotations

import threading

import numpy as np
import numpy.typing as npt
import pdqhash
from PIL import Image

__all__ = [
    "ALGORITHM",
    "HASH_BYTES",
    "MATCH_DISTANCE",
    "MIN_QUALITY",
    "FingerprintIndex",
    "distance",
    "fingerprint",
    "fingerprint_and_quality",
    "score",
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


def fingerprint_and_quality(image: Image.Image) -> tuple[bytes, int]:
    """The PDQ hash and its quality (0-100; see :data:`MIN_QUALITY`)."""
    small = image
    if max(image.size) > _EDGE:
        scale = _EDGE / max(image.size)
        size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        small = image.resize(size, Image.Resampling.BOX, reducing_gap=2.0)
    rgb = np.asarray(small.convert("RGB"))
    bits, quality = pdqhash.compute(rgb)
    return np.packbits(np.asarray(bits, dtype=np.uint8)).tobytes(), int(quality)


def distance(a: bytes, b: bytes) -> int:
    """Hamming distance between two hashes."""
    return int.from_bytes(bytes(x ^ y for x, y in zip(a, b, strict=True)), "big").bit_count()


def score(hamming: int) -> int:
    """0-100 similarity score: 100 identical, 0 at the distance of unrelated images (128)."""
    return max(0, min(100, round(100 * (1 - hamming / 128))))


class FingerprintIndex:
    """Fingerprints in one packed matrix, with an integer reference per row.

    The matrix is column-major (four contiguous arrays of 64-bit words): each
    XOR + popcount pass streams one array, about three times faster than
    row-major rows of four words. Thread-safe: rows are appended under a lock
    and a search works on a consistent snapshot.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._words: npt.NDArray[np.uint64] = np.zeros((4, 0), dtype=np.uint64)
        self._refs: npt.NDArray[np.int64] = np.zeros(0, dtype=np.int64)
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def add(self, refs: list[int] | npt.NDArray[np.int64], hashes: list[bytes]) -> None:
        """Append fingerprints; ``refs[i]`` is what a search returns for ``hashes[i]``."""
        if len(refs) == 0:
            return
        packed = np.frombuffer(b"".join(hashes), dtype=">u8").astype(np.uint64).reshape(-1, 4).T
        with self._lock:
            need = self._size + len(refs)
            if need > len(self._refs):
                # Grow geometrically so appending one at a time stays amortised O(1);
                # a search holding the old arrays keeps a consistent snapshot.
                capacity = max(need, 2 * len(self._refs), 1024)
                words = np.zeros((4, capacity), dtype=np.uint64)
                refs_grown = np.zeros(capacity, dtype=np.int64)
                words[:, : self._size] = self._words[:, : self._size]
                refs_grown[: self._size] = self._refs[: self._size]
                self._words, self._refs = words, refs_grown
            self._words[:, self._size : need] = packed
            self._refs[self._size : need] = np.asarray(refs, dtype=np.int64)
            self._size = need

    def nearest(self, query: bytes, k: int, max_distance: int = MATCH_DISTANCE) -> list[tuple[int, int]]:
        """Up to ``k`` ``(ref, distance)`` pairs within ``max_distance``, closest first."""
        with self._lock:
            size, words, refs = self._size, self._words, self._refs
        if size == 0 or k <= 0:
            return []
        q = np.frombuffer(query, dtype=">u8").astype(np.uint64)
        distances = np.bitwise_count(words[0, :size] ^ q[0]).astype(np.uint16)
        for column in range(1, 4):
            distances += np.bitwise_count(words[column, :size] ^ q[column])
        candidates = np.flatnonzero(distances <= max_distance)
        if len(candidates) > k:
            candidates = candidates[np.argpartition(distances[candidates], k - 1)[:k]]
        ordered = candidates[np.argsort(distances[candidates], kind="stable")]
        return [(int(refs[i]), int(distances[i])) for i in ordered]
