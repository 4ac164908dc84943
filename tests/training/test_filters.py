"""Blanco's test-time band-pass: zero phase, 0.5-40 Hz, EEG and EOG only."""

from __future__ import annotations

import numpy as np
import pytest

from training.filters import BandPass


def test_the_band_passes_in_band_waves_without_delay_and_removes_drift_and_mains():
    t = np.arange(3000) / 100.0
    alpha = 20 * np.sin(2 * np.pi * 10 * t)
    x = np.zeros((2, 4, 3000))
    x[:, 0] = alpha + 50.0 + 30 * np.sin(2 * np.pi * 0.05 * t)  # offset and slow drift
    x[:, 1] = alpha + 10 * np.sin(2 * np.pi * 45 * t)  # above the band
    x[:, 2] = alpha
    x[:, 3] = 2.0 + 0.1 * np.sin(2 * np.pi * 0.2 * t)  # the EMG envelope: a level
    y = BandPass().apply(x)
    mid = slice(500, 2500)  # away from the epoch's edges
    for c in range(3):  # zero phase: the 10 Hz wave comes out in place, at its amplitude
        np.testing.assert_allclose(y[:, c, mid], np.broadcast_to(alpha[mid], (2, 2000)), atol=0.6)
    np.testing.assert_array_equal(y[:, 3], x[:, 3])  # EMG untouched
    assert x.dtype == np.float64 and not np.shares_memory(x, y)


def test_bad_bands_and_channels_are_refused():
    with pytest.raises(ValueError, match="need 0 < low < high < 50"):
        BandPass(0.5, 60.0)
    with pytest.raises(ValueError, match="band-pass channels"):
        BandPass(channels=("EEG C3",))
