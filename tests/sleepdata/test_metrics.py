"""Scoring metrics, sleep statistics and the PNG figures built from them."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from sleepdata import plots
from sleepdata.metrics import (
    confusion_matrix,
    format_metric,
    format_scores,
    scores,
    sleep_statistics,
    write_confusion_csv,
)
from sleepdata.stages import N1, N2, N3, REM, STAGE_NAMES, W

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def test_perfect_prediction():
    y = [W, N1, N2, N2, N3, REM, W]
    s = scores(y, y)
    assert s["acc"] == 1.0 and s["macro_f1"] == 1.0 and s["kappa"] == 1.0
    assert s["n_epochs"] == 7
    assert s["per_class_f1"] == {name: 1.0 for name in STAGE_NAMES}


def test_hand_computed_example():
    y_true = [W, W, W, N1, N1, N2, N2, N2, N2, REM]
    y_pred = [W, W, N1, N1, N2, N2, N2, N2, W, REM]
    # Confusion (rows = true):   W  N1 N2 N3 REM
    #   W                        2  1  0  0  0    row 3
    #   N1                       0  1  1  0  0    row 2
    #   N2                       1  0  3  0  0    row 4
    #   N3                       0  0  0  0  0    row 0
    #   REM                      0  0  0  0  1    row 1
    # column sums: 3 2 4 0 1
    # acc = (2+1+3+1)/10 = 0.7
    # F1 = 2 tp / (n_true + n_pred): W 4/6 = 2/3, N1 2/4 = 1/2, N2 6/8 = 3/4, REM 2/2 = 1,
    #      N3 absent from both -> None; macro = (2/3 + 1/2 + 3/4 + 1) / 4 = 35/48
    # p_e = (3*3 + 2*2 + 4*4 + 0*0 + 1*1) / 10^2 = 0.30; kappa = (0.7 - 0.3) / (1 - 0.3) = 4/7
    s = scores(y_true, y_pred)
    assert s["confusion"] == [
        [2, 1, 0, 0, 0],
        [0, 1, 1, 0, 0],
        [1, 0, 3, 0, 0],
        [0, 0, 0, 0, 0],
        [0, 0, 0, 0, 1],
    ]
    assert s["acc"] == pytest.approx(0.7)
    assert s["kappa"] == pytest.approx(4 / 7)
    f1 = s["per_class_f1"]
    assert f1["W"] == pytest.approx(2 / 3)
    assert f1["N1"] == pytest.approx(0.5)
    assert f1["N2"] == pytest.approx(0.75)
    assert f1["N3"] is None
    assert f1["REM"] == pytest.approx(1.0)
    assert s["macro_f1"] == pytest.approx(35 / 48)
    assert isinstance(s["acc"], float) and isinstance(s["kappa"], float)
    text = format_scores(s)
    assert "0.700" in text and "0.571" in text and "N3 -" in text and "10" in text


def test_absent_and_one_sided_classes():
    # N1 only predicted (F1 0, counts in macro); N3 and REM in neither (None, excluded).
    s = scores([W, W, N2], [W, N1, N2])
    f1 = s["per_class_f1"]
    assert f1["N1"] == 0.0
    assert f1["N3"] is None and f1["REM"] is None
    # W: 2*1/(2+1) = 2/3, N2: 1 -> macro over W, N1, N2 = (2/3 + 0 + 1) / 3 = 5/9
    assert s["macro_f1"] == pytest.approx(5 / 9)


def test_one_stage_throughout_leaves_kappa_and_macro_f1_undefined():
    s = scores([N2] * 4, [N2] * 4)
    assert s["kappa"] is None and s["macro_f1"] is None
    assert s["acc"] == 1.0 and s["per_class_f1"]["N2"] == 1.0
    assert s["per_class_f1"]["W"] is None
    text = format_scores(s)
    assert "macro-F1  n/a" in text and "kappa     n/a" in text and "1.000" in text
    # one stage in the truth only (or in the prediction only): both are defined
    one_sided = scores([N2] * 4, [N2, N2, N2, W])
    assert one_sided["kappa"] == 0.0 and one_sided["macro_f1"] == pytest.approx((6 / 7) / 2)
    apart = scores([W] * 3, [N2] * 3)
    assert apart["kappa"] == 0.0 and apart["macro_f1"] == 0.0
    assert format_metric(float("nan")) == "n/a" and format_metric(0.5) == "0.500"


def test_confusion_matrix_layout():
    cm = confusion_matrix(np.array([W, REM]), np.array([N3, REM]))
    assert cm.dtype == np.int64 and cm.shape == (5, 5)
    assert cm[W, N3] == 1 and cm[REM, REM] == 1 and cm.sum() == 2


@pytest.mark.parametrize(
    ("y_true", "y_pred"),
    [
        ([W, N1], [W]),  # mismatched lengths
        ([W, 5], [W, W]),  # label above REM
        ([W, N1], [-1, W]),  # negative (unscored) label
        ([0.5, 1.0], [W, N1]),  # not an integer label
        ([], []),  # empty
    ],
)
def test_bad_input_raises(y_true, y_pred):
    with pytest.raises(ValueError):
        scores(y_true, y_pred)


def test_confusion_csv_round_trips(tmp_path):
    cm = np.arange(25, dtype=np.int64).reshape(5, 5)
    path = tmp_path / "confusion.csv"
    write_confusion_csv(path, cm)
    back = np.loadtxt(path, delimiter=",", skiprows=1, usecols=range(1, 6), dtype=np.int64)
    np.testing.assert_array_equal(back, cm)
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["true\\pred", "W", "N1", "N2", "N3", "REM"]
    assert [r[0] for r in rows[1:]] == list(STAGE_NAMES)
    assert len(rows) == 6
    with pytest.raises(ValueError):
        write_confusion_csv(path, np.zeros((4, 4)))


def test_sleep_statistics_on_a_tiny_night():
    night = [W] * 4 + [N1] * 2 + [N2] * 4 + [W] * 2 + [REM] * 2 + [W] * 2
    st = sleep_statistics(night)
    # 16 epochs of 30 s = 8 min in bed; 8 sleep epochs (2 N1 + 4 N2 + 2 REM) = 4 min
    assert st["tib_min"] == pytest.approx(8.0)
    assert st["tst_min"] == pytest.approx(4.0)
    assert st["sleep_efficiency"] == pytest.approx(0.5)
    assert st["sol_min"] == pytest.approx(2.0)  # 4 W epochs before the first N1
    assert st["waso_min"] == pytest.approx(1.0)  # the 2 W between N2 and REM; final W excluded
    assert st["w_min"] == pytest.approx(4.0)  # 4 + 2 + 2 W epochs
    assert st["n1_min"] == pytest.approx(1.0)
    assert st["n2_min"] == pytest.approx(2.0)
    assert st["n3_min"] == 0.0
    assert st["rem_min"] == pytest.approx(1.0)
    assert sleep_statistics([N2, W], epoch_s=60)["tib_min"] == pytest.approx(2.0)


def test_sleep_statistics_without_sleep_and_bad_input():
    st = sleep_statistics([W, W, W])
    assert st["tst_min"] == 0.0 and st["sleep_efficiency"] == 0.0
    assert st["sol_min"] is None and st["waso_min"] is None
    for bad in ([], [W, 7], [[W, N1]]):
        with pytest.raises(ValueError):
            sleep_statistics(bad)


def _is_png(path):
    data = path.read_bytes()
    return len(data) > len(PNG_SIGNATURE) and data.startswith(PNG_SIGNATURE)


def test_plot_confusion_writes_png(tmp_path):
    cm = np.array(scores([W, N1, N2, N3, REM, W], [W, N2, N2, N3, REM, N1])["confusion"])
    cm[N3] = 0  # a stage with no true epochs must not break the row percentages
    plots.plot_confusion(tmp_path / "cm.png", cm, title="test")
    assert _is_png(tmp_path / "cm.png")


def test_plot_learning_curves_writes_png(tmp_path):
    history = [
        {"epoch": e, "train_loss": 1 / e, "val_loss": 1.2 / e, "val_macro_f1": 0.5 + e / 20}
        for e in range(1, 5)
    ]
    plots.plot_learning_curves(tmp_path / "lc.png", history)
    assert _is_png(tmp_path / "lc.png")
    for h in history:
        h["val_acc"] = h["val_macro_f1"] + 0.05
    plots.plot_learning_curves(tmp_path / "lc_acc.png", history, title="with acc")
    assert _is_png(tmp_path / "lc_acc.png")
    with pytest.raises(ValueError):
        plots.plot_learning_curves(tmp_path / "bad.png", [{"epoch": 1}])


def test_plot_hypnogram_with_gap_and_probs(tmp_path):
    rng = np.random.default_rng(0)
    onsets = 30.0 * np.r_[np.arange(40), np.arange(60, 100)]  # 10-min gap after epoch 40
    truth = rng.integers(0, 5, onsets.size)
    pred = rng.integers(0, 5, onsets.size)
    probs = rng.dirichlet(np.ones(5), onsets.size)
    plots.plot_hypnogram(tmp_path / "hyp.png", onsets, truth, pred, probs=probs, title="night")
    assert _is_png(tmp_path / "hyp.png")
    plots.plot_hypnogram(tmp_path / "pred_only.png", onsets, None, pred)
    assert _is_png(tmp_path / "pred_only.png")
    with pytest.raises(ValueError):
        plots.plot_hypnogram(tmp_path / "bad.png", onsets, truth[:-1], pred)


def test_hypnogram_steps_break_at_gaps():
    x, y = plots._steps(np.array([0.0, 30.0, 120.0]), np.array([0.0, 1.0, 2.0]))
    # epoch 0 and 1 contiguous, then a NaN break before the epoch at 120 s
    assert np.isnan(y).sum() == 1
    assert y[~np.isnan(y)].tolist() == [0, 0, 1, 1, 2, 2]
    assert x[-1] == pytest.approx(150 / 3600)
