"""Hardware-in-the-loop: a model trained here, converted, and streamed on the emulated board
running firmware built for it, every step through its documented command; and QEMU never
outliving the process that started it, even one killed with SIGKILL."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from host_tools.device import Device
from host_tools.emulator import Emulator, EmulatorError, firmware_elf
from sleepdata.stages import N1, N2, N3, REM, W

from ..conftest import REPO, write_pair

pytestmark = [
    pytest.mark.hil,
    pytest.mark.skipif(
        shutil.which("qemu-system-arm") is None or shutil.which("arm-none-eabi-gcc") is None,
        reason="qemu-system-arm or arm-none-eabi-gcc missing (run make setup)",
    ),
]
#: 130 epochs of every stage: small nights keep training and conversion to seconds
NIGHT = [W] * 30 + [N1] * 10 + [N2] * 30 + [N3] * 25 + [REM] * 25 + [W] * 10


def run(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """``python -m ARGS`` from the repository; fails the test with its output on a traceback."""
    done = subprocess.run(
        [sys.executable, "-m", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    return done


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    """(data folder, OUT): four small simulated nights (subjects 0-3), a model trained on them
    for one epoch by ``python -m training train``, converted by ``python -m converter build``."""
    tmp = tmp_path_factory.mktemp("model-to-board")
    data = tmp / "data"
    for subject in range(4):
        stages = NIGHT if subject % 2 == 0 else NIGHT[::-1]
        write_pair(data, stages, name=f"SC40{subject}1E", seed=subject)
    done = run(
        "training", "train", "--data", str(data), "--out", str(tmp / "run"),
        "--cache", str(tmp / "cache"), "--test-subjects", "0", "--val-subjects", "1",
        "--epochs", "1", "--batch-size", "64",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    model = tmp / "run" / "split" / "model"
    assert not (model / "model_int8.tflite").exists()  # what conversion is for
    out = tmp / "out"
    done = run(
        "converter", "build", "--model", str(model), "--out", str(out), "--data", str(data),
        "--check", "300",
    )  # fmt: skip
    # exit 1 is a target not met (a one-epoch model may miss the accuracy one); bit-exactness
    # is checked below
    assert done.returncode in (0, 1), done.stderr[-3000:]
    # TensorFlow's log stays captured: nothing on stderr (--data: no check nights to simulate)
    noise = [line for line in done.stderr.splitlines() if line.strip()]
    assert noise == [], noise[:10]
    assert f"MODEL_DIR={out.resolve()}" in done.stdout and f"--model {out}" in done.stdout
    return data, out


def test_conversion_writes_a_deployable_model_folder(converted):
    _data, out = converted
    for name in (
        "config.json", "weights.pt", "metrics.json", "model_int8.tflite", "model.onnx",
        "engine_layers.json", "engine_model.c", "engine_model.h", "model_norm.h",
        "report.json", "report.md",
    ):  # fmt: skip
        assert (out / name).is_file(), name
    report = json.loads((out / "report.json").read_text())
    assert report["tflm_bitexact"] == 1.0
    digest = hashlib.sha256((out / "model_int8.tflite").read_bytes()).hexdigest()
    assert report["model_hash"] == digest
    assert f'#define ENGINE_MODEL_HASH "{digest}"' in (out / "engine_model.h").read_text()


def test_stream_with_the_model_boots_firmware_built_for_it(converted, tmp_path):
    data, out = converted
    digest = hashlib.sha256((out / "model_int8.tflite").read_bytes()).hexdigest()
    elf = REPO / "firmware" / "build" / f"emu-m4-{digest[:8]}" / "firmware.elf"
    shutil.rmtree(elf.parent, ignore_errors=True)  # built by the stream command itself
    try:
        done = run(
            "host_tools", "stream", str(data / "SC4021E0-PSG.edf"), "--model", str(out),
            "--epochs", "3", "--out", str(tmp_path / "stream"),
        )  # fmt: skip
        assert done.returncode == 0, done.stderr[-3000:]
        assert elf.is_file()
        report = json.loads((tmp_path / "stream" / "report.json").read_text())
        assert report["epochs"] == 3 and report["bitexact_vs_tflm"] == 1.0
        assert report["model_hash"] == digest[:16]
        # what the board itself reports: the hash of OUT's model, not the committed one's
        with Emulator("emu-m4", model_dir=out) as emu:
            assert emu.elf == elf
            port = emu.connect()
            try:
                info = Device(port, timeout_s=30).hello()
            finally:
                port.close()
        assert info.model_hash.hex() == digest[:16]
    finally:
        shutil.rmtree(elf.parent, ignore_errors=True)  # (one folder per trained model)


def test_a_model_folder_without_firmware_c_names_the_command_that_writes_it(converted, tmp_path):
    _data, out = converted
    folder = tmp_path / "no-c"
    folder.mkdir()
    for name in ("config.json", "weights.pt", "model_int8.tflite", "model.onnx"):
        shutil.copyfile(out / name, folder / name)
    with pytest.raises(EmulatorError) as err:
        firmware_elf("emu-m4", model_dir=folder)
    msg = str(err.value)
    assert "engine_model.c" in msg
    assert f"python -m converter build --model {folder} --out {folder}" in msg


#: started as a child that is then killed: prints QEMU's pid and waits
_HOLDER = """
import sys, time
from host_tools.emulator import Emulator
emu = Emulator("emu-m4", guard=sys.argv[1]).start()
print(emu.proc.pid, flush=True)
time.sleep(600)
"""


def _running(pid: int) -> bool:
    """Whether ``pid`` is a live (not zombie) process: a container's init may leave the
    killed parent's QEMU unreaped for a while."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("guard", ["prctl", "watchdog"])
def test_qemu_dies_with_a_parent_killed_by_sigkill(guard):
    firmware_elf("emu-m4")  # (built here, so that the child starts QEMU at once)
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, guard], cwd=REPO, stdout=subprocess.PIPE, text=True
    )
    try:
        qemu = int(holder.stdout.readline())
        assert "qemu" in Path(f"/proc/{qemu}/cmdline").read_text()
        time.sleep(0.5)
        assert _running(qemu)
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait(timeout=10)
        deadline = time.monotonic() + 5
        while _running(qemu) and time.monotonic() < deadline:
            time.sleep(0.1)
        alive = _running(qemu)
        if alive:
            os.kill(qemu, signal.SIGKILL)  # (do not leave it behind for the next test)
        assert not alive, f"QEMU {qemu} outlived its SIGKILLed parent ({guard})"
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
