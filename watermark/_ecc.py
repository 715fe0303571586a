"""Payload coding: keyed check bytes, BCH error correction, and the false-positive maths.

The detector accepts a read-out only if a bounded-distance BCH decode succeeds *and*
the 16-bit keyed check matches, so the probability that noise is accepted can be
computed exactly from the code parameters (see :func:`false_positive_probability`).
"""

from __future__ import annotations

import hashlib
import math
from functools import cache

import bchlib
import numpy as np
import numpy.typing as npt

PAYLOAD_BYTES = 8
CHECK_BYTES = 2
DATA_BYTES = PAYLOAD_BYTES + CHECK_BYTES
BCH_T = 16
BCH_M = 8

_bch = bchlib.BCH(BCH_T, m=BCH_M)
ECC_BITS: int = int(_bch.ecc_bits)
_ECC_BYTES: int = int(_bch.ecc_bytes)
DATA_BITS = DATA_BYTES * 8
# bchlib pads the ECC to whole bytes; the pad bits carry no information, so they are
# not transmitted (every transmitted bit costs image area).
CODE_BITS = DATA_BITS + ECC_BITS
CHECK_BITS = CHECK_BYTES * 8


# Bitstream versions of the image watermark: 1 is the original, 2 the same tile
# layout under other key derivations (see _pattern.key_pattern), so a detector can
# tell which version it read. The audio watermark uses version 1's check.
VERSIONS = (1, 2)


def _check(payload: bytes, key: bytes, version: int = 1) -> bytes:
    # A keyed check rather than a CRC: with a wrong key the check fails even if the
    # read-out happened to be a valid BCH codeword.
    h = hashlib.blake2b(payload, digest_size=CHECK_BYTES, key=key[:64], person=b"wm%d-check" % version)
    return h.digest()


def encode(payload: bytes, key: bytes, version: int = 1) -> npt.NDArray[np.uint8]:
    """Return the CODE_BITS-long 0/1 codeword carrying ``payload``."""
    data = bytearray(payload + _check(payload, key, version))
    ecc = bytes(_bch.encode(data))
    bits = np.unpackbits(np.frombuffer(bytes(data) + ecc, dtype=np.uint8))
    return bits[:CODE_BITS].astype(np.uint8)


def decode(hard_bits: npt.NDArray[np.uint8], key: bytes, version: int = 1) -> tuple[bytes | None, int]:
    """Decode 0/1 bits; return (payload or None, number of corrected bit errors)."""
    padded = np.zeros(DATA_BITS + _ECC_BYTES * 8, dtype=np.uint8)
    padded[:CODE_BITS] = hard_bits[:CODE_BITS]
    raw = np.packbits(padded).tobytes()
    data = bytearray(raw[:DATA_BYTES])
    ecc = bytearray(raw[DATA_BYTES:])
    nerr = int(_bch.decode(data, ecc))
    if nerr < 0 or nerr > BCH_T:
        return None, -1
    _bch.correct(data, ecc)
    # Re-encode and measure the distance ourselves: the decoder may "correct" a bit in
    # the untransmitted pad, which would break the exact false-positive formula.
    payload = bytes(data[:PAYLOAD_BYTES])
    if bytes(data[PAYLOAD_BYTES:]) != _check(payload, key, version):
        return None, -1
    dist = int(np.count_nonzero(encode(payload, key, version) != hard_bits[:CODE_BITS]))
    if dist > BCH_T:
        return None, -1
    return payload, dist


@cache
def _log2_ball(radius: int) -> float:
    return math.log2(sum(math.comb(CODE_BITS, i) for i in range(radius + 1)))


# Chase decoding: when plain decoding fails, also try flipping every subset of the
# CHASE_BITS least reliable bits. It recovers words a few errors beyond t at the price
# of 2^CHASE_BITS decoder calls, which the false-positive bound pays for.
CHASE_BITS = 8


def decode_soft(soft: npt.NDArray[np.float64], key: bytes,
                chase: bool, version: int = 1) -> tuple[bytes | None, int]:
    """Decode soft values (positive = 1); return (payload or None, bit errors
    relative to the hard decisions)."""
    hard = (soft > 0).astype(np.uint8)
    payload, nerr = decode(hard, key, version)
    if payload is not None or not chase:
        return payload, nerr
    weakest = np.argsort(np.abs(soft))[:CHASE_BITS]
    for m in range(1, 1 << CHASE_BITS):
        flips = weakest[[(m >> i) & 1 == 1 for i in range(CHASE_BITS)]]
        trial = hard.copy()
        trial[flips] ^= 1
        payload, _ = decode(trial, key, version)
        if payload is not None:
            dist = int(np.count_nonzero(encode(payload, key, version) != hard))
            return payload, dist
    return None, -1


def false_positive_probability(errors: int, attempts: int) -> float:
    """Probability that ``attempts`` independent uniformly random read-outs yield at
    least one acceptance with at most ``errors`` corrected bits.

    A random word lies within distance e of one of the 2^DATA_BITS codewords with
    probability 2^DATA_BITS * V(n, e) / 2^n = V(n, e) / 2^ECC_BITS (the balls are
    disjoint for e <= t), and the keyed check then matches with probability
    2^-CHECK_BITS; a union bound covers the attempts.
    """
    e = min(max(errors, 0), CODE_BITS)
    # Beyond t only Chase decoding accepts, and each of its 2^CHASE_BITS trial words
    # is a plain bounded-distance decode: the smaller of the two bounds holds.
    log2_region = min(_log2_ball(e), _log2_ball(BCH_T) + CHASE_BITS)
    log2p = log2_region - ECC_BITS - CHECK_BITS + math.log2(max(attempts, 1))
    return float(min(1.0, 2.0**log2p))
