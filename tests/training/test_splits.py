"""Subject-wise folds and fixed splits; the int8 inputs of a set of nights."""

from __future__ import annotations

import numpy as np
import pytest

from training.splits import fixed_split, kfold_splits, model_inputs


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
    with pytest.raises(ValueError, match="--folds must be between 2 and"):
        kfold_splits(subjects, 11, 0.15, seed=0)


def test_fixed_split_trains_on_the_rest_and_refuses_bad_choices():
    subjects = ["subject-00", "subject-01", "subject-02", "subject-03"]
    sp = fixed_split(subjects, ["subject-01"], ["subject-03"])
    assert (sp.name, sp.train, sp.val, sp.test) == (
        "split",
        ["subject-00", "subject-02"],
        ["subject-03"],
        ["subject-01"],
    )
    with pytest.raises(ValueError, match=r"\['subject-09'\] are not in the data"):
        fixed_split(subjects, ["subject-09"], [])
    with pytest.raises(ValueError, match="both test and validation"):
        fixed_split(subjects, ["subject-01"], ["subject-01"])
    with pytest.raises(ValueError, match="no training subjects left"):
        fixed_split(subjects[:2], ["subject-00"], ["subject-01"])


def test_no_nights_give_an_empty_int8_batch_of_the_model_input_shape():
    x = model_inputs([], None)
    assert x.dtype == np.int8 and x.shape == (0, 4, 3000)
