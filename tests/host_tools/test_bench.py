"""host_tools bench, host-only: where its input epochs come from, and its errors before a board
is asked (the counts themselves: tests/hil/test_board.py)."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest

from host_tools import bench as bench_module
from host_tools.bench import BenchError, fixed_epochs
from host_tools.cli import main
from host_tools.reference import ModelFiles
from sleepdata.normalise import Normaliser
from sleepdata.psg import load_recording, pair_for
from sleepdata.stages import N1, N2, N3, REM, W

from ..conftest import write_pair
from .fakes import FakeBoard

NIGHT = [W] * 4 + [N1] * 3 + [N2] * 8 + [N3] * 5 + [REM] * 6 + [W] * 4


def test_epochs_of_a_named_recording_are_spread_over_it(tmp_path):
    psg, _ = write_pair(tmp_path, NIGHT)
    model = ModelFiles.load()
    got = fixed_epochs(model, 3, psg=psg)
    rec = load_recording(pair_for(psg))
    want = Normaliser.from_dict(model.config["normalisation"]).to_wire(
        rec.epochs[[0, (len(rec) - 1) // 2, len(rec) - 1]]
    )
    assert got.shape == (3, 3000, 4) and got.dtype == np.int16
    np.testing.assert_array_equal(got, want.transpose(0, 2, 1))


def test_without_scipy_the_default_night_asks_for_a_recording(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        bench_module.importlib.util,
        "find_spec",
        lambda name, *a: None if name == "scipy" else real(name, *a),
    )
    with pytest.raises(BenchError, match=r"pass --psg NIGHT\.edf .*\[simulate\]"):
        fixed_epochs(ModelFiles.load(), 2)


def test_bad_inputs_are_one_line_errors_before_any_board(tmp_path, capsys):
    # loop:// would answer nothing: these must fail before the board is asked
    assert main(["bench", "--psg", str(tmp_path / "none.edf"), "--port", "loop://"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "none.edf" in err and err.count("\n") == 1
    with pytest.raises(SystemExit) as exit_:
        main(["bench", "--epochs", "0", "--port", "loop://"])
    assert exit_.value.code == 2
    assert "--epochs: must be at least 1, not 0" in capsys.readouterr().err


def test_bench_command_counts_the_epochs_it_sends(tmp_path, capsys, monkeypatch):
    psg, _ = write_pair(tmp_path, NIGHT)
    board = FakeBoard(ModelFiles.load())
    monkeypatch.setattr(
        "host_tools.cli.open_device", lambda args, model_dir=None: (board, lambda: None)
    )
    assert main(["bench", "--psg", str(psg), "--epochs", "3", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["epochs"] == 3 and board.next_epoch == 3
    assert result["inference"]["median"] > 0 and result["preprocess"]["median"] > 0
    assert [row["count"] for row in result["per_layer"]] == [1000, 2000]
