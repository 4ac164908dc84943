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
import shutil
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from sleepdata.cohort import group_by_subject
from sleepdata.metrics import format_metric, scores, write_confusion_csv
from sleepdata.normalise import Normaliser
from sleepdata.plots import plot_confusion, plot_learning_curves
from sleepdata.stages import N_STAGES, STAGE_NAMES

from .errors import TrainingError
from .loop import Recipe, as_float, fit, predict
from .model import ModelConfig, ULWSleepNet, load_model
from .splits import fixed_split, kfold_splits, load_recordings, model_inputs, training_stats


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
    samples_per_epoch: int | None = None  # training epochs drawn per epoch (None: all)

    def __post_init__(self):
        for name in ("epochs", "batch_size", "samples_per_epoch"):
            value = getattr(self, name)
            if value is not None and value < 1:
                option = "--" + name.replace("_", "-")
                raise TrainingError(f"{option} {value}: must be at least 1")
        if self.normalisation not in ("fixed", "zscore"):
            raise TrainingError(
                f"normalisation {self.normalisation!r}: expected 'fixed' or 'zscore'"
            )

    @classmethod
    def from_file(cls, path: str | Path | None, **overrides) -> TrainConfig:
        """Options of the JSON file ``path`` (field name -> value), then ``overrides`` that
        are not None; TrainingError names the file when it cannot be used."""
        d = {}
        if path:
            try:
                d = json.loads(Path(path).read_text())
            except (OSError, json.JSONDecodeError) as exc:
                raise TrainingError(f"--config {path}: cannot read it as JSON ({exc})") from None
        unknown = set(d) - set(cls.__dataclass_fields__)
        if unknown:
            raise TrainingError(
                f"--config {path}: unknown training options {sorted(unknown)}; the options "
                f"are {', '.join(cls.__dataclass_fields__)}"
            )
        d.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**d)


def class_weight_tensor(y: np.ndarray) -> torch.Tensor:
    """Inverse-frequency weights (5,) of the labels ``y``: n / (5 * count), absent classes as
    if seen once."""
    counts = np.bincount(y, minlength=N_STAGES).astype(np.float64)
    w = counts.sum() / (N_STAGES * np.maximum(counts, 1))
    return torch.tensor(w, dtype=torch.float32)


def train_fold(
    folder: Path,
    data: dict[str, tuple[np.ndarray, np.ndarray]],
    model_config: ModelConfig,
    cfg: TrainConfig,
    extra: dict,
) -> list[dict]:
    """Train on data['train'], select on data['val'] (macro-F1); returns the history.

    data maps split name -> (int8 inputs, labels). Resumes from folder/checkpoint.pt.
    """
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
    weights = class_weight_tensor(y_train) if cfg.class_weights else None
    step = torch.compile(model) if cfg.compile else model
    y_train_t = torch.from_numpy(y_train.astype(np.int64))

    def batch_loss(idx, rng, gen) -> dict:
        model.train()
        logits = step(as_float(x_train[idx]))
        return {"loss": F.cross_entropy(logits, y_train_t[idx], weight=weights)}

    def validate() -> dict:
        probs = predict(model, x_val)
        val_loss = F.nll_loss(
            torch.log(torch.from_numpy(probs) + 1e-12), torch.from_numpy(y_val.astype(np.int64))
        )
        s = scores(y_val, probs.argmax(axis=1))
        return {"val_loss": float(val_loss), "val_macro_f1": s["macro_f1"], "val_acc": s["acc"]}

    recipe = Recipe(
        batch_loss,
        validate,
        select="val_macro_f1",
        recorded=("val_macro_f1",),
        progress=lambda row: {
            "loss": f"{row['train_loss']:.3f}",
            "val_f1": format_metric(row["val_macro_f1"]),
        },
    )
    history = fit(
        folder,
        model,
        opt,
        sched,
        recipe,
        epochs=cfg.epochs,
        samples=len(x_train),
        per_epoch=min(cfg.samples_per_epoch or len(x_train), len(x_train)),
        batch_size=cfg.batch_size,
        seed=cfg.seed,
        extra=extra,
    )
    if history:
        plot_learning_curves(folder / "learning_curves.png", history, title=folder.name)
    return history


def evaluate_fold(folder: Path, x_test: np.ndarray, y_test: np.ndarray, nights: np.ndarray) -> dict:
    """Scores the fold's selected model (folder/model) on its test subjects: predictions.npz
    (probabilities, labels, record name per epoch), metrics.json and confusion.csv/png."""
    model, _ = load_model(folder / "model")
    probs = predict(model, x_test)
    np.savez(folder / "predictions.npz", probs=probs, labels=y_test, nights=nights)
    s = scores(y_test, probs.argmax(axis=1))
    write_confusion_csv(folder / "confusion.csv", np.array(s["confusion"]))
    plot_confusion(folder / "confusion.png", np.array(s["confusion"]), title=folder.name)
    (folder / "metrics.json").write_text(json.dumps({**s, "pooled": True}, indent=1) + "\n")
    return s


def _check_same_run(run_file: Path, run_info: dict) -> None:
    """TrainingError naming what differs (as command-line options; those only a --config file
    sets are named alike) when the run folder of ``run_file`` was started with other options or
    another subject split than ``run_info``."""
    previous = json.loads(run_file.read_text())
    # Options added since that run was started count as their default.
    before = {**asdict(TrainConfig()), **previous["train_config"]}
    changed = [
        f"--{k.replace('_', '-')} {before.get(k)} -> {v}"
        for k, v in run_info["train_config"].items()
        if before.get(k) != v
    ]
    if previous["splits"] != run_info["splits"]:
        changed.append("the subject split (other data, --folds or --test/--val-subjects)")
    if changed:
        raise TrainingError(
            f"{run_file.parent}: holds a run started with other options ({'; '.join(changed)}); "
            "re-run with its options to resume it, or give a new --out (or delete the folder) "
            "to start again"
        )


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
    by_subject = group_by_subject(load_recordings(data, cache_dir))
    if test_subjects or val_subjects:
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
        _check_same_run(run_file, run_info)
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
