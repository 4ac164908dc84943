"""What network slimming did to a model: the BatchNorm gammas before and after sparsity
training, the global threshold, and the channels each layer kept.

Network slimming (Liu et al., ICCV 2017, as used by REST, section 3.3 of the paper) only prunes
well when the sparsity term has separated the gammas: a few large ones, the rest near zero. If
one threshold has to cut through a unimodal cloud of gammas (0.88-1.20, say), it ranks channels
almost at random. `report` makes that visible: ``pruning.json`` (per layer: width, kept by the
threshold and floor, kept after rounding up to an engine width; every gamma before and after;
the threshold) and ``gammas.png`` (both histograms and the threshold).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .rest import PrunePlan, gammas


def layer_names(n_blocks: int) -> list[str]:
    """Names of the pruned layers in `gammas` order: inner and output BatchNorm per block."""
    return [f"dssc{b + 1}.{part}" for b in range(n_blocks) for part in ("inner", "out")]


def _flat(model) -> list[np.ndarray]:
    return [g.numpy().astype(np.float64) for pair in gammas(model) for g in pair]


def separation(values: np.ndarray, threshold: float | None) -> dict:
    """How well ``threshold`` splits |gamma|: the largest removed and smallest kept value and
    their ratio (>> 1: separated; ~1: the cut runs through one cloud)."""
    if threshold is None:
        return {"largest_removed": None, "smallest_kept": None, "ratio": None}
    below, above = values[values <= threshold], values[values > threshold]
    lo = float(below.max()) if below.size else None
    hi = float(above.min()) if above.size else None
    ratio = hi / lo if lo and hi else None
    return {
        "largest_removed": lo,
        "smallest_kept": hi,
        "median_removed": float(np.median(below)) if below.size else None,
        "median_kept": float(np.median(above)) if above.size else None,
        "ratio": round(ratio, 2) if ratio else None,
    }


def report(folder: str | Path, before, after, plan: PrunePlan, fraction: float) -> dict:
    """Writes FOLDER/pruning.json and FOLDER/gammas.png for the sparsity-trained model ``after``
    (started from ``before``) pruned by ``plan``; returns the JSON's content."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    g0, g1 = _flat(before), _flat(after)
    names = layer_names(len(g1) // 2)
    kept = [len(k) for pair in zip(plan.inner, plan.outer, strict=True) for k in pair]
    total = sum(len(g) for g in g1)
    all1 = np.concatenate(g1)
    out = {
        "target_fraction_removed": fraction,
        "threshold": plan.threshold,
        "channels": total,
        "kept": sum(kept),
        "removed": total - sum(kept),
        "fraction_removed": round((total - sum(kept)) / total, 4),
        "fraction_removed_by_threshold_and_floor": (
            round((total - sum(plan.by_threshold)) / total, 4) if plan.by_threshold else None
        ),
        "separation_after": separation(all1, plan.threshold),
        "separation_before": separation(np.concatenate(g0), plan.threshold),
        "layers": [
            {
                "layer": name,
                "width": len(g),
                "kept_by_threshold_and_floor": (plan.by_threshold or kept)[i],
                "kept": kept[i],
                "gamma_before": np.round(g_b, 5).tolist(),
                "gamma_after": np.round(g, 5).tolist(),
            }
            for i, (name, g_b, g) in enumerate(zip(names, g0, g1, strict=True))
        ],
        "note": (
            "|gamma| of the main stream's BatchNorm of each DSSC channel; one global threshold "
            "removes the target fraction, each layer keeps at least its floor, then each "
            "layer's count is rounded up to an engine width: 'kept' is what was built"
        ),
    }
    (folder / "pruning.json").write_text(json.dumps(out, indent=1) + "\n")
    from sleepdata.plots import plot_gamma_histograms

    plot_gamma_histograms(
        folder / "gammas.png",
        np.concatenate(g0),
        all1,
        plan.threshold,
        title=f"BatchNorm |gamma| ({total} DSSC channels): {total - sum(kept)} removed",
    )
    return out
