"""The cycle estimate on the emulated board (host_tools bench --cycles): of the code the board
counted (the trace's instruction counts equal the board's, or it fails), deterministic, and
labelled an estimate with the board's counts still instructions."""

from __future__ import annotations

import pytest

from host_tools.bench import fixed_epochs
from host_tools.cli import main
from host_tools.cycles.estimate import estimate_epochs
from host_tools.reference import ModelFiles

pytestmark = pytest.mark.hil


@pytest.fixture(scope="module")
def estimate(request):
    if request.config.getoption("--port"):
        pytest.skip("the estimate runs on the emulated board; a real board measures cycles")
    model = ModelFiles.load()
    epochs = fixed_epochs(model, 2)
    return epochs, estimate_epochs(epochs, model=model)


def test_estimate_is_of_the_counted_code_and_labelled(estimate):
    _, r = estimate
    assert r["instructions_equal_board_counts"] is True  # (estimate_epochs raises otherwise)
    assert r["counter_kind"] == "instructions"
    assert "not measured" in r["estimate"]
    e = r["per_epoch"]
    assert set(e["cycles"]) == {"ideal", "nucleo-l476rg"}
    # more cycles than instructions (loads take 2, taken branches refill), flash adds stalls
    assert e["instructions"] < e["cycles"]["ideal"] <= e["cycles"]["nucleo-l476rg"]
    assert sum(e["mix"].values()) == pytest.approx(1, abs=1e-3)
    assert e["mix"]["mac"] > 0.1  # the convolutions' multiply-accumulates are there
    # the layers are timed with per-layer profiling on (a counter read each): within 0.1 %
    layers = r["per_layer"]
    assert sum(x["instructions"] for x in layers) == pytest.approx(e["instructions"], rel=1e-3)
    assert sum(x["cycles"]["ideal"] for x in layers) == pytest.approx(
        e["cycles"]["ideal"], rel=1e-3
    )
    assert not r["not_in_timing_table"]


def test_estimate_is_deterministic(estimate):
    epochs, first = estimate
    again = estimate_epochs(epochs, model=ModelFiles.load())
    assert again["per_epoch"] == first["per_epoch"]
    assert again["per_layer"] == first["per_layer"]


def test_cycles_on_a_real_port_is_a_clear_error(capsys):
    assert main(["bench", "--cycles", "--port", "socket://127.0.0.1:9", "--epochs", "1"]) == 2
    assert "--cycles estimates cycles on an emulated board" in capsys.readouterr().err
