"""TensorFlow's log kept out of the converter's output, its errors still shown.

A conversion through TensorFlow prints about a hundred lines that are not for the user: C++ log
lines from absl (``I0000 ... loader.cc:236] Restoring SavedModel bundle``), Keras' "Saved
artifact" listing, the MLIR converter's printf to stdout and Python deprecation warnings. Much of
it is written by C++ straight to file descriptors 1 and 2, so `contextlib.redirect_stdout` cannot
catch it: `captured_native_output` points the descriptors at a temporary file instead.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
import warnings
from collections.abc import Iterator

#: TensorFlow's C++ log threshold: 0 all, 1 no INFO, 2 no WARNING, 3 no ERROR. Read when
#: TensorFlow is first imported, so set before that (cli.main does).
TF_LOG_LEVEL = "2"

#: absl/glog lines of severity ERROR or FATAL ("E0000 00:00:... file.cc:12] ..."), and Python
#: tracebacks or error lines: what is echoed even when the wrapped step succeeds.
_ERROR_LINE = re.compile(r"^(?:[EF]\d{4} |Traceback |\S*Error\b|.*\bERROR\b)")


def silence_tensorflow_logs() -> None:
    """Quiet TensorFlow's own loggers (environment for C++, absl and Python logging); call
    before TensorFlow is imported. A TF_CPP_MIN_LOG_LEVEL the user set is kept."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", TF_LOG_LEVEL)
    try:
        from absl import logging as absl_logging
    except ImportError:  # absl comes with TensorFlow; nothing to quiet without it
        return
    absl_logging.set_verbosity(absl_logging.ERROR)


@contextlib.contextmanager
def captured_native_output(step: str) -> Iterator[None]:
    """Run the block with file descriptors 1 and 2 (and Python warnings) captured.

    On success only the captured error lines are written to stderr; on an exception the whole
    capture is, headed by ``step`` (e.g. "int8 TFLite conversion"), before the exception goes on.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    saved = {fd: os.dup(fd) for fd in (1, 2)}
    with tempfile.TemporaryFile(mode="w+b") as log:
        failed = False
        try:
            for fd in (1, 2):
                os.dup2(log.fileno(), fd)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                yield
        except BaseException:
            failed = True
            raise
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            for fd, copy in saved.items():
                os.dup2(copy, fd)
                os.close(copy)
            log.seek(0)
            text = log.read().decode(errors="replace")
            lines = text.splitlines()
            shown = lines if failed else [line for line in lines if _ERROR_LINE.match(line)]
            if shown:
                head = f"{step} failed; its log:" if failed else f"{step}: errors logged:"
                print(head, *shown, sep="\n", file=sys.stderr)
