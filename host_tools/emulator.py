"""Emulated boards: QEMU started on a free local TCP port, always stopped again.

QEMU runs with ``-icount shift=N,align=off,sleep=off`` so that the board's counters are exact,
deterministic instruction counts (docs/protocol.md, "Counts"). N is chosen per board so that its
SysTick advances at least 2 ticks per instruction (the firmware then recovers the instructions
of each interrupt handler exactly and leaves them out of the counts).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from .device import open_port

REPO = Path(__file__).resolve().parents[1]
FIRMWARE = REPO / "firmware"


@dataclass(frozen=True)
class EmulatedBoard:
    name: str
    machine: str
    icount_shift: int  # SysTick ticks per instruction = 2**shift ns x core clock


BOARDS = {
    "emu-m4": EmulatedBoard("emu-m4", "ast1030-evb", 6),  # 200 MHz: 12.8 ticks
    "emu-an386": EmulatedBoard("emu-an386", "mps2-an386", 7),  # 25 MHz: 3.2 ticks
}


class EmulatorError(RuntimeError):
    """QEMU could not be started or the firmware not built; says what to check."""


def firmware_elf(board: str, *, build: bool = True) -> Path:
    """firmware/build/<board>/firmware.elf, built with make when missing or out of date."""
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
        if board not in BOARDS:
            raise EmulatorError(f"unknown emulated board {board!r}; known: {sorted(BOARDS)}")
        self.board = BOARDS[board]
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
