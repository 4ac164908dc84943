"""The model's input transform: microvolts -> int16 wire samples -> int8 model input.

Defined once here and used by training, int8 calibration, the host tools and (as C, bit for bit)
the firmware. The exact integer formula is in docs/preprocessing.md; in short, per 30-s epoch and
channel c, with s[n] the int16 samples the board receives:

    m    = floor((sum(s) + 1500) / 3000)   if remove_dc[c]   (the epoch mean, rounded)
         = offset[c]                       otherwise         (a fixed offset: EMG envelope)
    q[n] = clamp((((s[n] - m) * M[c]) + 2^(S[c]-1)) >> S[c], -128, 127)      (>> floors)

and the float model sees v = q / 16. Training goes through the same integers, so the model never
sees an input the board cannot produce. M[c] / 2^S[c] = lsb[c] / step[c]: one int8 step is a
fixed number of microvolts per channel, set from training statistics, so absolute amplitude (N3
delta, REM atonia) survives; only the epoch's DC is removed, and not on the EMG envelope.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from .layout import CHANNEL_NAMES, EMG_INDEX, EPOCH_SAMPLES

#: The model's float input is q * INPUT_SCALE (int8 quantisation: scale 1/16, zero point 0).
INPUT_SCALE = 1.0 / 16.0
#: Wire resolution: EEG/EOG in 0.05 uV steps (+-1638 uV), the EMG envelope in 0.001 uV (+-32 uV).
DEFAULT_LSB_UV = (0.05, 0.05, 0.05, 0.001)
#: Training statistic that maps to full scale (|q| = 127).
FULL_SCALE_PERCENTILE = 99.9
_MULT_BITS = 15  # M in [2^14, 2^15): (s - m) * M stays within int32 for any int16 s and m


def _fixed_point(ratio: float, name: str) -> tuple[int, int]:
    """(M, S) with M / 2^S closest to ratio and M in [2^14, 2^15)."""
    if not 0 < ratio < 2.0**12:
        raise ValueError(f"{name}: wire step / int8 step = {ratio} is out of range")
    shift = _MULT_BITS - 1 - int(np.floor(np.log2(ratio)))
    mult = round(ratio * 2.0**shift)
    if mult == 2**_MULT_BITS:  # rounded up to the next power of two
        shift, mult = shift - 1, 2 ** (_MULT_BITS - 1)
    return mult, shift


def wire_samples(x_uv: np.ndarray, lsb_uv: Sequence[float]) -> np.ndarray:
    """Microvolts (..., channels, samples) -> int16 wire samples, one step of channel c being
    lsb_uv[c] (rounded to nearest, saturated at the int16 range)."""
    lsb = np.asarray(lsb_uv, dtype=np.float64).reshape(-1, 1)
    return np.clip(np.rint(x_uv / lsb), -32768, 32767).astype(np.int16)


@dataclass(frozen=True)
class ChannelNorm:
    """Normalisation of one input channel. Units: lsb_uv (one wire step), step_uv (one int8
    step), offset_uv (subtracted when the DC is not removed), all in microvolts."""

    name: str
    lsb_uv: float
    step_uv: float
    remove_dc: bool
    offset_uv: float = 0.0

    @property
    def multiplier(self) -> int:
        return _fixed_point(self.lsb_uv / self.step_uv, self.name)[0]

    @property
    def shift(self) -> int:
        return _fixed_point(self.lsb_uv / self.step_uv, self.name)[1]

    @property
    def offset(self) -> int:
        """The fixed offset in wire units."""
        return round(self.offset_uv / self.lsb_uv)


@dataclass(frozen=True)
class Normaliser:
    channels: tuple[ChannelNorm, ...]

    # -- the transform ------------------------------------------------------------------------

    @property
    def lsb_uv(self) -> tuple[float, ...]:
        return tuple(c.lsb_uv for c in self.channels)

    def to_wire(self, x_uv: np.ndarray) -> np.ndarray:
        """Microvolts (..., 4, samples) -> int16 wire samples (rounded, saturated)."""
        return wire_samples(x_uv, self.lsb_uv)

    def to_int8(self, s: np.ndarray) -> np.ndarray:
        """int16 wire samples (n, 4, 3000) -> int8 model input, by the documented formula."""
        s = np.asarray(s)
        if s.dtype != np.int16 or s.ndim != 3 or s.shape[1:] != (len(self.channels), EPOCH_SAMPLES):
            raise ValueError(
                f"expected int16 (n, {len(self.channels)}, {EPOCH_SAMPLES}), "
                f"got {s.dtype} {s.shape}"
            )
        s32 = s.astype(np.int64)  # int64 for numpy; every intermediate fits int32 (see docs)
        out = np.empty(s.shape, dtype=np.int8)
        for c, ch in enumerate(self.channels):
            x = s32[:, c]
            if ch.remove_dc:
                m = (x.sum(axis=1, keepdims=True) + EPOCH_SAMPLES // 2) // EPOCH_SAMPLES
            else:
                m = ch.offset
            p = (x - m) * ch.multiplier
            q = (p + (1 << (ch.shift - 1))) >> ch.shift
            out[:, c] = np.clip(q, -128, 127)
        return out

    def model_input(self, x_uv: np.ndarray) -> np.ndarray:
        """Microvolt epochs (n, 4, 3000) -> the int8 input the board computes from them."""
        return self.to_int8(self.to_wire(np.asarray(x_uv)))

    # -- construction -------------------------------------------------------------------------

    @classmethod
    def fit(
        cls,
        epochs_uv: np.ndarray | Sequence[np.ndarray],
        *,
        lsb_uv=DEFAULT_LSB_UV,
        percentile: float = FULL_SCALE_PERCENTILE,
        max_epochs: int = 4000,
        seed: int = 0,
    ) -> Normaliser:
        """Per-channel steps from training epochs (n, 4, 3000) in uV: the chosen percentile of
        |x - epoch mean| (EEG, EOG) or of x (EMG envelope, mapped to the full int8 range
        around a fixed offset) becomes full scale.

        ``epochs_uv`` may be one array or a list of them (one per night): only the sampled
        epochs are gathered, never a concatenation of the whole training set."""
        parts = [epochs_uv] if isinstance(epochs_uv, np.ndarray) else list(epochs_uv)
        starts = np.cumsum([0] + [len(p) for p in parts])
        rng = np.random.default_rng(seed)
        idx = np.sort(rng.choice(starts[-1], size=min(max_epochs, starts[-1]), replace=False))
        part = np.searchsorted(starts, idx, side="right") - 1
        sample = np.stack([parts[k][i - starts[k]] for k, i in zip(part, idx, strict=True)])
        sample = sample.astype(np.float64)
        chans = []
        for c, name in enumerate(CHANNEL_NAMES):
            x = sample[:, c]
            if c == EMG_INDEX:
                top = float(np.percentile(x, percentile))
                chans.append(
                    ChannelNorm(
                        name, lsb_uv[c], step_uv=top / 254.0, remove_dc=False, offset_uv=top / 2.0
                    )
                )
            else:
                dev = np.abs(x - x.mean(axis=1, keepdims=True))
                top = float(np.percentile(dev, percentile))
                chans.append(ChannelNorm(name, lsb_uv[c], step_uv=top / 127.0, remove_dc=True))
        return cls(tuple(chans))

    def to_dict(self) -> dict:
        return {
            "kind": "fixed-scale int8",
            "input_scale": INPUT_SCALE,
            "input_zero_point": 0,
            "epoch_samples": EPOCH_SAMPLES,
            "channels": [
                {**asdict(c), "multiplier": c.multiplier, "shift": c.shift, "offset": c.offset}
                for c in self.channels
            ],
        }

    @classmethod
    def from_dict(cls, d: dict) -> Normaliser:
        keys = ("name", "lsb_uv", "step_uv", "remove_dc", "offset_uv")
        chans = tuple(ChannelNorm(**{k: c[k] for k in keys}) for c in d["channels"])
        norm = cls(chans)
        for c, stored in zip(norm.channels, d["channels"], strict=True):
            if (c.multiplier, c.shift, c.offset) != (
                stored["multiplier"],
                stored["shift"],
                stored["offset"],
            ):
                raise ValueError(f"{c.name}: stored integer constants disagree with its steps")
        return norm


def zscore_int8(x_uv: np.ndarray) -> np.ndarray:
    """The alternative measured against (docs/preprocessing.md): per-epoch, per-channel
    z-score, then the same int8 grid (q = round(16 z), saturated). Erases absolute amplitude."""
    x_uv = np.asarray(x_uv)
    mean = x_uv.mean(axis=-1, keepdims=True)
    std = x_uv.std(axis=-1, keepdims=True) + 1e-6
    return np.clip(np.rint((x_uv - mean) / std / INPUT_SCALE), -128, 127).astype(np.int8)


def input_transform(config: dict):
    """The int8 input function a model folder's config.json ``normalisation`` entry names."""
    if config.get("kind") == "zscore":
        return zscore_int8
    return Normaliser.from_dict(config).model_input
