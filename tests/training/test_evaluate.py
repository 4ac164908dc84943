"""``python -m training evaluate``: a folder of nights scored by a trained model, with
hypnograms, plots and per-night and pooled metrics."""

from __future__ import annotations

import json

import numpy as np

from training.cli import main

from .conftest import NIGHT


def test_evaluate_scores_a_folder_with_hypnograms_and_plots(short_run, cohort, capsys):
    out, result = short_run
    model = out / "run" / "split" / "model"
    argv = ["evaluate", "--model", str(model), "--data", str(cohort)]
    assert main([*argv, "--out", str(out / "eval"), "--cache", str(out / "cache")]) == 0
    assert "macro-F1" in capsys.readouterr().out
    metrics = json.loads((out / "eval" / "metrics.json").read_text())
    assert metrics["n_epochs"] == 9 * len(NIGHT) and len(metrics["nights"]) == 9
    night = metrics["nights"]["SC4001E0"]
    assert night["sleep_expert"]["tib_min"] == len(NIGHT) / 2
    rows = (out / "eval" / "hypnograms" / "SC4001E0.tsv").read_text().splitlines()
    assert rows[0].split("\t")[:4] == ["onset_s", "duration_s", "expert", "predicted"]
    assert len(rows) == len(NIGHT) + 1 and rows[1].split("\t")[2] == "W"
    probs = np.array([[float(v) for v in r.split("\t")[4:]] for r in rows[1:]])
    np.testing.assert_allclose(probs.sum(axis=1), 1, atol=1e-3)
    assert (out / "eval" / "plots" / "SC4001E0.png").read_bytes()[:4] == b"\x89PNG"
    # the test subjects' nights score as in training's own evaluation
    test_nights = {f"SC40{s}{n}E0" for s in (0, 1) for n in (1, 2)}
    pooled = sum(np.array(metrics["nights"][k]["confusion"]) for k in test_nights)
    np.testing.assert_array_equal(pooled, result["confusion"])
