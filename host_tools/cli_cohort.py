"""``host_tools stream`` with several nights or boards: the cohort form (host_tools.cohort).

``host_tools stream A.edf B.edf DIR/ --boards 2 --out COHORT`` streams every night through two
emulated boards; ``--port URL --port URL2`` through those real boards instead. One progress
bar for the whole cohort (nights done, epochs/s over all boards, ETA), a summary at the end, and
exit status EXIT_ERROR when any night failed (the report names each failure)."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from .cohort import Board, CohortError, CohortInterrupted, open_cohort
from .cohort_report import write_cohort_outputs
from .device import Device, DeviceError


def is_cohort_request(args) -> bool:
    """Whether ``host_tools stream`` was given a cohort: several nights, a folder, several
    boards or several ports."""
    return (
        len(args.night) > 1
        or Path(args.night[0]).is_dir()
        or args.boards > 1
        or len(args.port or []) > 1
    )


def _emulated_board(k: int, board: str, elf: Path, wire: str) -> Board:
    from .emulator import Emulator

    def open_() -> tuple[Device, Callable[[], None]]:
        emu = Emulator(board, elf=elf).start()  # (in the worker thread: QEMU lives as long)
        try:
            port = emu.connect()
        except BaseException:
            emu.stop()
            raise
        dev = Device(port, timeout_s=120, reopen=emu.connect, wire=wire)

        def close() -> None:
            try:
                dev.port.close()
            finally:
                emu.stop()

        return dev, close

    return Board(f"emulated {board} #{k + 1}", open_)


def _port_board(url: str, baud: int, wire: str) -> Board:
    import serial

    from .transport import open_port

    def reopen():
        try:
            return open_port(url, baud)
        except (serial.SerialException, ValueError) as exc:
            raise DeviceError(f"opening {url}: {exc}") from None

    def open_() -> tuple[Device, Callable[[], None]]:
        dev = Device(reopen(), reopen=reopen, wire=wire)
        return dev, lambda: dev.port.close()

    return Board(url, open_)


def cohort_boards(args, model_dir: Path) -> list[Board]:
    """The boards of the command line: each --port, else --boards emulated boards (their
    firmware resolved, and built when missing, once, before any board starts)."""
    if args.port:
        if args.boards > 1:
            raise CohortError("--boards starts emulated boards; with --port give each board's URL")
        return [_port_board(url, args.baud, args.wire) for url in args.port]
    from .emulator import EmulatorError, firmware_elf

    elf = Path(args.firmware) if args.firmware else None
    if elf is not None and not elf.is_file():
        raise EmulatorError(f"--firmware {elf}: no such file")
    elf = elf or firmware_elf(args.board, model_dir=model_dir)
    return [_emulated_board(k, args.board, elf, args.wire) for k in range(args.boards)]


def cmd_cohort(args, interrupts, exit_error: int, exit_interrupted: int) -> int:
    from sleepdata.progress import progress

    from .cli_stream import stream_options
    from .reference import ModelFiles
    from .rendering import cohort_summary_text

    for option in ("hypnogram", "adversarial"):
        if getattr(args, option):
            raise CohortError(
                f"--{option} names one night's file: a cohort finds each night's hypnogram "
                "next to its PSG and takes no adversarial file"
            )
    model = ModelFiles.load(args.model)
    out = Path(args.out) if args.out else Path("runs") / "cohort"
    options = stream_options(args, model.folder)  # (--hypnogram, --adversarial refused above)
    run = open_cohort(args.night, out, options, cohort_boards(args, model.folder), args.resume)
    todo = [n for n in run.nights if n.status != "done"]
    print(
        f"{len(run.nights)} nights ({len(run.nights) - len(todo)} done before) through "
        f"{len(run.boards)} board(s); cohort folder {out}",
        flush=True,
    )
    t0 = time.perf_counter()
    bar = progress(total=len(todo), unit="night", desc="cohort")
    lock, epochs = threading.Lock(), [0]

    def on_result(row, done, total) -> None:  # (from every board's thread)
        with lock:
            epochs[0] += 1
            rate = epochs[0] / max(time.perf_counter() - t0, 1e-9)
            bar.desc = f"cohort ({epochs[0]:,} epochs, {rate:.1f} epochs/s over all boards)"

    def on_night(night) -> None:
        with lock:
            bar.update(1)

    try:
        run.run(on_result=on_result, on_night=on_night)
    except CohortInterrupted as exc:
        bar.close()
        write_cohort_outputs(out)
        print(interrupts.message(str(exc)), file=sys.stderr)
        return exit_interrupted
    bar.close()
    report = write_cohort_outputs(out)
    print(cohort_summary_text(report, out))
    return exit_error if report["nights_failed"] or report["nights_pending"] else 0
