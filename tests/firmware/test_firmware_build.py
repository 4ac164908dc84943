"""Every board builds with the same application and engine; the real board fits its flash, and
application code never touches a register (board code only behind board.h)."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from ..conftest import REPO

FIRMWARE = REPO / "firmware"
pytestmark = pytest.mark.skipif(
    shutil.which("arm-none-eabi-gcc") is None, reason="no arm-none-eabi-gcc (run make setup)"
)


def build(board: str) -> tuple[int, int, int]:
    subprocess.run(
        ["make", "-s", "-C", str(FIRMWARE), f"BOARD={board}"], check=True, capture_output=True
    )
    out = subprocess.run(
        ["arm-none-eabi-size", str(FIRMWARE / "build" / board / "firmware.elf")],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.splitlines()[1]
    text, data, bss = (int(v) for v in out.split()[:3])
    return text, data, bss


@pytest.mark.parametrize("board", ["emu-m4", "emu-an386", "nucleo-l476rg"])
def test_every_board_builds(board):
    text, _data, bss = build(board)
    assert text > 10_000 and bss > 40_000


def test_real_board_fits_its_flash_target():
    text, data, _ = build("nucleo-l476rg")
    assert text + data <= 48 * 1024


def test_unknown_board_is_a_clear_error():
    done = subprocess.run(
        ["make", "-s", "-C", str(FIRMWARE), "BOARD=no-such-board"], capture_output=True, text=True
    )
    assert done.returncode != 0 and "unknown BOARD 'no-such-board'" in done.stderr


def test_application_and_engine_never_touch_registers():
    for folder in ("app", "engine"):
        for path in (FIRMWARE / folder).rglob("*.[ch]"):
            code = re.sub(r"/\*.*?\*/", "", path.read_text(), flags=re.S)
            # a register access is a cast of an address to a volatile pointer
            assert not re.search(r"\(\s*(const\s+)?volatile[^)]*\*\s*\)", code), path
