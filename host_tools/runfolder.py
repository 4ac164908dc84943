"""A stream run folder's two source files: ``results.csv`` (one row per epoch, appended as the
results arrive; a crash leaves whole rows plus at most one torn last line, which reading drops
and a resume cuts off) and ``run.json`` (what was streamed, to which board, and each session's
timing), and the names of the files rendered from them (host_tools.report). Nothing here prints.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sleepdata.stages import N_STAGES, STAGE_NAMES

RESULTS = "results.csv"
RUN = "run.json"
REPORT_JSON = "report.json"
REPORT_MD = "report.md"
PLOT = "hypnogram.png"
EDF = "hypnogram_onchip.edf"
TSV = "hypnogram_onchip.tsv"

_S = STAGE_NAMES
#: results.csv columns, in order. Stages are names (W, N1, N2, N3, REM); scores are int8.
RESULT_COLUMNS: tuple[str, ...] = (
    "epoch",  # index of the epoch among the recording's kept (scored) epochs
    "onset_s",  # seconds from the PSG start
    "expert",
    "onchip",
    *(f"onchip_{s}" for s in _S),
    "tflm",
    *(f"tflm_{s}" for s in _S),
    "bitexact",  # 1 when the on-chip scores and stage equal TFLite Micro's
    "float",
    *(f"float_p_{s}" for s in _S),
    "preprocess_count",
    "inference_count",
)


class RunFolderError(RuntimeError):
    """A run folder that cannot be read or continued; names the file and what to do."""


# ------------------------------------------------------------------------------------------
# results.csv


@dataclass
class EpochRow:
    """One epoch's results: the board's, TFLite Micro's and the float model's."""

    epoch: int
    onset_s: float
    expert: int
    onchip: int
    onchip_scores: tuple[int, ...]
    tflm_scores: tuple[int, ...]
    float_probs: tuple[float, ...]
    preprocess_count: int
    inference_count: int

    @property
    def tflm(self) -> int:
        return int(np.argmax(self.tflm_scores))

    @property
    def float_stage(self) -> int:
        return int(np.argmax(self.float_probs))

    @property
    def bitexact(self) -> bool:
        return tuple(self.onchip_scores) == tuple(self.tflm_scores) and self.onchip == self.tflm

    def line(self) -> str:
        fields = [
            str(self.epoch),
            f"{self.onset_s:.2f}",
            _S[self.expert],
            _S[self.onchip],
            *(str(int(v)) for v in self.onchip_scores),
            _S[self.tflm],
            *(str(int(v)) for v in self.tflm_scores),
            "1" if self.bitexact else "0",
            _S[self.float_stage],
            *(f"{v:.6f}" for v in self.float_probs),
            str(self.preprocess_count),
            str(self.inference_count),
        ]
        return ",".join(fields) + "\n"


@dataclass
class Results:
    """The rows of a results.csv as arrays (n = number of epochs)."""

    epoch: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    onset_s: np.ndarray = field(default_factory=lambda: np.zeros(0))
    expert: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    onchip: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    onchip_scores: np.ndarray = field(default_factory=lambda: np.zeros((0, N_STAGES), np.int64))
    tflm: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    tflm_scores: np.ndarray = field(default_factory=lambda: np.zeros((0, N_STAGES), np.int64))
    bitexact: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    float_stage: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    float_probs: np.ndarray = field(default_factory=lambda: np.zeros((0, N_STAGES)))
    preprocess_count: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    inference_count: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))

    def __len__(self) -> int:
        return int(self.epoch.size)


_HEADER = ",".join(RESULT_COLUMNS) + "\n"


def _parse_line(path: Path, lineno: int, line: str) -> list:
    parts = line.rstrip("\n").split(",")
    if len(parts) != len(RESULT_COLUMNS):
        raise RunFolderError(
            f"{path}: line {lineno} has {len(parts)} fields, expected {len(RESULT_COLUMNS)}; "
            "the file was edited or is not a results.csv"
        )
    stage = {name: k for k, name in enumerate(_S)}
    try:
        k = 4
        row = [int(parts[0]), float(parts[1]), stage[parts[2]], stage[parts[3]]]
        row.append([int(v) for v in parts[k : k + 5]])
        row.append(stage[parts[k + 5]])
        row.append([int(v) for v in parts[k + 6 : k + 11]])
        row.append(parts[k + 11] == "1")
        row.append(stage[parts[k + 12]])
        row.append([float(v) for v in parts[k + 13 : k + 18]])
        row += [int(parts[k + 18]), int(parts[k + 19])]
    except (ValueError, KeyError) as exc:
        raise RunFolderError(f"{path}: line {lineno} cannot be read ({exc})") from None
    return row


def read_results(path: str | Path, *, repair: bool = False) -> Results:
    """Read a results.csv written row by row.

    A last line without its newline is a row torn by a crash or Ctrl-C: it is dropped, and with
    ``repair`` also cut off the file so that appending continues cleanly. Any other malformed
    line, a wrong header, or an epoch that is not after the previous one raises RunFolderError.
    """
    path = Path(path)
    data = path.read_bytes()
    complete = data[: data.rfind(b"\n") + 1]
    if repair and len(complete) != len(data):
        os.truncate(path, len(complete))
    lines = complete.decode("utf-8", errors="replace").splitlines(keepends=True)
    if not lines:
        return Results()
    if lines[0] != _HEADER:
        raise RunFolderError(f"{path}: the header is not that of a results.csv ({RESULTS})")
    rows = [_parse_line(path, i + 2, line) for i, line in enumerate(lines[1:])]
    for i in range(1, len(rows)):
        if rows[i][0] <= rows[i - 1][0]:
            raise RunFolderError(
                f"{path}: line {i + 2} has epoch {rows[i][0]} after epoch {rows[i - 1][0]} "
                "(duplicate or out of order); the file was edited or mixes two runs"
            )
    if not rows:
        return Results()
    cols = list(zip(*rows, strict=True))
    return Results(
        epoch=np.array(cols[0], np.int64),
        onset_s=np.array(cols[1], np.float64),
        expert=np.array(cols[2], np.int64),
        onchip=np.array(cols[3], np.int64),
        onchip_scores=np.array(cols[4], np.int64),
        tflm=np.array(cols[5], np.int64),
        tflm_scores=np.array(cols[6], np.int64),
        bitexact=np.array(cols[7], bool),
        float_stage=np.array(cols[8], np.int64),
        float_probs=np.array(cols[9], np.float64),
        preprocess_count=np.array(cols[10], np.int64),
        inference_count=np.array(cols[11], np.int64),
    )


class ResultsWriter:
    """Appends rows to results.csv, one write and flush per row: a crash at any moment leaves
    whole rows plus at most one torn last line, which `read_results` drops."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        new = not self.path.exists() or self.path.stat().st_size == 0
        self._f = open(self.path, "a", encoding="utf-8", newline="")
        if new:
            self._f.write(_HEADER)
            self._f.flush()

    def write(self, row: EpochRow) -> None:
        self._f.write(row.line())
        self._f.flush()

    def close(self) -> None:
        if not self._f.closed:
            self._f.flush()
            os.fsync(self._f.fileno())
            self._f.close()

    def __enter__(self) -> ResultsWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# ------------------------------------------------------------------------------------------
# run.json


def read_meta(folder: str | Path) -> dict:
    path = Path(folder) / RUN
    if not path.is_file():
        raise RunFolderError(f"{path} does not exist; is {folder} a folder written by stream?")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise RunFolderError(f"{path}: not valid JSON ({exc})") from None


def write_meta(folder: str | Path, meta: dict) -> None:
    """run.json, replaced atomically (a crash leaves the old or the new file, never half)."""
    path = Path(folder) / RUN
    tmp = path.with_suffix(".json.part")
    tmp.write_text(json.dumps(meta, indent=1) + "\n")
    tmp.replace(path)
