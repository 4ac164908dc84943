"""The epoch cache: same recording back, keyed by file content, nothing half-written, and where
it lives by default."""

from __future__ import annotations

import numpy as np
import pytest

from sleepdata import cache
from sleepdata.cache import default_cache
from sleepdata.errors import NoSleepError
from sleepdata.psg import pair_for
from sleepdata.stages import N1, N2, N3, REM, W

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
    assert len(list((tmp_path / "cache").iterdir())) == 1
    write_pair(tmp_path / "data", SHORT_NIGHT, hypnogram_stages=[N2] * len(SHORT_NIGHT))
    changed = cache.load(pair, tmp_path / "cache")
    assert (changed.labels == N2).all()
    assert len(list((tmp_path / "cache").iterdir())) == 2


def test_failed_or_interrupted_loads_leave_nothing_in_the_cache(tmp_path, monkeypatch):
    psg, _hyp = write_pair(tmp_path / "data", SHORT_NIGHT, hypnogram_stages=[W] * 24)
    with pytest.raises(NoSleepError):
        cache.load(pair_for(psg), tmp_path / "cache")
    assert not (tmp_path / "cache").exists() or not list((tmp_path / "cache").iterdir())

    write_pair(tmp_path / "data", SHORT_NIGHT)

    def interrupted(f, **arrays):
        f.write(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez", interrupted)
    with pytest.raises(KeyboardInterrupt):
        cache.load(pair_for(psg), tmp_path / "cache")
    assert not list((tmp_path / "cache").iterdir())
