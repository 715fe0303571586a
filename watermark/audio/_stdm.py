"""Slot-structured STDM on log tile energies (the audio algorithm; see watermark/AUDIO.md).

Everything here works on a 16 kHz mono float64 signal; ``watermark.audio`` handles
channels, other rates and input checking.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from functools import lru_cache

import cv2
import numpy as np
import numpy.typing as npt

from .. import _ecc

F64 = npt.NDArray[np.float64]
F32 = npt.NDArray[np.float32]

SR = 16000
N = 512  # STFT frame (32 ms)
HOP = 256
# Sub-hop phases tried by the detector, HOP / PHASES = 16 samples apart: the tile
# energies must be read within a few samples of the embedding's frame grid (a 16-sample
# misalignment halves the sync score on speech; 32 samples lose it).
PHASES = 16
FINE_HOP = HOP // PHASES
BIN0 = 6  # 187.5 Hz
BAND_BINS = 4  # a tile is 4 bins (125 Hz) x 1 frame
NBANDS = 36  # up to bin 150 = 4.69 kHz: survives resampling to 16 kHz, low-pass 5 kHz, Opus
BIN1 = BIN0 + BAND_BINS * NBANDS
LOCAL = 4  # tiles are measured against the mean of +-4 neighbouring bands (EQ, volume)
SLOT_FRAMES = 4  # a slot (64 ms) holds CLASSES_PER_SLOT whole classes
CLASSES_PER_SLOT = 8
NCLASSES = 256
NSLOTS = NCLASSES // CLASSES_PER_SLOT
BLOCK_FRAMES = SLOT_FRAMES * NSLOTS  # 128 frames = 2.05 s, repeated over the clip
SLOT_TILES = SLOT_FRAMES * NBANDS
TILES_PER_CLASS = SLOT_TILES // CLASSES_PER_SLOT
NCODE = _ecc.CODE_BITS
NPILOT = NCLASSES - NCODE
#: Quantiser step in log-power units (nats). 0.22 with minimum-norm embedding; the
#: energy-aware allocation lowered the distortion enough to afford 0.45, the wide
#: weight ramp (iteration 4, TILE_LO / TILE_RAMP) 0.55.
DELTA = 0.55
PASSES = 3
# Tile weight: a ramp from TILE_LO nats below the frame's mean power, TILE_RAMP nats wide
# (iteration 4; was 3 and 2). A wide ramp is a weight that moves little when an attack
# moves a tile's level (codec noise, Opus' band smoothing): weight changes were a third
# or more of the projection error under every attack (AUDIO.md, iteration 4).
TILE_LO = 8.0
TILE_RAMP = 12.0
# Frame weight: a ramp from FRAME_REL_LO to FRAME_REL_LO - 1 (units of 10 dB) below the
# clip's loud frames (its 90th percentile of frame power).
FRAME_REL_LO = 4.5
# Per-tile energy factors of the allocation are clipped to e^+-2 relative to the
# class's weighted mean, so a quiet tile never takes an arbitrarily large change.
ENERGY_CLIP = 2.0
#: Sync hypotheses: sub-hop phase x frame offset within a block.
HYPOTHESES = PHASES * BLOCK_FRAMES
#: Smallest clip that holds one whole block (embed refuses shorter ones).
MIN_SAMPLES = (BLOCK_FRAMES - 1) * HOP + N

_WIN = np.sqrt(np.hanning(N + 1)[:N])
_WIN32 = _WIN.astype(np.float32)
_POWER_SCALE = 2.0 / N  # |X|^2 * this ~ mean-square of the signal for white noise


@dataclass(frozen=True)
class Layout:
    """Keyed structure of one block."""

    slot_classes: npt.NDArray[np.int64]  # (NSLOTS, CLASSES_PER_SLOT) class ids
    tile_class: npt.NDArray[np.int64]  # (NSLOTS, SLOT_TILES) index 0..7 into slot_classes
    sign: F64  # (NSLOTS, SLOT_TILES) +-1
    template: F64  # (SLOT_TILES, NCLASSES) signed membership, column s*8+k
    membership: F64  # abs(template)
    offset0: F64  # (NCLASSES,) lattice offset of bit 0 / pilot value, in units of DELTA
    column_class: npt.NDArray[np.int64]  # (NCLASSES,) class id of column s*8+k
    template32: npt.NDArray[np.float32]
    membership32: npt.NDArray[np.float32]


def _rng(key: bytes, tag: bytes) -> np.random.Generator:
    seed = hashlib.blake2b(tag, key=key[:64], digest_size=16, person=b"wm-audio-1").digest()
    return np.random.default_rng(int.from_bytes(seed, "little"))


@lru_cache(maxsize=16)
def layout(key: bytes) -> Layout:
    r = _rng(key, b"layout")
    slot_classes = r.permutation(NCLASSES).reshape(NSLOTS, CLASSES_PER_SLOT)
    tile_class = np.stack([r.permutation(np.repeat(np.arange(CLASSES_PER_SLOT), TILES_PER_CLASS))
                           for _ in range(NSLOTS)])
    # Balanced signs inside every class: a common gain change cancels exactly.
    sign = np.empty((NSLOTS, SLOT_TILES))
    for s in range(NSLOTS):
        for k in range(CLASSES_PER_SLOT):
            idx = np.flatnonzero(tile_class[s] == k)
            sign[s, idx] = r.permutation(np.repeat([-1.0, 1.0], TILES_PER_CLASS // 2))
    template = np.zeros((SLOT_TILES, NCLASSES))
    for s in range(NSLOTS):
        template[np.arange(SLOT_TILES), s * CLASSES_PER_SLOT + tile_class[s]] = sign[s]
    dither = r.uniform(0.0, 1.0, NCLASSES)
    pilot_bits = r.integers(0, 2, NPILOT)
    offset0 = dither.copy()
    offset0[NCODE:] += 0.5 * pilot_bits
    lay = Layout(slot_classes, tile_class, sign, template, np.abs(template), offset0,
                 slot_classes.reshape(-1), template.astype(np.float32),
                 np.abs(template).astype(np.float32))
    for a in (lay.slot_classes, lay.tile_class, lay.sign, lay.template, lay.membership,
              lay.offset0, lay.column_class, lay.template32, lay.membership32):
        a.setflags(write=False)
    return lay


def stft(x: F64, hop: int = HOP) -> npt.NDArray[np.complex128]:
    if len(x) < N:
        return np.zeros((0, N // 2 + 1), np.complex128)
    frames = np.lib.stride_tricks.sliding_window_view(x, N)[::hop]
    out: npt.NDArray[np.complex128] = np.fft.rfft(frames * _WIN, axis=1)
    return out


def _overlap_add(frames: F64, n: int) -> F64:
    t = frames.shape[0]
    # 50 % overlap: every HOP block is the first half of its frame plus the second
    # half of the previous one (one vectorised add, the same sums as frame by frame)
    out = np.zeros(max(n, (t + 1) * HOP))
    out[:t * HOP].reshape(t, HOP)[...] = frames[:, :HOP]
    tail = out[HOP:(t + 1) * HOP].reshape(t, HOP)
    tail += frames[:, HOP:]
    return out[:n]


# The embedder's STFT in OpenCV's packed real layout (per row Re0, Re1, Im1, Re2, Im2,
# ...: bin k at columns 2k - 1 and 2k), float64: the tiles' bins are one contiguous
# run of columns, the change spectrum is real arithmetic on that run only, and
# OpenCV's transforms (forward and inverse) are faster than numpy's rfft / irfft
# here. Same transform to ~1e-15 relative.
_BAND_COLS = slice(2 * BIN0 - 1, 2 * BIN1 - 1)
_BAND_MEAN = np.repeat(np.eye(NBANDS), 2 * BAND_BINS, axis=0) / BAND_BINS


class _PackedWork:
    """Two frame buffers of the embedder's packed STFT / ISTFT, reused over its passes:
    fresh multi-megabyte arrays in every pass meant page faults on every use (the
    windowed frames' buffer is also the inverse's input, the spectrum's its output)."""

    def __init__(self, frames: int) -> None:
        self.frames = np.empty((frames, N))
        self.spec = np.empty((frames, N))


def _packed_stft(x: F64, work: _PackedWork) -> F64:
    np.multiply(np.lib.stride_tricks.sliding_window_view(x, N)[::HOP], _WIN, out=work.frames)
    cv2.dft(work.frames, dst=work.spec, flags=cv2.DFT_ROWS)
    return work.spec


def _packed_istft(band: F64, n: int, work: _PackedWork) -> F64:
    """The signal of a packed spectrum that is zero outside the tiles' columns (the
    spectrum of the last _packed_stft is overwritten)."""
    packed = work.frames
    packed[:, :_BAND_COLS.start] = 0.0
    packed[:, _BAND_COLS] = band
    packed[:, _BAND_COLS.stop:] = 0.0
    cv2.idft(packed, dst=work.spec, flags=cv2.DFT_ROWS | cv2.DFT_SCALE | cv2.DFT_REAL_OUTPUT)
    work.spec *= _WIN
    return _overlap_add(work.spec, n)


def tile_log_power(spec: npt.NDArray[np.complex128]) -> F64:
    p = (np.abs(spec[:, BIN0:BIN1]) ** 2).reshape(len(spec), NBANDS, BAND_BINS).mean(-1)
    out: F64 = np.log(p * _POWER_SCALE + 1e-13)
    return out


def relative(lp: F64) -> F64:
    """Tile log power minus the mean of its +-LOCAL neighbouring bands."""
    c = np.concatenate([np.zeros((len(lp), 1)), np.cumsum(lp, axis=1)], axis=1)
    b = np.arange(NBANDS)
    lo = np.maximum(b - LOCAL, 0)
    hi = np.minimum(b + LOCAL + 1, NBANDS)
    mean = (c[:, hi] - c[:, lo]) / (hi - lo)
    out: F64 = lp - mean
    return out


def weights(lp: F64) -> F64:
    """Which tiles carry the mark: loud tiles of frames that are not (near) silent.
    Smooth ramps so that an attack moves a weight a little, not across a cliff."""
    frame = np.log(np.mean(np.exp(lp), axis=1))
    # Relative to the frame's mean power (set by its loud tiles), not to its median
    # tile: added noise and codecs fill the quiet tiles and move the median, which
    # moved every weight (host interference); this roughly doubled the sync score
    # under MP3/AAC in a 4-clip comparison.
    tile = np.clip((lp - frame[:, None] + TILE_LO) / TILE_RAMP, 0.0, 1.0)
    ln10 = math.log(10.0)
    ref = _quantile90(frame)
    rel = np.clip((frame - ref + FRAME_REL_LO * ln10) / ln10, 0.0, 1.0)  # -45..-35 dB below the loud frames
    absolute = np.clip((frame + 7.5 * ln10) / ln10, 0.0, 1.0)  # -75..-65 dBFS
    out: F64 = tile * (rel * absolute)[:, None]
    return out


def _windows(a: F64, start: int) -> F64:
    """(windows, SLOT_TILES) views of whole slots starting at frame ``start``."""
    nwin = (len(a) - start) // SLOT_FRAMES
    if nwin <= 0:
        return np.zeros((0, SLOT_TILES))
    return a[start:start + nwin * SLOT_FRAMES].reshape(nwin, SLOT_TILES)


def embed16(m: F64, bits: npt.NDArray[np.uint8], key: bytes, delta: float | None = None) -> F64:
    """The watermark signal (to be added to ``m``) carrying the codeword ``bits``."""
    delta = DELTA if delta is None else delta
    lay = layout(key)
    target = lay.offset0.copy()
    target[:NCODE] += 0.5 * bits
    target_col = target[lay.column_class]
    cur = m.copy()
    n = len(m)
    # the slot structure of the clip's windows, the same in every pass
    nwin = (len(range(0, n - N + 1, HOP)) if n >= N else 0) // SLOT_FRAMES
    if nwin == 0:
        return np.zeros_like(m)
    slot = np.arange(nwin) % NSLOTS
    sign = lay.sign[slot]  # (nwin, SLOT_TILES)
    cls = lay.tile_class[slot]
    rows = np.repeat(np.arange(nwin), SLOT_TILES)
    flat = rows * CLASSES_PER_SLOT + cls.ravel()
    off = target_col.reshape(NSLOTS, CLASSES_PER_SLOT)[slot].ravel()
    work = _PackedWork(len(range(0, n - N + 1, HOP)))
    for _ in range(PASSES):
        band = _packed_stft(cur, work)[:, _BAND_COLS]
        # tile_log_power(): mean |X|^2 of each tile's 4 bins, i.e. the sum of the 8
        # squares (re, im) / 4, as one product
        lp: F64 = np.log(np.square(band) @ _BAND_MEAN * _POWER_SCALE + 1e-13)
        d = relative(lp)
        w = weights(lp)
        wv = _windows(w, 0)
        dv = _windows(d, 0)
        # per (window, class k): weighted projection and its quantisation
        sw = np.bincount(flat, wv.ravel(), nwin * CLASSES_PER_SLOT)
        proj = np.bincount(flat, (wv * sign * dv).ravel(), nwin * CLASSES_PER_SLOT)
        p = proj / np.maximum(sw, 1e-12) / delta
        q = np.round(p - off) + off
        # Energy-aware allocation: the projection only fixes sum(w s c), so the log
        # change c of each tile may be distributed freely. The minimum-norm choice
        # (c ~ w) spends most of the signal energy of the change on the class's loud
        # tiles; c ~ w / E (E = tile power relative to the class's weighted mean,
        # clipped to e^+-ENERGY_CLIP) minimises the energy of the change instead. The
        # detector reads the same projection, so robustness per Delta is unchanged
        # while the SNR rose by ~8 dB, which bought a larger Delta (see AUDIO.md).
        lpv = _windows(lp, 0)
        mean_lp = (np.bincount(flat, (wv * lpv).ravel(), nwin * CLASSES_PER_SLOT)
                   / np.maximum(sw, 1e-12))
        rel_e = np.clip(lpv - mean_lp[flat].reshape(nwin, SLOT_TILES), -ENERGY_CLIP, ENERGY_CLIP)
        f = np.exp(-rel_e)
        swf2 = np.bincount(flat, (wv ** 2 * f).ravel(), nwin * CLASSES_PER_SLOT)
        gain = np.where(swf2 > 1e-12, (q - p) * delta * sw / np.maximum(swf2, 1e-12), 0.0)
        change = np.zeros_like(lp)
        change[:nwin * SLOT_FRAMES] = (gain[flat].reshape(nwin, SLOT_TILES) * sign * wv * f
                                       ).reshape(nwin * SLOT_FRAMES, NBANDS)
        # log power change c -> amplitude factor exp(c / 2) on the tile's bins (re and
        # im alike; only the tiles' bins change, the others stay exactly 0)
        factor = np.exp(change / 2.0) - 1.0
        cur += _packed_istft(band * np.repeat(factor, 2 * BAND_BINS, axis=1), n, work)
    out: F64 = cur - m
    return out


@dataclass(frozen=True)
class Readout:
    z: float
    phase: int
    start: int
    shift: int
    soft: F64  # NCODE soft values, positive = 1


def _scores(d: F64, w: F64, lay: Layout, delta: float) -> tuple[F64, F64, F64]:
    """Per (window, column): amplitude a, the sync cosine (pilots: known value,
    cos(2 pi .); code bits: either half of the lattice, cos(4 pi .)) and the decode
    cosine cos(2 pi .) (positive = bit 0)."""
    # float32 products: half the time of float64, and far more precise than the noise
    num = ((w * d).astype(np.float32) @ lay.template32).astype(np.float64)
    den = (w.astype(np.float32) @ lay.membership32).astype(np.float64)
    p = num / np.maximum(den, 1e-9) / delta - lay.offset0[lay.column_class]
    p -= np.rint(p)  # same cosines; large arguments take numpy's slow path
    a = np.sqrt(den)
    dec = np.cos(2 * np.pi * p)
    sync = dec.copy()
    code = lay.column_class < NCODE
    sync[:, code] = 2.0 * dec[:, code] ** 2 - 1.0  # cos(4 pi p)
    return a, sync, dec


_CLASS_SUM = np.repeat(np.eye(NSLOTS, dtype=np.float32), CLASSES_PER_SLOT, axis=0)
_BAND_SUM = np.repeat(np.eye(NBANDS, dtype=np.float32), 2 * BAND_BINS, axis=0) / BAND_BINS


def _local_mean_matrix() -> F64:
    b = np.arange(NBANDS)
    lo = np.maximum(b - LOCAL, 0)
    hi = np.minimum(b + LOCAL + 1, NBANDS)
    a = ((b[:, None] >= lo[None, :]) & (b[:, None] < hi[None, :])) / (hi - lo)[None, :]
    return np.asarray(a, dtype=np.float64)


_LOCAL_MEAN = _local_mean_matrix()  # relative(lp) == lp - lp @ _LOCAL_MEAN


# Frames per step of the fine STFT: the windowed frames, their spectra and the band
# powers of one step stay in the cache (the whole clip at once was ~1.7x slower).
_FINE_CHUNK = 512


def _fine_tile_power(x: F64) -> F32:
    """``exp(tile_log_power(stft(x, FINE_HOP)))`` for the detector's 16 sub-hop phases
    (the tiles' mean power + 1e-13), in float32: OpenCV's real DFT (about 7x numpy's
    float64 rfft here) and only the bins the tiles use. Power agrees to ~1e-6
    relative, far below any attack."""
    if len(x) < N:
        return np.ones((0, NBANDS), np.float32)
    frames = np.lib.stride_tricks.sliding_window_view(x.astype(np.float32), N)[::FINE_HOP]
    n = len(frames)
    p = np.empty((n, NBANDS), np.float32)
    windowed = np.empty((min(n, _FINE_CHUNK), N), np.float32)
    spectra = np.empty_like(windowed)
    squares = np.empty((len(windowed), 2 * (BIN1 - BIN0)), np.float32)
    for i in range(0, n, _FINE_CHUNK):
        k = min(_FINE_CHUNK, n - i)
        np.multiply(frames[i:i + k], _WIN32, out=windowed[:k])
        spec = cv2.dft(windowed[:k], dst=spectra[:k], flags=cv2.DFT_ROWS)
        # CCS layout of each row: Re0, Re1, Im1, Re2, Im2, ...: bin k at 2k-1 and 2k,
        # so the tiles' bins are one contiguous run; squares summed per band by a product
        np.square(spec[:, 2 * BIN0 - 1:2 * BIN1 - 1], out=squares[:k])
        np.matmul(squares[:k], _BAND_SUM, out=p[i:i + k])
    p *= np.float32(_POWER_SCALE)
    p += np.float32(1e-13)
    return p


def _frame_stats(power: F32) -> tuple[F64, F64, F64]:
    """relative(), weights() without the per-phase reference, and the frame powers,
    for all fine frames at once (each depends on its own frame only), from
    _fine_tile_power."""
    lp_all = np.log(power).astype(np.float64)
    d = lp_all - lp_all @ _LOCAL_MEAN
    # weights()' frame power log(mean(exp(lp))) from the tile powers themselves: the
    # float64 exp of 360,000 log powers was ~5 % of a detection (the two differ by
    # float32 rounding, ~1e-7 relative)
    frame = np.log(power.astype(np.float64) @ np.full(NBANDS, 1.0 / NBANDS))
    tile = lp_all - frame[:, None]
    tile += TILE_LO
    tile /= TILE_RAMP
    np.clip(tile, 0.0, 1.0, out=tile)
    absolute = np.clip((frame + 7.5 * math.log(10.0)) / math.log(10.0), 0.0, 1.0)
    tile *= absolute[:, None]
    return d, tile, frame


def _quantile90(frame: F64) -> float:
    """``np.quantile(frame, 0.9)`` (method "linear"), bit for bit, without its generic
    machinery (16 calls of it were ~4 % of a detection)."""
    n = len(frame)
    if n == 0:
        return 0.0
    if not np.isfinite(frame).all():
        return float(np.quantile(frame, 0.9))
    virtual = (n - 1) * 0.9
    lo = math.floor(virtual)
    if virtual >= n - 1:
        return float(np.max(frame))
    part = np.partition(frame, (lo, lo + 1))
    a, b = float(part[lo]), float(part[lo + 1])
    gamma = virtual - lo
    # numpy's _lerp: from the nearer end, so gamma 1 gives b exactly
    return b - (b - a) * (1.0 - gamma) if gamma >= 0.5 else a + (b - a) * gamma


def _phase_weights(wpart: F64, frame: F64) -> F64:
    """weights() of one phase's frames from the per-frame parts of _frame_stats."""
    ln10 = math.log(10.0)
    ref = _quantile90(frame)
    rel = np.clip((frame - ref + FRAME_REL_LO * ln10) / ln10, 0.0, 1.0)
    out: F64 = wpart * rel[:, None]
    return out


@lru_cache(maxsize=16)
def _search_constants(key: bytes, delta: float) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """The sync search's template (the fold of code columns and 1 / delta applied) and
    the folded lattice offsets, in float32, per (key, delta)."""
    lay = layout(key)
    # sync cosine: pilots at their known value cos(2 pi p), code bits either half of
    # the lattice cos(4 pi p) = cos(2 pi (2 p)): the factor 2 and 1 / delta are folded
    # into the template and the offsets, so p is reduced to [-1/2, 1/2] once
    fold = np.where(lay.column_class < NCODE, 2.0, 1.0)
    tm = lay.template32 * (fold / delta).astype(np.float32)
    off = (lay.offset0[lay.column_class] * fold).astype(np.float32)
    tm.setflags(write=False)
    off.setflags(write=False)
    return tm, off


class _SyncWork:
    """Buffers of _sync_rows, allocated once per search: fresh arrays of this size for
    each of the 64 (phase, start) pairs cost about a third more time (page faults)."""

    def __init__(self, rows: int) -> None:
        self.p = np.empty((rows, NCLASSES), np.float32)
        self.den = np.empty_like(self.p)
        self.a = np.empty_like(self.p)
        self.sums = np.empty((rows, NSLOTS), np.float32)


def _sync_rows(wdv: F32, wv: F32, tm: F32, membership: F32, off: F32, work: _SyncWork,
               out: F64) -> None:
    """Per window (row): sum over each slot type's 8 classes of a cos(2 pi p), into
    ``out`` (windows, NSLOTS)."""
    k = len(wdv)
    p = np.matmul(wdv, tm, out=work.p[:k])
    den = np.matmul(wv, membership, out=work.den[:k])
    a = np.sqrt(den, out=work.a[:k])
    np.maximum(den, np.float32(1e-9), out=den)
    p /= den
    p -= off
    p -= np.rint(p, out=den)  # cos is periodic: small arguments keep float32 exact enough
    p *= np.float32(2 * np.pi)
    np.cos(p, out=p)
    p *= a
    # per (window, slot type): sums over the slot's 8 classes, as a product with a
    # 0/1 matrix (BLAS is much faster than a reduction over a length-8 axis)
    out[...] = np.matmul(p, _CLASS_SUM, out=work.sums[:k])


def read(m: F64, key: bytes, delta: float | None = None, top: int = 3) -> list[Readout]:
    """The ``top`` best-synchronised hypotheses (phase, slot start, slot shift)."""
    delta = DELTA if delta is None else delta
    lay = layout(key)
    power = _fine_tile_power(m)
    cands: list[Readout] = []
    nfr = len(power)
    if nfr == 0:
        return cands
    # Everything per frame is computed once for all 16 phases (a phase is every 16th
    # fine frame); only weights()' reference (a quantile over the phase's frames)
    # differs between phases. Then the windows of all 64 (phase, start) pairs go
    # through a pair of matrix products and float32 cosines each: the same scores as
    # scoring each pair in float64 (to float32 rounding), several times faster.
    d_all, wpart_all, frame_all = _frame_stats(power)
    ln10 = math.log(10.0)
    ref = np.array([_quantile90(frame_all[ph::PHASES]) for ph in range(min(PHASES, nfr))])
    rel = np.clip((frame_all - np.resize(ref, nfr) + FRAME_REL_LO * ln10) / ln10, 0.0, 1.0)
    w_all = wpart_all * rel[:, None]
    tm, off = _search_constants(key, float(delta))
    w32 = w_all.astype(np.float32)
    wd32 = w32 * d_all.astype(np.float32)
    groups: list[tuple[int, int, int, int]] = []  # (phase, start, first row, windows)
    row = 0
    for ph in range(PHASES):
        nph = len(range(ph, nfr, PHASES))
        for start in range(SLOT_FRAMES):
            nwin = (nph - start) // SLOT_FRAMES
            if nwin > 0:
                groups.append((ph, start, row, nwin))
                row += nwin
    if not groups:
        return cands
    sn_all = np.empty((row, NSLOTS))
    wsum = np.empty(row)
    work = _SyncWork(max(g[3] for g in groups))
    for ph in range(PHASES):
        # one phase's frames made contiguous once: a (phase, start) pair's windows are
        # then a view, and its products and cosines stay in the cache
        wph = np.ascontiguousarray(w32[ph::PHASES])
        wdph = np.ascontiguousarray(wd32[ph::PHASES])
        for g_ph, start, r0, nwin in groups:
            if g_ph != ph:
                continue
            span = slice(start, start + nwin * SLOT_FRAMES)
            wv = wph[span].reshape(nwin, SLOT_TILES)
            # sum(a^2) over a slot's 8 classes is the window's total weight whatever the
            # slot type (the classes of a slot partition its tiles): the same for all shifts
            wsum[r0:r0 + nwin] = wv.sum(1, dtype=np.float64)
            _sync_rows(wdph[span].reshape(nwin, SLOT_TILES), wv, tm, lay.membership32, off, work,
                       sn_all[r0:r0 + nwin])
    # window j of a group is slot (j + shift): sum the windows with equal j mod 32 of
    # each group (one bincount), then read the 32 diagonals of each 32 x 32 result
    ngroups = len(groups)
    gid = np.repeat(np.arange(ngroups), [g[3] for g in groups])
    jmod = np.concatenate([np.arange(g[3]) % NSLOTS for g in groups])
    cell = ((gid * NSLOTS + jmod) * NSLOTS)[:, None] + np.arange(NSLOTS)
    sn = np.bincount(cell.ravel(), sn_all.ravel(), ngroups * NSLOTS * NSLOTS)
    sn = sn.reshape(ngroups, NSLOTS, NSLOTS)
    diag = (np.arange(NSLOTS)[:, None] + np.arange(NSLOTS)[None, :]) % NSLOTS
    den_total = np.bincount(gid, wsum, ngroups)
    z_all = (sn[:, np.arange(NSLOTS)[:, None], diag].sum(1)
             / np.sqrt(np.maximum(den_total, 1e-12) / 2.0)[:, None])
    best = np.argsort(-z_all, axis=1)[:, :top]
    for (ph, start, _r0, _nwin), z, shifts in zip(groups, z_all, best, strict=True):
        for shift in shifts:
            cands.append(Readout(float(z[shift]), ph, start, int(shift), np.zeros(0)))
    cands.sort(key=lambda c: -c.z)
    out = []
    products: dict[tuple[int, int], tuple[F32, F32]] = {}  # the best often share both
    for c in cands[:top]:
        if (c.phase, c.start) not in products:
            products[c.phase, c.start] = _class_products(
                _windows(d_all[c.phase::PHASES], c.start), _windows(w_all[c.phase::PHASES], c.start), lay)
        out.append(Readout(c.z, c.phase, c.start, c.shift,
                           _soft_bits(*products[c.phase, c.start], lay, delta, c.shift)))
    return out


def _class_products(d: F64, w: F64, lay: Layout) -> tuple[F32, F32]:
    """Per (window, column): the weighted projection's numerator and denominator
    (float32 products: far more precise than the noise)."""
    num = (w * d).astype(np.float32) @ lay.template32
    den = w.astype(np.float32) @ lay.membership32
    return num, den


def _soft_bits(num: F32, den: F32, lay: Layout, delta: float,
               shift: int) -> F64:
    """Soft code bits (positive = 1) of the windows read as slots shift, shift + 1, ...:
    per class, the sum over its instances of a cos(2 pi p) (as ``_scores``), with
    each window's cosines evaluated for its own slot's 8 columns only."""
    nwin = len(num)
    slot = (np.arange(nwin) + shift) % NSLOTS
    cols = slot[:, None] * CLASSES_PER_SLOT + np.arange(CLASSES_PER_SLOT)[None, :]
    rows = np.arange(nwin)[:, None]
    cls = lay.column_class[cols]
    num64 = num[rows, cols].astype(np.float64)
    den64 = den[rows, cols].astype(np.float64)
    p = num64 / np.maximum(den64, 1e-9) / delta - lay.offset0[cls]
    p -= np.rint(p)
    val = (np.sqrt(den64) * np.cos(2 * np.pi * p)).ravel()
    soft: F64 = -np.bincount(cls.ravel(), val, NCLASSES)[:NCODE].astype(np.float64)
    return soft
