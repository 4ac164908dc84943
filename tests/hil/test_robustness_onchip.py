"""Hardware-in-the-loop: ``host_tools robustness`` on a board (emulated in QEMU by default, a
real one with --port URL): every noise condition of a tiny ``training robustness`` run, cut to
one epoch per subset with --max-epochs, streamed through the board; the board's scores must be
TFLite Micro's on every condition."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from ..conftest import REPO
from ..host_tools.test_robustness import shared_run

pytestmark = pytest.mark.hil


def test_onchip_sweep_is_bitexact_on_every_condition(request, tmp_path, tmp_path_factory):
    run = shared_run(tmp_path_factory)
    out = tmp_path / "onchip"
    argv = [sys.executable, "-m", "host_tools", "robustness", "--run", str(run)]
    argv += ["--max-epochs", "1", "--out", str(out)]
    url = request.config.getoption("--port")
    if url:
        argv += ["--port", url]
    done = subprocess.run(argv, capture_output=True, text=True, cwd=REPO, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "bit-exact on every condition" in done.stdout
    result = json.loads((out / "onchip.json").read_text())
    assert result["truncated"] and result["max_epochs"] == 1
    if not url:
        assert result["board"]["board"] == "emu-m4" and result["counter_kind"] == "instructions"
    conds = result["conditions"]
    assert len(conds) == 20  # 2 clean, 9 noise, 3 attacks x 3 eps
    for c in conds:
        assert not c.get("skipped") and c["n_epochs"] == 1, c
        assert c["onchip"]["macro_f1"] == c["tflm_int8"]["macro_f1"], c
        assert c["bitexact"] == 1.0 and c["mismatches"] == 0, c
        assert c["count_per_epoch_median"] > 1_000_000
    table = (out / "table.md").read_text()
    assert "| no noise | 10 |" in table and table.count(" (1) |") == 20
