"""The one epoch loop: it trains exactly as a plain loop over the same seeded draws would (so
that merging training's and fine-tuning's loops changed no weight), resumes checkpoints, and
inference gives probabilities."""

from __future__ import annotations

import json
import math

import numpy as np
import torch
import torch.nn.functional as F

from training.loop import predict
from training.model import ModelConfig, ULWSleepNet
from training.train import TrainConfig, class_weight_tensor, train_fold

SMALL = ModelConfig(widths=(4, 4, 4))


def _data(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """int8 inputs (n, 4, 3000) whose amplitude follows the label, and the labels."""
    rng = np.random.default_rng(seed)
    y = (np.arange(n) % 5).astype(np.int8)
    x = rng.normal(0, 1, (n, 4, 3000)) * (4 + 8 * y).reshape(-1, 1, 1)
    return np.clip(np.round(x), -128, 127).astype(np.int8), y


def _plain_training(x, y, cfg: TrainConfig) -> tuple[dict, list[float]]:
    """What training did before its loop was shared, written out: the model seeded by
    ``cfg.seed``, one numpy permutation per epoch from a generator seeded by it, sorted
    batches, Adam (amsgrad) then the warm-restart schedule stepped after every batch. Returns
    the final state dict and the mean training loss per epoch."""
    torch.manual_seed(cfg.seed)
    model = ULWSleepNet(SMALL)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, amsgrad=True)
    sched = torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(
        opt, T_0=cfg.restart_steps, T_mult=2
    )
    rng = np.random.default_rng(cfg.seed)
    weights = class_weight_tensor(y)
    yt = torch.from_numpy(y.astype(np.int64))
    losses = []
    for _ in range(cfg.epochs):
        model.train()
        order = rng.permutation(len(x))
        total = 0.0
        for b in range(math.ceil(len(x) / cfg.batch_size)):
            idx = np.sort(order[b * cfg.batch_size : (b + 1) * cfg.batch_size])
            xb = torch.from_numpy(x[idx]).to(torch.float32) / 16
            loss = F.cross_entropy(model(xb), yt[idx], weight=weights)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
        losses.append(total / len(x))
    return model.state_dict(), losses


def _fold(tmp_path, cfg: TrainConfig, name: str = "fold") -> list[dict]:
    data = {"train": _data(40, seed=0), "val": _data(10, seed=1)}
    return train_fold(tmp_path / name, data, SMALL, cfg, {"note": "test"})


def test_training_through_the_loop_equals_the_plain_loop(tmp_path):
    cfg = TrainConfig(epochs=3, batch_size=16, seed=3, class_weights=True)
    history = _fold(tmp_path, cfg)
    want, losses = _plain_training(*_data(40, seed=0), cfg)
    got = torch.load(tmp_path / "fold" / "checkpoint.pt", weights_only=False)["model"]
    assert set(got) == set(want)
    assert all(torch.equal(got[k], want[k]) for k in want), "weights differ"
    assert [h["train_loss"] for h in history] == losses
    assert [h["epoch"] for h in history] == [1, 2, 3]
    assert set(history[0]) == {"epoch", "train_loss", "val_loss", "val_macro_f1", "val_acc"}
    config = json.loads((tmp_path / "fold" / "model" / "config.json").read_text())
    best = max(range(3), key=lambda i: (history[i]["val_macro_f1"], -i))
    assert config["selected_epoch"] == best + 1 and config["note"] == "test"
    assert config["val_macro_f1"] == history[best]["val_macro_f1"]


def test_a_checkpoint_of_the_former_training_loop_resumes(tmp_path):
    """Checkpoints written before the loops were shared name the best score ``best_f1`` and
    hold no torch generator of the loop's own; such a run still resumes to the same weights."""
    cfg = TrainConfig(epochs=2, batch_size=16, seed=3)
    _fold(tmp_path, cfg, "one-go")
    _fold(tmp_path, TrainConfig(epochs=1, batch_size=16, seed=3), "resumed")
    path = tmp_path / "resumed" / "checkpoint.pt"
    state = torch.load(path, weights_only=False)
    state["best_f1"] = state.pop("best")
    del state["torch_gen"]
    torch.save(state, path)
    history = _fold(tmp_path, cfg, "resumed")
    assert [h["epoch"] for h in history] == [1, 2]
    a = torch.load(tmp_path / "one-go" / "checkpoint.pt", weights_only=False)["model"]
    b = torch.load(path, weights_only=False)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_predict_gives_probabilities_and_an_empty_batch_for_no_input():
    model = ULWSleepNet(SMALL)
    x, _ = _data(7, seed=2)
    p = predict(model, x, batch_size=3)
    assert p.shape == (7, 5) and not model.training
    np.testing.assert_allclose(p.sum(axis=1), 1, rtol=1e-5)
    assert predict(model, x[:0]).shape == (0, 5)


def test_a_log_gets_one_plain_line_per_epoch_and_no_batch_lines(tmp_path, capsys):
    """Off a terminal (pytest captures stderr into a file), progress is plain lines: each
    epoch's figures, the closing count, and nothing of the nested batch loop."""
    _fold(tmp_path, TrainConfig(epochs=2, batch_size=16, seed=0))
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert "\x1b" not in err and "\r" not in err
    assert [line.split(": loss")[0] for line in lines[:2]] == [
        "fold: epoch 1/2",
        "fold: epoch 2/2",
    ]
    assert lines[2].startswith("fold: 2/2 epoch") and len(lines) == 3, lines
    assert "batch" not in err
