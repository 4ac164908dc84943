"""Shared fixtures: real Sleep-EDF hypnograms when present, small simulated PSG pairs."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import numpy as np
import pytest

from sleepdata import simulator
from sleepdata.hypnogram import write_hypnogram
from sleepdata.layout import SLEEP_CASSETTE_SIGNALS
from sleepdata.provenance import SIMULATOR_MARK
from sleepdata.psg_writer import write_psg

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "sleep-edf"
START = dt.datetime(1989, 4, 24, 16, 13)


def pytest_addoption(parser):
    parser.addoption(
        "--port",
        default=None,
        help="hardware-in-the-loop tests on a real board at this pyserial URL "
        "(default: an emulated board in QEMU)",
    )


@pytest.fixture(scope="session")
def shared_sleep_edf() -> Path:
    """../shared/sleep-edf (real hypnograms, PSG header); skips where it is absent."""
    if not (SHARED / "hypnograms").is_dir():
        pytest.skip("real Sleep-EDF hypnograms (../shared/sleep-edf) not present")
    return SHARED


def write_pair(
    folder: Path,
    stages,
    *,
    name: str = "SC4001E",
    seed: int = 0,
    specs=None,
    edit=None,
    hypnogram_stages=None,
    marked: bool = True,
) -> tuple[Path, Path]:
    """A small simulated PSG + hypnogram pair in ``folder``.

    ``specs`` replaces the signal layout, ``edit(signals)`` changes the signals before writing,
    ``hypnogram_stages`` writes a hypnogram other than ``stages``; ``marked`` False leaves out
    the simulator's mark in the EDF header (the file then passes for a real recording).
    """
    folder.mkdir(parents=True, exist_ok=True)
    stages = np.asarray(stages, dtype=np.int8)
    traits, rng = simulator.traits_for(name + "0", seed)
    night = simulator.simulate_night(stages, START, traits, rng)
    if edit is not None:
        edit(night.signals)
    psg = folder / f"{name}0-PSG.edf"
    hyp = folder / f"{name}C-Hypnogram.edf"
    mark = {"recording": f"{SIMULATOR_MARK}_test_seed_{seed}"} if marked else {}
    write_psg(psg, night, specs=specs or SLEEP_CASSETTE_SIGNALS, **mark)
    write_hypnogram(
        hyp,
        START,
        stages if hypnogram_stages is None else np.asarray(hypnogram_stages, dtype=np.int8),
    )
    return psg, hyp


def relabel(index: int, **changes) -> tuple:
    """The sleep-cassette layout with signal ``index`` changed."""
    specs = list(SLEEP_CASSETTE_SIGNALS)
    specs[index] = dataclasses.replace(specs[index], **changes)
    return tuple(specs)
