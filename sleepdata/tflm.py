"""TensorFlow Lite Micro's host runtime (the ``tflite-micro`` package): the bit-exact reference
for the int8 results on a microcontroller, and the exact arena size a TFLM deployment needs; and
the probabilities of int8 scores (the one softmax of the toolkit).

``tflite-micro`` is imported when a runner is made, so the rest of the core does not need it."""

from __future__ import annotations

import os
import re
import tempfile

import numpy as np


def softmax(logits: np.ndarray) -> np.ndarray:
    """Probabilities (n, classes) float64 from logits (n, classes)."""
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def int8_probs(scores: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """Probabilities of int8 scores (n, classes): softmax of the dequantised logits
    ``(q - zero_point) * scale`` (the model's output quantisation)."""
    return softmax((np.asarray(scores, dtype=np.float64) - zero_point) * scale)


class TflmRunner:
    """One int8 .tflite model on TFLite Micro's host runtime."""

    def __init__(self, model: bytes):
        from tflite_micro.python.tflite_micro import runtime

        self._interp = runtime.Interpreter.from_bytes(model)
        details = self._interp.get_input_details(0)
        self.input_shape = tuple(int(s) for s in details["shape"])
        out = self._interp.get_output_details(0)["quantization_parameters"]
        #: int8 output quantisation: logit = (q - output_zero_point) * output_scale
        self.output_scale = float(out["scales"][0])
        self.output_zero_point = int(out["zero_points"][0])

    def run_one(self, x_int8: np.ndarray) -> np.ndarray:
        """One int8 input (rows, time) -> its int8 output (classes,)."""
        self._interp.set_input(np.asarray(x_int8, dtype=np.int8).reshape(self.input_shape), 0)
        self._interp.invoke()
        return np.array(self._interp.get_output(0), dtype=np.int8).reshape(-1)

    def run(self, x_int8: np.ndarray) -> np.ndarray:
        """int8 inputs (n, rows, time) -> int8 outputs (n, classes)."""
        return np.stack([self.run_one(x) for x in np.asarray(x_int8, dtype=np.int8)])

    def probs(self, scores: np.ndarray) -> np.ndarray:
        """Probabilities of this model's int8 outputs (n, classes)."""
        return int8_probs(scores, self.output_scale, self.output_zero_point)

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
