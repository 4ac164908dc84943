"""``host_tools`` console script (``python -m host_tools``)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from . import __version__


def _open(args):
    """(device, closer) for --port URL or an emulated --board."""
    import serial

    from .device import Device
    from .emulator import Emulator

    if args.port:
        port = serial.serial_for_url(args.port, baudrate=args.baud, timeout=0.05)
        return Device(port), port.close
    emu = Emulator(args.board).start()
    port = emu.connect()

    def close():
        port.close()
        emu.stop()

    return Device(port, timeout_s=120), close


def cmd_bench(args) -> int:
    from .bench import bench, render

    dev, close = _open(args)
    try:
        result = bench(dev, args.epochs, args.seed)
    finally:
        close()
    print(json.dumps(result, indent=1) if args.json else render(result))
    return 0


def cmd_info(args) -> int:
    dev, close = _open(args)
    try:
        info = dev.hello()
    finally:
        close()
    for key, value in vars(info).items():
        print(f"{key:<18}{value.hex() if isinstance(value, bytes) else value}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="host_tools",
        description="Talk to a board running the ULW-SleepNet firmware (a real one with --port, "
        "or an emulated one). Streaming whole recordings (stream, report) comes next.",
    )
    parser.add_argument("--version", action="version", version=f"host_tools {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, func, help_ in (
        ("info", cmd_info, "the board's self-description"),
        ("bench", cmd_bench, "counts of N inferences, per layer"),
    ):
        p = sub.add_parser(name, help=help_)
        p.add_argument("--port", help="pyserial URL of a real board (default: emulated)")
        p.add_argument("--board", default="emu-m4", help="emulated board (emu-m4, emu-an386)")
        p.add_argument("--baud", type=int, default=921600)
        p.set_defaults(func=func)
        if name == "bench":
            p.add_argument("--epochs", type=int, default=5)
            p.add_argument("--seed", type=int, default=0)
            p.add_argument("--json", action="store_true")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from .device import DeviceError
    from .emulator import EmulatorError

    try:
        return args.func(args)
    except (DeviceError, EmulatorError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
