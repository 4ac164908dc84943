"""Hypnogram files: R&K -> AASM mapping, 30-s expansion, writing and rejecting bad files."""

from __future__ import annotations

import numpy as np
import pyedflib
import pytest

from sleepdata.errors import HypnogramError
from sleepdata.hypnogram import read_hypnogram, write_hypnogram
from sleepdata.stages import MOVEMENT, N1, N2, N3, REM, RK_TO_AASM, UNSCORED, W

from ..conftest import START


def test_rk_stages_map_to_aasm():
    assert RK_TO_AASM["Sleep stage 3"] == RK_TO_AASM["Sleep stage 4"] == N3
    assert RK_TO_AASM["Sleep stage R"] == REM
    assert RK_TO_AASM["Movement time"] < 0 and RK_TO_AASM["Sleep stage ?"] < 0


def test_write_then_read_gives_the_same_epochs(tmp_path):
    labels = np.array([W, W, N1, N2, N2, N3, N3, REM, MOVEMENT, W, UNSCORED], dtype=np.int8)
    path = tmp_path / "SC4001EC-Hypnogram.edf"
    write_hypnogram(path, START, labels, unscored_tail_s=600)
    hyp = read_hypnogram(path)
    onsets, got = hyp.epochs()
    assert hyp.start == START
    assert got.tolist() == [*labels.tolist(), *[UNSCORED] * 20]
    np.testing.assert_array_equal(onsets, 30.0 * np.arange(got.size))
    assert hyp.texts[:3] == ("Sleep stage W", "Sleep stage 1", "Sleep stage 2")


def test_real_hypnogram_expands_to_the_published_span(shared_sleep_edf):
    hyp = read_hypnogram(shared_sleep_edf / "hypnograms" / "SC4001EC-Hypnogram.edf")
    onsets, labels = hyp.epochs()
    assert onsets[-1] + 30 == 86400
    assert (labels[onsets >= 79500] == UNSCORED).all()  # "?" after the PSG ends


def _annotations_file(path, annotations):
    w = pyedflib.EdfWriter(str(path), 0, file_type=pyedflib.FILETYPE_EDFPLUS)
    w.setStartdatetime(START)
    for onset, duration, text in annotations:
        w.writeAnnotation(onset, duration, text)
    w.close()


@pytest.mark.parametrize(
    ("annotations", "message"),
    [
        (
            [(0, 60, "Sleep stage W"), (60, 30, "Sleep stage X")],
            "unknown annotation 'Sleep stage X'",
        ),
        ([(0, 60, "Sleep stage W"), (60, 45, "Sleep stage 2")], "not on the 30-s epoch grid"),
        ([(0, 90, "Sleep stage W"), (60, 30, "Sleep stage 2")], "overlap"),
    ],
)
def test_bad_hypnograms_are_rejected_with_the_reason(tmp_path, annotations, message):
    path = tmp_path / "SC4001EC-Hypnogram.edf"
    _annotations_file(path, annotations)
    with pytest.raises(HypnogramError, match=message) as err:
        read_hypnogram(path).epochs()
    assert err.value.path == path


def test_non_edf_hypnogram_is_rejected(tmp_path):
    path = tmp_path / "SC4001EC-Hypnogram.edf"
    path.write_bytes(b"not an EDF file" * 100)
    with pytest.raises(HypnogramError, match="not a readable EDF"):
        read_hypnogram(path)
