"""The int8 input transform equals its documented integer formula (docs/preprocessing.md)."""

from __future__ import annotations

import numpy as np
import pytest

from sleepdata.normalise import ChannelNorm, Normaliser, input_transform

NORM = Normaliser(
    (
        ChannelNorm("EEG Fpz-Cz", 0.05, 1.5, True),
        ChannelNorm("EEG Pz-Oz", 0.05, 1.53, True),
        ChannelNorm("EOG horizontal", 0.05, 2.3, True),
        ChannelNorm("EMG submental", 0.001, 0.0197, False, offset_uv=2.5),
    )
)


def formula(s: np.ndarray, ch: ChannelNorm) -> list[int]:
    """The documented formula with Python integers, one sample at a time."""
    samples = [int(v) for v in s]
    if ch.remove_dc:
        m = (sum(samples) + 1500) // 3000  # floor division
    else:
        m = ch.offset
    out = []
    for v in samples:
        p = (v - m) * ch.multiplier
        assert -(2**31) <= p < 2**31  # the device computes this in int32
        q = (p + (1 << (ch.shift - 1))) >> ch.shift
        out.append(max(-128, min(127, q)))
    return out


def edge_epochs() -> np.ndarray:
    rng = np.random.default_rng(0)
    n = 3000
    cases = [
        np.full((4, n), 32767),
        np.full((4, n), -32768),  # constant full scale
        np.tile(np.where(np.arange(n) % 2, 32767, -32768), (4, 1)),  # alternating full scale
        np.zeros((4, n)),
        np.full((4, n), 1234),  # constant
        np.tile(np.where(np.arange(n) < 1500, -3, 2), (4, 1)),  # mean -0.5 -> rounding
        np.tile(np.where(np.arange(n) < 1500, -2, 3), (4, 1)),  # mean +0.5
        rng.integers(-32768, 32768, (4, n)),  # clipped almost everywhere
        rng.normal(0, 300, (4, n)).round(),  # typical
    ]
    return np.stack(cases).astype(np.int16)


def test_vectorised_reference_equals_the_integer_formula_on_edge_inputs():
    s = edge_epochs()
    q = NORM.to_int8(s)
    for i in range(len(s)):
        for c, ch in enumerate(NORM.channels):
            assert q[i, c].tolist() == formula(s[i, c], ch), (i, ch.name)


def test_edge_cases_behave_as_documented():
    s = edge_epochs()
    q = NORM.to_int8(s)
    assert (q[0, :3] == 0).all() and (q[1, :3] == 0).all()  # a constant's DC is removed
    assert (q[3, 3] < -100).all()  # EMG at 0 uV sits near the bottom (offset 2.5 uV)
    assert (q[0, 3] == 127).all() and (q[1, 3] == -128).all()  # EMG saturates, no wrap-around
    assert set(np.unique(q[2, 0])) == {-128, 127}  # full-scale swing saturates


def test_one_int8_step_is_a_fixed_number_of_microvolts():
    """Amplitude is kept: doubling a signal doubles its int8 values (no per-epoch scaling)."""
    t = np.arange(3000) / 100
    x = np.zeros((2, 4, 3000))
    x[0, 0] = 20 * np.sin(2 * np.pi * t)
    x[1, 0] = 40 * np.sin(2 * np.pi * t)
    q = NORM.model_input(x).astype(float)
    assert np.abs(q[1, 0]).max() == pytest.approx(2 * np.abs(q[0, 0]).max(), abs=1)
    assert np.abs(q[0, 0]).max() == pytest.approx(20 / 1.5, abs=1)


def test_fit_maps_the_training_percentile_to_full_scale_and_survives_json():
    rng = np.random.default_rng(1)
    x = rng.normal(0, 20, (50, 4, 3000))
    x[:, 3] = np.abs(x[:, 3]) / 10
    norm = Normaliser.fit(x)
    q = norm.model_input(x)
    for c in range(4):
        assert 0.0005 < np.mean(np.abs(q[:, c].astype(int)) >= 127) < 0.01
    again = Normaliser.from_dict(norm.to_dict())
    np.testing.assert_array_equal(input_transform(norm.to_dict())(x), q)
    assert again == norm


def test_inconsistent_stored_constants_are_rejected():
    d = NORM.to_dict()
    d["channels"][0]["multiplier"] += 1
    with pytest.raises(ValueError, match="disagree"):
        Normaliser.from_dict(d)


def test_wrong_input_type_is_rejected():
    with pytest.raises(ValueError, match="expected int16"):
        NORM.to_int8(np.zeros((1, 4, 3000), dtype=np.int32))
