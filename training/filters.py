"""The test-time band-pass filter of REST's "Blanco" model: a zero-phase 0.5-40 Hz Butterworth
band-pass on the noisy input, before the int8 conversion.

The REST paper (section 4.2) compares against the Liu model (network slimming) with a 0.5-40 Hz
band-pass applied to the noisy test signal (after Blanco et al.); it gives neither the filter's
order nor its phase. Here: 4th-order Butterworth as second-order sections, run forwards and
backwards (``scipy.signal.sosfiltfilt``, zero phase, so no stage-relevant waveform is shifted),
per 30-s epoch and channel, on the EEG and EOG channels. The chin EMG of Sleep-EDF's sleep
cassette is a 1 Hz envelope, a level whose information lies below 0.5 Hz: a band-pass would
erase it, so it passes unfiltered (REST filtered its single EEG channel). scipy comes with the
``train`` extra (through ``simulate``); the host tools never filter.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from sleepdata.layout import MODEL_CHANNELS, MODEL_FS_HZ


@dataclass(frozen=True)
class BandPass:
    low_hz: float = 0.5
    high_hz: float = 40.0
    order: int = 4
    #: channels filtered (names of MODEL_CHANNELS); the EMG envelope is left alone
    channels: tuple[str, ...] = ("EEG Fpz-Cz", "EEG Pz-Oz", "EOG horizontal")

    def __post_init__(self):
        if not 0 < self.low_hz < self.high_hz < MODEL_FS_HZ / 2:
            raise ValueError(
                f"band-pass {self.low_hz:g}-{self.high_hz:g} Hz: need 0 < low < high < "
                f"{MODEL_FS_HZ / 2:g} Hz (half the {MODEL_FS_HZ:g} Hz model rate)"
            )
        names = [c.name for c in MODEL_CHANNELS]
        unknown = [c for c in self.channels if c not in names]
        if unknown:
            raise ValueError(f"band-pass channels {unknown}: expected some of {names}")

    def to_dict(self) -> dict:
        return {
            "kind": "butterworth band-pass, zero phase (sosfiltfilt)",
            "low_hz": self.low_hz,
            "high_hz": self.high_hz,
            "order": self.order,
            "channels": list(self.channels),
            "applied": "per 30-s epoch, on the (noisy) microvolts, before the int8 conversion",
        }

    def apply(self, x_uv: np.ndarray) -> np.ndarray:
        """Filtered copy of ``x_uv`` (..., channels, samples) microvolts, float64."""
        try:
            from scipy import signal
        except ImportError:
            raise ImportError(
                "the band-pass filter needs scipy: pip install 'ulw-sleepnet-mcu[simulate]'"
            ) from None
        sos = signal.butter(
            self.order, [self.low_hz, self.high_hz], btype="bandpass", fs=MODEL_FS_HZ, output="sos"
        )
        out = np.array(x_uv, dtype=np.float64, copy=True)
        names = [c.name for c in MODEL_CHANNELS]
        for name in self.channels:
            c = names.index(name)
            out[..., c, :] = signal.sosfiltfilt(sos, out[..., c, :], axis=-1)
        return out
