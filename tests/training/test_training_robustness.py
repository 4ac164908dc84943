"""``python -m training robustness`` end to end on two tiny simulated nights: every condition,
the statistics from the training subject, the table and plot, the adversarial files."""

from __future__ import annotations

import json

import numpy as np

from sleepdata import adversarial
from sleepdata.cache import load
from sleepdata.normalise import Normaliser
from sleepdata.psg import discover_pairs
from sleepdata.stages import N1, N2, N3, REM, W
from training.cli import main
from training.model import ModelConfig, ULWSleepNet, save_model

from ..conftest import write_pair
from .conftest import bn_randomised

NIGHT = [W] * 8 + [N1] * 4 + [N2] * 8 + [N3] * 6 + [REM] * 6 + [W] * 4


def test_robustness_command_end_to_end(tmp_path):
    data = tmp_path / "psg"
    write_pair(data, NIGHT, name="SC4001E", seed=0)  # subject 0: test
    write_pair(data, NIGHT[::-1], name="SC4011E", seed=1)  # subject 1: training (statistics)
    recs = [load(p, tmp_path / "cache") for p in discover_pairs(data)]
    norm = Normaliser.fit([r.epochs for r in recs])
    model = bn_randomised(ULWSleepNet(ModelConfig(widths=(2, 2, 2))), seed=0)
    split = {"name": "split", "train": ["subject-01"], "val": [], "test": ["subject-00"]}
    save_model(tmp_path / "model", model, {"normalisation": norm.to_dict(), "split": split})
    out = tmp_path / "out"
    argv = ["robustness", "--model", str(tmp_path / "model"), "--data", str(data)]
    argv += ["--cache", str(tmp_path / "cache"), "--out", str(out), "--no-int8"]
    argv += ["--max-epochs", "30", "--adversarial-epochs", "6", "--write-adversarial"]
    assert main(argv) == 0
    res = json.loads((out / "results.json").read_text())
    kinds = [c["kind"] for c in res["conditions"]]
    assert kinds.count("gaussian") == 3 and kinds.count("shot") == 3
    assert kinds.count("adversarial pgd") == 3 and kinds.count("adversarial rest-published") == 3
    assert res["conditions"][0]["n_epochs"] == 30
    assert all(0 <= c["float"]["macro_f1"] <= 1 for c in res["conditions"])
    assert "training split" in res["signal_stats"]["source"]
    assert (out / "macro_f1.png").stat().st_size > 1000
    assert "gaussian high (0.3)" in (out / "table.md").read_text()
    adv = adversarial.read(out / "adversarial" / "pgd-eps12" / "SC4001E0.npz")
    wire, idx, labels, meta = adv.wire, adv.index, adv.labels, adv.meta
    assert wire.dtype == np.int16 and wire.shape == (6, 4, 3000) and len(idx) == 6
    assert meta["attack"] == "pgd" and meta["eps_uv"] == 12.0
    rec = recs[0]
    np.testing.assert_array_equal(labels, rec.labels[idx])
    clean = norm.to_wire(rec.epochs[idx]).astype(np.int32)
    budget = np.ceil(12.0 * np.array(res["attack_eps_scale"]) / [c.lsb_uv for c in norm.channels])
    assert (np.abs(wire - clean).max(axis=(0, 2)) <= budget + 1).all()
    assert np.abs(wire - clean).max() > 0
