"""Writing PSG files in the Sleep-EDF sleep-cassette layout (plain EDF, 30-s data records): the
simulator's output, and test recordings."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyedflib

from .layout import RECORD_DURATION_S, SLEEP_CASSETTE_SIGNALS, SignalSpec

if TYPE_CHECKING:
    from .simulator import SimulatedNight


def to_digital(x: np.ndarray, spec: SignalSpec) -> np.ndarray:
    """Physical -> EDF digital values, saturating at the digital range as an amplifier would."""
    scale = (spec.digital_max - spec.digital_min) / (spec.physical_max - spec.physical_min)
    d = np.rint((x - spec.physical_min) * scale + spec.digital_min)
    return np.clip(d, spec.digital_min, spec.digital_max).astype(np.int32)


def write_psg(
    path: str | Path,
    night: SimulatedNight,
    *,
    patient: str = "",
    recording: str = "",
    specs: tuple[SignalSpec, ...] = SLEEP_CASSETTE_SIGNALS,
) -> None:
    """Write a night as a Sleep-EDF sleep-cassette PSG file (plain EDF, 30-s data records).

    ``specs`` describes the signals of ``night`` (default: the sleep-cassette layout).
    """
    writer = pyedflib.EdfWriter(str(path), len(specs), file_type=pyedflib.FILETYPE_EDF)
    try:
        writer.setStartdatetime(night.start)
        if patient:
            writer.setPatientName(patient)
        if recording:
            writer.setRecordingAdditional(recording)
        writer.setSignalHeaders(
            [
                {
                    "label": s.label,
                    "dimension": s.units,
                    "sample_frequency": s.fs_hz,
                    "physical_min": s.physical_min,
                    "physical_max": s.physical_max,
                    "digital_min": s.digital_min,
                    "digital_max": s.digital_max,
                    "transducer": s.transducer,
                    "prefilter": s.prefilter,
                }
                for s in specs
            ]
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "forcing a record duration"
            writer.setDatarecordDuration(RECORD_DURATION_S)
        writer.writeSamples(
            [to_digital(x, s) for x, s in zip(night.signals, specs, strict=True)], digital=True
        )
    finally:
        writer.close()
