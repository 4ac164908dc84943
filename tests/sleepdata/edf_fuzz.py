"""Header-mutation fuzzing of the PSG reading path (sleepdata.psg.load_recording).

Shared by tests/sleepdata/test_psg_fuzz.py (a short run in `make test`) and scripts/fuzz_edf.py
(the long run). A small simulated PSG is mutated in its header (numbers set to 0, negative, huge
or garbage, min/max swapped, units, labels, dates, counts of records and signals, flipped bytes,
truncation and extension). The oracle: each mutant either loads, and then its values match an
independent reading of the mutant's own header and int16 records (this module's, not
pyedflib's), or it is refused with a one-line DataError naming the file. Anything else (another
exception, a multi-line message, a hang, output on fd 1/2) is a finding.

The EDF header: 256 bytes of file-wide fields, then ns blocks of per-signal fields, each field
stored for all signals in turn; then data records, each holding every signal's samples for that
record as little-endian int16.
"""

from __future__ import annotations

import ctypes
import datetime as dt
import os
import random
import signal
import struct
import tempfile
import traceback
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sleepdata.errors import DataError, EdfHeaderError
from sleepdata.layout import MODEL_CHANNELS, normalise_label
from sleepdata.psg import load_recording, pair_for
from sleepdata.stages import N1, N2, N3, REM, W

from ..conftest import START, write_pair

#: A short night with every stage: 24 epochs, a 440 kB PSG file.
NIGHT = [W] * 4 + [N1] * 2 + [N2] * 6 + [N3] * 4 + [REM] * 4 + [W] * 4
#: File-wide header fields: name -> (offset, width).
GLOBAL_FIELDS = {
    "version": (0, 8),
    "patient": (8, 80),
    "recording": (88, 80),
    "startdate": (168, 8),
    "starttime": (176, 8),
    "header bytes": (184, 8),
    "reserved": (192, 44),
    "records": (236, 8),
    "duration": (244, 8),
    "signals": (252, 4),
}
#: Per-signal header fields in file order: name -> width.
SIGNAL_FIELDS = {
    "label": 16,
    "transducer": 80,
    "units": 8,
    "pmin": 8,
    "pmax": 8,
    "dmin": 8,
    "dmax": 8,
    "prefilter": 80,
    "samples": 8,
    "sreserved": 32,
}
TIMEOUT_S = 10.0

NUMBERS = (
    "0", "-0", "-1", "1", "2", "15", "30", "60", "100", "3000", "0.5", ".5", "30.", "+30",
    "1e2", "1E2", "3e1", "1e-9", "0.000001", "32767", "-32768", "32768", "-32769", "2047",
    "-2048", "99999999", "-9999999", "nan", "inf", "-inf", "0x10", "1,5", "", " ", "abc",
    "12abc", "--1", "1-", "1 2", "3 0",
)  # fmt: skip
UNITS = ("uV", "µV", "mV", "V", "v", "uv", "UV", "nV", "MV", "mv", "DegC", "%", "", "u V", "uVolt")
DATES = ("31.02.89", "00.00.00", "24.04.89", "01.01.85", "29.02.00", "99.99.99", "24-04-89",
         "24.04.8a", "25.04.89", "23.04.89")  # fmt: skip
TIMES = ("24.00.00", "23.59.59", "16.13.00", "16.13.60", "00.00.00", "16:13:00", "16.14.00",
         "16.12.30", "16.13.01")  # fmt: skip
LABELS = (*sorted({a for c in MODEL_CHANNELS for a in c.aliases}), "", "EEG P3-O1", "Resp")


@dataclass(frozen=True)
class Outcome:
    """kind: "loaded" or "refused" (fine), or a finding: "crash", "inconsistent", "bad-refusal",
    "hang", "printed". ``reason``: the refusal class (for the histogram) or the finding."""

    kind: str
    reason: str
    mutation: str

    @property
    def finding(self) -> bool:
        return self.kind not in ("loaded", "refused")


# ------------------------------------------------------------------------------------------
# The independent reader


def _field(data: bytes, offset: int, width: int) -> str:
    raw = data[offset : offset + width]
    if len(raw) != width:
        raise ValueError(f"header ends inside the field at byte {offset}")
    return raw.decode("latin-1")


def _signal_field(data: bytes, ns: int, name: str, i: int) -> str:
    offset = 256
    for other, width in SIGNAL_FIELDS.items():
        if other == name:
            return _field(data, offset + i * width, width)
        offset += ns * width
    raise KeyError(name)


def _start(data: bytes) -> dt.datetime:
    day, month, yy = (int(v) for v in _field(data, 168, 8).split("."))
    hour, minute, second = (int(v) for v in _field(data, 176, 8).split("."))
    year = 1900 + yy if yy >= 85 else 2000 + yy  # the EDF spec's clipping date
    return dt.datetime(year, month, day, hour, minute, second)


def independent_signals(data: bytes) -> tuple[dt.datetime, list[str], list[dict]]:
    """Decode a plain EDF file without pyedflib: (start, labels, per-signal dict with
    "physical" (float64 samples from the header's digital->physical mapping), "units",
    "per_record"). Raises ValueError for a header this reader cannot interpret."""
    ns = int(_field(data, 252, 4))
    records = int(_field(data, 236, 8))
    if ns < 1 or records < 1:
        raise ValueError("no signal or no record")
    labels = [_signal_field(data, ns, "label", i).strip() for i in range(ns)]
    per_record = [int(_signal_field(data, ns, "samples", i)) for i in range(ns)]
    record_len = sum(per_record)
    body = data[256 * (ns + 1) :]
    if len(body) != 2 * record_len * records:
        raise ValueError("file size does not match the header")
    digital = [[] for _ in range(ns)]
    for r in range(records):
        values = struct.unpack_from(f"<{record_len}h", body, 2 * record_len * r)
        at = 0
        for i, n in enumerate(per_record):
            digital[i].extend(values[at : at + n])
            at += n
    signals = []
    for i in range(ns):
        pmin = float(_signal_field(data, ns, "pmin", i))
        pmax = float(_signal_field(data, ns, "pmax", i))
        dmin = int(_signal_field(data, ns, "dmin", i))
        dmax = int(_signal_field(data, ns, "dmax", i))
        d = np.array(digital[i], dtype=np.float64)
        physical = pmin + (d - dmin) * ((pmax - pmin) / (dmax - dmin)) if dmax != dmin else d
        units = _signal_field(data, ns, "units", i).strip()
        signals.append({"physical": physical, "units": units, "per_record": per_record[i]})
    return _start(data), labels, signals


def _emg_at_100hz(env: np.ndarray, count: int) -> np.ndarray:
    """The loader's documented EMG processing (docs/data.md), written out sample by sample:
    1-Hz value k sits at k + 0.5 s, linear in between, flat beyond the first/last centre."""
    u = (np.arange(count) + 0.5) / 100 - 0.5
    k = np.clip(np.floor(u).astype(np.int64), 0, env.size - 1)
    k1 = np.minimum(k + 1, env.size - 1)
    f = np.clip(u - k, 0.0, 1.0)
    out = env[k] * (1 - f) + env[k1] * f
    out[u <= 0] = env[0]
    out[u >= env.size - 1] = env[-1]
    return out


def check_loaded(rec, data: bytes, hypnogram_start: dt.datetime = START) -> str:
    """'' when a loaded recording matches the independent reading of ``data`` (the PSG), else
    why not. The hypnogram scores NIGHT from ``hypnogram_start``."""
    try:
        start, labels, signals = independent_signals(data)
    except (ValueError, ZeroDivisionError) as exc:
        return f"loaded, but the independent reader cannot read the header ({exc})"
    if rec.start != start:
        return f"start {rec.start} but the header says {start}"
    shift = (hypnogram_start - start).total_seconds()
    slots = (rec.onsets_s - shift) / 30
    if np.any(slots != np.round(slots)) or slots.min() < 0 or slots.max() >= len(NIGHT):
        return "epoch onsets are not the hypnogram's epochs"
    factor = {"uV": 1.0, "UV": 1.0, "uv": 1.0, "mV": 1e3, "mv": 1e3, "V": 1e6, "v": 1e6}
    for k, channel in enumerate(MODEL_CHANNELS):
        accepted = {normalise_label(a) for a in channel.aliases}
        idx = next(i for i, lab in enumerate(labels) if normalise_label(lab) in accepted)
        sig = signals[idx]
        x = sig["physical"] * factor[sig["units"]]
        if k == 3:  # EMG: a 1 Hz envelope or a raw 100 Hz EMG made into one
            if sig["per_record"] == 30 * 100:
                x = np.sqrt(np.mean(x[: x.size // 100 * 100].reshape(-1, 100) ** 2, axis=1))
            x = _emg_at_100hz(x, x.size * 100)
        first = np.rint(rec.onsets_s * 100).astype(np.int64)
        if first.max() + 3000 > x.size:
            return f"channel {channel.name}: epochs run past the header's samples"
        want = x[first[:, None] + np.arange(3000)]
        scale = max(1e-12, float(np.abs(x).max()))
        got = rec.epochs[:, k, :].astype(np.float64)
        if not np.allclose(got, want, rtol=1e-5, atol=1e-6 * scale):
            worst = float(np.abs(got - want).max())
            return f"channel {channel.name}: values differ from the header's mapping by {worst:g}"
    return ""


# ------------------------------------------------------------------------------------------
# Mutations


def _put(data: bytearray, offset: int, width: int, value: str | bytes) -> None:
    raw = value.encode("latin-1") if isinstance(value, str) else value
    data[offset : offset + width] = raw.ljust(width, b" ")[:width]


def _signal_offset(ns: int, name: str, i: int) -> tuple[int, int]:
    offset = 256
    for other, width in SIGNAL_FIELDS.items():
        if other == name:
            return offset + i * width, width
        offset += ns * width
    raise KeyError(name)


def _garbage(rng: random.Random, width: int) -> bytes:
    alphabet = bytes(range(32, 127)) if rng.random() < 0.7 else bytes(range(256))
    return bytes(rng.choice(alphabet) for _ in range(rng.randint(1, width)))


def _number(rng: random.Random) -> str:
    roll = rng.random()
    if roll < 0.5:
        return rng.choice(NUMBERS)
    if roll < 0.8:
        return str(rng.randint(-40000, 40000))
    return f"{rng.uniform(-1e4, 1e4):.{rng.randint(0, 4)}f}"[:8]


def _edf_plus_date(data: bytearray, value: str) -> None:
    months = "JAN FEB MAR APR MAY JUN JUL AUG SEP OCT NOV DEC".split()
    try:
        day, month, yy = (int(v) for v in value.split("."))
        text = f"{day:02d}-{months[month - 1]}-{1900 + yy if yy >= 85 else 2000 + yy}"
    except (ValueError, IndexError):
        return
    data[98:109] = text.encode()


def mutate(base: bytes, rng: random.Random) -> tuple[bytes, str]:
    """One mutant of ``base`` (1 to 3 mutations) and a description of what was done."""
    data = bytearray(base)
    ns = int(base[252:256])
    done = []
    for _ in range(rng.choice((1, 1, 1, 2, 2, 3))):
        op = rng.random()
        i = rng.randrange(ns)
        if op < 0.35:
            name = rng.choice(("pmin", "pmax", "dmin", "dmax", "samples", "units", "label"))
            offset, width = _signal_offset(ns, name, i)
            pool = {"units": UNITS, "label": LABELS}.get(name)
            value = rng.choice(pool) if pool else _number(rng)
            if rng.random() < 0.1:
                value = _garbage(rng, width)
            _put(data, offset, width, value)
            done.append(f"signal {i} {name}={value!r}")
        elif op < 0.55:
            name = rng.choice(("records", "duration", "signals", "header bytes", "startdate",
                               "starttime", "version", "reserved"))  # fmt: skip
            offset, width = GLOBAL_FIELDS[name]
            pool = {"startdate": DATES, "starttime": TIMES}.get(name)
            value = rng.choice(pool) if pool else _number(rng)
            if name == "reserved":
                value = rng.choice(("EDF+C", "EDF+D", "", "x"))
            _put(data, offset, width, value)
            if name == "startdate" and data[88:98] == b"Startdate " and rng.random() < 0.7:
                _edf_plus_date(data, value)  # EDF+ states the date twice; keep them agreeing
            done.append(f"{name}={value!r}")
        elif op < 0.65:
            a, b = rng.choice((("pmin", "pmax"), ("dmin", "dmax")))
            (oa, w), (ob, _) = _signal_offset(ns, a, i), _signal_offset(ns, b, i)
            data[oa : oa + w], data[ob : ob + w] = data[ob : ob + w], data[oa : oa + w]
            done.append(f"signal {i} {a}<->{b}")
        elif op < 0.8:
            for _ in range(rng.randint(1, 4)):
                at = rng.randrange(min(len(data), 256 * (ns + 1)) or 1)
                if at >= len(data):
                    break
                data[at] = rng.randrange(256) if rng.random() < 0.3 else rng.randrange(32, 127)
                done.append(f"byte {at}={data[at]}")
        elif op < 0.9:
            size = rng.choice((rng.randrange(len(data) + 1), rng.randrange(256 * (ns + 1)),
                               max(0, len(data) - rng.randint(1, 4000))))  # fmt: skip
            del data[size:]
            done.append(f"truncated to {size}")
        else:
            extra = rng.choice((1, 2, 36480 // 2, 36480, rng.randint(1, 5000)))
            data += bytes(rng.randrange(256) for _ in range(min(extra, 64))) * (
                extra // min(extra, 64)
            )
            done.append(f"extended by {extra}")
    return bytes(data), "; ".join(done)


# ------------------------------------------------------------------------------------------
# Running mutants


def flush_c_stdio() -> None:
    """Push out what C code left in stdio buffers (block-buffered unless PYTHONUNBUFFERED), so
    a print by the library is seen with the mutant that caused it."""
    ctypes.CDLL(None).fflush(None)


class _Hang(Exception):
    pass


def _alarm(_signum, _frame):
    raise _Hang


def _refusal_class(exc: DataError) -> str:
    if isinstance(exc, EdfHeaderError):
        return f"{type(exc).__name__}: {exc.field}"
    return type(exc).__name__


def run_mutant(
    mutant: bytes,
    mutation: str,
    folder: Path,
    base: tuple[bytes, bytes],
    *,
    target: str = "psg",
    capture: bool = True,
    timeout_s: float = TIMEOUT_S,
) -> Outcome:
    """Load one mutant of the ``target`` file ("psg" or "hypnogram") with the other file of
    ``base`` (PSG bytes, hypnogram bytes), both written to ``folder``, and judge the outcome.

    ``capture`` redirects fd 1/2 around the load so output from C code counts as a finding;
    a test using pytest's capfd checks that itself instead. A load over ``timeout_s`` is a hang
    (Python-level; a hang inside C is caught by the caller's faulthandler watchdog).
    """
    psg, hypnogram = folder / "SC4001E0-PSG.edf", folder / "SC4001EC-Hypnogram.edf"
    psg_bytes = mutant if target == "psg" else base[0]
    psg.write_bytes(psg_bytes)
    hypnogram.write_bytes(mutant if target == "hypnogram" else base[1])
    sink, saved = None, None
    if capture:
        sink = tempfile.TemporaryFile()
        saved = (os.dup(1), os.dup(2))
        os.dup2(sink.fileno(), 1)
        os.dup2(sink.fileno(), 2)
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, timeout_s)
    try:
        rec = load_recording(pair_for(psg, hypnogram))
        try:
            hypnogram_start = _start(mutant) if target == "hypnogram" else START
        except ValueError as exc:
            hypnogram_start, problem = None, f"loaded, but its start cannot be read ({exc})"
        if hypnogram_start is not None:
            problem = check_loaded(rec, psg_bytes, hypnogram_start)
        outcome = Outcome("inconsistent", problem, mutation) if problem else None
        outcome = outcome or Outcome("loaded", "", mutation)
    except _Hang:
        outcome = Outcome("hang", f"no answer within {timeout_s:g} s", mutation)
    except DataError as exc:
        message = str(exc)
        if "\n" in message or (psg.name not in message and hypnogram.name not in message):
            outcome = Outcome("bad-refusal", f"message {message!r}", mutation)
        else:
            outcome = Outcome("refused", _refusal_class(exc), mutation)
    except Exception as exc:
        where = traceback.extract_tb(exc.__traceback__)[-1]
        crash = f"{type(exc).__name__}: {exc} at {Path(where.filename).name}:{where.lineno}"
        outcome = Outcome("crash", crash, mutation)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        flush_c_stdio()
        if sink is not None:
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])
    if sink is not None:
        sink.seek(0)
        printed = sink.read(2000).decode("latin-1")
        sink.close()
        if printed:
            return Outcome("printed", f"{printed.strip()[:200]!r} ({outcome.kind})", mutation)
    return outcome


def make_base(folder: Path, seed: int = 0) -> tuple[bytes, bytes]:
    """The unmutated (PSG bytes, hypnogram bytes), simulated in ``folder``."""
    psg, hypnogram = write_pair(folder, NIGHT, seed=seed)
    return psg.read_bytes(), hypnogram.read_bytes()


def fuzz(
    base: tuple[bytes, bytes],
    folder: Path,
    seeds,
    *,
    target: str = "psg",
    capture: bool = True,
):
    """Yield the Outcome of the mutant of each seed (random.Random(seed): deterministic)."""
    original = base[0] if target == "psg" else base[1]
    for seed in seeds:
        mutant, mutation = mutate(original, random.Random(seed))
        yield run_mutant(
            mutant, f"seed {seed}: {mutation}", folder, base, target=target, capture=capture
        )
