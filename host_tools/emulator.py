"""Emulated boards: QEMU started on a free local TCP port, always stopped again.

QEMU runs with ``-icount shift=N,align=off,sleep=off`` so that the board's counters are exact,
deterministic instruction counts (docs/protocol.md, "Counts"). Each board's machine and N come
from the firmware's board table, firmware/boards/boards.ini (the sections with a
``qemu_machine``); N is chosen per board so that its SysTick advances at least 2 ticks per
instruction (the firmware then recovers the instructions of each interrupt handler exactly and
leaves them out of the counts).

The firmware image: ``elf`` when given; else, for a model folder other than the one the
firmware's committed model C was generated from (``model_dir``), firmware built for that folder
into firmware/build/<board>-<hash8>/ (hash8: the first 8 hex digits of the SHA-256 of its
model_int8.tflite); else firmware/build/<board>/. Both are built with make when missing or out
of date.

QEMU never outlives the process that started it, even one killed with SIGKILL: on Linux it
starts with PR_SET_PDEATHSIG(SIGKILL); elsewhere a small watchdog process kills it when its
parent is gone.
"""

from __future__ import annotations

import configparser
import ctypes
import hashlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
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
#: the generated model C the default firmware is built from (firmware/Makefile's MODEL_DIR)
COMMITTED_MODEL_C = FIRMWARE / "engine" / "model"
#: the generated C a model folder needs for the firmware (python -m converter build writes it)
MODEL_C_FILES = ("engine_model.c", "engine_model.h", "model_norm.h")
_HASH_DEFINE = re.compile(r'#define ENGINE_MODEL_HASH "([0-9a-f]{64})"')


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


def firmware_elf(board: str, *, build: bool = True, model_dir: Path | None = None) -> Path:
    """The firmware image for ``board`` running the model of ``model_dir`` (default: the
    committed model), built with make when missing or out of date (``build``).

    The committed model's image is firmware/build/<board>/firmware.elf; another model folder's
    is firmware/build/<board>-<hash8>/firmware.elf, built from the folder's generated C
    (MODEL_C_FILES). Without a source checkout (an installed package) there is no default image.
    """
    if not (FIRMWARE / "Makefile").is_file():
        raise EmulatorError(
            f"no firmware image for {board}: the default one is built in a source checkout of "
            f"the repository and there is none at {REPO} (host_tools runs from an installed "
            f"package); pass --firmware ELF (built with make -C firmware BOARD={board}"
            + (f" MODEL_DIR={Path(model_dir).resolve()})" if model_dir else ")")
        )
    make = ["make", "-s", "-C", str(FIRMWARE), f"BOARD={board}"]
    folder = FIRMWARE / "build" / board
    if model_dir is not None:
        model_hash = _model_c_hash(Path(model_dir))
        if model_hash != committed_model_hash():
            folder = FIRMWARE / "build" / f"{board}-{model_hash[:8]}"
            make += [f"MODEL_DIR={Path(model_dir).resolve()}", f"BUILD={folder}"]
    if build:
        done = subprocess.run(make, capture_output=True, text=True)
        if done.returncode != 0:
            raise EmulatorError(
                f"building the firmware for {board} ({' '.join(make[2:])}) failed (is "
                f"arm-none-eabi-gcc installed? run 'make setup'):\n{done.stderr}"
            )
    elf = folder / "firmware.elf"
    if not elf.is_file():
        raise EmulatorError(f"{elf} does not exist; make {' '.join(make[1:])} builds it")
    return elf


def committed_model_hash() -> str:
    """SHA-256 (hex) of the int8 model the committed firmware/engine/model C was generated
    from ("" when that C is absent or has no hash)."""
    try:
        found = _HASH_DEFINE.search((COMMITTED_MODEL_C / "engine_model.h").read_text())
    except OSError:
        return ""
    return found.group(1) if found else ""


def _model_c_hash(folder: Path) -> str:
    """SHA-256 (hex) of ``folder``'s model_int8.tflite, after checking that the folder's
    generated C exists and was generated from that file; EmulatorError naming the command that
    writes them otherwise."""
    convert = (
        f"python -m converter build --model {folder} --out {folder}"
        if (folder / "weights.pt").is_file()
        else "python -m converter build --model TRAINED_MODEL_DIR --out DIR (DIR: a folder with "
        "everything, config.json, weights.pt, model_int8.tflite and the firmware's C)"
    )
    tflite = folder / "model_int8.tflite"
    if not tflite.is_file():
        raise EmulatorError(f"{tflite} does not exist; {convert} writes it")
    digest = hashlib.sha256(tflite.read_bytes()).hexdigest()
    if digest == committed_model_hash():
        return digest  # the committed C runs it: the folder needs none of its own
    missing = [name for name in MODEL_C_FILES if not (folder / name).is_file()]
    if missing:
        raise EmulatorError(
            f"{folder} has no firmware C for its model ({', '.join(missing)} missing); "
            f"{convert} writes it (or pass --firmware ELF)"
        )
    found = _HASH_DEFINE.search((folder / "engine_model.h").read_text())
    if found is None or found.group(1) != digest:
        raise EmulatorError(
            f"{folder / 'engine_model.h'} was generated from another model than "
            f"{tflite.name} (SHA-256 {digest[:16]}...); convert again: {convert}"
        )
    return digest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pdeathsig_preexec():
    """A preexec_fn that has the child killed (SIGKILL) when its parent dies, or None where
    prctl(PR_SET_PDEATHSIG) is unavailable (not Linux)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        # resolved here, not in the child: between fork and exec only the call itself runs
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()
    pr_set_pdeathsig = 1

    def preexec() -> None:
        if prctl(pr_set_pdeathsig, int(signal.SIGKILL), 0, 0, 0) != 0:
            os._exit(126)  # without the guard QEMU could be orphaned: refuse to start it
        if os.getppid() != parent:  # the parent died before the guard was set
            os._exit(126)

    return preexec


#: the watchdog where PR_SET_PDEATHSIG is unavailable: argv[1] parent pid, argv[2] QEMU pid;
#: kills QEMU once the parent is gone, ends when QEMU does
_WATCHDOG = """
import os, signal, sys, time
parent, child = int(sys.argv[1]), int(sys.argv[2])
def alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
while alive(child):
    if os.getppid() != parent or not alive(parent):
        try:
            os.kill(child, signal.SIGKILL)
        except ProcessLookupError:
            pass
        break
    time.sleep(0.5)
"""


class Emulator:
    """``with Emulator("emu-m4") as emu: serial.serial_for_url(emu.url)``.

    ``elf``: the firmware image to boot; without it, firmware_elf(board, model_dir=model_dir)
    (built for the model folder ``model_dir`` when that is not the committed model).
    ``guard``: how QEMU is tied to this process, "auto" (prctl on Linux, else the watchdog),
    "prctl" or "watchdog". ``extra_args``: more QEMU arguments (the cycle estimate's plugin)."""

    def __init__(
        self,
        board: str = "emu-m4",
        *,
        elf: Path | None = None,
        model_dir: str | Path | None = None,
        guard: str = "auto",
        extra_args: list[str] | None = None,
    ):
        boards = load_boards()
        if board not in boards:
            raise EmulatorError(f"unknown emulated board {board!r}; known: {sorted(boards)}")
        if guard not in ("auto", "prctl", "watchdog"):
            raise ValueError(f"guard {guard!r}: expected auto, prctl or watchdog")
        self.board = boards[board]
        self.elf = elf or firmware_elf(board, model_dir=Path(model_dir) if model_dir else None)
        self.guard = guard
        self.extra_args = list(extra_args or [])
        self.port = 0
        self.proc: subprocess.Popen | None = None
        self._watchdog: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"socket://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 10.0) -> Emulator:
        """Start QEMU (its CPU waits for connect()). With the prctl guard QEMU dies with the
        thread that calls this (Linux ties PR_SET_PDEATHSIG to the creating thread): call it
        from a thread that lives as long as the board is needed, e.g. the main thread."""
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
            *self.extra_args,
        ]
        preexec = None if self.guard == "watchdog" else _pdeathsig_preexec()
        if preexec is None and self.guard == "prctl":
            raise EmulatorError("PR_SET_PDEATHSIG is not available here (Linux only)")
        self.proc = subprocess.Popen(
            cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, preexec_fn=preexec
        )
        if preexec is None:
            self._watchdog = subprocess.Popen(
                [sys.executable, "-c", _WATCHDOG, str(os.getpid()), str(self.proc.pid)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                start_new_session=True,  # (a Ctrl-C for the tools must not stop it first)
            )
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
        if self._watchdog is not None:
            try:
                self._watchdog.wait(timeout=5)  # (it ends within 0.5 s of QEMU)
            except subprocess.TimeoutExpired:
                self._watchdog.kill()
                self._watchdog.wait()
            self._watchdog = None

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
