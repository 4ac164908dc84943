"""Training: subject-wise splits, a short run that learns, determinism and resuming."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from sleepdata.stages import N1, N2, N3, REM, W
from training.cli import main
from training.train import TrainConfig, kfold_splits, run

from ..conftest import write_pair

NIGHT = [W] * 30 + [N1] * 10 + [N2] * 30 + [N3] * 25 + [REM] * 25 + [W] * 10


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    """Five simulated subjects (subjects 0-3 with two nights, 4 with one), 130 epochs a night."""
    folder = tmp_path_factory.mktemp("cohort")
    for subject in range(5):
        for night in (1, 2) if subject < 4 else (1,):
            stages = NIGHT if night == 1 else NIGHT[::-1]
            write_pair(folder, stages, name=f"SC40{subject}{night}E", seed=subject)
    return folder


def test_folds_keep_subjects_whole_and_validation_out_of_test():
    subjects = [f"subject-{i:02d}" for i in range(10)]
    splits = kfold_splits(subjects, 5, 0.15, seed=0)
    assert sorted(s for sp in splits for s in sp.test) == subjects
    for sp in splits:
        assert not set(sp.test) & (set(sp.train) | set(sp.val))
        assert not set(sp.val) & set(sp.train) and sp.val
        assert sorted(sp.train + sp.val + sp.test) == subjects


@pytest.fixture(scope="module")
def short_run(cohort, tmp_path_factory):
    out = tmp_path_factory.mktemp("short")
    cfg = TrainConfig(epochs=12, batch_size=32, seed=0)
    result = run(
        cohort,
        out / "run",
        cfg,
        test_subjects=["subject-00", "subject-01"],
        val_subjects=["subject-02"],
        cache_dir=out / "cache",
    )
    return out, result


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


def test_evaluate_scores_a_folder_with_hypnograms_and_plots(short_run, cohort, capsys):
    out, result = short_run
    model = out / "run" / "split" / "model"
    assert (
        main(
            [
                "evaluate",
                "--model",
                str(model),
                "--data",
                str(cohort),
                "--out",
                str(out / "eval"),
                "--cache",
                str(out / "cache"),
            ]
        )
        == 0
    )
    assert "macro-F1" in capsys.readouterr().out
    metrics = json.loads((out / "eval" / "metrics.json").read_text())
    assert metrics["n_epochs"] == 9 * len(NIGHT) and len(metrics["nights"]) == 9
    night = metrics["nights"]["SC4001E0"]
    assert night["sleep_expert"]["tib_min"] == len(NIGHT) / 2
    rows = (out / "eval" / "hypnograms" / "SC4001E0.tsv").read_text().splitlines()
    assert rows[0].split("\t")[:4] == ["onset_s", "duration_s", "expert", "predicted"]
    assert len(rows) == len(NIGHT) + 1 and rows[1].split("\t")[2] == "W"
    probs = np.array([[float(v) for v in r.split("\t")[4:]] for r in rows[1:]])
    np.testing.assert_allclose(probs.sum(axis=1), 1, atol=1e-3)
    assert (out / "eval" / "plots" / "SC4001E0.png").read_bytes()[:4] == b"\x89PNG"
    # the test subjects' nights score as in training's own evaluation
    test_nights = {f"SC40{s}{n}E0" for s in (0, 1) for n in (1, 2)}
    pooled = sum(np.array(metrics["nights"][k]["confusion"]) for k in test_nights)
    np.testing.assert_array_equal(pooled, result["confusion"])


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
    with pytest.raises(ValueError, match="other options"):
        run(cohort, tmp_path / "r", TrainConfig(epochs=1, seed=1), **split)


def test_class_weights_follow_inverse_frequency():
    from training.train import class_weight_tensor

    w = class_weight_tensor(np.array([0, 0, 0, 1, 2, 2, 3, 4]))
    assert w[1] == pytest.approx(3 * w[0]) and w[2] == pytest.approx(1.5 * w[0])


def test_finetune_rest_prunes_to_engine_widths_and_resumes(short_run, cohort, tmp_path, capsys):
    """REST fine-tuning with every term, half-adversarial batches and pruning to the engine's
    widths, from a trained model folder; re-running the command finishes nothing twice."""
    from training.model import load_model

    out, _ = short_run
    argv = ["finetune", "--init", str(out / "run" / "split" / "model"), "--data", str(cohort)]
    argv += ["--out", str(tmp_path / "ft"), "--cache", str(out / "cache"), "--threads", "1"]
    argv += ["--augment", "rest-published", "--adversarial-fraction", "0.5", "--eps-uv", "10"]
    argv += ["--lambda-o", "3e-3", "--lambda-g", "1e-5", "--epochs", "1"]
    argv += ["--samples-per-epoch", "64", "--batch-size", "32", "--prune-fraction", "0.6"]
    argv += ["--prune-widths", "4,8,16,32", "--retrain-epochs", "1"]
    assert main(argv) == 0
    model, config = load_model(tmp_path / "ft" / "model")
    assert model.config.widths + model.config.inner != (8, 16, 32, 8, 16, 32)  # pruned
    assert set(model.config.widths + model.config.inner) <= {4, 8, 16, 32}
    assert config["finetune"]["adversarial_fraction"] == 0.5
    assert "training split" in config["signal_stats"]["source"]
    metrics = json.loads((tmp_path / "ft" / "model" / "metrics.json").read_text())
    assert metrics["n_epochs"] == 4 * len(NIGHT) and 0 <= metrics["macro_f1"] <= 1
    weights = (tmp_path / "ft" / "model" / "weights.pt").read_bytes()
    assert main(argv) == 0  # resumed: both stages are complete, nothing retrained
    assert (tmp_path / "ft" / "model" / "weights.pt").read_bytes() == weights
    assert main([*argv[:-2], "--retrain-epochs", "2"]) == 2  # other options: refused
    assert "other options" in capsys.readouterr().err
