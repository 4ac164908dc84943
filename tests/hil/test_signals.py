"""Hardware-in-the-loop: ``host_tools stream`` on the emulated board killed mid-stream with
SIGTERM (handled as Ctrl-C) and with SIGKILL (nothing handled): no QEMU of that run remains,
and ``--resume`` completes the run with every epoch exactly once and bit-exact."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from host_tools import runfolder as rf
from host_tools.cli import EXIT_INTERRUPTED
from sleepdata.simulator import simulate_generated

from ..conftest import REPO
from .conftest import start_board_command

pytestmark = pytest.mark.hil
EPOCHS = 20  # enough that the run is still streaming when the signal comes
BEFORE_SIGNAL = 3  # rows in results.csv when the signal is sent


@pytest.fixture(scope="module")
def psg(request, tmp_path_factory):
    if request.config.getoption("--port"):
        pytest.skip("starts its own emulated board")
    ((path, _hyp),) = simulate_generated(tmp_path_factory.mktemp("night"), 1, seed=0)
    return path


def _stream(psg: Path, out: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "host_tools",
        "stream",
        str(psg),
        "--epochs",
        str(EPOCHS),
        "--out",
        str(out),
        *extra,
    ]


def _qemu_children(pid: int) -> list[int]:
    """The QEMU processes whose parent is ``pid`` (read from /proc)."""
    found = []
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            fields = dict(
                line.split(":\t", 1) for line in status.read_text().splitlines() if ":\t" in line
            )
            cmdline = (status.parent / "cmdline").read_bytes()
        except OSError:
            continue
        if fields.get("PPid", "").strip() == str(pid) and b"qemu-system-arm" in cmdline:
            found.append(int(status.parent.name))
    return found


def _running(pid: int) -> bool:
    """Whether ``pid`` is a live process (not gone, not a zombie waiting to be reaped)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _start_and_wait_for_rows(psg: Path, out: Path, log: Path) -> tuple[subprocess.Popen, list]:
    """The stream command started, once BEFORE_SIGNAL rows are in results.csv; its QEMU."""
    with open(log, "w") as f:
        proc = subprocess.Popen(_stream(psg, out), stdout=f, stderr=f, cwd=REPO)
    deadline = time.monotonic() + 240
    results = out / rf.RESULTS
    while time.monotonic() < deadline and proc.poll() is None:
        if results.is_file() and len(rf.read_results(results)) >= BEFORE_SIGNAL:
            break
        time.sleep(0.1)
    assert proc.poll() is None, f"the stream ended early:\n{log.read_text()}"
    qemu = _qemu_children(proc.pid)
    assert len(qemu) == 1, qemu
    assert len(rf.read_results(results)) < EPOCHS, "the stream finished before the signal"
    return proc, qemu


def _gone_within(pids: list[int], seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while any(_running(p) for p in pids):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def _resume_completes(psg: Path, out: Path) -> None:
    done = subprocess.run(
        _stream(psg, out, "--resume"), capture_output=True, text=True, cwd=REPO, timeout=600
    )
    assert done.returncode == 0, done.stderr
    res = rf.read_results(out / rf.RESULTS)
    assert res.epoch.tolist() == list(range(EPOCHS))  # every epoch exactly once
    assert res.bitexact.all()
    assert "bit-exact vs TFLite Micro 1.0000" in done.stdout
    assert f"scored {EPOCHS * 3000:,}: none dropped" in done.stdout, done.stdout


def test_sigterm_mid_stream_saves_the_run_and_stops_qemu(psg, tmp_path):
    out, log = tmp_path / "run", tmp_path / "log"
    proc, qemu = _start_and_wait_for_rows(psg, out, log)
    try:
        os.kill(proc.pid, signal.SIGTERM)
        assert proc.wait(timeout=60) == EXIT_INTERRUPTED, log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert _gone_within(qemu, 2), f"QEMU {qemu} outlived its stream"
    last = log.read_text().splitlines()[-1]
    assert last.startswith("SIGTERM received; interrupted: ") and "--resume" in last, last
    meta = rf.read_meta(out)
    assert [s["status"] for s in meta["sessions"]] == ["interrupted"]
    assert (out / rf.REPORT_JSON).is_file()  # reported as on Ctrl-C
    _resume_completes(psg, out)


def test_sigkill_mid_stream_leaves_no_qemu_and_resumes(psg, tmp_path):
    out, log = tmp_path / "run", tmp_path / "log"
    proc, qemu = _start_and_wait_for_rows(psg, out, log)
    try:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        left = not _gone_within(qemu, 5)
    finally:
        for pid in qemu:  # (the test cleans up after a failure, not the code under test)
            if _running(pid):
                os.kill(pid, signal.SIGKILL)
    assert not left, f"QEMU {qemu} outlived its parent killed with SIGKILL"
    assert [s["status"] for s in rf.read_meta(out)["sessions"]] == ["running"]  # no end record
    _resume_completes(psg, out)


def test_sigterm_stops_the_board_command_and_its_qemu(psg):
    proc, _ = start_board_command()
    try:
        qemu = _qemu_children(proc.pid)
        assert len(qemu) == 1, qemu
        os.kill(proc.pid, signal.SIGTERM)
        assert proc.wait(timeout=20) == 0  # as Ctrl-C: the documented way to stop it
        assert proc.stderr.read().strip().splitlines()[-1] == "SIGTERM received; emu-m4 stopped"
        assert _gone_within(qemu, 2)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
