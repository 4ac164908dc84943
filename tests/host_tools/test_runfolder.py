"""The run folder's source files (host_tools.runfolder): results.csv written row by row and
read back, a torn last row dropped and cut off for a resume, damage refused; run.json."""

from __future__ import annotations

import pytest

from host_tools import runfolder as rf

from .fakes import epoch_row, write_rows


def test_results_round_trip_and_a_torn_last_line_is_dropped(tmp_path):
    path = tmp_path / rf.RESULTS
    write_rows(path, [epoch_row(i) for i in range(5)])
    good = path.read_bytes()
    full_line = epoch_row(5).line()
    with open(path, "a") as f:
        f.write(full_line[:17])  # a crash in the middle of a row
    res = rf.read_results(path)
    assert res.epoch.tolist() == [0, 1, 2, 3, 4]
    assert res.bitexact.all() and res.onchip_scores[0].tolist() == list(epoch_row(0).onchip_scores)
    assert path.read_bytes() != good  # read-only unless asked to repair
    rf.read_results(path, repair=True)
    assert path.read_bytes() == good
    write_rows(path, [epoch_row(i) for i in range(5, 8)])  # appending continues cleanly
    assert rf.read_results(path).epoch.tolist() == list(range(8))


def test_results_with_duplicates_or_damage_are_refused(tmp_path):
    path = tmp_path / rf.RESULTS
    write_rows(path, [epoch_row(0), epoch_row(1), epoch_row(1)])
    with pytest.raises(rf.RunFolderError, match="line 4 has epoch 1 after epoch 1"):
        rf.read_results(path)
    path.write_text(path.read_text().replace(epoch_row(0).line(), "0,1,2\n"))
    with pytest.raises(rf.RunFolderError, match="line 2 has 3 fields"):
        rf.read_results(path)
    path.write_text("a,b\n")
    with pytest.raises(rf.RunFolderError, match="header"):
        rf.read_results(path)
    path.write_text("")
    assert len(rf.read_results(path)) == 0


def test_run_json_is_replaced_whole_and_a_missing_one_named(tmp_path):
    rf.write_meta(tmp_path, {"format": 1, "sessions": []})
    rf.write_meta(tmp_path, {"format": 1, "sessions": [{"status": "complete"}]})
    assert rf.read_meta(tmp_path)["sessions"] == [{"status": "complete"}]
    assert not list(tmp_path.glob("*.part"))
    with pytest.raises(rf.RunFolderError, match=r"run\.json does not exist; is .* written by"):
        rf.read_meta(tmp_path / "elsewhere")
    (tmp_path / rf.RUN).write_text("{")
    with pytest.raises(rf.RunFolderError, match="not valid JSON"):
        rf.read_meta(tmp_path)
