"""``python -m training study-models``: the study's models side by side, every figure read from
the model folder, the converter report and the bench output."""

from __future__ import annotations

import json

from training.cli import main
from training.model import load_model, save_model
from training.rest import plan_pruning, prune

SHIPPED = "models/ulw_sleepnet"


def test_study_models_reads_every_figure_from_the_files(tmp_path, capsys):
    model, config = load_model(SHIPPED)
    small = prune(model, plan_pruning(model, 0.8, 0.1, (4, 8, 16, 32)))
    save_model(tmp_path / "pruned", small, {"data_provenance": config["data_provenance"]})
    report = tmp_path / "report.json"
    report.write_text(json.dumps({"weights_bytes": 14384, "engine_activation_bytes": 12192}))
    bench = tmp_path / "bench.json"
    bench.write_text(
        json.dumps({"board": "emu-m4", "inference": {"median": 900}, "preprocess": {"median": 100}})
    )
    out = tmp_path / "models.md"
    argv = ["study-models", "--out", str(out), "--model", f"baseline={SHIPPED},{report},{bench}"]
    argv += ["--model", f"liu={tmp_path / 'pruned'}"]
    assert main(argv) == 0
    rows = json.loads(out.with_suffix(".json").read_text())
    base, liu = rows
    assert base["channels"] == 112 and base["macs"] == 3_498_352 and base["instructions"] == 1000
    assert base["macro_f1"] == json.loads(open(f"{SHIPPED}/metrics.json").read())["macro_f1"]
    kept = sum(small.config.widths) + sum(small.config.inner)
    assert liu["channels"] == kept < 112 and liu["macs"] < base["macs"]
    assert liu["missing"] == ["converter report", "bench"] and liu["macro_f1"] is None
    text = out.read_text()
    assert f"| {112 - kept} of 112 (" in text
    assert f"({base['macs'] / liu['macs']:.2f}x fewer)" in text
    assert "| 14,384 B | 12,192 B | 1,000 |" in text
    assert "- liu: no converter report, no bench" in text
    assert "simulated nights" in text and text == capsys.readouterr().out
    assert main(["study-models", "--out", str(out), "--model", "nofolder"]) == 2
