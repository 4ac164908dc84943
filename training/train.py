"""Training ULW-SleepNet: subject-wise folds, resumable runs, metrics per fold and pooled.

A run directory holds ``run.json`` (options and data split), one folder per fold
(``fold-1`` ... or ``split`` for a fixed subject split) with ``checkpoint.pt`` (last epoch, for
resuming), ``model/`` (best epoch by validation macro-F1: config.json + weights.pt),
``history.json``, ``learning_curves.png``, ``predictions.npz`` (test subjects), ``metrics.json``,
``confusion.csv/png``; and pooled ``metrics.json`` + ``confusion.csv/png`` over all test folds.
Stopping and re-running the same command resumes where it stopped.
"""

from __future__ import annotations

import json
import math
import shutil
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from sleepdata import cache
from sleepdata.metrics import scores, write_confusion_csv
from sleepdata.noise import SignalStats
from sleepdata.normalise import INPUT_SCALE, Normaliser, zscore_int8
from sleepdata.plots import plot_confusion, plot_learning_curves
from sleepdata.psg import Recording, discover_pairs
from sleepdata.stages import N_STAGES, STAGE_NAMES

from .model import ModelConfig, ULWSleepNet, save_model


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 30
    batch_size: int = 128
    lr: float = 1e-3
    restart_steps: int = 10  # cosine warm restarts: first period (batches), doubling
    weight_decay: float = 0.0
    class_weights: bool = False
    val_fraction: float = 0.15  # of training subjects, at least one subject
    normalisation: str = "fixed"  # "fixed" (deployed) or "zscore" (the alternative measured)
    compile: bool = False
    seed: int = 0

    @classmethod
    def from_file(cls, path: str | Path, **overrides) -> TrainConfig:
        d = json.loads(Path(path).read_text()) if path else {}
        unknown = set(d) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"{path}: unknown training options {sorted(unknown)}")
        d.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**d)


def subject_key(rec: Recording) -> str:
    """Nights of one subject share a key; recordings without a Sleep-EDF name stand alone."""
    return f"subject-{rec.subject:02d}" if rec.subject >= 0 else rec.name


# ------------------------------------------------------------------------------------------
# Data


def load_recordings(data: str | Path, cache_dir: str | Path | None) -> list[Recording]:
    pairs = discover_pairs(data)
    return [cache.load(p, cache_dir) for p in tqdm(pairs, desc="load", unit="night")]


def model_inputs(recs: Sequence[Recording], norm: Normaliser | None) -> np.ndarray:
    """int8 (n, 4, 3000) inputs of all recordings; norm None selects the z-score alternative."""
    parts = [zscore_int8(r.epochs) if norm is None else norm.model_input(r.epochs) for r in recs]
    return np.concatenate(parts) if parts else np.zeros((0, 4, 3000), np.int8)


def as_float(x_int8: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(x_int8).to(torch.float32) * INPUT_SCALE


@dataclass
class Split:
    name: str
    train: list[str]
    val: list[str]
    test: list[str]


def kfold_splits(
    subjects: Sequence[str], folds: int, val_fraction: float, seed: int
) -> list[Split]:
    """Subject-wise folds: each subject is in exactly one test fold; validation subjects are
    drawn from the fold's training subjects (never from its test subjects)."""
    subjects = sorted(set(subjects))
    if not 2 <= folds <= len(subjects):
        raise ValueError(f"--folds must be between 2 and the number of subjects ({len(subjects)})")
    rng = np.random.default_rng(seed)
    order = [subjects[i] for i in rng.permutation(len(subjects))]
    splits = []
    for k, test in enumerate(np.array_split(np.array(order, dtype=object), folds), start=1):
        rest = [s for s in order if s not in set(test)]
        n_val = max(1, round(val_fraction * len(rest)))
        if n_val >= len(rest):
            raise ValueError("too few subjects for a training and a validation split")
        val = sorted(rng.choice(rest, size=n_val, replace=False).tolist())
        train = sorted(s for s in rest if s not in val)
        splits.append(Split(f"fold-{k}", train, val, sorted(test.tolist())))
    return splits


def fixed_split(subjects: Sequence[str], test: Sequence[str], val: Sequence[str]) -> Split:
    subjects = set(subjects)
    missing = (set(test) | set(val)) - subjects
    if missing:
        raise ValueError(f"subjects {sorted(missing)} are not in the data")
    if set(test) & set(val):
        raise ValueError("a subject cannot be both test and validation")
    train = sorted(subjects - set(test) - set(val))
    if not train:
        raise ValueError("no training subjects left")
    return Split("split", train, sorted(val), sorted(test))


# ------------------------------------------------------------------------------------------
# One fold


def predict(model: torch.nn.Module, x_int8: np.ndarray, batch_size: int = 512) -> np.ndarray:
    """Softmax probabilities (n, 5)."""
    model.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(x_int8), batch_size):
            out.append(torch.softmax(model(as_float(x_int8[i : i + batch_size])), dim=1))
    return torch.cat(out).numpy() if out else np.zeros((0, N_STAGES), np.float32)


def class_weight_tensor(y: np.ndarray) -> torch.Tensor:
    counts = np.bincount(y, minlength=N_STAGES).astype(np.float64)
    w = counts.sum() / (N_STAGES * np.maximum(counts, 1))
    return torch.tensor(w, dtype=torch.float32)


def save_checkpoint(path: Path, model, opt, sched, rng, **extra) -> None:
    """Everything a resumed run needs, written atomically (a crash leaves the previous one)."""
    tmp = path.with_name(path.name + ".part")
    torch.save(
        {
            "model": model.state_dict(),
            "optimizer": opt.state_dict(),
            "scheduler": sched.state_dict(),
            "numpy_rng": rng.bit_generator.state,
            **extra,
        },
        tmp,
    )
    tmp.replace(path)


def load_checkpoint(path: Path, model, opt, sched, rng) -> dict | None:
    """Restores model, optimiser, scheduler and numpy generator from ``path`` if it exists;
    returns the whole saved state (for the caller's own entries), else None."""
    if not path.is_file():
        return None
    state = torch.load(path, map_location="cpu", weights_only=False)
    model.load_state_dict(state["model"])
    opt.load_state_dict(state["optimizer"])
    sched.load_state_dict(state["scheduler"])
    rng.bit_generator.state = state["numpy_rng"]
    return state


def train_fold(
    folder: Path,
    data: dict[str, tuple[np.ndarray, np.ndarray]],
    model_config: ModelConfig,
    cfg: TrainConfig,
    extra: dict,
) -> dict:
    """Train on data['train'], select on data['val'], return metrics on data['test'].

    data maps split name -> (int8 inputs, labels). Resumes from folder/checkpoint.pt.
    """
    folder.mkdir(parents=True, exist_ok=True)
    x_train, y_train = data["train"]
    x_val, y_val = data["val"]
    torch.manual_seed(cfg.seed)
    model = ULWSleepNet(model_config)
    opt = torch.optim.Adam(
        model.parameters(), lr=cfg.lr, amsgrad=True, weight_decay=cfg.weight_decay
    )
    sched = torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(
        opt, T_0=cfg.restart_steps, T_mult=2
    )
    rng = np.random.default_rng(cfg.seed)
    history: list[dict] = []
    best_f1, start = -1.0, 0
    ckpt = folder / "checkpoint.pt"
    state = load_checkpoint(ckpt, model, opt, sched, rng)
    if state is not None:
        torch.set_rng_state(state["torch_rng"])
        history, best_f1, start = state["history"], state["best_f1"], state["epoch"]
    weights = class_weight_tensor(y_train) if cfg.class_weights else None
    step = torch.compile(model) if cfg.compile else model
    y_train_t = torch.from_numpy(y_train.astype(np.int64))
    n_batches = math.ceil(len(x_train) / cfg.batch_size)
    bar = tqdm(
        range(start, cfg.epochs), desc=folder.name, unit="epoch", initial=start, total=cfg.epochs
    )
    for epoch in bar:
        model.train()
        order = rng.permutation(len(x_train))
        total = 0.0
        for b in tqdm(range(n_batches), desc=f"epoch {epoch + 1}", unit="batch", leave=False):
            idx = np.sort(order[b * cfg.batch_size : (b + 1) * cfg.batch_size])
            loss = F.cross_entropy(step(as_float(x_train[idx])), y_train_t[idx], weight=weights)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
        probs = predict(model, x_val)
        val_loss = float(
            F.nll_loss(
                torch.log(torch.from_numpy(probs) + 1e-12), torch.from_numpy(y_val.astype(np.int64))
            )
        )
        s = scores(y_val, probs.argmax(axis=1))
        history.append(
            {
                "epoch": epoch + 1,
                "train_loss": total / len(x_train),
                "val_loss": val_loss,
                "val_macro_f1": s["macro_f1"],
                "val_acc": s["acc"],
            }
        )
        if s["macro_f1"] > best_f1:
            best_f1 = s["macro_f1"]
            save_model(
                folder / "model",
                model,
                {**extra, "selected_epoch": epoch + 1, "val_macro_f1": best_f1},
            )
        bar.set_postfix(loss=f"{history[-1]['train_loss']:.3f}", val_f1=f"{s['macro_f1']:.3f}")
        save_checkpoint(
            ckpt,
            model,
            opt,
            sched,
            rng,
            torch_rng=torch.get_rng_state(),
            history=history,
            best_f1=best_f1,
            epoch=epoch + 1,
        )
    (folder / "history.json").write_text(json.dumps(history, indent=1) + "\n")
    if history:
        plot_learning_curves(folder / "learning_curves.png", history, title=folder.name)
    return history


def evaluate_fold(folder: Path, x_test: np.ndarray, y_test: np.ndarray, nights: np.ndarray) -> dict:
    from .model import load_model

    model, _ = load_model(folder / "model")
    probs = predict(model, x_test)
    np.savez(folder / "predictions.npz", probs=probs, labels=y_test, nights=nights)
    s = scores(y_test, probs.argmax(axis=1))
    write_confusion_csv(folder / "confusion.csv", np.array(s["confusion"]))
    plot_confusion(folder / "confusion.png", np.array(s["confusion"]), title=folder.name)
    (folder / "metrics.json").write_text(json.dumps({**s, "pooled": True}, indent=1) + "\n")
    return s


# ------------------------------------------------------------------------------------------
# A run


def run(
    data: str | Path,
    out: str | Path,
    cfg: TrainConfig,
    *,
    folds: int | None = None,
    test_subjects: Sequence[str] = (),
    val_subjects: Sequence[str] = (),
    cache_dir: str | Path | None = None,
    model_config: ModelConfig | None = None,
) -> dict:
    """Cross-validate (``folds``) or train on a fixed subject split; returns pooled metrics."""
    out = Path(out)
    model_config = model_config or ModelConfig()
    recs = load_recordings(data, cache_dir)
    by_subject: dict[str, list[Recording]] = {}
    for r in recs:
        by_subject.setdefault(subject_key(r), []).append(r)
    if test_subjects:
        splits = [fixed_split(by_subject, test_subjects, val_subjects)]
    else:
        splits = kfold_splits(list(by_subject), folds or 5, cfg.val_fraction, cfg.seed)
    run_info = {
        "data": str(data),
        "train_config": asdict(cfg),
        "model_config": model_config.to_dict(),
        "splits": [asdict(s) for s in splits],
        "nights": {k: [r.name for r in v] for k, v in sorted(by_subject.items())},
    }
    out.mkdir(parents=True, exist_ok=True)
    run_file = out / "run.json"
    if run_file.is_file():
        previous = json.loads(run_file.read_text())
        if (
            previous["splits"] != run_info["splits"]
            or previous["train_config"] != run_info["train_config"]
        ):
            raise ValueError(
                f"{out} holds a run with other options or data; use a new --out "
                "or delete it to start again"
            )
    run_file.write_text(json.dumps(run_info, indent=1) + "\n")

    all_y, all_p, fold_metrics = [], [], []
    for split in splits:
        folder = out / split.name
        part = {
            name: [r for s in getattr(split, name) for r in by_subject[s]]
            for name in ("train", "val", "test")
        }
        norm = (
            None
            if cfg.normalisation == "zscore"
            else Normaliser.fit([r.epochs for r in part["train"]], seed=cfg.seed)
        )
        data_xy = {
            name: (model_inputs(rs, norm), np.concatenate([r.labels for r in rs]))
            for name, rs in part.items()
        }
        extra = {
            "normalisation": norm.to_dict() if norm else {"kind": "zscore"},
            "signal_stats": training_stats(part["train"], split.train).to_dict(),
            "stages": list(STAGE_NAMES),
            "train_config": asdict(cfg),
            "split": asdict(split),
        }
        if not (folder / "metrics.json").is_file():
            train_fold(folder, data_xy, model_config, cfg, extra)
            nights = np.concatenate([[r.name] * len(r) for r in part["test"]])
            evaluate_fold(folder, *data_xy["test"], nights)
        fold = json.loads((folder / "metrics.json").read_text())
        fold_metrics.append({"fold": split.name, **fold})
        pred = np.load(folder / "predictions.npz")
        all_y.append(pred["labels"])
        all_p.append(pred["probs"].argmax(axis=1))
    pooled = scores(np.concatenate(all_y), np.concatenate(all_p))
    write_confusion_csv(out / "confusion.csv", np.array(pooled["confusion"]))
    plot_confusion(
        out / "confusion.png", np.array(pooled["confusion"]), title="pooled over test folds"
    )
    result = {
        **pooled,
        "pooled": True,
        "note": "epochs of all test subjects pooled over folds (not averaged per night)",
        "folds": fold_metrics,
    }
    (out / "metrics.json").write_text(json.dumps(result, indent=1) + "\n")
    if len(splits) == 1:
        shutil.copyfile(out / "metrics.json", folder / "model" / "metrics.json")
    return result


# ------------------------------------------------------------------------------------------
# Robust and compressed fine-tuning (REST, ../shared/docs/rest.md; docs/robustness.md)


@dataclass(frozen=True)
class RobustConfig:
    """Options of ``python -m training finetune``: fine-tune a trained model folder on the raw
    microvolt signal with REST's terms, optionally prune and retrain.

    ``augment``: "none", "gaussian" (REST's Gaussian noise, c = ``gaussian_c``, on a
    ``gaussian_fraction`` of each batch: the "Ford" baseline), "rest-published" or "pgd"
    (every batch replaced by its adversarial version, budget ``eps_uv`` in uV of Fpz-Cz, see
    training/rest.py; with ``adversarial_fraction`` < 1 only that fraction of each batch, the
    rest stays clean). ``lambda_o``: spectral term; ``lambda_g``: L1 on BatchNorm gammas (first
    stage only). ``prune_fraction`` > 0: after the first stage, the best checkpoint loses that
    fraction of its DSSC channels (at least ``prune_min_fraction`` of each layer kept, each
    layer's count rounded up to one of ``prune_widths`` when given) and is
    retrained for ``retrain_epochs`` without the sparsity term. Checkpoints are selected on the
    mean of clean and adversarial (``select_attack`` at ``select_eps_uv``) validation macro-F1,
    on fixed subsets of ``val_samples`` / ``val_adv_samples`` validation epochs."""

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
    select_attack: str = "pgd"
    select_eps_uv: float = 6.0
    val_samples: int | None = 1000
    val_adv_samples: int = 300
    seed: int = 0

    def __post_init__(self):
        if self.augment not in ("none", "gaussian", "rest-published", "pgd"):
            raise ValueError(
                f"augment {self.augment!r}: expected none, gaussian, rest-published or pgd"
            )
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
    from .rest import Attack, attack

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
        "val_select": (f1_clean + f1_adv) / 2,
    }


def _robust_stage(
    folder: Path,
    model: ULWSleepNet,
    norm: Normaliser,
    stats,
    data: _RobustData,
    cfg: RobustConfig,
    *,
    epochs: int,
    lambda_g: float,
    extra: dict,
) -> list[dict]:
    """One fine-tuning stage; resumes from folder/checkpoint.pt; the best epoch goes to
    folder/model."""
    from sleepdata.noise import gaussian_noise

    from .rest import Attack, DifferentiableInput, attack, bn_l1, channel_scale, spectral_penalty

    folder.mkdir(parents=True, exist_ok=True)
    inp = DifferentiableInput(norm)
    scale = channel_scale(stats)
    n = len(data.x_train)
    per_epoch = min(cfg.samples_per_epoch or n, n)
    n_batches = math.ceil(per_epoch / cfg.batch_size)
    opt = torch.optim.Adam(
        model.parameters(), lr=cfg.lr, amsgrad=True, weight_decay=cfg.weight_decay
    )
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(epochs * n_batches, 1))
    rng = np.random.default_rng(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    history: list[dict] = []
    best, start = -1.0, 0
    ckpt = folder / "checkpoint.pt"
    state = load_checkpoint(ckpt, model, opt, sched, rng)
    if state is not None:
        gen.set_state(state["torch_gen"])
        history, best, start = state["history"], state["best"], state["epoch"]
    spec = (
        Attack(cfg.augment, cfg.eps_uv, cfg.attack_iterations, cfg.attack_step_uv)
        if cfg.augment in ("rest-published", "pgd")
        else None
    )
    y_all = torch.from_numpy(data.y_train.astype(np.int64))
    bar = tqdm(range(start, epochs), desc=folder.name, unit="epoch", initial=start, total=epochs)
    for epoch in bar:
        order = rng.permutation(n)[:per_epoch]
        totals = {"loss": 0.0, "ce": 0.0, "spectral": 0.0, "bn_l1": 0.0}
        t0 = time.perf_counter()
        for b in tqdm(range(n_batches), desc=f"epoch {epoch + 1}", unit="batch", leave=False):
            idx = np.sort(order[b * cfg.batch_size : (b + 1) * cfg.batch_size])
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
            loss = ce
            if cfg.lambda_o:
                spectral = spectral_penalty(model)
                loss = loss + cfg.lambda_o * spectral
                totals["spectral"] += spectral.item() * len(idx)
            if lambda_g:
                l1 = bn_l1(model)
                loss = loss + lambda_g * l1
                totals["bn_l1"] += l1.item() * len(idx)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            totals["loss"] += loss.item() * len(idx)
            totals["ce"] += ce.item() * len(idx)
        train_s = time.perf_counter() - t0
        val = _val_scores(model, inp, norm, data, cfg, scale)
        history.append(
            {
                "epoch": epoch + 1,
                **{f"train_{k}": v / per_epoch for k, v in totals.items()},
                **val,
                "train_s": round(train_s, 1),
                "val_s": round(time.perf_counter() - t0 - train_s, 1),
            }
        )
        if val["val_select"] > best:
            best = val["val_select"]
            save_model(folder / "model", model, {**extra, "selected_epoch": epoch + 1, **val})
        bar.set_postfix(f1=f"{val['val_macro_f1']:.3f}", adv=f"{val['val_adv_macro_f1']:.3f}")
        save_checkpoint(
            ckpt,
            model,
            opt,
            sched,
            rng,
            torch_gen=gen.get_state(),
            history=history,
            best=best,
            epoch=epoch + 1,
        )
    (folder / "history.json").write_text(json.dumps(history, indent=1) + "\n")
    return history


def training_stats(recordings, subjects) -> SignalStats:
    """Per-channel statistics (uV) of the training split, as the noise generators and attacks
    use them; stored in every model's config.json as ``signal_stats``."""
    return SignalStats.fit(
        [r.epochs for r in recordings],
        source=f"training split ({len(recordings)} nights of {', '.join(subjects)})",
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
    from .model import load_model
    from .rest import plan_pruning, prune

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
    }
    t0 = time.perf_counter()
    _robust_stage(
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
        best, _ = load_model(final)
        plan = plan_pruning(best, cfg.prune_fraction, cfg.prune_min_fraction, cfg.prune_widths)
        pruned = prune(best, plan)
        extra = {**extra, "pruned": {"plan": plan.to_dict(), "from": str(final)}}
        save_model(out / "pruned-before-retraining", pruned, extra)
        _robust_stage(
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
        "wall_s_this_run": round(wall, 1),
    }
    (out / "model" / "metrics.json").write_text(json.dumps(result, indent=1) + "\n")
    return result
