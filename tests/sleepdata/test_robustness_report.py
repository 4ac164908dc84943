"""Robustness tables and plots from results.json / onchip.json contents: both table shapes,
the on-chip column, the plot's panels, and comparing runs."""

from __future__ import annotations

import json

import pytest

from sleepdata.robustness_report import (
    compare,
    condition_label,
    find_onchip,
    onchip_cell,
    plot_macro_f1,
    render_table,
)

CONDITIONS = (
    ("none", "-", 0, 100),
    ("none (attack subset)", "-", 0, 20),
    ("gaussian", "low", 0.1, 100),
    ("gaussian", "high", 0.3, 100),
    ("adversarial pgd", "med", 6.0, 20),
)


def _scores(f1: float) -> dict:
    return {"acc": f1 + 0.1, "macro_f1": f1, "kappa": f1 - 0.1}


def _result(base: float, int8: bool = True) -> dict:
    """A results.json with the CONDITIONS, macro-F1 falling by 0.1 per condition from base."""
    conditions = []
    for k, (kind, level, value, n) in enumerate(CONDITIONS):
        c = {"kind": kind, "level": level, "value": value, "n_epochs": n}
        c["float"] = _scores(base - 0.1 * k)
        if int8:
            c["int8"] = _scores(base - 0.1 * k - 0.01)
        conditions.append(c)
    return {"conditions": conditions}


def _onchip(f1: float, n_epochs: int) -> dict:
    """An onchip.json measuring only "gaussian low", on ``n_epochs`` epochs."""
    c = {"kind": "gaussian", "level": "low", "value": 0.1, "n_epochs": n_epochs}
    return {"conditions": [{**c, "onchip": {"macro_f1": f1}}]}


def test_rows_are_named_by_kind_level_and_value():
    assert [condition_label(c) for c in _result(0.9)["conditions"]] == [
        "no noise",
        "no noise (attack subset)",
        "gaussian low (0.1)",
        "gaussian high (0.3)",
        "adversarial pgd med (eps 6 uV)",
    ]


def test_onchip_cell_marks_fewer_epochs_and_unmeasured_conditions():
    c = _result(0.9)["conditions"][2]
    assert onchip_cell(_onchip(0.812, 100), c) == "0.812"
    assert onchip_cell(_onchip(0.812, 60), c) == "0.812 (60)"
    assert onchip_cell(_onchip(0.812, 100), _result(0.9)["conditions"][3]) == "-"
    assert onchip_cell(None, c) == "-"


def test_one_model_table_has_float_int8_and_on_chip_columns():
    res = _result(0.9)
    chip = {"float": _onchip(0.7, 50)}
    table = render_table({"float": res, "int8": res}, models=False, onchip=chip)
    lines = table.splitlines()
    assert len(lines) == 2 + len(CONDITIONS) and table.endswith("\n")
    assert lines[0].startswith("| condition | epochs | float macro-F1 | int8 macro-F1 (TFLM) |")
    assert lines[4] == (
        "| gaussian low (0.1) | 100 | 0.700 | 0.690 | 0.800 | 0.790 | 0.600 | 0.590 | 0.700 (50) |"
    )
    no_int8 = render_table({"a": _result(0.9, int8=False)}, models=False)
    assert no_int8.splitlines()[2] == ("| no noise | 100 | 0.900 | - | 1.000 | - | 0.800 | - | - |")


def test_model_table_has_a_float_and_int8_column_pair_per_model():
    results = {"base": _result(0.9), "rest": _result(0.8, int8=False)}
    table = render_table(results, onchip={"rest": _onchip(0.55, 100)})
    lines = table.splitlines()
    assert lines[0] == (
        "| condition | epochs | base float | base int8 | rest float | rest int8 "
        "| base on chip | rest on chip |"
    )
    assert lines[1] == "|" + "---|" * 8
    assert lines[4] == "| gaussian low (0.1) | 100 | 0.700 | 0.690 | 0.600 | - | - | 0.550 |"
    without = render_table(results, on_chip=False).splitlines()
    assert without[0].endswith("| rest int8 |") and without[4].count("|") == 7


def test_the_plot_has_a_panel_per_noise_kind_of_the_results(tmp_path):
    plot_macro_f1(tmp_path / "all.png", {"base": _result(0.9), "rest": _result(0.8)})
    only_gaussian = {"conditions": _result(0.9)["conditions"][:4]}
    plot_macro_f1(tmp_path / "one.png", {"base": only_gaussian})  # a single panel
    for name in ("all.png", "one.png"):
        assert (tmp_path / name).read_bytes()[:4] == b"\x89PNG"


def _run(folder, result):
    folder.mkdir(parents=True)
    (folder / "results.json").write_text(json.dumps(result))
    return folder


def test_compare_reads_runs_and_their_onchip_files_and_refuses_mismatches(tmp_path):
    a = _run(tmp_path / "a", _result(0.9))
    b = _run(tmp_path / "b", _result(0.8))
    (b / "onchip").mkdir()
    (b / "onchip" / "onchip.json").write_text(json.dumps(_onchip(0.61, 100)))
    table = compare({"a": a, "b": b}, tmp_path / "out")
    assert (tmp_path / "out" / "table.md").read_text() == table
    assert (tmp_path / "out" / "macro_f1.png").is_file()
    assert table.splitlines()[4].endswith("| - | 0.610 |")
    chip = tmp_path / "chip.json"
    chip.write_text(json.dumps(_onchip(0.5, 100)))
    given = compare({"a": a, "b": b}, tmp_path / "out2", {"a": chip})
    assert given.splitlines()[4].endswith("| 0.500 | 0.610 |")
    with pytest.raises(ValueError, match=r"--onchip c=\.\.\.: no --run of that name"):
        compare({"a": a}, tmp_path / "out3", {"c": chip})
    short = _result(0.9)
    short["conditions"][0]["n_epochs"] = 50
    with pytest.raises(ValueError, match="differ in conditions or epoch subsets"):
        compare({"a": a, "s": _run(tmp_path / "s", short)}, tmp_path / "out4")
    with pytest.raises(FileNotFoundError, match="host_tools robustness writes it"):
        find_onchip(a, tmp_path / "missing.json")
    assert find_onchip(a) is None
