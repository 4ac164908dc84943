"""sleepdata.edfguard: C-level prints kept off the terminal, library failures in one line."""

from __future__ import annotations

import ctypes
import os
import subprocess
import sys
import textwrap

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


def test_threads_take_turns_and_the_user_keeps_the_output():
    """Blocks on several threads at once (a cohort loads nights on one thread per board): each
    thread's C output is captured, none reaches the user, and fd 1 is the user's again after."""
    script = textwrap.dedent(
        """
        import os, threading
        from sleepdata.edfguard import captured_fds
        said = []
        def worker(k):
            for _ in range(100):
                with captured_fds(said):
                    os.write(1, b"C noise %d" % k)
        threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
        [t.start() for t in threads]
        [t.join() for t in threads]
        os.write(1, b"after %d %d" % (len(said), sum(s.startswith("C noise") for s in said)))
        """
    )
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, check=True)
    assert run.stdout == b"after 400 400"
