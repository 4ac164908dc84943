"""Scoring a folder of recordings with a trained model: metrics, hypnograms and plots."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from sleepdata import cache, provenance
from sleepdata.hypnogram import write_stage_tsv
from sleepdata.metrics import scores, sleep_statistics, write_confusion_csv
from sleepdata.normalise import input_transform
from sleepdata.plots import plot_confusion, plot_hypnogram
from sleepdata.progress import progress
from sleepdata.psg import discover_pairs

from .loop import predict
from .model import load_model


def evaluate(
    model_dir: str | Path, data: str | Path, out: str | Path, cache_dir: str | Path | None = None
) -> dict:
    model, config = load_model(model_dir)
    transform = input_transform(config["normalisation"])
    out = Path(out)
    (out / "hypnograms").mkdir(parents=True, exist_ok=True)
    (out / "plots").mkdir(parents=True, exist_ok=True)
    per_night, ys, ps = {}, [], []
    pairs = discover_pairs(data)
    prov = provenance.describe(p.psg for p in pairs)
    for pair in progress(pairs, desc="evaluate", unit="night"):
        rec = cache.load(pair, cache_dir)
        kind = provenance.kind_of(pair.psg)
        probs = predict(model, transform(rec.epochs))
        pred = probs.argmax(axis=1)
        write_stage_tsv(
            out / "hypnograms" / f"{rec.name}.tsv",
            rec.onsets_s,
            rec.labels,
            probs.argmax(axis=1),
            probs,
        )
        plot_hypnogram(
            out / "plots" / f"{rec.name}.png",
            rec.onsets_s,
            rec.labels,
            pred,
            probs=probs,
            title=f"{rec.name} ({kind}): expert vs model",
        )
        per_night[rec.name] = {
            **scores(rec.labels, pred),
            "sleep_expert": sleep_statistics(rec.labels),
            "sleep_predicted": sleep_statistics(pred),
            "data": kind,
        }
        ys.append(rec.labels)
        ps.append(pred)
    pooled = scores(np.concatenate(ys), np.concatenate(ps))
    write_confusion_csv(out / "confusion.csv", np.array(pooled["confusion"]))
    plot_confusion(
        out / "confusion.png", np.array(pooled["confusion"]), title=f"pooled: {prov['label']}"
    )
    result = {
        **pooled,
        "pooled": True,
        "model": str(model_dir),
        "data": str(data),
        "data_provenance": prov,
        "note": "epochs of all nights pooled; per-night figures under 'nights'",
        "nights": per_night,
    }
    (out / "metrics.json").write_text(json.dumps(result, indent=1) + "\n")
    return result
