"""host_tools.protocol: frames, the incremental decoder, the payload codecs (docs/protocol.md)."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from host_tools.protocol import (
    CRC_LEN,
    HEADER_LEN,
    MAX_PAYLOAD,
    MAX_SAMPLES_PER_FRAME,
    PROTOCOL_VERSION,
    SYNC,
    Ack,
    Coding,
    CounterKind,
    ErrorCode,
    ErrorReply,
    Frame,
    FrameDecoder,
    Info,
    MsgType,
    ProtocolError,
    Result,
    Status,
    crc32,
    decode_ack,
    decode_error,
    decode_info,
    decode_result,
    decode_status,
    encode_ack,
    encode_error,
    encode_info,
    encode_result,
    encode_status,
)
from host_tools.samples import decode_samples, encode_samples

MAX_FRAME = HEADER_LEN + MAX_PAYLOAD + CRC_LEN
NORM = [
    (1, 3, -120, 2_000_000),
    (0, 0, 0, 1),
    (1, 15, 32767, -(2**31)),
    (0, 255, -32768, 2**31 - 1),
]


def make_info(**changes) -> Info:
    fields = dict(
        firmware_version="0.1.0-dev",
        build_hash=0xDEADBEEF,
        protocol_version=1,
        model_hash=bytes(range(1, 9)),
        channels=4,
        sample_rate_hz=100,
        epoch_samples=3000,
        norm=NORM,
        static_ram_bytes=123_456,
        counter_kind=CounterKind.INSTRUCTIONS,
        core_clock_hz=200_000_000,
        board="ast1030-evb",
        stack_peak_bytes=1234,
    )
    return Info(**(fields | changes))


def decode_all(data: bytes, chunks: list[int] | None = None) -> tuple[list[Frame], FrameDecoder]:
    dec, frames, pos = FrameDecoder(), [], 0
    for size in chunks or [len(data)]:
        frames += dec.feed(data[pos : pos + size])
        pos += size
    frames += dec.feed(data[pos:])
    return frames, dec


def test_crc_check_value():
    assert crc32(b"123456789") == 0xCBF43926  # CRC-32/ISO-HDLC (zlib), as proto_crc32
    assert crc32(b"") == 0


def test_frame_layout_matches_the_spec():
    raw = Frame(MsgType.SAMPLES, 0x1234, b"\x01\x02\x03").encode()
    assert raw[:8] == SYNC + bytes([PROTOCOL_VERSION, 0x02, 0x34, 0x12, 3, 0])
    assert raw[8:11] == b"\x01\x02\x03"
    assert struct.unpack("<I", raw[11:]) == (crc32(raw[2:11]),)
    assert len(Frame(MsgType.SAMPLES, 0, bytes(MAX_PAYLOAD)).encode()) == MAX_FRAME == 1036


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (Frame(1, 0, bytes(MAX_PAYLOAD + 1)), "at most 1024"),
        (Frame(1, 65536, b""), "sequence number"),
        (Frame(1, -1, b""), "sequence number"),
        (Frame(256, 0, b""), "message type"),
    ],
)
def test_frame_encode_validates(frame, message):
    with pytest.raises(ProtocolError, match=message):
        frame.encode()


def test_frame_round_trip_for_every_message_type():
    for t in MsgType:
        frame = Frame(t, 7, bytes(range(t % 17)))
        (got,) = FrameDecoder().feed(frame.encode())
        assert got == frame and isinstance(got.type, MsgType)


def test_unknown_types_are_returned_as_frames():
    (got,) = FrameDecoder().feed(Frame(0x42, 1, b"x").encode())
    assert got == Frame(0x42, 1, b"x") and not isinstance(got.type, MsgType)


def test_samples_round_trip():
    rng = np.random.default_rng(0)
    for n in (5, 10, 120, MAX_SAMPLES_PER_FRAME):
        samples = rng.integers(-32768, 32768, size=(n, 4)).astype(np.int16)
        payload = encode_samples(2**32 - 1, samples)
        assert len(payload) == 6 + 8 * n
        first, got = decode_samples(payload)
        assert first == 2**32 - 1 and got.dtype == np.int16
        np.testing.assert_array_equal(got, samples)
    # sample-major: ch0..ch3 of sample 0, then sample 1
    payload = encode_samples(5, np.arange(20, dtype=np.int16).reshape(5, 4))
    assert payload == struct.pack("<IH20h", 5, 5, *range(20))


@pytest.mark.parametrize(
    ("samples", "message"),
    [
        (np.zeros((0, 4), np.int16), "0 samples"),
        (np.zeros((3, 4), np.int16), "3 samples, expected a multiple of 5"),
        (np.zeros((130, 4), np.int16), "130 samples"),
        (np.zeros((3, 3), np.int16), "shape"),
        (np.full((5, 4), 40000), "do not fit int16"),
        (np.zeros((5, 4)), "do not fit int16"),
    ],
)
def test_encode_samples_validates(samples, message):
    with pytest.raises(ProtocolError, match=message):
        encode_samples(0, samples)


def test_samples_start_on_a_block():
    with pytest.raises(ProtocolError, match="first index 7 is not a multiple of 5"):
        encode_samples(7, np.zeros((5, 4), np.int16))


def test_info_layout_and_round_trip():
    info = make_info(codings=Coding.RICE)
    payload = encode_info(info)
    assert len(payload) == 96 and payload[95] == 1
    assert payload[0:16] == b"0.1.0-dev" + bytes(7)
    assert payload[16:20] == struct.pack("<I", 0xDEADBEEF)
    assert payload[20] == 1 and payload[21:29] == bytes(range(1, 9)) and payload[29] == 4
    assert payload[30:32] == struct.pack("<H", 100)
    assert payload[32:34] == struct.pack("<H", 3000)
    assert payload[34:42] == struct.pack("<BBhi", *NORM[0])
    assert payload[58:66] == struct.pack("<BBhi", *NORM[3])
    assert payload[66:70] == struct.pack("<I", 123_456)
    assert payload[70] == 0
    assert payload[71:75] == struct.pack("<I", 200_000_000)
    assert payload[75:91] == b"ast1030-evb" + bytes(5)
    assert payload[91:95] == struct.pack("<I", info.stack_peak_bytes)
    got = decode_info(payload)
    assert got == info and isinstance(got.counter_kind, CounterKind)
    # version 3 (an older board or host): the same fields without the codings
    v3 = encode_info(info, version=3)
    assert v3 == payload[:95]
    assert decode_info(v3) == make_info(codings=0)
    full = make_info(firmware_version="x" * 16, board="b" * 16, counter_kind=CounterKind.CYCLES)
    assert decode_info(encode_info(full)) == full


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"board": "b" * 17}, "board is 17 bytes"),
        ({"model_hash": bytes(7)}, "model_hash"),
        ({"norm": NORM[:3]}, "norm"),
        ({"static_ram_bytes": -1}, "INFO: cannot encode"),
    ],
)
def test_encode_info_validates(changes, message):
    with pytest.raises(ProtocolError, match=message):
        encode_info(make_info(**changes))


def test_result_ack_error_round_trips():
    result = Result(41, 2, (-128, 5, 127, 0, -1), 123_456, 9_876_543, CounterKind.CYCLES)
    payload = encode_result(result)
    assert len(payload) == 19
    assert payload[5:10] == bytes([0x80, 5, 0x7F, 0, 0xFF]) and payload[18] == 1
    assert decode_result(payload) == result
    ack = Ack(3000, True, 3010, frozenset({0, 5, 63}))
    raw = encode_ack(ack)
    assert raw == struct.pack("<IBIQ", 3000, 1, 3010, 1 | 1 << 5 | 1 << 63) and len(raw) == 17
    assert decode_ack(raw) == ack and decode_ack(encode_ack(2**32 - 1)) == Ack(2**32 - 1)
    # what the ACK says of each block: before the next index stored, at it missing, then SACK
    assert [ack.stored(i) for i in (0, 2995, 3000, 3005, 3010, 3015, 3035, 3325, 3330)] == [
        True,
        True,
        False,
        None,
        True,
        False,
        True,
        True,
        None,
    ]
    st = Status(125, False, 130, frozenset({1}), 7, 3000, 123_456)
    assert encode_status(st) == struct.pack("<IBIQIII", 125, 0, 130, 2, 7, 3000, 123_456)
    assert decode_status(encode_status(st)) == st and st.ack == Ack(125, False, 130, {1})
    v3 = encode_status(st, version=3)
    assert v3 == struct.pack("<IBIQI", 125, 0, 130, 2, 7)
    assert decode_status(v3) == Status(125, False, 130, frozenset({1}), 7)  # figures: None
    err = ErrorReply(ErrorCode.OUT_OF_SEQUENCE, 0, 0xBEEF)
    assert encode_error(err) == b"\x06\x00\xef\xbe"
    got = decode_error(encode_error(err))
    assert got == err and isinstance(got.code, ErrorCode)
    assert decode_error(b"\x63\x01\x00\x00") == ErrorReply(99, 1, 0)


def test_encoders_reject_out_of_range_values():
    with pytest.raises(ProtocolError, match="ACK"):
        encode_ack(2**32)
    with pytest.raises(ProtocolError, match="RESULT"):
        encode_result(Result(0, 0, (128, 0, 0, 0, 0), 0, 0, CounterKind.CYCLES))
    with pytest.raises(ProtocolError, match="4 scores, expected 5"):
        encode_result(Result(0, 0, (0, 0, 0, 0), 0, 0, CounterKind.CYCLES))


@pytest.mark.parametrize(
    ("decode", "payload", "message"),
    [
        (decode_info, bytes(94), r"INFO: payload is 94 bytes, expected 96"),
        (decode_result, bytes(20), r"RESULT: payload is 20 bytes, expected 19"),
        (decode_ack, b"", r"ACK: payload is 0 bytes, expected 17"),
        (decode_error, bytes(5), r"ERROR: payload is 5 bytes, expected 4"),
        (decode_samples, bytes(5), r"SAMPLES: payload is 5 bytes, expected at least 6"),
        (decode_samples, struct.pack("<IH", 0, 0), r"SAMPLES: 0 samples from 0"),
        (decode_samples, struct.pack("<IH", 0, 5) + bytes(8), r"SAMPLES: .* 14 bytes for n = 5"),
        (decode_samples, struct.pack("<IH", 0, 130) + bytes(1040), r"130 samples"),
        (decode_samples, struct.pack("<IH", 3, 5) + bytes(40), r"from 3: not whole 5-blocks"),
        (decode_info, bytes(70) + b"\x07" + bytes(25), r"INFO: unknown counter kind 7"),
        (decode_info, bytes(70) + b"\x07" + bytes(24), r"INFO: unknown counter kind 7"),
    ],
)
def test_decoders_reject_wrong_payloads(decode, payload, message):
    with pytest.raises(ProtocolError, match=message):
        decode(payload)


def random_frame(rng: np.random.Generator) -> Frame:
    n = int(rng.integers(0, MAX_PAYLOAD + 1)) if rng.random() < 0.05 else int(rng.integers(0, 40))
    t = int(rng.choice(list(MsgType))) if rng.random() < 0.8 else int(rng.integers(0, 256))
    return Frame(t, int(rng.integers(0, 65536)), rng.bytes(n))


def random_garbage(rng: np.random.Generator) -> bytes:
    garbage = bytearray(rng.bytes(int(rng.integers(0, 30))))
    if garbage and rng.random() < 0.3:  # a false sync pair, sometimes with a plausible header
        at = int(rng.integers(0, len(garbage)))
        garbage[at:at] = SYNC + (b"\x01" if rng.random() < 0.5 else b"")
    return bytes(garbage)


@pytest.mark.parametrize("seed", range(300))
def test_random_frames_between_random_garbage_decode_exactly(seed):
    rng = np.random.default_rng(seed)
    frames = [random_frame(rng) for _ in range(int(rng.integers(1, 8)))]
    stream = random_garbage(rng) + b"".join(f.encode() + random_garbage(rng) for f in frames)
    # Zeros never hold a sync pair; they complete any false candidate that spans the end.
    stream += bytes(MAX_FRAME)
    sizes = rng.integers(1, 300, size=len(stream))
    chunks = [int(c) for c in sizes[: np.searchsorted(np.cumsum(sizes), len(stream)) + 1]]
    got, dec = decode_all(stream, chunks)
    assert got == frames
    assert len(dec._buf) <= 1


SMALL_FRAMES = [
    Frame(MsgType.HELLO, 0, b""),
    Frame(MsgType.ACK, 0x0102, encode_ack(3000)),
    Frame(MsgType.ERROR, 65535, encode_error(ErrorReply(ErrorCode.BAD_CRC, 0, 7))),
]


@pytest.mark.parametrize("frame", SMALL_FRAMES)
def test_no_single_byte_corruption_is_accepted(frame):
    raw = frame.encode()
    good = Frame(MsgType.INFO, 9, b"next")
    for i in range(len(raw)):
        for mask in range(1, 256):
            bad = bytearray(raw)
            bad[i] ^= mask
            got, _ = decode_all(bytes(bad) + good.encode() + bytes(MAX_FRAME))
            # The corrupted frame is dropped; the decoder resynchronises on the next frame.
            assert got == [good], (i, mask)


def test_wrong_version_and_oversized_length_are_rejected_and_recorded():
    good = Frame(MsgType.ACK, 1, encode_ack(125))
    wrong_version = bytearray(good.encode())
    wrong_version[2] = PROTOCOL_VERSION + 1
    too_long = bytearray(Frame(MsgType.ACK, 1, b"").encode())
    too_long[6:8] = struct.pack("<H", MAX_PAYLOAD + 1)
    bad_crc = bytearray(good.encode())
    bad_crc[-1] ^= 1
    got, dec = decode_all(b"junk" + wrong_version + too_long + bad_crc + good.encode())
    assert got == [good]
    assert [code for code, _ in dec.errors] == [
        ErrorCode.BAD_VERSION,
        ErrorCode.TOO_LONG,
        ErrorCode.BAD_CRC,
    ]
    assert (
        dec.errors[0][1].startswith("offset 4:")
        and f"version {PROTOCOL_VERSION + 1}" in dec.errors[0][1]
    )
    assert "payload length 1025" in dec.errors[1][1]


def test_buffer_stays_bounded_on_long_garbage():
    rng = np.random.default_rng(1)
    dec = FrameDecoder()
    for _ in range(200):
        chunk = bytearray(rng.bytes(4096))
        for at in rng.integers(0, 4096, size=8):  # plenty of sync-byte fragments
            chunk[at] = SYNC[0]
        assert dec.feed(bytes(chunk) + SYNC) == []  # ... and one pending candidate per chunk
        assert len(dec._buf) < MAX_FRAME
    assert len(dec.errors) <= FrameDecoder.max_errors
    frame = Frame(MsgType.RESULT, 3, bytes(19))
    assert decode_all(b"\xa5" * 5000 + frame.encode())[0] == [frame]
    assert FrameDecoder().feed(b"\xa5") == [] and FrameDecoder().feed(b"") == []


def test_decoder_never_raises_on_random_bytes():
    rng = np.random.default_rng(2)
    dec = FrameDecoder()
    for _ in range(500):
        data = bytearray(rng.bytes(int(rng.integers(0, 64))))
        if data and rng.random() < 0.5:
            data[0:0] = SYNC + bytes([1, int(rng.integers(0, 256))])
        dec.feed(bytes(data))
        assert len(dec._buf) < MAX_FRAME


def test_reply_decoder_drops_a_damaged_length_at_once():
    """A host reading a board (replies_only) drops a header whose length its type cannot have,
    so the next frame is decoded at once, without waiting for the bytes the length promised."""
    ack = Frame(MsgType.ACK, 1, encode_ack(125)).encode()
    damaged = bytearray(ack)
    damaged[6] = 200  # an ACK of 200 bytes
    good = Frame(MsgType.RESULT, 2, bytes(19))
    dec = FrameDecoder(replies_only=True)
    assert dec.feed(bytes(damaged) + good.encode()) == [good]
    assert dec.errors[0][0] == ErrorCode.BAD_LENGTH and "length 200" in dec.errors[0][1]
    # a general decoder takes the 200 bytes as the damaged frame's payload and waits
    assert FrameDecoder().feed(bytes(damaged) + good.encode()) == []
    # what a board sends, every type and length, gets through
    layers = Frame(MsgType.LAYER_COUNTS, 3, bytes(1 + 8 * 20))
    status = Frame(MsgType.STATUS_REPLY, 4, encode_status(Status(0)))
    info = Frame(MsgType.INFO, 0, encode_info(make_info()))
    frames = [layers, status, info, Frame(MsgType.ERROR, 5, bytes(4))]
    assert FrameDecoder(replies_only=True).feed(b"".join(f.encode() for f in frames)) == frames
