"""The study table in the shape of REST's Table 4, mean +- std over seeds, and the targets."""

from __future__ import annotations

from sleepdata import rest_table


def _result(clean: float, noisy: float) -> dict:
    conds = [{"kind": "none", "level": "-", "float": {"macro_f1": clean}}]
    for kind in (*rest_table.MAIN_KINDS, *rest_table.EXTRA_KINDS):
        for level in rest_table.LEVELS:
            conds.append({"kind": kind, "level": level, "float": {"macro_f1": noisy}})
    return {"conditions": conds, "data_provenance": {"label": "simulated nights, x"}}


def test_rows_in_the_papers_order_with_the_spread_over_seeds():
    results = {
        "rest_as": [_result(0.80, 0.70), _result(0.82, 0.72), _result(0.84, 0.74)],
        "baseline": [_result(0.85, 0.50)],
    }
    lines = rest_table.table(results, "float")
    assert lines[2].startswith("| baseline (ULW-SleepNet) | 1 | 0.850 | 0.500")
    assert lines[3].startswith("| REST(A+S) | 3 | 0.820 +- 0.020 | 0.720 +- 0.020")
    page = rest_table.render(results)
    assert "Data: simulated nights, x." in page


def test_targets_are_checked_against_the_means():
    base = [_result(0.85, 0.50)]
    met = rest_table.targets(
        {"baseline": base, "rest_as": [_result(0.84, 0.65)], "rest_a": [_result(0.8, 0.6)]}
    )
    assert [t["met"] for t in met] == [True, True, True, True]
    missed = rest_table.targets(
        {"baseline": base, "rest_as": [_result(0.80, 0.55)], "rest_a": [_result(0.8, 0.6)]}
    )
    assert [t["met"] for t in missed] == [False, False, False, False]
    assert "-5.0 points" not in missed[1]["figures"] and "+5.0 points" in missed[1]["figures"]
