"""The DWT event fold (firmware/boards/common/dwt_events.c) compiled for the host and fed
synthetic counter sequences: 8-bit counters that wrap, read by a sampler, folded into 32-bit
totals; laps subtract the sampler's own events; the start-up calibration recovers them."""

from __future__ import annotations

import ctypes
import shutil
import subprocess

import numpy as np
import pytest

from ..conftest import REPO

SOURCE = REPO / "firmware" / "boards" / "common" / "dwt_events.c"
EVENTS = 5
SAFE = 240  # DWT_EVENTS_SAFE_CYCLES

U8 = ctypes.c_uint8 * EVENTS
U32 = ctypes.c_uint32 * EVENTS
U16 = ctypes.c_uint16 * EVENTS


class State(ctypes.Structure):
    _fields_ = [
        ("pending", ctypes.POINTER(ctypes.c_uint32)),
        ("ticks", ctypes.c_uint32),
        ("samples", ctypes.c_uint32),
        ("late", ctypes.c_uint32),
        ("cycles", ctypes.c_uint32),
        ("last", ctypes.c_uint8 * EVENTS),
    ]


@pytest.fixture(scope="module")
def lib(tmp_path_factory):
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.fail("no host C compiler (cc) to build dwt_events.c", pytrace=False)
    out = tmp_path_factory.mktemp("dwt") / "libdwt_events.so"
    flags = ["-std=c11", "-O2", "-Wall", "-Wextra", "-Werror", "-shared", "-fPIC"]
    subprocess.run([cc, *flags, str(SOURCE), "-o", str(out)], check=True)
    return ctypes.CDLL(str(out))


class Sampler:
    """Hardware counters advanced by known events; the fold reads them as the board does."""

    def __init__(self, lib, per_tick_q8=(0,) * EVENTS):
        self.lib = lib
        self.state = State()
        self.pending = U32()
        self.hw = np.zeros(EVENTS, dtype=np.int64)  # the true running counts
        self.cycles = 1000
        self.q8 = U16(*per_tick_q8)
        lib.dwt_events_start(
            ctypes.byref(self.state), self.pending, U8(*(self.hw % 256)), self.cycles
        )

    def advance(self, events, cycles):
        self.hw += np.asarray(events)
        self.cycles = (self.cycles + cycles) % 2**32

    def now(self):
        return U8(*(int(v) % 256 for v in self.hw))

    def tick(self):
        self.lib.dwt_events_tick(ctypes.byref(self.state), self.now(), self.cycles)

    def lap(self, row):
        self.lib.dwt_events_fold(ctypes.byref(self.state), self.now(), self.cycles)
        self.lib.dwt_events_lap(ctypes.byref(self.state), self.q8, row)


def test_wrapping_counters_fold_into_exact_totals(lib):
    rng = np.random.default_rng(0)
    s = Sampler(lib)
    start = s.hw.copy()
    for _ in range(5000):
        cycles = int(rng.integers(100, SAFE + 1))
        s.advance(rng.integers(0, cycles + 1, size=EVENTS), cycles)  # < 256 per interval
        s.tick()
    row = U32()
    s.lap(row)
    assert list(row) == list(s.hw - start)  # millions of wraps, every event counted
    assert max(row) > 100_000 and s.state.late == 0
    assert s.state.samples == 5000 and s.state.ticks == 0
    assert list(s.pending) == [0] * EVENTS


def test_totals_pass_the_32_bit_cycle_counter_wrap(lib):
    s = Sampler(lib)
    s.cycles = 2**32 - 50  # CYCCNT about to wrap
    s.state.cycles = s.cycles
    s.advance([200, 0, 0, 255, 3], 200)
    s.tick()
    row = U32()
    s.lap(row)
    assert list(row) == [200, 0, 0, 255, 3] and s.state.late == 0


def test_a_long_interval_is_counted_late(lib):
    """Beyond 256 events in one interval the 8-bit counter wrapped unseen: the fold cannot know,
    so the interval is counted (EVENT_COUNTS' late) when the cycles say it could have."""
    s = Sampler(lib)
    s.advance([300, 0, 0, 0, 0], 300)
    s.tick()
    row = U32()
    s.lap(row)
    assert row[0] == 300 - 256 and s.state.late == 1


def test_lap_subtracts_the_samplers_share_and_never_goes_below_zero(lib):
    q8 = (10 * 256, 24 * 256 + 128, 0, 3 * 256, 1 * 256)  # 24.5 EXC per tick
    s = Sampler(lib, q8)
    work = np.array([40, 0, 0, 7, 2])
    for _ in range(100):
        s.advance(work + np.array([10, 25, 0, 3, 1]), 128)  # the work's plus the tick's own
        s.tick()
    row = U32()
    s.lap(row)
    # EXC: 2,500 seen, 2,450 subtracted (24.5 x 100): the 50 left are the measurement's
    assert list(row) == [4000, 50, 0, 700, 200]
    s.advance([0, 0, 0, 0, 0], 10)  # no work, no ticks: nothing to add
    again = U32(*row)
    s.lap(again)
    assert list(again) == list(row)
    s.advance([1, 1, 0, 0, 0], 128)  # fewer events than the sampler's share: 0, not a wrap
    s.tick()
    lean = U32()
    s.lap(lean)
    assert list(lean) == [0, 0, 0, 0, 0]


def test_calibration_recovers_the_samplers_events_per_tick(lib):
    """The same work at two periods: its own events cancel, the ticks' remain."""
    own = np.array([12.0, 24.0, 0.0, 3.0, 1.0])  # per tick
    work = np.array([250_000, 0, 0, 10_000, 40_000])
    fast_ticks, slow_ticks = 11_500, 6_300
    fast = U32(*np.round(work + fast_ticks * own).astype(int))
    slow = U32(*np.round(work + slow_ticks * own).astype(int))
    q8 = U16()
    lib.dwt_events_per_tick(fast, fast_ticks, slow, slow_ticks, q8)
    assert list(q8) == [int(v * 256) for v in own]
    # no difference (or a smaller fast total): 0, not a wrapped difference
    lib.dwt_events_per_tick(slow, fast_ticks, fast, slow_ticks, q8)
    assert list(q8) == [0] * EVENTS
