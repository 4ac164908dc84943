"""Failures a user can fix: the command line prints each as one line ``error: ...`` and exits
with code 2 (``training.cli.main``); anything else is a bug and keeps its traceback."""

from __future__ import annotations

from sleepdata.errors import DataError


class TrainingError(ValueError):
    """An option, a subject split or a run folder that cannot be used. The message names the
    option or folder, what is wrong, and what to do instead. (A ValueError, as these failures
    were before they had a class of their own.)"""


class ModelFolderError(DataError, FileNotFoundError):
    """A model folder without its config.json or weights.pt (``path`` names the folder)."""
