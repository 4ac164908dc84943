"""Tables and plots of a noise-robustness evaluation, without the training stack.

A robustness result is the ``results.json`` of ``python -m training robustness``: its
``conditions`` list holds one dict per noise condition with ``kind`` ("none", "none (attack
subset)", "gaussian", "gaussian-mean", "shot", "adversarial <attack>"), ``level`` ("-", "low",
"med", "high"), ``value`` (the noise parameter; uV of Fpz-Cz for attacks), ``n_epochs`` and the
scores of the ``float`` and (when measured) ``int8`` models (``acc``, ``macro_f1``, ``kappa``,
``per_class_f1``). An on-chip result is the ``onchip.json`` of ``host_tools robustness``: the
same conditions with the board's scores under ``onchip``.

``render_table`` writes the Markdown macro-F1 table in the shape of REST's Table 4 (Duggal et
al., WWW 2020, https://arxiv.org/abs/2001.11363), ``plot_macro_f1`` the macro-F1-versus-noise
figure, ``compare`` both over several runs. Used by ``python -m training robustness`` /
``robustness-table`` and by ``host_tools robustness``; matplotlib is imported only to plot.
"""

from __future__ import annotations

import json
from pathlib import Path

from . import provenance, rest_table
from .metrics import format_metric

#: The file ``host_tools robustness`` writes its on-chip scores to.
ONCHIP_JSON = "onchip.json"


def condition_label(c: dict) -> str:
    """The table's row name of condition ``c``, e.g. "gaussian high (0.3)"."""
    if c["kind"] == "none":
        return "no noise"
    if c["kind"] == "none (attack subset)":
        return "no noise (attack subset)"
    if c["kind"].startswith("adversarial"):
        return f"{c['kind']} {c['level']} (eps {c['value']:g} uV)"
    return f"{c['kind']} {c['level']} ({c['value']:g})"


def _cell(c: dict, which: str, key: str) -> str:
    return format_metric(c[which][key]) if which in c else "-"


def _f1(c: dict, which: str) -> str:
    return _cell(c, which, "macro_f1")


def onchip_cell(onchip: dict | None, c: dict) -> str:
    """The on-chip macro-F1 of condition ``c`` (a results.json condition), "(N)" added when
    the chip saw fewer epochs than the host; "-" when not measured."""
    if not onchip:
        return "-"
    key = (c["kind"], c["level"], c["value"])
    for o in onchip.get("conditions", []):
        if (o["kind"], o["level"], o["value"]) == key and o.get("onchip"):
            f1 = format_metric(o["onchip"]["macro_f1"])
            return f1 if o["n_epochs"] >= c["n_epochs"] else f"{f1} ({o['n_epochs']:,})"
    return "-"


def render_table(
    results: dict[str, dict],
    *,
    models: bool = True,
    on_chip: bool = True,
    onchip: dict[str, dict | None] | None = None,
) -> str:
    """Markdown macro-F1 table in the shape of REST's Table 4: one row per condition. With
    ``models`` the columns are model variants (float | int8 each); otherwise one model's float
    and int8 columns (``results`` maps a column name to the same result). ``onchip`` maps a
    name of ``results`` to its ``host_tools robustness`` onchip.json (or None): its on-chip
    macro-F1 fills the "on chip" column, followed by "(N)" where it was measured on fewer
    epochs than the host figures; "-" where not measured."""
    onchip = onchip or {}
    if models:
        names = list(results)
        head = "| condition | epochs | " + " | ".join(f"{n} float | {n} int8" for n in names)
        head += (" | " + " | ".join(f"{n} on chip" for n in names)) if on_chip else ""
        ncol = 2 + 2 * len(names) + (len(names) if on_chip else 0)
        lines = [head + " |", "|" + "---|" * ncol]
        for k, c0 in enumerate(results[names[0]]["conditions"]):
            cells = []
            for n in names:
                c = results[n]["conditions"][k]
                cells += [_f1(c, "float"), _f1(c, "int8")]
            if on_chip:
                cells += [onchip_cell(onchip.get(n), results[n]["conditions"][k]) for n in names]
            lines.append(
                f"| {condition_label(c0)} | {c0['n_epochs']:,} | " + " | ".join(cells) + " |"
            )
        return "\n".join(lines) + "\n"
    res = next(iter(results.values()))
    chip = next(iter(onchip.values()), None)
    lines = [
        "| condition | epochs | float macro-F1 | int8 macro-F1 (TFLM) | float ACC | int8 ACC "
        "| float kappa | int8 kappa | on chip macro-F1 |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for c in res["conditions"]:
        lines.append(
            f"| {condition_label(c)} | {c['n_epochs']:,} | {_f1(c, 'float')} | {_f1(c, 'int8')} | "
            f"{_cell(c, 'float', 'acc')} | {_cell(c, 'int8', 'acc')} | "
            f"{_cell(c, 'float', 'kappa')} | {_cell(c, 'int8', 'kappa')} | {onchip_cell(chip, c)} |"
        )
    return "\n".join(lines) + "\n"


def find_onchip(run: str | Path, given: str | Path | None = None) -> dict | None:
    """The onchip.json of ``host_tools robustness`` for the robustness run ``run``: ``given``
    (the file or its folder), else RUN/onchip.json, else RUN/onchip/onchip.json; None when
    there is none (and ``given`` is None)."""
    if given is not None:
        path = Path(given)
        path = path / ONCHIP_JSON if path.is_dir() else path
        if not path.is_file():
            raise FileNotFoundError(f"{path} does not exist (host_tools robustness writes it)")
        return json.loads(path.read_text())
    for path in (Path(run) / ONCHIP_JSON, Path(run) / "onchip" / ONCHIP_JSON):
        if path.is_file():
            return json.loads(path.read_text())
    return None


def _noise_kinds(result: dict) -> list[str]:
    """The noisy condition kinds of a result, in the order it lists them."""
    kinds: list[str] = []
    for c in result["conditions"]:
        if not c["kind"].startswith("none") and c["kind"] not in kinds:
            kinds.append(c["kind"])
    return kinds


def data_label(results) -> str:
    """Where the results' nights came from, as they record it (``sleepdata.provenance``)."""
    labels = {provenance.of_result(r) or "data provenance not recorded" for r in results}
    return "; ".join(sorted(labels))


def plot_macro_f1(path: Path, results: dict[str, dict]) -> None:
    """Macro-F1 versus noise level, PNG at ``path``: one panel per noise kind of the first
    result, one colour per result (name -> results.json), solid float, dashed int8. Attacks
    start from the attack subset's clean score, the other kinds from the main subset's."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kinds = _noise_kinds(next(iter(results.values())))
    fig, axes = plt.subplots(
        1, len(kinds), figsize=(4 * len(kinds), 3.6), sharey=True, squeeze=False
    )
    axes = axes[0]
    for ax, kind in zip(axes, kinds, strict=True):
        for k, (name, res) in enumerate(results.items()):
            cond = {c["kind"]: c for c in res["conditions"] if c["kind"].startswith("none")}
            base = cond["none (attack subset)" if kind.startswith("adv") else "none"]
            pts = [base] + [c for c in res["conditions"] if c["kind"] == kind]
            xs = ["none", *(p["level"] for p in pts[1:])]
            for which, style in (("float", "-"), ("int8", "--")):
                if which in base:
                    ax.plot(
                        xs,
                        [p[which]["macro_f1"] for p in pts],
                        style,
                        marker="o",
                        color=f"C{k}",
                        label=f"{name} {which}",
                    )
        ax.set_title(kind)
        ax.set_xlabel("noise level")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("macro-F1")
    axes[0].set_ylim(0, 1)
    axes[-1].legend(fontsize=7)
    fig.suptitle(f"macro-F1 under noise ({data_label(results.values())})", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def compare(
    runs: dict[str, str | Path | list[str | Path]],
    out: str | Path,
    onchip: dict[str, str | Path] | None = None,
) -> str:
    """One table and one plot over several ``robustness`` output folders (name -> folder, or
    a list of folders: the model's training seeds), written to OUT/table.md and
    OUT/macro_f1.png (first seed of each model), and the study's Table 4 with mean +- std over
    seeds to OUT/study.md; returns table.md. The "on chip" columns come from ``onchip`` (name
    -> onchip.json or its folder, written by ``host_tools robustness``), else from each
    model's first run's onchip.json or onchip/onchip.json."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    onchip = onchip or {}
    unknown = sorted(set(onchip) - set(runs))
    if unknown:
        raise ValueError(f"--onchip {unknown[0]}=...: no --run of that name")
    folders = {n: [d] if isinstance(d, str | Path) else list(d) for n, d in runs.items()}
    seeds = {
        n: [json.loads((Path(d) / "results.json").read_text()) for d in ds]
        for n, ds in folders.items()
    }
    results = {n: rs[0] for n, rs in seeds.items()}
    chips = {n: find_onchip(ds[0], onchip.get(n)) for n, ds in folders.items()}
    shapes = {
        json.dumps([(c["kind"], c["level"], c["n_epochs"]) for c in r["conditions"]])
        for rs in seeds.values()
        for r in rs
    }
    if len(shapes) != 1:
        raise ValueError("the robustness runs differ in conditions or epoch subsets")
    table = render_table(results, onchip=chips)
    (out / "table.md").write_text(table)
    (out / "study.md").write_text(
        rest_table.render(seeds, {n: c for n, c in chips.items() if c}) + "\n"
    )
    plot_macro_f1(out / "macro_f1.png", results)
    return table
