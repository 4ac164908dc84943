"""Stand-ins shared by the host_tools tests and the hardware-in-the-loop tests: a board whose
scores come from TFLite Micro, and adversarial epoch files made up for a test night."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from host_tools import runfolder as rf
from host_tools.device import DeviceError, LinkCounters
from host_tools.protocol import CounterKind, Info, Result
from host_tools.reference import ModelFiles, References
from sleepdata import adversarial as adversarial_file
from sleepdata.noise import SignalStats
from sleepdata.normalise import Normaliser
from sleepdata.stages import N2

#: noise statistics given explicitly to a stream (not the model's config.json ones)
SIGNAL_STATS = SignalStats(
    mean_uv=np.array([0.0, 0.0, 1.0, 1.2]),
    std_uv=np.array([25.0, 18.0, 28.0, 0.5]),
    min_uv=np.array([-250.0, -200.0, -350.0, 0.0]),
    max_uv=np.array([250.0, 210.0, 350.0, 6.0]),
    source="test (given explicitly)",
)


def board_info(model: ModelFiles, **changes) -> Info:
    """The INFO of a board running ``model`` with its preprocessing; ``changes`` override
    fields."""
    norm = Normaliser.from_dict(model.config["normalisation"])
    fields = {
        "firmware_version": "0.2.0",
        "build_hash": 1,
        "protocol_version": 2,
        "model_hash": model.model_hash,
        "channels": 4,
        "sample_rate_hz": 100,
        "epoch_samples": 3000,
        "norm": [(int(c.remove_dc), c.shift, c.offset, c.multiplier) for c in norm.channels],
        "static_ram_bytes": 1,
        "counter_kind": CounterKind.INSTRUCTIONS,
        "core_clock_hz": 200_000_000,
        "board": "fake",
    }
    return Info(**{**fields, **changes})


class FakeBoard:
    """Device's public streaming API; scores from TFLite Micro on the board's own integer
    preprocessing of the samples it receives, so every epoch is bit-exact unless ``corrupt``
    names stream epochs to alter. ``sent_at``: time.monotonic() when each epoch was handed
    over."""

    def __init__(self, model: ModelFiles, corrupt=()):
        self.model = model
        self.norm = Normaliser.from_dict(model.config["normalisation"])
        self.refs = References(model)
        self.corrupt = set(corrupt)
        self.counters = LinkCounters()
        self.layer_counts = None
        self.samples_acked = 0
        self.profile = False
        self.next_epoch = 0
        self.sent_at = []

    def hello(self) -> Info:
        return board_info(self.model)

    def reset_stream(self) -> None:
        self.next_epoch = 0

    def set_profile(self, enabled: bool, *, events: bool = False) -> None:
        if events:  # as an emulated board: no DWT event counters
            raise DeviceError(f"PROFILE: {self.hello().board} has no DWT event counters")
        self.profile = enabled

    def send_epoch(self, epoch_index: int, samples: np.ndarray) -> Result:
        return next(self.stream_epochs(epoch_index, [samples]))

    def stream_epochs(self, first_epoch, epochs):

        for k, samples in enumerate(epochs, first_epoch):
            self.sent_at.append(time.monotonic())
            assert k == self.next_epoch and samples.shape == (3000, 4)
            self.counters.bytes_sent += 24 * 1010
            self.samples_acked = (k + 1) * 3000
            self.next_epoch += 1
            x = self.norm.to_int8(np.ascontiguousarray(samples.T)[None])[0]
            scores = self.refs.tflm(x).astype(int)
            if k in self.corrupt:
                scores[0] = min(scores[0] + 1, 127)
            if self.profile:
                self.layer_counts = [(1000, 100), (2000, 0)]
            yield Result(k, int(np.argmax(scores)), tuple(scores), 200_000, 66_000_000, 0)


def write_adversarial_file(path: Path, record: str, idx, wire, labels, sha256: str | None):
    """An adversarial epoch file for ``record`` (a made-up PGD attack)."""
    meta = {
        "record": record,
        "attack": "pgd",
        "eps_uv": 6.0,
        "eps_uv_per_channel": [6.0, 5.0, 7.0, 0.2],
        "iterations": 10,
        "step_uv": 1.5,
        "seed": 0,
        "crafted_on": "float model (test)",
        "int8_model_sha256": sha256,
    }
    return adversarial_file.write(path, wire=wire, index=idx, labels=labels, meta=meta)


def perturbed_wire(epochs_uv, idx, norm, seed: int = 0) -> np.ndarray:
    """The clean wire samples of ``idx`` moved by up to +-400 lsb (an "attack" for tests)."""
    rng = np.random.default_rng(seed)
    clean = norm.to_wire(epochs_uv[idx]).astype(np.int32)
    return np.clip(clean + rng.integers(-400, 401, clean.shape), -32768, 32767).astype(np.int16)


def epoch_row(epoch: int, stage: int = N2, *, mismatch: bool = False) -> rf.EpochRow:
    """A results.csv row of a made-up run: ``stage`` everywhere, and with ``mismatch`` TFLite
    Micro's first score one higher than the board's."""
    scores = [-20, -10, -5, -30, -40]
    scores[stage] = 50
    tflm = list(scores)
    if mismatch:
        tflm[0] += 1
    probs = np.full(5, 0.05)
    probs[stage] = 0.8
    return rf.EpochRow(
        epoch=epoch,
        onset_s=30.0 * (epoch + 100),
        expert=stage,
        onchip=stage,
        onchip_scores=tuple(scores),
        tflm_scores=tuple(tflm),
        float_probs=tuple(probs),
        preprocess_count=200_000 + epoch,
        inference_count=66_000_000 + 10 * epoch,
    )


def write_rows(path: Path, rows) -> None:
    """results.csv at ``path`` with ``rows`` appended."""
    with rf.ResultsWriter(path) as w:
        for r in rows:
            w.write(r)
