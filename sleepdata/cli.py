"""What every command line of the toolkit shares: option errors as one line.

argparse prints its usage block above an error; the toolkit's CLIs print every expected failure
as one line ``error: ...`` with exit code 2, so a bad option looks like every other error.
"""

from __future__ import annotations

import argparse


class ArgumentParser(argparse.ArgumentParser):
    """argparse, with its errors as one line naming the command and where to find its options
    (subcommand parsers made by ``add_subparsers`` are of this class too)."""

    def error(self, message: str):
        self.exit(2, f"error: {self.prog}: {message} (options: {self.prog} --help)\n")
