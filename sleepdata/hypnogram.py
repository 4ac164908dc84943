"""Hypnograms: Sleep-EDF EDF+ annotation files <-> 30-s epochs of AASM stages."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyedflib

from .edfguard import captured_fds, describe_failure
from .errors import HypnogramError
from .layout import EPOCH_S
from .stages import AASM_TO_RK, MOVEMENT, RK_TO_AASM, STAGE_NAMES, UNSCORED


@dataclass(frozen=True)
class Hypnogram:
    """A scored night: R&K annotations as read from the file, with the file's start time."""

    path: Path
    start: dt.datetime
    onsets_s: np.ndarray  # float64, seconds from `start`
    durations_s: np.ndarray  # float64
    texts: tuple[str, ...]

    def epochs(self) -> tuple[np.ndarray, np.ndarray]:
        """Expand annotations into 30-s epochs: (onsets in s from `start`, AASM labels).

        Unscored ("?") epochs get UNSCORED and movement time MOVEMENT. Raises HypnogramError
        for an unknown label or an annotation not on the 30-s grid.
        """
        onsets, labels = [], []
        for onset, duration, text in zip(self.onsets_s, self.durations_s, self.texts, strict=True):
            if text not in RK_TO_AASM:
                raise HypnogramError(
                    self.path,
                    f"unknown annotation {text!r} at {onset:g} s; "
                    f"expected one of {sorted(RK_TO_AASM)}",
                )
            if onset % EPOCH_S or duration % EPOCH_S or duration <= 0:
                raise HypnogramError(
                    self.path,
                    f"annotation {text!r} at {onset:g} s lasting "
                    f"{duration:g} s is not on the {EPOCH_S}-s epoch grid",
                )
            n = int(duration // EPOCH_S)
            onsets.append(onset + EPOCH_S * np.arange(n))
            labels.append(np.full(n, RK_TO_AASM[text], dtype=np.int8))
        if not onsets:
            raise HypnogramError(self.path, "the hypnogram holds no annotations")
        on, lab = np.concatenate(onsets), np.concatenate(labels)
        if np.any(np.diff(on) <= 0):
            i = int(np.argmax(np.diff(on) <= 0))
            raise HypnogramError(
                self.path, f"annotations overlap or are out of order at {on[i + 1]:g} s"
            )
        return on, lab

    def stage_grid(self) -> np.ndarray:
        """One label per 30-s slot from the hypnogram's start (UNSCORED where nothing is)."""
        onsets, labels = self.epochs()
        grid = np.full(int(onsets[-1] // EPOCH_S) + 1, UNSCORED, dtype=np.int8)
        grid[(onsets // EPOCH_S).astype(int)] = labels
        return grid


def read_hypnogram(path: str | Path) -> Hypnogram:
    path = Path(path)
    said: list[str] = []  # what the EDF library prints (it must not reach the user)
    try:
        with captured_fds(said), pyedflib.EdfReader(str(path)) as reader:
            onsets, durations, texts = reader.readAnnotations()
            start = reader.getStartdatetime()
    except Exception as exc:  # any library failure is a property of the file
        _, reason = describe_failure(path, exc, " ".join(said))
        raise HypnogramError(path, f"not a readable EDF+ annotation file ({reason})") from None
    return Hypnogram(
        path,
        start,
        np.asarray(onsets, dtype=np.float64),
        np.asarray(durations, dtype=np.float64),
        tuple(str(t) for t in texts),
    )


def runs(labels: np.ndarray) -> list[tuple[int, int, int]]:
    """Run-length encoding of a label sequence: (first index, length, label)."""
    labels = np.asarray(labels)
    if labels.size == 0:
        return []
    cuts = np.flatnonzero(np.diff(labels)) + 1
    starts = np.concatenate(([0], cuts))
    ends = np.concatenate((cuts, [labels.size]))
    return [(int(s), int(e - s), int(labels[s])) for s, e in zip(starts, ends, strict=True)]


def write_hypnogram(
    path: str | Path,
    start: dt.datetime,
    labels: np.ndarray,
    *,
    unscored_tail_s: float = 0.0,
    patient: str = "",
) -> None:
    """Write 30-s AASM labels as a Sleep-EDF style EDF+ hypnogram (R&K texts, merged runs).

    UNSCORED epochs are written as "Sleep stage ?" and MOVEMENT ones as "Movement time".
    ``unscored_tail_s`` appends a final "Sleep stage ?" annotation after the last epoch, as
    Sleep-EDF hypnograms have.
    """
    writer = pyedflib.EdfWriter(str(path), 0, file_type=pyedflib.FILETYPE_EDFPLUS)
    try:
        writer.setStartdatetime(start)
        if patient:
            writer.setPatientName(patient)
        for first, length, label in runs(labels):
            text = {UNSCORED: "Sleep stage ?", MOVEMENT: "Movement time"}.get(label)
            text = text or AASM_TO_RK[label]
            writer.writeAnnotation(first * EPOCH_S, length * EPOCH_S, text)
        if unscored_tail_s > 0:
            writer.writeAnnotation(len(labels) * EPOCH_S, unscored_tail_s, "Sleep stage ?")
    finally:
        writer.close()


def write_stage_tsv(
    path: str | Path,
    onsets_s: np.ndarray,
    expert: np.ndarray,
    predicted: np.ndarray,
    probs: np.ndarray,
) -> None:
    """A scored night as TSV, one row per epoch: onset and duration (s), expert and predicted
    AASM stage, and p(stage) for each of the five stages (``probs`` (n, 5))."""
    head = ["onset_s", "duration_s", "expert", "predicted", *[f"p_{s}" for s in STAGE_NAMES]]
    lines = ["\t".join(head)]
    for onset, truth, pred, p in zip(onsets_s, expert, predicted, probs, strict=True):
        row = [f"{onset:g}", str(EPOCH_S), STAGE_NAMES[truth], STAGE_NAMES[pred]]
        lines.append("\t".join([*row, *[f"{v:.4f}" for v in p]]))
    Path(path).write_text("\n".join(lines) + "\n")
