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

EXIT_ERROR = 2
EXIT_INTERRUPTED = 130
_MODEL_HELP = (
    "model folder (default: the shipped model, models/ulw_sleepnet of the source checkout)"
)


def _open(args, model_dir=None):
    """(device, closer) for --port URL (any pyserial URL: a device path, socket://,
    rfc2217://) or an emulated --board running firmware for ``model_dir`` (default: --model,
    else the shipped model)."""
    import serial

    from .device import Device, DeviceError
    from .emulator import Emulator
    from .faults import FaultyLink
    from .transport import open_port

    spec = getattr(args, "faults", None)
    counts = None

    def faulty(port):
        """The port, behind the fault injector when --faults is given (one set of counts for
        the link and the links that replace it after a cut)."""
        nonlocal counts
        if spec is None:
            return port
        link = FaultyLink(port, spec, counts=counts)
        counts = link.counts
        return link

    if args.port:

        def reopen():
            try:
                return faulty(open_port(args.port, args.baud))
            except (serial.SerialException, ValueError) as exc:
                raise DeviceError(
                    f"opening {args.port}: {exc}; check the port name or URL, that the board "
                    "is connected and that no other program holds the port"
                ) from None

        port = reopen()
        dev = Device(port, reopen=reopen, faults=counts)
        return dev, lambda: dev.port.close()
    model_dir = model_dir if model_dir is not None else getattr(args, "model", None)
    emu = Emulator(args.board, elf=_firmware(args), model_dir=model_dir).start()
    try:
        port = faulty(emu.connect())
    except BaseException:
        emu.stop()
        raise
    dev = Device(port, timeout_s=120, reopen=lambda: faulty(emu.connect()), faults=counts)

    def close():
        try:
            dev.port.close()
        finally:
            emu.stop()

    return dev, close


def _firmware(args) -> Path | None:
    from .emulator import EmulatorError

    firmware = getattr(args, "firmware", None)
    if firmware and not Path(firmware).is_file():
        raise EmulatorError(f"--firmware {firmware}: no such file")
    return Path(firmware) if firmware else None


def _port_label(args) -> str:
    return args.port if args.port else f"emulated {args.board}"


def cmd_bench(args) -> int:
    from .bench import bench, fixed_epochs, render
    from .reference import ModelFiles

    model = ModelFiles.load(args.model)  # (a missing model folder fails before a board starts)
    epochs = fixed_epochs(model, args.epochs, args.seed, args.psg)  # (and so does a bad recording)
    if args.cycles:
        from .cycles.commands import bench_cycles

        return bench_cycles(args, model, epochs, firmware=_firmware(args))
    dev, close = _open(args)
    try:
        result = bench(dev, model=model, epochs=epochs, events=args.events)
    finally:
        close()
    result["inputs"] = {"seed": args.seed, "psg": args.psg}  # (calibrate re-creates the epochs)
    print(json.dumps(result, indent=1) if args.json else render(result))
    return 0


def cmd_calibrate(args) -> int:
    from .cycles.commands import calibrate_command

    return calibrate_command(args, _open)


def cmd_info(args) -> int:
    dev, close = _open(args)
    try:
        info = dev.hello()
    finally:
        close()
    from .rendering import info_text

    print(info_text(info))
    return 0


def cmd_stream(args) -> int:
    from sleepdata.progress import progress
    from sleepdata.psg import pair_for

    from .inputs import check_adversarial, read_adversarial_file
    from .reference import ModelFiles
    from .rendering import faults_text, summary_text
    from .stream import StreamInterrupted, StreamOptions, stream

    started = time.perf_counter()
    # a missing file, model folder or an adversarial file for another record or model fails
    # before a board starts
    pair = pair_for(args.night, args.hypnogram)
    model = ModelFiles.load(args.model)
    if args.adversarial:
        adv = read_adversarial_file(args.adversarial)
        check_adversarial(adv, pair.name, model)
    out = Path(args.out) if args.out else Path("runs") / "stream" / Path(args.night).name[:8]
    options = StreamOptions(
        hypnogram=Path(args.hypnogram) if args.hypnogram else None,
        start=args.start,
        epochs=args.epochs,
        realtime=args.realtime,
        noise=args.noise,
        seed=args.seed,
        resume=args.resume,
        model_dir=model.folder,
        adversarial=Path(args.adversarial) if args.adversarial else None,
    )
    bar = None

    def on_result(row, done: int, total: int) -> None:
        nonlocal bar
        if bar is None:
            bar = progress(total=total, initial=done - 1, unit="epoch", desc="stream")
        bar.update(1)

    interrupted = None
    dev, close = _open(args)
    try:
        report = stream(
            dev,
            args.night,
            out,
            options,
            port_label=_port_label(args),
            on_result=on_result,
            started=started,
        )
    except StreamInterrupted as exc:
        interrupted = exc
    finally:
        # the bar ends (and the emulator stops) before any message, so none lands inside it
        if bar is not None:
            bar.close()
        close()
    if interrupted is not None:
        print(args.interrupts.message(str(interrupted)), file=sys.stderr)
        return EXIT_INTERRUPTED
    if not report:
        print(
            f"nothing to stream: {out} already holds every planned epoch "
            f"(host_tools report {out} renders it again)"
        )
        return 0
    if args.cycles_sample and not args.port:
        from .cycles.commands import stream_cycles

        report = stream_cycles(args, out, model, firmware=_firmware(args))
    print(summary_text(report, out))
    if report.get("faults"):
        print(faults_text(report))
    return 0


def cmd_robustness(args) -> int:
    from .rendering import onchip_text
    from .robustness import plan_sweep, run_sweep

    run = Path(args.run)
    out = Path(args.out) if args.out else run / "onchip"
    sweep = plan_sweep(run, out, model=args.model, data=args.data, max_epochs=args.max_epochs)
    print(
        f"{len(sweep.jobs)} streams, {sweep.total_epochs:,} epochs of {len(sweep.nights)} "
        f"nights to {_port_label(args)}; run folders in {out}",
        flush=True,
    )
    from .stream import StreamInterrupted

    interrupted = None
    dev, close = _open(args, model_dir=sweep.model.folder)
    try:
        result = run_sweep(dev, sweep, port_label=_port_label(args))
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
    from .rendering import summary_text
    from .report import render_folder

    report = render_folder(args.folder)
    print(summary_text(report, args.folder))
    return 0


def cmd_board(args) -> int:
    from .emulator import Emulator, EmulatorError

    emu = Emulator(args.board, elf=_firmware(args), model_dir=getattr(args, "model", None)).start()
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


def _board_options(p: argparse.ArgumentParser, *, port: bool = True) -> None:
    if port:
        p.add_argument(
            "--port",
            help="pyserial URL of a board: /dev/ttyACM0, socket://HOST:PORT, rfc2217://... "
            "(default: start an emulated board)",
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
    p.add_argument("night", metavar="NIGHT.edf", help="PSG file (Sleep-EDF layout)")
    p.add_argument("--hypnogram", help="its hypnogram (default: found next to the PSG)")
    _board_options(p)
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
    p.add_argument("--out", help="run folder (default: runs/stream/<record>)")
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
