"""Scoring a folder of recordings with a trained model: metrics, hypnograms and plots."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from tqdm import tqdm

from . import cache
from .layout import EPOCH_S
from .metrics import scores, sleep_statistics, write_confusion_csv
from .model import load_model
from .normalise import input_transform
from .plots import plot_confusion, plot_hypnogram
from .psg import Recording, discover_pairs
from .stages import STAGE_NAMES
from .train import predict


def write_hypnogram_tsv(path: Path, rec: Recording, probs: np.ndarray) -> None:
    """One row per scored epoch: onset and duration (s), expert and predicted stage, p(stage)."""
    head = ["onset_s", "duration_s", "expert", "predicted", *[f"p_{s}" for s in STAGE_NAMES]]
    lines = ["\t".join(head)]
    for onset, truth, p in zip(rec.onsets_s, rec.labels, probs, strict=True):
        lines.append(
            "\t".join(
                [
                    f"{onset:g}",
                    str(EPOCH_S),
                    STAGE_NAMES[truth],
                    STAGE_NAMES[int(p.argmax())],
                    *[f"{v:.4f}" for v in p],
                ]
            )
        )
    path.write_text("\n".join(lines) + "\n")


def evaluate(
    model_dir: str | Path, data: str | Path, out: str | Path, cache_dir: str | Path | None = None
) -> dict:
    model, config = load_model(model_dir)
    transform = input_transform(config["normalisation"])
    out = Path(out)
    (out / "hypnograms").mkdir(parents=True, exist_ok=True)
    (out / "plots").mkdir(parents=True, exist_ok=True)
    per_night, ys, ps = {}, [], []
    for pair in tqdm(discover_pairs(data), desc="evaluate", unit="night"):
        rec = cache.load(pair, cache_dir)
        probs = predict(model, transform(rec.epochs))
        pred = probs.argmax(axis=1)
        write_hypnogram_tsv(out / "hypnograms" / f"{rec.name}.tsv", rec, probs)
        plot_hypnogram(
            out / "plots" / f"{rec.name}.png",
            rec.onsets_s,
            rec.labels,
            pred,
            probs=probs,
            title=f"{rec.name}: expert vs model",
        )
        per_night[rec.name] = {
            **scores(rec.labels, pred),
            "sleep_expert": sleep_statistics(rec.labels),
            "sleep_predicted": sleep_statistics(pred),
        }
        ys.append(rec.labels)
        ps.append(pred)
    pooled = scores(np.concatenate(ys), np.concatenate(ps))
    write_confusion_csv(out / "confusion.csv", np.array(pooled["confusion"]))
    plot_confusion(out / "confusion.png", np.array(pooled["confusion"]), title="pooled")
    result = {
        **pooled,
        "pooled": True,
        "model": str(model_dir),
        "data": str(data),
        "note": "epochs of all nights pooled; per-night figures under 'nights'",
        "nights": per_night,
    }
    (out / "metrics.json").write_text(json.dumps(result, indent=1) + "\n")
    return result
