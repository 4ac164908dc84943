"""Host tools without the training stack: ``host_tools stream`` in a process in which importing
torch, TensorFlow, onnx, scipy, the training package or the converter fails (what
``pip install '.[host]'`` leaves out), against the board (emulated by default, a real one with
--port URL); its epochs must still be bit-exact with TFLite Micro."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from sleepdata.simulator import simulate_generated

from ..conftest import REPO

pytestmark = pytest.mark.hil
EPOCHS = 4

#: Run host_tools' CLI with an import hook that refuses the training stack, at any depth.
BLOCKED_RUN = textwrap.dedent(
    """
    import sys

    BLOCKED = {"torch", "tensorflow", "keras", "onnx", "scipy", "training", "converter"}

    class Refuse:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ImportError(f"{name} is blocked: host_tools must not need it")
            return None

    sys.meta_path.insert(0, Refuse())
    from host_tools.cli import main

    sys.exit(main(sys.argv[1:]))
    """
)


def test_blocker_refuses_the_training_stack():
    proc = subprocess.run(
        [sys.executable, "-c", BLOCKED_RUN.replace("from host_tools.cli", "import torch  #")],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert proc.returncode != 0 and "torch is blocked" in proc.stderr


def test_stream_runs_without_torch_or_tensorflow(request, tmp_path):
    ((psg, _hyp),) = simulate_generated(tmp_path / "night", 1, seed=3)
    out = tmp_path / "run"
    args = ["stream", str(psg), "--epochs", str(EPOCHS), "--start", "40", "--out", str(out)]
    if url := request.config.getoption("--port"):
        args += ["--port", url]
    proc = subprocess.run(
        [sys.executable, "-c", BLOCKED_RUN, *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads((out / "report.json").read_text())
    assert report["epochs"] == EPOCHS and report["first_epoch"] == 40
    assert report["bitexact_vs_tflm"] == 1.0, report["mismatch_list"]
    assert report["samples_scored"] == EPOCHS * 3000
