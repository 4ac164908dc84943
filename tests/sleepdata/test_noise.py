"""The REST noise generators (sleepdata.noise): Gaussian and shot noise with the statistics the
paper gives them, the noise specs and the signal statistics they are drawn with."""

from __future__ import annotations

import numpy as np
import pytest

from sleepdata.noise import SHOT_LEVELS, NoiseSpec, SignalStats, gaussian_noise, shot_noise

STATS = SignalStats(
    mean_uv=np.array([0.5, -1.0, 2.0, 1.5]),
    std_uv=np.array([20.0, 15.0, 30.0, 0.4]),
    min_uv=np.array([-200.0, -180.0, -400.0, 0.0]),
    max_uv=np.array([200.0, 190.0, 400.0, 5.0]),
    source="test",
)


def test_shot_noise_is_poisson_in_the_scaled_range_and_clipped_to_it():
    lo, hi = STATS.min_uv.reshape(-1, 1), STATS.max_uv.reshape(-1, 1)
    xn = 0.3
    x = np.broadcast_to(lo + xn * (hi - lo), (4, 200_000)).copy()
    for c in SHOT_LEVELS.values():
        y = shot_noise(x, c, STATS, np.random.default_rng(2))
        yn = (y - lo) / (hi - lo)
        n = yn.shape[1]
        want_sd = np.sqrt(xn / c)
        assert np.all(np.abs(yn.mean(axis=1) - xn) < 5 * want_sd / np.sqrt(n))
        assert np.allclose(yn.std(axis=1), want_sd, rtol=0.02)
        # the values are counts / c
        assert np.allclose(yn * c, np.rint(yn * c))
    outside = np.array([[-1e4, 1e4]] * 4)
    y = shot_noise(outside, 1000.0, STATS, np.random.default_rng(3))
    assert np.allclose(y[:, 0], STATS.min_uv) and np.allclose(y[:, 1], STATS.max_uv)


def test_noise_specs_parse_numbers_and_rest_levels():
    assert NoiseSpec.parse("gaussian:0.2") == NoiseSpec("gaussian", 0.2)
    assert NoiseSpec.parse("gaussian-mean:high") == NoiseSpec("gaussian-mean", 0.3)
    assert NoiseSpec.parse("shot:high") == NoiseSpec("shot", 1000.0)
    assert NoiseSpec.parse("Gaussian:low").level == 0.1
    assert str(NoiseSpec.parse("shot:2500")) == "shot:2500"
    for bad in ("pink:1", "gaussian", "gaussian:-1", "shot:abc", "gaussian:nan"):
        with pytest.raises(ValueError, match="noise"):
            NoiseSpec.parse(bad)


def test_signal_stats_fit_per_night_lists_and_round_trip():
    rng = np.random.default_rng(0)
    nights = [rng.normal(size=(3, 4, 100)), rng.normal(size=(5, 4, 100)) * 3]
    a = SignalStats.fit(nights, source="two nights")
    b = SignalStats.fit(np.concatenate(nights), source="concatenated")
    for k in ("mean_uv", "std_uv", "min_uv", "max_uv"):
        assert np.allclose(getattr(a, k), getattr(b, k))
    back = SignalStats.from_config({"signal_stats": a.to_dict()})
    assert np.allclose(back.std_uv, a.std_uv) and back.source == "two nights"
    assert SignalStats.from_config({"model": {}}) is None


@pytest.mark.parametrize("with_mean", [False, True])
def test_gaussian_noise_has_mean_0_or_mu_and_std_c_sigma(with_mean):
    stats = SignalStats(
        np.array([0.5, -1.0, 2.0, 1.5]),
        np.array([20.0, 10.0, 30.0, 1.0]),
        np.full(4, -100.0),
        np.full(4, 100.0),
        "test",
    )
    x = np.zeros((200, 4, 3000))
    noise = gaussian_noise(x, 0.3, stats, np.random.default_rng(0), with_mean=with_mean) - x
    want_mean = stats.mean_uv if with_mean else np.zeros(4)
    np.testing.assert_allclose(noise.mean(axis=(0, 2)), want_mean, atol=0.02)
    np.testing.assert_allclose(noise.std(axis=(0, 2)), 0.3 * stats.std_uv, rtol=0.01)


def test_shot_noise_has_mean_x_and_variance_x_over_c_in_scaled_units():
    stats = SignalStats(np.zeros(4), np.ones(4), np.full(4, -50.0), np.full(4, 150.0), "test")
    level = np.array([0.0, 50.0, -25.0, 100.0]).reshape(1, 4, 1)  # xn = 0.25, 0.5, 0.125, 0.75
    x = np.broadcast_to(level, (100, 4, 3000))
    for c in (5000.0, 1000.0):
        out = shot_noise(x, c, stats, np.random.default_rng(1))
        xn = (out - -50.0) / 200.0
        want = (level.reshape(4) + 50.0) / 200.0
        np.testing.assert_allclose(xn.mean(axis=(0, 2)), want, atol=2e-4)
        np.testing.assert_allclose(xn.var(axis=(0, 2)), want / c, rtol=0.03)
    assert shot_noise(x, 1000.0, stats, np.random.default_rng(1)).max() <= 150.0
