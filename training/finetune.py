"""Robust and compressed fine-tuning of a trained model folder: REST (Duggal et al., WWW 2020,
https://arxiv.org/abs/2001.11363) applied to ULW-SleepNet; docs/robustness.md says how and why it
differs from the paper.

``python -m training finetune --init MODEL --data DIR --out DIR`` trains on the raw microvolt
signal of the subject split stored in MODEL's config.json, through the deployment input path
(training/rest.py), with Gaussian noise or adversarial batches, the spectral and BatchNorm-L1
terms, then optionally prunes DSSC channels and retrains. OUT holds ``finetune.json`` (the
options, to refuse a resume with others), ``stage-1/`` (and ``pruned-before-retraining/`` and
``stage-2/`` when pruning), each with checkpoint.pt, history.json and model/ (pruning.json and
gammas.png, training/slimming.py, say what the pruning did), and ``model/``: the best
checkpoint of the last stage with ``metrics.json`` on the clean test subjects. Re-running the
same command resumes.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from sleepdata.cohort import subject_key
from sleepdata.metrics import format_metric, scores
from sleepdata.noise import SignalStats, gaussian_noise
from sleepdata.normalise import Normaliser
from sleepdata.stages import STAGE_NAMES

from . import slimming
from .loop import Recipe, fit, predict
from .model import ULWSleepNet, load_model, save_model
from .rest import (
    Attack,
    DifferentiableInput,
    attack,
    bn_l1,
    channel_scale,
    plan_pruning,
    prune,
    spectral_penalty,
)
from .sources import ATTACK_ALIASES, ATTACKS
from .splits import data_provenance, load_recordings, model_inputs, training_stats

#: Training-input options: clean, Gaussian noise, or one of the attacks.
AUGMENTS = ("none", "gaussian", *ATTACKS)


@dataclass(frozen=True)
class RobustConfig:
    """Options of ``python -m training finetune``: fine-tune a trained model folder on the raw
    microvolt signal with REST's terms, optionally prune and retrain.

    ``augment``: "none", "gaussian" (zero-mean Gaussian noise, paper eq. 8, c = ``gaussian_c``,
    on a ``gaussian_fraction`` of each batch: the "Ford" model), or an attack of
    training/rest.py, ``ATTACKS`` ("paper": eq. 2; "rest-code"; "pgd"): every batch replaced by
    its adversarial version (paper, section 3), budget ``eps_uv`` in uV of Fpz-Cz; with
    ``adversarial_fraction`` < 1 only that fraction of each batch, the rest stays clean.
    ``lambda_o``: spectral term; ``lambda_g``: L1 on BatchNorm gammas (first stage only).
    ``prune_fraction`` > 0: after the first stage, its last epoch (network slimming prunes the
    end of sparsity training) loses that fraction of its DSSC channels (at least
    ``prune_min_fraction`` of each layer kept, each layer's count rounded up to one of
    ``prune_widths`` when given) and is retrained for ``retrain_epochs``
    with the same terms but the sparsity term. ``optimizer``: "adam" (amsgrad, cosine decay to 0
    over each stage) or "sgd" (momentum ``momentum``, the learning rate divided by 10 after one
    and two thirds of each stage: the paper's schedule, 10 and 20 of 30 epochs). Checkpoints are
    selected on the mean of clean and adversarial (``select_attack`` at ``select_eps_uv``)
    validation macro-F1, on fixed subsets of ``val_samples`` / ``val_adv_samples`` validation
    epochs."""

    epochs: int = 3
    samples_per_epoch: int | None = None  # None: every training epoch, each epoch
    batch_size: int = 64
    lr: float = 5e-4
    weight_decay: float = 2e-4
    augment: str = "none"
    eps_uv: float = 10.0
    attack_iterations: int = 10
    attack_step_uv: float | None = None
    gaussian_c: float = 0.2
    gaussian_fraction: float = 0.5
    adversarial_fraction: float = 1.0  # REST: 1, every batch replaced
    lambda_o: float = 0.0
    lambda_g: float = 0.0
    prune_fraction: float = 0.0
    prune_min_fraction: float = 0.1
    prune_widths: tuple[int, ...] | None = None
    retrain_epochs: int = 0
    select_attack: str = "paper"
    select_eps_uv: float = 6.0
    val_samples: int | None = 1000
    val_adv_samples: int = 300
    optimizer: str = "adam"
    momentum: float = 0.9
    seed: int = 0

    def __post_init__(self):
        for name in ("augment", "select_attack"):
            value = getattr(self, name)
            object.__setattr__(self, name, ATTACK_ALIASES.get(value, value))
        if self.augment not in AUGMENTS:
            raise ValueError(f"augment {self.augment!r}: expected one of {', '.join(AUGMENTS)}")
        if self.select_attack not in ATTACKS:
            raise ValueError(
                f"select_attack {self.select_attack!r}: expected one of {', '.join(ATTACKS)}"
            )
        if self.optimizer not in ("adam", "sgd"):
            raise ValueError(f"optimizer {self.optimizer!r}: expected adam or sgd")
        if not 0 < self.adversarial_fraction <= 1:
            raise ValueError("adversarial_fraction must be in (0, 1]")
        if self.prune_fraction > 0 and self.retrain_epochs < 1:
            raise ValueError("prune_fraction > 0 needs retrain_epochs >= 1")
        if self.prune_widths is not None:
            object.__setattr__(self, "prune_widths", tuple(int(w) for w in self.prune_widths))

    @classmethod
    def from_file(cls, path: str | Path | None, **overrides) -> RobustConfig:
        d = json.loads(Path(path).read_text()) if path else {}
        unknown = set(d) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"{path}: unknown fine-tuning options {sorted(unknown)}")
        d.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**d)


@dataclass
class _RobustData:
    x_train: np.ndarray  # float32 (n, 4, 3000) uV
    y_train: np.ndarray
    x_val: np.ndarray  # the fixed clean-validation subset, uV
    y_val: np.ndarray
    x_val_adv: np.ndarray  # the fixed adversarial-validation subset, uV
    y_val_adv: np.ndarray


def _subset(n: int, k: int | None, rng: np.random.Generator) -> np.ndarray:
    return np.arange(n) if k is None or k >= n else np.sort(rng.choice(n, k, replace=False))


def _val_scores(model, inp, norm, data: _RobustData, cfg: RobustConfig, scale) -> dict:
    """Clean and adversarial validation macro-F1 and their mean, the selection score."""
    clean = predict(model, norm.model_input(data.x_val)).argmax(axis=1)
    spec = Attack(cfg.select_attack, cfg.select_eps_uv, cfg.attack_iterations)
    gen = torch.Generator().manual_seed(cfg.seed + 1)  # the same random starts every epoch
    preds = []
    for i in range(0, len(data.x_val_adv), 128):
        xb = torch.from_numpy(data.x_val_adv[i : i + 128])
        yb = torch.from_numpy(data.y_val_adv[i : i + 128].astype(np.int64))
        x_adv = attack(model, inp, xb, yb, spec, scale, gen).numpy()
        preds.append(predict(model, norm.model_input(x_adv)).argmax(axis=1))
    f1_clean = scores(data.y_val, clean)["macro_f1"]
    f1_adv = scores(data.y_val_adv, np.concatenate(preds))["macro_f1"]
    return {
        "val_macro_f1": f1_clean,
        "val_adv_macro_f1": f1_adv,
        # selection: the mean of both; undefined (None) when either is
        "val_select": None if f1_clean is None or f1_adv is None else (f1_clean + f1_adv) / 2,
    }


def _optimiser(model, cfg: RobustConfig, steps: int):
    """The optimiser and its per-batch scheduler over a stage of ``steps`` batches."""
    if cfg.optimizer == "sgd":  # the paper: SGD, momentum 0.9, lr / 10 at epochs 10 and 20 of 30
        opt = torch.optim.SGD(
            model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay
        )
        milestones = [max(1, round(steps / 3)), max(1, round(2 * steps / 3))]
        return opt, torch.optim.lr_scheduler.MultiStepLR(opt, milestones, gamma=0.1)
    opt = torch.optim.Adam(
        model.parameters(), lr=cfg.lr, amsgrad=True, weight_decay=cfg.weight_decay
    )
    return opt, torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(steps, 1))


def _stage(
    folder: Path,
    model: ULWSleepNet,
    norm: Normaliser,
    stats: SignalStats,
    data: _RobustData,
    cfg: RobustConfig,
    *,
    epochs: int,
    lambda_g: float,
    extra: dict,
) -> list[dict]:
    """One fine-tuning stage; resumes from folder/checkpoint.pt; the best epoch goes to
    folder/model. Returns the history."""
    inp = DifferentiableInput(norm)
    scale = channel_scale(stats)
    n = len(data.x_train)
    per_epoch = min(cfg.samples_per_epoch or n, n)
    opt, sched = _optimiser(model, cfg, epochs * math.ceil(per_epoch / cfg.batch_size))
    spec = (
        Attack(cfg.augment, cfg.eps_uv, cfg.attack_iterations, cfg.attack_step_uv)
        if cfg.augment in ATTACKS
        else None
    )
    y_all = torch.from_numpy(data.y_train.astype(np.int64))

    def batch_loss(idx, rng, gen) -> dict:
        xb_np, yb = data.x_train[idx], y_all[idx]
        if cfg.augment == "gaussian":
            noisy = rng.random(len(idx)) < cfg.gaussian_fraction
            if noisy.any():
                xb_np = xb_np.copy()
                xb_np[noisy] = gaussian_noise(xb_np[noisy], cfg.gaussian_c, stats, rng)
        xb = torch.from_numpy(np.ascontiguousarray(xb_np, dtype=np.float32))
        if spec is not None and cfg.adversarial_fraction >= 1:
            xb = attack(model, inp, xb, yb, spec, scale, gen)
        elif spec is not None:
            adv = torch.from_numpy(rng.random(len(idx)) < cfg.adversarial_fraction)
            if adv.any():
                xb = xb.clone()
                xb[adv] = attack(model, inp, xb[adv], yb[adv], spec, scale, gen)
        model.train()
        ce = F.cross_entropy(model(inp(xb)), yb)
        terms = {"loss": ce, "ce": ce, "spectral": 0.0, "bn_l1": 0.0}
        if cfg.lambda_o:
            terms["spectral"] = spectral_penalty(model)
            terms["loss"] = terms["loss"] + cfg.lambda_o * terms["spectral"]
        if lambda_g:
            terms["bn_l1"] = bn_l1(model)
            terms["loss"] = terms["loss"] + lambda_g * terms["bn_l1"]
        return terms

    recipe = Recipe(
        batch_loss,
        lambda: _val_scores(model, inp, norm, data, cfg, scale),
        select="val_select",
        progress=lambda row: {
            "f1": format_metric(row["val_macro_f1"]),
            "adv": format_metric(row["val_adv_macro_f1"]),
        },
        timed=True,
    )
    return fit(
        folder,
        model,
        opt,
        sched,
        recipe,
        epochs=epochs,
        samples=n,
        per_epoch=per_epoch,
        batch_size=cfg.batch_size,
        seed=cfg.seed,
        extra=extra,
    )


def finetune(
    init: str | Path,
    data: str | Path,
    out: str | Path,
    cfg: RobustConfig,
    *,
    cache_dir: str | Path | None = None,
) -> dict:
    """Fine-tune the model folder ``init`` with ``cfg`` on the subject split stored in its
    config.json; the result (best checkpoint of the last stage) goes to OUT/model with
    metrics.json on the test subjects (clean). Re-running the same command resumes."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(cfg.seed)
    model, init_config = load_model(init)
    if init_config.get("normalisation", {}).get("kind") == "zscore":
        raise ValueError(f"{init}: REST fine-tuning needs the fixed-scale int8 normalisation")
    norm = Normaliser.from_dict(init_config["normalisation"])
    split = init_config["split"]
    run_info = json.loads(json.dumps({"init": str(init), "config": asdict(cfg), "split": split}))
    run_file = out / "finetune.json"
    stored = json.loads(run_file.read_text()) if run_file.is_file() else None
    if stored is not None:  # options added since that run have their defaults
        stored["config"] = {**json.loads(json.dumps(asdict(RobustConfig()))), **stored["config"]}
    if stored is not None and stored != run_info:
        raise ValueError(
            f"{out} holds a fine-tuning run with other options; use a new --out or delete it"
        )
    run_file.write_text(json.dumps(run_info, indent=1) + "\n")

    recs = load_recordings(data, cache_dir)
    provenance = data_provenance(data)
    part = {
        k: [r for r in recs if subject_key(r) in set(split[k])] for k in ("train", "val", "test")
    }
    for k, rs in part.items():
        if not rs:
            raise ValueError(f"{data}: no recording of the {k} subjects {split[k]}")
    stats = training_stats(part["train"], split["train"])
    rng = np.random.default_rng(cfg.seed)
    x_val = np.concatenate([r.epochs for r in part["val"]])
    y_val = np.concatenate([r.labels for r in part["val"]])
    i_val = _subset(len(x_val), cfg.val_samples, rng)
    i_adv = _subset(len(x_val), cfg.val_adv_samples, rng)
    rd = _RobustData(
        np.concatenate([r.epochs for r in part["train"]]),
        np.concatenate([r.labels for r in part["train"]]),
        x_val[i_val],
        y_val[i_val],
        x_val[i_adv],
        y_val[i_adv],
    )
    del x_val
    extra = {
        "normalisation": init_config["normalisation"],
        "signal_stats": stats.to_dict(),
        "stages": list(STAGE_NAMES),
        "split": split,
        "finetune": {"init": str(init), **asdict(cfg)},
        "data_provenance": provenance,
    }
    t0 = time.perf_counter()
    _stage(
        out / "stage-1",
        model,
        norm,
        stats,
        rd,
        cfg,
        epochs=cfg.epochs,
        lambda_g=cfg.lambda_g,
        extra=extra,
    )
    final = out / "stage-1" / "model"
    if cfg.prune_fraction > 0:
        # Network slimming prunes the model at the END of sparsity training, where the gammas
        # are most separated (its best-validation epoch may come before they separate).
        best, _ = load_model(final)
        state = torch.load(
            out / "stage-1" / "checkpoint.pt", map_location="cpu", weights_only=False
        )
        best.load_state_dict(state["model"])
        plan = plan_pruning(best, cfg.prune_fraction, cfg.prune_min_fraction, cfg.prune_widths)
        pruned = prune(best, plan)
        before, _ = load_model(init)
        slim = slimming.report(
            out / "pruned-before-retraining", before, best, plan, cfg.prune_fraction
        )
        extra = {
            **extra,
            "pruned": {
                "plan": plan.to_dict(),
                "from": str(out / "stage-1" / "checkpoint.pt") + " (last sparsity epoch)",
                **{k: slim[k] for k in ("channels", "removed", "fraction_removed")},
                "separation": slim["separation_after"],
            },
        }
        save_model(out / "pruned-before-retraining", pruned, extra)
        _stage(
            out / "stage-2",
            pruned,
            norm,
            stats,
            rd,
            cfg,
            epochs=cfg.retrain_epochs,
            lambda_g=0.0,
            extra=extra,
        )
        final = out / "stage-2" / "model"
    wall = time.perf_counter() - t0
    shutil.copytree(final, out / "model", dirs_exist_ok=True)
    best, _ = load_model(out / "model")
    x_test = model_inputs(part["test"], norm)
    y_test = np.concatenate([r.labels for r in part["test"]])
    s = scores(y_test, predict(best, x_test).argmax(axis=1))
    result = {
        **s,
        "pooled": True,
        "note": "test subjects' epochs pooled; clean signals",
        "test_subjects": split["test"],
        "data_provenance": provenance,
        "wall_s_this_run": round(wall, 1),
    }
    (out / "model" / "metrics.json").write_text(json.dumps(result, indent=1) + "\n")
    return result
