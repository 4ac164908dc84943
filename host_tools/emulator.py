"""Emulated boards: QEMU started on a free local TCP port, always stopped again.

QEMU runs with ``-icount shift=N,align=off,sleep=off`` so that the board's counters are exact,
deterministic instruction counts (docs/protocol.md, "Counts"). Each board's machine and N come
from the firmware's board table, firmware/boards/boards.ini (the sections with a
``qemu_machine``); N is chosen per board so that its SysTick advances at least 2 ticks per
instruction (the firmware then recovers the instructions of each interrupt handler exactly and
leaves them out of the counts).
"""

from __future__ import annotations

import configparser
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from .transport import open_port

#: The source checkout host_tools runs from, if it does: the default firmware image is built
#: there (an installed package has none: pass the ELF instead).
REPO = Path(__file__).resolve().parents[1]
FIRMWARE = REPO / "firmware"
#: The board table: a copy installed beside this module (package data), else the checkout's.
BOARD_TABLES = (Path(__file__).with_name("boards.ini"), FIRMWARE / "boards" / "boards.ini")


class EmulatorError(RuntimeError):
    """QEMU could not be started or the firmware not built; says what to check."""


@dataclass(frozen=True)
class EmulatedBoard:
    name: str
    machine: str  # QEMU -M
    icount_shift: int  # one instruction = 2**shift ns: SysTick ticks = 2**shift ns x core clock


def load_boards(path: Path | None = None) -> dict[str, EmulatedBoard]:
    """The emulated boards of the board table (``path``, default: the first of BOARD_TABLES
    that exists), by name."""
    if path is None:
        path = next((p for p in BOARD_TABLES if p.is_file()), None)
        if path is None:
            raise EmulatorError(
                "the board table boards.ini is neither installed with host_tools nor in a "
                f"source checkout (looked for {', '.join(map(str, BOARD_TABLES))})"
            )
    table = configparser.ConfigParser()
    try:
        table.read_string(path.read_text(), source=str(path))
        return {
            name: EmulatedBoard(name, s["qemu_machine"], int(s["icount_shift"]))
            for name, s in table.items()
            if "qemu_machine" in s
        }
    except (OSError, configparser.Error, KeyError, ValueError) as exc:
        raise EmulatorError(f"board table {path}: {exc!r}") from None


def firmware_elf(board: str, *, build: bool = True) -> Path:
    """firmware/build/<board>/firmware.elf of the source checkout, built with make when missing
    or out of date. Without a checkout (an installed package) there is no default image."""
    if not (FIRMWARE / "Makefile").is_file():
        raise EmulatorError(
            f"no firmware image for {board}: the default one is built in a source checkout of "
            f"the repository and there is none at {REPO} (host_tools runs from an installed "
            f"package); pass --firmware ELF (built with make -C firmware BOARD={board})"
        )
    if build:
        done = subprocess.run(
            ["make", "-s", "-C", str(FIRMWARE), f"BOARD={board}"], capture_output=True, text=True
        )
        if done.returncode != 0:
            raise EmulatorError(
                f"building the firmware for {board} failed (is "
                f"arm-none-eabi-gcc installed? run 'make setup'):\n{done.stderr}"
            )
    elf = FIRMWARE / "build" / board / "firmware.elf"
    if not elf.is_file():
        raise EmulatorError(f"{elf} does not exist")
    return elf


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Emulator:
    """``with Emulator("emu-m4") as emu: serial.serial_for_url(emu.url)``."""

    def __init__(self, board: str = "emu-m4", *, elf: Path | None = None):
        boards = load_boards()
        if board not in boards:
            raise EmulatorError(f"unknown emulated board {board!r}; known: {sorted(boards)}")
        self.board = boards[board]
        self.elf = elf or firmware_elf(board)
        self.port = 0
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"socket://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 10.0) -> Emulator:
        qemu = shutil.which("qemu-system-arm")
        if qemu is None:
            raise EmulatorError("qemu-system-arm not found: run 'make setup'")
        self.port = free_port()
        cmd = [
            qemu,
            "-M",
            self.board.machine,
            "-display",
            "none",
            "-monitor",
            "none",
            "-kernel",
            str(self.elf),
            "-icount",
            f"shift={self.board.icount_shift},align=off,sleep=off",
            "-serial",
            f"tcp:127.0.0.1:{self.port},server=on,wait=on,nodelay=on",
        ]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        self._timeout_s = timeout_s
        return self

    def connect(self, timeout_s: float | None = None):
        """A pyserial port to the board's UART. QEMU (wait=on) starts the CPU only when this
        first connection arrives, so no byte the board sends is lost."""
        import serial

        deadline = time.monotonic() + (timeout_s or self._timeout_s)
        while True:
            if self.proc is None or self.proc.poll() is not None:
                err = self.proc.stderr.read().decode()[:500] if self.proc else ""
                raise EmulatorError(f"QEMU is not running: {err}")
            try:
                return open_port(self.url)
            except serial.SerialException:
                if time.monotonic() > deadline:
                    self.stop()
                    raise EmulatorError(f"QEMU did not listen on port {self.port}") from None
                time.sleep(0.05)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
