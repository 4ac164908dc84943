"""Training runs: a short run that learns and writes its outputs, determinism, resuming, and a
run folder that refuses other options."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from training.errors import TrainingError
from training.train import TrainConfig, class_weight_tensor, run

from .conftest import NIGHT


def test_short_run_beats_chance_and_writes_its_outputs(short_run):
    out, result = short_run
    assert result["pooled"] is True and result["n_epochs"] == 4 * len(NIGHT)
    assert result["macro_f1"] > 0.45, result  # chance: 0.2
    assert result["kappa"] > 0.35
    folder = out / "run" / "split"
    for name in (
        "history.json",
        "learning_curves.png",
        "confusion.csv",
        "confusion.png",
        "predictions.npz",
        "model/weights.pt",
        "model/config.json",
        "model/metrics.json",
    ):
        assert (folder / name).is_file(), name
    config = json.loads((folder / "model" / "config.json").read_text())
    assert config["normalisation"]["kind"] == "fixed-scale int8"
    assert "training split" in config["signal_stats"]["source"]  # for noise evaluation
    assert len(config["signal_stats"]["std_uv"]) == 4
    assert config["split"]["test"] == ["subject-00", "subject-01"]
    assert set(json.loads((out / "run" / "metrics.json").read_text())) >= {
        "acc",
        "macro_f1",
        "kappa",
        "per_class_f1",
        "n_epochs",
        "pooled",
    }


def _split(tmp_path):
    """Test subject 0, validation subject 1, the rest for training."""
    return {
        "test_subjects": ["subject-00"],
        "val_subjects": ["subject-01"],
        "cache_dir": tmp_path / "cache",
    }


def _weights(folder):
    return torch.load(folder / "checkpoint.pt", weights_only=False)["model"]


def test_same_seed_same_weights_and_resume_equals_one_go(cohort, tmp_path):
    split = _split(tmp_path)
    run(cohort, tmp_path / "a", TrainConfig(epochs=2, seed=3), **split)
    run(cohort, tmp_path / "b", TrainConfig(epochs=2, seed=3), **split)
    a, b = _weights(tmp_path / "a" / "split"), _weights(tmp_path / "b" / "split")
    assert all(torch.equal(a[k], b[k]) for k in a)

    # Interrupt after one epoch: a run stopped there, then the same command again.
    run(cohort, tmp_path / "c", TrainConfig(epochs=1, seed=3), **split)
    (tmp_path / "c" / "split" / "metrics.json").unlink()  # as if it had stopped mid-fold
    run_json = tmp_path / "c" / "run.json"
    info = json.loads(run_json.read_text())
    info["train_config"]["epochs"] = 2
    run_json.write_text(json.dumps(info))
    run(cohort, tmp_path / "c", TrainConfig(epochs=2, seed=3), **split)
    c = _weights(tmp_path / "c" / "split")
    assert all(torch.equal(a[k], c[k]) for k in a)
    history = json.loads((tmp_path / "c" / "split" / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2]


def test_a_run_folder_refuses_other_options(cohort, tmp_path):
    split = _split(tmp_path)
    run(cohort, tmp_path / "r", TrainConfig(epochs=1, seed=0), **split)
    with pytest.raises(TrainingError, match=r"other options \(--seed 0 -> 1\)"):
        run(cohort, tmp_path / "r", TrainConfig(epochs=1, seed=1), **split)
    # A run folder from before an option existed resumes: the option counts as its default.
    run_json = tmp_path / "r" / "run.json"
    info = json.loads(run_json.read_text())
    del info["train_config"]["samples_per_epoch"]
    run_json.write_text(json.dumps(info))
    run(cohort, tmp_path / "r", TrainConfig(epochs=1, seed=0), **split)


def test_samples_per_epoch_draws_that_many_training_epochs(cohort, tmp_path):
    run(
        cohort,
        tmp_path / "s",
        TrainConfig(epochs=1, batch_size=16, samples_per_epoch=40),
        **_split(tmp_path),
    )
    state = torch.load(tmp_path / "s" / "split" / "checkpoint.pt", weights_only=False)
    assert state["scheduler"]["last_epoch"] == 3  # ceil(40 / 16) optimiser steps


def test_training_options_are_checked():
    with pytest.raises(TrainingError, match="--epochs 0: must be at least 1"):
        TrainConfig(epochs=0)
    with pytest.raises(TrainingError, match=r"--config nowhere\.json: cannot read it"):
        TrainConfig.from_file("nowhere.json")


def test_class_weights_follow_inverse_frequency():
    w = class_weight_tensor(np.array([0, 0, 0, 1, 2, 2, 3, 4]))
    assert w[1] == pytest.approx(3 * w[0]) and w[2] == pytest.approx(1.5 * w[0])


def test_the_paper_recipe_selects_by_validation_accuracy(cohort, tmp_path, monkeypatch):
    """Validation accuracy and macro-F1 disagree on the best epoch: the paper recipe keeps the
    epoch of best accuracy, the project recipe that of best macro-F1."""
    from training import train

    real, calls = train.scores, []
    crafted = [(0.5, 0.5), (0.9, 0.3), (0.6, 0.8)]  # (acc, macro-F1) of validation epochs 1-3

    def fake_scores(y, p):
        s = real(y, p)
        calls.append(1)
        if len(calls) <= len(crafted):  # the validations come first, then test and pooled
            s["acc"], s["macro_f1"] = crafted[len(calls) - 1]
        return s

    monkeypatch.setattr(train, "scores", fake_scores)
    for recipe, best in (("paper", 2), ("project", 3)):
        calls.clear()
        out = tmp_path / recipe
        cfg = TrainConfig.from_file(None, recipe=recipe, epochs=3, samples_per_epoch=32)
        run(cohort, out, cfg, **_split(tmp_path))
        config = json.loads((out / "split" / "model" / "config.json").read_text())
        assert config["selected_epoch"] == best
        assert config["train_config"]["recipe"] == recipe
        assert config["train_config"]["select"] == ("acc" if recipe == "paper" else "macro_f1")
        recorded = json.loads((out / "run.json").read_text())["train_config"]
        assert (recorded["batch_size"], recorded["epochs"]) == (
            (32, 3) if recipe == "paper" else (128, 3)
        )
    assert config["val_macro_f1"] == 0.8 and "val_acc" not in config  # project: as before
    paper = json.loads((tmp_path / "paper" / "split" / "model" / "config.json").read_text())
    assert paper["val_acc"] == 0.9 and paper["train_config"]["init"] == "glorot"
    assert paper["train_config"]["bn_momentum"] == 0.01


def test_a_run_from_before_the_recipes_resumes_and_a_recipe_change_is_refused(cohort, tmp_path):
    split = _split(tmp_path)
    cfg = TrainConfig(epochs=1, samples_per_epoch=32)
    run(cohort, tmp_path / "r", cfg, **split)
    run_json = tmp_path / "r" / "run.json"
    info = json.loads(run_json.read_text())
    for name in ("recipe", "select", "init", "bn_momentum"):
        del info["train_config"][name]
    run_json.write_text(json.dumps(info))
    run(cohort, tmp_path / "r", cfg, **split)  # the missing options count as the project's
    paper = TrainConfig.from_file(None, recipe="paper", epochs=1, samples_per_epoch=32)
    with pytest.raises(TrainingError, match=r"--recipe project -> paper.*--select macro_f1 -> acc"):
        run(cohort, tmp_path / "r", paper, **split)
