"""A folder of nights from several subjects: who is who, what it holds, where its cache goes.

Subjects are named by key, ``subject-NN`` for Sleep-EDF subject NN (the two digits after ``SC4``
or ``ST7`` in a file name); a recording without a Sleep-EDF name is a subject of its own, keyed by
its record name. Training splits, fine-tuning and the robustness evaluation select nights by these
keys, and model folders store their split as lists of them (config.json ``split``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

from .errors import DataError
from .names import parse_name
from .psg import HYPNOGRAM_SUFFIX, Recording, RecordingPair, discover_pairs
from .stages import N_STAGES, STAGE_NAMES


def subject_name(subject: int) -> str:
    """The key of Sleep-EDF subject number ``subject``: 4 -> 'subject-04'."""
    return f"subject-{subject:02d}"


def subject_key(rec: Recording) -> str:
    """Nights of one subject share a key; recordings without a Sleep-EDF name stand alone."""
    return subject_name(rec.subject) if rec.subject >= 0 else rec.name


def parse_subjects(text: str | None) -> list[str]:
    """Subject numbers as given on a command line, '0,1,12' or with ranges '90-99,120', -> their
    keys; None or '' -> []."""
    if not text:
        return []
    keys = []
    try:
        for token in text.split(","):
            first, _, last = token.partition("-")
            lo, hi = int(first), int(last or first)
            if hi < lo:
                raise ValueError
            keys += [subject_name(n) for n in range(lo, hi + 1)]
    except ValueError:
        raise ValueError(f"{text!r}: expected subject numbers like 0,1,12 or 90-99") from None
    return keys


def group_by_subject(recs: Iterable[Recording]) -> dict[str, list[Recording]]:
    """Subject key -> that subject's recordings, in the order given."""
    groups: dict[str, list[Recording]] = {}
    for r in recs:
        groups.setdefault(subject_key(r), []).append(r)
    return groups


def pairs_of_subjects(data: str | Path, subjects: Iterable[str]) -> list[RecordingPair]:
    """The PSG/hypnogram pairs of the folder ``data`` that may belong to ``subjects`` (keys):
    Sleep-EDF names are filtered by name, before anything is loaded; other pairs are kept, for
    the caller to filter by ``subject_key`` after loading."""
    wanted = set(subjects)
    keep = []
    for p in discover_pairs(data):
        try:
            key = subject_name(parse_name(p.name).subject)
        except ValueError:
            key = None
        if key is None or key in wanted:
            keep.append(p)
    return keep


def hypnogram_files(path: Path) -> list[Path]:
    """``path`` itself when it is a file, else the ``*-Hypnogram.edf`` files of that folder,
    sorted by name; DataError when there is none."""
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise DataError(path, "no such file or folder")
    suffix = HYPNOGRAM_SUFFIX.lower()
    files = sorted(p for p in path.iterdir() if p.name.lower().endswith(suffix))
    if not files:
        raise DataError(path, f"no *{HYPNOGRAM_SUFFIX} file in this folder")
    return files


def stage_table(rows: Sequence[tuple[str, np.ndarray]]) -> str:
    """A per-stage epoch count table of (record name, AASM labels 0..4) rows: one line per
    recording, then the total over all."""
    head = f"{'recording':<12}" + "".join(f"{s:>8}" for s in STAGE_NAMES) + f"{'total':>9}"
    lines = [head, "-" * len(head)]
    total = np.zeros(N_STAGES, dtype=int)
    for name, labels in rows:
        c = np.bincount(labels, minlength=N_STAGES)
        total += c
        lines.append(f"{name:<12}" + "".join(f"{v:>8}" for v in c) + f"{c.sum():>9}")
    lines.append("-" * len(head))
    lines.append(f"{'all':<12}" + "".join(f"{v:>8}" for v in total) + f"{total.sum():>9}")
    return "\n".join(lines)
