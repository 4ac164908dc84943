"""One protocol, two copies: the C header and the Python module must define the same constants
(docs/protocol.md is the source of truth)."""

from __future__ import annotations

import re

from host_tools import protocol as py
from host_tools import samples
from host_tools.samples import CodingError

from ..conftest import REPO


def c_defines() -> dict[str, int]:
    text = (REPO / "firmware" / "app" / "protocol_defs.h").read_text()
    return {
        m.group(1): int(m.group(2), 0)
        for m in re.finditer(r"#define\s+(PROTO_\w+)\s+(0x[0-9A-Fa-f]+|\d+)\b", text)
    }


def test_c_and_python_constants_agree():
    c = c_defines()
    assert bytes([c["PROTO_SYNC0"], c["PROTO_SYNC1"]]) == py.SYNC
    plain = {
        "VERSION": py.PROTOCOL_VERSION,
        "HEADER_LEN": py.HEADER_LEN,
        "CRC_LEN": py.CRC_LEN,
        "MAX_PAYLOAD": py.MAX_PAYLOAD,
        "MAX_SAMPLES_PER_FRAME": py.MAX_SAMPLES_PER_FRAME,
        "SAMPLE_BLOCK": py.SAMPLE_BLOCK,
        "SACK_BLOCKS": py.SACK_BLOCKS,
        "N_CHANNELS": py.N_CHANNELS,
        "EPOCH_SAMPLES": py.EPOCH_SAMPLES,
        "SAMPLE_RATE_HZ": py.SAMPLE_RATE_HZ,
        "RESULTS_KEPT": py.RESULTS_KEPT,
    }
    for name, value in plain.items():
        assert c[f"PROTO_{name}"] == value, name
    assert {k[len("PROTO_MSG_") :]: v for k, v in c.items() if k.startswith("PROTO_MSG_")} == {
        m.name: int(m) for m in py.MsgType
    }
    assert {k[len("PROTO_ERR_") :]: v for k, v in c.items() if k.startswith("PROTO_ERR_")} == {
        e.name: int(e) for e in py.ErrorCode
    }
    assert {
        k[len("PROTO_COUNTER_") :]: v for k, v in c.items() if k.startswith("PROTO_COUNTER_")
    } == {k.name: int(k) for k in py.CounterKind}
    assert {
        k[len("PROTO_PROFILE_") :]: v for k, v in c.items() if k.startswith("PROTO_PROFILE_")
    } == {m.name: int(m) for m in py.ProfileMode}
    assert c["PROTO_EVENTS_PER_LAYER"] == py.EVENTS_PER_LAYER == len(py.EVENT_NAMES)
    assert c["PROTO_EVENT_COUNTS_HEAD"] == py.EVENT_COUNTS_HEAD
    assert c["PROTO_EVENT_COUNTS_HEAD"] == len(py.encode_event_counts(py.EventCounts(0, 0, 0, [])))
    # version 4: the oldest version spoken, the codings, SAMPLES_RICE's layout and errors
    assert c["PROTO_VERSION_MIN"] == py.PROTOCOL_VERSION_MIN
    assert {
        k[len("PROTO_CODING_") :]: v for k, v in c.items() if k.startswith("PROTO_CODING_")
    } == {
        **{m.name: int(m) for m in py.Coding},
        "OVERRUN": CodingError.OVERRUN,
        "RANGE": CodingError.RANGE,
        "TRAILING": CodingError.TRAILING,
    }
    assert c["PROTO_RICE_HEAD"] == samples.RICE_HEAD and c["PROTO_RICE_MAX_K"] == samples.RICE_MAX_K
    assert c["PROTO_INFO_LEN_V3"] == len(py.encode_info(_info(), version=3))
    assert c["PROTO_STATUS_LEN_V3"] == len(py.encode_status(py.Status(0), version=3))
    assert c["PROTO_INFO_LEN"] == len(py.encode_info(_info()))
    assert c["PROTO_STATUS_LEN"] == len(py.encode_status(py.Status(0)))
    assert c["PROTO_ACK_LEN"] == len(py.encode_ack(py.Ack(0)))
    assert c["PROTO_RESULT_LEN"] == len(
        py.encode_result(py.Result(0, 0, (0, 0, 0, 0, 0), 0, 0, py.CounterKind.INSTRUCTIONS))
    )


def _info() -> py.Info:
    return py.Info(
        "0.1.0",
        0,
        1,
        bytes(8),
        4,
        100,
        3000,
        [(1, 19, 0, 17000)] * 4,
        0,
        py.CounterKind.INSTRUCTIONS,
        200_000_000,
        "emu-m4",
    )
