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
    """Run ``epochs`` (int16 wire epochs, as bench takes them) on the emulated ``board`` (its
    firmware: ``elf``, else the one built for ``model_dir``) under the trace plugin and estimate
    their cycles (see the module docstring); ``model``: bench's layer names and normalisation."""
    from ..bench import bench
    from ..device import Device
    from ..emulator import Emulator

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
        record: list = []
        try:
            dev = Device(emu.connect(), timeout_s=300)
            try:
                counts = bench(dev, model=model, epochs=epochs, record=record)
            finally:
                dev.port.close()
        finally:
            emu.stop()  # QEMU exits: the plugin writes the rest of the trace
        t_run = time.monotonic() - t0
        windows = epoch_windows(read_trace(trace_path), image.object_range(PROFILE_COUNTS)[0])
    check(windows, record)  # the estimate is of the code the board counted, or nothing
    timer = Timer(Decoder(image, Table()))
    n_layers = len(counts["per_layer"])
    per_epoch, per_layer = [], [Cycles() for _ in range(n_layers)]
    for w in windows:
        whole = Cycles()
        for seg, layer in zip(w.segments, w.layers, strict=True):
            c = timer.segment(seg)
            whole.add(c)
            if layer is not None:
                per_layer[layer].add(c)
        per_epoch.append(whole)
    return summarise(counts, per_epoch, per_layer, settings, t_run, time.monotonic() - t0)


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


def summarise(counts, per_epoch, per_layer, settings, run_s, total_s) -> dict:
    n = len(per_epoch)
    whole = Cycles()
    for c in per_epoch:
        whole.add(c)
    unlisted = dict(whole.unlisted)
    return {
        "estimate": LABEL,
        "board": counts["board"],
        "counter_kind": counts["counter_kind"],  # the board's counts stay instructions
        "epochs": n,
        "instructions_equal_board_counts": True,  # check() raised otherwise
        "memory_settings": {k: s.description for k, s in settings.items()},
        "per_epoch": _figures(whole, n, counts["macs"], settings),
        "per_epoch_spread": {
            k: {
                "min": round(min(c.total(s) for c in per_epoch)),
                "median": round(statistics.median(c.total(s) for c in per_epoch)),
                "max": round(max(c.total(s) for c in per_epoch)),
            }
            for k, s in settings.items()
        },
        "per_layer": [
            {"layer": row["layer"], **_figures(c, n, row["macs"], settings)}
            for row, c in zip(counts["per_layer"], per_layer, strict=True)
        ],
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
