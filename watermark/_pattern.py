"""The keyed tile: a TILE x TILE block of +-1 cells, some carrying a pilot, the rest
the codeword bits, tiled over the working-resolution luminance."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import numpy.typing as npt

from ._ecc import CODE_BITS

TILE = 64
CELL = 2
CELLS_PER_SIDE = TILE // CELL
N_CELLS = CELLS_PER_SIDE * CELLS_PER_SIDE
CELLS_PER_BIT = 4
N_DATA_CELLS = CODE_BITS * CELLS_PER_BIT
N_PILOT_CELLS = N_CELLS - N_DATA_CELLS
assert N_PILOT_CELLS >= 128, "too few pilot cells for reliable synchronisation"
assert TILE & (TILE - 1) == 0, "_sync.fold relies on TILE being a power of two"

F32 = npt.NDArray[np.float32]


@dataclass(frozen=True)
class KeyPattern:
    pilot: F32  # TILE x TILE, +-1 on pilot cells, 0 on data cells
    pilot_cells: npt.NDArray[np.bool_]  # N_CELLS
    cell_sign: npt.NDArray[np.float32]  # N_CELLS, keyed +-1 scrambling
    cell_bit: npt.NDArray[np.intp]  # N_CELLS, codeword bit index (-1 for pilot cells)
    bit_cells: npt.NDArray[np.intp]  # CODE_BITS x CELLS_PER_BIT, the cells of each bit
    bit_signs: npt.NDArray[np.float32]  # ... and their keyed signs


def _upsample(cells: npt.NDArray[np.float32]) -> F32:
    grid = cells.reshape(CELLS_PER_SIDE, CELLS_PER_SIDE)
    return np.repeat(np.repeat(grid, CELL, axis=0), CELL, axis=1).astype(np.float32)


@lru_cache(maxsize=16)
def key_pattern(key: bytes, version: int = 1) -> KeyPattern:
    # Each bitstream version derives its own pilot and cell permutation from the key,
    # so the pilot alone tells a detector which version it is reading.
    seed = hashlib.blake2b(key, digest_size=32, person=b"wm%d-pattern" % version).digest()
    rng = np.random.default_rng(int.from_bytes(seed, "big"))
    order = rng.permutation(N_CELLS)
    sign = rng.choice(np.array([-1.0, 1.0], dtype=np.float32), size=N_CELLS)
    pilot_cells = np.zeros(N_CELLS, dtype=bool)
    pilot_cells[order[:N_PILOT_CELLS]] = True
    cell_bit = np.full(N_CELLS, -1, dtype=np.intp)
    # Consecutive codeword bits land on randomly scattered cells, so a local
    # disturbance (a logo, a clipped highlight) hits many bits a little rather than
    # a few bits a lot, which is what BCH handles best.
    cell_bit[order[N_PILOT_CELLS:]] = np.arange(N_DATA_CELLS) % CODE_BITS
    pilot = _upsample(np.where(pilot_cells, sign, 0.0).astype(np.float32))
    data_cells = order[N_PILOT_CELLS:]
    bit_cells = data_cells[np.argsort(cell_bit[data_cells], kind="stable")].reshape(CODE_BITS, CELLS_PER_BIT)
    return KeyPattern(pilot=pilot, pilot_cells=pilot_cells, cell_sign=sign, cell_bit=cell_bit,
                      bit_cells=bit_cells, bit_signs=sign[bit_cells])


def tile_for(bits: npt.NDArray[np.uint8], key: bytes, version: int = 1) -> F32:
    """The +-1 tile carrying codeword ``bits``."""
    kp = key_pattern(key, version)
    bit_sign = 2.0 * bits.astype(np.float32) - 1.0
    data = kp.cell_sign * bit_sign[np.maximum(kp.cell_bit, 0)]
    cells = np.where(kp.pilot_cells, kp.cell_sign, data).astype(np.float32)
    return _upsample(cells)


def soft_bits(folded: F32, key: bytes, version: int = 1) -> npt.NDArray[np.float64]:
    """Correlate an aligned folded tile with each bit's cells."""
    kp = key_pattern(key, version)
    assert CELL == 2
    # Strided adds: several times faster than a reshape with a two-axis sum.
    cells = (folded[0::2, 0::2] + folded[1::2, 0::2] + folded[0::2, 1::2] + folded[1::2, 1::2]).ravel()
    out: npt.NDArray[np.float64] = (cells[kp.bit_cells] * kp.bit_signs).sum(axis=1, dtype=np.float64)
    return out
