"""What a stream sends, checked before a board is used (host_tools.inputs): the board check,
the epochs planned, and the noisy wire samples of each epoch."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from host_tools.inputs import BoardMismatchError, StreamError, check_board, plan_epochs, wire_epochs
from host_tools.reference import ModelFiles
from sleepdata.noise import NoiseSpec, add_noise, epoch_rng
from sleepdata.normalise import Normaliser

from .fakes import SIGNAL_STATS, board_info


def test_noise_of_an_epoch_depends_on_the_seed_and_its_index_only():
    rng = np.random.default_rng(0)
    epochs = rng.normal(0, 20, (6, 4, 3000)).astype(np.float32)
    epochs[:, 3] = np.abs(epochs[:, 3]) / 10
    norm = Normaliser.from_dict(ModelFiles.load().config["normalisation"])
    spec = NoiseSpec("gaussian", 0.3)
    all_ = wire_epochs(epochs, np.arange(6), norm, noise=spec, stats=SIGNAL_STATS, seed=7)
    tail = wire_epochs(epochs, np.arange(3, 6), norm, noise=spec, stats=SIGNAL_STATS, seed=7)
    assert np.array_equal(all_[3:], tail)
    other = wire_epochs(epochs, np.arange(3, 6), norm, noise=spec, stats=SIGNAL_STATS, seed=8)
    assert not np.array_equal(tail, other)
    clean = wire_epochs(epochs, np.arange(6), norm)
    assert np.array_equal(clean, norm.to_wire(epochs))
    manual = add_noise(epochs[4], spec, SIGNAL_STATS, epoch_rng(7, 4))
    assert np.array_equal(all_[4], norm.to_wire(manual))


def test_board_checks_name_the_difference_and_the_fix(tmp_path):
    model = ModelFiles.load()
    norm = Normaliser.from_dict(model.config["normalisation"])
    check_board(board_info(model), model, norm)
    with pytest.raises(BoardMismatchError) as err:
        check_board(board_info(model, model_hash=bytes.fromhex("3b3b000000000000")), model, norm)
    msg = str(err.value)
    assert "board runs model 3b3b000000000000" in msg and model.model_hash.hex() in msg
    # the shipped model: the committed C builds its firmware
    assert "leave out --firmware" in msg and "`make -C firmware BOARD=<board>`" in msg
    other = dataclasses.replace(
        model, folder=tmp_path, tflite=b"another model", model_hash=bytes(range(8))
    )
    with pytest.raises(BoardMismatchError) as err:
        check_board(board_info(model), other, norm)
    assert f"python -m converter build --model {tmp_path} --out {tmp_path}" in str(err.value)
    (tmp_path / "engine_model.c").write_text("/* generated */\n")
    with pytest.raises(BoardMismatchError) as err:
        check_board(board_info(model), other, norm)
    assert f"`make -C firmware BOARD=<board> MODEL_DIR={tmp_path.resolve()}`" in str(err.value)
    with pytest.raises(BoardMismatchError, match="100 Hz"):
        check_board(board_info(model, sample_rate_hz=128), model, norm)
    bad = board_info(model)
    bad.norm[3] = (0, 19, 2400, 26634)
    with pytest.raises(BoardMismatchError, match="EMG submental"):
        check_board(bad, model, norm)


def test_plan_epochs():
    assert plan_epochs(100, 0, None) == range(100)
    assert plan_epochs(100, 90, 40) == range(90, 100)
    with pytest.raises(StreamError, match="outside the recording's 100 kept epochs"):
        plan_epochs(100, 100, None)
    with pytest.raises(StreamError, match="at least one"):
        plan_epochs(100, 0, 0)


def test_plan_epochs_takes_a_sorted_list_of_kept_epochs():
    assert plan_epochs(100, 0, None, [3, 7, 50]).tolist() == [3, 7, 50]
    assert plan_epochs(100, 0, 2, np.array([3, 7, 50])).tolist() == [3, 7]
    for bad, match in (
        ([7, 3], "strictly increasing"),
        ([3, 3], "strictly increasing"),
        ([], "non-empty"),
        ([5, 100], "epoch 100 is outside the recording's 100 kept epochs"),
        ([-1, 5], "epoch -1 is outside"),
    ):
        with pytest.raises(StreamError, match=match):
            plan_epochs(100, 0, None, bad)
    with pytest.raises(StreamError, match="--start 4 cannot be combined"):
        plan_epochs(100, 4, None, [5, 6])
