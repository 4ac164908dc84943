"""Hardware-in-the-loop: ``host_tools stream`` on a simulated night, end to end, on a board
(emulated in QEMU by default, a real one with --port URL)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from host_tools import runfolder as rf
from host_tools.reference import ENGINE_LAYERS, ModelFiles, References
from host_tools.stream import StreamInterrupted, StreamOptions, stream
from sleepdata.hypnogram import read_hypnogram
from sleepdata.psg import load_recording, pair_for
from sleepdata.simulator import simulate_from_hypnogram, simulate_generated

from ..conftest import REPO, SHARED
from .conftest import start_board_command

pytestmark = pytest.mark.hil
EPOCHS = 30  # short: the emulated board takes a few tenths of a second per epoch


@pytest.fixture(scope="module")
def night(tmp_path_factory):
    """A simulated night (from the real SC4001EC hypnogram when ../shared/sleep-edf is there,
    else a generated one) and the first window of EPOCHS kept epochs with the most stages."""
    folder = tmp_path_factory.mktemp("night")
    real = SHARED / "hypnograms" / "SC4001EC-Hypnogram.edf"
    if real.is_file():
        psg, hyp = simulate_from_hypnogram(real, folder, seed=0)
    else:
        ((psg, hyp),) = simulate_generated(folder, 1, seed=0)
    labels = load_recording(pair_for(psg, hyp)).labels
    n_stages = [len(set(labels[s : s + EPOCHS].tolist())) for s in range(len(labels) - EPOCHS)]
    start = int(np.argmax(n_stages))
    assert n_stages[start] >= 3
    return psg, hyp, start, labels


def test_stream_a_night_end_to_end(board, night, tmp_path):
    psg, _hyp, start, labels = night
    out = tmp_path / "run"
    r = stream(board, psg, out, StreamOptions(start=start, epochs=EPOCHS), port_label="test")

    assert r["bitexact_vs_tflm"] == 1.0, r["mismatch_list"][:5]
    assert r["epochs"] == EPOCHS and r["first_epoch"] == start
    assert r["recording"]["simulated"] is True and r["recording"]["path"] == str(psg.resolve())
    assert r["no_sample_dropped"] and r["samples_sent"] == EPOCHS * 3000
    assert r["samples_scored"] == EPOCHS * 3000
    assert r["counter_kind"] in ("instructions", "cycles")
    if r["board"].startswith("emu-"):
        assert r["counter_kind"] == "instructions"
    layers = json.loads((ModelFiles.load().folder / ENGINE_LAYERS).read_text())["layers"]
    assert [row["layer"] for row in r["per_layer"]] == [layer["name"] for layer in layers]
    assert [row["macs"] for row in r["per_layer"]] == [layer["macs"] for layer in layers]
    assert r["macs_per_epoch"] == 2_651_288  # composed shortcut streams
    assert r["model_macs_per_epoch"] == 3_498_352  # the trained network's
    assert r["inference_per_model_mac"] < r["inference_per_mac"]
    assert r["count_per_epoch"]["inference"]["min"] > 1_000_000
    for key in (
        "agreement_vs_float",
        "acc_vs_expert",
        "kappa_vs_expert",
        "macro_f1_vs_expert",
        "count_per_epoch_median",
        "real_time_factor",
        "energy",
        "host_to_board_kBps",
        "bytes_sent",
        "retries",
        "board",
        "model_hash",
        "firmware_version",
        "host_cpu_ms_per_epoch",
        "wall_s",
        "epochs_per_s",
    ):
        assert r[key] is not None, key
    assert r["agreement_vs_float"] > 0.8

    res = rf.read_results(out / rf.RESULTS)
    assert len((out / rf.RESULTS).read_text().splitlines()) == EPOCHS + 1
    assert res.epoch.tolist() == list(range(start, start + EPOCHS))
    assert res.expert.tolist() == labels[start : start + EPOCHS].tolist()
    assert res.bitexact.all()
    assert json.loads((out / rf.REPORT_JSON).read_text())["epochs"] == EPOCHS
    assert "Bit-exact vs TFLite Micro: **1.0000**" in (out / rf.REPORT_MD).read_text()
    assert (out / rf.PLOT).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    onsets, stages = read_hypnogram(out / rf.EDF).epochs()
    assert stages[stages >= 0].tolist() == res.onchip.tolist()
    assert onsets[stages >= 0].tolist() == res.onset_s.tolist()
    assert len((out / rf.TSV).read_text().splitlines()) == EPOCHS + 1


def test_resume_after_an_interruption_continues_without_duplicates(board, night, tmp_path):
    psg, _hyp, start, _labels = night
    opts = StreamOptions(start=start, epochs=10)

    def interrupt_after_4(row, done, total):
        if done == 4:
            raise KeyboardInterrupt

    with pytest.raises(StreamInterrupted):
        stream(board, psg, tmp_path, opts, on_result=interrupt_after_4)
    assert len(rf.read_results(tmp_path / rf.RESULTS)) == 4
    with open(tmp_path / rf.RESULTS, "a") as f:
        f.write(f"{start + 4},1234.00,W,")  # a row torn by a crash
    r = stream(board, psg, tmp_path, StreamOptions(start=start, epochs=10, resume=True))
    res = rf.read_results(tmp_path / rf.RESULTS)
    assert res.epoch.tolist() == list(range(start, start + 10))
    assert r["bitexact_vs_tflm"] == 1.0 and r["epochs"] == 10
    assert [s["status"] for s in r["sessions"]] == ["interrupted", "complete"]
    assert r["sessions"][1]["epochs"] == 6 and r["no_sample_dropped"]


def test_cli_stream_on_an_emulated_board_then_report(request, night, tmp_path):
    if request.config.getoption("--port"):
        pytest.skip("starts its own emulated board")
    psg, _hyp, start, _labels = night
    out = tmp_path / "cli"
    run = [sys.executable, "-m", "host_tools"]
    done = subprocess.run(
        [*run, "stream", str(psg), "--start", str(start), "--epochs", "3", "--out", str(out)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "bit-exact vs TFLite Micro 1.0000" in done.stdout
    assert f"report: {out / rf.REPORT_MD}" in done.stdout
    # the cycle estimate of a sample of the run's epochs, of the very code and input it counted
    ce = json.loads((out / rf.REPORT_JSON).read_text())["cycles_estimate"]
    assert (
        ce["made"]
        and ce["instructions_equal_run_counts"]
        and ce["epochs"]
        == [
            start,
            start + 1,
            start + 2,
        ]
    )
    assert "estimated cycles per inference (not measured; 3 epochs" in done.stdout
    (out / rf.REPORT_MD).unlink()
    again = subprocess.run(
        [*run, "report", str(out)], capture_output=True, text=True, cwd=REPO, timeout=120
    )
    assert again.returncode == 0 and (out / rf.REPORT_MD).is_file()
    bad = subprocess.run(
        [*run, "stream", str(psg), "--out", str(out)],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert bad.returncode == 2 and bad.stderr.startswith("error: ") and "--resume" in bad.stderr


def _qemu_serving(port: int) -> bool:
    """Whether a QEMU process serves its UART on this TCP port (read from /proc)."""
    want = f"tcp:127.0.0.1:{port},".encode()
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if want in cmdline.read_bytes():
                return True
        except OSError:
            continue
    return False


def test_board_command_serves_an_emulated_board_until_ctrl_c(request):
    if request.config.getoption("--port"):
        pytest.skip("starts its own emulated board")
    proc, line = start_board_command()
    try:
        url = line.split()[-1]
        info = subprocess.run(
            [sys.executable, "-m", "host_tools", "info", "--port", url],
            capture_output=True,
            text=True,
            cwd=REPO,
            timeout=60,
        )
        assert info.returncode == 0, info.stderr
        shown = dict(line.split(None, 1) for line in info.stdout.splitlines())
        assert shown["board"] == "emu-m4"
        # the reports' formats: build hash in hex, the counter kind by name
        assert shown["build_hash"].startswith("0x") and len(shown["build_hash"]) == 10
        assert shown["counter_kind"] == "instructions"
        assert shown["stack_peak_bytes"].endswith(" since reset")
        port = int(url.rsplit(":", 1)[1])
        assert _qemu_serving(port)
        os.kill(proc.pid, signal.SIGINT)
        assert proc.wait(timeout=20) == 0
        assert not _qemu_serving(port)  # the emulator was stopped with the command
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_stream_adversarial_epochs_on_the_board(board, night, tmp_path):
    """The board scores the file's wire samples exactly as TFLite Micro does."""
    import hashlib

    from sleepdata.normalise import Normaliser

    from ..host_tools.fakes import perturbed_wire, write_adversarial_file

    psg, hyp, start, labels = night
    model = ModelFiles.load()
    norm = Normaliser.from_dict(model.config["normalisation"])
    rec = load_recording(pair_for(psg, hyp))
    idx = np.array([start, start + 3, start + 4, start + 11, start + 20])
    wire = perturbed_wire(rec.epochs, idx, norm, seed=1)
    sha = hashlib.sha256(model.tflite).hexdigest()
    path = write_adversarial_file(tmp_path / "adv.npz", rec.name, idx, wire, labels[idx], sha)
    r = stream(board, psg, tmp_path / "run", StreamOptions(adversarial=path), port_label="test")
    res = rf.read_results(tmp_path / "run" / rf.RESULTS)
    assert res.epoch.tolist() == idx.tolist() and res.expert.tolist() == labels[idx].tolist()
    refs = References(model)
    want = np.stack([refs.tflm(x) for x in norm.to_int8(wire)])
    assert np.array_equal(res.onchip_scores, want), (res.onchip_scores, want)
    assert r["bitexact_vs_tflm"] == 1.0 and r["adversarial"]["sha256"]
