"""Scoring metrics (accuracy, macro-F1, Cohen's kappa, confusion) and per-night sleep statistics."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from .layout import EPOCH_S
from .stages import N_STAGES, SLEEP_STAGES, STAGE_NAMES


def _labels(x, name: str, n_classes: int = N_STAGES) -> np.ndarray:
    """``x`` as a 1-D int64 array of class indices in 0..n_classes-1, else ValueError."""
    a = np.asarray(x)
    if a.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {a.shape}")
    if a.size and not np.issubdtype(a.dtype, np.integer):
        if not (np.issubdtype(a.dtype, np.floating) and np.all(a == np.round(a))):
            raise ValueError(f"{name} must hold integer stage labels, got dtype {a.dtype}")
    a = a.astype(np.int64)
    bad = (a < 0) | (a >= n_classes)
    if bad.any():
        raise ValueError(
            f"{name} has labels outside 0..{n_classes - 1}: {sorted(set(a[bad].tolist()))[:5]}"
        )
    return a


def confusion_matrix(y_true, y_pred, n_classes: int = N_STAGES) -> np.ndarray:
    """Counts (n_classes, n_classes) int64: rows = true stage, columns = predicted stage."""
    t, p = _labels(y_true, "y_true", n_classes), _labels(y_pred, "y_pred", n_classes)
    if t.size != p.size:
        raise ValueError(f"y_true and y_pred differ in length: {t.size} != {p.size}")
    cm = np.bincount(t * n_classes + p, minlength=n_classes * n_classes)
    return cm.reshape(n_classes, n_classes).astype(np.int64)


def scores(y_true, y_pred) -> dict:
    """Epoch-by-epoch agreement of two label sequences (n,) of stage ints 0..4.

    Returns ``acc``, ``macro_f1``, ``kappa`` (Cohen's), ``per_class_f1`` (stage name -> F1),
    ``confusion`` (list of lists, rows = true) and ``n_epochs``. A stage absent from both truth
    and prediction has F1 None and is left out of the macro-F1 mean; a stage present in only one
    of them has F1 0. When truth and prediction are one and the same stage throughout, kappa
    (0 / 0: expected agreement is 1) and macro-F1 (the mean over that one stage says nothing
    about telling stages apart) are undefined: both are None (``format_scores`` and the reports
    print "n/a"). Empty input raises ValueError.
    """
    cm = confusion_matrix(y_true, y_pred)
    n = int(cm.sum())
    if n == 0:
        raise ValueError("scores() needs at least one epoch")
    tp, n_true, n_pred = np.diag(cm), cm.sum(axis=1), cm.sum(axis=0)
    per_class: dict[str, float | None] = {}
    for k, name in enumerate(STAGE_NAMES):
        denom = int(n_true[k] + n_pred[k])
        per_class[name] = None if denom == 0 else 2.0 * float(tp[k]) / denom
    present = [f for f in per_class.values() if f is not None]
    po = float(tp.sum()) / n
    pe = float(np.dot(n_true, n_pred)) / n**2
    # pe == 1 only when both sequences are the same single stage
    single = pe >= 1.0
    return {
        "acc": po,
        "macro_f1": None if single else float(np.mean(present)),
        "kappa": None if single else float((po - pe) / (1.0 - pe)),
        "per_class_f1": per_class,
        "confusion": cm.tolist(),
        "n_epochs": n,
    }


def write_confusion_csv(path: str | Path, cm) -> None:
    """Write a (5, 5) confusion matrix as CSV: header ``true\\pred,W,...,REM``, a row per stage."""
    cm = np.asarray(cm)
    if cm.shape != (N_STAGES, N_STAGES):
        raise ValueError(f"confusion matrix must be {N_STAGES}x{N_STAGES}, got shape {cm.shape}")
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["true\\pred", *STAGE_NAMES])
        for name, row in zip(STAGE_NAMES, cm.astype(np.int64).tolist(), strict=True):
            w.writerow([name, *row])


def sleep_statistics(labels, *, epoch_s: float = EPOCH_S) -> dict:
    """Standard statistics of one night: ``labels`` (n,) stage ints for consecutive epochs.

    All durations are in minutes: ``tib_min`` (time in bed, all epochs), ``tst_min`` (total sleep
    time, N1+N2+N3+REM), ``sol_min`` (sleep onset latency, time before the first sleep epoch),
    ``waso_min`` (W epochs between the first and last sleep epoch) and ``w_min``..``rem_min``;
    ``sleep_efficiency`` is tst/tib (0..1). ``sol_min`` and ``waso_min`` are None without sleep.
    """
    y = _labels(labels, "labels")
    if y.size == 0:
        raise ValueError("sleep_statistics() needs at least one epoch")
    if epoch_s <= 0:
        raise ValueError(f"epoch_s must be positive, got {epoch_s}")
    per_min = epoch_s / 60.0
    counts = np.bincount(y, minlength=N_STAGES)
    asleep = np.flatnonzero(np.isin(y, sorted(SLEEP_STAGES)))
    tib, tst = y.size * per_min, asleep.size * per_min
    out: dict = {"tib_min": tib, "tst_min": tst, "sleep_efficiency": tst / tib}
    if asleep.size:
        first, last = int(asleep[0]), int(asleep[-1])
        out["sol_min"] = first * per_min
        out["waso_min"] = int(np.count_nonzero(y[first : last + 1] == 0)) * per_min
    else:
        out["sol_min"] = out["waso_min"] = None
    for k, name in enumerate(STAGE_NAMES):
        out[f"{name.lower()}_min"] = int(counts[k]) * per_min
    return out


def format_metric(v: float | None) -> str:
    """A score with 3 decimals, or "n/a" when it is undefined (None or NaN)."""
    return "n/a" if v is None or v != v else f"{v:.3f}"


def format_scores(s: dict) -> str:
    """A few lines summarising a `scores` result, for CLIs (undefined scores: "n/a"; a stage
    in neither sequence: "-")."""
    f1 = "  ".join(
        f"{name} {'-' if v is None else f'{v:.3f}'}" for name, v in s["per_class_f1"].items()
    )
    return "\n".join(
        [
            f"epochs    {s['n_epochs']}",
            f"ACC       {s['acc']:.3f}",
            f"macro-F1  {format_metric(s['macro_f1'])}",
            f"kappa     {format_metric(s['kappa'])}",
            f"F1        {f1}",
        ]
    )
