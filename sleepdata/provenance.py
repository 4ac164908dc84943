"""Where a figure's data came from: simulated nights or real recordings, read from the files.

Every result this toolkit writes (a model's config.json and metrics.json, a robustness results
file, a stream report, the titles of their plots) says whether its nights were simulated or
real. That is never assumed: it is derived from the PSG files themselves.

- The simulator (sleepdata/simulator.py) writes `SIMULATOR_MARK` into the EDF header's
  recording field (bytes 88-168) of every file it makes: a marked file is simulated.
- A file without the mark is a real recording. It is recognised as Sleep-EDF when its name
  follows PhysioNet's sleep-cassette or sleep-telemetry naming (``SC4ssN?-PSG.edf``,
  ``ST7ssN?-PSG.edf``) and its header holds Sleep-EDF's signal labels (EEG Fpz-Cz, EEG Pz-Oz,
  EOG horizontal, EMG submental); otherwise it is "real (source not recognised)".
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

#: The simulator's mark in the EDF recording field (followed by the seed).
SIMULATOR_MARK = "ulw-sleepnet-mcu_simulator"
_SLEEP_EDF_NAME = re.compile(r"^S[CT]\d{4}[A-Z]\d-PSG\.edf$", re.IGNORECASE)
_SLEEP_EDF_LABELS = ("EEG Fpz-Cz", "EEG Pz-Oz", "EOG horizontal", "EMG submental")

#: The values of `describe(...)["data"]`.
SIMULATED, REAL, MIXED = "simulated", "real", "mixed"


def _header(psg: Path) -> bytes:
    with open(psg, "rb") as f:
        fixed = f.read(256)
        try:
            n_signals = int(fixed[252:256].decode("ascii").strip())
        except ValueError:
            return fixed
        return fixed + f.read(16 * max(n_signals, 0))


def is_simulated(psg: str | Path) -> bool:
    """True when the EDF header of ``psg`` carries the simulator's mark."""
    with open(psg, "rb") as f:
        head = f.read(168)
    return SIMULATOR_MARK.encode() in head[88:168]


def kind_of(psg: str | Path) -> str:
    """ "simulated", "Sleep-EDF" or "real (source not recognised)" for one PSG file."""
    psg = Path(psg)
    if is_simulated(psg):
        return SIMULATED
    header = _header(psg)
    labels = header[256:].decode("ascii", "replace")
    if _SLEEP_EDF_NAME.match(psg.name) and all(lab in labels for lab in _SLEEP_EDF_LABELS):
        return "Sleep-EDF"
    return "real (source not recognised)"


def describe(psgs: Iterable[str | Path]) -> dict:
    """The provenance of a set of PSG files: ``data`` ("simulated", "real" or "mixed"), the
    count of files of each kind, and a one-line ``label`` for reports and plot titles."""
    kinds: dict[str, int] = {}
    for p in psgs:
        k = kind_of(p)
        kinds[k] = kinds.get(k, 0) + 1
    if not kinds:
        raise ValueError("provenance: no PSG file given")
    n_sim = kinds.get(SIMULATED, 0)
    total = sum(kinds.values())
    data = SIMULATED if n_sim == total else REAL if n_sim == 0 else MIXED
    return {"data": data, "files": dict(sorted(kinds.items())), "label": label(data, kinds)}


def label(data: str, kinds: dict[str, int]) -> str:
    """ "simulated nights (not real recordings)", "real recordings (Sleep-EDF)", ..."""
    if data == SIMULATED:
        return "simulated nights, not real recordings"
    real = ", ".join(f"{k}: {n}" for k, n in sorted(kinds.items()) if k != SIMULATED)
    if data == REAL:
        return f"real recordings ({real})"
    return f"MIXED simulated ({kinds[SIMULATED]}) and real ({real}) nights"


def of_result(result: dict) -> str | None:
    """The label recorded in a result (results.json, metrics.json, config.json), if any."""
    prov = result.get("data_provenance")
    return prov.get("label") if isinstance(prov, dict) else None
