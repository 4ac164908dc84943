"""``host_tools calibrate``: fit the memory model's stalls to cycles measured on a real board.

The real board measures cycles per layer (DWT CYCCNT, ``host_tools bench --port URL --json``).
The emulated board, running the same model on the same epochs under the trace plugin, gives each
layer's core cycles (timing table, ideal memory) and its cache misses in the board's memory
setting. Per layer,

    measured - core = seq_miss_cycles x sequential I-misses + nonseq_miss_cycles x other
                      I-misses + dmiss_cycles x D-misses

is solved by least squares over the layers, the stalls kept non-negative. The fitted setting is
written as a board profile (memory.ini's form) that `bench --cycles --memory-profile FILE` and
the stream reports then use."""

from __future__ import annotations

import datetime as dt
import itertools
import json
from dataclasses import replace
from pathlib import Path

import numpy as np

from .errors import CyclesError
from .memory import STALL_KEYS, MemorySetting, load_settings, write_profile


def read_measured(path: str | Path) -> dict:
    """A real board's ``host_tools bench --json`` output (counts must be cycles)."""
    path = Path(path)
    try:
        m = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise CyclesError(f"{path}: not a bench --json file ({e})") from None
    for key in ("counter_kind", "per_layer", "epochs"):
        if key not in m:
            raise CyclesError(f"{path}: no {key!r}: not a `host_tools bench --json` output")
    if m["counter_kind"] != "cycles":
        raise CyclesError(
            f"{path}: its counts are {m['counter_kind']}, not cycles: calibrate against a real "
            "board's DWT cycle counts (host_tools bench --port URL --json)"
        )
    return m


def nonnegative_lstsq(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """min |a x - b| with x >= 0, for the few columns here: the best unconstrained solution over
    every subset of columns that comes out non-negative."""
    best, best_res = np.zeros(a.shape[1]), float(np.sum(b**2))
    cols = range(a.shape[1])
    for k in range(1, a.shape[1] + 1):
        for subset in itertools.combinations(cols, k):
            sub = a[:, subset]
            if np.linalg.matrix_rank(sub) < k:
                continue
            x, *_ = np.linalg.lstsq(sub, b, rcond=None)
            if np.any(x < 0):
                continue
            res = float(np.sum((sub @ x - b) ** 2))
            if res < best_res:
                best_res, best = res, np.zeros(a.shape[1])
                best[list(subset)] = x
    return best


def fit(measured: dict, estimate: dict, base: MemorySetting) -> tuple[MemorySetting, list[dict]]:
    """The setting ``base`` with its stalls fitted to ``measured`` (bench --json of the real
    board) from ``estimate`` (the emulated board's estimate_epochs of the same epochs); and the
    per-layer table: measured, estimated before and after."""
    m_layers, e_layers = measured["per_layer"], estimate["per_layer"]
    if len(m_layers) != len(e_layers):
        raise CyclesError(
            f"the real board reports {len(m_layers)} layers, the emulated board {len(e_layers)}: "
            "not the same model"
        )
    ideal, name = "ideal", base.name
    core = np.array([e["cycles"][ideal] for e in e_layers], float)
    misses = np.array(
        [
            [
                e["cache_misses"]["instruction_sequential"],
                e["cache_misses"]["instruction_other"],
                e["cache_misses"]["data"],
            ]
            for e in e_layers
        ],
        float,
    )
    cycles = np.array([m["count"] for m in m_layers], float)
    stalls = nonnegative_lstsq(misses, cycles - core)
    values = (round(float(x), 3) for x in stalls)
    fitted = replace(base, **dict(zip(STALL_KEYS, values, strict=True)))
    after = core + misses @ stalls
    rows = [
        {
            "layer": e["layer"],
            "measured": int(c),
            "estimate_before": e["cycles"][name],
            "estimate_after": round(float(a)),
            "error_before": round(e["cycles"][name] / c - 1, 4) if c else None,
            "error_after": round(float(a) / c - 1, 4) if c else None,
        }
        for e, c, a in zip(e_layers, cycles, after, strict=True)
    ]
    return fitted, rows


def calibrate(
    measured: dict, estimate: dict, *, setting: str = "nucleo-l476rg", out: str | Path
) -> dict:
    """Fit, write the board profile ``out``, and return what to print."""
    settings = load_settings()
    if setting not in settings:
        raise CyclesError(f"no memory setting {setting!r}; known: {sorted(settings)}")
    fitted, rows = fit(measured, estimate, settings[setting])
    fitted = replace(fitted, description=f"{fitted.description} (calibrated)")
    comment = (
        f"Board profile written by host_tools calibrate, {dt.date.today().isoformat()}:\n"
        f"stalls fitted to {measured.get('board')} cycles over {len(rows)} layers, "
        f"{measured['epochs']} epochs.\nUse: host_tools bench --cycles --memory-profile {out}"
    )
    write_profile(out, fitted, comment)
    return {"setting": fitted.to_dict(), "layers": rows, "profile": str(out)}


def render(r: dict) -> str:
    s = r["setting"]
    lines = [
        f"{s['name']}: " + ", ".join(f"{k} {s[k]:g}" for k in STALL_KEYS),
        "",
        f"{'layer':<40}{'measured':>12}{'before':>12}{'error':>8}{'after':>12}{'error':>8}",
    ]
    for row in r["layers"]:
        eb, ea = row["error_before"], row["error_after"]
        lines.append(
            f"{row['layer'][:39]:<40}{row['measured']:>12,}{row['estimate_before']:>12,}"
            f"{'' if eb is None else f'{eb:+.1%}':>8}{row['estimate_after']:>12,}"
            f"{'' if ea is None else f'{ea:+.1%}':>8}"
        )
    lines.append(f"board profile: {r['profile']}")
    return "\n".join(lines)
