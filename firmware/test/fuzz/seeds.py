"""Seed corpus for the firmware fuzzer: real frames as the host sends them (one file each, and
one file with a whole epoch's stream). ``python firmware/test/fuzz/seeds.py DIR``."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from host_tools.protocol import Frame, MsgType, encode_resend, encode_samples


def seeds() -> dict[str, bytes]:
    rng = np.random.default_rng(0)
    epoch = rng.normal(0, 800, size=(3000, 4)).clip(-32768, 32767).astype(np.int16)
    stream = b"".join(
        Frame(
            MsgType.SAMPLES, 2 + k, encode_samples(125 * k, epoch[125 * k : 125 * (k + 1)])
        ).encode()
        for k in range(24)
    )
    # selective repeat: the same epoch in 5-sample frames, in reverse order
    reverse = b"".join(
        Frame(MsgType.SAMPLES, 100 + k, encode_samples(5 * k, epoch[5 * k : 5 * k + 5])).encode()
        for k in reversed(range(600))
    )
    return {
        "hello": Frame(MsgType.HELLO, 1, b"").encode(),
        "status": Frame(MsgType.STATUS, 2, b"").encode(),
        "profile": Frame(MsgType.PROFILE, 3, b"\x01").encode(),
        "resend": Frame(MsgType.RESEND, 4, encode_resend(0)).encode(),
        "reset": Frame(MsgType.RESET_STREAM, 5, b"").encode(),
        "samples": Frame(MsgType.SAMPLES, 6, encode_samples(0, epoch[:125])).encode(),
        "samples_short": Frame(MsgType.SAMPLES, 7, encode_samples(0, epoch[:5])).encode(),
        "samples_ahead": Frame(MsgType.SAMPLES, 8, encode_samples(125, epoch[125:250])).encode(),
        "epoch_reversed": reverse,
        "epoch": stream,
        "epoch_twice": stream + stream,
    }


if __name__ == "__main__":
    out = Path(sys.argv[1])
    out.mkdir(parents=True, exist_ok=True)
    for name, data in seeds().items():
        (out / name).write_bytes(data)
