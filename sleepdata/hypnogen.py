"""Plausible hypnograms for machines without real ones, from statistics of real nights.

``fit`` learns from real Sleep-EDF hypnograms: the epoch-to-epoch stage transition matrix in each
third of the sleep period (N3 dominates early, REM late), the lengths of the wake stretch before
sleep, of the sleep period and of the wake after it, and the clock time recordings start. The
package ships those statistics (``sleepdata/data/hypnogram_stats.json``, made with
``python -m training hypnostats``); ``generate`` draws a night from them as a Markov chain.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable
from importlib import resources
from pathlib import Path

import numpy as np

from .hypnogram import read_hypnogram, write_hypnogram
from .layout import EPOCH_S
from .names import MAX_SUBJECT, record_stem
from .stages import N1, N_STAGES, SLEEP_STAGES, STAGE_NAMES, W

N_THIRDS = 3
STATS_RESOURCE = "hypnogram_stats.json"
#: Sleep-EDF hypnograms are padded with "?" to this many seconds after the start.
HYPNOGRAM_SPAN_S = 86400
#: Generated subjects are numbered from 90 so they never collide with real Sleep-EDF subjects
#: (00-82); from 100 on they take the SGssssN form (sleepdata/names.py).
FIRST_GENERATED_SUBJECT = 90
MAX_GENERATED_NIGHTS = 2 * (MAX_SUBJECT + 1 - FIRST_GENERATED_SUBJECT)


def fit(paths: Iterable[Path]) -> dict:
    """Statistics of a set of real hypnograms (see module docstring)."""
    counts = np.zeros((N_THIRDS, N_STAGES, N_STAGES))
    pre, period, post, start_s = [], [], [], []
    n = 0
    for path in sorted(paths):
        hyp = read_hypnogram(path)
        grid, start = hyp.stage_grid(), hyp.start
        sleep = np.flatnonzero(np.isin(grid, list(SLEEP_STAGES)))
        scored = np.flatnonzero(grid >= 0)
        if sleep.size == 0:
            continue
        first, last = int(sleep[0]), int(sleep[-1])
        pre.append(first)
        period.append(last - first + 1)
        post.append(int(scored[-1]) - last)
        start_s.append(start.hour * 3600 + start.minute * 60 + start.second)
        seg = grid[first : last + 1]
        for i in range(seg.size - 1):
            a, b = seg[i], seg[i + 1]
            if a >= 0 and b >= 0:
                third = min(N_THIRDS - 1, i * N_THIRDS // seg.size)
                counts[third, a, b] += 1
        n += 1
    if n == 0:
        raise ValueError("no hypnogram with sleep epochs to learn from")

    def summary(x: list[int]) -> dict:
        return {
            "mean": float(np.mean(x)),
            "sd": float(np.std(x)),
            "min": int(np.min(x)),
            "max": int(np.max(x)),
        }

    return {
        "stages": list(STAGE_NAMES),
        "n_nights": n,
        "epoch_s": EPOCH_S,
        "transition_counts": counts.astype(int).tolist(),
        "pre_sleep_wake_epochs": summary(pre),
        "sleep_period_epochs": summary(period),
        "post_sleep_wake_epochs": summary(post),
        "start_clock_s": summary(start_s),
    }


def load_stats(path: str | Path | None = None) -> dict:
    """The shipped statistics, or those in ``path``."""
    if path is not None:
        return json.loads(Path(path).read_text())
    return json.loads(resources.files("sleepdata.data").joinpath(STATS_RESOURCE).read_text())


def _draw(summary: dict, rng: np.random.Generator) -> int:
    x = rng.normal(summary["mean"], summary["sd"])
    return int(np.clip(round(x), summary["min"], summary["max"]))


def generate(stats: dict, rng: np.random.Generator) -> tuple[np.ndarray, dt.datetime]:
    """One night: (AASM label per 30-s epoch of the recording, recording start time)."""
    counts = np.asarray(stats["transition_counts"], dtype=float) + 1e-3
    probs = counts / counts.sum(axis=2, keepdims=True)
    pre = _draw(stats["pre_sleep_wake_epochs"], rng)
    period = max(_draw(stats["sleep_period_epochs"], rng), 2)
    post = _draw(stats["post_sleep_wake_epochs"], rng)
    seg = np.empty(period, dtype=np.int8)
    seg[0] = N1
    for i in range(1, period):
        third = min(N_THIRDS - 1, (i - 1) * N_THIRDS // period)
        seg[i] = rng.choice(N_STAGES, p=probs[third, seg[i - 1]])
    # The sleep period ends on its last sleep epoch, as in the statistics.
    sleep = np.flatnonzero(seg != W)
    seg = seg[: sleep[-1] + 1]
    labels = np.concatenate([np.full(pre, W, np.int8), seg, np.full(post, W, np.int8)])
    clock = _draw(stats["start_clock_s"], rng)
    day = dt.datetime(1989, 1, 1) + dt.timedelta(days=int(rng.integers(0, 365)))
    return labels, day + dt.timedelta(seconds=clock - clock % 60)


def generated_hypnograms(out: Path, n_nights: int, seed: int) -> list[Path]:
    """Write ``n_nights`` generated hypnograms (two nights per generated subject) into ``out``."""
    if not 1 <= n_nights <= MAX_GENERATED_NIGHTS:
        raise ValueError(f"--nights must be between 1 and {MAX_GENERATED_NIGHTS:,}")
    stats = load_stats()
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for k in range(n_nights):
        subject, night = FIRST_GENERATED_SUBJECT + k // 2, 1 + k % 2
        labels, start = generate(stats, np.random.default_rng([seed, subject, night]))
        path = out / f"{record_stem(subject, night, 'G')}-Hypnogram.edf"
        tail = max(HYPNOGRAM_SPAN_S - labels.size * 30, 0)
        write_hypnogram(path, start, labels, unscored_tail_s=tail)
        paths.append(path)
    return paths
