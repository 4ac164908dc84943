"""PlatformIO without its registry: every board environment builds offline from a fresh core
folder, and `pio run -t upload` boots emu-m4 in QEMU on the serial URL it prints, with the
committed model or the model folder ULW_MODEL_DIR names."""

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


def marked_model_folder(folder: Path, marker: bytes) -> Path:
    """A copy of the committed model C whose model hash (what the board reports) is ``marker``
    (8 bytes): a model folder the board can only report when it was built from it."""
    folder.mkdir()
    for name in ("engine_model.c", "engine_model.h", "model_norm.h"):
        shutil.copyfile(REPO / "firmware" / "engine" / "model" / name, folder / name)
    norm = (folder / "model_norm.h").read_text()
    hash8 = re.compile(r"model_hash8\[8\] = \{[^}]*\}")
    assert hash8.search(norm), "model_norm.h has no model_hash8 initialiser"
    marked = "model_hash8[8] = { " + ", ".join(f"0x{b:02x}" for b in marker) + " }"
    (folder / "model_norm.h").write_text(hash8.sub(marked, norm))
    return folder


@pytest.mark.parametrize("model", ["committed", "ULW_MODEL_DIR"])
def test_upload_boots_the_emulated_board(pio_env, model, tmp_path):
    from host_tools.emulator import free_port

    want = bytes.fromhex("918795f74a25a2af")  # the committed model's hash
    if model == "ULW_MODEL_DIR":
        want = bytes.fromhex("feedc0de01234567")
        pio_env["ULW_MODEL_DIR"] = str(marked_model_folder(tmp_path / "model", want))
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
        assert info.model_hash == want
    finally:
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C: pio, its SCons and QEMU
        out = proc.communicate(timeout=30)[0]
    assert f"serial URL: socket://127.0.0.1:{port}" in out
    assert "until you stop it with Ctrl-C" in out  # the hint, printed before QEMU starts
    assert "Aborted by user" in out  # what the hint says PlatformIO prints then
    if model == "ULW_MODEL_DIR":
        assert f"Model: {pio_env['ULW_MODEL_DIR']}" in out


def test_a_model_folder_without_its_c_is_refused_naming_the_converter(pio_env, tmp_path):
    pio_env["ULW_MODEL_DIR"] = str(tmp_path)
    done = subprocess.run(
        [str(PIO), "run", "-e", "emu_m4"],
        cwd=REPO,
        env=pio_env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode != 0
    assert "engine_model.c" in done.stdout + done.stderr
    assert "python -m converter build --model MODEL --out DIR" in done.stdout + done.stderr


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
