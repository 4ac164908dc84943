"""Every expected failure of ``python -m training`` is one line ``error: ...`` on stderr, naming
the option or folder and the fix, with exit code 2 and no traceback (run as a user runs it)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from ..conftest import write_pair
from .conftest import NIGHT

NIGHTS = NIGHT[:40]


@pytest.fixture(scope="module")
def two_subjects(tmp_path_factory):
    """Generated subjects 90 and 91 (one short night each), as `simulate --nights 2` numbers
    them, and a cache folder for them."""
    folder = tmp_path_factory.mktemp("two")
    for subject in (90, 91):
        write_pair(folder / "data", NIGHTS, name=f"SC4{subject}1E", seed=subject)
    return folder


def _run(args, cwd) -> subprocess.CompletedProcess:
    env = {**os.environ, "XDG_CACHE_HOME": str(cwd / "xdg")}
    return subprocess.run(
        [sys.executable, "-m", "training", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=300,
    )


TRAIN = ["train", "--data", "data", "--out", "run", "--epochs", "1"]

CASES = {
    "summary of a missing model folder": (
        ["summary", "--model", "nowhere"],
        ["nowhere: no such model folder", "models/ulw_sleepnet"],
    ),
    "evaluate with a missing model folder": (
        ["evaluate", "--model", "nowhere", "--data", "data"],
        ["nowhere: no such model folder"],
    ),
    "more folds than subjects": (
        [*TRAIN, "--folds", "5"],
        ["--folds", "at least 3 subjects", "2 subjects in the data: 90, 91", "simulate --nights"],
    ),
    "unknown test subjects": (
        [*TRAIN, "--test-subjects", "0,1", "--val-subjects", "90"],
        ["--test-subjects: subjects 0, 1 are not in the data", "in the data: 90, 91"],
    ),
    "unknown validation subjects": (
        [*TRAIN, "--test-subjects", "90", "--val-subjects", "4"],
        ["--val-subjects: subjects 4 are not in the data", "in the data: 90, 91"],
    ),
    "test = validation": (
        [*TRAIN, "--test-subjects", "90", "--val-subjects", "90"],
        ["cannot be both test and validation", "in the data: 90, 91"],
    ),
    "no subject left to train on": (
        [*TRAIN, "--test-subjects", "90", "--val-subjects", "91"],
        ["no training subjects left", "in the data: 90, 91"],
    ),
    "test subjects without validation subjects": (
        [*TRAIN, "--test-subjects", "90"],
        ["--test-subjects and --val-subjects go together", "in the data: 90, 91"],
    ),
    "validation subjects without test subjects": (
        [*TRAIN, "--val-subjects", "90"],
        ["go together"],
    ),
    "a training option out of range": ([*TRAIN, "--epochs", "0"], ["--epochs 0: must be at"]),
    "a missing --config file": (
        [*TRAIN, "--config", "nowhere.json"],
        ["--config nowhere.json: cannot read it"],
    ),
    "a bad option value": (
        [*TRAIN, "--test-subjects", "a,b"],
        ["python -m training train: argument --test-subjects", "--help"],
    ),
    "a missing data folder": (
        ["prepare", "nowhere", "--out", "cache"],
        ["nowhere: not a folder"],
    ),
}


def _assert_one_line_error(proc, fragments):
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and proc.stderr.rstrip().endswith(errors[0]), proc.stderr
    for fragment in fragments:
        assert fragment in errors[0], (fragment, errors[0])


@pytest.mark.parametrize("case", sorted(CASES))
def test_an_expected_failure_is_one_line_with_exit_code_2(case, two_subjects):
    args, fragments = CASES[case]
    _assert_one_line_error(_run(args, two_subjects), fragments)


def test_a_run_folder_started_with_other_options_is_refused_in_one_line(two_subjects, tmp_path):
    """What a first run wrote (run.json) and a second run with other options and split."""
    (tmp_path / "data").symlink_to(two_subjects / "data")
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "run.json").write_text(
        json.dumps({"splits": [], "train_config": {"epochs": 7}})
    )
    proc = _run([*TRAIN, "--folds", "2"], tmp_path)
    # Two subjects cannot be cross-validated: the split is checked before the run folder.
    _assert_one_line_error(proc, ["--folds"])
    write_pair(tmp_path / "more", NIGHTS, name="SC4921E", seed=92)
    for p in (two_subjects / "data").iterdir():
        (tmp_path / "more" / p.name).symlink_to(p)
    args = ["train", "--data", "more", "--out", "run", "--epochs", "1", "--folds", "3"]
    _assert_one_line_error(
        _run(args, tmp_path),
        ["run: holds a run started with other options (--epochs 7 -> 1", "subject split", "--out"],
    )
