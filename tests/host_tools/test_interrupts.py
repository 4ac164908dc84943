"""SIGTERM and SIGHUP handled as Ctrl-C (host_tools.interrupts), and what ``host_tools stream``
leaves behind when one arrives mid-stream (on a stand-in board; the emulated board and SIGKILL:
tests/hil/test_signals.py)."""

from __future__ import annotations

import json
import signal
import threading
import time

import pytest

from host_tools import cli, cli_stream
from host_tools import runfolder as rf
from host_tools.interrupts import SIGNALS, signals_as_interrupts
from host_tools.reference import ModelFiles
from sleepdata.stages import N1, N2, N3, REM, W

from ..conftest import write_pair
from .fakes import FakeBoard


def _signal_this_thread(sig) -> None:
    """Send ``sig`` to this (the main) thread and give its handler the moment to run: the
    sleep is cut short by the handler's exception, or ends after 0.2 s if it is ignored."""
    signal.pthread_kill(threading.get_ident(), sig)
    time.sleep(0.2)


@pytest.mark.parametrize("sig", SIGNALS, ids=lambda s: signal.Signals(s).name)
def test_a_signal_becomes_one_keyboard_interrupt_then_handlers_are_restored(sig):
    before = signal.getsignal(sig)
    with signals_as_interrupts() as state:
        with pytest.raises(KeyboardInterrupt):
            _signal_this_thread(sig)
        assert state.received == signal.Signals(sig).name
        _signal_this_thread(sig)  # a second one does not cut the clean-up short
        assert state.message("interrupted") == f"{signal.Signals(sig).name} received; interrupted"
    assert signal.getsignal(sig) is before


def test_outside_the_main_thread_nothing_is_installed():
    seen = []

    def run():
        with signals_as_interrupts() as state:
            seen.append((signal.getsignal(signal.SIGTERM), state.message("interrupted")))

    before = signal.getsignal(signal.SIGTERM)
    t = threading.Thread(target=run)
    t.start()
    t.join()
    assert seen == [(before, "interrupted")]


class _TerminatedBoard(FakeBoard):
    """A stand-in board during whose stream the process receives SIGTERM after ``after``
    RESULTs (as from ``kill PID``)."""

    def __init__(self, model, after: int):
        super().__init__(model)
        self.after = after
        self.closed = False

    def stream_epochs(self, first_epoch, epochs):
        for k, result in enumerate(super().stream_epochs(first_epoch, epochs)):
            if first_epoch + k == self.after:  # (stream epochs count from 0)
                _signal_this_thread(signal.SIGTERM)
            yield result


def test_sigterm_mid_stream_saves_the_run_closes_the_board_and_exits_as_ctrl_c(
    tmp_path, monkeypatch, capsys
):
    stages = [W] * 3 + [N1] * 2 + [N2] * 3 + [N3] * 2 + [REM] * 2
    psg, _hyp = write_pair(tmp_path / "night", stages, name="SC4041E")
    boards = []

    def fake_open(args):
        board = _TerminatedBoard(ModelFiles.load(), after=3 if not boards else 99)
        boards.append(board)
        return board, lambda: setattr(board, "closed", True)

    monkeypatch.setattr(cli_stream, "open_device", fake_open)
    before = signal.getsignal(signal.SIGTERM)
    out = tmp_path / "run"
    argv = ["stream", str(psg), "--out", str(out), "--cycles-sample", "0"]  # (a scripted board)
    assert cli.main(argv) == cli.EXIT_INTERRUPTED
    assert boards[0].closed  # the board (an emulator: stopped) was closed
    assert signal.getsignal(signal.SIGTERM) is before
    err = capsys.readouterr().err.splitlines()
    assert err[-1] == (
        f"SIGTERM received; interrupted: {out / rf.RESULTS} holds 3 of 12 epochs; run the same "
        "command with --resume to continue"
    )
    # progress as plain lines in a log, ended before the message; no bar escapes
    assert all(line.startswith("stream: ") for line in err[:-1]) and len(err) >= 2
    assert not any("\r" in line or "\x1b" in line for line in err)
    meta = rf.read_meta(out)
    assert [s["status"] for s in meta["sessions"]] == ["interrupted"]
    assert meta["sessions"][0]["samples_scored"] == 3 * 3000
    assert json.loads((out / rf.REPORT_JSON).read_text())["epochs"] == 3  # reported as Ctrl-C

    assert cli.main([*argv, "--resume"]) == 0
    printed = capsys.readouterr().out
    res = rf.read_results(out / rf.RESULTS)
    assert res.epoch.tolist() == list(range(12)) and res.bitexact.all()
    # cumulative: the epoch in flight when SIGTERM came was sent in both sessions
    assert (
        "samples sent 39,000, acked 39,000, scored 36,000: none dropped; 3,000 were in flight "
        "at interruptions" in printed
    )
