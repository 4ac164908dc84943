"""The REST study's models side by side: what pruning removed and what each costs on chip.

``python -m training study-models --out build/rest/models.md --model NAME=DIR[,REPORT[,BENCH]]``

Per model folder: the DSSC channels kept and removed (of the full model's 112), parameters and
MACs (computed from the model), the converter's int8 weight bytes (flash) and engine activation
RAM (REPORT: ``python -m converter build``'s report.json), the instructions per epoch on the
emulated board (BENCH: ``host_tools bench --json``; inference plus preprocessing; QEMU counts
instructions, not cycles), and the clean test scores of ``metrics.json``. Ratios are taken
against the model named ``baseline``. Every figure is read from those files; a missing file
leaves its cells empty ("-") and says so below the table.
"""

from __future__ import annotations

import json
from pathlib import Path

from .model import ModelConfig, load_model, summary

BASELINE = "baseline"


def channels(config: ModelConfig) -> int:
    """DSSC channels of a model: each block's inner and output width."""
    return sum(config.widths) + sum(config.inner)


def _read(path: str | Path | None) -> dict | None:
    return json.loads(Path(path).read_text()) if path and Path(path).is_file() else None


def row(name: str, model_dir: str | Path, report=None, bench=None) -> dict:
    """One model's figures (None where its file is missing)."""
    model_dir = Path(model_dir)
    model, config = load_model(model_dir)
    s = summary(model)
    metrics = _read(model_dir / "metrics.json") or {}
    conv, b = _read(report), _read(bench)
    return {
        "name": name,
        "folder": str(model_dir),
        "widths": list(model.config.widths),
        "inner": list(model.config.inner),
        "channels": channels(model.config),
        "channels_full": channels(ModelConfig()),
        "params": s["params"],
        "macs": s["macs"],
        "weights_bytes": conv["weights_bytes"] if conv else None,
        "activation_bytes": conv["engine_activation_bytes"] if conv else None,
        "instructions": (b["inference"]["median"] + b["preprocess"]["median"] if b else None),
        "board": b["board"] if b else None,
        "macro_f1": metrics.get("macro_f1"),
        "acc": metrics.get("acc"),
        "kappa": metrics.get("kappa"),
        "data": (config.get("data_provenance") or {}).get("label"),
        "missing": [
            what
            for what, path in (("converter report", report), ("bench", bench))
            if _read(path) is None
        ],
    }


def _num(v, fmt: str = ",", unit: str = "") -> str:
    return "-" if v is None else format(v, fmt) + unit


def _ratio(v, ref) -> str:
    return "" if v is None or ref is None or v == ref else f" ({ref / v:.2f}x fewer)"


def render(rows: list[dict]) -> str:
    base = next((r for r in rows if r["name"] == BASELINE), None)

    def ref(key: str):
        return base[key] if base else None

    out = [
        "| model | DSSC widths (inner) | channels removed | params | MACs / epoch | weights "
        "(flash) | engine activation RAM | instructions / epoch | clean macro-F1 | ACC | kappa |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        removed = r["channels_full"] - r["channels"]
        out.append(
            f"| {r['name']} | {'/'.join(map(str, r['widths']))} "
            f"({'/'.join(map(str, r['inner']))}) | {removed} of {r['channels_full']} "
            f"({removed / r['channels_full']:.1%}) | {r['params']:,} | "
            f"{r['macs']:,}{_ratio(r['macs'], ref('macs'))} | "
            f"{_num(r['weights_bytes'], ',', ' B')} | {_num(r['activation_bytes'], ',', ' B')} | "
            f"{_num(r['instructions'])}{_ratio(r['instructions'], ref('instructions'))} | "
            + " | ".join(_num(r[k], ".3f") for k in ("macro_f1", "acc", "kappa"))
            + " |"
        )
    data = sorted({r["data"] or "data not recorded" for r in rows})
    out += [
        "",
        f"Data: {'; '.join(data)}. Clean scores: all epochs of the test subjects, pooled "
        "(metrics.json). Instructions per epoch: inference + preprocessing on the emulated "
        "board (QEMU counts instructions, not cycles).",
    ]
    out += [f"- {r['name']}: no {', no '.join(r['missing'])}" for r in rows if r["missing"]]
    return "\n".join(out) + "\n"


def write(out: str | Path, specs: list[tuple[str, str, str | None, str | None]]) -> list[dict]:
    """Writes OUT (Markdown) and OUT with .json for ``specs`` of (name, folder, report, bench)."""
    rows = [row(*spec) for spec in specs]
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render(rows))
    out.with_suffix(".json").write_text(json.dumps(rows, indent=1) + "\n")
    return rows
