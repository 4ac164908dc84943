"""Training ULW-SleepNet: subject-wise folds, resumable runs, metrics per fold and pooled.

A run directory holds ``run.json`` (options and data split), one folder per fold
(``fold-1`` ... or ``split`` for a fixed subject split) with ``checkpoint.pt`` (last epoch, for
resuming), ``model/`` (best epoch by validation macro-F1: config.json + weights.pt),
``history.json``, ``learning_curves.png``, ``predictions.npz`` (test subjects), ``metrics.json``,
``confusion.csv/png``; and pooled ``metrics.json`` + ``confusion.csv/png`` over all test folds,
with ``cv_report.md``: ACC, macro-F1 and kappa per fold, pooled, and mean +- std over folds.
Stopping and re-running the same command resumes where it stopped.

Under torchrun (training/distributed.py, docs/distributed.md) the ranks train one model with
DistributedDataParallel, each on its share of every batch, and rank 0 alone writes the run
folder; run.json, every model's config.json and the pooled metrics.json record the device, mixed
precision and number of processes under ``execution``.

``TrainConfig.recipe`` names a recipe of training/recipes.py: ``project`` (the defaults below)
or ``paper`` (the original ULW-SleepNet training: batch 32, 50 epochs, Glorot initialisation,
Keras BatchNorm momentum, checkpoint by validation accuracy); explicit options override it.
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

from . import distributed
from .distributed import Context
from .errors import TrainingError
from .loop import Recipe, as_float, fit, predict
from .model import ModelConfig, ULWSleepNet, load_model
from .recipes import INITS, RECIPES, SELECT_METRICS, prepare_model
from .splits import (
    ModelInputs,
    data_provenance,
    fixed_split,
    kfold_splits,
    load_recordings,
    subject_numbers,
    training_stats,
)

# The scores of the cross-validation report: metrics.json key -> column name.
CV_SCORES = {"acc": "ACC", "macro_f1": "macro-F1", "kappa": "kappa"}


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
    recipe: str = "project"  # the RECIPES entry the defaults came from
    select: str = "macro_f1"  # checkpoint: best validation "macro_f1" or "acc"
    init: str = "torch"  # "torch" (PyTorch's defaults) or "glorot" (Keras' defaults)
    bn_momentum: float = 0.1  # PyTorch's BatchNorm momentum (Keras' 0.99 is 0.01)

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
        for name, allowed in (("recipe", RECIPES), ("select", SELECT_METRICS), ("init", INITS)):
            if getattr(self, name) not in allowed:
                raise TrainingError(
                    f"{name} {getattr(self, name)!r}: expected one of {', '.join(allowed)}"
                )
        if not 0 < self.bn_momentum <= 1:
            raise TrainingError(f"bn_momentum {self.bn_momentum}: must be in (0, 1]")

    @classmethod
    def from_file(cls, path: str | Path | None, **overrides) -> TrainConfig:
        """The defaults of the recipe (``overrides["recipe"]``, else the file's, else
        "project"), then the options of the JSON file ``path`` (field name -> value), then
        ``overrides`` that are not None; TrainingError names the file when it cannot be used."""
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
        recipe = d.get("recipe", "project")
        if recipe not in RECIPES:
            raise TrainingError(f"--recipe {recipe}: expected one of {', '.join(RECIPES)}")
        return cls(**{**RECIPES[recipe], **d})


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
    ctx: Context | None = None,
    timed: bool = False,
) -> list[dict]:
    """Train on data['train'], select on data['val'] (``cfg.select``); returns the history.

    data maps split name -> (int8 inputs, labels). Resumes from folder/checkpoint.pt. ``ctx``:
    the device, mixed precision and rank (None: one process on the CPU). Under torchrun each
    rank takes its share of every batch (`distributed.my_share`) and its loss is scaled so that
    the gradients DistributedDataParallel averages are those of the whole batch; BatchNorm
    normalises over the whole batch; validation is shared out and the probabilities gathered,
    so every rank computes the same scores (and selects the same epoch). ``timed``: history
    rows also hold the seconds of training and validation (`Recipe.timed`), for benchmarks.
    """
    ctx = ctx or Context()
    x_train, y_train = data["train"]
    x_val, y_val = data["val"]
    torch.manual_seed(cfg.seed)
    model = prepare_model(ULWSleepNet(model_config), cfg.init, cfg.bn_momentum)
    if ctx.world_size > 1:
        model = distributed.sync_batchnorm(model, ctx.device)
        torch.manual_seed(distributed.rank_seed(cfg.seed, ctx.rank))  # own dropout draws
    model.to(ctx.device)
    opt = torch.optim.Adam(
        model.parameters(), lr=cfg.lr, amsgrad=True, weight_decay=cfg.weight_decay
    )
    sched = torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(
        opt, T_0=cfg.restart_steps, T_mult=2
    )
    weights = class_weight_tensor(y_train) if cfg.class_weights else None
    if weights is not None:
        weights = weights.to(ctx.device)
    wrapped = distributed.wrap(model, ctx)
    step = torch.compile(wrapped) if cfg.compile else wrapped
    y_train_t = torch.from_numpy(y_train.astype(np.int64)).to(ctx.device)

    def batch_loss(idx, rng, gen) -> dict:
        model.train()
        if ctx.world_size == 1:
            with ctx.autocast():
                logits = step(as_float(x_train[idx]).to(ctx.device))
            return {"loss": F.cross_entropy(logits.float(), y_train_t[idx], weight=weights)}
        # This rank's sum of (weighted) losses over the whole batch's normaliser, times the
        # ranks that DistributedDataParallel divides the summed gradients by: the mean of
        # these over the ranks is the batch's mean loss, as one process computes it.
        mine = distributed.my_share(idx)
        with ctx.autocast():
            logits = step(as_float(x_train[mine]).to(ctx.device))
        total = len(idx) if weights is None else weights[y_train_t[idx]].sum()
        loss = F.cross_entropy(logits.float(), y_train_t[mine], weight=weights, reduction="sum")
        return {"loss": loss * ctx.world_size / total}

    def validate() -> dict:
        shares = np.array_split(np.arange(len(x_val)), ctx.world_size)
        probs = np.concatenate(distributed.gather(predict(model, x_val[shares[ctx.rank]])))
        val_loss = F.nll_loss(
            torch.log(torch.from_numpy(probs) + 1e-12), torch.from_numpy(y_val.astype(np.int64))
        )
        s = scores(y_val, probs.argmax(axis=1))
        return {"val_loss": float(val_loss), "val_macro_f1": s["macro_f1"], "val_acc": s["acc"]}

    select = SELECT_METRICS[cfg.select]
    recipe = Recipe(
        batch_loss,
        validate,
        select=select,
        recorded=tuple(dict.fromkeys((select, "val_macro_f1"))),
        timed=timed,
        progress=lambda row: {
            "loss": f"{row['train_loss']:.3f}",
            "val_f1": format_metric(row["val_macro_f1"]),
            **({"val_acc": f"{row['val_acc']:.3f}"} if cfg.select == "acc" else {}),
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
        scaler=ctx.grad_scaler(),
    )
    if history and ctx.is_main:
        plot_learning_curves(folder / "learning_curves.png", history, title=folder.name)
    return history


def evaluate_fold(
    folder: Path, x_test: np.ndarray, y_test: np.ndarray, nights: np.ndarray, provenance: dict
) -> dict:
    """Scores the fold's selected model (folder/model) on its test subjects: predictions.npz
    (probabilities, labels, record name per epoch), metrics.json (with the data's
    ``provenance``) and confusion.csv/png."""
    model, _ = load_model(folder / "model")
    probs = predict(model, x_test)
    np.savez(folder / "predictions.npz", probs=probs, labels=y_test, nights=nights)
    s = scores(y_test, probs.argmax(axis=1))
    write_confusion_csv(folder / "confusion.csv", np.array(s["confusion"]))
    plot_confusion(folder / "confusion.png", np.array(s["confusion"]), title=folder.name)
    result = {**s, "pooled": True, "data_provenance": provenance}
    (folder / "metrics.json").write_text(json.dumps(result, indent=1) + "\n")
    return s


def over_folds(fold_metrics: Sequence[dict]) -> dict:
    """Mean and sample standard deviation (ddof=1) over folds of each score of CV_SCORES:
    score -> {"mean", "std", "n_folds"}. A fold where a score is undefined (None) is left out
    of that score's figures; std is None with fewer than two folds."""
    out = {}
    for key in CV_SCORES:
        values = np.array([f[key] for f in fold_metrics if f[key] is not None], dtype=np.float64)
        out[key] = {
            "mean": float(values.mean()) if len(values) else None,
            "std": float(values.std(ddof=1)) if len(values) > 1 else None,
            "n_folds": len(values),
        }
    return out


def cv_report(result: dict, test_subjects: dict[str, Sequence[str]]) -> str:
    """cv_report.md of a cross-validated run's ``result`` (`run`): ACC, macro-F1 and kappa per
    fold, pooled over folds and mean +- sample std over folds, each row labelled;
    ``test_subjects`` maps fold name -> its test subjects."""
    folds, summary = result["folds"], result["over_folds"]
    n = len(folds)
    head = "| | test subjects | epochs | " + " | ".join(CV_SCORES.values()) + " |"
    lines = [
        f"# Cross-validation: {n} subject-wise folds",
        "",
        head,
        "|" + "---|" * (3 + len(CV_SCORES)),
    ]
    for f in folds:
        scores_ = " | ".join(format_metric(f[k]) for k in CV_SCORES)
        subjects = subject_numbers(test_subjects[f["fold"]])
        lines.append(f"| {f['fold']} | {subjects} | {f['n_epochs']:,} | {scores_} |")
    pooled = " | ".join(format_metric(result[k]) for k in CV_SCORES)
    lines.append(f"| pooled over folds | all | {result['n_epochs']:,} | {pooled} |")
    spread = " | ".join(
        format_metric(summary[k]["mean"])
        + ("" if summary[k]["std"] is None else f" +- {summary[k]['std']:.3f}")
        for k in CV_SCORES
    )
    lines += [
        f"| mean +- std over folds | | | {spread} |",
        "",
        "Pooled: the epochs of every fold's test subjects scored together (as in "
        "metrics.json). Mean +- std: each fold scored on its own test subjects, then the mean "
        f"and the sample standard deviation (ddof=1) of the {n} fold scores; a fold where a "
        "score is undefined (n/a) is left out of that score's mean and std.",
        "",
    ]
    return "\n".join(lines)


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
    ctx: Context | None = None,
) -> dict:
    """Cross-validate (``folds``) or train on a fixed subject split; returns pooled metrics
    (with cross-validation also ``over_folds``: mean and sample std of the per-fold scores,
    and RUN/cv_report.md). ``ctx``: where this process trains (None: one process on the CPU);
    under torchrun every rank returns rank 0's metrics."""
    ctx = ctx or Context()
    out = Path(out)
    model_config = model_config or ModelConfig()
    if not ctx.is_main:
        distributed.barrier()  # rank 0 fills the cache first: the others only read it
    # Epochs stay in the cache until a batch needs them: a cohort need not fit in memory.
    by_subject = group_by_subject(load_recordings(data, cache_dir, lazy=True))
    if ctx.is_main:
        distributed.barrier()
    provenance = data_provenance(data)
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
        "execution": ctx.to_dict(),
    }
    refused = None
    if ctx.is_main:
        out.mkdir(parents=True, exist_ok=True)
        run_file = out / "run.json"
        try:
            if run_file.is_file():
                _check_same_run(run_file, run_info)
            run_file.write_text(json.dumps(run_info, indent=1) + "\n")
        except TrainingError as exc:
            refused = str(exc)
    refused = distributed.share(refused)  # every rank stops alike
    if refused:
        raise TrainingError(refused)

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
            name: (ModelInputs(rs, norm), np.concatenate([r.labels for r in rs]))
            for name, rs in part.items()
        }
        extra = {
            "normalisation": norm.to_dict() if norm else {"kind": "zscore"},
            "signal_stats": training_stats(part["train"], split.train).to_dict(),
            "stages": list(STAGE_NAMES),
            "train_config": asdict(cfg),
            "split": asdict(split),
            "data_provenance": provenance,
            "execution": ctx.to_dict(),
        }
        if not distributed.share(ctx.is_main and (folder / "metrics.json").is_file()):
            train_fold(folder, data_xy, model_config, cfg, extra, ctx)
            if ctx.is_main:
                nights = np.concatenate([[r.name] * len(r) for r in part["test"]])
                evaluate_fold(folder, *data_xy["test"], nights, provenance)
        if not ctx.is_main:
            continue
        fold = json.loads((folder / "metrics.json").read_text())
        fold_metrics.append({"fold": split.name, **fold})
        pred = np.load(folder / "predictions.npz")
        all_y.append(pred["labels"])
        all_p.append(pred["probs"].argmax(axis=1))
    if not ctx.is_main:
        return distributed.share(None)
    pooled = scores(np.concatenate(all_y), np.concatenate(all_p))
    write_confusion_csv(out / "confusion.csv", np.array(pooled["confusion"]))
    plot_confusion(
        out / "confusion.png", np.array(pooled["confusion"]), title="pooled over test folds"
    )
    result = {
        **pooled,
        "pooled": True,
        "note": "epochs of all test subjects pooled over folds (not averaged per night)",
        "data_provenance": provenance,
        "execution": ctx.to_dict(),
        "folds": fold_metrics,
    }
    if len(splits) > 1:
        result["over_folds"] = over_folds(fold_metrics)
        result["over_folds_note"] = (
            "mean and sample standard deviation (ddof=1) of the per-fold scores"
        )
        report = cv_report(result, {split.name: split.test for split in splits})
        (out / "cv_report.md").write_text(report)
    (out / "metrics.json").write_text(json.dumps(result, indent=1) + "\n")
    if len(splits) == 1:
        shutil.copyfile(out / "metrics.json", folder / "model" / "metrics.json")
    return distributed.share(result)
