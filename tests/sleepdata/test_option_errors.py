"""Every command line (training, converter, host_tools) reports a bad option as one line
``error: ...`` with exit code 2 (sleepdata.cli.ArgumentParser), like its other errors."""

from __future__ import annotations

import subprocess
import sys

import pytest

from ..conftest import REPO


@pytest.mark.parametrize(
    ("command", "complaint"),
    [
        (["training", "train", "--epochs", "many"], "argument --epochs"),
        (["converter", "build"], "required: --model, --out"),
        (["host_tools", "bench", "--epochs", "0"], "must be at least 1, not 0"),
        (["host_tools", "stream"], "required: NIGHT.edf"),
    ],
)
def test_a_bad_option_is_one_line_with_exit_code_2(command, complaint):
    proc = subprocess.run(
        [sys.executable, "-m", *command], capture_output=True, text=True, cwd=REPO, timeout=120
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: ") and proc.stderr.count("\n") == 1, proc.stderr
    assert complaint in proc.stderr and "--help" in proc.stderr
    assert "Traceback" not in proc.stderr and proc.stdout == ""
