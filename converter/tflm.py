"""TensorFlow Lite Micro's host runtime (the ``tflite-micro`` package): the bit-exact reference
for the int8 results on a microcontroller, and the exact arena size a TFLM deployment needs."""

from __future__ import annotations

import os
import re
import tempfile

import numpy as np


class TflmRunner:
    def __init__(self, model: bytes):
        from tflite_micro.python.tflite_micro import runtime

        self._interp = runtime.Interpreter.from_bytes(model)
        details = self._interp.get_input_details(0)
        self.input_shape = tuple(int(s) for s in details["shape"])

    def run(self, x_int8: np.ndarray) -> np.ndarray:
        """int8 inputs (n, rows, time) -> int8 outputs (n, classes)."""
        out = []
        for x in np.asarray(x_int8, dtype=np.int8):
            self._interp.set_input(x.reshape(self.input_shape), 0)
            self._interp.invoke()
            out.append(np.array(self._interp.get_output(0)).reshape(-1))
        return np.stack(out).astype(np.int8)

    def arena_bytes(self) -> int:
        """Total arena in use, from the runtime's allocation report (printed on C stderr)."""
        report = _capture_fd2(self._interp.print_allocations)
        head = re.search(r"Arena allocation head (\d+) bytes", report)
        tail = re.search(r"Arena allocation tail (\d+) bytes", report)
        total = re.search(r"Arena allocation total (\d+) bytes", report)
        if total:
            return int(total.group(1))
        if head and tail:
            return int(head.group(1)) + int(tail.group(1))
        raise RuntimeError(f"no arena figures in TFLM allocation report:\n{report[:500]}")


def _capture_fd2(fn) -> str:
    """Run fn with the process-level stderr (fd 2) redirected; return what it printed."""
    with tempfile.TemporaryFile(mode="w+b") as tmp:
        saved = os.dup(2)
        try:
            os.dup2(tmp.fileno(), 2)
            fn()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        tmp.seek(0)
        return tmp.read().decode(errors="replace")
