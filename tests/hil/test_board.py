"""Hardware-in-the-loop: the firmware on a board (emulated in QEMU by default, a real one with
--port URL), over its real serial path."""

from __future__ import annotations

import hashlib
import os
import re
import time
from pathlib import Path

import numpy as np
import pytest

from host_tools.device import BoardErrorReply, Device, DeviceError
from host_tools.emulator import Emulator
from host_tools.protocol import (
    PROTOCOL_VERSION,
    CounterKind,
    ErrorCode,
    Frame,
    MsgType,
    decode_ack,
    decode_error,
    decode_result,
)
from host_tools.samples import encode_samples
from sleepdata.hypnogram import write_hypnogram
from sleepdata.normalise import Normaliser
from sleepdata.psg import load_recording, pair_for
from sleepdata.psg_writer import write_psg
from sleepdata.simulator import simulate_night, traits_for
from sleepdata.stages import N1, N2, N3, REM, W
from sleepdata.tflm import TflmRunner
from training.model import load_model

from ..conftest import REPO, START

pytestmark = pytest.mark.hil
MODEL = REPO / "models" / "ulw_sleepnet"


@pytest.fixture(scope="module")
def epochs(tmp_path_factory):
    """Wire samples (n, 3000, 4) int16 of simulated epochs of every stage, and their labels."""
    folder = tmp_path_factory.mktemp("night")
    stages = np.array([W] * 3 + [N1] * 2 + [N2] * 3 + [N3] * 3 + [REM] * 3 + [W] * 2, np.int8)
    traits, rng = traits_for("SC4091E0", 5)
    night = simulate_night(stages, START, traits, rng)
    write_psg(folder / "SC4091E0-PSG.edf", night)
    write_hypnogram(folder / "SC4091EC-Hypnogram.edf", START, stages)
    rec = load_recording(pair_for(folder / "SC4091E0-PSG.edf"))
    norm = Normaliser.from_dict(load_model(MODEL)[1]["normalisation"])
    keep = [list(rec.labels).index(s) + 1 for s in (W, N1, N2, N3, REM)]  # one of each stage
    wire = norm.to_wire(rec.epochs[keep])
    return wire.transpose(0, 2, 1).copy(), rec.labels[keep], norm


def test_self_description(board):
    info = board.hello()
    config = load_model(MODEL)[1]["normalisation"]["channels"]
    assert info.protocol_version == PROTOCOL_VERSION
    assert (info.channels, info.sample_rate_hz, info.epoch_samples) == (4, 100, 3000)
    assert info.norm == [
        (int(c["remove_dc"]), c["shift"], c["offset"], c["multiplier"]) for c in config
    ]
    tflite = (MODEL / "model_int8.tflite").read_bytes()
    assert info.model_hash == hashlib.sha256(tflite).digest()[:8]
    header = (REPO / "firmware" / "engine" / "model" / "engine_model.h").read_text()
    assert (
        re.search(r'ENGINE_MODEL_HASH "([0-9a-f]+)"', header).group(1)
        == hashlib.sha256(tflite).hexdigest()
    )
    if info.board.startswith("emu-"):
        assert info.counter_kind == CounterKind.INSTRUCTIONS
    assert 0 < info.static_ram_bytes < 128 * 1024


def test_on_chip_scores_equal_tflite_micro(board, epochs):
    wire, _labels, norm = epochs
    board.hello()
    board.reset_stream()
    want = TflmRunner((MODEL / "model_int8.tflite").read_bytes()).run(
        norm.to_int8(wire.transpose(0, 2, 1).copy())
    )
    for i, samples in enumerate(wire):
        r = board.send_epoch(i, samples)
        assert r.epoch_index == i
        assert list(r.scores) == want[i].tolist(), (
            f"epoch {i}: actual {r.scores} expected {want[i].tolist()}"
        )
        assert r.stage == int(np.argmax(want[i]))
        assert r.inference_count > 1_000_000 and r.preprocess_count > 10_000


def test_malformed_frames_get_errors_and_the_board_keeps_working(board):
    board.hello()
    good = Frame(MsgType.HELLO, 7, b"").encode()
    cases = {
        ErrorCode.BAD_CRC: good[:-1] + bytes([good[-1] ^ 0xFF]),
        ErrorCode.BAD_VERSION: good[:2] + bytes([PROTOCOL_VERSION + 1]) + good[3:],
        ErrorCode.TOO_LONG: good[:6] + (2000).to_bytes(2, "little") + good[8:],
        ErrorCode.UNKNOWN_TYPE: Frame(0x7F, 9, b"").encode(),
    }
    for code, data in cases.items():
        board.send_raw(b"\x00garbage" + data)
        reply = board.receive(f"malformed {code.name}")
        assert reply.type == MsgType.ERROR, code
        assert decode_error(reply.payload).code == code
    assert board.hello().channels == 4


def test_out_of_sequence_samples_are_refused(board, epochs):
    """Samples outside the epoch being received (the next epoch, or two back) are refused with
    OUT_OF_SEQUENCE, then an ACK with the index to send from."""
    wire, _, _ = epochs
    board.hello()
    board.reset_stream()
    board.send(MsgType.SAMPLES, encode_samples(0, wire[0][:100]))
    assert decode_ack(board.expect("SAMPLES", MsgType.ACK).payload).next_index == 100
    board.send(MsgType.SAMPLES, encode_samples(3000, wire[1][:100]))
    with pytest.raises(BoardErrorReply) as err:
        board.expect("SAMPLES", MsgType.ACK)
    assert err.value.reply.code == ErrorCode.OUT_OF_SEQUENCE
    assert decode_ack(board.expect("SAMPLES", MsgType.ACK).payload).next_index == 100
    # not whole 5-sample blocks: refused with the header (the parser checks the length)
    board.send_raw(Frame(MsgType.SAMPLES, 9, bytes(6 + 8 * 3)).encode())
    reply = board.receive("SAMPLES of 3")
    assert reply.type == MsgType.ERROR
    assert decode_error(reply.payload).code == ErrorCode.BAD_LENGTH


def test_frames_out_of_order_are_stored_and_acks_say_what_is_missing(board, epochs):
    """Selective repeat: frames of the epoch being received are stored wherever they land; each
    ACK gives the next expected index and which blocks after it are stored, so the host resends
    only the lost frames. The epoch sent backwards in frames of 5 to 125 samples scores exactly
    as the epoch sent in order, counts included."""
    wire, _, _ = epochs
    board.hello()
    board.reset_stream()
    in_order = board.send_epoch(0, wire[0])
    board.reset_stream()

    def send(first, n):
        board.send(MsgType.SAMPLES, encode_samples(first, wire[0][first : first + n]))
        return decode_ack(board.expect("SAMPLES", MsgType.ACK).payload)

    ack = send(50, 25)  # a gap at 0..49
    assert (ack.next_index, ack.epoch_waiting) == (0, False)
    assert [ack.stored(i) for i in (0, 45, 50, 70, 75)] == [False, False, True, True, False]
    ack = send(0, 30)  # part of the gap filled
    assert ack.next_index == 30 and ack.stored(30) is False and ack.stored(50) is True
    ack = send(30, 20)  # the gap closed: the next index jumps over the frame stored before
    assert ack.next_index == 75
    ack = send(50, 25)  # a resend of a stored frame: stored again (the same samples), ACKed
    assert ack.next_index == 75
    # the rest of the epoch backwards, in frames of every size
    cuts = [75, *range(100, 3000, 125), 3000]
    for k in range(len(cuts) - 1, 0, -1):
        ack = send(cuts[k - 1], cuts[k] - cuts[k - 1])
        assert ack.next_index == (3000 if k == 1 else 75), k
    # the frame that completed the epoch: its ACK now, and once the board has taken it
    assert ack.epoch_waiting or ack.next_index == 3000
    if ack.epoch_waiting:
        taken = decode_ack(board.expect("SAMPLES", MsgType.ACK).payload)
        assert (taken.next_index, taken.epoch_waiting) == (3000, False)
    result = board.expect("RESULT", MsgType.RESULT)
    assert decode_result(result.payload) == in_order


def test_counts_are_identical_on_two_boots(request, epochs):
    if request.config.getoption("--port"):
        pytest.skip("two boots need the emulated board")
    wire, _, _ = epochs
    counts = []
    for _ in range(2):
        with Emulator("emu-m4") as emu:
            port = emu.connect()
            dev = Device(port, timeout_s=60)
            dev.hello()
            r = [dev.send_epoch(i, wire[i]) for i in range(2)]
            counts.append([(x.preprocess_count, x.inference_count) for x in r])
            port.close()
    assert counts[0] == counts[1]


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def test_an_idle_emulated_board_sleeps_instead_of_spinning(request):
    """Between epochs the firmware waits in WFI (board_idle), so an idle QEMU leaves the host's
    cores to the other boards of a cohort and to the reference models."""
    if request.config.getoption("--port"):
        pytest.skip("host CPU of the emulator")
    if not Path("/proc/self/stat").is_file():
        pytest.skip("needs /proc")
    with Emulator("emu-m4") as emu:
        port = emu.connect()
        Device(port, timeout_s=60).hello()
        before = _cpu_seconds(emu.proc.pid)
        time.sleep(2.0)
        used = _cpu_seconds(emu.proc.pid) - before
        port.close()
    assert used < 0.25, f"the idle emulated board used {used:.2f} s of host CPU in 2 s"


def test_counts_do_not_depend_on_bytes_arriving_during_inference(board, epochs):
    """Pipelined streaming (the next epoch arrives while one is scored) and one epoch at a time
    (nothing arrives during inference) give the same counts: the receiving interrupt handlers'
    work is left out exactly. Scores are equal too, of course."""
    wire, _, _ = epochs
    board.hello()
    board.reset_stream()
    one_by_one = [board.send_epoch(i, wire[i]) for i in range(3)]
    board.reset_stream()
    pipelined = list(board.stream_epochs(0, wire[:3], window=8))
    assert [r.epoch_index for r in pipelined] == [0, 1, 2]
    assert [(r.scores, r.preprocess_count) for r in pipelined] == [
        (r.scores, r.preprocess_count) for r in one_by_one
    ]
    if one_by_one[0].counter_kind == CounterKind.INSTRUCTIONS:
        assert [r.inference_count for r in pipelined] == [r.inference_count for r in one_by_one]


def test_the_port_boundary_second_emulated_board(request, epochs):
    """emu-an386 (another UART, memory map and clock behind the same board.h) returns the same
    scores; its counts are instructions too."""
    if request.config.getoption("--port"):
        pytest.skip("runs the emulated emu-an386")
    wire, _, norm = epochs
    want = TflmRunner((MODEL / "model_int8.tflite").read_bytes()).run(
        norm.to_int8(wire[:1].transpose(0, 2, 1).copy())
    )
    with Emulator("emu-an386") as emu:
        port = emu.connect()
        dev = Device(port, timeout_s=120)
        info = dev.hello()
        assert (info.board, info.core_clock_hz) == ("emu-an386", 25_000_000)
        r = dev.send_epoch(0, wire[0])
        port.close()
    assert list(r.scores) == want[0].tolist()
    assert r.counter_kind == CounterKind.INSTRUCTIONS


def test_layer_counts_cover_the_inference(board, epochs):
    """Per-layer counts (PROFILE on) add up to the epoch's inference count, MACs to the model's."""
    wire, _, _ = epochs
    board.hello()
    board.reset_stream()
    board.set_profile(True)
    r = board.send_epoch(0, wire[0])
    board.set_profile(False)
    counts = board.layer_counts
    header = (REPO / "firmware" / "engine" / "model" / "engine_model.h").read_text()
    layers = int(re.search(r"#define ENGINE_MODEL_LAYERS (\d+)", header).group(1))
    assert len(counts) == layers
    assert sum(m for _, m in counts) == 2_651_288  # the graph's (composed shortcut streams)
    total = sum(c for c, _ in counts)
    assert 0.99 * r.inference_count <= total <= r.inference_count
    assert all(c > 0 for c, _ in counts)


def test_bench_events_on_a_board_without_dwt_names_it_and_the_board_keeps_working(board):
    """`host_tools bench --events` needs DWT event counters: an emulated board refuses PROFILE 2
    (ERROR NO_EVENTS), the host names the board, and per-layer counts still work after."""
    from host_tools.bench import bench

    if not board.hello().board.startswith("emu-"):
        pytest.skip("a real board may have DWT event counters")
    with pytest.raises(DeviceError, match=r"emu-\S+ has no DWT event counters"):
        bench(board, 1, events=True)
    b = bench(board, 1)
    assert len(b["per_layer"]) > 0 and "events" not in b


def test_bench_reports_counts_per_layer_with_their_kind(board):
    from host_tools.bench import bench, render
    from host_tools.reference import ModelFiles

    b = bench(board, 2)
    kind = b["counter_kind"]
    assert kind in ("instructions", "cycles")
    assert b["macs"] == 2_651_288 and b["epochs"] == 2  # the graph's (composed shortcut streams)
    assert b["model_macs"] == 3_498_352  # the trained network's (engine_layers.json)
    assert b["inference"]["min"] <= b["inference"]["median"] <= b["inference"]["max"]
    assert b[f"{kind}_per_mac"] == round(b["inference"]["median"] / b["macs"], 2)
    assert [row["layer"] for row in b["per_layer"]] == list(ModelFiles.load().layers)
    assert f"counts are {kind}" in render(b)
