"""PNG figures: confusion matrix, learning curves, hypnograms and hypnodensity."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from .layout import EPOCH_S
from .metrics import _labels
from .stages import N_STAGES, STAGE_NAMES

#: Clinical top-to-bottom order of a hypnogram's y axis, and each stage's row in it.
_CLINICAL = ("W", "REM", "N1", "N2", "N3")
_ROW = np.array([_CLINICAL.index(name) for name in STAGE_NAMES], dtype=float)
_COLORS = ("#f2c14e", "#9ecae1", "#4292c6", "#08306b", "#e34a33")  # W N1 N2 N3 REM


def _save(fig, path: str | Path) -> None:
    try:
        fig.tight_layout()
        fig.savefig(path, dpi=120)
    finally:
        plt.close(fig)


def plot_confusion(path: str | Path, cm, *, title: str = "") -> None:
    """Heat map of a (5, 5) confusion matrix (rows = true); cells show count and row %."""
    cm = np.asarray(cm, dtype=np.int64)
    if cm.shape != (N_STAGES, N_STAGES):
        raise ValueError(f"confusion matrix must be {N_STAGES}x{N_STAGES}, got shape {cm.shape}")
    fig, ax = plt.subplots(figsize=(5.5, 5))
    im = _confusion_axes(ax, cm, "predicted", "true")
    ax.set_title(title)
    fig.colorbar(im, ax=ax, label="% of true stage")
    _save(fig, path)


def _confusion_axes(ax, cm: np.ndarray, xlabel: str, ylabel: str, fontsize: float | None = None):
    """Draw a (5, 5) confusion matrix on ax: colour = row %, cells show count and row %."""
    rows = cm.sum(axis=1, keepdims=True)
    pct = np.divide(100.0 * cm, rows, out=np.zeros(cm.shape), where=rows > 0)
    im = ax.imshow(pct, cmap="Blues", vmin=0, vmax=100)
    for i in range(N_STAGES):
        for j in range(N_STAGES):
            color = "white" if pct[i, j] > 60 else "black"
            ax.text(j, i, f"{cm[i, j]}\n{pct[i, j]:.1f}%", ha="center", va="center", color=color,
                    fontsize=fontsize)  # fmt: skip
    ax.set_xticks(range(N_STAGES), STAGE_NAMES)
    ax.set_yticks(range(N_STAGES), STAGE_NAMES)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    return im


def plot_learning_curves(path: str | Path, history: list[dict], *, title: str = "") -> None:
    """Losses and validation macro-F1 (and accuracy if every entry has ``val_acc``) per epoch."""
    if not history:
        raise ValueError("history is empty")
    need = ("epoch", "train_loss", "val_loss", "val_macro_f1")
    for i, h in enumerate(history):
        missing = [k for k in need if k not in h]
        if missing:
            raise ValueError(f"history[{i}] lacks {missing}")
    ep = [h["epoch"] for h in history]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    ax1.plot(ep, [h["train_loss"] for h in history], "o-", label="train loss")
    ax1.plot(ep, [h["val_loss"] for h in history], "o-", label="val loss")
    ax1.set_xlabel("epoch")
    ax1.set_ylabel("loss")
    ax2.plot(ep, [h["val_macro_f1"] for h in history], "o-", label="val macro-F1")
    if all("val_acc" in h for h in history):
        ax2.plot(ep, [h["val_acc"] for h in history], "o-", label="val accuracy")
    ax2.set_xlabel("epoch")
    ax2.set_ylabel("score")
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    _save(fig, path)


def _steps(onsets_s: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Step vertices (hours from the first onset) with a NaN row wherever epochs are not contiguous.

    ``values`` is (n,) or (n, k); each epoch spans [onset, onset + EPOCH_S).
    """
    x = np.column_stack([onsets_s, onsets_s + EPOCH_S]).ravel()
    x = (x - onsets_s[0]) / 3600.0
    y = np.repeat(np.asarray(values, dtype=float), 2, axis=0)
    gaps = np.flatnonzero(np.abs(np.diff(onsets_s) - EPOCH_S) > 1e-6)
    at = 2 * (gaps + 1)
    return np.insert(x, at, x[at - 1]), np.insert(y, at, np.nan, axis=0)


def plot_hypnogram(path: str | Path, onsets_s, truth, pred, *, probs=None, title: str = "") -> None:
    """Expert (``truth``, may be None) and predicted hypnograms over ``onsets_s`` (n,) seconds.

    Labels are (n,) stage ints; ``probs`` (n, 5) adds a hypnodensity panel. The x axis is hours
    from the first onset; gaps between non-contiguous epochs are left blank.
    """
    panels = [("expert", truth)] if truth is not None else []
    panels.append(("predicted", pred))
    plot_hypnograms(path, onsets_s, panels, probs=probs, title=title)


def plot_hypnograms(
    path: str | Path,
    onsets_s,
    panels,
    *,
    probs=None,
    probs_label: str = "hypnodensity",
    title: str = "",
    xlabel: str = "hours from first epoch",
) -> None:
    """Hypnograms of the same epochs stacked top to bottom, one per ``(label, stages)`` of
    ``panels`` (stages: (n,) stage ints), over ``onsets_s`` (n,) seconds from any origin, and
    with ``probs`` (n, 5) a hypnodensity panel below them labelled ``probs_label``.

    The x axis is hours from the first onset; gaps between non-contiguous epochs are left blank.
    The y axis runs W, REM, N1, N2, N3 from the top (the clinical order).
    """
    onsets = np.asarray(onsets_s, dtype=float)
    if onsets.ndim != 1 or onsets.size == 0:
        raise ValueError(f"onsets_s must be a non-empty 1-D array, got shape {onsets.shape}")
    if np.any(np.diff(onsets) <= 0):
        raise ValueError("onsets_s must be strictly increasing")
    labels = []
    for name, y in panels:
        y = _labels(y, name)
        if y.size != onsets.size:
            raise ValueError(f"{name} has {y.size} epochs but onsets_s has {onsets.size}")
        labels.append((name, y))
    if probs is not None:
        probs = np.asarray(probs, dtype=float)
        if probs.shape != (onsets.size, N_STAGES):
            raise ValueError(f"probs must be ({onsets.size}, {N_STAGES}), got {probs.shape}")
    n_ax = len(labels) + (probs is not None)
    if n_ax == 0:
        raise ValueError("nothing to plot: no hypnogram panel and no probs")
    fig, axes = plt.subplots(n_ax, 1, figsize=(11, 1.8 * n_ax + 0.6), sharex=True, squeeze=False)
    axes = axes[:, 0]
    for ax, (name, y) in zip(axes, labels, strict=False):
        ax.plot(*_steps(onsets, _ROW[y]), lw=1, color="black")
        ax.set_yticks(range(len(_CLINICAL)), _CLINICAL)
        ax.set_ylim(len(_CLINICAL) - 0.5, -0.5)
        ax.set_ylabel(name)
    if probs is not None:
        x, p = _steps(onsets, probs)
        axes[-1].stackplot(x, p.T, labels=STAGE_NAMES, colors=_COLORS, lw=0)
        axes[-1].set_ylim(0, 1)
        axes[-1].set_ylabel(probs_label)
        axes[-1].legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize="small")
    axes[-1].set_xlabel(xlabel)
    axes[0].set_title(title)
    _save(fig, path)


def plot_gamma_histograms(
    path: str | Path, before, after, threshold: float | None, *, title: str = ""
) -> None:
    """Histograms of BatchNorm |gamma| before and after sparsity training (log-spaced bins, so
    that gammas pushed towards zero stay visible), with the pruning threshold."""
    before, after = np.abs(np.asarray(before, float)), np.abs(np.asarray(after, float))
    both = np.concatenate([before, after])
    lo = max(float(both[both > 0].min()) if (both > 0).any() else 1e-6, 1e-6)
    bins = np.geomspace(lo, max(float(both.max()), lo * 10), 40)
    fig, ax = plt.subplots(figsize=(7, 3.5))
    for values, name, color in ((before, "before", "#9ecae1"), (after, "after", "#08306b")):
        ax.hist(
            np.maximum(values, lo),
            bins=bins,
            alpha=0.6,
            label=f"{name} ({len(values)})",
            color=color,
        )
    if threshold is not None:
        ax.axvline(
            max(threshold, lo), color="#e34a33", linestyle="--", label=f"threshold {threshold:.3g}"
        )
    ax.set_xscale("log")
    ax.set_xlabel("|gamma|")
    ax.set_ylabel("channels")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    _save(fig, path)


def plot_cohort(
    path: str | Path, names, kappa_onchip, kappa_float, bitexact, cm, *, title: str = ""
) -> None:
    """A cohort's figure: per-night kappa vs expert (on-chip and float bars, bit-exact fraction
    as dots on its own axis) and the pooled on-chip confusion matrix (rows = expert)."""
    cm = np.asarray(cm, dtype=np.int64)
    n = len(names)
    fig, (ax, axc) = plt.subplots(
        1, 2, figsize=(max(8.0, 4.0 + 0.35 * n) + 5.0, 5), width_ratios=[max(4.0, 0.35 * n), 5]
    )
    x = np.arange(n)

    def undefined_as_nan(values) -> list[float]:  # (kappa is undefined on a one-stage night)
        return [np.nan if v is None else v for v in values]

    ax.bar(x - 0.2, undefined_as_nan(kappa_onchip), 0.4, label="on-chip kappa", color="#4292c6")
    ax.bar(x + 0.2, undefined_as_nan(kappa_float), 0.4, label="float kappa", color="#bdbdbd")
    ax.set_xticks(x, names, rotation=90, fontsize=7)
    ax.set_ylim(0, 1)
    ax.set_ylabel("Cohen's kappa vs expert")
    twin = ax.twinx()
    twin.plot(x, bitexact, "o", color="#e34a33", label="bit-exact fraction")
    twin.set_ylim(0, 1.05)
    twin.set_ylabel("bit-exact vs TFLite Micro")
    handles = ax.get_legend_handles_labels()
    more = twin.get_legend_handles_labels()
    ax.legend(handles[0] + more[0], handles[1] + more[1], loc="lower left", fontsize=8)
    ax.set_title(title)
    _confusion_axes(axc, cm, "on-chip", "expert", fontsize=8)
    axc.set_title("pooled confusion")
    _save(fig, path)
