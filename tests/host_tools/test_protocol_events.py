"""DWT events per layer on the host side (docs/protocol.md, PROFILE and EVENT_COUNTS): the
EVENT_COUNTS codec and its length checks, the reply decoder's length rule, and a board without
event counters refusing PROFILE 2 (the host names the board)."""

from __future__ import annotations

import struct

import pytest

from host_tools.device import Device, DeviceError
from host_tools.protocol import (
    EVENT_COUNTS_HEAD,
    CounterKind,
    ErrorCode,
    ErrorReply,
    EventCounts,
    Frame,
    FrameDecoder,
    Info,
    MsgType,
    ProfileMode,
    ProtocolError,
    decode_event_counts,
    encode_ack,
    encode_error,
    encode_event_counts,
    encode_info,
    reply_length_ok,
)

ROWS = [(1000 + i, 2 * i, 0, 300 + i, 7 * i) for i in range(12)]


def test_event_counts_layout_and_round_trip():
    e = EventCounts(128, 98_765, 2, ROWS)
    payload = encode_event_counts(e)
    assert len(payload) == EVENT_COUNTS_HEAD + 12 * 5 * 4 == 252
    assert payload[:4] == bytes([12, 5, 128, 0])  # n, events per layer, u16 period
    assert struct.unpack_from("<II", payload, 4) == (98_765, 2)  # samples, late
    # rows: layer-major, CPI EXC SLEEP LSU FOLD (the counters' register order)
    assert struct.unpack_from("<5I", payload, 12 + 20 * 3) == ROWS[3]
    assert decode_event_counts(payload) == e


@pytest.mark.parametrize(
    "payload, message",
    [
        (b"", "too short"),
        (bytes([1, 5, 128, 0]) + bytes(8), "expected 32 for 1 layers"),
        (bytes([1, 4, 128, 0]) + bytes(8 + 16), "4 events per layer, expected 5"),
        (bytes([2, 5, 128, 0]) + bytes(8 + 20), "expected 52 for 2 layers"),
    ],
)
def test_decode_event_counts_checks_lengths(payload, message):
    with pytest.raises(ProtocolError, match=message):
        decode_event_counts(payload)


def test_reply_decoder_knows_the_event_counts_lengths():
    assert reply_length_ok(MsgType.EVENT_COUNTS, 252)
    assert reply_length_ok(MsgType.EVENT_COUNTS, EVENT_COUNTS_HEAD)  # no layers
    assert not reply_length_ok(MsgType.EVENT_COUNTS, 251)
    assert not reply_length_ok(MsgType.EVENT_COUNTS, 8)
    frame = Frame(MsgType.EVENT_COUNTS, 9, encode_event_counts(EventCounts(128, 1, 0, ROWS)))
    (got,) = FrameDecoder(replies_only=True).feed(frame.encode())
    assert got.type == MsgType.EVENT_COUNTS and decode_event_counts(got.payload).layers == ROWS


class BoardWithoutEvents:
    """A port to a board that answers HELLO and PROFILE as the emulated boards' firmware does:
    PROFILE 2 gets ERROR NO_EVENTS (detail 0), the other values an ACK."""

    def __init__(self):
        self.decoder = FrameDecoder()
        self.out = b""
        self.profile = []

    def write(self, data: bytes) -> None:
        for f in self.decoder.feed(data):
            if f.type == MsgType.HELLO:
                reply = Frame(MsgType.INFO, f.seq, encode_info(_info()))
            elif f.payload[0] == ProfileMode.EVENTS:
                err = ErrorReply(ErrorCode.NO_EVENTS, 0, f.seq)
                reply = Frame(MsgType.ERROR, f.seq, encode_error(err))
            else:
                self.profile.append(f.payload[0])
                reply = Frame(MsgType.ACK, f.seq, encode_ack(0))
            self.out += reply.encode()

    def read_available(self, wait_s: float) -> bytes:
        out, self.out = self.out, b""
        return out


def _info() -> Info:
    return Info(
        "0.2.0", 0, 3, bytes(8), 4, 100, 3000, [(1, 19, 0, 17000)] * 4, 0,
        CounterKind.INSTRUCTIONS, 200_000_000, "emu-m4",
    )  # fmt: skip


def test_a_board_without_event_counters_is_named_and_keeps_working():
    port = BoardWithoutEvents()
    dev = Device(port, timeout_s=1.0)
    dev.hello()
    with pytest.raises(DeviceError, match="PROFILE: emu-m4 has no DWT event counters"):
        dev.set_profile(True, events=True)
    dev.set_profile(True)  # counts alone still work
    dev.set_profile(False)
    assert port.profile == [ProfileMode.COUNTS, ProfileMode.OFF]
