"""The board the hardware-in-the-loop tests talk to."""

from __future__ import annotations

import subprocess
import sys

import pytest

from host_tools.device import Device
from host_tools.emulator import Emulator
from host_tools.transport import open_port


@pytest.fixture(scope="module")
def board(request):
    """A Device on the board: --port URL, or a fresh emulated emu-m4 (stopped afterwards)."""
    url = request.config.getoption("--port")
    if url:
        port = open_port(url)
        yield Device(port)
        port.close()
        return
    with Emulator("emu-m4") as emu:
        port = emu.connect()
        yield Device(port, timeout_s=60)
        port.close()


def start_board_command() -> tuple[subprocess.Popen, str]:
    """``python -m host_tools board`` in a subprocess: (the process, the URL line it printed)."""
    from ..conftest import REPO

    proc = subprocess.Popen(
        [sys.executable, "-m", "host_tools", "board", "--board", "emu-m4"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    line = proc.stdout.readline()
    if "socket://127.0.0.1:" not in line:
        proc.kill()
        raise AssertionError(line + proc.stderr.read())
    return proc, line
