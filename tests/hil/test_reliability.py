"""Faulty links, resent frames, cut links and board restarts (docs/protocol.md, "Recovery"):
every epoch's RESULT arrives exactly once and equals the fault-free run, scores and counts.
Emulated board by default; with --port the link faults are injected on the real link (the cut
and restart tests need the emulated board)."""

from __future__ import annotations

import numpy as np
import pytest

from host_tools.device import Device
from host_tools.emulator import Emulator
from host_tools.faults import FaultSpec, FaultyLink
from host_tools.protocol import (
    EPOCH_SAMPLES,
    RESULTS_KEPT,
    FrameDecoder,
    MsgType,
    decode_result,
)
from host_tools.samples import decode_samples
from host_tools.transport import open_port, read_available
from sleepdata.hypnogram import write_hypnogram
from sleepdata.normalise import Normaliser
from sleepdata.psg import load_recording, pair_for
from sleepdata.psg_writer import write_psg
from sleepdata.simulator import simulate_night, traits_for
from sleepdata.stages import N2, N3, REM, W
from training.model import load_model

from ..conftest import REPO, START

pytestmark = pytest.mark.hil
MODEL = REPO / "models" / "ulw_sleepnet"
N_EPOCHS = 6


@pytest.fixture(scope="module")
def wire(tmp_path_factory):
    """(6, 3000, 4) int16 wire epochs of a simulated night, as the board receives them."""
    folder = tmp_path_factory.mktemp("night")
    stages = np.array([W, N2, N3, REM, N2, W], np.int8)
    traits, rng = traits_for("SC4071E0", 3)
    write_psg(folder / "SC4071E0-PSG.edf", simulate_night(stages, START, traits, rng))
    write_hypnogram(folder / "SC4071EC-Hypnogram.edf", START, stages)
    rec = load_recording(pair_for(folder / "SC4071E0-PSG.edf"))
    norm = Normaliser.from_dict(load_model(MODEL)[1]["normalisation"])
    return norm.to_wire(rec.epochs[:N_EPOCHS]).transpose(0, 2, 1).copy()


class Board:
    """An emulated board (or --port) with a link that may be faulty, and a way to reopen it."""

    def __init__(self, request, spec: FaultSpec | None):
        self.url = request.config.getoption("--port")
        self.emu = None if self.url else Emulator("emu-m4").start()
        self.spec = spec
        self.counts = None
        first = self._open()
        self.device = Device(first, timeout_s=60, reopen=self._open)

    def _open(self):
        port = open_port(self.url) if self.url else self.emu.connect()
        if self.spec is None:
            return port
        link = FaultyLink(port, self.spec, counts=self.counts)
        self.counts = link.counts  # shared by the links that replace a cut one
        return link

    def close(self):
        self.device.port.close()
        if self.emu:
            self.emu.stop()


def stream(request, wire, spec: FaultSpec | None):
    board = Board(request, spec)
    try:
        dev = board.device
        dev.hello()
        dev.reset_stream()
        results = list(dev.stream_epochs(0, wire))
    finally:
        board.close()
    return results, dev, board.counts


@pytest.fixture(scope="module")
def clean(request, wire):
    results, dev, _ = stream(request, wire, None)
    # The reference run. On a busy host a frame may still be resent once in a while: the
    # timeout's floor is 50 ms (docs/protocol.md, "Recovery"), and a resend is harmless.
    assert [r.epoch_index for r in results] == list(range(N_EPOCHS))
    assert dev.relinks == 0 and dev.restarts == 0
    return results


def same(results, clean):
    assert [r.epoch_index for r in results] == list(range(len(clean)))  # each exactly once
    assert results == clean  # scores, stages and counts (instructions on the emulated board)


def test_the_issues_rates_1_percent_corrupt_half_percent_dropped(request, wire, clean):
    """1 % of the bytes corrupted and 0.5 % dropped, both ways: a 1-KB frame never gets
    through, a 5-sample frame (58 bytes) about every other time. Selective repeat with small
    frames delivers every RESULT once, bit-identical (scores and counts) to the fault-free run.
    (A whole night: `make bench-faults`.)"""
    spec = FaultSpec(corrupt=0.01, drop=0.005, seed=3)
    results, dev, counts = stream(request, wire[:2], spec)
    same(results, clean[:2])
    assert counts.corrupt > 500 and counts.drop > 250
    assert dev.frames_resent > 100  # the retries the stream report counts
    assert dev.errors_seen.get("BAD_CRC", 0) > 50


def test_corrupted_and_dropped_bytes_are_recovered(request, wire, clean):
    # 0.1 % and 0.05 % per byte: most 1-KB frames would fail; the stream shrinks its frames.
    spec = FaultSpec(corrupt=0.001, drop=0.0005, seed=1)
    results, dev, counts = stream(request, wire, spec)
    same(results, clean)
    assert counts.corrupt > 50 and counts.drop > 25
    assert dev.frames_resent > 0 and dev.errors_seen


def test_duplicated_reordered_and_delayed_bytes_are_recovered(request, wire, clean):
    spec = FaultSpec(duplicate=0.002, reorder=0.002, delay=0.05, seed=2)
    results, _, counts = stream(request, wire, spec)
    same(results, clean)
    assert counts.duplicate > 0 and counts.reorder > 0 and counts.delay > 0


def test_a_cut_link_is_reopened_and_the_stream_resumes(request, wire, clean):
    if request.config.getoption("--port"):
        pytest.skip("cutting and reopening a link needs the emulated board")
    results, dev, counts = stream(request, wire, FaultSpec(cut_after=60_000))
    same(results, clean)
    assert counts.cuts == 1 and dev.relinks == 1


def test_a_board_restart_is_detected_and_the_stream_resumes(request, wire, clean):
    results, dev, counts = stream(request, wire, FaultSpec(reboot_after=70_000))
    same(results, clean)
    assert counts.reboots == 1 and dev.restarts == 1


class LosesFirstResult:
    """A clean link that loses the board's first ``times`` RESULTs of epoch 0 (the RESULT and
    the replies to RESEND), and fails as soon as the host sends samples of an epoch whose
    RESULT would make the board forget epoch 0's while the host still lacks it (the board keeps
    the last RESULTS_KEPT)."""

    def __init__(self, port, times: int):
        self.port, self.times = port, times
        self.decoder = FrameDecoder()
        self.lost = 0
        self.delivered = False

    def write(self, data: bytes) -> int:
        for frame in FrameDecoder().feed(bytes(data)):
            if frame.type == MsgType.SAMPLES and not self.delivered:
                epoch = decode_samples(frame.payload)[0] // EPOCH_SAMPLES
                assert epoch < RESULTS_KEPT, f"epoch {epoch} sent while epoch 0's RESULT is lost"
        return self.port.write(data)

    def read_available(self, wait_s: float) -> bytes:
        out = []
        for frame in self.decoder.feed(read_available(self.port, wait_s)):
            if frame.type == MsgType.RESULT and decode_result(frame.payload).epoch_index == 0:
                if self.lost < self.times:
                    self.lost += 1
                    continue
                self.delivered = True
            out.append(frame.encode())
        return b"".join(out)

    def close(self) -> None:
        self.port.close()


def test_a_result_lost_again_and_again_is_recovered_before_the_board_forgets_it(
    request, wire, clean
):
    """The board keeps the last RESULTS_KEPT RESULTs. While one is missing, the host streams
    at most that many epochs past it, and asks for it until it comes."""
    if request.config.getoption("--port"):
        pytest.skip("the lossy link is built on the emulated board's")
    with Emulator("emu-m4") as emu:
        link = LosesFirstResult(emu.connect(), times=8)
        dev = Device(link, timeout_s=60)
        try:
            dev.hello()
            dev.reset_stream()
            results = list(dev.stream_epochs(0, wire))
        finally:
            link.close()
    same(results, clean)
    assert link.lost == 8 and link.delivered
    assert dev.results_resent >= 8
