"""The Sleep-EDF sleep-cassette PSG layout, and the four signals ULW-SleepNet reads from it.

The layout is that of ``SC4001E0-PSG.edf`` as published by PhysioNet: 7 signals, 30-s data
records, EEG and EOG at 100 Hz, respiration, EMG envelope, temperature and event marker at 1 Hz.
The physical/digital ranges below reproduce the gains and baselines of PhysioNet's WFDB header
for that file (``SC4001E0_PSG.hea``), which is how the header states them; `wfdb_fields` computes
the header's view of a signal so tests can compare the two.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

#: Every Sleep-EDF PSG file stores 30-s data records.
RECORD_DURATION_S = 30
#: Epoch length used for scoring (AASM and R&K).
EPOCH_S = 30
#: Sampling rate the model works at.
MODEL_FS_HZ = 100
EPOCH_SAMPLES = EPOCH_S * MODEL_FS_HZ


@dataclass(frozen=True)
class SignalSpec:
    label: str
    units: str
    fs_hz: int
    physical_min: float
    physical_max: float
    digital_min: int
    digital_max: int
    transducer: str = ""
    prefilter: str = ""


#: The 7 signals of a sleep-cassette PSG file, in file order.
SLEEP_CASSETTE_SIGNALS: tuple[SignalSpec, ...] = (
    SignalSpec(
        "EEG Fpz-Cz",
        "uV",
        100,
        -192.0,
        192.0,
        -2048,
        2047,
        "Ag-AgCl electrodes",
        "HP:0.5Hz LP:100Hz [enhanced cassette BW]",
    ),
    SignalSpec(
        "EEG Pz-Oz",
        "uV",
        100,
        -197.0,
        196.0,
        -2048,
        2047,
        "Ag-AgCl electrodes",
        "HP:0.5Hz LP:100Hz [enhanced cassette BW]",
    ),
    SignalSpec(
        "EOG horizontal",
        "uV",
        100,
        -1009.0,
        1009.0,
        -2048,
        2047,
        "Ag-AgCl electrodes",
        "HP:0.5Hz LP:100Hz [enhanced cassette BW]",
    ),
    SignalSpec(
        "Resp oro-nasal",
        "",
        1,
        -2048.0,
        2047.0,
        -2048,
        2047,
        "Oral-nasal thermistors",
        "HP:0.03Hz LP:0.9Hz",
    ),
    SignalSpec(
        "EMG submental",
        "uV",
        1,
        -5.0,
        5.0,
        -2500,
        2500,
        "Ag-AgCl electrodes",
        "HP:16Hz Rectification LP:0.7Hz",
    ),
    SignalSpec(
        "Temp rectal",
        "DegC",
        1,
        34.0,
        40.0,
        -2849,
        2731,
        "Rectal thermistor",
        "LP:0.1Hz (first order)",
    ),
    SignalSpec(
        "Event marker",
        "",
        1,
        -2047.0,
        2048.0,
        -2047,
        2048,
        "Marker button",
        "Hold during 2 seconds",
    ),
)


@dataclass(frozen=True)
class ModelChannel:
    """One input channel of the model and the EDF labels it may carry."""

    name: str
    aliases: tuple[str, ...]


#: The model's 4 inputs, in input order, with the labels accepted for each (compared after
#: normalising case, spaces, dashes and a leading signal-type word).
MODEL_CHANNELS: tuple[ModelChannel, ...] = (
    ModelChannel("EEG Fpz-Cz", ("EEG Fpz-Cz", "Fpz-Cz", "EEG FpzCz", "EEG Fpz-A2")),
    ModelChannel("EEG Pz-Oz", ("EEG Pz-Oz", "Pz-Oz", "EEG PzOz")),
    ModelChannel("EOG horizontal", ("EOG horizontal", "EOG", "HEOG", "EOG horiz", "EOG E1-E2")),
    ModelChannel("EMG submental", ("EMG submental", "EMG", "Chin EMG", "EMG chin", "EMG sub")),
)
CHANNEL_NAMES: tuple[str, ...] = tuple(c.name for c in MODEL_CHANNELS)
EMG_INDEX = 3


def normalise_label(label: str) -> str:
    """Canonical form of an EDF signal label for alias matching."""
    return re.sub(r"[\s\-_.]+", "", label).lower()


# ------------------------------------------------------------------------------------------
# WFDB header view (PhysioNet publishes each PSG's layout as a WFDB header made by edf2mit).


@dataclass(frozen=True)
class WfdbSignal:
    label: str
    units: str
    fs_hz: float
    gain: float
    baseline: int
    adc_resolution: int
    adc_zero: int


@dataclass(frozen=True)
class WfdbHeader:
    record: str
    fs_hz: float
    n_frames: int
    start: str
    signals: tuple[WfdbSignal, ...]

    @property
    def duration_s(self) -> float:
        return self.n_frames / self.fs_hz


def wfdb_fields(spec: SignalSpec) -> tuple[float, int, int, int]:
    """(gain, baseline, adc_resolution, adc_zero) of a signal, as edf2mit derives them.

    gain = digital range / physical range; baseline = dmax - pmax*gain + 1 truncated to an
    integer; adc_zero = (dmax + 1 + dmin) / 2 truncated; resolution = halvings of the digital
    range down to 1.
    """
    drange = spec.digital_max - spec.digital_min
    gain = drange / (spec.physical_max - spec.physical_min)
    baseline = math.trunc(spec.digital_max - spec.physical_max * gain + 1)
    adc_zero = math.trunc((spec.digital_max + 1 + spec.digital_min) / 2)
    bits, r = 0, drange
    while r > 1:
        r //= 2
        bits += 1
    return gain, baseline, bits, adc_zero


def read_wfdb_header(path: str | Path) -> WfdbHeader:
    """Parse a WFDB ``.hea`` file such as PhysioNet's ``SC4001E0_PSG.hea``."""
    lines = [ln for ln in Path(path).read_text().splitlines() if ln and not ln.startswith("#")]
    rec = lines[0].split()
    record, nsig, frame_fs, n_frames = rec[0], int(rec[1]), float(rec[2]), int(rec[3])
    start = " ".join(rec[4:6])
    signals = []
    for line in lines[1 : 1 + nsig]:
        parts = line.split(maxsplit=8)
        fmt = parts[1]
        spf = int(fmt.split("x")[1]) if "x" in fmt else 1
        m = re.fullmatch(r"([-0-9.eE+]+)(?:\((-?\d+)\))?(?:/(\S+))?", parts[2])
        if m is None:
            raise ValueError(f"{path}: cannot parse gain field {parts[2]!r}")
        adc_res, adc_zero = int(parts[3]), int(parts[4])
        baseline = int(m.group(2)) if m.group(2) is not None else adc_zero
        signals.append(
            WfdbSignal(
                label=parts[8].strip(),
                units=m.group(3) or "",
                fs_hz=frame_fs * spf,
                gain=float(m.group(1)),
                baseline=baseline,
                adc_resolution=adc_res,
                adc_zero=adc_zero,
            )
        )
    return WfdbHeader(record, frame_fs, n_frames, start, tuple(signals))
