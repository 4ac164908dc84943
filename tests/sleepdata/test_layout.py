"""The simulated PSG has the exact layout of a real Sleep-EDF sleep-cassette file."""

from __future__ import annotations

import datetime as dt

import pyedflib
import pytest

from sleepdata.layout import SLEEP_CASSETTE_SIGNALS, read_wfdb_header, wfdb_fields
from sleepdata.simulator import simulate_from_hypnogram


def test_layout_reproduces_physionet_header(shared_sleep_edf):
    hea = read_wfdb_header(shared_sleep_edf / "SC4001E0_PSG.hea")
    assert [s.label for s in hea.signals] == [s.label for s in SLEEP_CASSETTE_SIGNALS]
    for spec, sig in zip(SLEEP_CASSETTE_SIGNALS, hea.signals, strict=True):
        gain, baseline, adc_res, adc_zero = wfdb_fields(spec)
        assert spec.fs_hz == sig.fs_hz, spec.label
        assert gain == pytest.approx(sig.gain, rel=1e-9), spec.label
        assert (baseline, adc_res, adc_zero) == (sig.baseline, sig.adc_resolution, sig.adc_zero)
        assert spec.units == sig.units, spec.label


def test_simulated_psg_has_the_real_layout(shared_sleep_edf, tmp_path):
    hea = read_wfdb_header(shared_sleep_edf / "SC4001E0_PSG.hea")
    psg, hyp = simulate_from_hypnogram(
        shared_sleep_edf / "hypnograms" / "SC4001EC-Hypnogram.edf", tmp_path
    )
    assert psg.name == "SC4001E0-PSG.edf"
    assert hyp.read_bytes() == (shared_sleep_edf / "hypnograms" / hyp.name).read_bytes()
    with pyedflib.EdfReader(str(psg)) as r:
        assert r.file_duration == hea.duration_s == 79500
        assert r.datarecord_duration == 30
        assert r.getStartdatetime() == dt.datetime.strptime(hea.start, "%H:%M:%S %d/%m/%Y")
        for i, sig in enumerate(hea.signals):
            h = r.getSignalHeader(i)
            assert h["label"] == sig.label
            assert h["sample_frequency"] == sig.fs_hz
            assert h["dimension"] == sig.units
            spec = SLEEP_CASSETTE_SIGNALS[i]
            assert (h["physical_min"], h["physical_max"]) == (spec.physical_min, spec.physical_max)
            assert (h["digital_min"], h["digital_max"]) == (spec.digital_min, spec.digital_max)
            assert wfdb_fields(spec)[0] == pytest.approx(sig.gain, rel=1e-9)
