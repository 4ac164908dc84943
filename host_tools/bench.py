"""Layer 3 operation: counts of N inferences on fixed epochs (spread over a simulated night, or
over a recording the user names), whole network and per layer, with their kind (instructions on
emulated boards, cycles on real ones)."""

from __future__ import annotations

import importlib.util
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np

from .device import Device
from .protocol import EVENT_NAMES, CounterKind
from .reference import ModelFiles


class BenchError(Exception):
    """The benchmark cannot get its input epochs; says what to pass instead."""


def fixed_epochs(
    model: ModelFiles, n: int, seed: int = 0, psg: str | Path | None = None
) -> np.ndarray:
    """n int16 wire epochs (n, 3000, 4) spread over a night, converted with ``model``'s
    normalisation: the recording ``psg`` (its hypnogram found beside it), or by default a
    simulated night of a generated subject (the simulator needs scipy, which ``.[host]`` lacks)."""
    from sleepdata.normalise import Normaliser
    from sleepdata.psg import load_recording, pair_for

    norm = Normaliser.from_dict(model.config["normalisation"])
    if psg is not None:
        rec = load_recording(pair_for(psg))
    elif importlib.util.find_spec("scipy") is None:
        raise BenchError(
            "bench needs input epochs: pass --psg NIGHT.edf (the default simulated night needs "
            "scipy: pip install 'ulw-sleepnet-mcu[simulate]')"
        )
    else:
        from sleepdata.simulator import simulate_generated

        with tempfile.TemporaryDirectory() as tmp:
            ((night, hyp),) = simulate_generated(tmp, 1, seed=seed)
            rec = load_recording(pair_for(night, hyp))
    idx = np.linspace(0, len(rec) - 1, n).astype(int)  # spread over the night
    return norm.to_wire(rec.epochs[idx]).transpose(0, 2, 1).copy()


def bench(
    dev: Device,
    n: int | None = None,
    seed: int = 0,
    model: ModelFiles | None = None,
    psg: str | Path | None = None,
    *,
    epochs: np.ndarray | None = None,
    record: list | None = None,
    events: bool = False,
) -> dict:
    """Counts of ``n`` inferences on the board; ``model`` (default: the shipped model folder)
    gives the input normalisation and, when the board runs that model, the layer names; ``psg``
    the recording whose epochs are used (default: a simulated night), or ``epochs`` the wire
    epochs themselves (from fixed_epochs; then ``n`` is their number). ``record``, if given,
    receives each epoch's (inference count, per-layer counts). ``events``: the DWT event
    counters per layer too (real boards; DeviceError naming a board without them)."""
    model = model or ModelFiles.load()
    if epochs is None:
        if n is None:
            raise BenchError("bench: give the number of epochs or the epochs themselves")
        epochs = fixed_epochs(model, n, seed, psg)
    n = len(epochs)
    info = dev.hello()
    dev.reset_stream()
    dev.set_profile(True, events=events)
    counts, layers, ev, late = [], None, None, 0
    for i, epoch in enumerate(epochs):
        r = dev.send_epoch(i, epoch)
        counts.append((r.preprocess_count, r.inference_count))
        if record is not None:
            record.append((r.inference_count, [c for c, _ in dev.layer_counts]))
        layers = np.array(dev.layer_counts) if layers is None else layers + dev.layer_counts
        if events:
            e = dev.event_counts
            ev = np.array(e.layers) if ev is None else ev + e.layers
            late += e.late
    dev.set_profile(False)
    pre, inf = np.array(counts).T
    macs = int(layers[:, 1].sum() // n)
    kind = CounterKind(info.counter_kind).name.lower()
    # another model's layer names would mislabel the rows: those are only numbered
    named = model if info.model_hash == model.model_hash else replace(model, layers=None)
    names = named.layer_names(len(layers))
    per_layer = [
        {
            "layer": names[i],
            "count": int(c // n),
            "macs": int(m // n),
            "per_mac": round(float(c) / m, 2) if m else None,
        }
        for i, (c, m) in enumerate(layers)
    ]
    out = {
        "board": info.board,
        "counter_kind": kind,
        "core_clock_hz": info.core_clock_hz,
        "epochs": n,
        "inference": _stats(inf),
        "preprocess": _stats(pre),
        "macs": macs,
        f"{kind}_per_mac": round(float(np.median(inf)) / macs, 2),
        "per_layer": per_layer,
    }
    if ev is not None:  # per-epoch means, the sampler's own events subtracted by the board
        out["events"] = {
            "late": late,
            "per_layer": [
                {
                    "layer": names[i],
                    **{k: int(v // n) for k, v in zip(EVENT_NAMES, row, strict=True)},
                }
                for i, row in enumerate(ev)
            ],
        }
    if named.model_macs is not None:  # the graph computes fewer MACs than the trained network
        out["model_macs"] = named.model_macs
        out[f"{kind}_per_model_mac"] = round(float(np.median(inf)) / named.model_macs, 2)
    return out


def _stats(x: np.ndarray) -> dict:
    return {"min": int(x.min()), "median": int(np.median(x)), "max": int(x.max())}


def render(b: dict) -> str:
    k = b["counter_kind"]
    lines = [
        f"{b['board']}: {b['epochs']} epochs, counts are {k}",
        f"inference  min {b['inference']['min']:,}  median {b['inference']['median']:,}  "
        f"max {b['inference']['max']:,}  ({b[f'{k}_per_mac']} {k} per MAC, "
        f"{b['macs']:,} MACs computed)",
        f"preprocess min {b['preprocess']['min']:,}  median {b['preprocess']['median']:,}  "
        f"max {b['preprocess']['max']:,}",
    ]
    if "model_macs" in b:
        lines.insert(
            2,
            f"           {b[f'{k}_per_model_mac']} {k} per MAC of the trained network "
            f"({b['model_macs']:,} MACs; the int8 graph composes its shortcut streams)",
        )
    lines += [
        "",
        f"{'layer':<44}{k:>14}{'MACs':>12}{'per MAC':>9}",
    ]
    for row in b["per_layer"]:
        per = "" if row["per_mac"] is None else f"{row['per_mac']:.2f}"
        lines.append(f"{row['layer']:<44}{row['count']:>14,}{row['macs']:>12,}{per:>9}")
    if "events" in b:
        lines += ["", "DWT events per layer and epoch (sampler's own events subtracted)"]
        if b["events"]["late"]:
            lines.append(
                f"WARNING: {b['events']['late']} sampler intervals were late: a counter may have "
                "wrapped unseen there, so some totals may be short"
            )
        lines.append(f"{'layer':<44}" + "".join(f"{k.upper():>11}" for k in EVENT_NAMES))
        for row in b["events"]["per_layer"]:
            lines.append(f"{row['layer']:<44}" + "".join(f"{row[k]:>11,}" for k in EVENT_NAMES))
    return "\n".join(lines)
