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
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from . import cache
from .metrics import scores, write_confusion_csv
from .model import ModelConfig, ULWSleepNet, save_model
from .normalise import INPUT_SCALE, Normaliser, zscore_int8
from .plots import plot_confusion, plot_learning_curves
from .psg import Recording, discover_pairs
from .stages import N_STAGES, STAGE_NAMES


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
    if ckpt.is_file():
        state = torch.load(ckpt, map_location="cpu", weights_only=False)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        rng.bit_generator.state = state["numpy_rng"]
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
        tmp = folder / "checkpoint.pt.part"
        torch.save(
            {
                "model": model.state_dict(),
                "optimizer": opt.state_dict(),
                "scheduler": sched.state_dict(),
                "numpy_rng": rng.bit_generator.state,
                "torch_rng": torch.get_rng_state(),
                "history": history,
                "best_f1": best_f1,
                "epoch": epoch + 1,
            },
            tmp,
        )
        tmp.replace(ckpt)
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
