"""The cycle estimate against hand counts from the Cortex-M4 TRM: microbench.S runs on the
emulated board under the trace plugin and each benchmark's estimated cycles (ideal memory) must
equal the count worked out by hand in the comment above it."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from host_tools.cycles.elfimage import ElfImage
from host_tools.cycles.memory import load_settings
from host_tools.cycles.plugin import build_plugin, qemu_args, write_config
from host_tools.cycles.timing import Decoder, Table, Timer
from host_tools.cycles.trace import read_trace

HERE = Path(__file__).parent

# (benchmark, hand count of its body, instructions of its body): every benchmark's segment adds
# the framing NOP (1 cycle) and LDR of SYST_CVR (2) and these 2 instructions.
HAND = [
    ("4 independent loads (N+1)", 5, 4),
    ("load, then load from its result", 4, 2),
    ("SMLAD loop, 4 iterations", 20, 1 + 4 * 4),
    ("taken branch", 3, 2),
    ("branch not taken", 4, 4),
    ("STM + LDM of 4 registers", 10, 2),
    ("UDIV (bound)", 12, 1),
    ("IT folded", 2, 3),
    ("word load at an odd address", 4, 1),
    ("BL + BX LR", 4, 2),
    ("8 flash lines, twice", 17, 16),
    ("9 flash lines, twice", 19, 18),
]
# data-cache misses in the nucleo-l476rg setting (8 lines of 32 B, least recently used)
DMISS = {"8 flash lines, twice": 8, "9 flash lines, twice": 18}
FRAME_CYCLES, FRAME_INSNS = 3, 2


@pytest.fixture(scope="module")
def traced(tmp_path_factory):
    gcc = shutil.which("arm-none-eabi-gcc")
    qemu = shutil.which("qemu-system-arm")
    if gcc is None or qemu is None:
        pytest.fail("arm-none-eabi-gcc and qemu-system-arm are needed: run 'make setup'")
    tmp = tmp_path_factory.mktemp("microbench")
    elf = tmp / "microbench.elf"
    subprocess.run(
        [gcc, "-mcpu=cortex-m4", "-mthumb", "-nostdlib", "-nostartfiles", "-Wl,-Ttext=0",
         "-Wl,-e,reset", "-o", str(elf), str(HERE / "microbench.S")],
        check=True,
    )  # fmt: skip
    image = ElfImage(elf)
    memory = load_settings()["nucleo-l476rg"]  # its caches simulated; "ideal" cycles timed
    cfg = write_config(tmp / "cfg", image, tmp / "trace.txt", memory, watch=None)
    subprocess.run(
        [qemu, "-M", "ast1030-evb", "-display", "none", "-monitor", "none", "-kernel", str(elf),
         "-icount", "shift=6,align=off,sleep=off", "-semihosting-config",
         "enable=on,target=native", *qemu_args(build_plugin(tmp / "plugin"), cfg)],
        check=True,
        timeout=60,
    )  # fmt: skip
    # the segments a read of SYST_CVR ends (not the stores that begin them, not the exit)
    trace = read_trace(tmp / "trace.txt")
    segments = [s for s in trace if not s.boundary_store and s.boundary_pc != 0]
    return image, segments


def test_every_benchmark_is_traced(traced):
    _, segments = traced
    assert [s.insns for s in segments] == [n + FRAME_INSNS for _, _, n in HAND]


@pytest.mark.parametrize("i", range(len(HAND)), ids=[h[0] for h in HAND])
def test_estimate_equals_hand_count(traced, i):
    image, segments = traced
    timer = Timer(Decoder(image, Table()))
    name, cycles, _ = HAND[i]
    got = timer.segment(segments[i])
    assert not got.unlisted, f"{name}: instructions not in the timing table: {got.unlisted}"
    assert got.core == cycles + FRAME_CYCLES, name


def test_timing_table_names_its_source_on_every_row():
    table = Table()
    assert table.rows and table.rules
    for row in table.rows.values():
        assert row.trm.startswith(("3.3.1", "3.3.2", "7.2.3")), row


@pytest.mark.parametrize("name", sorted(DMISS))
def test_data_cache_misses_equal_hand_count(traced, name):
    _, segments = traced
    i = [h[0] for h in HAND].index(name)
    assert segments[i].dmiss == DMISS[name]
