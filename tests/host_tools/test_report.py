"""Reports rendered from a synthetic run folder (host_tools.report, rendering, exports, power):
every figure, the mismatch list, report.md, the hypnogram exports, the faults section of a
--faults stream, and ``host_tools report DIR``."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from host_tools import report as rep
from host_tools import runfolder as rf
from host_tools.cli import main
from host_tools.power import POWER_PROFILES
from host_tools.rendering import faults_text
from sleepdata.hypnogram import read_hypnogram
from sleepdata.stages import N1, N2, N3, REM, W

from ..conftest import REPO
from .fakes import epoch_row, write_rows


def _meta(sessions=None) -> dict:
    return {
        "format": 1,
        "plan": {},
        "recording": {
            "path": "/data/SC4001E0-PSG.edf",
            "hypnogram": "/data/SC4001EC-Hypnogram.edf",
            "name": "SC4001E0",
            "start": "1989-04-24T16:13:00",
            "kept_epochs": 900,
            "simulated": True,
            "note": "simulated recording (test)",
        },
        "noise": None,
        "model": {
            "folder": "models/ulw_sleepnet",
            "hash": "00120306a6cf14b8",
            "output_quantisation": {"scale": 0.2, "zero_point": 5},
        },
        "board": {
            "board": "emu-m4",
            "firmware_version": "0.2.0",
            "build_hash": 1234,
            "protocol_version": 2,
            "counter_kind": "instructions",
            "core_clock_hz": 200_000_000,
            "static_ram_bytes": 70000,
            "port": "emulated emu-m4",
        },
        "layer_counts": {"epoch": 0, "counts": [[1000, 100], [500, 0]], "names": ["a", "b"]},
        "sessions": sessions
        if sessions is not None
        else [
            {
                "status": "complete",
                "epochs": 12,
                "wall_s": 10.0,
                "setup_s": 2.0,
                "stream_s": 6.0,
                "stream_cpu_s": 0.6,
                "reference_cpu_s": 0.12,
                "stream_bytes": 300_000,
                "bytes_sent": 300_020,
                "retries": 0,
                "samples_sent": 36_000,
                "samples_acked": 36_000,
                "samples_scored": 36_000,
                "sample_check": "test",
            }
        ],
    }


def _synthetic_folder(tmp_path: Path) -> Path:
    stages = [W, W, N1, N2, N2, N3, N3, REM, REM, W, N2, N2]
    rows = [epoch_row(i, s, mismatch=(i == 4)) for i, s in enumerate(stages)]
    rows[3].onchip = N1  # a scoring disagreement with the expert (and with TFLM)
    tmp_path.mkdir(parents=True, exist_ok=True)
    write_rows(tmp_path / rf.RESULTS, rows)
    rf.write_meta(tmp_path, _meta())
    return tmp_path


def test_report_from_a_synthetic_run_lists_mismatches_and_every_figure(tmp_path):
    folder = _synthetic_folder(tmp_path)
    r = rep.render_folder(folder)
    assert r["epochs"] == 12
    assert r["bitexact_vs_tflm"] == pytest.approx(10 / 12)
    assert [m["epoch"] for m in r["mismatch_list"]] == [3, 4]
    m4 = r["mismatch_list"][1]
    assert m4["actual"] == [-20, -10, 50, -30, -40] and m4["expected"][0] == -19
    assert r["acc_vs_expert"] == pytest.approx(11 / 12)
    assert r["agreement_vs_float"] == pytest.approx(11 / 12)
    for key in (
        "kappa_vs_expert",
        "macro_f1_vs_expert",
        "onchip_vs_expert",
        "float_vs_expert",
        "count_per_epoch",
        "per_layer",
        "real_time_factor",
        "energy",
        "host_to_board_kBps",
        "bytes_sent",
        "retries",
        "model_hash",
        "firmware_version",
        "host_cpu_ms_per_epoch",
        "wall_s",
    ):
        assert key in r, key
    assert r["onchip_vs_expert"]["confusion"][N2][N1] == 1
    assert r["counter_kind"] == "instructions"
    total = [200_000 + i + 66_000_000 + 10 * i for i in range(12)]
    assert r["count_per_epoch_median"] == float(np.median(total))
    assert r["real_time_factor"] == pytest.approx(np.median(total) / 200e6 / 30)
    assert r["host_to_board_kBps"] == pytest.approx(50.0)
    assert r["host_cpu_ms_per_epoch"] == pytest.approx(50.0)
    assert r["no_sample_dropped"] is True
    assert r["per_layer"][0] == {"layer": "a", "count": 1000, "macs": 100, "per_mac": 10.0}
    assert r["energy"]["estimate"] is True
    assert json.loads((folder / rf.REPORT_JSON).read_text())["epochs"] == 12
    md = (folder / rf.REPORT_MD).read_text()
    assert "epoch 4: actual [-20, -10, 50, -30, -40] expected [-19, -10, 50, -30, -40]" in md
    assert "| a | 1,000 | 100 | 10.00 |" in md
    assert "simulated" in md and "estimate" in md
    assert (folder / rf.PLOT).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    tsv = (folder / rf.TSV).read_text().splitlines()
    assert tsv[0].split("\t")[:4] == ["onset_s", "duration_s", "expert", "predicted"]
    assert len(tsv) == 13 and tsv[4].split("\t")[2:4] == ["N2", "N1"]


def test_onchip_hypnogram_edf_reads_back_with_the_onchip_stages(tmp_path):
    folder = _synthetic_folder(tmp_path)
    rep.render_folder(folder)
    res = rf.read_results(folder / rf.RESULTS)
    hyp = read_hypnogram(folder / rf.EDF)
    assert hyp.start.isoformat() == "1989-04-24T16:13:00"
    onsets, labels = hyp.epochs()
    kept = labels >= 0
    assert onsets[kept].tolist() == res.onset_s.tolist()
    assert labels[kept].tolist() == res.onchip.tolist()
    assert (labels[~kept] == -1).all()  # before the first streamed epoch: "Sleep stage ?"


def test_an_interrupted_session_is_not_a_dropped_sample(tmp_path):
    sessions = _meta()["sessions"]
    interrupted = dict(
        sessions[0],
        status="interrupted",
        epochs=1,
        samples_sent=9000,
        samples_acked=6000,
        samples_scored=3000,
    )
    write_rows(tmp_path / rf.RESULTS, [epoch_row(i) for i in range(13)])
    rf.write_meta(tmp_path, _meta([interrupted, *sessions]))
    r = rep.render_folder(tmp_path)
    # cumulative over both sessions, the epochs in flight at the interruption named
    assert (r["samples_sent"], r["samples_acked"], r["samples_scored"]) == (
        45_000,
        42_000,
        39_000,
    )
    assert r["no_sample_dropped"] is True and r["samples_in_flight_at_interruptions"] == 6000
    assert "6,000 were in flight at interruptions" in (tmp_path / rf.REPORT_MD).read_text()
    bad = dict(sessions[0], samples_acked=35_875)
    rf.write_meta(tmp_path, _meta([interrupted, bad]))
    assert rep.render_folder(tmp_path)["no_sample_dropped"] is False
    # a row more in results.csv than the sessions scored: not a clean count either
    rf.write_meta(tmp_path, _meta(sessions))
    assert rep.render_folder(tmp_path)["no_sample_dropped"] is False


def test_a_killed_session_is_counted_from_results_csv(tmp_path, capsys):
    """A session killed without its end record (SIGKILL): its rows in results.csv count as
    sent, acknowledged and scored, and the report says so instead of "sent 0"."""
    interrupted = dict(
        _meta()["sessions"][0],
        status="interrupted",
        first_epoch=0,
        epochs=4,
        samples_sent=15_000,
        samples_acked=12_000,
        samples_scored=12_000,
    )
    killed = {"status": "running", "first_epoch": 5, "epochs": 0, "started": "x", "port": "p"}
    write_rows(tmp_path / rf.RESULTS, [epoch_row(i) for i in [0, 1, 2, 3, 5, 6, 7, 8, 9]])
    rf.write_meta(tmp_path, _meta([interrupted, killed]))
    assert main(["report", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    r = json.loads((tmp_path / rf.REPORT_JSON).read_text())
    assert r["epochs"] == 9 and r["sessions_without_record"] == 1
    assert r["samples_recovered_from_results"] == 5 * 3000
    assert (r["samples_sent"], r["samples_acked"], r["samples_scored"]) == (30_000, 27_000, 27_000)
    assert r["no_sample_dropped"] is True
    assert r["sessions"][1]["epochs"] == 5 and "without a record" in r["sessions"][1]["status"]
    assert rf.read_meta(tmp_path)["sessions"][1] == killed  # run.json itself is left alone
    assert "samples sent 30,000, acked 27,000, scored 27,000: none dropped" in out
    assert "a session ended without a record (killed): 5 epochs counted from results.csv" in out
    assert r["epochs_per_s"] == pytest.approx(4 / 6.0)  # the timed sessions only


def test_one_stage_throughout_reports_kappa_and_macro_f1_as_n_a(tmp_path, capsys):
    write_rows(tmp_path / rf.RESULTS, [epoch_row(i, N2) for i in range(12)])
    rf.write_meta(tmp_path, _meta())
    assert main(["report", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    r = json.loads((tmp_path / rf.REPORT_JSON).read_text())
    assert r["kappa_vs_expert"] is None and r["macro_f1_vs_expert"] is None
    assert r["acc_vs_expert"] == 1.0
    assert "ACC 1.000  macro-F1 n/a  kappa n/a (one stage throughout: undefined)" in out
    md = (tmp_path / rf.REPORT_MD).read_text()
    assert "| on-chip (int8) | 1.000 | n/a | n/a |" in md and "1.000 | 1.000 |" not in md


def test_report_command_renders_a_folder_and_errors_exit_2(tmp_path, capsys):
    folder = _synthetic_folder(tmp_path / "run")
    assert main(["report", str(folder)]) == 0
    out = capsys.readouterr().out
    assert "bit-exact vs TFLite Micro 0.8333 (2 mismatches)" in out
    assert f"report: {folder / rf.REPORT_MD}" in out
    (tmp_path / "empty").mkdir()
    assert main(["report", str(tmp_path / "empty")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "run.json does not exist" in err


def test_power_doc_states_the_figures_the_estimate_uses():
    text = (REPO / "docs" / "power.md").read_text()
    p = POWER_PROFILES["nucleo-l476rg"]
    for label, value in (
        ("run mode", p["run_ua_per_mhz"]),
        ("Stop 2 with RTC", p["sleep_ua"]),
        ("supply", p["supply_v"]),
        ("core clock", p["clock_hz"] / 1e6),
    ):
        row = next((ln for ln in text.splitlines() if ln.startswith(f"| {label}")), None)
        assert row is not None, label
        assert float(re.findall(r"\| ([\d.]+) ", row)[0]) == value, row


FAULTS = {
    "injected": {
        "corrupt": 120,
        "drop": 60,
        "duplicate": 0,
        "reorder": 0,
        "delay": 0,
        "cuts": 1,
        "reboots": 0,
    },
    "bytes_to_board": 12_000,
    "bytes_to_host": 3_000,
    "frames_resent": 1_090,
    "results_resent": 2,
    "resyncs": 3,
    "relinks": 1,
    "restarts": 0,
    "error_replies": {"BAD_CRC": 40},
}


def test_report_command_keeps_the_faults_section_of_a_faulty_link_run(tmp_path, capsys):
    folder = _synthetic_folder(tmp_path / "run")
    assert "faults" not in rep.render_folder(folder)  # a stream without --faults
    meta = rf.read_meta(folder)
    rf.write_meta(folder, {**meta, "faults": FAULTS})
    (folder / rf.REPORT_JSON).unlink()
    assert main(["report", str(folder)]) == 0
    r = json.loads((folder / rf.REPORT_JSON).read_text())
    assert r["faults"] == {**FAULTS, "epochs_scored": 12}
    assert r["epochs"] == 12 and r["bitexact_vs_tflm"] == pytest.approx(10 / 12)
    assert faults_text(r) == (
        "faults injected: 181 ({'corrupt': 120, 'drop': 60, 'duplicate': 0, 'reorder': 0, "
        "'delay': 0, 'cuts': 1, 'reboots': 0}); recovered with 1,090 frames resent, 3 resyncs, "
        "1 relinks, 0 board restarts; 12 epochs scored"
    )
