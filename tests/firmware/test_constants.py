"""Constants that live in the firmware's C and are also needed elsewhere must agree with it: the
fused kernels' limits the converter plans with, and the board table (firmware/boards/boards.ini,
read by make, PlatformIO and host_tools.emulator) against each board's board.c."""

from __future__ import annotations

import configparser
import json
import re
import subprocess
from fractions import Fraction
from pathlib import Path

import pytest

from converter.fusion import FUSED_MAX_CHANNELS, SHORTCUT_SCRATCH_BYTES
from host_tools.emulator import load_boards

from ..conftest import REPO

FIRMWARE = REPO / "firmware"
TABLE = FIRMWARE / "boards" / "boards.ini"


def c_defines(path: Path) -> dict[str, int]:
    """The integer #defines of a C file (decimal or hex, an optional u suffix)."""
    return {
        m.group(1): int(m.group(2), 0)
        for m in re.finditer(
            r"^#define\s+(\w+)\s+(0x[0-9A-Fa-f]+|\d+)u?\b", path.read_text(), flags=re.M
        )
    }


def board_table() -> dict[str, configparser.SectionProxy]:
    table = configparser.ConfigParser()
    table.read_string(TABLE.read_text(), source=str(TABLE))
    return {name: table[name] for name in table.sections()}


def test_fused_kernel_limits_are_the_converters():
    c = c_defines(FIRMWARE / "engine" / "include" / "engine_kernels.h")
    assert c["ENGINE_FUSED_MAX_CHANNELS"] == FUSED_MAX_CHANNELS
    assert c["ENGINE_SHORTCUT_SCRATCH_BYTES"] == SHORTCUT_SCRATCH_BYTES


def test_every_board_folder_has_one_table_section_and_platformio_board():
    folders = {p.parent.name for p in (FIRMWARE / "boards").glob("*/board.c")}
    table = board_table()
    assert set(table) == folders
    pio = configparser.ConfigParser()
    pio.read(REPO / "platformio.ini")
    pio_boards = {pio[s]["board"] for s in pio.sections() if s.startswith("env:")}
    for name, facts in table.items():
        json_path = FIRMWARE / "platformio" / "platform" / "boards" / f"{facts['pio_board']}.json"
        manifest = json.loads(json_path.read_text())
        assert manifest["build"]["ldscript"] == f"firmware/boards/{name}/link.ld", name
        assert facts["pio_board"] in pio_boards, name


@pytest.mark.parametrize("name", sorted(board_table()))
def test_board_sources_match_the_table(name):
    """Clock, UART address, interrupt and baud rate in board.c are the table's."""
    facts = board_table()[name]
    source = FIRMWARE / "boards" / name / "board.c"
    c = c_defines(source)
    assert c["CORE_CLOCK_HZ"] == int(facts["core_clock_hz"])
    code = re.sub(r"/\*.*?\*/", "", source.read_text(), flags=re.S)
    addresses = {int(h, 16) for h in re.findall(r"\b0x([0-9A-Fa-f]+)u?\b", code)}
    assert int(facts["uart_base"], 16) in addresses, f"{source}: no {facts['uart_base']}"
    irqs = [v for k, v in c.items() if re.fullmatch(r"U(S)?ART\w*_IRQ", k)]
    assert irqs == [int(facts["uart_irq"])], f"{source}: UART interrupt {irqs}"
    if "uart_baud" in facts:
        assert c["BAUD"] == int(facts["uart_baud"])


@pytest.mark.parametrize("name", sorted(load_boards()))
def test_emulated_board_counts_exact_instructions(name):
    """Under -icount shift=N one instruction takes 2^N ns, so SysTick advances 2^N ns x clock
    ticks per instruction: at least 2 (so a handler's instructions are recovered exactly), and
    board.c converts ticks to instructions with exactly the inverse ratio."""
    facts = board_table()[name]
    ticks_per_instruction = Fraction(2 ** int(facts["icount_shift"]) * int(facts["core_clock_hz"]))
    ticks_per_instruction /= 10**9
    assert ticks_per_instruction >= 2
    c = c_defines(FIRMWARE / "boards" / name / "board.c")
    units = Fraction(c["SYSTICK_UNITS_NUM"], c["SYSTICK_UNITS_DEN"])
    assert units == 1 / ticks_per_instruction
    assert c["UNITS_PER_WRAP"] == 2**24 * units


def test_make_and_the_emulator_read_the_table():
    boards = load_boards()
    table = board_table()
    assert set(boards) == {n for n, f in table.items() if "qemu_machine" in f}
    for name, board in boards.items():
        assert (board.machine, board.icount_shift) == (
            table[name]["qemu_machine"],
            int(table[name]["icount_shift"]),
        )
        plan = subprocess.run(
            ["make", "-s", "-n", "-C", str(FIRMWARE), "test", f"BOARD={name}"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert f"qemu-system-arm -M {board.machine} -icount shift={board.icount_shift}," in plan


def c_enum(path: Path, first: str) -> list[str]:
    """The names of the C enum whose first constant is ``first``, in order."""
    m = re.search(rf"enum\s*\{{\s*({first}\b[^}}]*)\}}", path.read_text())
    assert m, f"{path}: no enum starting with {first}"
    return [name.split("=")[0].strip() for name in m.group(1).split(",") if name.strip()]


def test_event_counters_are_in_one_order_everywhere():
    """EVENT_COUNTS' columns (host_tools.protocol.EVENT_NAMES) are board.h's events, which are
    the board's fold order (dwt_events.h): the DWT counters' register order, CPI to FOLD."""
    from host_tools.protocol import EVENT_NAMES, EVENTS_PER_LAYER

    board = c_enum(FIRMWARE / "boards" / "board.h", "BOARD_EVENT_CPI")
    fold = c_enum(FIRMWARE / "boards" / "common" / "dwt_events.h", "DWT_CPI")
    assert board[-1] == "BOARD_EVENTS" and fold[-1] == "DWT_EVENTS"
    assert [n.removeprefix("BOARD_EVENT_").lower() for n in board[:-1]] == list(EVENT_NAMES)
    assert [n.removeprefix("DWT_").lower() for n in fold[:-1]] == list(EVENT_NAMES)
    assert len(EVENT_NAMES) == EVENTS_PER_LAYER
