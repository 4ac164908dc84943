"""Input noise for robustness evaluation, after the REST paper (Duggal et al., WWW 2020,
https://arxiv.org/abs/2001.11363) and, where named, its public code.

Noise is added to the signals in microvolts, before anything else sees them (the host's wire
conversion, the board's integer preprocessing, the model). The kinds, each with REST's levels:

- "gaussian" (paper, eq. 8): ``x + N(0, c * sigma)``, c = 0.1 / 0.2 / 0.3 (low / med / high);
- "gaussian-mean" (REST code, ``utils.gaussian_noise``): ``x + N(mu, c * sigma)`` with the
  training mean ``mu``. In the code ``mu`` is that of its one DC-free EEG channel, about 0; per
  channel here, ``mu`` of the EMG envelope is its average level (+1.5 uV, 1.6 standard
  deviations): adding it is an offset that doubles the chin EMG, not noise. It is reported
  beside the paper's zero-mean noise, named as the code's;
- "shot" (paper, section 4.3): ``xn = (x - x_min) / (x_max - x_min)``,
  ``x' = clip01(Poisson(xn * c) / c)``, scaled back; c = 5000 / 2500 / 1000 (low / med / high).
  Fewer "photons" (smaller c) is more noise.

``sigma``, ``x_min``, ``x_max`` (and ``mu`` for "gaussian-mean") are statistics of the training
split. REST used one EEG channel and global scalars; ULW-SleepNet has four channels with very
different ranges (EEG ~+-200 uV, EMG envelope 0..5 uV), so every statistic here is **per
channel** (`SignalStats`).

Random numbers come from ``epoch_rng(seed, epoch_index)``: the noise of an epoch depends only on
the seed and the epoch's index in its recording, not on which epochs are processed together, so
an interrupted and resumed run adds exactly the noise an uninterrupted one does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .layout import CHANNEL_NAMES

#: REST's named levels (rest.md, "Noise evaluation protocol").
GAUSSIAN_LEVELS = {"low": 0.1, "med": 0.2, "high": 0.3}
SHOT_LEVELS = {"low": 5000.0, "med": 2500.0, "high": 1000.0}
KINDS = {"gaussian": GAUSSIAN_LEVELS, "gaussian-mean": GAUSSIAN_LEVELS, "shot": SHOT_LEVELS}


@dataclass(frozen=True)
class SignalStats:
    """Per-channel statistics in microvolts, each (n_channels,) float64, and where they come
    from (``source``: free text, written into reports)."""

    mean_uv: np.ndarray
    std_uv: np.ndarray
    min_uv: np.ndarray
    max_uv: np.ndarray
    source: str

    @classmethod
    def fit(cls, epochs_uv: np.ndarray | Sequence[np.ndarray], *, source: str) -> SignalStats:
        """Statistics over every sample of ``epochs_uv``: one array (n, channels, samples) or a
        list of them (one per night), accumulated in float64 without concatenating."""
        parts = [epochs_uv] if isinstance(epochs_uv, np.ndarray) else list(epochs_uv)
        if not parts or sum(p.size for p in parts) == 0:
            raise ValueError("SignalStats.fit needs at least one sample")
        n = 0
        total = sq = lo = hi = None
        for p in parts:
            if p.ndim != 3:
                raise ValueError(f"expected epochs (n, channels, samples), got shape {p.shape}")
            x = p.astype(np.float64)
            s, s2 = x.sum(axis=(0, 2)), np.square(x).sum(axis=(0, 2))
            a, b = x.min(axis=(0, 2)), x.max(axis=(0, 2))
            n += x.shape[0] * x.shape[2]
            total = s if total is None else total + s
            sq = s2 if sq is None else sq + s2
            lo = a if lo is None else np.minimum(lo, a)
            hi = b if hi is None else np.maximum(hi, b)
        mean = total / n
        std = np.sqrt(np.maximum(sq / n - mean**2, 0.0))
        return cls(mean, std, lo, hi, source)

    def to_dict(self) -> dict:
        names = CHANNEL_NAMES if len(self.mean_uv) == len(CHANNEL_NAMES) else None
        return {
            "channels": list(names) if names else None,
            "mean_uv": self.mean_uv.tolist(),
            "std_uv": self.std_uv.tolist(),
            "min_uv": self.min_uv.tolist(),
            "max_uv": self.max_uv.tolist(),
            "source": self.source,
        }

    @classmethod
    def from_dict(cls, d: dict) -> SignalStats:
        arrays = [np.asarray(d[k], dtype=np.float64) for k in ("mean_uv", "std_uv", "min_uv")]
        stats = cls(*arrays, np.asarray(d["max_uv"], dtype=np.float64), d.get("source", ""))
        if not (stats.std_uv >= 0).all() or not (stats.max_uv > stats.min_uv).all():
            raise ValueError("signal statistics need std >= 0 and max > min on every channel")
        return stats

    @classmethod
    def from_config(cls, config: dict) -> SignalStats | None:
        """The training split's statistics stored in a model folder's config.json under
        ``signal_stats`` (as written by ``to_dict``), or None when the config has none."""
        if "signal_stats" not in config:
            return None
        stats = cls.from_dict(config["signal_stats"])
        source = stats.source or "config.json signal_stats (training split)"
        return cls(stats.mean_uv, stats.std_uv, stats.min_uv, stats.max_uv, source)


@dataclass(frozen=True)
class NoiseSpec:
    """One noise setting: ``kind`` "gaussian" (level = c_g, a multiple of sigma; zero mean),
    "gaussian-mean" (the same plus the training mean) or "shot" (level = c_s, the photon count
    at full scale)."""

    kind: str
    level: float

    @classmethod
    def parse(cls, text: str) -> NoiseSpec:
        """ "gaussian:0.2", "shot:1000", or a REST level name: "gaussian:high", "shot:low"."""
        kind, _, value = text.partition(":")
        kind = kind.strip().lower()
        if kind not in KINDS or not value:
            raise ValueError(
                f"noise {text!r}: expected gaussian:C, gaussian-mean:C or shot:C (C a number "
                f"or one of low, med, high), e.g. gaussian:0.2 or shot:1000"
            )
        value = value.strip().lower()
        if value in KINDS[kind]:
            level = KINDS[kind][value]
        else:
            try:
                level = float(value)
            except ValueError:
                raise ValueError(f"noise {text!r}: {value!r} is not a number") from None
        if not np.isfinite(level) or level <= 0:
            raise ValueError(f"noise {text!r}: the level must be a positive number")
        return cls(kind, level)

    def __str__(self) -> str:
        return f"{self.kind}:{self.level:g}"


def epoch_rng(seed: int, epoch_index: int) -> np.random.Generator:
    """The generator for one epoch of a recording: depends on (seed, epoch index) only."""
    return np.random.default_rng([seed, epoch_index])


def _per_channel(values: np.ndarray, ndim: int) -> np.ndarray:
    """(channels,) -> broadcastable against (..., channels, samples)."""
    return np.asarray(values, dtype=np.float64).reshape((-1, 1) if ndim >= 2 else (-1,))


def gaussian_noise(
    x_uv: np.ndarray,
    c: float,
    stats: SignalStats,
    rng: np.random.Generator,
    *,
    with_mean: bool = False,
) -> np.ndarray:
    """Gaussian noise ``x + N(0, c * sigma_k)`` per channel k; ``with_mean``: REST's formula
    ``x + N(mu_k, c * sigma_k)`` with the training mean (about 0 uV for the DC-free EEG and EOG,
    a positive offset of the EMG envelope).

    x_uv: (..., channels, samples) microvolts; returns float64 of the same shape."""
    x = np.asarray(x_uv, dtype=np.float64)
    sd = _per_channel(stats.std_uv, x.ndim)
    noisy = x + c * sd * rng.standard_normal(x.shape)
    return noisy + _per_channel(stats.mean_uv, x.ndim) if with_mean else noisy


def shot_noise(
    x_uv: np.ndarray, c: float, stats: SignalStats, rng: np.random.Generator
) -> np.ndarray:
    """REST shot noise per channel: scale to [0, 1] with the training min/max, draw
    ``Poisson(xn * c) / c``, clip to [0, 1], scale back.

    x_uv: (..., channels, samples) microvolts; returns float64 of the same shape. For xn in
    (0, 1) the result has mean xn and variance xn / c (in scaled units). Values outside the
    training range end up clipped to it, as REST's clip01 does (a negative xn draws 0)."""
    x = np.asarray(x_uv, dtype=np.float64)
    lo, hi = _per_channel(stats.min_uv, x.ndim), _per_channel(stats.max_uv, x.ndim)
    xn = (x - lo) / (hi - lo)
    counts = rng.poisson(np.maximum(xn, 0.0) * c)
    return np.clip(counts / c, 0.0, 1.0) * (hi - lo) + lo


def add_noise(
    x_uv: np.ndarray, spec: NoiseSpec, stats: SignalStats, rng: np.random.Generator
) -> np.ndarray:
    """``spec``'s noise added to ``x_uv`` (..., channels, samples) microvolts -> float64."""
    if spec.kind in ("gaussian", "gaussian-mean"):
        return gaussian_noise(x_uv, spec.level, stats, rng, with_mean=spec.kind == "gaussian-mean")
    if spec.kind == "shot":
        return shot_noise(x_uv, spec.level, stats, rng)
    raise ValueError(f"unknown noise kind {spec.kind!r}; known: {sorted(KINDS)}")
