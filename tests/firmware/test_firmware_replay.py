"""The firmware's receive path, compiled for the host with AddressSanitizer and UBSan (the
fuzzing target's replay build, firmware/test/fuzz/fuzz_app.c): scripted frames in, the board's
replies out. No model runs there, so a complete epoch stays in the receive buffer, as on a
board still scoring the previous one: samples arriving faster than inference are refused with
BUSY, and the board keeps serving (docs/protocol.md, "Flow control" and "Error codes")."""

from __future__ import annotations

import struct
import subprocess

import numpy as np
import pytest

from host_tools.protocol import (
    EPOCH_SAMPLES,
    MAX_SAMPLES_PER_FRAME,
    ErrorCode,
    Frame,
    FrameDecoder,
    MsgType,
    decode_ack,
    decode_error,
    decode_info,
    decode_status,
    encode_resend,
)
from host_tools.samples import (
    CodingError,
    decode_samples_rice,
    encode_samples,
    encode_samples_rice,
)

from ..conftest import REPO

REPLAY = REPO / "firmware" / "build" / "fuzz" / "replay"


@pytest.fixture(scope="module")
def replay():
    done = subprocess.run(
        ["make", "-s", "-C", str(REPO / "firmware"), "build/fuzz/replay"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-2000:]

    def run(frames: list[Frame]) -> list[Frame]:
        """The board's replies to these frames, after the known state's (a RESET_STREAM)."""
        data = b"".join(f.encode() for f in frames)
        out = subprocess.run([str(REPLAY)], input=data, capture_output=True, check=True)
        replies = FrameDecoder(replies_only=True).feed(
            bytes.fromhex("".join(out.stdout.decode().split()))
        )
        assert replies[0].type == MsgType.ACK and replies[0].seq == 1  # the known state
        return replies[1:]

    return run


def epoch_frames(epoch: int, first_seq: int) -> list[Frame]:
    """An epoch of random samples in frames of 125."""
    samples = np.random.default_rng(epoch).integers(-500, 500, (EPOCH_SAMPLES, 4), np.int16)
    frames = []
    for k, i in enumerate(range(0, EPOCH_SAMPLES, MAX_SAMPLES_PER_FRAME)):
        block = samples[i : i + MAX_SAMPLES_PER_FRAME]
        payload = encode_samples(epoch * EPOCH_SAMPLES + i, block)
        frames.append(Frame(MsgType.SAMPLES, first_seq + k, payload))
    return frames


def test_samples_faster_than_inference_get_busy_and_the_board_keeps_serving(replay):
    epoch0 = epoch_frames(0, 10)
    early = epoch_frames(1, 100)[0]  # the next epoch, before the board has taken epoch 0
    last = epoch0[-1]  # and a resend of the frame that completed epoch 0 (its ACK lost)
    replies = replay(
        [
            *epoch0,
            early,
            last,
            Frame(MsgType.STATUS, 200, b""),
            Frame(MsgType.RESEND, 201, encode_resend(0)),
            Frame(MsgType.HELLO, 202, b""),
        ]
    )
    acks = [decode_ack(r.payload) for r in replies[: len(epoch0)]]
    assert [r.seq for r in replies[: len(epoch0)]] == [f.seq for f in epoch0]
    assert [a.next_index for a in acks] == list(range(125, 3001, 125))
    assert acks[-1].epoch_waiting  # complete, waiting for the model
    busy, again, status, resend, info = replies[len(epoch0) :]
    assert busy.type == MsgType.ERROR and busy.seq == early.seq
    assert decode_error(busy.payload).code == ErrorCode.BUSY
    assert again.type == MsgType.ACK and again.seq == last.seq
    st = decode_status(status.payload)
    assert (st.next_index, st.epoch_waiting, st.results_sent) == (3000, True, 0)
    assert resend.type == MsgType.ERROR  # epoch 0 is not scored yet
    assert decode_error(resend.payload).code == ErrorCode.NO_RESULT
    assert info.type == MsgType.INFO and decode_info(info.payload).channels == 4


def test_coded_frames_are_stored_and_bad_codings_get_the_host_decoders_detail(replay):
    """SAMPLES_RICE through the board's own decoder (docs/protocol.md, "Coded samples"): a good
    frame is stored, each malformed one gets ERROR BAD_CODING with the detail the host's
    reference decoder (host_tools.samples) gives, its blocks count as missing again, and a
    version-3 peer gets version-3 replies."""
    rng = np.random.default_rng(5)
    x = np.cumsum(rng.normal(0, 40, (125, 4)), axis=0).astype(np.int16)
    good = encode_samples_rice(0, x)
    k15 = struct.pack("<IHBB4h", 125, 5, 0xFF, 0xFF, 0, 0, 0, 0)
    bad = {
        "cut": good[:-3],
        "extra byte": good + b"\0",
        "q over k 15's limit": k15 + bytes([0x20, 0, 0]),
        "zeros past the limit, then the end": k15 + bytes(2),
        "padding bit": bytes(good[:-1]) + bytes([good[-1] | 1]) if good[-1] & 1 == 0 else None,
    }
    frames = [Frame(MsgType.SAMPLES_RICE, 10, good)]
    expected = []
    for k, (what, payload) in enumerate((w, p) for w, p in bad.items() if p is not None):
        with pytest.raises(CodingError) as err:
            decode_samples_rice(payload)
        expected.append((what, err.value.detail, payload))
        frames.append(Frame(MsgType.SAMPLES_RICE, 20 + k, payload))
    frames += [Frame(MsgType.STATUS, 40, b""), Frame(MsgType.STATUS, 41, b"", version=3)]
    replies = replay(frames)
    assert replies[0].type == MsgType.ACK and decode_ack(replies[0].payload).next_index == 125
    errors = [decode_error(f.payload) for f in replies if f.type == MsgType.ERROR]
    assert [(e.code, e.detail) for e in errors] == [
        (ErrorCode.BAD_CODING, detail) for _, detail, _ in expected
    ], [what for what, _, _ in expected]
    status, status_v3 = [f for f in replies if f.type == MsgType.STATUS_REPLY]
    st = decode_status(status.payload)
    assert status.version == 4 and st.samples_stored == 125  # (no counter in this build)
    assert st.next_index == 0  # the cut frame (first index 0) un-stored its blocks
    assert status_v3.version == 3 and len(status_v3.payload) == 21
