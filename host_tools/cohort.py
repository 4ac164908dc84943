"""A cohort: many nights streamed through several boards at once (``host_tools stream`` with
several PSG files or a folder of them, ``--boards N`` emulated boards or a repeated ``--port``).

Nights are handed out longest first (the recording length from the EDF header) to whichever
board is free: one worker thread per board streams one night after another with
``host_tools.stream.stream``, each night into its own run folder ``COHORT/nights/<record>``,
the same folder a single-night run writes (resumable, atomic files). The host's own work per
epoch (references, framing) is a small share of a board's time, so threads suffice; each
emulated board is its own QEMU process.

Faults stay local: a night that cannot be read or streamed is recorded in ``cohort.json``
with its error, and the board goes on with the next night; a board that stops answering is
restarted (emulated) or reopened (a port) for the next night, and a board that cannot be
opened leaves its nights to the others. ``cohort.json`` is rewritten (atomically) after each
night; ``resume`` continues a cohort without redoing finished nights. The cohort's outputs
(report, results.csv of all nights, figure) are host_tools.cohort_report's.
"""

from __future__ import annotations

import json
import resource
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from sleepdata.errors import DataError

from . import runfolder as rf
from .device import Device, DeviceError
from .emulator import EmulatorError
from .inputs import StreamError
from .reference import ModelError
from .runfolder import RunFolderError
from .stream import StreamInterrupted, StreamOptions, stream

COHORT_JSON = "cohort.json"
NIGHTS = "nights"

#: errors that belong to one night (its files, its plan): the board goes on with the next
NIGHT_ERRORS = (DataError, StreamError, RunFolderError, ModelError, OSError, ValueError)
#: errors that say the board (or the link to it) failed: it is restarted for the next night
BOARD_ERRORS = (DeviceError, EmulatorError)


class CohortError(RuntimeError):
    """The cohort cannot start (no nights, a folder that holds another cohort, ...)."""


class CohortInterrupted(Exception):
    """Ctrl-C (or SIGTERM) stopped the cohort: every board stopped at its next epoch with its
    rows saved; ``resume`` finishes it."""

    def __init__(self, folder: Path, done: int, total: int):
        self.folder, self.done, self.total = folder, done, total
        super().__init__(
            f"interrupted: {done} of {total} nights of the cohort in {folder} are done (the "
            "others keep the epochs they have); run the same command with --resume to finish"
        )


@dataclass
class CohortNight:
    """One night of the cohort and what became of it."""

    name: str  # the record name (the PSG file's name up to "-PSG" / ".edf")
    psg: Path
    hours: float  # the recording's length from its EDF header (0.0 when unreadable)
    status: str = "pending"  # pending | done | failed
    error: str | None = None
    board: str | None = None
    wall_s: float | None = None

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "psg": str(self.psg),
            "hours": self.hours,
            "status": self.status,
            "error": self.error,
            "board": self.board,
            "wall_s": self.wall_s,
        }


@dataclass
class Board:
    """How to reach one board: ``open()`` -> (Device, close), called again for the next night
    after the board failed (an emulated board is then started afresh, a port reopened);
    ``label`` names it in reports."""

    label: str
    open: Callable[[], tuple[Device, Callable[[], None]]]


def find_psgs(paths: list[str | Path]) -> list[Path]:
    """The PSG files of ``paths``: files as given, folders' ``*PSG.edf`` files (Sleep-EDF's
    naming; sorted). CohortError for a path that does not exist or a folder without any."""
    psgs: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(f for f in p.iterdir() if f.name.upper().endswith("PSG.EDF"))
            if not found:
                raise CohortError(f"{p}: a folder without PSG files (*-PSG.edf)")
            psgs += found
        elif p.is_file():
            psgs.append(p)
        else:
            raise CohortError(f"{p}: no such file or folder")
    names = [record_name(p) for p in psgs]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise CohortError(f"the record(s) {', '.join(twice)} are given twice")
    return psgs


def record_name(psg: Path) -> str:
    name = psg.name
    for suffix in ("-PSG.edf", "-psg.edf", ".edf", ".EDF"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def edf_hours(psg: Path) -> float:
    """Recording length in hours from the EDF header (records x record duration); 0.0 when the
    header cannot be read (the night then fails when streamed, with the reader's error)."""
    try:
        with open(psg, "rb") as f:
            head = f.read(256)
        n_records, duration = int(head[236:244]), float(head[244:252])
    except (OSError, ValueError):
        return 0.0
    return max(n_records, 0) * max(duration, 0.0) / 3600.0


def plan_nights(paths: list[str | Path]) -> list[CohortNight]:
    """The cohort's nights, longest first (then by name)."""
    nights = [CohortNight(record_name(p), p, edf_hours(p)) for p in find_psgs(paths)]
    return sorted(nights, key=lambda n: (-n.hours, n.name))


@dataclass
class CohortRun:
    """A cohort being streamed: its nights, folder, per-night stream options and boards."""

    nights: list[CohortNight]
    out: Path
    options: StreamOptions
    boards: list[Board]
    #: boards that could not be opened, with the error: their nights went to the others
    boards_gone: list[dict] = field(default_factory=list)
    #: one entry per run of the cohort: boards, wall and host CPU seconds, epochs streamed
    sessions: list[dict] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _queue: list[CohortNight] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def folder(self, night: CohortNight) -> Path:
        return self.out / NIGHTS / night.name

    # -- state ------------------------------------------------------------------------------
    def save(self) -> None:
        """cohort.json, atomically: the plan, the options and every night's status."""
        doc = {
            "nights": [n.to_dict() for n in self.nights],
            "boards": [b.label for b in self.boards],
            "boards_gone": self.boards_gone,
            "sessions": self.sessions,
            "options": {"start": self.options.start, "epochs": self.options.epochs},
        }
        tmp = self.out / (COHORT_JSON + ".part")
        tmp.write_text(json.dumps(doc, indent=1) + "\n")
        tmp.replace(self.out / COHORT_JSON)

    def _next(self) -> CohortNight | None:
        with self._lock:
            if self._stop.is_set() or not self._queue:
                return None
            return self._queue.pop(0)

    def _give_back(self, night: CohortNight) -> None:
        with self._lock:
            self._queue.insert(0, night)

    def _finish(self, night: CohortNight, board: str, t0: float, error: str | None) -> None:
        with self._lock:
            night.status = "failed" if error else "done"
            night.error, night.board = error, board
            night.wall_s = round(time.perf_counter() - t0, 2)
            self.save()

    # -- running ------------------------------------------------------------------------------
    def run(self, on_result: Callable | None = None, on_night: Callable | None = None) -> None:
        """Stream every pending night; returns when all are done or failed, or raises
        CohortInterrupted (everything written is kept) after a KeyboardInterrupt."""
        self.out.mkdir(parents=True, exist_ok=True)
        self._queue = [n for n in self.nights if n.status != "done"]
        session = {"boards": len(self.boards), "wall_s": 0.0, "cpu_s": 0.0, "epochs": 0}
        self.sessions.append(session)
        t0, cpu0, boards0 = time.perf_counter(), time.process_time(), _children_cpu_s()

        def counted(row, done, total) -> None:
            with self._lock:
                session["epochs"] += 1
            if on_result is not None:
                on_result(row, done, total)

        def ended() -> None:
            session["wall_s"] = round(time.perf_counter() - t0, 3)
            session["cpu_s"] = round(time.process_time() - cpu0, 3)  # every thread's
            # child processes: the emulated boards' QEMUs and the nights' reference processes
            # (counted once they have ended)
            session["board_processes_cpu_s"] = round(_children_cpu_s() - boards0, 3)
            self.save()

        self.save()
        workers = [
            threading.Thread(target=self._worker, args=(b, counted, on_night), daemon=True)
            for b in self.boards
        ]
        for w in workers:
            w.start()
        try:
            while any(w.is_alive() for w in workers):
                for w in workers:
                    w.join(timeout=0.2)
        except KeyboardInterrupt:
            self._stop.set()  # each worker's stream stops at its next result, saving its rows
            for w in workers:
                w.join()
            ended()
            done = sum(n.status == "done" for n in self.nights)
            raise CohortInterrupted(self.out, done, len(self.nights)) from None
        with self._lock:  # nights no board was left to stream
            for night in self._queue:
                night.status, night.error = "failed", "no board left to stream it"
            self._queue.clear()
        ended()

    def _worker(self, board: Board, on_result, on_night) -> None:
        dev, close = None, None

        def stopping(row, done, total) -> None:
            if self._stop.is_set():
                raise KeyboardInterrupt  # stream() saves what it has and says so
            if on_result is not None:
                on_result(row, done, total)

        try:
            while (night := self._next()) is not None:
                t0 = time.perf_counter()
                if dev is None:
                    try:
                        dev, close = board.open()
                    except Exception as exc:  # (whatever stops a board from opening)
                        # this board cannot take nights: the others take this one
                        self._give_back(night)
                        self._board_gone(board, exc)
                        return
                error = None
                try:
                    options = replace(self.options, resume=True)
                    stream(dev, night.psg, self.folder(night), options, port_label=board.label,
                           on_result=stopping)  # fmt: skip
                except StreamInterrupted:
                    return
                except BOARD_ERRORS as exc:
                    error = f"board {board.label} failed: {exc}"
                    close()  # restarted (emulated) or reopened (port) for the next night
                    dev, close = None, None
                except NIGHT_ERRORS as exc:
                    error = f"{type(exc).__name__}: {exc}"
                except Exception as exc:  # not foreseen: recorded, and the board started afresh
                    error = f"unexpected {type(exc).__name__} while streaming: {exc}"
                    close()
                    dev, close = None, None
                self._finish(night, board.label, t0, error)
                if on_night is not None:
                    on_night(night)
        finally:
            if close is not None:
                close()

    def _board_gone(self, board: Board, exc: Exception) -> None:
        with self._lock:
            self.boards_gone.append({"board": board.label, "error": f"{type(exc).__name__}: {exc}"})
            self.save()


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def open_cohort(
    paths: list[str | Path], out: Path, options: StreamOptions, boards: list[Board], resume: bool
) -> CohortRun:
    """The CohortRun of ``paths`` in ``out``: a new cohort, or (``resume``) the one there with
    its finished nights kept. CohortError when ``out`` holds a cohort and resume is off, or a
    cohort of other nights."""
    if not boards:
        raise CohortError("a cohort needs at least one board")
    nights = plan_nights(paths)
    if not nights:
        raise CohortError("no nights to stream")
    state = out / COHORT_JSON
    if state.is_file():
        if not resume:
            raise CohortError(
                f"{out} already holds a cohort ({COHORT_JSON}); continue it with --resume or "
                "choose another --out"
            )
        stored = {n["name"]: n for n in json.loads(state.read_text())["nights"]}
        if set(stored) != {n.name for n in nights}:
            raise CohortError(
                f"--resume: {out} holds a cohort of other nights ({', '.join(sorted(stored))}); "
                "pass the same files or folder, or choose another --out"
            )
        sessions = json.loads(state.read_text()).get("sessions", [])
        for n in nights:
            s = stored[n.name]
            if s["status"] == "done" and (out / NIGHTS / n.name / rf.REPORT_JSON).is_file():
                n.status, n.board, n.wall_s = "done", s["board"], s["wall_s"]
        return CohortRun(nights, out, options, boards, sessions=sessions)
    return CohortRun(nights, out, options, boards)
