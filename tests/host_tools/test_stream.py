"""``host_tools stream`` against a stand-in board whose scores come from TFLite Micro
(tests/host_tools/fakes.py; the real and emulated boards: tests/hil/test_stream_onboard.py):
every output, resume, the epochs and noise streamed, adversarial epoch files, the faults section
of a fault-injecting link, and the command line's errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

from host_tools import runfolder as rf
from host_tools import stream as stream_module
from host_tools.cli import main
from host_tools.faults import FaultCounts
from host_tools.inputs import StreamError, read_adversarial_file, wire_epochs
from host_tools.reference import ModelFiles, References
from host_tools.rendering import summary_text
from host_tools.stream import StreamInterrupted, StreamOptions, stream
from sleepdata import adversarial as adversarial_file
from sleepdata.hypnogram import read_hypnogram
from sleepdata.noise import NoiseSpec, SignalStats
from sleepdata.normalise import Normaliser
from sleepdata.stages import N1, N2, N3, REM, W

from ..conftest import write_pair
from .fakes import SIGNAL_STATS, FakeBoard, perturbed_wire, write_adversarial_file


@pytest.fixture(scope="module")
def night(tmp_path_factory):
    stages = [W] * 3 + [N1] * 2 + [N2] * 3 + [N3] * 2 + [REM] * 2
    psg, _hyp = write_pair(tmp_path_factory.mktemp("night"), stages, name="SC4031E")
    return psg, stages


def test_stream_writes_every_output_and_resumes_without_duplicates(night, tmp_path):
    psg, stages = night
    model = ModelFiles.load()
    out = tmp_path / "run"
    seen = []

    def stop_after_5(row, done, total):
        seen.append((row.epoch, done, total))
        if done == 5:
            raise KeyboardInterrupt

    with pytest.raises(StreamInterrupted, match="holds 5 of 12 epochs"):
        stream(FakeBoard(model), psg, out, on_result=stop_after_5)
    assert seen == [(i, i + 1, 12) for i in range(5)]
    assert len(rf.read_results(out / rf.RESULTS)) == 5
    assert (out / rf.REPORT_JSON).is_file()  # what was done is reported
    with open(out / rf.RESULTS, "a") as f:
        f.write("5,150.00,N1,N")  # a torn row
    with pytest.raises(StreamError, match="--resume"):
        stream(FakeBoard(model), psg, out)
    with pytest.raises(StreamError, match="seed: run 0, now 3"):
        stream(FakeBoard(model), psg, out, StreamOptions(resume=True, seed=3))
    r = stream(FakeBoard(model), psg, out, StreamOptions(resume=True))
    res = rf.read_results(out / rf.RESULTS)
    assert res.epoch.tolist() == list(range(12))
    assert res.expert.tolist() == stages
    assert r["bitexact_vs_tflm"] == 1.0 and r["epochs"] == 12
    # cumulative over both sessions (the interrupted one had nothing in flight)
    assert r["no_sample_dropped"] and r["samples_sent"] == r["samples_scored"] == 12 * 3000
    assert r["samples_in_flight_at_interruptions"] == 0
    meta = json.loads((out / rf.RUN).read_text())
    assert [s["status"] for s in meta["sessions"]] == ["interrupted", "complete"]
    assert meta["layer_counts"]["epoch"] == 0 and meta["recording"]["simulated"] is True  # marked
    assert r["per_layer"][0]["per_mac"] == 10.0
    hyp = read_hypnogram(out / rf.EDF)
    assert [v for v in hyp.epochs()[1] if v >= 0] == res.onchip.tolist()
    assert stream(FakeBoard(model), psg, out, StreamOptions(resume=True)) == {}  # all done


def test_stream_lists_mismatching_epochs_by_recording_index(night, tmp_path):
    psg, _ = night
    model = ModelFiles.load()
    opts = StreamOptions(start=4, epochs=5, noise=NoiseSpec("gaussian", 0.1), seed=1)
    r = stream(FakeBoard(model, corrupt={1, 3}), psg, tmp_path, opts)
    assert r["epochs"] == 5 and r["first_epoch"] == 4
    assert [m["epoch"] for m in r["mismatch_list"]] == [5, 7]
    assert r["bitexact_vs_tflm"] == pytest.approx(0.6)
    m = r["mismatch_list"][0]
    assert m["actual"] != m["expected"] and m["actual"][1:] == m["expected"][1:]
    assert r["noise"]["spec"] == "gaussian:0.1"
    # the training split's statistics from config.json, else the recording's (documented)
    stored = SignalStats.from_config(model.config)
    want = stored.source if stored is not None else "this recording's"
    assert want in r["noise"]["stats"]["source"]


def test_realtime_sends_each_epoch_when_a_recorder_would_have_it(night, tmp_path, monkeypatch):
    psg, _ = night
    clock = [1000.0]

    def sleep(s):
        clock[0] += s

    monkeypatch.setattr(stream_module.time, "monotonic", lambda: clock[0])
    monkeypatch.setattr(stream_module.time, "sleep", sleep)
    board = FakeBoard(ModelFiles.load())
    r = stream(board, psg, tmp_path, StreamOptions(epochs=4, realtime=True))
    t0 = board.sent_at[0] - 30.0
    assert [t - t0 for t in board.sent_at] == [30.0, 60.0, 90.0, 120.0]
    assert r["epochs"] == 4 and r["sessions"][0]["realtime"] is True


def test_a_missing_recording_is_an_error_before_any_board_starts(tmp_path, capsys):
    assert main(["stream", str(tmp_path / "SC4001E0-PSG.edf"), "--port", "loop://"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "SC4001E0-PSG.edf: no such file" in err


def test_bad_options_are_usage_errors(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["stream", "night.edf", "--noise", "pink:1"])
    assert exc.value.code == 2
    assert "expected gaussian:C, gaussian-mean:C or shot:C" in capsys.readouterr().err


@pytest.fixture(scope="module")
def adversarial(night, tmp_path_factory):
    """(psg, file, indices, wire) of an adversarial file for the test night and the shipped
    model."""
    import hashlib

    from sleepdata.psg import load_recording, pair_for

    psg, _ = night
    model = ModelFiles.load()
    norm = Normaliser.from_dict(model.config["normalisation"])
    rec = load_recording(pair_for(psg))
    idx = np.array([1, 4, 5, 9])
    wire = perturbed_wire(rec.epochs, idx, norm)
    path = tmp_path_factory.mktemp("adv") / "pgd-eps6" / "SC4031E0.npz"
    sha = hashlib.sha256(model.tflite).hexdigest()
    write_adversarial_file(path, rec.name, idx, wire, rec.labels[idx], sha)
    return psg, path, idx, wire, rec


def test_stream_adversarial_sends_the_files_wire_samples_and_resumes(adversarial, tmp_path):
    psg, path, idx, wire, rec = adversarial
    model = ModelFiles.load()
    norm = Normaliser.from_dict(model.config["normalisation"])
    refs = References(model)
    opts = StreamOptions(adversarial=path)

    def stop_after_2(row, done, total):
        if done == 2:
            raise KeyboardInterrupt

    with pytest.raises(StreamInterrupted, match="holds 2 of 4 epochs"):
        stream(FakeBoard(model), psg, tmp_path, opts, on_result=stop_after_2)
    r = stream(FakeBoard(model), psg, tmp_path, StreamOptions(adversarial=path, resume=True))
    res = rf.read_results(tmp_path / rf.RESULTS)
    assert res.epoch.tolist() == idx.tolist()
    assert res.expert.tolist() == rec.labels[idx].tolist()
    assert res.onset_s.tolist() == rec.onsets_s[idx].tolist()
    want = np.stack([refs.tflm(x) for x in norm.to_int8(wire)])
    assert np.array_equal(res.tflm_scores, want) and np.array_equal(res.onchip_scores, want)
    clean = np.stack([refs.tflm(x) for x in norm.to_int8(norm.to_wire(rec.epochs[idx]))])
    assert not np.array_equal(want, clean)  # the file's samples, not the recording's
    assert r["epochs"] == 4 and r["bitexact_vs_tflm"] == 1.0
    assert r["adversarial"]["attack"] == "pgd" and r["adversarial"]["eps_uv"] == 6.0
    assert r["adversarial"]["file"] == str(path.resolve())
    meta = json.loads((tmp_path / rf.RUN).read_text())
    assert meta["plan"]["adversarial"]["sha256"] == r["adversarial"]["sha256"]
    assert "adversarial pgd eps 6" in summary_text(r, tmp_path)
    md = (tmp_path / rf.REPORT_MD).read_text()
    assert "Adversarial epochs: pgd eps 6 uV" in md and "1..9, 4 of them" in md
    # a subset of the file's epochs, and one it does not hold
    sub = stream(
        FakeBoard(model), psg, tmp_path / "sub", StreamOptions(adversarial=path, indices=(4, 9))
    )
    assert rf.read_results(tmp_path / "sub" / rf.RESULTS).epoch.tolist() == [4, 9]
    assert sub["epochs"] == 2
    with pytest.raises(StreamError, match="holds no epoch 3"):
        stream(
            FakeBoard(model), psg, tmp_path / "x", StreamOptions(adversarial=path, indices=(3, 4))
        )


def test_adversarial_files_of_another_record_or_model_are_refused(adversarial, tmp_path, capsys):
    psg, path, idx, wire, rec = adversarial
    model = ModelFiles.load()
    sha = json.loads(str(np.load(path)["meta"]))["int8_model_sha256"]
    other_rec = write_adversarial_file(
        tmp_path / "a.npz", "SC4001E0", idx, wire, rec.labels[idx], sha
    )
    other_model = write_adversarial_file(
        tmp_path / "b.npz", rec.name, idx, wire, rec.labels[idx], "ab" * 32
    )
    relabelled = write_adversarial_file(
        tmp_path / "c.npz", rec.name, idx, wire, (rec.labels[idx] + 1) % 5, sha
    )
    cases = (
        (other_rec, "adversarial epochs of record SC4001E0, not of SC4031E0"),
        (other_model, "made for the int8 model with SHA-256 abababababababab..., but"),
        (relabelled, "the expert stage of epoch 1 is"),
    )
    for bad, match in cases:
        with pytest.raises(StreamError, match=match) as err:
            stream(FakeBoard(model), psg, tmp_path / "run", StreamOptions(adversarial=bad))
        assert str(bad) in str(err.value) and "\n" not in str(err.value)
    assert not (tmp_path / "run" / rf.RESULTS).exists()
    with pytest.raises(StreamError, match="exclude each other"):
        opts = StreamOptions(adversarial=path, noise=NoiseSpec("gaussian", 0.1))
        stream(FakeBoard(model), psg, tmp_path / "run", opts)
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(adversarial_file.AdversarialFileError, match=r"junk\.npz: cannot be read"):
        read_adversarial_file(tmp_path / "junk.npz")
    # the command line: one line, before any board is opened (loop:// would answer nothing)
    for bad, match in cases[:2]:
        assert main(["stream", str(psg), "--adversarial", str(bad), "--port", "loop://"]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"error: {bad}: ") and match in err and err.count("\n") == 1
    with pytest.raises(SystemExit):
        main(["stream", str(psg), "--adversarial", str(path), "--noise", "gaussian:0.1"])
    assert "not allowed with argument" in capsys.readouterr().err


def test_noise_statistics_can_be_given(night, tmp_path):
    from sleepdata.psg import load_recording, pair_for

    psg, _ = night
    model = ModelFiles.load()
    norm = Normaliser.from_dict(model.config["normalisation"])
    spec = NoiseSpec("shot", 1000.0)
    opts = StreamOptions(indices=(2, 6, 7), noise=spec, seed=5, stats=SIGNAL_STATS)
    r = stream(FakeBoard(model), psg, tmp_path, opts)
    assert r["noise"]["stats"] == SIGNAL_STATS.to_dict()
    rec = load_recording(pair_for(psg))
    wire = wire_epochs(
        rec.epochs, np.array([2, 6, 7]), norm, noise=spec, stats=SIGNAL_STATS, seed=5
    )
    refs = References(model)
    res = rf.read_results(tmp_path / rf.RESULTS)
    assert np.array_equal(res.tflm_scores, [refs.tflm(x) for x in norm.to_int8(wire)])
    assert res.epoch.tolist() == [2, 6, 7]


def test_a_faulty_link_stream_keeps_its_faults_section_through_report(night, tmp_path, capsys):
    psg, _ = night
    board = FakeBoard(ModelFiles.load())
    board.faults = FaultCounts(corrupt=30, drop=12, cuts=1, bytes_to_board=5000)
    board.counters.frames_resent, board.counters.resyncs = 25, 2
    board.counters.errors_seen["BAD_CRC"] = 7

    def stop_after_3(row, done, total):
        if done == 3:
            raise KeyboardInterrupt

    with pytest.raises(StreamInterrupted):
        stream(board, psg, tmp_path, StreamOptions(epochs=5), on_result=stop_after_3)
    r = json.loads((tmp_path / rf.REPORT_JSON).read_text())
    want = {
        "injected": {
            "corrupt": 30,
            "drop": 12,
            "duplicate": 0,
            "reorder": 0,
            "delay": 0,
            "cuts": 1,
            "reboots": 0,
        },
        "bytes_to_board": 5000,
        "bytes_to_host": 0,
        "frames_resent": 25,
        "results_resent": 0,
        "resyncs": 2,
        "relinks": 0,
        "restarts": 0,
        "error_replies": {"BAD_CRC": 7},
    }
    assert r["faults"] == {**want, "epochs_scored": 3}
    (tmp_path / rf.REPORT_JSON).unlink()
    assert main(["report", str(tmp_path)]) == 0  # re-rendered from run.json, faults included
    assert json.loads((tmp_path / rf.REPORT_JSON).read_text())["faults"] == r["faults"]
    # continued over a link without faults: the report describes the last session's link
    r = stream(FakeBoard(ModelFiles.load()), psg, tmp_path, StreamOptions(epochs=5, resume=True))
    assert "faults" not in r and r["epochs"] == 5
