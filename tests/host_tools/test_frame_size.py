"""The frame size the sender picks from the losses it sees (host_tools/frame_size.py)."""

import numpy as np

from host_tools.frame_size import FrameSize
from host_tools.protocol import MAX_SAMPLES_PER_FRAME


def _link(loss_per_byte: float, frames: int, seed: int = 0) -> FrameSize:
    """Frames of the size the estimate picks, each lost with the link's probability."""
    rng = np.random.default_rng(seed)
    size = FrameSize()
    for _ in range(frames):
        length = 12 + 6 + 8 * size.spf
        size.outcome(length, rng.random() > np.exp(-loss_per_byte * length))
    return size


def test_a_clean_link_sends_full_frames():
    assert _link(0.0, 200).spf == MAX_SAMPLES_PER_FRAME


def test_a_lossy_link_sends_small_frames():
    # 1 % corrupted + 0.5 % dropped bytes (make bench-faults): raw frames of 5 or 10 samples
    assert _link(0.015, 2000).spf <= 10
    # in between, in between
    assert 10 < _link(0.001, 2000).spf < MAX_SAMPLES_PER_FRAME


def test_delivered_frames_at_once_equal_one_by_one():
    one, batch = FrameSize(), FrameSize()
    for size, lost in [(60, True), (70, False), (50, True)]:
        one.outcome(size, lost)
        batch.outcome(size, lost)
    sizes = [68, 72, 40, 500]
    for size in sizes:
        one.outcome(size, False)
    batch.delivered(sizes)
    np.testing.assert_allclose(batch.loglik, one.loglik)
    assert batch.spf == one.spf


def test_lossy_only_when_frames_are_lost():
    assert not _link(0.0, 200).lossy
    assert _link(0.015, 200).lossy


def test_a_clean_link_batches_deliveries_and_the_first_loss_sees_them_all():
    """On a clean link `delivered` only accumulates; a loss afterwards starts from the same
    estimate as if every frame had been counted one by one."""
    one, batch = FrameSize(), FrameSize()
    rng = np.random.default_rng(1)
    for _ in range(50):
        sizes = [int(s) for s in rng.integers(20, 1000, rng.integers(1, 20))]
        for size in sizes:
            one.outcome(size, False)
        batch.delivered(sizes)
        assert batch.spf == one.spf == MAX_SAMPLES_PER_FRAME and not batch.lossy
    for size, lost in [(300, True), (200, False), (250, True), (100, True)]:
        one.outcome(size, lost)
        batch.outcome(size, lost)
        np.testing.assert_allclose(batch.loglik, one.loglik, rtol=1e-9)
        assert (batch.spf, batch.lossy) == (one.spf, one.lossy)
    assert batch.lossy
    batch.delivered([64, 64])
    for size in (64, 64):
        one.outcome(size, False)
    np.testing.assert_allclose(batch.loglik, one.loglik, rtol=1e-9)
    assert batch.spf == one.spf
