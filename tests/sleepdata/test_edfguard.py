"""sleepdata.edfguard: C-level prints kept off the terminal, library failures in one line."""

from __future__ import annotations

import ctypes
import os
import sys

import pytest

from sleepdata.edfguard import captured_fds, describe_failure


@pytest.mark.skipif(sys.platform == "win32", reason="printf through the process's C runtime")
def test_c_printf_without_newline_is_captured_not_shown(capfd):
    """edflib's "filesize ... != ..." has no newline: in a block-buffered stdout it would
    surface at the next flush, glued to some later output, unless flushed inside the block."""
    said: list[str] = []
    with captured_fds(said):
        ctypes.CDLL(None).printf(b"filesize %d != %d ", ctypes.c_int(10), ctypes.c_int(20))
        os.write(2, b"on stderr\n")
    ctypes.CDLL(None).fflush(None)
    assert capfd.readouterr() == ("", "")
    (text,) = said  # the order of the two depends on C stdio buffering
    assert "filesize 10 != 20" in text and "on stderr" in text


def test_nothing_printed_gives_an_empty_string(capfd):
    said: list[str] = []
    with captured_fds(said):
        pass
    print("after")
    assert said == [""]
    assert capfd.readouterr().out == "after\n"


@pytest.mark.parametrize(
    ("message", "field"),
    [
        ("/d/x.edf: the file is not EDF(+) or BDF(+) compliant (Duration)", "Duration"),
        ("/d/x.edf: the file is not EDF(+) or BDF(+) compliant, the startdate is incorrect, it "
         "might contain incorrect characters", "startdate"),
        ("/d/x.edf: the file is not EDF(+) or BDF(+) compliant (it contains format errors)",
         "format"),
        ("float division by zero", None),
    ],
)  # fmt: skip
def test_failures_name_the_field_without_the_path(message, field):
    name, reason = describe_failure("/d/x.edf", OSError(message), said="filesize 1\n!= 2")
    assert name == field
    assert "/d/x.edf" not in reason and "\n" not in reason
    assert reason.endswith("the EDF library said: filesize 1 != 2")
