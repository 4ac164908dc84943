"""Options of the cycle estimate's command (kept apart so that building the parser imports
nothing heavy)."""

from __future__ import annotations


def add_calibrate_parser(sub, board_options, func, positive_int, model_help) -> None:
    """The ``calibrate`` subcommand's options (host_tools.cli builds the rest)."""
    p = sub.add_parser(
        "calibrate",
        help="fit the cycle estimate's memory stalls to a real board's measured cycles",
        description="Per-layer cycles measured on a real board (--port, or its recorded "
        "`bench --port URL --json` output, --measured) against the emulated board's estimate "
        "of the same epochs; the fitted stalls are written as a board profile for "
        "`bench --cycles --memory-profile` (docs/cycles.md).",
    )
    board_options(p)
    p.set_defaults(func=func)
    p.add_argument("--measured", metavar="FILE", help="a real board's bench --json output")
    p.add_argument("--epochs", type=positive_int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--psg", metavar="NIGHT.edf", help="take the epochs from this recording")
    p.add_argument("--model", metavar="DIR", help=model_help)
    p.add_argument("--setting", default="nucleo-l476rg", help="the memory setting to fit")
    p.add_argument("--out", default="board-profile.ini", help="the board profile to write")
    p.add_argument("--json", action="store_true")
