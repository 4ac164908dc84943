"""The host's references for the board's results, computed from the same int8 model inputs.

- **TFLite Micro** (the ``tflite-micro`` runtime) runs ``model_int8.tflite``: the board's int8
  scores must equal its outputs bit for bit (tolerance 0).
- **ONNX** (onnxruntime) runs the float model ``model.onnx`` on ``q / 16``, the float value of the
  same int8 input (docs/preprocessing.md): agreement with it is the int8 model's fidelity, not a
  check of the board.

`ReferenceWorker` computes both for a sequence of inputs on a thread, so the host works while
it waits for the board (the wait is I/O). Nothing here prints.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sleepdata.normalise import INPUT_SCALE

REPO = Path(__file__).resolve().parents[1]
MODEL_DIR = REPO / "models" / "ulw_sleepnet"
TFLITE = "model_int8.tflite"
ONNX = "model.onnx"
#: ONNX batch: large enough to amortise the call, small enough that the first results are early.
ONNX_BATCH = 32
#: TFLite Micro holds the GIL for its ~10 ms per epoch; staying only a few epochs ahead of the
#: board spreads those calls over the stream instead of stalling its first seconds.
AHEAD = 4


def softmax(logits: np.ndarray) -> np.ndarray:
    """Probabilities (n, classes) float64 from logits (n, classes)."""
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


class ModelError(RuntimeError):
    """A model folder without the files the host tools need; says what writes them."""


@dataclass(frozen=True)
class ModelFiles:
    """A model folder as the host tools need it: config, int8 model, float model, hash."""

    folder: Path
    config: dict
    tflite: bytes
    #: first 8 bytes of the SHA-256 of model_int8.tflite (what the board reports in INFO)
    model_hash: bytes

    @classmethod
    def load(cls, folder: str | Path = MODEL_DIR) -> ModelFiles:
        folder = Path(folder)
        for name in ("config.json", TFLITE, ONNX):
            if not (folder / name).is_file():
                raise ModelError(
                    f"{folder / name} does not exist; is {folder} a model folder "
                    "(make convert writes it)?"
                )
        tflite = (folder / TFLITE).read_bytes()
        config = json.loads((folder / "config.json").read_text())
        return cls(folder, config, tflite, hashlib.sha256(tflite).digest()[:8])


class References:
    """TFLM and ONNX on int8 model inputs (4, 3000) / (n, 4, 3000)."""

    def __init__(self, model: ModelFiles):
        import onnxruntime as ort
        from tflite_micro.python.tflite_micro import runtime

        self._tflm = runtime.Interpreter.from_bytes(model.tflite)
        inp = self._tflm.get_input_details(0)
        self._input_shape = tuple(int(s) for s in inp["shape"])
        out = self._tflm.get_output_details(0)["quantization_parameters"]
        #: int8 output quantisation: logit = (q - zero_point) * scale
        self.output_scale = float(out["scales"][0])
        self.output_zero_point = int(out["zero_points"][0])
        opts = ort.SessionOptions()
        # The machine is shared with the emulated board (QEMU): one thread each is enough.
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        self._onnx = ort.InferenceSession(
            str(model.folder / ONNX), opts, providers=["CPUExecutionProvider"]
        )

    def tflm(self, x_int8: np.ndarray) -> np.ndarray:
        """One epoch's int8 input (4, 3000) -> the int8 scores (5,) of TFLite Micro."""
        self._tflm.set_input(np.asarray(x_int8, dtype=np.int8).reshape(self._input_shape), 0)
        self._tflm.invoke()
        return np.array(self._tflm.get_output(0), dtype=np.int8).reshape(-1)

    def float_logits(self, x_int8: np.ndarray) -> np.ndarray:
        """int8 inputs (n, 4, 3000) -> float logits (n, 5) of the ONNX float model."""
        x = np.asarray(x_int8, dtype=np.float32) * np.float32(INPUT_SCALE)
        return self._onnx.run(None, {"epoch": x})[0]

    def int8_probs(self, scores: np.ndarray) -> np.ndarray:
        """Dequantised softmax of int8 scores (n, 5) -> probabilities (n, 5)."""
        q = np.asarray(scores, dtype=np.float64)
        return softmax((q - self.output_zero_point) * self.output_scale)


@dataclass
class EpochReference:
    tflm_scores: np.ndarray  # int8 (5,)
    float_probs: np.ndarray  # float64 (5,)


class ReferenceWorker:
    """References for inputs[0..n-1], computed in order on a thread that stays ``ahead`` epochs
    ahead of the last ``get``; ``get(k)`` waits for k.

    ``cpu_s`` is the thread's own CPU time (time.thread_time). An exception on the thread is
    raised again by ``get``."""

    def __init__(
        self,
        refs: References,
        inputs_int8: np.ndarray,
        *,
        batch: int = ONNX_BATCH,
        ahead: int = AHEAD,
    ):
        self._refs = refs
        self._ahead = ahead
        self._wanted = 0  # get() has asked for epochs below this
        self._inputs = inputs_int8
        self._batch = batch
        self._done: list[EpochReference] = []
        self._error: BaseException | None = None
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self.cpu_s = 0.0
        self._thread = threading.Thread(target=self._run, name="references", daemon=True)

    def start(self) -> ReferenceWorker:
        self._thread.start()
        return self

    def _run(self) -> None:
        t0 = time.thread_time()
        try:
            for lo in range(0, len(self._inputs), self._batch):
                chunk = self._inputs[lo : lo + self._batch]
                probs = softmax(self._refs.float_logits(chunk))
                for x, p in zip(chunk, probs, strict=True):
                    with self._cond:  # stay a few epochs ahead of the board, not all of them
                        self._cond.wait_for(
                            lambda: (
                                len(self._done) < self._wanted + self._ahead or self._stop.is_set()
                            )
                        )
                    if self._stop.is_set():
                        return
                    ref = EpochReference(self._refs.tflm(x), p)
                    with self._cond:
                        self._done.append(ref)
                        self.cpu_s = time.thread_time() - t0
                        self._cond.notify_all()
        except BaseException as exc:  # handed to the caller by get()
            with self._cond:
                self._error = exc
                self._cond.notify_all()
        finally:
            with self._cond:
                self.cpu_s = time.thread_time() - t0
                self._cond.notify_all()

    def get(self, k: int, timeout_s: float = 600.0) -> EpochReference:
        with self._cond:
            self._wanted = max(self._wanted, k + 1)
            self._cond.notify_all()
            ok = self._cond.wait_for(
                lambda: len(self._done) > k or self._error is not None, timeout=timeout_s
            )
            if len(self._done) > k:
                return self._done[k]
            if self._error is not None:
                raise RuntimeError(f"reference computation failed: {self._error}") from (
                    self._error
                )
            if not ok:
                raise RuntimeError(f"reference for epoch {k} not ready after {timeout_s} s")
            raise RuntimeError(f"no reference for epoch {k}")

    def stop(self) -> None:
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        if self._thread.ident is not None:
            self._thread.join(timeout=30)
