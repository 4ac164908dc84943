"""``host_tools bench --cycles``: Cortex-M4 cycles estimated from the exact instruction stream the
emulated board executes for each epoch. The board runs under the trace plugin; the trace's
instruction counts are checked equal to the board's own counts, epoch by epoch and layer by layer
(else it is an error), and then timed (timing.py) under each memory setting (memory.ini).

An estimate, never a measurement: it cannot know bus contention, cache behaviour beyond the
model, interrupt latency, or the operand-dependent division time (docs/cycles.md)."""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from .elfimage import ElfImage
from .errors import CyclesError
from .memory import MemorySetting, load_settings
from .plugin import PROFILE_COUNTS, build_plugin, qemu_args, write_config
from .timing import MIX, Cycles, Decoder, Table, Timer
from .trace import check, epoch_windows, read_trace

LABEL = (
    "estimated cycles: the emulated board's exact instruction stream timed with the Cortex-M4 "
    "TRM's instruction timings and a memory model; not measured"
)


def trace_geometry(settings: dict[str, MemorySetting]) -> MemorySetting:
    """The setting whose caches the trace simulates: every setting with caches must agree."""
    cached = [s for s in settings.values() if s.icache_lines or s.dcache_lines]
    if not cached:
        return next(iter(settings.values()))
    shapes = {s.geometry for s in cached}
    if len(shapes) > 1:
        names = ", ".join(s.name for s in cached)
        raise CyclesError(f"memory settings {names} simulate different caches: estimate each alone")
    return cached[0]


def run_traced(dev, epochs: np.ndarray) -> tuple[list[tuple[int, list[int] | None]], list[int]]:
    """Each epoch twice: per-layer profiling off (the inference exactly as a stream runs it) and
    on (its layers; the profiling adds a few instructions per layer). The board's counts, in the
    order the trace holds the inferences, and the MACs of each layer."""
    if not len(epochs):
        raise CyclesError("the estimate needs at least one epoch")
    dev.reset_stream()
    counts: list[tuple[int, list[int] | None]] = []
    macs: list[int] = []
    for i, epoch in enumerate(epochs):
        for profiled in (False, True):
            dev.set_profile(profiled)
            r = dev.send_epoch(2 * i + profiled, epoch)
            layers = [c for c, _ in dev.layer_counts] if profiled else None
            counts.append((r.inference_count, layers))
            if profiled:
                macs = [m for _, m in dev.layer_counts]
    dev.set_profile(False)
    return counts, macs


def estimate_epochs(
    epochs: np.ndarray,
    *,
    board: str = "emu-m4",
    elf: Path | None = None,
    model=None,
    model_dir: str | Path | None = None,
    settings: dict[str, MemorySetting] | None = None,
    keep_trace: Path | None = None,
) -> dict:
    """Run ``epochs`` (int16 wire epochs (n, 3000, 4), as bench takes them) on the emulated
    ``board`` (its firmware: ``elf``, else the one built for ``model_dir``) under the trace
    plugin and estimate their cycles (see the module docstring). ``model`` names the layers
    when the board runs it."""
    from ..device import Device
    from ..emulator import Emulator
    from ..protocol import CounterKind

    settings = settings or load_settings()
    t0 = time.monotonic()
    emu = Emulator(board, elf=elf, model_dir=model_dir)
    image = ElfImage(emu.elf)
    with tempfile.TemporaryDirectory() as tmp:
        trace_path = (keep_trace or Path(tmp)) / "trace.txt"
        trace_path.parent.mkdir(parents=True, exist_ok=True)
        cfg = write_config(Path(tmp) / "plugin.cfg", image, trace_path, trace_geometry(settings))
        emu.extra_args = qemu_args(build_plugin(), cfg)
        emu.start()
        try:
            dev = Device(emu.connect(), timeout_s=300)
            try:
                info = dev.hello()
                counts, macs = run_traced(dev, epochs)
            finally:
                dev.port.close()
        finally:
            emu.stop()  # QEMU exits: the plugin writes the rest of the trace
        t_run = time.monotonic() - t0
        windows = epoch_windows(read_trace(trace_path), image.object_range(PROFILE_COUNTS)[0])
    check(windows, counts)  # the estimate is of the code the board counted, or nothing
    timer = Timer(Decoder(image, Table()))
    per_epoch, per_layer = [], [Cycles() for _ in macs]
    profiled_counts = [total for total, layers in counts if layers is not None]
    for w, (_, layers) in zip(windows, counts, strict=True):
        if layers is None:  # the epoch as a stream runs it
            whole = Cycles()
            for seg in w.segments:
                whole.add(timer.segment(seg))
            per_epoch.append(whole)
            continue
        for seg, layer in zip(w.segments, w.layers, strict=True):
            if layer is not None:
                per_layer[layer].add(timer.segment(seg))
    names = (
        model.layer_names(len(macs))
        if model is not None and info.model_hash == model.model_hash
        else [f"layer {i}" for i in range(len(macs))]
    )
    meta = {
        "board": info.board,
        "counter_kind": CounterKind(info.counter_kind).name.lower(),
        "macs": sum(macs),
        "layers": list(zip(names, macs, strict=True)),
    }
    result = summarise(meta, per_epoch, per_layer, settings, t_run, time.monotonic() - t0)
    result["per_epoch_instructions_profiled"] = profiled_counts
    if names[0] != "layer 0" and model.model_macs is not None:
        # per MAC of the trained network, the count peers divide by (the int8 graph composes
        # its shortcut streams and computes fewer)
        e = result["per_epoch"]
        e["model_macs"] = model.model_macs
        e["cycles_per_model_mac"] = {
            k: round(v / model.model_macs, 2) for k, v in e["cycles"].items()
        }
    return result


def _figures(c: Cycles, n: int, macs: int, settings) -> dict:
    cycles = {k: c.total(s) / n for k, s in settings.items()}
    return {
        "instructions": round(c.insns / n),
        "macs": macs,
        "cycles": {k: round(v) for k, v in cycles.items()},
        "cycles_per_mac": {k: round(v / macs, 2) if macs else None for k, v in cycles.items()},
        "cycles_per_instruction": {k: round(v * n / c.insns, 3) for k, v in cycles.items()},
        "mix": {k: round(c.mix[k] / c.insns, 4) for k in MIX} if c.insns else {},
        "cache_misses": {
            "instruction_sequential": round(c.imiss_seq / n),
            "instruction_other": round(c.imiss_nonseq / n),
            "data": round(c.dmiss / n),
        },
    }


def summarise(meta, per_epoch, per_layer, settings, run_s, total_s) -> dict:
    n = len(per_epoch)
    whole = Cycles()
    for c in per_epoch:
        whole.add(c)
    unlisted = dict(whole.unlisted)
    return {
        "estimate": LABEL,
        "board": meta["board"],
        "counter_kind": meta["counter_kind"],  # the board's counts stay instructions
        "epochs": n,
        "instructions_equal_board_counts": True,  # check() raised otherwise
        "memory_settings": {k: s.description for k, s in settings.items()},
        "per_epoch": _figures(whole, n, meta["macs"], settings),
        "per_epoch_note": "the inference as a stream runs it (per-layer profiling off)",
        "per_epoch_instructions": [c.insns for c in per_epoch],
        "per_epoch_spread": {
            k: {
                "min": round(min(c.total(s) for c in per_epoch)),
                "median": round(statistics.median(c.total(s) for c in per_epoch)),
                "max": round(max(c.total(s) for c in per_epoch)),
            }
            for k, s in settings.items()
        },
        "per_layer": [
            {"layer": name, **_figures(c, n, m, settings)}
            for (name, m), c in zip(meta["layers"], per_layer, strict=True)
        ],
        "per_layer_note": "with per-layer profiling on: each layer's count includes its counter "
        "read, as the board's per-layer counts do",
        "not_in_timing_table": unlisted,  # timed as 1 cycle each
        "seconds": {"board_run": round(run_s, 2), "total": round(total_s, 2)},
        "seconds_per_epoch": round(total_s / n, 3),
    }


def render(r: dict) -> str:
    names = list(r["memory_settings"])
    e = r["per_epoch"]
    lines = [
        f"{r['board']}: {r['epochs']} epochs; {r['estimate']}",
        "the trace's instruction counts equal the board's, every epoch and layer",
        "",
    ]
    for k in names:
        lines.append(f"  {k}: {r['memory_settings'][k]}")
    lines += [
        "",
        f"per epoch: {e['instructions']:,} instructions, {e['macs']:,} MACs",
    ]
    for k in names:
        lines.append(
            f"  {k:<16} {e['cycles'][k]:>12,} cycles  {e['cycles_per_mac'][k]:.2f} cycles/MAC  "
            f"{e['cycles_per_instruction'][k]:.3f} cycles/instruction"
        )
    if "model_macs" in e:
        per = ", ".join(f"{k} {v:.2f}" for k, v in e["cycles_per_model_mac"].items())
        lines.append(
            f"  per MAC of the trained network ({e['model_macs']:,} MACs; the int8 graph "
            f"composes its shortcut streams): {per} cycles/MAC"
        )
    mix = "  ".join(f"{k} {v:.1%}" for k, v in e["mix"].items())
    lines += [f"instruction mix: {mix}", ""]
    head = f"{'layer':<40}{'instructions':>13}"
    for k in names:
        head += f"{k + ' cycles':>22}{'/MAC':>7}"
    lines.append(head)
    for row in r["per_layer"]:
        line = f"{row['layer'][:39]:<40}{row['instructions']:>13,}"
        for k in names:
            per = row["cycles_per_mac"][k]
            line += f"{row['cycles'][k]:>22,}{'' if per is None else f'{per:.2f}':>7}"
        lines.append(line)
    if r["not_in_timing_table"]:
        lines.append(f"not in the timing table (1 cycle each): {r['not_in_timing_table']}")
    took = r["seconds"]["total"]
    lines.append(f"estimate made in {took:.1f} s ({r['seconds_per_epoch']} s per epoch)")
    return "\n".join(lines)
