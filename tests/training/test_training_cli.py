"""``python -m training``: prepare's table and exit codes (in parallel, with a bad night among good
ones), simulate without real hypnograms and past Sleep-EDF's two-digit subjects."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from sleepdata.stages import N1, N2, N3, REM, W
from training.cli import build_parser, main

from ..conftest import write_pair

NIGHT = [W] * 4 + [N1] * 3 + [N2] * 8 + [N3] * 5 + [REM] * 6 + [W] * 4


def test_prepare_prints_a_per_stage_table_and_fills_the_cache(tmp_path, capsys):
    write_pair(tmp_path / "data", NIGHT, name="SC4001E")
    write_pair(tmp_path / "data", NIGHT[::-1], name="SC4002E")
    assert main(["prepare", str(tmp_path / "data"), "--out", str(tmp_path / "cache")]) == 0
    out = capsys.readouterr().out
    total = np.bincount(NIGHT, minlength=5) * 2
    assert "all" + "".join(f"{v:>8}" for v in total) in out.replace("all         ", "all")
    assert "SC4001E0" in out and "SC4002E0" in out
    assert len(list((tmp_path / "cache").glob("*.json"))) == 2


def test_prepare_in_parallel_reports_a_bad_night_and_prepares_the_others(tmp_path, capsys):
    write_pair(tmp_path / "data", NIGHT, name="SC4001E")
    bad, _ = write_pair(tmp_path / "data", NIGHT, name="SC4002E")
    write_pair(tmp_path / "data", NIGHT[::-1], name="SC4011E")
    with open(bad, "r+b") as f:  # the last data record cut short
        f.truncate(bad.stat().st_size - 10)
    args = ["prepare", str(tmp_path / "data"), "--out", str(tmp_path / "cache"), "--jobs", "2"]
    assert main(args) == 1
    out, err = capsys.readouterr()
    assert f"prepare failed: {bad}: not a readable EDF file" in err
    assert "1 of 3 nights failed (prepare); the others are done" in err
    assert "SC4001E0" in out and "SC4011E0" in out and "SC4002E0" not in out
    assert "2 recordings of 2 subjects (0, 1) cached in" in out
    cached = sorted(p.name.split("-")[0] for p in (tmp_path / "cache").glob("*.json"))
    assert cached == ["SC4001E0", "SC4011E0"]
    # a second run finds the two in the cache and still reports the third
    assert main(args) == 1


def test_errors_name_the_file_and_exit_non_zero(tmp_path, capsys):
    _psg, hyp = write_pair(tmp_path / "data", NIGHT)
    hyp.unlink()
    assert main(["prepare", str(tmp_path / "data"), "--out", str(tmp_path / "cache")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "SC4001E0-PSG.edf: no hypnogram" in err
    assert "Traceback" not in err


def test_simulate_without_real_hypnograms_then_prepare(tmp_path):
    run = [sys.executable, "-m", "training"]
    sim = subprocess.run(
        [*run, "simulate", "--out", str(tmp_path), "--nights", "1"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "not real recordings" in sim.stdout
    assert "1 subject: 90 (the numbers --test-subjects/--val-subjects take)" in sim.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "SC4901E0-PSG.edf",
        "SC4901EG-Hypnogram.edf",
    ]
    prep = subprocess.run(
        [*run, "prepare", str(tmp_path), "--out", str(tmp_path / "c")],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "SC4901E0" in prep.stdout
    assert "1 recordings of 1 subjects (90) cached in" in prep.stdout
    assert f"--cache {tmp_path / 'c'} to use it" in prep.stdout


def test_generated_nights_go_past_subject_99_with_names_that_pair(tmp_path):
    from sleepdata import hypnogen, simulator
    from sleepdata.names import parse_name
    from sleepdata.psg import discover_pairs, load_recording

    hyps = hypnogen.generated_hypnograms(tmp_path, 23, seed=0)
    assert [h.name for h in hyps[19:]] == [
        "SC4992EG-Hypnogram.edf",
        "SG01001EG-Hypnogram.edf",
        "SG01002EG-Hypnogram.edf",
        "SG01011EG-Hypnogram.edf",
    ]
    for h in hyps[:-1]:  # every PSG name the simulator would write, without simulating
        (tmp_path / simulator.psg_name_for(h)).write_bytes(b"")
    simulator.simulate_from_hypnogram(hyps[-1], tmp_path)
    pairs = discover_pairs(tmp_path)
    assert [p.hypnogram for p in pairs] == sorted(hyps)
    ids = sorted((parse_name(p.name).subject, parse_name(p.name).night) for p in pairs)
    assert ids == [(90 + k // 2, 1 + k % 2) for k in range(23)]
    rec = load_recording(pairs[-1])
    assert (rec.name, rec.subject, rec.night) == ("SG01011E0", 101, 1)


def test_the_description_names_every_command():
    import argparse

    from training import cli

    (sub,) = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    assert sorted(sub.choices) and all(f"``{name}``" in cli.__doc__ for name in sub.choices)


def test_subject_lists_must_be_numbers(capsys):
    argv = ["train", "--data", "d", "--out", "o", "--test-subjects", "0,x", "--val-subjects", "1"]
    with pytest.raises(SystemExit) as stop:
        main(argv)
    assert stop.value.code == 2
    assert "--test-subjects: '0,x': expected subject numbers like 0,1,12" in capsys.readouterr().err


def test_train_paper_recipe_with_folds_prints_the_cv_report(tmp_path, capsys):
    """--recipe paper with explicit options over 2 subject-wise folds: the options are
    recorded, and the report gives each fold, the pooled scores and mean +- std over folds."""
    import json

    for subject in range(4):
        write_pair(tmp_path / "data", NIGHT * 3, name=f"SC40{subject}1E", seed=subject)
    argv = ["train", "--data", str(tmp_path / "data"), "--out", str(tmp_path / "run")]
    argv += ["--cache", str(tmp_path / "cache"), "--folds", "2", "--recipe", "paper"]
    argv += ["--epochs", "1", "--batch-size", "16", "--samples-per-epoch", "32"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    info = json.loads((tmp_path / "run" / "run.json").read_text())["train_config"]
    assert (info["recipe"], info["epochs"], info["batch_size"]) == ("paper", 1, 16)
    assert (info["select"], info["init"], info["bn_momentum"]) == ("acc", "glorot", 0.01)
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert {"acc", "macro_f1", "kappa", "per_class_f1", "pooled", "folds"} <= set(metrics)
    accs = [f["acc"] for f in metrics["folds"]]
    assert metrics["over_folds"]["acc"]["mean"] == pytest.approx(np.mean(accs))
    assert metrics["over_folds"]["acc"]["std"] == pytest.approx(np.std(accs, ddof=1))
    report = (tmp_path / "run" / "cv_report.md").read_text()
    assert report in out
    rows = {line.split(" | ")[0]: line for line in report.splitlines() if line.startswith("| ")}
    assert {"| fold-1", "| fold-2", "| pooled over folds", "| mean +- std over folds"} <= set(rows)
    spread = f"{np.mean(accs):.3f} +- {np.std(accs, ddof=1):.3f}"
    assert spread in rows["| mean +- std over folds"] and "ddof=1" in report
    assert f"{metrics['acc']:.3f}" in rows["| pooled over folds"]
