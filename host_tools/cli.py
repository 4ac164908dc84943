"""``host_tools`` console script."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from . import __version__


def build_parser() -> argparse.ArgumentParser:
    return argparse.ArgumentParser(
        prog="host_tools",
        description="Stream EDF recordings to a board (real or emulated) and compare its sleep "
        "stages, scores and counts with the reference model. The serial commands (stream, info, "
        "bench, report, board) arrive with the firmware; see README.md for the status.",
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    parser.add_argument("--version", action="version", version=f"host_tools {__version__}")
    parser.parse_args(argv)
    parser.print_help()
    return 0
