"""Guarding calls into pyedflib: its C prints kept off the user's terminal, and its failures
described in one line.

pyedflib's C core (edflib) reports some problems with printf ("filesize ... != ...") on the
process's stdout, and it raises OSError for what it detects but ZeroDivisionError, ValueError and
others for what it does not (a data-record duration of 0, a startdate of 31.02.89). The readers
(sleepdata.psg, sleepdata.hypnogram) turn all of these into their DataError subclasses.
"""

from __future__ import annotations

import ctypes
import os
import re
import sys
import tempfile
import threading
from contextlib import contextmanager
from pathlib import Path


def _libc_fflush() -> None:
    """Flush C stdio buffers: printf output can sit in a buffer (a pipe or file is
    block-buffered) and surface later, far from the call that printed it."""
    try:
        ctypes.CDLL(None).fflush(None)
    except (OSError, AttributeError, TypeError):  # no C runtime to flush on this platform
        pass


#: one redirection of fd 1 and 2 at a time (see captured_fds)
_FDS_LOCK = threading.RLock()


@contextmanager
def captured_fds(said: list[str]):
    """Send what C code writes on fd 1 and 2 during the block to ``said`` (one string appended,
    at most 4 kB, "" when nothing was written) instead of the user.

    Python cannot intercept C's printf at sys.stdout, so the file descriptors themselves are
    redirected; output of other threads during the block is captured too, so keep the block
    short. The descriptors are the process's: blocks of several threads (a cohort streams
    nights on one thread per board) take turns, or one would restore the other's sink as the
    user's output. Where fd 1/2 cannot be duplicated (closed), output is left alone.
    """
    with _FDS_LOCK:
        yield from _captured(said)


def _captured(said: list[str]):
    for stream in (sys.stdout, sys.stderr):
        if stream is not None:
            stream.flush()
    _libc_fflush()
    try:
        saved = [os.dup(1), os.dup(2)]
    except OSError:
        yield
        return
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 1)
        os.dup2(sink.fileno(), 2)
        try:
            yield
        finally:
            _libc_fflush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])
            sink.seek(0)
            said.append(sink.read(4096).decode("ascii", "replace").strip())


def describe_failure(
    path: str | Path, exc: BaseException, said: str = ""
) -> tuple[str | None, str]:
    """(header field edflib names, or None; one-line reason without the file name) for an
    exception raised by pyedflib on ``path``, with what the library printed (``said``)."""
    reason = str(exc).replace(str(path), "").strip(" :") or type(exc).__name__
    if said:
        reason = f"{reason}; the EDF library said: {said}"
    reason = " ".join(reason.split())
    # edflib names the header field it rejects: "... compliant (Duration)", "... compliant, the
    # startdate is incorrect", "... compliant (it contains format errors)".
    named = re.search(r"compliant,? *(?:\(([^)]+)\)|the (\w+) is incorrect)", reason)
    if named is None:
        return None, reason
    field = named.group(1) or named.group(2)
    return ("format" if field == "it contains format errors" else field), reason
