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


def _tiny_study(tmp_path, model_name: str, marked: bool = True):
    """Two nights (subject 0 tested, subject 1 the training split of the statistics) and a tiny
    model folder TMP/MODEL_NAME: (data folder, recordings, normaliser)."""
    data = tmp_path / "psg"
    write_pair(data, NIGHT, name="SC4001E", seed=0, marked=marked)
    write_pair(data, NIGHT[::-1], name="SC4011E", seed=1, marked=marked)
    recs = [load(p, tmp_path / "cache") for p in discover_pairs(data)]
    norm = Normaliser.fit([r.epochs for r in recs])
    model = bn_randomised(ULWSleepNet(ModelConfig(widths=(2, 2, 2))), seed=0)
    split = {"name": "split", "train": ["subject-01"], "val": [], "test": ["subject-00"]}
    save_model(tmp_path / model_name, model, {"normalisation": norm.to_dict(), "split": split})
    return data, recs, norm


def test_robustness_command_end_to_end(tmp_path):
    data, recs, norm = _tiny_study(tmp_path, "model")
    out = tmp_path / "out"
    argv = ["robustness", "--model", str(tmp_path / "model"), "--data", str(data)]
    argv += ["--cache", str(tmp_path / "cache"), "--out", str(out), "--no-int8"]
    argv += ["--max-epochs", "30", "--adversarial-epochs", "6", "--write-adversarial"]
    assert main(argv) == 0
    res = json.loads((out / "results.json").read_text())
    kinds = [c["kind"] for c in res["conditions"]]
    assert kinds.count("gaussian") == 3 and kinds.count("shot") == 3
    for attack in ("paper", "rest-code", "pgd"):  # each named by its source
        assert kinds.count(f"adversarial {attack}") == 3
    assert res["data_provenance"]["data"] == "simulated"
    assert res["note"].startswith("simulated nights")
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


def test_real_recordings_are_never_called_simulated_and_blanco_filters_its_input(tmp_path):
    """Nights without the simulator's mark (as real Sleep-EDF files are): no output calls them
    simulated. The same run through a Blanco folder (the model behind test_time_filter.json)
    band-passes every input and says so."""
    data, _, _ = _tiny_study(tmp_path, "liu", marked=False)
    blanco = tmp_path / "blanco"
    blanco.mkdir()
    band = {"low_hz": 0.5, "high_hz": 40.0, "order": 4, "channels": ["EEG Fpz-Cz", "EEG Pz-Oz"]}
    (blanco / "test_time_filter.json").write_text(json.dumps({"model": "../liu", "bandpass": band}))
    runs = {}
    for name in ("liu", "blanco"):
        out = tmp_path / f"out-{name}"
        argv = ["robustness", "--model", str(tmp_path / name), "--data", str(data), "--no-int8"]
        argv += ["--cache", str(tmp_path / "cache"), "--out", str(out)]
        argv += ["--max-epochs", "20", "--adversarial-epochs", "4", "--write-adversarial"]
        assert main(argv) == 0
        runs[name] = json.loads((out / "results.json").read_text())
        text = (out / "results.json").read_text() + (out / "table.md").read_text()
        assert "simulated" not in text.lower()
        assert runs[name]["data_provenance"] == {
            "data": "real",
            "files": {"Sleep-EDF": 1},
            "label": "real recordings (Sleep-EDF: 1)",
        }
    assert runs["liu"]["test_time_filter"] is None
    assert runs["blanco"]["test_time_filter"]["channels"] == ["EEG Fpz-Cz", "EEG Pz-Oz"]
    assert runs["blanco"]["model"] == str((tmp_path / "liu").resolve())
    # the same attack on the same model; Blanco's samples went through the band-pass: the EEG
    # lost its slow drift, the EOG (not in this filter's channels) and the EMG are untouched
    wire = {
        n: adversarial.read(tmp_path / f"out-{n}" / "adversarial" / "paper-eps6" / "SC4001E0.npz")
        for n in runs
    }
    np.testing.assert_array_equal(wire["liu"].index, wire["blanco"].index)
    diff = np.abs(wire["liu"].wire.astype(int) - wire["blanco"].wire).max(axis=(0, 2))
    assert diff[0] > 0 and diff[1] > 0 and diff[2] == 0 and diff[3] == 0
    compare = ["robustness-table", "--out", str(tmp_path / "all")]
    compare += [
        "--run",
        f"liu={tmp_path / 'out-liu'}",
        "--run",
        f"blanco={tmp_path / 'out-blanco'}",
    ]
    assert main(compare) == 0
    study = (tmp_path / "all" / "study.md").read_text()
    assert "real recordings (Sleep-EDF: 1)" in study and "simulated" not in study.lower()
    assert study.index("Liu (slimming)") < study.index("Blanco (Liu + band-pass)")
