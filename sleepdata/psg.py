"""Reading Sleep-EDF PSG + hypnogram pairs into 30-s, 4-channel epochs at 100 Hz.

The steps, documented in docs/data.md:

1. Pair ``*-PSG.edf`` with ``*-Hypnogram.edf`` by the first 7 characters of their names.
2. Pick EEG Fpz-Cz, EEG Pz-Oz, EOG horizontal and EMG submental by label (with aliases).
3. Bring each to 100 Hz. EEG and EOG must already be 100 Hz. The sleep-cassette EMG is a
   1 Hz RMS envelope: each value is placed at the centre of its second and the whole night is
   linearly interpolated to 100 Hz (held flat before the first and after the last centre). This
   is done over the whole signal, not per epoch, so epochs have no edge artefacts. A 100 Hz raw
   EMG (telemetry files) is first turned into the same 1 Hz RMS envelope.
4. Cut 30-s epochs at the hypnogram's onsets, map R&K stages to AASM, keep wake only from 30 min
   before the first to 30 min after the last sleep epoch, and drop movement and unscored epochs.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyedflib

from .edfguard import captured_fds, describe_failure
from .errors import (
    DataError,
    EdfHeaderError,
    HypnogramError,
    MissingChannelError,
    NoSleepError,
    PairingError,
    SamplingRateError,
)
from .hypnogram import read_hypnogram
from .layout import EMG_INDEX, EPOCH_S, EPOCH_SAMPLES, MODEL_CHANNELS, MODEL_FS_HZ, normalise_label
from .names import PAIR_KEY_LEN, parse_name
from .stages import SLEEP_STAGES

#: Wake kept before the first and after the last sleep epoch.
WAKE_MARGIN_S = 30 * 60
WAKE_MARGIN_EPOCHS = WAKE_MARGIN_S // EPOCH_S
#: EMG rates the loader understands: the Sleep-EDF cassette envelope and a raw telemetry EMG.
EMG_ENVELOPE_HZ = 1
PSG_SUFFIX = "-PSG.edf"
HYPNOGRAM_SUFFIX = "-Hypnogram.edf"


@dataclass(frozen=True)
class RecordingPair:
    psg: Path
    hypnogram: Path

    @property
    def name(self) -> str:
        """Record name, e.g. SC4001E0 (the PSG file name without its suffix)."""
        return self.psg.name[: -len(PSG_SUFFIX)]


@dataclass
class Recording:
    """One night, ready for the model.

    epochs: float32 (n, 4, 3000), microvolts, channels in MODEL_CHANNELS order.
    labels: int8 (n,), AASM classes 0..4 (W, N1, N2, N3, REM).
    onsets_s: float64 (n,), epoch start in seconds from the PSG start.
    """

    name: str
    subject: int
    night: int
    start: dt.datetime
    epochs: np.ndarray
    labels: np.ndarray
    onsets_s: np.ndarray
    source: dict[str, str] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.labels.size)


# ------------------------------------------------------------------------------------------
# Finding pairs


def _has_suffix(path: Path, suffix: str) -> bool:
    return path.name.lower().endswith(suffix.lower())


def discover_pairs(folder: str | Path) -> list[RecordingPair]:
    """Every PSG/hypnogram pair in ``folder`` (not recursive), sorted by name.

    Raises PairingError naming the first file without a partner (or with several), and
    DataError when the folder holds no pair at all.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(folder, "not a folder")
    files = sorted(p for p in folder.iterdir() if p.is_file())
    psgs = [p for p in files if _has_suffix(p, PSG_SUFFIX)]
    hyps = [p for p in files if _has_suffix(p, HYPNOGRAM_SUFFIX)]
    by_key: dict[str, list[Path]] = {}
    for h in hyps:
        by_key.setdefault(h.name[:PAIR_KEY_LEN], []).append(h)
    pairs, used = [], set()
    for p in psgs:
        key = p.name[:PAIR_KEY_LEN]
        matches = by_key.get(key, [])
        if not matches:
            raise PairingError(
                p, f"no hypnogram for this PSG (looked for {key}?{HYPNOGRAM_SUFFIX} in {folder})"
            )
        if len(matches) > 1:
            raise PairingError(
                p,
                "several hypnograms share its first 7 characters: "
                + ", ".join(m.name for m in matches),
            )
        pairs.append(RecordingPair(p, matches[0]))
        used.add(key)
    for h in hyps:
        if h.name[:PAIR_KEY_LEN] not in used:
            raise PairingError(
                h,
                f"no PSG for this hypnogram (looked for "
                f"{h.name[:PAIR_KEY_LEN]}?{PSG_SUFFIX} in {folder})",
            )
    if not pairs:
        raise DataError(folder, f"no *{PSG_SUFFIX} / *{HYPNOGRAM_SUFFIX} pairs in this folder")
    return pairs


def pair_for(psg: str | Path, hypnogram: str | Path | None = None) -> RecordingPair:
    """The pair for one PSG file; the hypnogram is looked up next to it when not given."""
    psg = Path(psg)
    if not psg.is_file():
        raise DataError(psg, "no such file")
    if hypnogram is not None:
        return RecordingPair(psg, Path(hypnogram))
    key = psg.name[:PAIR_KEY_LEN]
    matches = sorted(psg.parent.glob(f"{key}*{HYPNOGRAM_SUFFIX}"))
    if len(matches) != 1:
        problem = "no hypnogram" if not matches else "several hypnograms"
        raise PairingError(
            psg,
            f"{problem} next to it matching {key}*{HYPNOGRAM_SUFFIX}; "
            "pass the hypnogram explicitly",
        )
    return RecordingPair(psg, matches[0])


# ------------------------------------------------------------------------------------------
# Signals


def _find_channel(labels: list[str], wanted: int, path: Path) -> int:
    channel = MODEL_CHANNELS[wanted]
    accepted = {normalise_label(a) for a in channel.aliases}
    hits = [i for i, lab in enumerate(labels) if normalise_label(lab) in accepted]
    if not hits:
        raise MissingChannelError(
            path,
            f"no {channel.name!r} channel (accepted labels: "
            f"{', '.join(channel.aliases)}; the file has: "
            f"{', '.join(labels)})",
        )
    return hits[0]


def emg_to_model_rate(values: np.ndarray, fs_hz: float) -> np.ndarray:
    """EMG envelope at 100 Hz from a 1 Hz envelope (or a 100 Hz raw EMG), over the whole night.

    1 Hz value k describes second [k, k+1); it is placed at k + 0.5 s and interpolated
    linearly between centres. A raw 100 Hz EMG becomes a 1 Hz RMS envelope first.
    """
    if fs_hz == MODEL_FS_HZ:
        n_sec = values.size // MODEL_FS_HZ
        values = np.sqrt(np.mean(values[: n_sec * MODEL_FS_HZ].reshape(n_sec, -1) ** 2, axis=1))
    n_out = values.size * MODEL_FS_HZ
    centres = np.arange(values.size) + 0.5
    t = (np.arange(n_out) + 0.5) / MODEL_FS_HZ  # sample centres; exact at k + 0.5 s
    return np.interp(t, centres, values)


#: Physical dimensions accepted for the model's channels, and their factor to microvolts. EDF
#: units are case-sensitive ("MV" would be megavolts), so only these spellings are accepted.
VOLTAGE_UNITS = {
    **dict.fromkeys(("uV", "UV", "uv", "µV"), 1.0),
    **dict.fromkeys(("mV", "mv"), 1e3),
    **dict.fromkeys(("V", "v"), 1e6),
}


def _library_error(path: Path, what: str, exc: BaseException, said: str = "") -> EdfHeaderError:
    field_name, reason = describe_failure(path, exc, said)
    return EdfHeaderError(path, field_name or what, f"not a readable EDF file ({what}: {reason})")


def _open_edf(path: Path) -> pyedflib.EdfReader:
    said: list[str] = []
    try:
        with captured_fds(said):
            return pyedflib.EdfReader(str(path))
    except Exception as exc:  # every library failure is a property of the file
        raise _library_error(path, "opening", exc, " ".join(said)) from None


def _check_layout(reader: pyedflib.EdfReader, path: Path) -> float:
    """Check the file-wide header fields; returns the data-record duration in seconds."""
    duration = float(reader.datarecord_duration)
    if not (math.isfinite(duration) and duration > 0):
        raise EdfHeaderError(
            path,
            "duration of a data record",
            f"the header gives a data-record duration of {duration:g} s; it must be > 0",
        )
    # pyedflib refuses a file shorter than its header says, not a longer one: data past the
    # records the header counts would be dropped without a word.
    ns = reader.signals_in_file
    per_record = [int(reader.samples_in_datarecord(i)) for i in range(ns)]
    expected = 256 * (ns + 1) + 2 * sum(per_record) * int(reader.datarecords_in_file)
    actual = path.stat().st_size
    if actual != expected:
        raise EdfHeaderError(
            path,
            "number of data records",
            f"the header says {reader.datarecords_in_file} data records "
            f"({expected:,} bytes in all) but the file has {actual:,} bytes",
        )
    return duration


def _check_signal(
    reader: pyedflib.EdfReader, idx: int, label: str, k: int, duration: float, path: Path
) -> tuple[float, float]:
    """Check the header of a signal the model uses; returns (sampling rate Hz, factor to uV)."""

    def bad(field_name: str, problem: str) -> EdfHeaderError:
        return EdfHeaderError(path, field_name, f"channel {label!r}: {problem}")

    per_record = int(reader.samples_in_datarecord(idx))
    if per_record <= 0:
        raise bad("samples per data record", f"{per_record} samples per data record")
    dmin, dmax = reader.getDigitalMinimum(idx), reader.getDigitalMaximum(idx)
    if not dmin < dmax:
        raise bad(
            "digital minimum/maximum",
            f"digital minimum {dmin:g} is not below digital maximum {dmax:g}",
        )
    pmin, pmax = reader.getPhysicalMinimum(idx), reader.getPhysicalMaximum(idx)
    if not (math.isfinite(pmin) and math.isfinite(pmax) and pmin != pmax):
        raise bad(
            "physical minimum/maximum",
            f"physical minimum {pmin:g} and maximum {pmax:g} give no scale",
        )
    units = reader.getPhysicalDimension(idx).strip()
    if units not in VOLTAGE_UNITS:
        raise bad("physical dimension", f"units {units!r}; expected uV, mV or V")
    fs = per_record / duration
    allowed = (EMG_ENVELOPE_HZ, MODEL_FS_HZ) if k == EMG_INDEX else (MODEL_FS_HZ,)
    if fs not in allowed:
        raise SamplingRateError(
            path,
            f"channel {label!r} is sampled at {fs:g} Hz; "
            f"expected {' or '.join(f'{a} Hz' for a in allowed)}",
        )
    return fs, VOLTAGE_UNITS[units]


@dataclass(frozen=True)
class _Channel:
    """A model channel of an open PSG file: its index, label, rate, factor to uV and its length
    once brought to 100 Hz."""

    idx: int
    label: str
    fs: float
    to_uv: float
    n_model: int


def _model_length(n_file: int, fs: float) -> int:
    if fs == MODEL_FS_HZ:
        return n_file
    return n_file * MODEL_FS_HZ  # a 1 Hz EMG envelope, interpolated


def _open_channels(path: Path) -> tuple[pyedflib.EdfReader, list[_Channel], dt.datetime]:
    """Open ``path`` and check every header field the reading relies on (EdfHeaderError names
    the file and the field; any failure of the EDF library becomes one too). The caller closes
    the reader."""
    reader = _open_edf(path)
    try:
        try:
            duration = _check_layout(reader, path)
            ns = reader.signals_in_file
            labels = [reader.getLabel(i) for i in range(ns)]
        except DataError:
            raise
        except Exception as exc:
            raise _library_error(path, "reading the header", exc) from None
        try:
            start = reader.getStartdatetime()
        except Exception as exc:  # e.g. a startdate of 31.02.89 passes edflib's format check
            raise _library_error(path, "startdate/starttime", exc) from None
        channels = []
        for k in range(len(MODEL_CHANNELS)):
            idx = _find_channel(labels, k, path)
            try:
                fs, to_uv = _check_signal(reader, idx, labels[idx], k, duration, path)
                n_file = int(reader.getNSamples()[idx])
            except DataError:
                raise
            except Exception as exc:
                raise _library_error(path, f"reading channel {labels[idx]!r}", exc) from None
            if k == EMG_INDEX and fs == MODEL_FS_HZ:
                n_file -= n_file % MODEL_FS_HZ  # whole seconds of raw EMG become the envelope
            channels.append(_Channel(idx, labels[idx], fs, to_uv, _model_length(n_file, fs)))
        return reader, channels, start
    except BaseException:
        reader.close()
        raise


def _read_channel(reader: pyedflib.EdfReader, k: int, ch: _Channel, path: Path) -> np.ndarray:
    """Model channel ``k`` at 100 Hz in microvolts, float32: the library's float64 samples of
    this channel alone are the only other copy alive."""
    try:
        x = reader.readSignal(ch.idx)
    except Exception as exc:
        raise _library_error(path, f"reading channel {ch.label!r}", exc) from None
    x *= ch.to_uv
    if k == EMG_INDEX:
        x = emg_to_model_rate(x, ch.fs)
    return x.astype(np.float32)


def _source(channels: list[_Channel]) -> dict[str, str]:
    return {MODEL_CHANNELS[k].name: f"{c.label} @ {c.fs:g} Hz" for k, c in enumerate(channels)}


def read_signals(path: str | Path) -> tuple[np.ndarray, dt.datetime, dict[str, str]]:
    """The model's 4 channels of a PSG file at 100 Hz, in microvolts: float32 (4, n_samples)."""
    path = Path(path)
    reader, channels, start = _open_channels(path)
    try:
        n = min(c.n_model for c in channels)
        out = np.empty((len(channels), n), dtype=np.float32)
        for k, ch in enumerate(channels):
            out[k] = _read_channel(reader, k, ch, path)[:n]
    finally:
        reader.close()
    return out, start, _source(channels)


# ------------------------------------------------------------------------------------------
# Epochs


def select_epochs(
    onsets_s: np.ndarray, labels: np.ndarray, signal_s: float, hypnogram: Path
) -> tuple[np.ndarray, np.ndarray]:
    """Trim wake to 30 min around sleep, drop movement/unscored, check the signal covers it all.

    ``onsets_s`` are relative to the PSG start. Returns the kept (onsets_s, labels).
    """
    sleep = np.flatnonzero(np.isin(labels, list(SLEEP_STAGES)))
    if sleep.size == 0:
        raise NoSleepError(hypnogram, "the hypnogram scores no sleep epoch (N1, N2, N3 or REM)")
    lo = onsets_s[sleep[0]] - WAKE_MARGIN_S
    hi = onsets_s[sleep[-1]] + WAKE_MARGIN_S
    keep = (onsets_s >= lo) & (onsets_s <= hi) & (labels >= 0)
    onsets_s, labels = onsets_s[keep], labels[keep]
    if onsets_s[0] < 0:
        raise HypnogramError(
            hypnogram, f"scored epoch at {onsets_s[0]:g} s starts before the PSG recording"
        )
    beyond = onsets_s + EPOCH_S > signal_s
    if beyond.any():
        first = onsets_s[np.argmax(beyond)]
        raise HypnogramError(
            hypnogram,
            f"hypnogram runs past the signal: the epoch scored at "
            f"{first:g} s ends after the recording ({signal_s:g} s); "
            f"{int(beyond.sum())} scored epoch(s) affected",
        )
    return onsets_s, labels


def load_recording(pair: RecordingPair) -> Recording:
    """Read and epoch one PSG/hypnogram pair (no cache; see sleepdata.cache.load).

    The hypnogram is read first; then one channel at a time is read (float64 from the EDF
    library, then float32 microvolts at 100 Hz) and cut into the epochs, so a 22-h night never
    holds more than one channel beside its epochs."""
    path = pair.psg
    reader, channels, start = _open_channels(path)
    try:
        n = min(c.n_model for c in channels)
        hyp = read_hypnogram(pair.hypnogram)
        onsets, labels = hyp.epochs()
        onsets = onsets + (hyp.start - start).total_seconds()
        onsets, labels = select_epochs(onsets, labels, n / MODEL_FS_HZ, pair.hypnogram)
        first = np.rint(onsets * MODEL_FS_HZ).astype(np.int64)
        idx = first[:, None] + np.arange(EPOCH_SAMPLES)
        epochs = np.empty((len(first), len(channels), EPOCH_SAMPLES), dtype=np.float32)
        for k, ch in enumerate(channels):
            epochs[:, k, :] = _read_channel(reader, k, ch, path)[idx]
    finally:
        reader.close()
    source = _source(channels)
    try:
        ids = parse_name(pair.psg.name)
        subject, night = ids.subject, ids.night
    except ValueError:
        subject, night = -1, -1
    source = {**source, "psg": pair.psg.name, "hypnogram": pair.hypnogram.name}
    return Recording(
        name=pair.name,
        subject=subject,
        night=night,
        start=start,
        epochs=epochs,
        labels=labels.astype(np.int8),
        onsets_s=onsets,
        source=source,
    )
