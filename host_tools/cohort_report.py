"""A cohort's outputs, from its nights' run folders (``host_tools.cohort``): ``report.json`` and
``report.md`` (one row per night, pooled metrics over all streamed epochs and per-night mean and
spread, each labelled), ``results.csv`` (every night's rows, a ``night`` column first) and
``cohort.png`` (per-night kappa and bit-exactness, the pooled confusion matrix).
``host_tools report COHORT_DIR`` renders them again."""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import numpy as np

from sleepdata import provenance
from sleepdata.metrics import scores

from . import runfolder as rf
from .cohort import COHORT_JSON, NIGHTS

COHORT_PLOT = "cohort.png"
METRICS = ("acc", "macro_f1", "kappa")


def is_cohort(folder: str | Path) -> bool:
    return (Path(folder) / COHORT_JSON).is_file()


def _night_row(night: dict, folder: Path) -> tuple[dict, rf.Results | None]:
    row = {k: night[k] for k in ("name", "psg", "status", "error", "board", "wall_s")}
    if night["status"] != "done":
        return row, None
    r = json.loads((folder / rf.REPORT_JSON).read_text())
    res = rf.read_results(folder / rf.RESULTS)
    row.update(
        epochs=len(res),
        bitexact=float(res.bitexact.mean()),
        onchip={k: r["onchip_vs_expert"][k] for k in METRICS},
        float={k: r["float_vs_expert"][k] for k in METRICS},
        counter_kind=r["counter_kind"],
        count_median=r["count_per_epoch_median"],
        data=(r["recording"].get("data_provenance") or {}).get("data"),
    )
    return row, res


def _spread(values: list[float | None]) -> dict | None:
    """Mean and sample std (ddof 1) over the nights where the figure is defined."""
    v = [x for x in values if x is not None]
    if not v:
        return None
    return {"mean": statistics.fmean(v), "std": statistics.stdev(v) if len(v) > 1 else 0.0,
            "nights": len(v)}  # fmt: skip


def build_cohort_report(out: str | Path) -> dict:
    out = Path(out)
    state = json.loads((out / COHORT_JSON).read_text())
    rows, done = [], []
    for night in state["nights"]:
        row, res = _night_row(night, out / NIGHTS / night["name"])
        rows.append(row)
        if res is not None:
            done.append(res)
    pooled = None
    if done:
        expert = np.concatenate([r.expert for r in done])
        onchip = np.concatenate([r.onchip for r in done])
        flt = np.concatenate([r.float_stage for r in done])
        bitexact = np.concatenate([r.bitexact for r in done])
        pooled = {
            "epochs": int(expert.size),
            "bitexact": float(bitexact.mean()),
            "onchip_vs_expert": scores(expert, onchip),
            "float_vs_expert": scores(expert, flt),
        }
    ok = [r for r in rows if r["status"] == "done"]
    prov = provenance.describe([r["psg"] for r in ok]) if ok else None
    sessions = state.get("sessions", [])
    streamed = sum(x["epochs"] for x in sessions)
    wall = sum(x["wall_s"] for x in sessions)
    return {
        "nights": rows,
        "nights_done": len(ok),
        "nights_failed": sum(r["status"] == "failed" for r in rows),
        "nights_pending": sum(r["status"] == "pending" for r in rows),
        "boards": state["boards"],
        "boards_gone": state.get("boards_gone", []),
        "data_provenance": prov,
        "pooled": pooled,
        "pooled_note": "every streamed epoch of the finished nights scored together",
        "per_night": {
            who: {k: _spread([r[who][k] for r in ok]) for k in METRICS}
            for who in ("onchip", "float")
        },
        "per_night_note": "mean and sample std (ddof 1) over the finished nights, each night "
        "scored on its own",
        "bitexact_per_night": _spread([r["bitexact"] for r in ok]),
        "sessions": sessions,
        "epochs_streamed": streamed,
        "wall_s": wall,
        "epochs_per_s": streamed / wall if wall > 0 else None,
        "host_cpu_ms_per_epoch": 1000 * sum(x["cpu_s"] for x in sessions) / streamed
        if streamed
        else None,
        "throughput_note": "over every session of the cohort: epochs streamed / wall seconds, "
        "all boards together; host CPU counts every thread of the host process",
    }


def write_cohort_outputs(out: str | Path, *, figure: bool = True) -> dict:
    """report.json, report.md, results.csv and (``figure``) cohort.png of the cohort in out."""
    out = Path(out)
    report = build_cohort_report(out)
    tmp = out / (rf.REPORT_JSON + ".part")
    tmp.write_text(json.dumps(report, indent=1) + "\n")
    tmp.replace(out / rf.REPORT_JSON)
    (out / rf.REPORT_MD).write_text(render_cohort_markdown(report))
    _write_results(out, [r["name"] for r in report["nights"] if r["status"] == "done"])
    if figure and report["pooled"] is not None:
        from sleepdata.plots import plot_cohort

        ok = [r for r in report["nights"] if r["status"] == "done"]
        plot_cohort(
            out / COHORT_PLOT,
            [r["name"] for r in ok],
            [r["onchip"]["kappa"] for r in ok],
            [r["float"]["kappa"] for r in ok],
            [r["bitexact"] for r in ok],
            report["pooled"]["onchip_vs_expert"]["confusion"],
            title=f"{len(ok)} nights ({report['data_provenance']['label']})",
        )
    return report


def _write_results(out: Path, names: list[str]) -> None:
    """Every finished night's results.csv rows, a night column first, atomically."""
    tmp = out / (rf.RESULTS + ".part")
    with open(tmp, "w") as f:
        f.write("night," + ",".join(rf.RESULT_COLUMNS) + "\n")
        for name in names:
            lines = (out / NIGHTS / name / rf.RESULTS).read_text().splitlines()
            for line in lines[1:]:
                if line.strip():
                    f.write(f"{name},{line}\n")
    tmp.replace(out / rf.RESULTS)


def _f(v, fmt: str = ".3f") -> str:
    return "n/a" if v is None else format(v, fmt)


def _pm(s: dict | None) -> str:
    return "n/a" if s is None else f"{s['mean']:.3f} +- {s['std']:.3f}"


def render_cohort_markdown(r: dict) -> str:
    label = r["data_provenance"]["label"] if r["data_provenance"] else "no finished night"
    lines = [
        "# Cohort",
        "",
        f"{len(r['nights'])} nights: {r['nights_done']} done, {r['nights_failed']} failed, "
        f"{r['nights_pending']} pending; boards {', '.join(r['boards'])}. Data: {label}.",
        "",
        "| night | status | epochs | bit-exact | on-chip ACC | macro-F1 | kappa | float kappa "
        "| wall s | board |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for n in r["nights"]:
        if n["status"] == "done":
            o = n["onchip"]
            lines.append(
                f"| {n['name']} | done | {n['epochs']:,} | {n['bitexact']:.4f} | {_f(o['acc'])} "
                f"| {_f(o['macro_f1'])} | {_f(o['kappa'])} | {_f(n['float']['kappa'])} "
                f"| {_f(n['wall_s'], '.1f')} | {n['board']} |"
            )
        else:
            lines.append(f"| {n['name']} | {n['status']} | | | | | | | | {n['board'] or ''} |")
    failed = [n for n in r["nights"] if n["status"] == "failed"]
    if failed:
        lines += [
            "",
            "Failed nights:",
            *[f"- {n['name']} ({n['psg']}): {n['error']}" for n in failed],
        ]
    for g in r["boards_gone"]:
        lines.append(f"- board {g['board']} could not be opened: {g['error']}")
    p = r["pooled"]
    if p is not None:
        lines += [
            "",
            f"Pooled ({r['pooled_note']}; {p['epochs']:,} epochs): bit-exact {p['bitexact']:.4f}",
            "",
            "| | ACC | macro-F1 | kappa |",
            "|---|---|---|---|",
        ]
        for who, key in (("on-chip", "onchip_vs_expert"), ("float", "float_vs_expert")):
            s = p[key]
            lines.append(
                f"| {who} vs expert, pooled | {_f(s['acc'])} | {_f(s['macro_f1'])} "
                f"| {_f(s['kappa'])} |"
            )
        for who, key in (("on-chip", "onchip"), ("float", "float")):
            s = r["per_night"][key]
            lines.append(
                f"| {who} vs expert, per night | {_pm(s['acc'])} | {_pm(s['macro_f1'])} "
                f"| {_pm(s['kappa'])} |"
            )
        lines += ["", f"Per night: {r['per_night_note']}."]
    if r["epochs_per_s"] is not None:
        lines += [
            "",
            f"Throughput: {r['epochs_streamed']:,} epochs in {r['wall_s']:.1f} s, "
            f"{r['epochs_per_s']:.2f} epochs/s; host CPU {r['host_cpu_ms_per_epoch']:.1f} ms "
            f"per epoch ({r['throughput_note']}).",
        ]
    return "\n".join(lines) + "\n"
