"""host_tools.device over a scripted link: how STATUS is asked until it gets through."""

from __future__ import annotations

import time

import pytest

from host_tools.device import Device, DeviceError
from host_tools.protocol import Frame, FrameDecoder, MsgType, Status, encode_status


class DamagesStatusReplies:
    """A board's side that answers every STATUS, and a link that damages the first
    ``damaged`` replies (their last byte)."""

    def __init__(self, damaged: int):
        self.damaged = damaged
        self.asked = 0
        self.decoder = FrameDecoder()
        self.out = b""

    def write(self, data: bytes) -> int:
        for frame in self.decoder.feed(bytes(data)):
            if frame.type == MsgType.STATUS:
                self.asked += 1
                reply = Frame(MsgType.STATUS_REPLY, frame.seq, encode_status(Status(3000))).encode()
                if self.asked <= self.damaged:
                    reply = reply[:-1] + bytes([reply[-1] ^ 0x5A])
                self.out += reply
        return len(data)

    def read_available(self, wait_s: float) -> bytes:
        if not self.out:
            time.sleep(min(wait_s, 0.005))
        data, self.out = self.out, b""
        return data

    def close(self) -> None:
        pass


def test_status_is_asked_again_until_a_reply_gets_through():
    # at 1 % / 0.5 % byte faults, a STATUS and its reply get through about half the time:
    # 12 failures in a row happen in a long night, and must not end the stream
    link = DamagesStatusReplies(damaged=12)
    dev = Device(link, timeout_s=30, frame_timeout_s=0.02)
    assert dev.status().next_index == 3000
    assert link.asked == 13


def test_status_gives_up_after_its_time_budget_naming_the_attempts():
    link = DamagesStatusReplies(damaged=10**9)
    dev = Device(link, timeout_s=30, frame_timeout_s=0.02)
    t0 = time.monotonic()
    with pytest.raises(DeviceError, match=r"STATUS: no reply in 0.5 s \(\d+ attempts\)"):
        dev.status(budget_s=0.5)
    assert 0.5 <= time.monotonic() - t0 < 2.0 and link.asked > 5
