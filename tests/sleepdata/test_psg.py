"""Loading PSG/hypnogram pairs: round trip on simulated nights, and every bad input rejected."""

from __future__ import annotations

import numpy as np
import pyedflib
import pytest

from sleepdata.errors import (
    DataError,
    EdfHeaderError,
    HypnogramError,
    MissingChannelError,
    NoSleepError,
    PairingError,
    SamplingRateError,
    UnreadableFileError,
)
from sleepdata.hypnogram import write_hypnogram
from sleepdata.layout import CHANNEL_NAMES, EPOCH_SAMPLES
from sleepdata.psg import discover_pairs, emg_to_model_rate, load_recording, pair_for
from sleepdata.simulator import simulate_from_hypnogram
from sleepdata.stages import N1, N2, N3, REM, UNSCORED, W

from ..conftest import START, relabel, write_pair

REAL_NIGHTS = ("SC4001EC", "SC4022EJ", "SC4131EC")  # SC4131: subject 13's only night
SHORT_NIGHT = [W] * 4 + [N1] * 2 + [N2] * 6 + [N3] * 4 + [REM] * 4 + [W] * 4
RK = {
    "Sleep stage W": W,
    "Sleep stage 1": N1,
    "Sleep stage 2": N2,
    "Sleep stage 3": N3,
    "Sleep stage 4": N3,
    "Sleep stage R": REM,
}


@pytest.fixture(scope="module")
def real_sim(shared_sleep_edf, tmp_path_factory):
    """Simulated PSG files for a few real hypnograms."""
    out = tmp_path_factory.mktemp("real-sim")
    for key in REAL_NIGHTS:
        (hyp,) = (shared_sleep_edf / "hypnograms").glob(f"{key}-Hypnogram.edf")
        simulate_from_hypnogram(hyp, out, seed=1)
    return out


def expected_epochs(hypnogram_path):
    """Mapped and trimmed hypnogram, computed directly from the annotations."""
    with pyedflib.EdfReader(str(hypnogram_path)) as r:
        onsets, durations, texts = r.readAnnotations()
    epochs = [
        (o + 30 * k, t)
        for o, d, t in zip(onsets, durations, texts, strict=True)
        for k in range(int(d // 30))
    ]
    sleep = [o for o, t in epochs if RK.get(t, W) != W]
    lo, hi = min(sleep) - 1800, max(sleep) + 1800
    kept = [(o, RK[t]) for o, t in epochs if lo <= o <= hi and t in RK]
    return np.array([o for o, _ in kept]), np.array([s for _, s in kept])


def test_round_trip_on_real_hypnograms(real_sim):
    pairs = discover_pairs(real_sim)
    assert [p.name for p in pairs] == ["SC4001E0", "SC4022E0", "SC4131E0"]
    for pair in pairs:
        rec = load_recording(pair)
        onsets, labels = expected_epochs(pair.hypnogram)
        assert rec.epochs.shape == (labels.size, 4, EPOCH_SAMPLES)
        assert rec.epochs.dtype == np.float32
        np.testing.assert_array_equal(rec.labels, labels)
        np.testing.assert_array_equal(rec.onsets_s, onsets)
        assert set(np.unique(rec.labels)) == {W, N1, N2, N3, REM}
        assert (rec.subject, rec.night) == (int(pair.name[3:5]), int(pair.name[5]))
        # Epoch i of each EEG/EOG channel is the file's signal at the hypnogram onset.
        with pyedflib.EdfReader(str(pair.psg)) as r:
            for ch in range(3):
                raw = r.readSignal(ch)
                for i in (0, len(rec) // 2, len(rec) - 1):
                    start = int(onsets[i] * 100)
                    np.testing.assert_allclose(
                        rec.epochs[i, ch], raw[start : start + EPOCH_SAMPLES], rtol=1e-6
                    )
    first = load_recording(pairs[0])
    assert np.bincount(first.labels).tolist() == [188, 58, 250, 220, 125]  # SC4001, 841 epochs


def test_emg_envelope_is_interpolated_over_the_whole_night():
    ramp = np.arange(10.0)  # 1 Hz envelope
    up = emg_to_model_rate(ramp, 1)
    t = (np.arange(1000) + 0.5) / 100
    np.testing.assert_allclose(up, np.clip(t - 0.5, 0, 9))


def test_emg_is_continuous_across_epoch_boundaries(tmp_path):
    psg, _hyp = write_pair(tmp_path, SHORT_NIGHT)
    rec = load_recording(pair_for(psg))
    with pyedflib.EdfReader(str(psg)) as r:
        env = r.readSignal(4)
    max_step = np.abs(np.diff(env)).max() / 100 + 1e-4  # one 100 Hz step of the steepest slope
    contiguous = np.flatnonzero(np.diff(rec.onsets_s) == 30)
    jumps = np.abs(rec.epochs[contiguous + 1, 3, 0] - rec.epochs[contiguous, 3, -1])
    assert jumps.max() <= max_step


def test_raw_100hz_emg_becomes_the_same_envelope(tmp_path):
    rng = np.random.default_rng(0)
    rms = np.repeat(rng.uniform(0.5, 4.0, len(SHORT_NIGHT) * 30), 100)

    def raw_emg(signals):
        signals[4] = rms * rng.choice([-1.0, 1.0], rms.size)  # |x| = rms in every second

    specs = relabel(
        4, fs_hz=100, physical_min=-10.0, physical_max=10.0, digital_min=-32768, digital_max=32767
    )
    psg, _ = write_pair(tmp_path, SHORT_NIGHT, specs=specs, edit=raw_emg)
    rec = load_recording(pair_for(psg))
    centre = rec.epochs[:, 3, 50::100]  # interpolated value near each second's centre
    expected = rms[::100].reshape(len(SHORT_NIGHT), 30)[(rec.onsets_s // 30).astype(int)]
    np.testing.assert_allclose(centre, expected, atol=0.05 + 0.01 * expected.max())


def test_wake_is_trimmed_to_30_minutes_around_sleep(tmp_path):
    stages = [W] * 100 + [N2] * 10 + [W] * 100
    psg, _ = write_pair(tmp_path, stages)
    rec = load_recording(pair_for(psg))
    assert rec.labels.tolist() == [W] * 60 + [N2] * 10 + [W] * 60
    assert rec.onsets_s[0] == (100 - 60) * 30


def test_unscored_tail_past_the_signal_is_accepted(tmp_path):
    psg, _ = write_pair(tmp_path, SHORT_NIGHT, hypnogram_stages=SHORT_NIGHT + [UNSCORED] * 50)
    assert len(load_recording(pair_for(psg))) == len(SHORT_NIGHT)


# ------------------------------------------------------------------------------------------
# Bad input: each raises an error naming the file and the problem.


def _eeg_at_200hz(signals):
    signals[0] = np.repeat(signals[0], 2)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"specs": relabel(1, label="EEG P3-O1")}, MissingChannelError, "no 'EEG Pz-Oz' channel"),
        (
            {"specs": relabel(0, fs_hz=200), "edit": _eeg_at_200hz},
            SamplingRateError,
            "'EEG Fpz-Cz' is sampled at 200 Hz; expected 100 Hz",
        ),
        (
            {
                "specs": relabel(4, fs_hz=10),
                "edit": lambda s: s.__setitem__(4, np.repeat(s[4], 10)),
            },
            SamplingRateError,
            "sampled at 10 Hz; expected 1 Hz or 100 Hz",
        ),
        (
            {"hypnogram_stages": SHORT_NIGHT + [N2] * 3},
            HypnogramError,
            "hypnogram runs past the signal: the epoch scored at 720 s",
        ),
        ({"hypnogram_stages": [W] * len(SHORT_NIGHT)}, NoSleepError, "scores no sleep epoch"),
    ],
)
def test_bad_recordings_raise_a_clear_error(tmp_path, kwargs, error, message):
    stages = kwargs.pop("stages", SHORT_NIGHT)
    psg, hyp = write_pair(tmp_path, stages, **kwargs)
    with pytest.raises(error, match=message) as err:
        load_recording(pair_for(psg))
    assert err.value.path in (psg, hyp)
    assert err.value.path.name in str(err.value)


def test_truncated_psg_is_rejected(tmp_path):
    psg, _ = write_pair(tmp_path, SHORT_NIGHT)
    data = psg.read_bytes()
    psg.write_bytes(data[: len(data) - 1000])
    with pytest.raises(UnreadableFileError, match="not a readable EDF file") as err:
        load_recording(pair_for(psg))
    assert err.value.path == psg


def test_psg_whose_header_undercounts_its_records_is_rejected(tmp_path):
    """A header that lies about its record count (fewer than the file holds) would drop the
    rest of the night silently."""
    psg, _ = write_pair(tmp_path, SHORT_NIGHT)
    data = bytearray(psg.read_bytes())
    n = int(data[236:244].decode())
    data[236:244] = f"{n - 5:<8d}".encode()
    psg.write_bytes(bytes(data))
    with pytest.raises(UnreadableFileError, match=f"header says {n - 5} data records") as err:
        load_recording(pair_for(psg))
    assert err.value.path == psg


def test_non_edf_psg_is_rejected(tmp_path):
    psg, _ = write_pair(tmp_path, SHORT_NIGHT)
    psg.write_bytes(b"\x00\x01garbage" * 5000)
    with pytest.raises(UnreadableFileError, match=psg.name):
        load_recording(pair_for(psg))


def test_unpaired_files_are_named(tmp_path):
    write_pair(tmp_path, SHORT_NIGHT, name="SC4001E")
    psg2, hyp2 = write_pair(tmp_path, SHORT_NIGHT, name="SC4002E")
    hyp2.unlink()
    with pytest.raises(PairingError, match=r"SC4002E0-PSG\.edf: no hypnogram"):
        discover_pairs(tmp_path)
    psg2.unlink()
    write_hypnogram(tmp_path / "SC4011EC-Hypnogram.edf", START, np.array(SHORT_NIGHT))
    with pytest.raises(PairingError, match=r"SC4011EC-Hypnogram\.edf: no PSG"):
        discover_pairs(tmp_path)


def test_empty_folder_is_an_error(tmp_path):
    with pytest.raises(DataError, match=r"no \*-PSG\.edf"):
        discover_pairs(tmp_path)


def test_channel_order_is_the_model_order():
    assert CHANNEL_NAMES == ("EEG Fpz-Cz", "EEG Pz-Oz", "EOG horizontal", "EMG submental")


# ------------------------------------------------------------------------------------------
# Hostile headers: each untrustworthy field of a used signal is refused by name, in one line,
# and the EDF library neither escapes with its own exceptions nor prints.

#: Offsets of the per-signal header fields of a 7-signal file (each field for all signals).
SIGNAL_FIELD = {"units": (256 + 7 * 96, 8), "pmin": (256 + 7 * 104, 8), "pmax": (256 + 7 * 112, 8)}
SIGNAL_FIELD |= {"dmin": (256 + 7 * 120, 8), "dmax": (256 + 7 * 128, 8)}


def _patch(psg, offset: int, text: str, width: int = 8) -> None:
    data = bytearray(psg.read_bytes())
    data[offset : offset + width] = text.ljust(width).encode()
    psg.write_bytes(bytes(data))


def _patch_signal(psg, field: str, signal: int, text: str) -> None:
    offset, width = SIGNAL_FIELD[field]
    _patch(psg, offset + signal * width, text, width)


@pytest.mark.parametrize(
    ("patches", "field", "message"),
    [
        ([(244, "0")], "duration of a data record", "data-record duration of 0 s"),
        ([(244, "-0")], "duration of a data record", "data-record duration of 0 s"),
        ([(244, "-1")], "Duration", "not a readable EDF file"),
        ([(168, "31.02.89")], "startdate/starttime", "day is out of range for month"),
        ([(236, "99999")], "Filesize", r"filesize 439808 != 18240\*99999\+2048"),
    ],
)
def test_hostile_file_header_is_refused_by_field(tmp_path, capfd, patches, field, message):
    psg, _ = write_pair(tmp_path, SHORT_NIGHT)
    for offset, text in patches:
        _patch(psg, offset, text)
    with pytest.raises(EdfHeaderError, match=message) as err:
        load_recording(pair_for(psg))
    assert (err.value.path, err.value.field) == (psg, field)
    assert "\n" not in str(err.value) and str(psg) in str(err.value)
    assert capfd.readouterr() == ("", "")  # edflib's own "filesize ..." line is in the message


@pytest.mark.parametrize(
    ("field", "text", "error_field", "message"),
    [
        ("dmin", "2047", "digital minimum/maximum", "digital minimum 2047 is not below .* 2047"),
        ("dmax", "-2048", "digital minimum/maximum", "digital minimum -2048 is not below"),
        ("units", "MV", "physical dimension", "units 'MV'; expected uV, mV or V"),
        ("units", "", "physical dimension", "units ''"),
    ],
)
def test_hostile_signal_header_is_refused_by_field(tmp_path, field, text, error_field, message):
    psg, _ = write_pair(tmp_path, SHORT_NIGHT)
    _patch_signal(psg, field, 1, text)  # EEG Pz-Oz
    with pytest.raises(EdfHeaderError, match=f"channel 'EEG Pz-Oz': {message}") as err:
        load_recording(pair_for(psg))
    assert (err.value.path, err.value.field) == (psg, error_field)


def test_unused_signals_are_not_checked(tmp_path):
    """Rectal temperature is not a model input: a header the loader would refuse for an input
    channel (swapped digital range, units DegC) does not stop the night from loading."""
    psg, _ = write_pair(tmp_path, SHORT_NIGHT)
    _patch_signal(psg, "dmin", 5, "2731")
    _patch_signal(psg, "dmax", 5, "-2849")
    assert len(load_recording(pair_for(psg))) == len(SHORT_NIGHT)


def test_millivolt_and_volt_channels_are_converted_to_microvolts(tmp_path):
    psg, _ = write_pair(tmp_path / "uV", SHORT_NIGHT)
    reference = load_recording(pair_for(psg)).epochs[:, 0]
    for units, pmin, pmax in (("mV", "-0.192", "0.192"), ("V", "-0.00019", "0.00019")):
        psg, _ = write_pair(tmp_path / units, SHORT_NIGHT)
        _patch_signal(psg, "units", 0, units)
        _patch_signal(psg, "pmin", 0, pmin)
        _patch_signal(psg, "pmax", 0, pmax)
        scaled = load_recording(pair_for(psg)).epochs[:, 0]
        ratio = 192 / (float(pmax) * {"mV": 1e3, "V": 1e6}[units])
        np.testing.assert_allclose(scaled * ratio, reference, rtol=1e-5, atol=1e-4)
