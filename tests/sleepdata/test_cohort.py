"""Subjects of a data folder: keys, command-line lists, filtering pairs by subject, hypnogram
files of a folder, the per-stage table."""

from __future__ import annotations

import numpy as np
import pytest

from sleepdata.cohort import (
    group_by_subject,
    hypnogram_files,
    pairs_of_subjects,
    parse_subjects,
    stage_table,
    subject_key,
)
from sleepdata.errors import DataError
from sleepdata.psg import Recording
from sleepdata.stages import N1, N2, W

from ..conftest import START, write_pair


def _rec(name: str, subject: int) -> Recording:
    return Recording(name, subject, 1, START, np.zeros((0, 4, 3000)), np.zeros(0), np.zeros(0))


def test_subject_keys_group_nights_and_parse_from_the_command_line():
    recs = [_rec("SC4001E0", 0), _rec("SC4122E0", 12), _rec("night-a", -1), _rec("SC4002E0", 0)]
    assert [subject_key(r) for r in recs] == ["subject-00", "subject-12", "night-a", "subject-00"]
    groups = group_by_subject(recs)
    assert list(groups) == ["subject-00", "subject-12", "night-a"]
    assert [r.name for r in groups["subject-00"]] == ["SC4001E0", "SC4002E0"]
    assert parse_subjects("0,1,12") == ["subject-00", "subject-01", "subject-12"]
    assert parse_subjects(None) == [] and parse_subjects("") == []
    assert parse_subjects("98-100, 7") == ["subject-98", "subject-99", "subject-100", "subject-07"]
    with pytest.raises(ValueError, match="'5-3': expected subject numbers"):
        parse_subjects("5-3")
    with pytest.raises(ValueError, match="'0,x': expected subject numbers"):
        parse_subjects("0,x")


def test_pairs_of_subjects_filters_sleep_edf_names_and_keeps_the_others(tmp_path):
    night = [W] * 4 + [N1] * 2 + [N2] * 4 + [W] * 2
    for name in ("SC4001E", "SC4011E", "SC4021E"):
        write_pair(tmp_path, night, name=name)
    psg, hyp = write_pair(tmp_path / "x", night, name="SC4031E")
    psg.rename(tmp_path / "nightab-PSG.edf")  # no Sleep-EDF name: subject unknown until loaded
    hyp.rename(tmp_path / "nightabX-Hypnogram.edf")
    names = [p.name for p in pairs_of_subjects(tmp_path, ["subject-01", "subject-02"])]
    assert names == ["SC4011E0", "SC4021E0", "nightab"]


def test_hypnogram_files_of_a_file_or_a_folder(tmp_path):
    night = [W] * 4 + [N1] * 2 + [N2] * 4 + [W] * 2
    _, hyp_b = write_pair(tmp_path, night, name="SC4011E")
    _, hyp_a = write_pair(tmp_path, night, name="SC4001E")
    assert hypnogram_files(tmp_path) == [hyp_a, hyp_b]
    assert hypnogram_files(hyp_b) == [hyp_b]
    with pytest.raises(DataError, match="no such file or folder"):
        hypnogram_files(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"no \*-Hypnogram.edf file in this folder"):
        hypnogram_files(tmp_path / "empty")


def test_stage_table_counts_each_recording_and_the_total():
    rows = [("SC4001E0", np.array([0, 0, 2, 4])), ("SC4002E0", np.array([1, 2, 2]))]
    lines = stage_table(rows).splitlines()
    assert lines[0].split() == ["recording", "W", "N1", "N2", "N3", "REM", "total"]
    assert lines[2].split() == ["SC4001E0", "2", "0", "1", "0", "1", "4"]
    assert lines[3].split() == ["SC4002E0", "0", "1", "2", "0", "0", "3"]
    assert lines[-1].split() == ["all", "2", "1", "3", "0", "1", "7"]
