"""Hardware-in-the-loop: a cohort of nights through two emulated boards (``host_tools stream
DIR --boards 2``), one night malformed; and a cohort interrupted and finished with --resume."""

from __future__ import annotations

import _thread
import json
import threading
import time

import pytest

from host_tools import runfolder as rf
from host_tools.cli import EXIT_ERROR, EXIT_INTERRUPTED, main
from host_tools.cohort import COHORT_JSON, NIGHTS
from host_tools.cohort_report import COHORT_PLOT

from ..conftest import write_pair

pytestmark = pytest.mark.hil

W, N1, N2, N3, REM = range(5)


@pytest.fixture
def emulated_only(request):
    if request.config.getoption("--port"):
        pytest.skip("--boards starts emulated boards (a real cohort: --port URL per board)")


def _nights(folder, lengths):
    """Short simulated nights of the given lengths (epochs), every stage in each."""
    cycle = [W, N1, N2, N2, N3, N3, N2, REM, REM, N1]
    for k, n in enumerate(lengths):
        write_pair(folder, (cycle * 10)[:n], name=f"SC40{k + 1}1E", seed=k)
    return sorted(folder.glob("*PSG.edf"))


def test_cohort_through_two_boards_with_a_malformed_night(tmp_path, emulated_only, capsys):
    data = tmp_path / "data"
    good = _nights(data, [14, 10])
    bad = data / "SC4991E0-PSG.edf"  # a PSG cut short, its hypnogram beside it
    bad.write_bytes(good[0].read_bytes()[:20_000])
    (data / "SC4991EC-Hypnogram.edf").write_bytes((data / "SC4011EC-Hypnogram.edf").read_bytes())
    out = tmp_path / "cohort"

    assert main(["stream", str(data), "--boards", "2", "--out", str(out)]) == EXIT_ERROR
    printed = capsys.readouterr().out
    assert "3 nights" in printed and "FAILED SC4991E0" in printed

    state = json.loads((out / COHORT_JSON).read_text())
    by_name = {n["name"]: n for n in state["nights"]}
    assert [n["hours"] for n in state["nights"]] == sorted(
        (n["hours"] for n in state["nights"]), reverse=True
    )  # handed out longest first
    assert state["boards"] == ["emulated emu-m4 #1", "emulated emu-m4 #2"]
    assert by_name["SC4991E0"]["status"] == "failed"
    assert str(bad) in by_name["SC4991E0"]["error"]  # the error names the file
    for name, n_epochs in (("SC4011E0", 14), ("SC4021E0", 10)):
        assert by_name[name]["status"] == "done" and by_name[name]["board"] in state["boards"]
        night = out / NIGHTS / name  # a single night's run folder, complete
        rows = rf.read_results(night / rf.RESULTS)
        assert len(rows) == n_epochs and rows.bitexact.all()
        assert (night / rf.REPORT_JSON).is_file() and (night / rf.PLOT).is_file()

    r = json.loads((out / rf.REPORT_JSON).read_text())
    assert (r["nights_done"], r["nights_failed"], r["nights_pending"]) == (2, 1, 0)
    assert r["pooled"]["epochs"] == 24 and r["pooled"]["bitexact"] == 1.0
    assert r["pooled"]["onchip_vs_expert"]["n_epochs"] == 24
    assert r["per_night"]["onchip"]["kappa"]["nights"] == 2
    assert r["data_provenance"]["data"] == "simulated"
    lines = (out / rf.RESULTS).read_text().splitlines()
    assert lines[0].startswith("night,") and len(lines) == 1 + 24
    assert {line.split(",")[0] for line in lines[1:]} == {"SC4011E0", "SC4021E0"}
    md = (out / rf.REPORT_MD).read_text()
    assert "| SC4991E0 | failed |" in md and "Failed nights:" in md and "per night" in md
    assert (out / COHORT_PLOT).stat().st_size > 10_000

    # host_tools report COHORT re-renders the same report (and still says a night failed)
    (out / rf.REPORT_MD).unlink()
    assert main(["report", str(out)]) == EXIT_ERROR
    assert (out / rf.REPORT_MD).read_text() == md


def test_cohort_interrupted_then_resumed_redoes_no_finished_night(tmp_path, emulated_only):
    """Ctrl-C while the second night streams (delivered to the command's main thread, as a
    terminal's SIGINT is): every epoch so far is saved, the exit status says interrupted, and
    --resume finishes the cohort without streaming the finished night again."""
    data = tmp_path / "data"
    _nights(data, [30, 60])
    out = tmp_path / "cohort"
    first = out / NIGHTS / "SC4021E0"  # the longer night goes first
    second = out / NIGHTS / "SC4011E0" / rf.RESULTS

    def interrupt_mid_second_night() -> None:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            if (first / rf.REPORT_JSON).is_file() and second.is_file():
                if len(second.read_text().splitlines()) > 3:
                    _thread.interrupt_main()
                    return
            time.sleep(0.05)

    watcher = threading.Thread(target=interrupt_mid_second_night, daemon=True)
    watcher.start()
    argv = ["stream", str(data), "--boards", "1", "--out", str(out)]
    assert main(argv) == EXIT_INTERRUPTED
    watcher.join()
    kept = len(rf.read_results(second))
    assert 0 < kept < 30
    done_before = (first / rf.RESULTS).stat().st_mtime_ns

    assert main(["stream", str(data), "--out", str(out)]) == EXIT_ERROR  # a cohort: --resume
    assert main(["stream", str(data), "--out", str(out), "--resume"]) == 0
    assert (first / rf.RESULTS).stat().st_mtime_ns == done_before  # not redone
    rows = rf.read_results(second)
    assert len(rows) == 30 and rows.bitexact.all() and list(rows.epoch) == list(range(30))
    sessions = rf.read_meta(second.parent)["sessions"]
    assert len(sessions) == 2 and sessions[1]["first_epoch"] == kept
    r = json.loads((out / rf.REPORT_JSON).read_text())
    assert r["nights_done"] == 2 and r["pooled"]["epochs"] == 90
