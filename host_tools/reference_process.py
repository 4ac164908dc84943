"""The references (TFLite Micro and ONNX, ``host_tools.reference.References``) on a process of
their own, off the streaming thread's path.

TFLite Micro's Python runtime holds the GIL through each ~10 ms invoke: on a thread of the
streaming process it stops the sender for as long (a pure-Python loop ran at half speed beside
it). In a spawned process it only takes a core's share. The process stays ``ahead`` epochs
ahead of the last ``get``, so its work is spread over the stream instead of crowding the
emulated board's first seconds. Ctrl-C is left to the parent, which stops the process.
"""

from __future__ import annotations

import multiprocessing as mp
import signal
import time
import traceback

import numpy as np

from sleepdata.tflm import softmax

from .reference import AHEAD, ONNX_BATCH, EpochReference, ModelFiles, References

#: how long the process may take to start (spawn, imports, loading both models)
START_TIMEOUT_S = 120.0


class ReferenceProcessError(RuntimeError):
    """The reference process failed or ended early."""


class ReferenceProcess:
    """References for int8 model inputs (n, 4, 3000), computed in order in a child process.

    ``start()`` spawns it (the models load there while the caller goes on); ``compute(inputs)``
    hands it the inputs; ``get(k)`` waits for epoch k's reference. ``output_scale`` and
    ``output_zero_point`` (the int8 output quantisation) wait until the models are loaded.
    ``cpu_s`` is the process's CPU time so far. ``stop()`` ends it."""

    def __init__(self, model: ModelFiles, *, batch: int = ONNX_BATCH, ahead: int = AHEAD):
        ctx = mp.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._child_conn = child
        self._proc = ctx.Process(
            target=_serve, args=(model, child, batch), name="references", daemon=True
        )
        self._ahead = ahead
        self._allowed = 0
        self._done: list[EpochReference] = []
        self._quant: tuple[float, int] | None = None
        self.cpu_s = 0.0

    def start(self) -> ReferenceProcess:
        self._proc.start()
        self._child_conn.close()
        return self

    def _receive(self, timeout_s: float, what: str) -> None:
        """Takes one message from the process; raises if it failed, ended or said nothing."""
        try:
            if not self._conn.poll(timeout_s):
                raise ReferenceProcessError(
                    f"the reference process gave no {what} in {timeout_s} s"
                )
            msg = self._conn.recv()
        except (EOFError, OSError) as exc:
            code = self._proc.exitcode
            raise ReferenceProcessError(
                f"the reference process ended (exit code {code}) before {what}"
            ) from exc
        kind = msg[0]
        if kind == "ready":
            self._quant = (msg[1], msg[2])
        elif kind == "ref":
            _, tflm, probs, cpu = msg  # in epoch order (a pipe keeps the order)
            self._done.append(EpochReference(tflm, probs))
            self.cpu_s = cpu
        elif kind == "error":
            raise ReferenceProcessError(f"reference computation failed: {msg[1]}")

    def _quantisation(self) -> tuple[float, int]:
        deadline = time.monotonic() + START_TIMEOUT_S
        while self._quant is None:
            self._receive(max(0.0, deadline - time.monotonic()), "model")
        return self._quant

    @property
    def output_scale(self) -> float:
        return self._quantisation()[0]

    @property
    def output_zero_point(self) -> int:
        return self._quantisation()[1]

    def compute(self, inputs_int8: np.ndarray) -> None:
        """Hands over the inputs (n, 4, 3000) int8, replacing any earlier ones."""
        self._done.clear()
        self._allowed = 0
        self._conn.send(("inputs", np.ascontiguousarray(inputs_int8, dtype=np.int8)))

    def get(self, k: int, timeout_s: float = 600.0) -> EpochReference:
        """Epoch k's reference (waiting for it); lets the process run ``ahead`` epochs further."""
        if k + 1 + self._ahead > self._allowed:
            self._allowed = k + 1 + self._ahead
            self._conn.send(("allow", self._allowed))
        deadline = time.monotonic() + timeout_s
        while len(self._done) <= k:
            self._receive(max(0.0, deadline - time.monotonic()), f"reference for epoch {k}")
        return self._done[k]

    def stop(self) -> None:
        """Ends the process (at once; it keeps nothing)."""
        if self._proc.pid is None:
            return
        try:
            self._conn.send(("stop",))
        except OSError:
            pass  # it has ended already
        self._proc.join(timeout=5)
        if self._proc.is_alive():
            self._proc.terminate()
            self._proc.join()
        self._conn.close()


def _serve(model: ModelFiles, conn, batch: int) -> None:
    """The process: load the models, then compute references as far as allowed."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C and stops us
    try:
        refs = References(model)
        conn.send(("ready", refs.output_scale, refs.output_zero_point))
        inputs: np.ndarray | None = None
        allowed, k, probs = 0, 0, np.empty((0, 5))
        while True:
            if inputs is None or k >= min(allowed, len(inputs)):
                msg = conn.recv()
                if msg[0] == "stop":
                    return
                if msg[0] == "inputs":
                    inputs, allowed, k = msg[1], 0, 0
                elif msg[0] == "allow":
                    allowed = max(allowed, msg[1])
                continue
            if k % batch == 0:  # ONNX in batches: the call's overhead is per batch
                probs = softmax(refs.float_logits(inputs[k : k + batch]))
            tflm = refs.tflm(inputs[k])
            conn.send(("ref", tflm, probs[k % batch], time.process_time()))
            k += 1
    except (EOFError, BrokenPipeError):
        return  # the parent has gone
    except Exception:
        conn.send(("error", traceback.format_exc(limit=4)))
