"""REST fine-tuning: a stage trains exactly as a plain loop over the same seeded draws would,
an interrupted stage resumes to the same weights, and the command prunes to the engine's
widths from a trained model folder and resumes."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import training.finetune as ft
from sleepdata.noise import SignalStats
from sleepdata.normalise import Normaliser
from training.cli import main
from training.model import ModelConfig, ULWSleepNet, load_model
from training.rest import (
    Attack,
    DifferentiableInput,
    attack,
    bn_l1,
    channel_scale,
    spectral_penalty,
)

from .conftest import NIGHT

SMALL = ModelConfig(widths=(4, 4, 4))
#: Every term and both generators: half-adversarial batches (numpy draws which samples, torch
#: the attack's random start), the spectral and BatchNorm-L1 terms, dropout (torch's own).
CFG = ft.RobustConfig(
    augment="rest-published",
    adversarial_fraction=0.5,
    attack_iterations=2,
    lambda_o=3e-3,
    lambda_g=1e-5,
    samples_per_epoch=24,
    batch_size=8,
    val_samples=8,
    val_adv_samples=4,
    seed=5,
)


@pytest.fixture(scope="module")
def stage_data():
    """Sleep-like microvolts: 32 training and 8 validation epochs, their normalisation and
    statistics."""
    rng = np.random.default_rng(0)
    x = rng.normal(0, 25, (40, 4, 3000)) + rng.normal(0, 40, (40, 4, 1))
    x[:, 3] = rng.uniform(0.5, 4.0, (40, 1)) + rng.normal(0, 0.1, (40, 3000))
    x = x.astype(np.float32)
    y = (np.arange(40) % 5).astype(np.int8)
    data = ft._RobustData(x[:32], y[:32], x[32:], y[32:], x[32:36], y[32:36])
    return data, Normaliser.fit(x), SignalStats.fit(x, source="test")


def _model() -> ULWSleepNet:
    torch.manual_seed(CFG.seed)
    return ULWSleepNet(SMALL)


def _stage(folder, stage_data, epochs: int = 2):
    data, norm, stats = stage_data
    return ft._stage(
        folder, _model(), norm, stats, data, CFG, epochs=epochs, lambda_g=CFG.lambda_g, extra={}
    )


def _plain_stage(stage_data, epochs: int) -> dict:
    """What a fine-tuning stage did before its loop was shared, written out: per epoch one
    numpy permutation cut to ``samples_per_epoch``; per sorted batch a numpy draw of the
    attacked samples, their attack from one torch generator, then cross-entropy plus both
    penalties, Adam (amsgrad) and the cosine schedule. Returns the final state dict."""
    data, norm, stats = stage_data
    model = _model()
    inp, scale = DifferentiableInput(norm), channel_scale(stats)
    spec = Attack(CFG.augment, CFG.eps_uv, CFG.attack_iterations)
    n, bs, per = len(data.x_train), CFG.batch_size, CFG.samples_per_epoch
    opt = torch.optim.Adam(
        model.parameters(), lr=CFG.lr, amsgrad=True, weight_decay=CFG.weight_decay
    )
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs * math.ceil(per / bs))
    rng = np.random.default_rng(CFG.seed)
    gen = torch.Generator().manual_seed(CFG.seed)
    y = torch.from_numpy(data.y_train.astype(np.int64))
    for _ in range(epochs):
        order = rng.permutation(n)[:per]
        for b in range(math.ceil(per / bs)):
            idx = np.sort(order[b * bs : (b + 1) * bs])
            xb, yb = torch.from_numpy(data.x_train[idx]), y[idx]
            adv = torch.from_numpy(rng.random(len(idx)) < CFG.adversarial_fraction)
            if adv.any():
                xb = xb.clone()
                xb[adv] = attack(model, inp, xb[adv], yb[adv], spec, scale, gen)
            model.train()
            loss = F.cross_entropy(model(inp(xb)), yb) + CFG.lambda_o * spectral_penalty(model)
            loss = loss + CFG.lambda_g * bn_l1(model)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
    return model.state_dict()


def _weights(folder):
    return torch.load(folder / "checkpoint.pt", weights_only=False)["model"]


def test_a_stage_equals_the_plain_loop(stage_data, tmp_path):
    history = _stage(tmp_path / "stage", stage_data)
    want, got = _plain_stage(stage_data, epochs=2), _weights(tmp_path / "stage")
    assert set(got) == set(want)
    assert all(torch.equal(got[k], want[k]) for k in want), "weights differ"
    assert [h["epoch"] for h in history] == [1, 2]
    assert list(history[0]) == [
        "epoch",
        "train_loss",
        "train_ce",
        "train_spectral",
        "train_bn_l1",
        "val_macro_f1",
        "val_adv_macro_f1",
        "val_select",
        "train_s",
        "val_s",
    ]
    assert all(h["train_spectral"] > 0 and h["train_bn_l1"] > 0 for h in history)


class _Stop(Exception):
    pass


def test_an_interrupted_stage_resumes_to_the_same_weights(stage_data, tmp_path, monkeypatch):
    """Stopped while validating its second epoch, a stage continues from its first epoch's
    checkpoint with every generator as it was then (dropout's included) and ends where an
    uninterrupted stage ends."""
    _stage(tmp_path / "one-go", stage_data)
    calls = []
    score = ft._val_scores

    def stop_at_second(*args):
        calls.append(1)
        if len(calls) == 2:
            raise _Stop
        return score(*args)

    monkeypatch.setattr(ft, "_val_scores", stop_at_second)
    with pytest.raises(_Stop):
        _stage(tmp_path / "resumed", stage_data)
    assert torch.load(tmp_path / "resumed" / "checkpoint.pt", weights_only=False)["epoch"] == 1
    monkeypatch.setattr(ft, "_val_scores", score)
    _stage(tmp_path / "resumed", stage_data)
    a, b = _weights(tmp_path / "one-go"), _weights(tmp_path / "resumed")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_finetune_rest_prunes_to_engine_widths_and_resumes(short_run, cohort, tmp_path, capsys):
    """REST fine-tuning with every term, half-adversarial batches and pruning to the engine's
    widths, from a trained model folder; re-running the command finishes nothing twice."""
    out, _ = short_run
    argv = ["finetune", "--init", str(out / "run" / "split" / "model"), "--data", str(cohort)]
    argv += ["--out", str(tmp_path / "ft"), "--cache", str(out / "cache"), "--threads", "1"]
    argv += ["--augment", "paper", "--adversarial-fraction", "0.5", "--eps-uv", "10"]
    argv += ["--lambda-o", "3e-3", "--lambda-g", "1e-5", "--epochs", "1"]
    argv += ["--samples-per-epoch", "64", "--batch-size", "32", "--prune-fraction", "0.6"]
    argv += ["--prune-widths", "4,8,16,32", "--retrain-epochs", "1"]
    threads = torch.get_num_threads()
    try:
        assert main(argv) == 0
        model, config = load_model(tmp_path / "ft" / "model")
        assert model.config.widths + model.config.inner != (8, 16, 32, 8, 16, 32)  # pruned
        assert set(model.config.widths + model.config.inner) <= {4, 8, 16, 32}
        assert config["finetune"]["adversarial_fraction"] == 0.5
        assert config["finetune"]["select_attack"] == "paper"  # one rule for every model
        assert "training split" in config["signal_stats"]["source"]
        # the cohort is simulated, and its files say so
        assert config["data_provenance"]["data"] == "simulated"
        # what slimming did: every gamma before and after, the threshold, the channels built
        slim = json.loads(
            (tmp_path / "ft" / "pruned-before-retraining" / "pruning.json").read_text()
        )
        kept = sum(model.config.widths + model.config.inner)
        assert slim["channels"] == 112 and slim["kept"] == kept
        assert slim["removed"] == 112 - kept and slim["threshold"] is not None
        assert [len(x["gamma_after"]) for x in slim["layers"]] == [8, 8, 16, 16, 32, 32]
        assert config["pruned"]["removed"] == 112 - kept
        assert (tmp_path / "ft" / "pruned-before-retraining" / "gammas.png").stat().st_size > 1000
        metrics = json.loads((tmp_path / "ft" / "model" / "metrics.json").read_text())
        assert metrics["n_epochs"] == 4 * len(NIGHT) and 0 <= metrics["macro_f1"] <= 1
        assert metrics["data_provenance"]["data"] == "simulated"
        weights = (tmp_path / "ft" / "model" / "weights.pt").read_bytes()
        assert main(argv) == 0  # resumed: both stages are complete, nothing retrained
        assert (tmp_path / "ft" / "model" / "weights.pt").read_bytes() == weights
        assert main([*argv[:-2], "--retrain-epochs", "2"]) == 2  # other options: refused
        assert "other options" in capsys.readouterr().err
    finally:
        torch.set_num_threads(threads)
