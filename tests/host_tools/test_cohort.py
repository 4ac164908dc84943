"""The cohort (host_tools.cohort) with scripted boards: which nights, in what order, what a
failing night or board does to the others, and resuming (the emulated boards: tests/hil)."""

from __future__ import annotations

import json

import pytest

from host_tools import runfolder as rf
from host_tools.cohort import COHORT_JSON, NIGHTS, Board, CohortError, open_cohort, plan_nights
from host_tools.cohort_report import write_cohort_outputs
from host_tools.device import DeviceError
from host_tools.reference import ModelFiles
from host_tools.stream import StreamOptions

from ..conftest import write_pair
from .fakes import FakeBoard

STAGES = [0, 1, 2, 2, 3, 2, 4, 4]


@pytest.fixture
def data(tmp_path):
    """Three short simulated nights of 8, 12 and 10 epochs."""
    folder = tmp_path / "data"
    for k, n in enumerate([8, 12, 10]):
        write_pair(folder, (STAGES * 2)[:n], name=f"SC40{k + 1}1E", seed=k)
    return folder


class DyingBoard(FakeBoard):
    """A scripted board that stops answering after ``after`` epochs."""

    def __init__(self, model, after: int):
        super().__init__(model)
        self.after = after

    def stream_epochs(self, first_epoch, epochs):
        for k, r in enumerate(super().stream_epochs(first_epoch, epochs)):
            if k >= self.after:
                raise DeviceError("no reply: the board stopped answering")
            yield r


def fake_board(label: str, opened: list, make=None, fail_open: bool = False) -> Board:
    model = ModelFiles.load()

    def open_():
        if fail_open:
            raise DeviceError(f"opening {label}: no such port")
        dev = (make or (lambda: FakeBoard(model)))()
        opened.append(label)
        return dev, lambda: None

    return Board(label, open_)


def test_nights_are_found_in_folders_and_files_and_ordered_longest_first(data, tmp_path):
    nights = plan_nights([data])
    assert [n.name for n in nights] == ["SC4021E0", "SC4031E0", "SC4011E0"]  # 12, 10, 8 epochs
    assert nights[0].hours > nights[1].hours > nights[2].hours > 0
    junk = tmp_path / "junk-PSG.edf"
    junk.write_bytes(b"not an EDF file")
    assert plan_nights([junk])[0].hours == 0.0  # unreadable: last, fails when streamed
    with pytest.raises(CohortError, match="a folder without PSG files"):
        plan_nights([_empty(tmp_path)])
    with pytest.raises(CohortError, match="no such file or folder"):
        plan_nights([tmp_path / "missing.edf"])
    with pytest.raises(CohortError, match="SC4011E0 are given twice"):
        plan_nights([data, data / "SC4011E0-PSG.edf"])


def _empty(tmp_path):
    folder = tmp_path / "empty"
    folder.mkdir()
    return folder


def test_a_failing_board_loses_one_night_and_is_reopened_for_the_next(data, tmp_path):
    opened = []
    model = ModelFiles.load()
    made = iter([DyingBoard(model, after=3), FakeBoard(model), FakeBoard(model)])
    out = tmp_path / "cohort"
    run = open_cohort(
        [data], out, StreamOptions(), [fake_board("b1", opened, lambda: next(made))], False
    )
    run.run()
    status = {n.name: (n.status, n.error) for n in run.nights}
    assert status["SC4021E0"][0] == "failed" and "board b1 failed" in status["SC4021E0"][1]
    assert status["SC4031E0"] == ("done", None) and status["SC4011E0"] == ("done", None)
    assert opened == ["b1", "b1"]  # reopened once, after the failure
    kept = len(rf.read_results(out / NIGHTS / "SC4021E0" / rf.RESULTS))
    assert 0 < kept < 12  # the rows before the board died are kept
    r = write_cohort_outputs(out, figure=False)
    assert (r["nights_done"], r["nights_failed"]) == (2, 1)

    # --resume retries the failed night (continuing its rows) and redoes no finished one
    done = (out / NIGHTS / "SC4031E0" / rf.RESULTS).stat().st_mtime_ns
    again = open_cohort([data], out, StreamOptions(), [fake_board("b2", [])], True)
    assert [n.status for n in again.nights] == ["pending", "done", "done"]
    again.run()
    assert [n.status for n in again.nights] == ["done"] * 3
    assert (out / NIGHTS / "SC4031E0" / rf.RESULTS).stat().st_mtime_ns == done
    rows = rf.read_results(out / NIGHTS / "SC4021E0" / rf.RESULTS)
    assert list(rows.epoch) == list(range(12))


def test_a_board_that_cannot_open_leaves_its_nights_to_the_others(data, tmp_path):
    opened = []
    out = tmp_path / "cohort"
    boards = [fake_board("dead", opened, fail_open=True), fake_board("live", opened)]
    run = open_cohort([data], out, StreamOptions(), boards, False)
    run.run()
    assert all(n.status == "done" and n.board == "live" for n in run.nights)
    state = json.loads((out / COHORT_JSON).read_text())
    assert state["boards_gone"][0]["board"] == "dead"
    assert "no such port" in state["boards_gone"][0]["error"]


def test_no_board_left_fails_the_nights_and_says_why(data, tmp_path):
    run = open_cohort([data], tmp_path / "c", StreamOptions(),
                      [fake_board("dead", [], fail_open=True)], False)  # fmt: skip
    run.run()
    assert {n.error for n in run.nights} == {"no board left to stream it"}


def test_a_cohort_folder_is_not_overwritten_and_resume_needs_the_same_nights(data, tmp_path):
    out = tmp_path / "cohort"
    open_cohort([data], out, StreamOptions(), [fake_board("b", [])], False).run()
    with pytest.raises(CohortError, match="already holds a cohort"):
        open_cohort([data], out, StreamOptions(), [fake_board("b", [])], False)
    with pytest.raises(CohortError, match="a cohort of other nights"):
        open_cohort([data / "SC4011E0-PSG.edf"], out, StreamOptions(), [fake_board("b", [])], True)
