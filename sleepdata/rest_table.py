"""The REST study's table in the shape of the paper's Table 4: one row per compared model
(mean +- std over its training seeds), one column per noise condition, macro-F1; one table per
evaluation (float PyTorch, int8 on TensorFlow Lite Micro, int8 on chip), and the paper's
claims transposed to this model checked against it.

Input: per model name, the ``results.json`` of ``python -m training robustness`` of each of its
seeds (and optionally the ``onchip.json`` of ``host_tools robustness`` of one seed). Rows follow
the paper's order (`PAPER_ORDER`); the spread is the sample standard deviation (ddof 1) over
seeds, shown only where there are two or more.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence

from .metrics import format_metric

#: The paper's six compared models (section 4.2), in its order, with their table names.
PAPER_ORDER = {
    "baseline": "baseline (ULW-SleepNet)",
    "liu": "Liu (slimming)",
    "blanco": "Blanco (Liu + band-pass)",
    "ford": "Ford (Gaussian aug. + slimming)",
    "rest_a": "REST(A)",
    "rest_as": "REST(A+S)",
}
LEVELS = ("low", "med", "high")
#: Table 4's columns: (kind in results.json, level) after "no noise".
MAIN_KINDS = ("gaussian", "shot", "adversarial paper")
EXTRA_KINDS = ("gaussian-mean", "adversarial rest-code", "adversarial pgd")
KIND_SOURCES = {
    "gaussian": "Gaussian (paper eq. 8, zero mean)",
    "gaussian-mean": "Gaussian + training mean (REST code, utils.gaussian_noise)",
    "shot": "shot (paper)",
    "adversarial paper": "adversarial, paper eq. 2 (no random start, step eps)",
    "adversarial rest-code": "adversarial, REST code (random start, step 0.01 uV)",
    "adversarial pgd": "adversarial, standard PGD (random start, step 2.5 eps / 10)",
}


def _value(result: dict, kind: str, level: str, which: str) -> float | None:
    for c in result["conditions"]:
        if c["kind"] == kind and c["level"] == level:
            side = c.get(which)
            return None if side is None else side.get("macro_f1")
    return None


def _onchip_value(onchip: dict | None, kind: str, level: str) -> float | None:
    if not onchip:
        return None
    for c in onchip.get("conditions", []):
        if c["kind"] == kind and c["level"] == level and c.get("onchip"):
            return c["onchip"].get("macro_f1")
    return None


def spread(values: Sequence[float | None]) -> tuple[float | None, float | None, int]:
    """(mean, sample std or None, n) of the defined values."""
    vals = [v for v in values if v is not None]
    if not vals:
        return None, None, 0
    return statistics.fmean(vals), statistics.stdev(vals) if len(vals) > 1 else None, len(vals)


def cell(values: Sequence[float | None]) -> str:
    mean, std, n = spread(values)
    if n == 0:
        return "-"
    return format_metric(mean) + (f" +- {std:.3f}" if std is not None else "")


def _columns(kinds: Sequence[str], with_clean: bool) -> list[tuple[str, str]]:
    cols = [("none", "-")] if with_clean else []
    return cols + [(k, lev) for k in kinds for lev in LEVELS]


def _header(cols: list[tuple[str, str]]) -> list[str]:
    names = [
        "no noise" if k == "none" else f"{k.replace('adversarial ', 'adv. ')} {lev}"
        for k, lev in cols
    ]
    return [
        "| model | seeds | " + " | ".join(names) + " |",
        "|---|---|" + "---|" * len(cols),
    ]


def _ordered(models: dict) -> list[str]:
    return [m for m in PAPER_ORDER if m in models] + [m for m in models if m not in PAPER_ORDER]


def table(
    results: dict[str, list[dict]],
    which: str,
    kinds: Sequence[str] = MAIN_KINDS,
    onchip: dict[str, dict] | None = None,
) -> list[str]:
    """Markdown lines: models x conditions, macro-F1 of ``which`` ("float", "int8" or "onchip",
    the last from ``onchip``: model -> onchip.json of one seed)."""
    cols = _columns(kinds, with_clean=True)
    lines = _header(cols)
    for m in _ordered(results):
        runs = results[m]
        row = []
        for kind, level in cols:
            if which == "onchip":
                row.append(cell([_onchip_value((onchip or {}).get(m), kind, level)]))
            else:
                row.append(cell([_value(r, kind, level, which) for r in runs]))
        seeds = "1 (seed 0)" if which == "onchip" else str(len(runs))
        lines.append(f"| {PAPER_ORDER.get(m, m)} | {seeds} | " + " | ".join(row) + " |")
    return lines


def targets(results: dict[str, list[dict]], which: str = "float") -> list[dict]:
    """The paper's claims transposed to ULW-SleepNet, each with the figures and met / not met:
    REST(A+S) within 2 points of the baseline's clean macro-F1; at least +10 points over the
    baseline at high Gaussian and at high shot noise; REST(A+S) above REST(A) on the mean over
    the noisy conditions of Table 4. Means over seeds; the spreads are reported beside."""
    out = []
    if "baseline" not in results or "rest_as" not in results:
        return out

    def stat(m: str, kind: str, level: str):
        return spread([_value(r, kind, level, which) for r in results[m]])

    def fmt(s) -> str:
        mean, std, n = s
        if mean is None:
            return "n/a"
        return f"{mean:.3f}" + (f" +- {std:.3f}" if std is not None else "") + f" (n={n})"

    b, r = stat("baseline", "none", "-"), stat("rest_as", "none", "-")
    if b[0] is not None and r[0] is not None:
        out.append(
            {
                "target": "REST(A+S) clean macro-F1 within 2 points of the baseline",
                "figures": f"REST(A+S) {fmt(r)} vs baseline {fmt(b)}",
                "met": r[0] >= b[0] - 0.02,
            }
        )
    for kind in ("gaussian", "shot"):
        b, r = stat("baseline", kind, "high"), stat("rest_as", kind, "high")
        if b[0] is not None and r[0] is not None:
            out.append(
                {
                    "target": f"REST(A+S) at least +10 points over the baseline at high {kind}",
                    "figures": f"REST(A+S) {fmt(r)} vs baseline {fmt(b)} "
                    f"({100 * (r[0] - b[0]):+.1f} points)",
                    "met": r[0] - b[0] >= 0.10,
                }
            )
    if "rest_a" in results:
        noisy = [(k, lev) for k in MAIN_KINDS for lev in LEVELS]

        def noisy_mean(m: str) -> float | None:
            means = [stat(m, k, lev)[0] for k, lev in noisy]
            means = [v for v in means if v is not None]
            return statistics.fmean(means) if means else None

        a, s = noisy_mean("rest_a"), noisy_mean("rest_as")
        if a is not None and s is not None:
            out.append(
                {
                    "target": "REST(A+S) above REST(A) under noise (mean of Table 4's noisy "
                    "columns; the paper's finding on the spectral term)",
                    "figures": f"REST(A+S) {s:.3f} vs REST(A) {a:.3f}",
                    "met": s > a,
                }
            )
    return out


def render(
    results: dict[str, list[dict]], onchip: dict[str, dict] | None = None, title: str = ""
) -> str:
    """The whole Markdown page: Table 4 (paper attack) for float, int8 and on chip, the other
    noise definitions, and the targets."""
    lines = [f"# {title}" if title else "# REST study: macro-F1 under noise", ""]
    labels = {
        r.get("data_provenance", {}).get("label", "data provenance not recorded")
        for runs in results.values()
        for r in runs
    }
    lines += [f"Data: {'; '.join(sorted(labels))}.", ""]
    lines += ["Columns: " + "; ".join(KIND_SOURCES[k] for k in MAIN_KINDS) + ".", ""]
    for which, name in (("float", "float (PyTorch)"), ("int8", "int8 (TFLite Micro)")):
        lines += [f"## Table 4, {name}", "", *table(results, which), ""]
    if onchip:
        lines += ["## Table 4, int8 on chip (emulated board)", ""]
        lines += [*table(results, "onchip", onchip=onchip), ""]
    lines += ["## Other noise definitions (float)", ""]
    lines += ["Columns: " + "; ".join(KIND_SOURCES[k] for k in EXTRA_KINDS) + ".", ""]
    lines += [*table(results, "float", EXTRA_KINDS), ""]
    found = targets(results)
    if found:
        lines += ["## Targets (float)", "", "| target | figures | met |", "|---|---|---|"]
        lines += [
            f"| {t['target']} | {t['figures']} | {'met' if t['met'] else 'NOT met'} |"
            for t in found
        ]
        lines.append("")
    return "\n".join(lines)
