"""The plugin's record (trace_plugin.c) read back and cut into the board's windows: each epoch's
inference (the window the board's inference count covers) and, inside it, each layer's share
(the firmware's per-layer totals, firmware/app/profile.c). The instruction counts found here must
equal the board's own counts of the same epochs: `check` says where they do not."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from .errors import CyclesError


class TraceError(CyclesError):
    """The trace does not hold what the board reported; says which epoch and layer differ."""


@dataclass
class Segment:
    """Thread-mode instructions between two accesses to the board's counter."""

    index: int
    insns: int
    handler_insns: int
    boundary_pc: int
    boundary_store: bool
    imiss_seq: int
    imiss_nonseq: int
    dmiss: int
    flash_data: int
    unaligned_cycles: int
    watched: int
    first_watched: int
    pairs: Counter = field(default_factory=Counter)  # (previous pc, pc) -> executions
    mem: dict = field(default_factory=dict)  # pc -> (flash data accesses, D-misses, unaligned)


def read_trace(path: str | Path) -> list[Segment]:
    segs: list[Segment] = []
    complete = False
    with open(path) as f:
        for n, line in enumerate(f, 1):
            parts = line.split()
            if not parts:
                continue
            tag = parts[0]
            try:
                if tag == "S":
                    v = [int(x) for x in parts[1:]]
                    segs.append(Segment(v[0], v[1], v[2], v[3], bool(v[4]), *v[5:12]))
                elif tag == "P":
                    segs[-1].pairs[(int(parts[1]), int(parts[2]))] += int(parts[3])
                elif tag == "M":
                    segs[-1].mem[int(parts[1])] = tuple(int(x) for x in parts[2:5])
                elif tag == "E":
                    complete = True
                else:
                    raise ValueError(f"unknown record {tag!r}")
            except (ValueError, IndexError) as e:
                raise TraceError(f"{path}, line {n}: malformed trace record ({e})") from e
    if not complete:
        raise TraceError(f"{path}: the trace ends early (QEMU did not exit cleanly)")
    return segs


@dataclass
class EpochWindow:
    """One inference: its segments, and each segment's layer (None: outside any layer)."""

    segments: list[Segment]
    layers: list[int | None]

    @property
    def insns(self) -> int:
        return sum(s.insns for s in self.segments)

    def layer_insns(self, n_layers: int) -> list[int]:
        out = [0] * n_layers
        for s, layer in zip(self.segments, self.layers, strict=True):
            if layer is not None:
                out[layer] += s.insns
        return out


def epoch_windows(segs: list[Segment], watch_base: int) -> list[EpochWindow]:
    """The inferences in the trace, in order, with per-layer profiling on or off.

    profile_begin zeroes every per-layer total (several stores into profile_counts) and reads the
    counter; with profiling on, each layer then ends with a counter read whose next segment
    begins with one store, profile_counts[i] += ...; the inference ends with the next read. The
    window opens at the first counter read after the restart's store to the counter (the read
    that sees the restarted counter: the board counts from there)."""
    layer_of: list[int | None] = [None] * len(segs)
    for i in range(len(segs) - 1):
        if segs[i + 1].watched == 1:
            layer_of[i] = (segs[i + 1].first_watched - watch_base) // 4
    windows: list[EpochWindow] = []
    for b, seg in enumerate(segs):
        if seg.watched <= 1 or seg.boundary_store:
            continue  # not profile_begin
        w = b - 1
        while w >= 0 and not segs[w].boundary_store:
            w -= 1
        if w < 0:
            continue  # before the counter's first restart: the start-up clearing memory
        start, end = w + 2, b + 1
        while end < len(segs) and layer_of[end] is not None:
            end += 1
        if start > b or end >= len(segs):
            raise TraceError(f"trace segment {seg.index}: an inference without its counter reads")
        windows.append(EpochWindow(segs[start : end + 1], layer_of[start : end + 1]))
    return windows


def check(windows: list[EpochWindow], board: list[tuple[int, list[int] | None]]) -> None:
    """Raise unless every epoch's instruction count, whole and per layer, equals the board's
    (``board``: per epoch, its inference count and per-layer counts, None if not profiled)."""
    if len(windows) != len(board):
        raise TraceError(
            f"the trace holds {len(windows)} inferences, the board reported {len(board)}"
        )
    for e, (w, (total, layers)) in enumerate(zip(windows, board, strict=True)):
        if w.insns != total:
            raise TraceError(
                f"epoch {e}: the trace counts {w.insns:,} instructions, the board {total:,}"
            )
        if layers is None:
            continue
        mine = w.layer_insns(len(layers))
        for i, (a, b) in enumerate(zip(mine, layers, strict=True)):
            if a != b:
                raise TraceError(
                    f"epoch {e}, layer {i}: the trace counts {a:,} instructions, the board {b:,}"
                )
