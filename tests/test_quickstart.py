"""The README's training quick-start, run as written (at a small size) on a clean folder without
real hypnograms: simulate -> prepare -> train (cross-validation and a fixed split) -> evaluate ->
summary. Each command is a line of README.md; a step that fails fails the test. (Scoring with
the shipped model is tested in tests/training/test_model.py.)"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PY = ".venv/bin/python"

#: The quick-start, exactly as README.md shows it (one command a line).
QUICKSTART = (
    f"{PY} -m training simulate --nights 10 --out data/sim",
    f"{PY} -m training prepare data/sim",
    f"{PY} -m training train --data data/sim --out runs/cv --folds 5 --epochs 5",
    f"{PY} -m training train --data data/sim --out runs/split --epochs 5 "
    "--test-subjects 90 --val-subjects 91",
    f"{PY} -m training evaluate --model runs/split/split/model --data data/sim --out runs/eval",
    f"{PY} -m training summary --model runs/split/split/model",
)

#: Options appended to make each step small (argparse keeps an option's last value): 6 nights
#: are 3 generated subjects (90, 91, 92), so 3 folds; one short training epoch.
SMALL = {
    "simulate": ["--nights", "6"],
    "train": ["--epochs", "1", "--samples-per-epoch", "64", "--batch-size", "32", "--folds", "3"],
}


def test_every_quickstart_command_is_in_the_readme():
    readme = " ".join((REPO / "README.md").read_text().replace("\\\n", " ").split())
    missing = [line for line in QUICKSTART if line not in readme]
    assert not missing, f"README.md no longer shows these quick-start commands: {missing}"


def _step(line: str, cwd: Path, env: dict) -> subprocess.CompletedProcess:
    args = shlex.split(line)
    assert args[:3] == [PY, "-m", "training"]
    command = args[3]
    extra = list(SMALL.get(command, []))
    if command == "train" and "--test-subjects" in args:
        extra = extra[:-2]  # a fixed split has no folds
    proc = subprocess.run(
        [sys.executable, *args[1:], *extra],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, f"{line}\n{proc.stdout}\n{proc.stderr}"
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


def test_the_readme_quickstart_runs_on_a_clean_folder(tmp_path):
    home = tmp_path / "home"
    env = {**os.environ, "HOME": str(home), "XDG_CACHE_HOME": str(home / ".cache")}
    cache = home / ".cache" / "ulw-sleepnet-mcu" / "epochs"
    out = {}
    for line in QUICKSTART:
        out[line] = _step(line, tmp_path, env).stdout
        if " prepare " in line:
            cached = {p: p.stat().st_mtime_ns for p in cache.glob("*.npy")}
    sim, prep = out[QUICKSTART[0]], out[QUICKSTART[1]]
    assert "6 simulated Sleep-EDF-format nights" in sim and "3 subjects: 90, 91, 92" in sim
    assert "of 3 subjects (90, 91, 92) cached in" in prep and "by default" in prep
    # One cache: prepare filled it and every later step read it (nothing written anywhere else).
    assert len(cached) == 6
    everywhere = set(tmp_path.rglob("*.npy")) - set((tmp_path / "runs").rglob("*.npy"))
    assert everywhere == set(cached)
    assert {p: p.stat().st_mtime_ns for p in cache.glob("*.npy")} == cached
    runs = tmp_path / "runs"
    cv = json.loads((runs / "cv" / "metrics.json").read_text())
    assert [f["fold"] for f in cv["folds"]] == ["fold-1", "fold-2", "fold-3"]
    assert (runs / "split" / "split" / "model" / "weights.pt").is_file()
    assert len(json.loads((runs / "eval" / "metrics.json").read_text())["nights"]) == 6
    assert "trainable parameters" in out[QUICKSTART[-1]]
