"""host_tools calibrate against a recorded real-board file. No board is attached here, so the
file is made from known stalls on top of the emulated board's own estimate (labelled so in the
file): the fit must recover them, and the written profile must then reproduce the "measured"
per-layer cycles through bench --cycles --memory-profile."""

from __future__ import annotations

import json

import numpy as np
import pytest

from host_tools.bench import fixed_epochs
from host_tools.cli import main
from host_tools.cycles.calibrate import nonnegative_lstsq, read_measured
from host_tools.cycles.errors import CyclesError
from host_tools.cycles.estimate import estimate_epochs
from host_tools.cycles.memory import load_settings
from host_tools.reference import ModelFiles

pytestmark = pytest.mark.hil
KNOWN = {"seq_miss_cycles": 3.0, "nonseq_miss_cycles": 6.0, "dmiss_cycles": 5.0}


@pytest.fixture(scope="module")
def recorded(tmp_path_factory, request):
    if request.config.getoption("--port"):
        pytest.skip("uses the emulated board")
    model = ModelFiles.load()
    est = estimate_epochs(fixed_epochs(model, 2), model=model)
    layers = []
    for row in est["per_layer"]:
        m = row["cache_misses"]
        stall = (
            KNOWN["seq_miss_cycles"] * m["instruction_sequential"]
            + KNOWN["nonseq_miss_cycles"] * m["instruction_other"]
            + KNOWN["dmiss_cycles"] * m["data"]
        )
        layers.append({"layer": row["layer"], "count": round(row["cycles"]["ideal"] + stall)})
    path = tmp_path_factory.mktemp("calibrate") / "measured.json"
    path.write_text(
        json.dumps(
            {
                "board": "synthetic (made from known stalls; no board is attached here)",
                "counter_kind": "cycles",
                "epochs": 2,
                "inputs": {"seed": 0, "psg": None},
                "per_layer": layers,
            }
        )
    )
    return path, layers


def test_the_fit_recovers_the_stalls_and_the_profile_reproduces_the_cycles(
    recorded, tmp_path, capsys
):
    measured, layers = recorded
    profile = tmp_path / "board.ini"
    assert main(["calibrate", "--measured", str(measured), "--out", str(profile)]) == 0
    printed = capsys.readouterr().out
    assert "board profile:" in printed
    fitted = load_settings(profile)["nucleo-l476rg"]
    for key, value in KNOWN.items():
        assert getattr(fitted, key) == pytest.approx(value, abs=0.01), key
    assert "(calibrated)" in fitted.description

    assert (
        main(["bench", "--cycles", "--epochs", "2", "--json", "--memory-profile", str(profile)])
        == 0
    )
    got = json.loads(capsys.readouterr().out)
    for row, want in zip(got["per_layer"], layers, strict=True):
        assert row["cycles"]["nucleo-l476rg"] == pytest.approx(want["count"], rel=1e-4)


def test_instruction_counts_are_refused(tmp_path):
    p = tmp_path / "emulated.json"
    p.write_text(json.dumps({"counter_kind": "instructions", "per_layer": [], "epochs": 1}))
    with pytest.raises(CyclesError, match="not cycles"):
        read_measured(p)


def test_stalls_stay_non_negative():
    a = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    x = nonnegative_lstsq(a, np.array([2.0, -1.0, 1.0]))
    assert x[1] == 0 and x[0] > 0
