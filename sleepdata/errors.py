"""Exceptions for bad input data. Each names the file and what is wrong with it."""

from __future__ import annotations

from pathlib import Path


class DataError(Exception):
    """A recording, hypnogram or folder cannot be used. ``path`` names it; ``problem`` says why."""

    def __init__(self, path: str | Path, problem: str):
        self.path = Path(path)
        # One line, always: CLIs print ``error: <message>``, and text quoted from a library or
        # a hostile file must not break that line or spoof the next one.
        self.problem = " ".join(str(problem).split())
        super().__init__(f"{self.path}: {self.problem}")

    def __reduce__(self):
        # Subclasses take other arguments than ``args``: rebuild from the state, so that the
        # error crosses a process boundary (worker processes, sleepdata.jobs).
        return (_restore, (type(self), self.args, self.__dict__))


def _restore(cls: type[DataError], args: tuple, state: dict) -> DataError:
    err = Exception.__new__(cls)
    err.args = args
    err.__dict__.update(state)
    return err


class UnreadableFileError(DataError):
    """Not an EDF file, or an EDF file whose header does not match its contents (truncated)."""


class EdfHeaderError(UnreadableFileError):
    """An EDF header field cannot be trusted, or the EDF library failed on the file.

    ``field`` names the header field (e.g. "duration of a data record", "digital minimum") or the
    library operation that failed.
    """

    def __init__(self, path: str | Path, field: str, problem: str):
        self.field = field
        super().__init__(path, problem)


class MissingChannelError(DataError):
    """A channel the model needs is not in the recording."""


class SamplingRateError(DataError):
    """A channel is sampled at a rate the loader does not handle."""


class HypnogramError(DataError):
    """The hypnogram cannot be read, uses unknown labels, or does not fit its recording."""


class NoSleepError(DataError):
    """The hypnogram scores no sleep epoch, so there is nothing to train or score on."""


class PairingError(DataError):
    """A PSG file without its hypnogram (or the reverse), or an ambiguous pairing."""
