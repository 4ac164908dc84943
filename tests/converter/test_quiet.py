"""converter.quiet: what native code writes to file descriptors 1 and 2 during a conversion step
stays out of the output, errors excepted; and the converter's one-line errors."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings

import pytest

from converter.quiet import captured_native_output

from ..conftest import REPO


def native_write(fd: int, text: str) -> None:
    """Write as C++ does: straight to the descriptor, past sys.stdout/sys.stderr."""
    os.write(fd, text.encode())


def test_info_and_warnings_are_dropped_errors_shown(capfd):
    with captured_native_output("step"):
        native_write(1, "fully_quantize: 0, inference_type: 6\n")
        native_write(2, "I0000 00:00:1.0 loader.cc:236] Restoring SavedModel bundle.\n")
        native_write(2, "W0000 00:00:1.0 flatbuffer_export.cc:3851] Skipping metadata\n")
        native_write(2, "E0000 00:00:1.0 convert.cc:12] calibration failed for op 3\n")
        warnings.warn("tf.lite.Interpreter is deprecated", UserWarning, stacklevel=1)
    out, err = capfd.readouterr()
    assert out == ""
    assert err.splitlines() == [
        "step: errors logged:",
        "E0000 00:00:1.0 convert.cc:12] calibration failed for op 3",
    ]


def test_the_whole_log_is_shown_when_the_step_fails(capfd):
    with pytest.raises(ValueError, match="bad model"), captured_native_output("int8 conversion"):
        native_write(2, "I0000 00:00:1.0 reader.cc:83] Reading SavedModel\n")
        native_write(1, "fully_quantize: 0\n")
        raise ValueError("bad model")
    _out, err = capfd.readouterr()
    assert err.splitlines() == [
        "int8 conversion failed; its log:",
        "I0000 00:00:1.0 reader.cc:83] Reading SavedModel",
        "fully_quantize: 0",
    ]


def test_descriptors_are_restored(capfd):
    with captured_native_output("step"):
        native_write(1, "hidden\n")
    native_write(1, "shown\n")
    print("also shown")
    out, _err = capfd.readouterr()
    assert out == "shown\nalso shown\n"


def test_a_folder_that_is_not_a_model_is_one_line_exit_2(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "converter", "build", "--model", str(tmp_path / "nope"),
         "--out", str(tmp_path / "out")],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr
    assert "python -m training train" in lines[0]
    assert not (tmp_path / "out").exists()  # refused before anything is written
