"""Layer 2c: the frame size on a lossy link (docs/protocol.md, Recovery, "Frame size").

The sender estimates the per-byte loss rate r from its frames' fates (the most likely r on a
grid, given which frames got through; recent frames weigh more) and sends the number of samples
per frame that carries the most samples per byte sent when a frame of L bytes gets through with
probability exp(-r L): 125 on a clean link, 5 at 1.5 % lost bytes.
"""

from __future__ import annotations

import functools

import numpy as np

from .protocol import HEADER_LEN, MAX_SAMPLES_PER_FRAME, SAMPLE_BLOCK

_SPF = np.arange(SAMPLE_BLOCK, MAX_SAMPLES_PER_FRAME + 1, SAMPLE_BLOCK)
_LOSS_GRID = np.geomspace(1e-6, 0.3, 64)


@functools.lru_cache(maxsize=4096)
def _best_samples_per_frame(loss_index: int, per_sample_x4: int, head: int) -> int:
    """Samples per frame that carry the most samples per byte sent when each byte is lost with
    probability r = _LOSS_GRID[loss_index]; a frame is ``head`` bytes (first index, n; the
    coding's head) plus per_sample_x4 / 4 bytes a sample (quarters: the cache's key), plus the
    framing."""
    r = _LOSS_GRID[loss_index]
    length = HEADER_LEN + head + per_sample_x4 / 4 * _SPF + 4
    return int(_SPF[np.argmax(_SPF / length * np.exp(-r * length))])


class FrameSize:
    """The loss estimate and the samples per frame it implies (``spf``).

    While the most likely loss rate is the grid's lowest, frames that get through cannot move it
    (each lowers the log-likelihood of a higher rate more), so `delivered` only accumulates
    their decayed sum in two floats, and the grid takes it when a frame is lost or ``loglik`` is
    read: on a clean link a batch of ACKs costs a few float operations, not numpy calls."""

    def __init__(self) -> None:
        self._loglik = np.zeros(len(_LOSS_GRID))  # of each per-byte loss rate
        self._decay, self._bytes = 1.0, 0.0  # what the grid has yet to take: x decay - r bytes
        self._loss = 0  # index of the most likely rate
        self.spf = MAX_SAMPLES_PER_FRAME
        self.per_sample, self.head = 8.0, 6  # raw frames; coded ones measured as they go

    @property
    def loglik(self) -> np.ndarray:
        """The log-likelihood of each loss rate of the grid."""
        if self._decay != 1.0 or self._bytes:
            self._loglik *= self._decay
            self._loglik -= _LOSS_GRID * self._bytes
            self._decay, self._bytes = 1.0, 0.0
        return self._loglik

    @property
    def lossy(self) -> bool:
        """Whether the frames' fates say bytes are being lost (above 1 in 100,000)."""
        return bool(_LOSS_GRID[self._loss] > 1e-5)

    def coded(self, head: int, per_sample: float) -> None:
        """A coded frame of ``per_sample`` bytes a sample after its ``head`` went out."""
        self.head = head
        self.per_sample += 0.1 * (per_sample - self.per_sample)

    def _choose(self) -> None:
        self.spf = _best_samples_per_frame(self._loss, round(4 * self.per_sample), self.head)

    def delivered(self, sizes: list[int]) -> None:
        """Frames of these sizes got through, in this order (outcome() of each, at once)."""
        if self._loss == 0:
            decay, sent = self._decay, self._bytes
            for size in sizes:
                decay *= 0.98
                sent = sent * 0.98 + size
            self._decay, self._bytes = decay, sent
        else:
            n = len(sizes)
            weights = 0.98 ** np.arange(n - 1, -1, -1)
            loglik = self.loglik
            loglik *= 0.98**n
            loglik -= _LOSS_GRID * float(np.dot(weights, sizes))
            self._loss = int(np.argmax(loglik))
        self._choose()

    def outcome(self, size: int, lost: bool) -> None:
        """A frame of ``size`` bytes got through or was lost."""
        rl = _LOSS_GRID * size
        loglik = self.loglik
        loglik *= 0.98
        loglik += np.log(-np.expm1(-rl)) if lost else -rl
        self._loss = int(np.argmax(loglik))
        self._choose()
