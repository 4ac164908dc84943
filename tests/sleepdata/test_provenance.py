"""Provenance read from the files: the simulator's mark, real Sleep-EDF files, others."""

from __future__ import annotations

import shutil

import pytest

from sleepdata import provenance
from sleepdata.stages import N2, W

from ..conftest import write_pair

NIGHT = [W] * 4 + [N2] * 4


def test_the_simulators_mark_real_sleep_edf_and_unrecognised_files(tmp_path):
    sim, _ = write_pair(tmp_path / "sim", NIGHT, name="SC4001E")
    real, _ = write_pair(tmp_path / "real", NIGHT, name="SC4011E", marked=False)
    other = tmp_path / "night.edf"
    shutil.copyfile(real, other)
    assert provenance.kind_of(sim) == "simulated"
    assert provenance.kind_of(real) == "Sleep-EDF"
    assert provenance.kind_of(other) == "real (source not recognised)"
    assert provenance.describe([sim])["label"] == "simulated nights, not real recordings"
    mixed = provenance.describe([sim, real, other])
    assert mixed["data"] == "mixed"
    assert mixed["files"] == {"Sleep-EDF": 1, "real (source not recognised)": 1, "simulated": 1}
    assert mixed["label"].startswith("MIXED")
    assert provenance.describe([real, other])["data"] == "real"
    with pytest.raises(ValueError, match="no PSG file"):
        provenance.describe([])


def test_the_simulator_marks_every_file_it_writes(tmp_path):
    """sleepdata.simulator writes the mark through the same constant provenance reads."""
    from sleepdata.simulator import simulate_generated

    ((psg, _),) = simulate_generated(tmp_path, 1, seed=0)
    assert provenance.is_simulated(psg) and provenance.kind_of(psg) == "simulated"
