"""Header-mutation fuzzing of the PSG reader, short run (the long one: scripts/fuzz_edf.py).

Every mutant of a small simulated PSG must either load with values that an independent reader
derives from the mutant's own header, or be refused with a one-line DataError naming the file;
nothing else may escape, hang or print (tests/sleepdata/edf_fuzz.py has the mutator and oracle).
"""

from __future__ import annotations

import faulthandler
import os
import random
import time
from collections import Counter

import pytest

from sleepdata import psg as psg_module

from . import edf_fuzz
from .edf_fuzz import check_loaded, fuzz, make_base, mutate, run_mutant

#: Mutants in the short run; the whole test stays well under 60 s on a shared 2-core machine.
SHORT_RUN = 300


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    return make_base(tmp_path_factory.mktemp("fuzz-base"))


def test_header_mutants_load_consistently_or_are_refused_in_one_line(base, tmp_path, capfd):
    kinds, findings = Counter(), []
    began = time.monotonic()
    # A hang inside C would ignore the per-mutant alarm: fail loudly rather than stall the suite.
    faulthandler.dump_traceback_later(300, exit=True)
    try:
        for outcome in fuzz(base, tmp_path, range(SHORT_RUN), capture=False):
            out, err = capfd.readouterr()  # run_mutant flushed C's stdio buffers
            if out or err:
                findings.append(f"printed {(out + err).strip()[:200]!r} [{outcome.mutation}]")
            if outcome.finding:
                findings.append(f"{outcome.kind}: {outcome.reason} [{outcome.mutation}]")
            kinds[outcome.kind] += 1
    finally:
        faulthandler.cancel_dump_traceback_later()
    assert findings == []
    # The run must exercise both sides of the oracle, not only refusals.
    assert kinds["loaded"] >= 30 and kinds["refused"] >= 180, kinds
    assert time.monotonic() - began < 60


def test_mutants_are_deterministic(base):
    first = [mutate(base[0], random.Random(seed)) for seed in range(20)]
    again = [mutate(base[0], random.Random(seed)) for seed in range(20)]
    assert first == again
    assert len(set(first)) >= 18  # seeds give different mutants (a few may coincide)


# ------------------------------------------------------------------------------------------
# The oracle and the harness can fail: each finding kind is detected.


def test_a_loader_that_misscales_is_inconsistent(base, tmp_path, monkeypatch):
    monkeypatch.setitem(psg_module.VOLTAGE_UNITS, "uV", 1.001)
    outcome = run_mutant(base[0], "unmutated", tmp_path, base)
    assert outcome.kind == "inconsistent"
    assert "EEG Fpz-Cz" in outcome.reason


def test_the_independent_reader_agrees_with_the_loader_on_the_original(base, tmp_path):
    outcome = run_mutant(base[0], "unmutated", tmp_path, base)
    assert outcome == edf_fuzz.Outcome("loaded", "", "unmutated")


def test_a_changed_range_is_checked_against_the_new_header(base, tmp_path):
    """Scaling EEG Fpz-Cz's physical range changes the values; the oracle follows the header,
    so a stale expectation (the original bytes) fails."""
    mutant = bytearray(base[0])
    offset, width = edf_fuzz._signal_offset(7, "pmax", 0)
    mutant[offset : offset + width] = b"384     "
    outcome = run_mutant(bytes(mutant), "pmax 384", tmp_path, base)
    assert outcome.kind == "loaded"
    rec = psg_module.load_recording(
        psg_module.pair_for(tmp_path / "SC4001E0-PSG.edf", tmp_path / "SC4001EC-Hypnogram.edf")
    )
    assert "values differ" in check_loaded(rec, base[0])


def _raise(exc: Exception):
    raise exc


@pytest.mark.parametrize(
    ("behaviour", "kind"),
    [
        (lambda: 1 / 0, "crash"),
        (lambda: _raise(psg_module.DataError("other.edf", "problem")), "bad-refusal"),
        (lambda: os.write(1, b"filesize 1 != 2") and 1 / 0, "printed"),
        (lambda: time.sleep(5), "hang"),
    ],
)
def test_the_harness_reports_each_finding(base, tmp_path, monkeypatch, behaviour, kind):
    monkeypatch.setattr(edf_fuzz, "load_recording", lambda pair: behaviour())
    outcome = run_mutant(base[0], "unmutated", tmp_path, base, timeout_s=0.2)
    assert outcome.kind == kind
    assert outcome.finding
