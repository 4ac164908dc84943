"""SAMPLES_RICE, the lossless coding of samples (docs/protocol.md, "Coded samples"): round trips
(hypothesis), the bit layout the board decodes, the frames the board rejects, and the host's
choice between coded and raw frames."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from host_tools.protocol import MAX_PAYLOAD, MAX_SAMPLES_PER_FRAME, MsgType, ProtocolError
from host_tools.samples import (
    RICE_HEAD,
    CodingError,
    EpochFrames,
    decode_samples,
    decode_samples_rice,
    encode_rice_frames,
    encode_samples_rice,
    rice_parameters,
    samples_frame,
    zigzag_residuals,
)

blocks = st.integers(1, MAX_SAMPLES_PER_FRAME // 5)


def walk(rng, n, step):
    """A random walk of int16 samples (n, 4), as EEG at the wire's resolution looks."""
    x = np.cumsum(rng.normal(0, step, (n, 4)), axis=0)
    return np.clip(x, -32768, 32767).astype(np.int16)


@settings(derandomize=True, max_examples=300)
@given(
    st.integers(0, 0xFFFFFFFF // 5).map(lambda b: 5 * b),
    blocks.flatmap(
        lambda k: st.lists(st.integers(-32768, 32767), min_size=20 * k, max_size=20 * k)
    ),
)
def test_any_samples_round_trip(first, values):
    samples = np.array(values, dtype=np.int16).reshape(-1, 4)
    index, got = decode_samples_rice(encode_samples_rice(first, samples))
    assert index == first and np.array_equal(got, samples)


@settings(derandomize=True, max_examples=100)
@given(blocks, st.floats(0.0, 5000.0), st.integers(0, 2**32 - 1))
def test_signal_like_samples_round_trip_and_batch_equals_single(k, step, seed):
    rng = np.random.default_rng(seed)
    n = 5 * k
    frames = np.stack([walk(rng, n, step) for _ in range(3)])
    firsts = [0, n, 2 * n]
    batch = encode_rice_frames(firsts, frames)
    for first, x, payload in zip(firsts, frames, batch, strict=True):
        assert payload == encode_samples_rice(first, x)
        assert decode_samples_rice(payload)[1].tolist() == x.tolist()


def test_bit_layout_of_a_hand_coded_frame():
    # channel 0 climbs by 1, then falls by 2 (wrapping past -32768); the others stay
    x = np.zeros((5, 4), np.int16)
    x[:, 0] = [-32767, -32766, -32768, 32766, 32766]  # differences +1, -2, -2 (wraps), 0
    x[:, 1] = 7
    x[:, 2] = [0, 3, 6, 9, 12]  # +3 each: u = 6
    x[:, 3] = -1
    payload = encode_samples_rice(10, x)
    first, n, k01, k23 = struct.unpack_from("<IHBB", payload)
    assert (first, n) == (10, 5)
    ks = (k01 & 15, k01 >> 4, k23 & 15, k23 >> 4)
    assert ks == (1, 0, 2, 0)  # u of channel 0: 2, 3, 3, 0; channel 2: 6 x 4
    assert struct.unpack_from("<4h", payload, 8) == (-32767, 7, 0, -1)
    # sample-major codes: ch0 (k 1): u 2 -> q 1: "0 1 0"; ch1 (k 0): u 0 -> "1";
    # ch2 (k 2): u 6 -> q 1: "0 1 10"; ch3 (k 0): "1"; then u 3, 0, 6, 0 / 3, 0, 6, 0 / 0, 0, 6, 0
    codes = ["010", "1", "0110", "1"] + ["011", "1", "0110", "1"] * 2 + ["10", "1", "0110", "1"]
    bits = "".join(codes)
    bits += "0" * (-len(bits) % 8)
    assert payload[RICE_HEAD:] == int(bits, 2).to_bytes(len(bits) // 8, "big")
    assert decode_samples_rice(payload)[1].tolist() == x.tolist()


def test_zigzag_maps_wrapped_differences_onto_16_bits():
    x = np.array([[0], [-1], [0], [32767], [-32768]], np.int16)  # d = -1, 1, 32767, 1 (wraps)
    assert zigzag_residuals(x)[:, 0].tolist() == [1, 2, 65534, 2]


def test_the_chosen_k_is_the_best_of_all_sixteen():
    rng = np.random.default_rng(3)
    for step in (0, 1, 30, 300, 3000, 20000):
        u = zigzag_residuals(walk(rng, 125, step))[:, :1]
        costs = [int((u.astype(np.int64) >> k).sum()) + len(u) * (1 + k) for k in range(16)]
        k = int(rice_parameters(u)[0])
        assert costs[k] == min(costs)


def _frame(x, first=0):
    return bytearray(encode_samples_rice(first, x))


def test_malformed_frames_get_the_boards_error_details():
    x = walk(np.random.default_rng(1), 25, 40)
    good = _frame(x)
    with pytest.raises(CodingError) as err:  # cut short: the codes run past the end
        decode_samples_rice(bytes(good[:-3]))
    assert err.value.detail == CodingError.OVERRUN
    with pytest.raises(CodingError) as err:  # one byte too many
        decode_samples_rice(bytes(good + b"\0"))
    assert err.value.detail == CodingError.TRAILING
    # k = 0 and every code bit zero: the first code's q exceeds 0xFFFF
    zeros = bytearray(struct.pack("<IHBB4h", 0, 5, 0, 0, 0, 0, 0, 0)) + bytes(8200)
    with pytest.raises(CodingError) as err:
        decode_samples_rice(bytes(zeros[:MAX_PAYLOAD]))
    assert err.value.detail == CodingError.OVERRUN  # (8,192 bits < 65,536 zeros)
    k15 = bytearray(struct.pack("<IHBB4h", 0, 5, 0xFF, 0xFF, 0, 0, 0, 0)) + b"\x00" * 8
    with pytest.raises(CodingError) as err:  # k 15: q may be 0 or 1, here 2
        decode_samples_rice(bytes(k15))
    assert err.value.detail == CodingError.RANGE
    padded = bytearray(encode_samples_rice(0, np.zeros((5, 4), np.int16)))
    assert padded[RICE_HEAD:] == b"\xff\xff"  # 16 codes "1" at k 0
    padded[-1] ^= 0x01  # the last code "1" becomes "0": its one bit is past the end
    with pytest.raises(CodingError) as err:
        decode_samples_rice(bytes(padded))
    assert err.value.detail == CodingError.OVERRUN
    with pytest.raises(ProtocolError, match="not whole 5-blocks"):
        decode_samples_rice(struct.pack("<IHBB4h", 3, 5, 0, 0, 0, 0, 0, 0) + b"\xff\xff")


def test_nonzero_padding_bits_are_rejected():
    x2 = np.zeros((5, 4), np.int16)  # 16 codes of 1 bit (k 0), one of them 2 bits
    x2[1:, 0] = -1  # u 1 -> k 0: "01": 17 bits -> 7 padding bits
    payload = bytearray(encode_samples_rice(0, x2))
    assert len(payload) == RICE_HEAD + 3 and payload[-1] & 0x7F == 0
    payload[-1] |= 0x01
    with pytest.raises(CodingError) as err:
        decode_samples_rice(bytes(payload))
    assert err.value.detail == CodingError.TRAILING


def test_the_host_sends_whichever_frame_is_shorter():
    rng = np.random.default_rng(2)
    eeg = walk(rng, 125, 40)
    mtype, payload = samples_frame(125, eeg, rice=True)
    assert mtype == MsgType.SAMPLES_RICE and len(payload) < 0.6 * (6 + 8 * 125)
    assert decode_samples_rice(payload)[1].tolist() == eeg.tolist()
    noise = rng.integers(-32768, 32768, (125, 4)).astype(np.int16)  # wideband: does not code
    mtype, payload = samples_frame(125, noise, rice=True)
    assert mtype == MsgType.SAMPLES and decode_samples(payload)[1].tolist() == noise.tolist()
    assert samples_frame(125, eeg, rice=False)[0] == MsgType.SAMPLES


def test_an_epochs_frames_carry_its_samples_coded_or_raw():
    rng = np.random.default_rng(4)
    epoch = walk(rng, 3000, 40)
    epoch[250:375] = rng.integers(-32768, 32768, (125, 4))  # a frame that codes longer
    frames = EpochFrames(epoch, rice=True)
    base = 7 * 3000
    for offset, n in [(0, 125), (250, 125), (2875, 125), (5, 40), (35, 10)]:
        mtype, payload = frames.frame(base, offset, n)
        decode = decode_samples_rice if mtype == MsgType.SAMPLES_RICE else decode_samples
        first, got = decode(payload)
        assert first == base + offset and got.tolist() == epoch[offset : offset + n].tolist()
        assert (mtype == MsgType.SAMPLES) == (offset == 250)
    assert frames.frame(base, 0, 125)[0] == MsgType.SAMPLES_RICE
    assert EpochFrames(epoch, rice=False).frame(base, 0, 125)[0] == MsgType.SAMPLES
