"""Layer 3 operation: counts of N inferences on fixed simulated epochs, whole network and per
layer, with their kind (instructions on emulated boards, cycles on real ones)."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

import numpy as np

from .device import Device
from .protocol import CounterKind
from .reference import MODEL_DIR, ModelFiles

REPO = Path(__file__).resolve().parents[1]


def layer_names() -> list[str]:
    """Layer names of the committed generated model (firmware/engine/model/engine_model.c)."""
    text = (REPO / "firmware" / "engine" / "model" / "engine_model.c").read_text()
    start = text.index("engine_model_layer_names")
    block = text[start : text.index("};", start)]
    return re.findall(r'"([^"]+)"', block)


def fixed_epochs(n: int, seed: int = 0) -> np.ndarray:
    """n int16 wire epochs (n, 3000, 4) from a simulated night of a generated subject."""
    from sleepdata.normalise import Normaliser
    from sleepdata.psg import load_recording, pair_for
    from sleepdata.simulator import simulate_generated

    norm = Normaliser.from_dict(ModelFiles.load(MODEL_DIR).config["normalisation"])
    with tempfile.TemporaryDirectory() as tmp:
        ((psg, hyp),) = simulate_generated(tmp, 1, seed=seed)
        rec = load_recording(pair_for(psg, hyp))
    idx = np.linspace(0, len(rec) - 1, n).astype(int)  # spread over the night
    return norm.to_wire(rec.epochs[idx]).transpose(0, 2, 1).copy()


def bench(dev: Device, n: int, seed: int = 0) -> dict:
    info = dev.hello()
    dev.reset_stream()
    dev.set_profile(True)
    counts, layers = [], None
    for i, epoch in enumerate(fixed_epochs(n, seed)):
        r = dev.send_epoch(i, epoch)
        counts.append((r.preprocess_count, r.inference_count))
        layers = np.array(dev.layer_counts) if layers is None else layers + dev.layer_counts
    dev.set_profile(False)
    pre, inf = np.array(counts).T
    macs = int(layers[:, 1].sum() // n)
    kind = CounterKind(info.counter_kind).name.lower()
    names = layer_names()
    per_layer = [
        {
            "layer": names[i] if i < len(names) else str(i),
            "count": int(c // n),
            "macs": int(m // n),
            "per_mac": round(float(c) / m, 2) if m else None,
        }
        for i, (c, m) in enumerate(layers)
    ]
    return {
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


def _stats(x: np.ndarray) -> dict:
    return {"min": int(x.min()), "median": int(np.median(x)), "max": int(x.max())}


def render(b: dict) -> str:
    k = b["counter_kind"]
    lines = [
        f"{b['board']}: {b['epochs']} epochs, counts are {k}",
        f"inference  min {b['inference']['min']:,}  median {b['inference']['median']:,}  "
        f"max {b['inference']['max']:,}  ({b[f'{k}_per_mac']} {k} per MAC, "
        f"{b['macs']:,} MACs)",
        f"preprocess min {b['preprocess']['min']:,}  median {b['preprocess']['median']:,}  "
        f"max {b['preprocess']['max']:,}",
        "",
        f"{'layer':<44}{k:>14}{'MACs':>12}{'per MAC':>9}",
    ]
    for row in b["per_layer"]:
        per = "" if row["per_mac"] is None else f"{row['per_mac']:.2f}"
        lines.append(f"{row['layer']:<44}{row['count']:>14,}{row['macs']:>12,}{per:>9}")
    return "\n".join(lines)
