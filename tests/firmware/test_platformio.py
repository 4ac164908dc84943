"""PlatformIO without its registry: every board environment builds offline from a fresh core
folder, and `pio run -t upload` boots emu-m4 in QEMU on the serial URL it prints."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import serial

from host_tools.device import Device

from ..conftest import REPO

PIO = Path(sys.executable).with_name("pio")
pytestmark = pytest.mark.skipif(
    not PIO.exists() or shutil.which("arm-none-eabi-gcc") is None,
    reason="pio or arm-none-eabi-gcc missing (run make setup)",
)


@pytest.fixture
def pio_env(tmp_path):
    env = dict(os.environ)
    env.update(
        PLATFORMIO_CORE_DIR=str(tmp_path / "core"),  # nothing cached from earlier runs
        PLATFORMIO_SETTING_ENABLE_TELEMETRY="No",
        PLATFORMIO_SETTING_CHECK_PLATFORMIO_INTERVAL="3650",
    )
    return env


def test_every_board_environment_builds_offline(pio_env):
    done = subprocess.run(
        [str(PIO), "run", "-e", "emu_m4", "-e", "emu_an386", "-e", "nucleo_l476rg"],
        cwd=REPO,
        env=pio_env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    for env in ("emu_m4", "emu_an386", "nucleo_l476rg"):
        assert (REPO / "build" / "pio" / env / "program.elf").is_file(), env
    assert "warning" not in done.stdout.lower()


def test_upload_boots_the_emulated_board(pio_env):
    from host_tools.emulator import free_port

    port = free_port()
    proc = subprocess.Popen(
        [str(PIO), "run", "-e", "emu_m4", "-t", "upload", "--upload-port", str(port)],
        cwd=REPO,
        env=pio_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                link = serial.serial_for_url(f"socket://127.0.0.1:{port}", timeout=0.05)
                break
            except serial.SerialException:
                assert proc.poll() is None, proc.stdout.read()[-2000:]
                assert time.monotonic() < deadline, "QEMU did not start"
                time.sleep(0.2)
        info = Device(link, timeout_s=30).hello()
        link.close()
        assert info.board == "emu-m4"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # pio, its SCons and QEMU
        out = proc.communicate(timeout=30)[0]
    assert f"serial URL: socket://127.0.0.1:{port}" in out


def test_pio_test_runs_the_on_target_tests_on_both_emulated_boards(pio_env):
    done = subprocess.run(
        [str(PIO), "test", "-e", "emu_m4", "-e", "emu_an386"],
        cwd=REPO,
        env=pio_env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-3000:]
    passed = re.findall(r"ON-TARGET TESTS: (\d+) passed, 0 failed", out)
    assert len(passed) == 2 and passed[0] == passed[1] and int(passed[0]) >= 16, out[-3000:]
    n = 2 * int(passed[0])
    assert f"{n} test cases: {n} succeeded" in out
