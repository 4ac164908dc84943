"""``host_tools robustness``: a tiny ``training robustness`` run of the shipped model on two
simulated nights, then its conditions streamed through a stand-in board whose scores come from
TFLite Micro (the emulated board: tests/hil/test_robustness_onchip.py). The stand-in makes the
on-chip column trivially TFLM's; what these tests check is that the sweep streams exactly the
epochs and noisy wire samples the host run scored (TFLM on the streamed samples reproduces the
run's int8 figures), the bookkeeping, --max-epochs, resume, the tables and the errors."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from host_tools.cli import main as host_main
from host_tools.inputs import StreamError
from host_tools.reference import ModelFiles, default_model_dir
from host_tools.robustness import Night, SweepError, first_pooled, plan_sweep, run_sweep
from sleepdata.psg import RecordingPair
from sleepdata.robustness_report import onchip_cell
from sleepdata.stages import N1, N2, N3, REM, W
from training.cli import main as training_main

from ..conftest import write_pair
from .fakes import FakeBoard

NIGHT = [W] * 6 + [N1] * 3 + [N2] * 6 + [N3] * 5 + [REM] * 5 + [W] * 3
MAIN_EPOCHS, ATTACK_EPOCHS = 10, 3


def tiny_robustness_run(folder, *options: str):
    """``training robustness`` of the shipped model on one test night (subject 0) with
    adversarial files (and ``options``); a night of training subject 6 gives the statistics
    when config.json has none. Returns the run folder."""
    import torch

    data = folder / "psg"
    write_pair(data, NIGHT, name="SC4001E", seed=0)
    write_pair(data, NIGHT[::-1], name="SC4061E", seed=1)
    out = folder / "run"
    argv = ["robustness", "--model", str(default_model_dir()), "--data", str(data)]
    argv += ["--cache", str(folder / "cache"), "--out", str(out), "--threads", "1"]
    argv += ["--max-epochs", str(MAIN_EPOCHS), "--adversarial-epochs", str(ATTACK_EPOCHS)]
    argv += options
    threads = torch.get_num_threads()
    try:
        assert training_main([*argv, "--write-adversarial"]) == 0
    finally:
        torch.set_num_threads(threads)
    return out


_RUNS: dict = {}


def shared_run(tmp_path_factory):
    """One tiny run per test session (this module and the HIL test read it; none writes)."""
    key = id(tmp_path_factory)
    if key not in _RUNS:
        _RUNS[key] = tiny_robustness_run(tmp_path_factory.mktemp("robustness"))
    return _RUNS[key]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return shared_run(tmp_path_factory)


def test_results_json_records_exactly_what_was_scored(run):
    res = json.loads((run / "results.json").read_text())
    (name,) = res["recordings"]
    r = res["recordings"][name]
    assert name == "SC4001E0" and r["kept_epochs"] == len(NIGHT)
    assert len(r["main"]) == MAIN_EPOCHS and len(r["attack"]) == ATTACK_EPOCHS
    assert r["main"] == sorted(r["main"]) and set(r["attack"]) <= set(r["main"])
    assert r["psg"].endswith("SC4001E0-PSG.edf") and res["noise_seed"] == 0
    assert res["signal_stats"]["std_uv"] and len(res["int8_model_sha256"]) == 64


def test_sweep_streams_the_runs_epochs_and_noise_and_resumes(run, tmp_path):
    model = ModelFiles.load()
    sweep = plan_sweep(run, tmp_path / "onchip")
    # clean: the union of both subsets; 3 attacks x 3 eps on the attack subset
    assert sweep.total_epochs == MAIN_EPOCHS * 10 + ATTACK_EPOCHS * 9
    result = run_sweep(FakeBoard(model), sweep, progress=False)
    conds = result["conditions"]
    assert len(conds) == 20 and not any(c.get("skipped") for c in conds)
    for c in conds:
        assert c["n_epochs"] == c["n_epochs_host"], c["kind"]
        # TFLM on the samples streamed = the host run's int8 figure: the same noisy samples
        assert c["tflm_equals_host_int8"] is True, (c["kind"], c["level"])
        assert c["tflm_int8"]["macro_f1"] == c["host"]["int8_macro_f1"]
        assert c["bitexact"] == 1.0 and c["onchip_equals_tflm"]
    assert result["truncated"] is False and result["all_bitexact"]
    assert json.loads((tmp_path / "onchip" / "onchip.json").read_text())["conditions"] == conds
    table = (tmp_path / "onchip" / "table.md").read_text()
    row = next(ln for ln in table.splitlines() if ln.startswith("| gaussian high"))
    f1 = next(c for c in conds if c["kind"] == "gaussian" and c["level"] == "high")
    assert row.endswith(f"| {f1['onchip']['macro_f1']:.3f} |")
    pgd = (tmp_path / "onchip" / "pgd-eps6" / "SC4001E0" / "report.json").read_text()
    assert json.loads(pgd)["adversarial"]["attack"] == "pgd"
    assert not (tmp_path / "onchip" / "none" / "SC4001E0" / "hypnogram.png").exists()
    again = run_sweep(FakeBoard(model), plan_sweep(run, tmp_path / "onchip"), progress=False)
    assert again["this_session"]["epochs_streamed"] == 0  # everything was there: resumed
    assert again["conditions"] == conds


def test_max_epochs_keeps_the_first_pooled_epochs_and_the_tables_say_so(run, tmp_path):
    sweep = plan_sweep(run, tmp_path / "onchip", max_epochs=2)
    clean = next(j for j in sweep.jobs if j.folder.parent.name == "none")
    res = json.loads((run / "results.json").read_text())["recordings"]["SC4001E0"]
    assert clean.indices.tolist() == sorted(set(res["main"][:2]) | set(res["attack"][:2]))
    result = run_sweep(FakeBoard(ModelFiles.load()), sweep, progress=False)
    assert result["truncated"] and result["max_epochs"] == 2
    assert all(
        c["n_epochs"] == 2 and c["tflm_equals_host_int8"] is None for c in result["conditions"]
    )
    table = (tmp_path / "onchip" / "table.md").read_text()
    assert "| no noise | 10 |" in table and " (2) |" in table
    out = tmp_path / "all"
    argv = ["robustness-table", "--run", f"base={run}", "--onchip", f"base={tmp_path / 'onchip'}"]
    assert training_main([*argv, "--out", str(out)]) == 0
    line = next(ln for ln in (out / "table.md").read_text().splitlines() if "shot high" in ln)
    assert line.endswith(" (2) |") and "| base on chip |" in (out / "table.md").read_text()
    assert training_main(["robustness-table", "--run", f"base={run}", "--out", str(out)]) == 0
    assert "| - |" in (out / "table.md").read_text().splitlines()[2]  # no onchip.json in run
    assert training_main([*argv[:3], "--onchip", f"other={tmp_path}", "--out", str(out)]) == 2


def test_first_pooled_cuts_across_nights_in_order():
    def night(name, main):
        pair = RecordingPair(f"{name}-PSG.edf", f"{name}-Hypnogram.edf")
        return Night(name, pair, np.array(main), np.array(main[:1]))

    nights = [night("a", [1, 5, 9]), night("b", [0, 2]), night("c", [4])]
    cut = first_pooled(nights, "main", 4)
    assert {k: v.tolist() for k, v in cut.items()} == {"a": [1, 5, 9], "b": [0], "c": []}
    assert first_pooled(nights, "main", None)["b"].tolist() == [0, 2]
    assert first_pooled(nights, "attack", 2)["c"].tolist() == []


def test_onchip_cell_marks_fewer_epochs():
    c = {"kind": "shot", "level": "high", "value": 1000.0, "n_epochs": 1500}
    chip = {"conditions": [{**c, "n_epochs": 300, "onchip": {"macro_f1": 0.8123}}]}
    assert onchip_cell(chip, c) == "0.812 (300)"
    chip["conditions"][0]["n_epochs"] = 1500
    assert onchip_cell(chip, c) == "0.812"
    assert onchip_cell(None, c) == "-" and onchip_cell(chip, {**c, "level": "low"}) == "-"


def test_errors_are_clear_and_come_before_a_board(run, tmp_path, capsys):
    with pytest.raises(SweepError, match=r"results\.json does not exist: --run must be"):
        plan_sweep(tmp_path, tmp_path / "o")
    other = tmp_path / "model"
    shutil.copytree(ModelFiles.load().folder, other)
    tfl = other / "model_int8.tflite"
    tfl.write_bytes(tfl.read_bytes()[:-1] + b"\x00")
    (other / "engine_layers.json").unlink()  # (it names the shipped model: ModelError)
    with pytest.raises(SweepError, match=r"is not the int8 model .* was scored with"):
        plan_sweep(run, tmp_path / "o", model=other)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    for f in (run.parent / "psg").glob("SC4061*"):
        shutil.copy(f, elsewhere)
    with pytest.raises(SweepError, match="holds no recording SC4001E0"):
        plan_sweep(run, tmp_path / "o", data=elsewhere)
    with pytest.raises(SweepError, match="--max-epochs 0"):
        plan_sweep(run, tmp_path / "o", max_epochs=0)
    # adversarial files of another model are refused; without any, the attacks are skipped
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    bad = copy / "adversarial" / "pgd-eps2" / "SC4001E0.npz"
    with np.load(bad) as f:
        parts = dict(f)
    meta = json.loads(str(parts["meta"]))
    parts["meta"] = np.array(json.dumps({**meta, "int8_model_sha256": "00" * 32}))
    np.savez_compressed(bad, **parts)
    with pytest.raises(StreamError, match=r"pgd-eps2/SC4001E0\.npz: made for the int8 model"):
        plan_sweep(copy, tmp_path / "o")
    shutil.rmtree(copy / "adversarial")
    sweep = plan_sweep(copy, tmp_path / "o")
    assert all(c.skipped for c in sweep.conditions if c.host["kind"].startswith("adversarial"))
    # the command: exit 2, "error: ..." on one line, no board opened (loop:// answers nothing)
    assert host_main(["robustness", "--run", str(tmp_path), "--port", "loop://"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "results.json does not exist" in err
    assert err.count("\n") == 1


def test_band_passed_run_streams_the_filtered_samples_training_wrote(tmp_path):
    """REST's Blanco: inputs band-passed on the host, which host_tools cannot do. The sweep
    streams the filtered wire samples of every condition from the run's files: TFLM on the
    streamed samples reproduces the run's int8 figures; without the files, a clear error."""
    run = tiny_robustness_run(tmp_path, "--bandpass", "0.5,40")
    assert json.loads((run / "results.json").read_text())["test_time_filter"]["low_hz"] == 0.5
    sweep = plan_sweep(run, tmp_path / "onchip")
    assert all(job.options.noise is None for job in sweep.jobs)
    result = run_sweep(FakeBoard(ModelFiles.load()), sweep, progress=False)
    for c in result["conditions"]:
        assert not c.get("skipped") and c["n_epochs"] == c["n_epochs_host"], c["kind"]
        assert c["tflm_equals_host_int8"] is True, (c["kind"], c["level"])
    shutil.rmtree(run / "filtered" / "shot-high")
    with pytest.raises(SweepError, match=r"band-passed on the host .*/shot-high is missing"):
        plan_sweep(run, tmp_path / "again")
