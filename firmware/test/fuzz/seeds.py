"""Seed corpora for the firmware fuzzers: real frames as the host sends them, for fuzz_app (one
file each, and files with a whole epoch's stream, raw and coded), and SAMPLES_RICE payloads for
fuzz_coding (u16 n - 1, then the payload from offset 6). ``python firmware/test/fuzz/seeds.py
APP_DIR [CODING_DIR]``."""

from __future__ import annotations

import struct
import sys
from pathlib import Path

import numpy as np

from host_tools.protocol import PROTOCOL_VERSION_MIN, Frame, MsgType, encode_resend
from host_tools.samples import encode_samples, encode_samples_rice


def _epoch() -> np.ndarray:
    """An epoch of wideband noise on one channel, slow walks on the others (small codes)."""
    rng = np.random.default_rng(0)
    noise = rng.normal(0, 800, size=(3000, 1))
    walks = np.cumsum(rng.normal(0, 20, size=(3000, 3)), axis=0)
    return np.hstack([noise, walks]).clip(-32768, 32767).astype(np.int16)


def seeds() -> dict[str, bytes]:
    epoch = _epoch()
    stream = b"".join(
        Frame(
            MsgType.SAMPLES, 2 + k, encode_samples(125 * k, epoch[125 * k : 125 * (k + 1)])
        ).encode()
        for k in range(24)
    )
    coded = b"".join(
        Frame(
            MsgType.SAMPLES_RICE,
            2 + k,
            encode_samples_rice(125 * k, epoch[125 * k : 125 * (k + 1)]),
        ).encode()
        for k in range(24)
    )
    # selective repeat: the same epoch in 5-sample frames, in reverse order
    reverse = b"".join(
        Frame(MsgType.SAMPLES, 100 + k, encode_samples(5 * k, epoch[5 * k : 5 * k + 5])).encode()
        for k in reversed(range(600))
    )
    rice = encode_samples_rice(0, epoch[:125])
    damaged = rice[:-1] + bytes([rice[-1] ^ 0x01])  # a valid CRC over codes that do not decode
    return {
        "hello": Frame(MsgType.HELLO, 1, b"").encode(),
        "hello_v3": Frame(MsgType.HELLO, 1, b"", PROTOCOL_VERSION_MIN).encode(),
        "status": Frame(MsgType.STATUS, 2, b"").encode(),
        "status_v3": Frame(MsgType.STATUS, 2, b"", PROTOCOL_VERSION_MIN).encode(),
        "profile": Frame(MsgType.PROFILE, 3, b"\x01").encode(),
        "resend": Frame(MsgType.RESEND, 4, encode_resend(0)).encode(),
        "reset": Frame(MsgType.RESET_STREAM, 5, b"").encode(),
        "samples": Frame(MsgType.SAMPLES, 6, encode_samples(0, epoch[:125])).encode(),
        "samples_short": Frame(MsgType.SAMPLES, 7, encode_samples(0, epoch[:5])).encode(),
        "samples_ahead": Frame(MsgType.SAMPLES, 8, encode_samples(125, epoch[125:250])).encode(),
        "rice": Frame(MsgType.SAMPLES_RICE, 9, rice).encode(),
        "rice_short": Frame(MsgType.SAMPLES_RICE, 10, encode_samples_rice(0, epoch[:5])).encode(),
        "rice_damaged": Frame(MsgType.SAMPLES_RICE, 11, damaged).encode(),
        "epoch_reversed": reverse,
        "epoch": stream,
        "epoch_twice": stream + stream,
        "epoch_rice": coded,
        "epoch_rice_then_raw": coded + stream,
    }


def coding_seeds() -> dict[str, bytes]:
    epoch = _epoch()
    out = {}
    for n in (5, 40, 125):
        payload = encode_samples_rice(0, epoch[:n])
        out[f"rice_{n}"] = struct.pack("<H", n - 1) + payload[6:]
    return out


if __name__ == "__main__":
    for folder, corpus in zip(sys.argv[1:3], (seeds(), coding_seeds()), strict=False):
        out = Path(folder)
        out.mkdir(parents=True, exist_ok=True)
        for name, data in corpus.items():
            (out / name).write_bytes(data)
