"""``host_tools`` console script (``python -m host_tools``): a thin layer over the operations.

Commands: ``stream`` (a recording through a board, compared), ``robustness`` (a training
robustness run's noise conditions through a board), ``report`` (re-render a stream folder),
``board`` (keep an emulated board running for other tools), ``info``, ``bench``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from sleepdata.cli import ArgumentParser

from . import __version__
from .cli_boards import firmware_arg, open_device, port_label

EXIT_ERROR = 2
EXIT_INTERRUPTED = 130
_MODEL_HELP = (
    "model folder (default: the shipped model, models/ulw_sleepnet of the source checkout)"
)


def cmd_bench(args) -> int:
    from .bench import bench, fixed_epochs, render
    from .reference import ModelFiles

    model = ModelFiles.load(args.model)  # (a missing model folder fails before a board starts)
    epochs = fixed_epochs(model, args.epochs, args.seed, args.psg)  # (and so does a bad recording)
    if args.cycles:
        from .cycles.commands import bench_cycles

        return bench_cycles(args, model, epochs, firmware=firmware_arg(args))
    dev, close = open_device(args)
    try:
        result = bench(dev, model=model, epochs=epochs, events=args.events)
    finally:
        close()
    result["inputs"] = {"seed": args.seed, "psg": args.psg}  # (calibrate re-creates the epochs)
    print(json.dumps(result, indent=1) if args.json else render(result))
    return 0


def cmd_calibrate(args) -> int:
    from .cycles.commands import calibrate_command

    return calibrate_command(args, open_device)


def cmd_info(args) -> int:
    dev, close = open_device(args)
    try:
        info = dev.hello()
    finally:
        close()
    from .rendering import info_text

    print(info_text(info))
    return 0


def cmd_stream(args) -> int:
    from .cli_stream import cmd_stream as run

    return run(args, EXIT_ERROR, EXIT_INTERRUPTED)


def cmd_robustness(args) -> int:
    from .rendering import onchip_text
    from .robustness import plan_sweep, run_sweep

    run = Path(args.run)
    out = Path(args.out) if args.out else run / "onchip"
    sweep = plan_sweep(run, out, model=args.model, data=args.data, max_epochs=args.max_epochs)
    print(
        f"{len(sweep.jobs)} streams, {sweep.total_epochs:,} epochs of {len(sweep.nights)} "
        f"nights to {port_label(args)}; run folders in {out}",
        flush=True,
    )
    from .stream import StreamInterrupted

    interrupted = None
    dev, close = open_device(args, model_dir=sweep.model.folder)
    try:
        result = run_sweep(dev, sweep, port_label=port_label(args))
    except StreamInterrupted as exc:
        interrupted = exc  # (run_sweep has closed its progress bar)
    finally:
        close()
    if interrupted is not None:
        text = f"{interrupted}; run the same host_tools robustness command to continue"
        print(args.interrupts.message(text), file=sys.stderr)
        return EXIT_INTERRUPTED
    print(onchip_text(result))
    print(f"on-chip figures: {out / 'onchip.json'}, table: {out / 'table.md'}")
    return 0


def cmd_report(args) -> int:
    from .cohort_report import is_cohort, write_cohort_outputs
    from .rendering import cohort_summary_text, summary_text
    from .report import render_folder

    if is_cohort(args.folder):
        report = write_cohort_outputs(args.folder)
        print(cohort_summary_text(report, args.folder))
        return 0 if not report["nights_failed"] else EXIT_ERROR
    report = render_folder(args.folder)
    print(summary_text(report, args.folder))
    return 0


def cmd_board(args) -> int:
    from .emulator import Emulator, EmulatorError

    emu = Emulator(
        args.board, elf=firmware_arg(args), model_dir=getattr(args, "model", None)
    ).start()
    try:
        print(f"{args.board} emulated board at {emu.url}", flush=True)
        print(
            f"connect with --port {emu.url} (one connection at a time); Ctrl-C stops it",
            flush=True,
        )
        while emu.proc is not None and emu.proc.poll() is None:
            time.sleep(0.2)
        raise EmulatorError(f"QEMU for {args.board} stopped on its own")
    except KeyboardInterrupt:
        emu.stop()
        print(args.interrupts.message(f"{args.board} stopped"), file=sys.stderr)
        return 0
    finally:
        emu.stop()


def _faults(text: str):
    from .faults import FaultSpec

    try:
        return FaultSpec.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _noise(text: str):
    from sleepdata.noise import NoiseSpec

    try:
        return NoiseSpec.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _board_options(p: argparse.ArgumentParser, *, port: bool = True, ports: bool = False) -> None:
    if port:
        p.add_argument(
            "--port",
            action="append" if ports else "store",
            help="pyserial URL of a board: /dev/ttyACM0, socket://HOST:PORT, rfc2217://... "
            "(default: start an emulated board)"
            + ("; repeat it to stream a cohort through several boards" if ports else ""),
        )
        p.add_argument("--baud", type=int, default=921600)
    p.add_argument("--board", default="emu-m4", help="emulated board (emu-m4, emu-an386)")
    p.add_argument(
        "--firmware",
        metavar="ELF",
        help="firmware image for the emulated board, e.g. one built for another model with "
        "make -C firmware MODEL_DIR=... BUILD=... (default: firmware/build/<board>/firmware.elf, "
        "rebuilt when out of date)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog="host_tools",
        description="Stream recordings to a board running the ULW-SleepNet firmware (a real one "
        "with --port, or an emulated one) and compare its results (docs/streaming.md).",
    )
    parser.add_argument("--version", action="version", version=f"host_tools {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("stream", help="stream a recording through the board and compare")
    p.add_argument(
        "night",
        metavar="NIGHT.edf",
        nargs="+",
        help="PSG file (Sleep-EDF layout); several files or folders of *-PSG.edf make a cohort "
        "(docs/streaming.md, 'A cohort')",
    )
    p.add_argument("--hypnogram", help="its hypnogram (default: found next to the PSG)")
    _board_options(p, ports=True)
    p.add_argument(
        "--boards",
        type=_positive_int,
        default=1,
        help="emulated boards streaming a cohort at once (nights go longest first to whichever "
        "board is free)",
    )
    p.add_argument("--start", type=int, default=0, help="first kept epoch to stream (0)")
    p.add_argument("--epochs", type=int, default=None, help="how many epochs (default: all)")
    p.add_argument(
        "--cycles-sample",
        type=int,
        default=3,
        metavar="N",
        help="emulated board: estimate Cortex-M4 cycles of N of the run's epochs (first, "
        "middle, last) into the report (docs/cycles.md; 0: none; default 3)",
    )
    p.add_argument(
        "--realtime", action="store_true", help="pace at the recording's rate (30 s per epoch)"
    )
    inputs = p.add_mutually_exclusive_group()
    inputs.add_argument(
        "--noise",
        type=_noise,
        default=None,
        metavar="SPEC",
        help="add REST noise in uV before the wire conversion: gaussian:C (zero-mean, C x "
        "sigma), gaussian-mean:C (plus the training mean) or shot:C; C may be low, med or high",
    )
    inputs.add_argument(
        "--adversarial",
        metavar="FILE.npz",
        help="stream the int16 wire samples of an adversarial epoch file of this recording "
        "(python -m training robustness --write-adversarial) at its epochs",
    )
    p.add_argument("--seed", type=int, default=0, help="noise seed (0)")
    p.add_argument(
        "--faults",
        type=_faults,
        default=None,
        metavar="SPEC",
        help="inject link faults, e.g. corrupt=0.01,drop=0.005 (host_tools/faults.py)",
    )
    p.add_argument(
        "--wire",
        choices=("auto", "raw"),
        default="auto",
        help="samples on the link: auto codes them losslessly (SAMPLES_RICE, about half the "
        "bytes) when the board decodes that, raw never codes (default auto; docs/protocol.md)",
    )
    p.add_argument(
        "--out", help="run folder (default: runs/stream/<record>; a cohort: runs/cohort)"
    )
    p.add_argument(
        "--resume", action="store_true", help="continue the run in --out after its last epoch"
    )
    p.add_argument("--model", metavar="DIR", help=_MODEL_HELP)
    p.set_defaults(func=cmd_stream)

    p = sub.add_parser(
        "robustness",
        help="a training robustness run's conditions, streamed through one board",
        description="Stream the epochs a 'python -m training robustness' run scored, with the "
        "same noise (and its adversarial files), through one board; write onchip.json "
        "(docs/robustness.md).",
    )
    p.add_argument("--run", required=True, metavar="DIR", help="training robustness --out folder")
    p.add_argument("--model", help="model folder (default: the one results.json names)")
    p.add_argument("--data", help="folder with the test recordings (default: results.json paths)")
    _board_options(p)
    p.add_argument(
        "--max-epochs",
        type=int,
        default=None,
        metavar="N",
        help="the first N epochs of each subset, pooled over the nights (default: all)",
    )
    p.add_argument("--out", metavar="OUTDIR", help="output folder (default: DIR/onchip)")
    p.set_defaults(func=cmd_robustness)

    p = sub.add_parser("report", help="re-render a stream folder from results.csv + run.json")
    p.add_argument("folder", metavar="DIR")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser(
        "board", help="run an emulated board until Ctrl-C (or SIGTERM); print its URL"
    )
    _board_options(p, port=False)
    p.set_defaults(func=cmd_board)

    from .cycles.cli_options import add_calibrate_parser

    add_calibrate_parser(sub, _board_options, cmd_calibrate, _positive_int, _MODEL_HELP)

    for name, func, help_ in (
        ("info", cmd_info, "the board's self-description"),
        ("bench", cmd_bench, "counts of N inferences, per layer"),
    ):
        p = sub.add_parser(name, help=help_)
        _board_options(p)
        p.set_defaults(func=func)
        if name == "bench":
            p.add_argument("--epochs", type=_positive_int, default=5)
            p.add_argument("--seed", type=int, default=0)
            p.add_argument("--json", action="store_true")
            p.add_argument(
                "--psg",
                metavar="NIGHT.edf",
                help="take the epochs from this recording, hypnogram beside it (default: a "
                "simulated night, which needs scipy)",
            )
            p.add_argument(
                "--model",
                metavar="DIR",
                help="model folder: its input normalisation and layer names (default: "
                "models/ulw_sleepnet of the source checkout)",
            )
            p.add_argument(
                "--cycles",
                action="store_true",
                help="estimate Cortex-M4 cycles from the emulated board's exact instruction "
                "stream (per epoch and layer, each memory setting; docs/cycles.md)",
            )
            p.add_argument(
                "--memory-profile",
                metavar="FILE",
                help="with --cycles: a board profile (host_tools calibrate) adding or replacing "
                "memory settings",
            )
            p.add_argument(
                "--keep-trace", metavar="DIR", help="with --cycles: keep the plugin's trace here"
            )
            p.add_argument(
                "--events",
                action="store_true",
                help="also the DWT event counters per layer (real boards: each epoch runs twice)",
            )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; SIGTERM and SIGHUP are handled as Ctrl-C meanwhile (results saved, the
    emulator stopped, exit code EXIT_INTERRUPTED; host_tools.interrupts)."""
    from .interrupts import signals_as_interrupts

    args = build_parser().parse_args(argv)
    with signals_as_interrupts() as interrupts:
        args.interrupts = interrupts
        return _run(args)


def _run(args) -> int:
    from sleepdata.errors import DataError

    from .bench import BenchError
    from .cohort import CohortError
    from .cycles.errors import CyclesError
    from .emulator import EmulatorError
    from .errors import DeviceError
    from .inputs import StreamError
    from .reference import ModelError
    from .runfolder import RunFolderError

    try:
        return args.func(args)
    except (
        BenchError,
        CohortError,
        CyclesError,
        DeviceError,
        EmulatorError,
        DataError,
        StreamError,
        RunFolderError,
        ModelError,
    ) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print(args.interrupts.message("interrupted"), file=sys.stderr)
        return EXIT_INTERRUPTED
