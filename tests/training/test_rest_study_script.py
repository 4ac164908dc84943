"""scripts/rest_study.sh train: finished models are not trained again, a fresh clone continues
the study from the models kept in the repository (docs/robustness.md, "The study")."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SLIM = "--epochs 4 --prune-fraction 0.8"
BASE = "--epochs 12"
OPTS = {
    "liu": "--augment none",
    "ford": "--augment gaussian --gaussian-c 0.2",
    "rest_a": "--augment paper --eps-uv 10",
    "rest_as": "--augment paper --eps-uv 10 --lambda-o 3e-3",
}

# stands in for `python -m training`: logs the command, writes what a finished run writes
FAKE_PY = """#!{python}
import json, sys
from pathlib import Path
args = sys.argv[3:]  # after -m training
with open("calls.log", "a") as log:
    log.write(" ".join(sys.argv[2:]) + "\\n")
out = Path(args[args.index("--out") + 1])
model = out / ("split/model" if args[0] == "train" else "model")
model.mkdir(parents=True, exist_ok=True)
for name in ("config.json", "weights.pt", "metrics.json"):
    (model / name).write_text(json.dumps({{"run": str(out)}}))
if args[0] == "finetune":
    pruned = out / "pruned-before-retraining"
    pruned.mkdir(parents=True, exist_ok=True)
    (pruned / "pruning.json").write_text("{{}}")
    (pruned / "gammas.png").write_bytes(b"png")
"""


def _study(tmp_path: Path, seeds: str = "0 1") -> list[str]:
    fake = tmp_path / "fakepy"
    fake.write_text(FAKE_PY.format(python=sys.executable))
    fake.chmod(0o755)
    env = dict(
        os.environ,
        PY=str(fake),
        REST=str(tmp_path / "build/rest"),
        REST_SEEDS=seeds,
        SLIM_OPTS=SLIM,
        BASELINE_OPTS=BASE,
    )
    log = tmp_path / "calls.log"
    log.unlink(missing_ok=True)
    subprocess.run(
        ["bash", str(ROOT / "scripts/rest_study.sh"), "train"],
        cwd=tmp_path,
        env=env,
        check=True,
        capture_output=True,
    )
    return log.read_text().splitlines() if log.exists() else []


@pytest.fixture
def shipped(tmp_path):
    """A checkout whose seed-0 models are finished with the study's options."""
    for v, extra in OPTS.items():
        d = tmp_path / f"models/ulw_sleepnet_{v}"
        d.mkdir(parents=True)
        (d / "weights.pt").write_text("w")
        (d / "training_options.txt").write_text(f"finetune {SLIM} {extra} --seed 0\n")
    return tmp_path


def _trained(calls: list[str]) -> list[tuple[str, str]]:
    """(command, --out) of each training run."""
    return [(c.split()[1], c.split()[c.split().index("--out") + 1]) for c in calls]


def test_a_fresh_clone_trains_only_what_is_missing_and_keeps_it(shipped):
    calls = _trained(_study(shipped))
    rest = str(shipped / "build/rest")
    # seed 0 of every model is finished; seed 1 of baseline, REST(A), REST(A+S) is trained,
    # one seed at a time across the three (Liu and Ford have one seed)
    assert calls == [
        ("train", f"{rest}/baseline/seed-1"),
        ("finetune", f"{rest}/rest_a/seed-1"),
        ("finetune", f"{rest}/rest_as/seed-1"),
    ]
    kept = shipped / "models/seeds/rest_as-seed1"
    assert sorted(p.name for p in kept.iterdir()) == [
        "config.json",
        "gammas.png",
        "metrics.json",
        "pruning.json",
        "training_options.txt",
        "weights.pt",
    ]
    assert (kept / "training_options.txt").read_text().split() == (
        f"finetune {SLIM} {OPTS['rest_as']} --seed 1".split()
    )
    assert (shipped / "models/seeds/baseline-seed1/training_options.txt").read_text().split() == (
        f"train {BASE} --seed 1".split()
    )
    # the next run (a fresh clone of that) trains nothing
    assert _study(shipped) == []


def test_changed_options_train_the_model_again(shipped):
    (shipped / "models/ulw_sleepnet_ford/training_options.txt").write_text("finetune --old\n")
    calls = _trained(_study(shipped, seeds="0"))
    assert calls == [("finetune", f"{shipped}/build/rest/ford/seed-0")]
    assert (
        "--gaussian-c 0.2 --seed 0"
        in (shipped / "models/ulw_sleepnet_ford/training_options.txt").read_text()
    )
