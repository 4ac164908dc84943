"""What a training run learns from, selects on and is tested on.

The nights of a data folder (loaded through the epoch cache), grouped by subject
(``sleepdata.cohort``); subject-wise folds or a fixed split of subjects, so that no subject is
in two of train / validation / test; the int8 model inputs of a set of nights; and the signal
statistics of a training split, which the noise generators and attacks scale by.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sleepdata import cache, provenance
from sleepdata.cohort import subject_name
from sleepdata.epoch_store import WireEpochs
from sleepdata.layout import EPOCH_SAMPLES, MODEL_CHANNELS
from sleepdata.noise import SignalStats
from sleepdata.normalise import Normaliser, zscore_int8
from sleepdata.progress import progress
from sleepdata.psg import Recording, discover_pairs

from . import distributed
from .errors import TrainingError


def load_recordings(
    data: str | Path, cache_dir: str | Path | None, *, lazy: bool = False
) -> list[Recording]:
    """Every PSG/hypnogram pair of the folder ``data``, epoched (cached in ``cache_dir``). With
    ``lazy`` (and a cache) the epochs stay on disk until used (sleepdata.epoch_store)."""
    pairs = discover_pairs(data)
    bar = progress(pairs, desc="load", unit="night", disable=not distributed.is_main())
    return [cache.load(p, cache_dir, lazy=lazy) for p in bar]


def data_provenance(data: str | Path) -> dict:
    """Whether the nights of the folder ``data`` are simulated or real, read from their PSG
    files (``sleepdata.provenance``): recorded in every config.json and metrics.json."""
    return provenance.describe(p.psg for p in discover_pairs(data))


def inputs_of(epochs, index, norm: Normaliser | None) -> np.ndarray:
    """int8 model inputs of ``epochs[index]`` (one night). Epochs cached as wire samples on the
    normaliser's grid go straight to the integer formula, without a trip through microvolts;
    norm None selects the z-score alternative."""
    if norm is None:
        return zscore_int8(epochs[index])
    if isinstance(epochs, WireEpochs) and tuple(epochs.lsb_uv) == norm.lsb_uv:
        return norm.to_int8(epochs.wire(index))
    return norm.model_input(epochs[index])


def model_inputs(recs: Sequence[Recording], norm: Normaliser | None) -> np.ndarray:
    """int8 (n, 4, 3000) inputs of all recordings, in order, in memory."""
    parts = [inputs_of(r.epochs, slice(None), norm) for r in recs]
    if not parts:
        return np.zeros((0, len(MODEL_CHANNELS), EPOCH_SAMPLES), np.int8)
    return np.concatenate(parts)


class ModelInputs:
    """The int8 inputs of all recordings, in order, as an array-like computed on demand: each
    indexing (an int array, a slice, a mask) reads and transforms only the epochs asked for, so
    a training set need not fit in memory. ``x[idx]`` equals ``model_inputs(recs, norm)[idx]``."""

    dtype = np.dtype(np.int8)

    def __init__(self, recs: Sequence[Recording], norm: Normaliser | None):
        self.recs, self.norm = list(recs), norm
        self.starts = np.cumsum([0] + [len(r) for r in self.recs])
        self.shape = (int(self.starts[-1]), len(MODEL_CHANNELS), EPOCH_SAMPLES)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, index) -> np.ndarray:
        idx = np.arange(len(self))[index]
        if idx.ndim == 0:
            return self[idx.reshape(1)][0]
        out = np.empty((idx.size, *self.shape[1:]), dtype=np.int8)
        night = np.searchsorted(self.starts, idx, side="right") - 1
        for k in np.unique(night):
            at = np.flatnonzero(night == k)
            out[at] = inputs_of(self.recs[k].epochs, idx[at] - self.starts[k], self.norm)
        return out


def training_stats(recordings: Sequence[Recording], subjects: Sequence[str]) -> SignalStats:
    """Per-channel statistics (uV) of the training split, as the noise generators and attacks
    use them; stored in every model's config.json as ``signal_stats``."""
    return SignalStats.fit(
        [r.epochs for r in recordings],
        source=f"training split ({len(recordings)} nights of {', '.join(subjects)})",
    )


@dataclass
class Split:
    """Subject keys of one fold (``name`` "fold-K") or of a fixed split (``name`` "split")."""

    name: str
    train: list[str]
    val: list[str]
    test: list[str]


def subject_numbers(subjects: Sequence[str]) -> str:
    """Subject keys as the command line takes them: 'subject-90', 'subject-91' -> '90, 91';
    a recording without a Sleep-EDF name keeps its record name."""
    named = [_number_of(s) for s in subjects]
    return ", ".join(sorted(named, key=lambda v: (not v.isdigit(), v.zfill(6)))) or "none"


def _number_of(key: str) -> str:
    number = key.removeprefix(subject_name(0)[:-2])
    return str(int(number)) if number.isdigit() and subject_name(int(number)) == key else key


def _more_subjects() -> str:
    return (
        "add recordings of more subjects (generated nights come two per subject: "
        "python -m training simulate --nights 2N writes N subjects)"
    )


def kfold_splits(
    subjects: Sequence[str], folds: int, val_fraction: float, seed: int
) -> list[Split]:
    """Subject-wise folds: each subject is in exactly one test fold; validation subjects are
    drawn from the fold's training subjects (never from its test subjects). TrainingError
    (naming the subjects present) when there are too few subjects for ``folds``."""
    subjects = sorted(set(subjects))
    present = f"{len(subjects)} subjects in the data: {subject_numbers(subjects)}"
    if len(subjects) < 3:
        raise TrainingError(
            f"--folds: cross-validation needs at least 3 subjects (test, validation and "
            f"training), {present}; {_more_subjects()}"
        )
    if not 2 <= folds <= len(subjects):
        raise TrainingError(
            f"--folds {folds}: must be between 2 and the number of subjects ({present}); "
            f"give --folds {min(len(subjects), 5)} or {_more_subjects()}"
        )
    rng = np.random.default_rng(seed)
    order = [subjects[i] for i in rng.permutation(len(subjects))]
    splits = []
    for k, test in enumerate(np.array_split(np.array(order, dtype=object), folds), start=1):
        rest = [s for s in order if s not in set(test)]
        n_val = max(1, round(val_fraction * len(rest)))
        if n_val >= len(rest):
            raise TrainingError(
                f"--folds {folds}: fold {k} tests {len(test)} of the {present}, leaving too "
                f"few for training and validation; give more --folds or {_more_subjects()}"
            )
        val = sorted(rng.choice(rest, size=n_val, replace=False).tolist())
        train = sorted(s for s in rest if s not in val)
        splits.append(Split(f"fold-{k}", train, val, sorted(test.tolist())))
    return splits


def fixed_split(subjects: Sequence[str], test: Sequence[str], val: Sequence[str]) -> Split:
    """The given test and validation subjects; every other subject trains. TrainingError
    (naming the subjects present) when a subject is unknown, both test and validation, or
    none is left to train on."""
    subjects = set(subjects)
    present = f"subjects in the data: {subject_numbers(subjects)}"
    if not test or not val:
        raise TrainingError(
            "--test-subjects and --val-subjects go together: give both (e.g. "
            f"--test-subjects A --val-subjects B; {present}), or neither for --folds"
        )
    for option, chosen in (("--test-subjects", test), ("--val-subjects", val)):
        missing = set(chosen) - subjects
        if missing:
            raise TrainingError(
                f"{option}: subjects {subject_numbers(missing)} are not in the data; {present}"
            )
    both = set(test) & set(val)
    if both:
        raise TrainingError(
            f"--test-subjects and --val-subjects share subjects {subject_numbers(both)}: "
            f"a subject cannot be both test and validation; {present}"
        )
    train = sorted(subjects - set(test) - set(val))
    if not train:
        raise TrainingError(
            "--test-subjects and --val-subjects take every subject: no training subjects "
            f"left; leave at least one out ({present})"
        )
    return Split("split", train, sorted(val), sorted(test))
