"""SAMPLES and SAMPLES_RICE payloads (docs/protocol.md, "Messages" and "Coded samples"): the
int16 samples of whole 5-sample blocks, raw or coded without loss. No I/O.

The coding, per channel of a frame: sample 0 as it is, then first differences modulo 2^16,
zigzag-mapped (0, -1, 1, -2 ... -> 0, 1, 2, 3 ...) and Rice-coded with one parameter k: q = u >> k
zero bits, a one bit, then the k low bits of u, most significant bit first. The board's decoder
is firmware/app/wire_coding.c; both follow the document.
"""

from __future__ import annotations

import struct

import numpy as np

from .protocol import (
    MAX_SAMPLES_PER_FRAME,
    N_CHANNELS,
    SAMPLE_BLOCK,
    MsgType,
    ProtocolError,
    _pack,
)

RICE_HEAD = 16  # bytes before the codes: first index, n, the k nibbles, sample 0 of each channel
RICE_MAX_K = 15
_KS = np.arange(RICE_MAX_K + 1, dtype=np.uint32)
_RICE_HEAD = struct.Struct(f"<IHBB{N_CHANNELS}h")
_WEIGHTS = 1 << np.arange(RICE_MAX_K - 1, -1, -1, dtype=np.int64)  # bit values, MSB first


class CodingError(ProtocolError):
    """A SAMPLES_RICE payload whose bits do not decode; ``detail`` is the ERROR detail the board
    answers with (docs/protocol.md, BAD_CODING)."""

    OVERRUN = 1  # the codes run past the payload
    RANGE = 2  # a code's value does not fit 16 bits
    TRAILING = 3  # bytes or non-zero bits after the last code

    def __init__(self, detail: int, message: str):
        super().__init__(f"SAMPLES_RICE: {message}")
        self.detail = detail


def _checked(first_index: int, samples: np.ndarray, what: str) -> np.ndarray:
    samples = np.asarray(samples)
    if samples.ndim != 2 or samples.shape[1] != N_CHANNELS:
        raise ProtocolError(f"{what}: shape {samples.shape}, expected (n, {N_CHANNELS})")
    n = samples.shape[0]
    if not SAMPLE_BLOCK <= n <= MAX_SAMPLES_PER_FRAME or n % SAMPLE_BLOCK:
        raise ProtocolError(
            f"{what}: {n} samples, expected a multiple of {SAMPLE_BLOCK} in "
            f"{SAMPLE_BLOCK}..{MAX_SAMPLES_PER_FRAME}"
        )
    if first_index % SAMPLE_BLOCK:
        raise ProtocolError(
            f"{what}: first index {first_index} is not a multiple of {SAMPLE_BLOCK}"
        )
    if samples.dtype != np.int16:
        if samples.dtype.kind not in "iu" or samples.min() < -32768 or samples.max() > 32767:
            raise ProtocolError(f"{what}: values of dtype {samples.dtype} do not fit int16")
    return samples.astype(np.int16, copy=False)


def _check_head(what: str, first: int, n: int) -> None:
    if not SAMPLE_BLOCK <= n <= MAX_SAMPLES_PER_FRAME or n % SAMPLE_BLOCK or first % SAMPLE_BLOCK:
        raise ProtocolError(f"{what}: {n} samples from {first}: not whole {SAMPLE_BLOCK}-blocks")


def encode_samples(first_index: int, samples: np.ndarray) -> bytes:
    """SAMPLES payload (Messages table): u32 first index, u16 n, n x 4 x i16 sample-major."""
    x = _checked(first_index, samples, "SAMPLES")
    return _pack("SAMPLES", "<IH", first_index, len(x)) + x.astype("<i2").tobytes()


def decode_samples(payload: bytes) -> tuple[int, np.ndarray]:
    """SAMPLES payload -> (first sample index, int16 array of shape (n, 4))."""
    if len(payload) < 6:
        raise ProtocolError(f"SAMPLES: payload is {len(payload)} bytes, expected at least 6")
    first, n = struct.unpack_from("<IH", payload)
    _check_head("SAMPLES", first, n)
    if len(payload) != 6 + 8 * n:
        raise ProtocolError(f"SAMPLES: payload is {len(payload)} bytes for n = {n}")
    return first, np.frombuffer(payload, "<i2", offset=6).reshape(n, N_CHANNELS).astype(np.int16)


def zigzag_residuals(x: np.ndarray) -> np.ndarray:
    """int16 samples (..., n, channels) -> the zigzag-mapped first differences (..., n - 1,
    channels),
    uint32 values in 0..65535 (differences taken modulo 2^16, as the board adds them back)."""
    d = np.diff(x.astype(np.int16, copy=False), axis=-2).astype(np.int32)  # int16: wraps
    return ((d << 1) ^ (d >> 15)).astype(np.uint32) & 0xFFFF


def rice_parameters(u: np.ndarray) -> np.ndarray:
    """The k (0..15) that makes each channel's codes shortest: (..., m, channels) residuals ->
    (..., channels). Of the code lengths sum(u >> k) + m (1 + k), only those of the three k
    around log2 of the mean residual are computed: on the 841-epoch demo night they pick the k
    of an exhaustive search for every frame and channel, at a fifth of its cost."""
    m = u.shape[-2]
    guess = np.floor(np.log2(u.mean(axis=-2) + 1.0)).astype(np.int64)
    ks = np.clip(guess[None] + np.array([-1, 0, 1]).reshape(3, *[1] * guess.ndim), 0, RICE_MAX_K)
    ks = ks.astype(np.uint32)
    bits = (u[None] >> ks[..., None, :]).sum(axis=-2, dtype=np.int64) + m * (1 + ks)
    return np.take_along_axis(ks, np.argmin(bits, axis=0)[None], axis=0)[0]


def encode_samples_rice(first_index: int, samples: np.ndarray) -> bytes:
    """SAMPLES_RICE payload (docs/protocol.md, "Coded samples") of n x 4 int16 samples."""
    x = _checked(first_index, samples, "SAMPLES_RICE")
    return encode_rice_frames([first_index], x[None])[0]


def encode_rice_frames(first_indices, frames: np.ndarray) -> list[bytes]:
    """SAMPLES_RICE payloads of F frames of n samples each at once: frames (F, n, 4) int16, the
    first index of each (checked as encode_samples_rice checks them)."""
    frames = np.asarray(frames)
    for first, x in zip(first_indices, frames, strict=True):
        _checked(first, x, "SAMPLES_RICE")
    n_frames, n = frames.shape[:2]
    u = zigzag_residuals(frames)  # (F, n - 1, 4)
    k = rice_parameters(u)  # (F, 4)
    q = u >> k[:, None, :]
    flat_k = np.broadcast_to(k[:, None, :], u.shape).reshape(n_frames, -1)
    lengths = (q.reshape(n_frames, -1) + 1 + flat_k).astype(np.int64)
    frame_bits = lengths.sum(axis=1)
    frame_start = np.concatenate([[0], np.cumsum((frame_bits + 7) // 8 * 8)])  # byte-aligned
    ends = np.cumsum(lengths, axis=1) + frame_start[:-1, None]
    # Each code is q zero bits then v = (1 << k) | (u mod 2^k) in k + 1 bits: only v's bits need
    # writing. Bits are numbered from the most significant of big-endian 32-bit words; a code
    # (at most 16 bits of v) ends in word w and may start in word w - 1.
    flat_k, flat_u = flat_k.ravel().astype(np.uint64), u.reshape(-1).astype(np.uint64)
    v = (np.uint64(1) << flat_k) | (flat_u & ((np.uint64(1) << flat_k) - np.uint64(1)))
    e = ends.ravel()
    w = (e - 1) // 32
    low = (v << (32 * (w + 1) - e).astype(np.uint64)) & np.uint64(0xFFFFFFFF)
    high = v >> (e - 32 * w).astype(np.uint64)  # 0 unless the code starts in word w - 1
    n_words = int(frame_start[-1] + 31) // 32
    words = np.bincount(w, weights=low, minlength=n_words)  # codes do not overlap: sum = or
    words += np.bincount(np.maximum(w - 1, 0), weights=high, minlength=n_words)
    coded = words.astype(">u4").tobytes()
    byte_start = frame_start // 8
    return [
        _RICE_HEAD.pack(
            int(first), n, int(kf[0] | kf[1] << 4), int(kf[2] | kf[3] << 4), *x[0].tolist()
        )
        + coded[byte_start[f] : byte_start[f + 1]]
        for f, (first, kf, x) in enumerate(zip(first_indices, k, frames, strict=True))
    ]


def decode_samples_rice(payload: bytes) -> tuple[int, np.ndarray]:
    """SAMPLES_RICE payload -> (first sample index, int16 array (n, 4)); raises CodingError
    (with the board's BAD_CODING detail) where the board answers BAD_CODING."""
    if len(payload) < RICE_HEAD:
        raise ProtocolError(f"SAMPLES_RICE: payload is {len(payload)} bytes, at least {RICE_HEAD}")
    first, n, k01, k23, *x0 = _RICE_HEAD.unpack_from(payload)
    _check_head("SAMPLES_RICE", first, n)
    ks = (k01 & 15, k01 >> 4, k23 & 15, k23 >> 4)
    bits = np.unpackbits(np.frombuffer(payload, np.uint8, offset=RICE_HEAD))
    ones = np.flatnonzero(bits)
    u = np.zeros((n - 1, N_CHANNELS), dtype=np.int64)
    pos = 0
    for t in range(n - 1):
        for c, k in enumerate(ks):
            i = np.searchsorted(ones, pos)
            one = int(ones[i]) if i < len(ones) else len(bits)  # (none: the zeros run out)
            where = f"sample {t + 1} channel {c}"
            if one - pos > 0xFFFF >> k:  # too many zeros, whether or not a one follows
                raise CodingError(CodingError.RANGE, f"{where}: q > 0xFFFF >> {k}")
            if one + 1 + k > len(bits):
                raise CodingError(CodingError.OVERRUN, f"{where}: the codes run past the end")
            rest = bits[one + 1 : one + 1 + k].astype(np.int64)
            u[t, c] = (one - pos) << k | int(rest @ _WEIGHTS[RICE_MAX_K - k :])
            pos = one + 1 + k
    if len(payload) != RICE_HEAD + (pos + 7) // 8 or bits[pos:].any():
        raise CodingError(CodingError.TRAILING, f"{len(payload)} bytes for {pos} bits of codes")
    d = (u >> 1) ^ -(u & 1)
    x = np.cumsum(np.vstack([np.array(x0, np.int64)[None, :], d]), axis=0)
    return first, ((x + 32768) % 65536 - 32768).astype(np.int16)


def samples_frame(first_index: int, samples: np.ndarray, rice: bool) -> tuple[MsgType, bytes]:
    """The message type and payload that carry these samples: SAMPLES_RICE when ``rice`` (the
    board decodes it) and the coded payload is shorter, else SAMPLES."""
    if rice:
        coded = encode_samples_rice(first_index, samples)
        if len(coded) < 6 + 8 * len(samples):
            return MsgType.SAMPLES_RICE, coded
    return MsgType.SAMPLES, encode_samples(first_index, samples)


class EpochFrames:
    """The frames that carry one epoch's samples (3000, 4): each SAMPLES_RICE when ``rice`` (the
    board decodes it) and shorter, else SAMPLES. Coded frames are made for the whole epoch at
    once for each frame size asked for (numpy's cost is per call, not per sample); a frame off
    that size's grid is coded alone."""

    def __init__(self, samples: np.ndarray, rice: bool):
        self.samples, self.rice = samples, rice
        self._coded: dict[tuple[int, int, int], bytes] = {}  # (base, offset, n) -> payload

    def frame(self, base: int, offset: int, n: int) -> tuple[MsgType, bytes]:
        """The frame of the epoch's samples offset .. offset + n - 1, the epoch starting at
        board sample index ``base``."""
        block = self.samples[offset : offset + n]
        if not self.rice:
            return MsgType.SAMPLES, encode_samples(base + offset, block)
        if (base, offset, n) not in self._coded and offset % n == 0:
            whole = len(self.samples) // n
            frames = self.samples[: whole * n].reshape(whole, n, N_CHANNELS)
            coded = encode_rice_frames([base + i * n for i in range(whole)], frames)
            self._coded.update(((base, i * n, n), c) for i, c in enumerate(coded))
        coded = self._coded.get((base, offset, n))
        if coded is None:
            return samples_frame(base + offset, block, rice=True)
        if len(coded) < 6 + 8 * n:
            return MsgType.SAMPLES_RICE, coded
        return MsgType.SAMPLES, encode_samples(base + offset, block)
