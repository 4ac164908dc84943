"""Reading the plugin's trace and cutting it into the board's windows, on a written trace whose
shape is the firmware's (firmware/app/main.c run_epoch, firmware/app/profile.c)."""

from __future__ import annotations

import pytest

from host_tools.cycles.trace import TraceError, check, epoch_windows, read_trace

BASE = 0x1000  # profile_counts


def seg(i, n, *, store=False, watched=0, first=0, pairs=()):
    line = f"S {i} {n} 0 {0x500 + i} {int(store)} 0 0 0 0 0 {watched} {first}\n"
    return line + "".join(f"P {a} {b} {c}\n" for a, b, c in pairs)


def epoch_segments(start: int, layers: list[int]) -> list[str]:
    """restart (store to the counter, then the first read), profile_begin (zeroes every layer
    total), one segment per layer (the next segment begins with that layer's store), the final
    read, idle until the next epoch."""
    segs = [seg(start, 40, store=True), seg(start + 1, 2), seg(start + 2, 3)]
    segs.append(seg(start + 3, 70, watched=3, first=BASE))
    for k, n in enumerate(layers):  # (layer k-1's store begins layer k's segment)
        segs.append(seg(start + 4 + k, n, watched=1 if k > 0 else 0, first=BASE + 4 * (k - 1)))
    segs.append(seg(start + 4 + len(layers), 50, watched=1, first=BASE + 4 * (len(layers) - 1)))
    segs.append(seg(start + 5 + len(layers), 9999))
    return segs


def write(tmp_path, segments, end=True):
    p = tmp_path / "trace.txt"
    p.write_text("".join(segments) + ("E\n" if end else ""))
    return p


def test_windows_and_layers_follow_the_firmware(tmp_path):
    layers = [100, 200, 300]
    segs = epoch_segments(0, layers) + epoch_segments(100, [101, 201, 301])
    w = epoch_windows(read_trace(write(tmp_path, segs)), BASE)
    assert len(w) == 2
    # the window opens after the restart's first read: 3 + 70 + layers + 50
    assert w[0].insns == 3 + 70 + sum(layers) + 50
    assert w[0].layer_insns(3) == layers
    check(w, [(3 + 70 + 600 + 50, layers), (3 + 70 + 603 + 50, [101, 201, 301])])


def test_check_names_the_epoch_and_layer_that_differ(tmp_path):
    w = epoch_windows(read_trace(write(tmp_path, epoch_segments(0, [100, 200]))), BASE)
    with pytest.raises(TraceError, match="epoch 0: the trace counts 423 instructions"):
        check(w, [(424, [100, 200])])
    with pytest.raises(TraceError, match="epoch 0, layer 1: the trace counts 200"):
        check(w, [(423, [100, 201])])
    with pytest.raises(TraceError, match="holds 1 inferences, the board reported 2"):
        check(w, [(423, [100, 200])] * 2)


def test_truncated_or_malformed_trace_is_an_error(tmp_path):
    with pytest.raises(TraceError, match="ends early"):
        read_trace(write(tmp_path, epoch_segments(0, [1]), end=False))
    p = tmp_path / "bad.txt"
    p.write_text("S 0 1 0 5 0 0 0 0 0 0 0 0\nX 1 2\nE\n")
    with pytest.raises(TraceError, match="line 2: malformed"):
        read_trace(p)


def test_pairs_are_read_per_segment(tmp_path):
    segs = [seg(0, 3, pairs=[(0x10, 0x12, 2), (0x12, 0x14, 1)]), seg(1, 1, pairs=[(1, 2, 1)])]
    got = read_trace(write(tmp_path, segs))
    assert got[0].pairs == {(0x10, 0x12): 2, (0x12, 0x14): 1}
    assert got[1].pairs == {(1, 2): 1}


def test_an_unprofiled_inference_is_one_window_without_layers(tmp_path):
    """Per-layer profiling off (a stream's epochs): profile_begin's read, then the final read."""
    segs = [seg(0, 40, store=True), seg(1, 2), seg(2, 3), seg(3, 70, watched=3, first=BASE)]
    segs += [seg(4, 5000), seg(5, 9999, store=True)]
    segs += epoch_segments(10, [100, 200])
    w = epoch_windows(read_trace(write(tmp_path, segs)), BASE)
    assert [x.insns for x in w] == [3 + 70 + 5000, 3 + 70 + 300 + 50]
    assert w[0].layers == [None, None, None]
    check(w, [(5073, None), (423, [100, 200])])
