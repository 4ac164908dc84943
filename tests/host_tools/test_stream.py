"""host_tools stream, host-only: noise generators, the results.csv resume logic, report
rendering, the EDF+ output, board checks, and the whole operation against a stand-in board
whose scores come from TFLite Micro (the real and emulated boards:
tests/hil/test_stream_onboard.py)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from host_tools import report as rep
from host_tools import stream as stream_module
from host_tools.cli import main
from host_tools.protocol import CounterKind, Info, Result
from host_tools.reference import ModelFiles, References
from host_tools.stream import (
    BoardMismatchError,
    StreamError,
    StreamInterrupted,
    StreamOptions,
    check_board,
    plan_epochs,
    stream,
    wire_epochs,
)
from sleepdata import adversarial as adversarial_file
from sleepdata.hypnogram import read_hypnogram
from sleepdata.noise import (
    SHOT_LEVELS,
    NoiseSpec,
    SignalStats,
    add_noise,
    epoch_rng,
    shot_noise,
)
from sleepdata.normalise import Normaliser
from sleepdata.stages import N1, N2, N3, REM, W

from ..conftest import REPO, write_pair

STATS = SignalStats(
    mean_uv=np.array([0.5, -1.0, 2.0, 1.5]),
    std_uv=np.array([20.0, 15.0, 30.0, 0.4]),
    min_uv=np.array([-200.0, -180.0, -400.0, 0.0]),
    max_uv=np.array([200.0, 190.0, 400.0, 5.0]),
    source="test",
)


# ------------------------------------------------------------------------------------------
# Noise


def test_shot_noise_is_poisson_in_the_scaled_range_and_clipped_to_it():
    lo, hi = STATS.min_uv.reshape(-1, 1), STATS.max_uv.reshape(-1, 1)
    xn = 0.3
    x = np.broadcast_to(lo + xn * (hi - lo), (4, 200_000)).copy()
    for c in SHOT_LEVELS.values():
        y = shot_noise(x, c, STATS, np.random.default_rng(2))
        yn = (y - lo) / (hi - lo)
        n = yn.shape[1]
        want_sd = np.sqrt(xn / c)
        assert np.all(np.abs(yn.mean(axis=1) - xn) < 5 * want_sd / np.sqrt(n))
        assert np.allclose(yn.std(axis=1), want_sd, rtol=0.02)
        # the values are counts / c
        assert np.allclose(yn * c, np.rint(yn * c))
    outside = np.array([[-1e4, 1e4]] * 4)
    y = shot_noise(outside, 1000.0, STATS, np.random.default_rng(3))
    assert np.allclose(y[:, 0], STATS.min_uv) and np.allclose(y[:, 1], STATS.max_uv)


def test_noise_specs_parse_numbers_and_rest_levels():
    assert NoiseSpec.parse("gaussian:0.2") == NoiseSpec("gaussian", 0.2)
    assert NoiseSpec.parse("gaussian-mean:high") == NoiseSpec("gaussian-mean", 0.3)
    assert NoiseSpec.parse("shot:high") == NoiseSpec("shot", 1000.0)
    assert NoiseSpec.parse("Gaussian:low").level == 0.1
    assert str(NoiseSpec.parse("shot:2500")) == "shot:2500"
    for bad in ("pink:1", "gaussian", "gaussian:-1", "shot:abc", "gaussian:nan"):
        with pytest.raises(ValueError, match="noise"):
            NoiseSpec.parse(bad)


def test_noise_of_an_epoch_depends_on_the_seed_and_its_index_only():
    rng = np.random.default_rng(0)
    epochs = rng.normal(0, 20, (6, 4, 3000)).astype(np.float32)
    epochs[:, 3] = np.abs(epochs[:, 3]) / 10
    norm = Normaliser.from_dict(ModelFiles.load().config["normalisation"])
    spec = NoiseSpec("gaussian", 0.3)
    all_ = wire_epochs(epochs, np.arange(6), norm, noise=spec, stats=STATS, seed=7)
    tail = wire_epochs(epochs, np.arange(3, 6), norm, noise=spec, stats=STATS, seed=7)
    assert np.array_equal(all_[3:], tail)
    other = wire_epochs(epochs, np.arange(3, 6), norm, noise=spec, stats=STATS, seed=8)
    assert not np.array_equal(tail, other)
    clean = wire_epochs(epochs, np.arange(6), norm)
    assert np.array_equal(clean, norm.to_wire(epochs))
    manual = add_noise(epochs[4], spec, STATS, epoch_rng(7, 4))
    assert np.array_equal(all_[4], norm.to_wire(manual))


def test_signal_stats_fit_per_night_lists_and_round_trip():
    rng = np.random.default_rng(0)
    nights = [rng.normal(size=(3, 4, 100)), rng.normal(size=(5, 4, 100)) * 3]
    a = SignalStats.fit(nights, source="two nights")
    b = SignalStats.fit(np.concatenate(nights), source="concatenated")
    for k in ("mean_uv", "std_uv", "min_uv", "max_uv"):
        assert np.allclose(getattr(a, k), getattr(b, k))
    back = SignalStats.from_config({"signal_stats": a.to_dict()})
    assert np.allclose(back.std_uv, a.std_uv) and back.source == "two nights"
    assert SignalStats.from_config({"model": {}}) is None


# ------------------------------------------------------------------------------------------
# results.csv


def _row(epoch: int, stage: int = N2, *, mismatch: bool = False) -> rep.EpochRow:
    scores = [-20, -10, -5, -30, -40]
    scores[stage] = 50
    tflm = list(scores)
    if mismatch:
        tflm[0] += 1
    probs = np.full(5, 0.05)
    probs[stage] = 0.8
    return rep.EpochRow(
        epoch=epoch,
        onset_s=30.0 * (epoch + 100),
        expert=stage,
        onchip=stage,
        onchip_scores=tuple(scores),
        tflm_scores=tuple(tflm),
        float_probs=tuple(probs),
        preprocess_count=200_000 + epoch,
        inference_count=66_000_000 + 10 * epoch,
    )


def _write(path: Path, rows) -> None:
    with rep.ResultsWriter(path) as w:
        for r in rows:
            w.write(r)


def test_results_round_trip_and_a_torn_last_line_is_dropped(tmp_path):
    path = tmp_path / rep.RESULTS
    _write(path, [_row(i) for i in range(5)])
    good = path.read_bytes()
    full_line = _row(5).line()
    with open(path, "a") as f:
        f.write(full_line[:17])  # a crash in the middle of a row
    res = rep.read_results(path)
    assert res.epoch.tolist() == [0, 1, 2, 3, 4]
    assert res.bitexact.all() and res.onchip_scores[0].tolist() == list(_row(0).onchip_scores)
    assert path.read_bytes() != good  # read-only unless asked to repair
    rep.read_results(path, repair=True)
    assert path.read_bytes() == good
    _write(path, [_row(i) for i in range(5, 8)])  # appending continues cleanly
    assert rep.read_results(path).epoch.tolist() == list(range(8))


def test_results_with_duplicates_or_damage_are_refused(tmp_path):
    path = tmp_path / rep.RESULTS
    _write(path, [_row(0), _row(1), _row(1)])
    with pytest.raises(rep.RunFolderError, match="line 4 has epoch 1 after epoch 1"):
        rep.read_results(path)
    path.write_text(path.read_text().replace(_row(0).line(), "0,1,2\n"))
    with pytest.raises(rep.RunFolderError, match="line 2 has 3 fields"):
        rep.read_results(path)
    path.write_text("a,b\n")
    with pytest.raises(rep.RunFolderError, match="header"):
        rep.read_results(path)
    path.write_text("")
    assert len(rep.read_results(path)) == 0


# ------------------------------------------------------------------------------------------
# Report rendering from a synthetic run


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
    rows = [_row(i, s, mismatch=(i == 4)) for i, s in enumerate(stages)]
    rows[3].onchip = N1  # a scoring disagreement with the expert (and with TFLM)
    tmp_path.mkdir(parents=True, exist_ok=True)
    _write(tmp_path / rep.RESULTS, rows)
    rep.write_meta(tmp_path, _meta())
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
    assert json.loads((folder / rep.REPORT_JSON).read_text())["epochs"] == 12
    md = (folder / rep.REPORT_MD).read_text()
    assert "epoch 4: actual [-20, -10, 50, -30, -40] expected [-19, -10, 50, -30, -40]" in md
    assert "| a | 1,000 | 100 | 10.00 |" in md
    assert "simulated" in md and "estimate" in md
    assert (folder / rep.PLOT).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    tsv = (folder / rep.TSV).read_text().splitlines()
    assert tsv[0].split("\t")[:4] == ["onset_s", "duration_s", "expert", "predicted"]
    assert len(tsv) == 13 and tsv[4].split("\t")[2:4] == ["N2", "N1"]


def test_onchip_hypnogram_edf_reads_back_with_the_onchip_stages(tmp_path):
    folder = _synthetic_folder(tmp_path)
    rep.render_folder(folder)
    res = rep.read_results(folder / rep.RESULTS)
    hyp = read_hypnogram(folder / rep.EDF)
    assert hyp.start.isoformat() == "1989-04-24T16:13:00"
    onsets, labels = hyp.epochs()
    kept = labels >= 0
    assert onsets[kept].tolist() == res.onset_s.tolist()
    assert labels[kept].tolist() == res.onchip.tolist()
    assert (labels[~kept] == -1).all()  # before the first streamed epoch: "Sleep stage ?"


def test_an_interrupted_session_is_not_a_dropped_sample(tmp_path):
    sessions = _meta()["sessions"]
    interrupted = dict(sessions[0], status="interrupted", samples_sent=9000, samples_scored=3000)
    _write(tmp_path / rep.RESULTS, [_row(i) for i in range(12)])
    rep.write_meta(tmp_path, _meta([interrupted, *sessions]))
    r = rep.render_folder(tmp_path)
    assert r["no_sample_dropped"] is True and r["samples_in_flight_at_interruptions"] == 6000
    bad = dict(sessions[0], samples_acked=35_875)
    rep.write_meta(tmp_path, _meta([bad]))
    assert rep.render_folder(tmp_path)["no_sample_dropped"] is False


def test_report_command_renders_a_folder_and_errors_exit_2(tmp_path, capsys):
    folder = _synthetic_folder(tmp_path / "run")
    assert main(["report", str(folder)]) == 0
    out = capsys.readouterr().out
    assert "bit-exact vs TFLite Micro 0.8333 (2 mismatches)" in out
    assert f"report: {folder / rep.REPORT_MD}" in out
    (tmp_path / "empty").mkdir()
    assert main(["report", str(tmp_path / "empty")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "run.json does not exist" in err


def test_power_doc_states_the_figures_the_estimate_uses():
    text = (REPO / "docs" / "power.md").read_text()
    p = rep.POWER_PROFILES["nucleo-l476rg"]
    for label, value in (
        ("run mode", p["run_ua_per_mhz"]),
        ("Stop 2 with RTC", p["sleep_ua"]),
        ("supply", p["supply_v"]),
        ("core clock", p["clock_hz"] / 1e6),
    ):
        row = next((ln for ln in text.splitlines() if ln.startswith(f"| {label}")), None)
        assert row is not None, label
        assert float(re.findall(r"\| ([\d.]+) ", row)[0]) == value, row


# ------------------------------------------------------------------------------------------
# Board checks and options


def _info(model: ModelFiles, **changes) -> Info:
    norm = Normaliser.from_dict(model.config["normalisation"])
    fields = {
        "firmware_version": "0.2.0",
        "build_hash": 1,
        "protocol_version": 2,
        "model_hash": model.model_hash,
        "channels": 4,
        "sample_rate_hz": 100,
        "epoch_samples": 3000,
        "norm": [(int(c.remove_dc), c.shift, c.offset, c.multiplier) for c in norm.channels],
        "static_ram_bytes": 1,
        "counter_kind": CounterKind.INSTRUCTIONS,
        "core_clock_hz": 200_000_000,
        "board": "fake",
    }
    return Info(**{**fields, **changes})


def test_board_checks_name_the_difference_and_the_fix():
    model = ModelFiles.load()
    norm = Normaliser.from_dict(model.config["normalisation"])
    check_board(_info(model), model, norm)
    with pytest.raises(BoardMismatchError) as err:
        check_board(_info(model, model_hash=bytes.fromhex("3b3b000000000000")), model, norm)
    msg = str(err.value)
    assert "board runs model 3b3b000000000000" in msg and model.model_hash.hex() in msg
    assert "make firmware-model" in msg
    with pytest.raises(BoardMismatchError, match="100 Hz"):
        check_board(_info(model, sample_rate_hz=128), model, norm)
    bad = _info(model)
    bad.norm[3] = (0, 19, 2400, 26634)
    with pytest.raises(BoardMismatchError, match="EMG submental"):
        check_board(bad, model, norm)


def test_plan_epochs():
    assert plan_epochs(100, 0, None) == range(100)
    assert plan_epochs(100, 90, 40) == range(90, 100)
    with pytest.raises(StreamError, match="outside the recording's 100 kept epochs"):
        plan_epochs(100, 100, None)
    with pytest.raises(StreamError, match="at least one"):
        plan_epochs(100, 0, 0)


# ------------------------------------------------------------------------------------------
# The operation against a stand-in board


class FakeBoard:
    """Device's public streaming API; scores from TFLite Micro on the board's own integer
    preprocessing of the samples it receives, so every epoch is bit-exact unless ``corrupt``
    names stream epochs to alter."""

    def __init__(self, model: ModelFiles, corrupt=()):
        self.model = model
        self.norm = Normaliser.from_dict(model.config["normalisation"])
        self.refs = References(model)
        self.corrupt = set(corrupt)
        self.bytes_sent = 0
        self.layer_counts = None
        self.samples_acked = 0
        self.profile = False
        self.next_epoch = 0
        self.sent_at = []

    def hello(self) -> Info:
        return _info(self.model)

    def reset_stream(self) -> None:
        self.next_epoch = 0

    def set_profile(self, enabled: bool) -> None:
        self.profile = enabled

    def stream_epochs(self, first_epoch, epochs):
        for k, samples in enumerate(epochs, first_epoch):
            self.sent_at.append(stream_module.time.monotonic())
            assert k == self.next_epoch and samples.shape == (3000, 4)
            self.bytes_sent += 24 * 1010
            self.samples_acked = (k + 1) * 3000
            self.next_epoch += 1
            x = self.norm.to_int8(np.ascontiguousarray(samples.T)[None])[0]
            scores = self.refs.tflm(x).astype(int)
            if k in self.corrupt:
                scores[0] = min(scores[0] + 1, 127)
            if self.profile:
                self.layer_counts = [(1000, 100), (2000, 0)]
            yield Result(k, int(np.argmax(scores)), tuple(scores), 200_000, 66_000_000, 0)


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
    assert len(rep.read_results(out / rep.RESULTS)) == 5
    assert (out / rep.REPORT_JSON).is_file()  # what was done is reported
    with open(out / rep.RESULTS, "a") as f:
        f.write("5,150.00,N1,N")  # a torn row
    with pytest.raises(StreamError, match="--resume"):
        stream(FakeBoard(model), psg, out)
    with pytest.raises(StreamError, match="seed: run 0, now 3"):
        stream(FakeBoard(model), psg, out, StreamOptions(resume=True, seed=3))
    r = stream(FakeBoard(model), psg, out, StreamOptions(resume=True))
    res = rep.read_results(out / rep.RESULTS)
    assert res.epoch.tolist() == list(range(12))
    assert res.expert.tolist() == stages
    assert r["bitexact_vs_tflm"] == 1.0 and r["epochs"] == 12
    assert r["no_sample_dropped"] and r["samples_sent"] == 7 * 3000
    meta = json.loads((out / rep.RUN).read_text())
    assert [s["status"] for s in meta["sessions"]] == ["interrupted", "complete"]
    assert meta["layer_counts"]["epoch"] == 0 and meta["recording"]["simulated"] is False
    assert r["per_layer"][0]["per_mac"] == 10.0
    hyp = read_hypnogram(out / rep.EDF)
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


# ------------------------------------------------------------------------------------------
# Streaming a list of epochs and adversarial epoch files


def test_plan_epochs_takes_a_sorted_list_of_kept_epochs():
    assert plan_epochs(100, 0, None, [3, 7, 50]).tolist() == [3, 7, 50]
    assert plan_epochs(100, 0, 2, np.array([3, 7, 50])).tolist() == [3, 7]
    for bad, match in (
        ([7, 3], "strictly increasing"),
        ([3, 3], "strictly increasing"),
        ([], "non-empty"),
        ([5, 100], "epoch 100 is outside the recording's 100 kept epochs"),
        ([-1, 5], "epoch -1 is outside"),
    ):
        with pytest.raises(StreamError, match=match):
            plan_epochs(100, 0, None, bad)
    with pytest.raises(StreamError, match="--start 4 cannot be combined"):
        plan_epochs(100, 4, None, [5, 6])


def write_adversarial_file(path: Path, record: str, idx, wire, labels, sha256: str | None):
    """An adversarial epoch file for ``record`` (a made-up PGD attack)."""
    meta = {
        "record": record,
        "attack": "pgd",
        "eps_uv": 6.0,
        "eps_uv_per_channel": [6.0, 5.0, 7.0, 0.2],
        "iterations": 10,
        "step_uv": 1.5,
        "seed": 0,
        "crafted_on": "float model (test)",
        "int8_model_sha256": sha256,
    }
    return adversarial_file.write(path, wire=wire, index=idx, labels=labels, meta=meta)


def perturbed_wire(epochs_uv, idx, norm, seed: int = 0) -> np.ndarray:
    """The clean wire samples of ``idx`` moved by up to +-400 lsb (an "attack" for tests)."""
    rng = np.random.default_rng(seed)
    clean = norm.to_wire(epochs_uv[idx]).astype(np.int32)
    return np.clip(clean + rng.integers(-400, 401, clean.shape), -32768, 32767).astype(np.int16)


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
    res = rep.read_results(tmp_path / rep.RESULTS)
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
    meta = json.loads((tmp_path / rep.RUN).read_text())
    assert meta["plan"]["adversarial"]["sha256"] == r["adversarial"]["sha256"]
    assert "adversarial pgd eps 6" in rep.summary_text(r, tmp_path)
    md = (tmp_path / rep.REPORT_MD).read_text()
    assert "Adversarial epochs: pgd eps 6 uV" in md and "1..9, 4 of them" in md
    # a subset of the file's epochs, and one it does not hold
    sub = stream(
        FakeBoard(model), psg, tmp_path / "sub", StreamOptions(adversarial=path, indices=(4, 9))
    )
    assert rep.read_results(tmp_path / "sub" / rep.RESULTS).epoch.tolist() == [4, 9]
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
    assert not (tmp_path / "run" / rep.RESULTS).exists()
    with pytest.raises(StreamError, match="exclude each other"):
        opts = StreamOptions(adversarial=path, noise=NoiseSpec("gaussian", 0.1))
        stream(FakeBoard(model), psg, tmp_path / "run", opts)
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(adversarial_file.AdversarialFileError, match=r"junk\.npz: cannot be read"):
        stream_module.read_adversarial_file(tmp_path / "junk.npz")
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
    opts = StreamOptions(indices=(2, 6, 7), noise=spec, seed=5, stats=STATS)
    r = stream(FakeBoard(model), psg, tmp_path, opts)
    assert r["noise"]["stats"] == STATS.to_dict()
    rec = load_recording(pair_for(psg))
    wire = wire_epochs(rec.epochs, np.array([2, 6, 7]), norm, noise=spec, stats=STATS, seed=5)
    refs = References(model)
    res = rep.read_results(tmp_path / rep.RESULTS)
    assert np.array_equal(res.tflm_scores, [refs.tflm(x) for x in norm.to_int8(wire)])
    assert res.epoch.tolist() == [2, 6, 7]
