"""Subject-wise folds and fixed splits; the int8 inputs of a set of nights."""

from __future__ import annotations

import numpy as np
import pytest

from training.errors import TrainingError
from training.splits import fixed_split, kfold_splits, model_inputs, subject_numbers


def test_folds_keep_subjects_whole_and_validation_out_of_test():
    subjects = [f"subject-{i:02d}" for i in range(10)]
    splits = kfold_splits(subjects, 5, 0.15, seed=0)
    assert sorted(s for sp in splits for s in sp.test) == subjects
    for sp in splits:
        assert not set(sp.test) & (set(sp.train) | set(sp.val))
        assert not set(sp.val) & set(sp.train) and sp.val
        assert sorted(sp.train + sp.val + sp.test) == subjects
    assert [sp.name for sp in splits] == [f"fold-{k}" for k in range(1, 6)]
    assert kfold_splits(subjects, 5, 0.15, seed=0) == splits  # the seed fixes the folds
    with pytest.raises(TrainingError, match="--folds 11: must be between 2 and the number"):
        kfold_splits(subjects, 11, 0.15, seed=0)
    with pytest.raises(TrainingError, match=r"needs at least 3 subjects.*: 90, 91;"):
        kfold_splits(["subject-90", "subject-91"], 2, 0.15, seed=0)


def test_fixed_split_trains_on_the_rest_and_refuses_bad_choices():
    subjects = ["subject-00", "subject-01", "subject-02", "subject-03"]
    sp = fixed_split(subjects, ["subject-01"], ["subject-03"])
    assert (sp.name, sp.train, sp.val, sp.test) == (
        "split",
        ["subject-00", "subject-02"],
        ["subject-03"],
        ["subject-01"],
    )
    present = "subjects in the data: 0, 1, 2, 3"
    with pytest.raises(TrainingError, match=f"--test-subjects: subjects 9 are not .*; {present}"):
        fixed_split(subjects, ["subject-09"], ["subject-00"])
    with pytest.raises(TrainingError, match="--val-subjects: subjects 7 are not"):
        fixed_split(subjects, ["subject-00"], ["subject-07"])
    with pytest.raises(TrainingError, match="go together"):
        fixed_split(subjects, ["subject-00"], [])
    with pytest.raises(TrainingError, match="both test and validation"):
        fixed_split(subjects, ["subject-01"], ["subject-01"])
    with pytest.raises(TrainingError, match="no training subjects left"):
        fixed_split(subjects[:2], ["subject-00"], ["subject-01"])


def test_subject_keys_print_as_the_numbers_the_options_take():
    keys = ["subject-91", "subject-100", "subject-05", "night-x"]
    assert subject_numbers(keys) == "5, 91, 100, night-x"


def test_no_nights_give_an_empty_int8_batch_of_the_model_input_shape():
    x = model_inputs([], None)
    assert x.dtype == np.int8 and x.shape == (0, 4, 3000)
