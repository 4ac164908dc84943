"""The epoch cache: same recording back (as the board's wire samples: the same model inputs), keyed
by file content, read on demand, nothing half-written, and where it lives by default."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pytest

from sleepdata import cache
from sleepdata.cache import default_cache
from sleepdata.epoch_store import WireEpochs
from sleepdata.errors import NoSleepError
from sleepdata.normalise import DEFAULT_LSB_UV, Normaliser
from sleepdata.psg import Recording, load_recording, pair_for
from sleepdata.stages import N1, N2, N3, REM, W
from training.splits import ModelInputs, model_inputs

from ..conftest import write_pair

SHORT_NIGHT = [W] * 4 + [N1] * 2 + [N2] * 6 + [N3] * 4 + [REM] * 4 + [W] * 4


def test_default_cache_follows_xdg_cache_home(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert default_cache() == tmp_path / "ulw-sleepnet-mcu" / "epochs"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_cache() == tmp_path / "home" / ".cache" / "ulw-sleepnet-mcu" / "epochs"


def test_cache_returns_the_same_recording_and_follows_file_content(tmp_path):
    psg, _hyp = write_pair(tmp_path / "data", SHORT_NIGHT)
    pair = pair_for(psg)
    fresh = cache.load(pair, tmp_path / "cache")
    again = cache.load(pair, tmp_path / "cache")
    np.testing.assert_array_equal(fresh.epochs, again.epochs)
    np.testing.assert_array_equal(fresh.labels, again.labels)
    assert (again.name, again.subject, again.night, again.start) == (
        fresh.name,
        fresh.subject,
        fresh.night,
        fresh.start,
    )
    assert len(entries(tmp_path / "cache")) == 2  # .npy + .json
    write_pair(tmp_path / "data", SHORT_NIGHT, hypnogram_stages=[N2] * len(SHORT_NIGHT))
    changed = cache.load(pair, tmp_path / "cache")
    assert (changed.labels == N2).all()
    assert len(entries(tmp_path / "cache")) == 4


def entries(folder):
    return sorted(p.name for p in folder.iterdir() if p.suffix in (".json", ".npy", ".part"))


def test_cached_epochs_give_the_boards_inputs_and_read_on_demand(tmp_path):
    psg, _hyp = write_pair(tmp_path / "data", SHORT_NIGHT)
    pair = pair_for(psg)
    direct = load_recording(pair)
    cached = cache.load(pair, tmp_path / "cache")
    lazy = cache.load(pair, tmp_path / "cache", lazy=True)
    assert isinstance(lazy.epochs, WireEpochs) and isinstance(cached.epochs, np.ndarray)
    # microvolts come back on the wire's grid: within half a step of what was read
    half = np.asarray(DEFAULT_LSB_UV).reshape(-1, 1) / 2
    float32_rounding = np.abs(direct.epochs) * 2e-7
    assert (np.abs(cached.epochs - direct.epochs) <= half + float32_rounding).all()
    norm = Normaliser.fit(direct.epochs)
    want = norm.model_input(direct.epochs)
    np.testing.assert_array_equal(norm.model_input(cached.epochs), want)
    np.testing.assert_array_equal(model_inputs([lazy], norm), want)
    # every kind of index the training loop and the evaluations use
    x = ModelInputs([lazy, lazy], norm)
    assert x.shape == (2 * len(want), *want.shape[1:]) and len(x) == 2 * len(want)
    np.testing.assert_array_equal(x[[len(want) + 2, 1, 3]], want[[2, 1, 3]])
    np.testing.assert_array_equal(x[len(want) : len(want) + 5], want[:5])
    np.testing.assert_array_equal(x[len(want) + 4], want[4])
    assert lazy.epochs.shape == cached.epochs.shape and len(lazy.epochs) == len(cached)
    np.testing.assert_array_equal(lazy.epochs[3], cached.epochs[3])
    np.testing.assert_array_equal(lazy.epochs[2:6], cached.epochs[2:6])
    mask = np.arange(len(cached)) % 3 == 0
    np.testing.assert_array_equal(lazy.epochs[mask], cached.epochs[mask])
    np.testing.assert_array_equal(np.asarray(lazy.epochs), cached.epochs)
    # the entry is a memory-mappable int16 array
    assert lazy.epochs.memmap().dtype == np.int16


def test_saturated_samples_are_counted_per_channel(tmp_path):
    epochs = np.zeros((2, 4, 3000), np.float32)
    epochs[0, 0, :10] = 2000.0  # beyond +-1638 uV on the EEG wire
    epochs[1, 3, :3] = -40.0  # beyond +-32.8 uV on the EMG envelope's
    rec = Recording(
        "SC4001E0",
        0,
        1,
        dt.datetime(1989, 4, 24),
        epochs,
        np.array([0, 2], np.int8),
        np.array([0.0, 30.0]),
        {},
    )
    meta = cache.save(tmp_path / "SC4001E0-key", rec)
    assert list(meta["saturated_samples"].values()) == [10, 0, 0, 3]
    back = cache.read(tmp_path / "SC4001E0-key")
    assert back.epochs[0, 0, 0] == pytest.approx(32767 * 0.05)


def test_failed_or_interrupted_loads_leave_nothing_in_the_cache(tmp_path, monkeypatch):
    psg, _hyp = write_pair(tmp_path / "data", SHORT_NIGHT, hypnogram_stages=[W] * 24)
    with pytest.raises(NoSleepError):
        cache.load(pair_for(psg), tmp_path / "cache")
    assert not (tmp_path / "cache").exists() or not entries(tmp_path / "cache")

    write_pair(tmp_path / "data", SHORT_NIGHT)

    def interrupted(f, array):
        f.write(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "save", interrupted)
    with pytest.raises(KeyboardInterrupt):
        cache.load(pair_for(psg), tmp_path / "cache")
    assert not entries(tmp_path / "cache")
