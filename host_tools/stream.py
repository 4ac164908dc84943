"""Layer 3 operation: stream a recording to a board and compare every epoch's result.

``stream(device, psg, out)`` is what ``host_tools stream NIGHT.edf`` runs:

1. read the PSG + hypnogram with the data layer (``sleepdata.psg``), optionally add
   noise in microvolts (``sleepdata.noise``, REST's definitions), convert to the int16 wire
   samples with the model's ``Normaliser``; or take the int16 wire samples of an adversarial
   epoch file (``training robustness --write-adversarial``) instead of the recording's own;
2. check the board's INFO against the host's model (hash, channels, rate, epoch length,
   normalisation constants);
3. send the epochs with ``Device.stream_epochs``; for every epoch, compute from the SAME wire
   samples the int8 input, the TFLite Micro reference and the float ONNX output (on a worker
   thread while the host waits for the board), and append one row to ``results.csv`` as each
   RESULT arrives;
4. render the outputs (``host_tools.report``).

A run folder can be continued (``resume=True``) after a crash or Ctrl-C: the rows already in
results.csv are kept and streaming continues after the last complete one. Nothing here prints;
progress goes to the ``on_result`` callback.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import platform
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sleepdata import adversarial
from sleepdata.adversarial import AdversarialEpochs
from sleepdata.layout import EPOCH_S, EPOCH_SAMPLES, MODEL_FS_HZ
from sleepdata.noise import NoiseSpec, SignalStats, add_noise, epoch_rng

from . import __version__
from . import report as rep
from .device import Device, DeviceError
from .protocol import CounterKind, Info
from .reference import MODEL_DIR, ModelFiles, References, ReferenceWorker

#: Marker the PSG simulator writes into the EDF header's recording field.
SIMULATOR_MARK = b"ulw-sleepnet-mcu_simulator"


class StreamError(RuntimeError):
    """Options or a run folder that do not fit together; says what to do instead."""


class BoardMismatchError(DeviceError):
    """The board runs another model or preprocessing than this host has."""


class StreamInterrupted(Exception):
    """Ctrl-C (or a callback's KeyboardInterrupt) stopped the stream; everything written is
    kept and the folder can be continued with resume."""

    def __init__(self, folder: Path, done: int, total: int):
        self.folder, self.done, self.total = folder, done, total
        super().__init__(
            f"interrupted: {folder / rep.RESULTS} holds {done} of {total} epochs; "
            "run the same command with --resume to continue"
        )


@dataclass(frozen=True)
class StreamOptions:
    """What to stream. ``start``/``epochs`` count the recording's kept (scored) epochs;
    ``indices``: a sorted list of kept-epoch indices to stream instead of a contiguous range
    (``epochs`` then keeps the first N of them); ``noise`` is added in microvolts before the
    wire conversion, with ``seed`` and the statistics ``stats`` (default: config.json's
    ``signal_stats``, else the recording's); ``adversarial``: an adversarial epoch file whose
    int16 wire samples are streamed instead of the recording's (its epochs, or those of
    ``indices``); ``figures``: render hypnogram.png and the on-chip hypnogram files."""

    hypnogram: Path | None = None
    start: int = 0
    epochs: int | None = None
    realtime: bool = False
    noise: NoiseSpec | None = None
    seed: int = 0
    resume: bool = False
    model_dir: Path = MODEL_DIR
    indices: tuple[int, ...] | None = None
    adversarial: Path | None = None
    stats: SignalStats | None = None
    figures: bool = True


# ------------------------------------------------------------------------------------------
# Checks


def check_board(info: Info, model: ModelFiles, norm) -> None:
    """The board must run this host's model with its preprocessing; raises BoardMismatchError
    naming the difference and the fix."""
    fix = (
        "flash the firmware built from this model (make firmware-model, then make firmware) "
        "or pass the model folder the board was built from"
    )
    if info.model_hash != model.model_hash:
        raise BoardMismatchError(
            f"the board runs model {info.model_hash.hex()}, this host has "
            f"{model.model_hash.hex()} ({model.folder / 'model_int8.tflite'}): {fix}"
        )
    want = (len(norm.channels), MODEL_FS_HZ, EPOCH_SAMPLES)
    got = (info.channels, info.sample_rate_hz, info.epoch_samples)
    if got != want:
        raise BoardMismatchError(
            f"the board takes {got[0]} channels at {got[1]} Hz in epochs of {got[2]} samples; "
            f"this host sends {want[0]} at {want[1]} Hz in epochs of {want[2]}: {fix}"
        )
    host_norm = [(int(c.remove_dc), c.shift, c.offset, c.multiplier) for c in norm.channels]
    for c, (board_c, host_c) in enumerate(zip(info.norm, host_norm, strict=True)):
        if tuple(board_c) != host_c:
            raise BoardMismatchError(
                f"channel {c} ({norm.channels[c].name}): the board normalises with "
                f"(remove_dc, shift, offset, multiplier) = {tuple(board_c)}, this host's "
                f"config.json with {host_c}: {fix}"
            )


def is_simulated(psg: Path) -> bool:
    """True for PSG files written by sleepdata.simulator (it marks the EDF header)."""
    with open(psg, "rb") as f:
        header = f.read(256)
    return SIMULATOR_MARK in header[88:168]


def plan_epochs(n_kept: int, start: int, epochs: int | None, indices=None) -> range | np.ndarray:
    """Recording epoch indices to stream: ``epochs`` from ``start`` (all to the end: None), or
    the first ``epochs`` of ``indices`` (strictly increasing kept-epoch indices; all: None)."""
    if indices is not None:
        return _plan_indices(n_kept, start, epochs, indices)
    if start < 0 or start >= n_kept:
        raise StreamError(
            f"--start {start} is outside the recording's {n_kept} kept epochs (0..{n_kept - 1})"
        )
    if epochs is not None and epochs < 1:
        raise StreamError(f"--epochs {epochs}: stream at least one epoch")
    stop = n_kept if epochs is None else min(n_kept, start + epochs)
    return range(start, stop)


def _plan_indices(n_kept: int, start: int, epochs: int | None, indices) -> np.ndarray:
    idx = np.asarray(indices)
    if start != 0:
        raise StreamError(
            f"--start {start} cannot be combined with a list of epochs to stream; use --epochs "
            "to keep the first N of the list"
        )
    if epochs is not None and epochs < 1:
        raise StreamError(f"--epochs {epochs}: stream at least one epoch")
    if idx.ndim != 1 or not len(idx) or not np.issubdtype(idx.dtype, np.integer):
        raise StreamError("the list of epochs to stream must be a non-empty list of integers")
    if (np.diff(idx) <= 0).any():
        raise StreamError("the list of epochs to stream must be strictly increasing")
    if idx[0] < 0 or idx[-1] >= n_kept:
        bad = int(idx[0] if idx[0] < 0 else idx[-1])
        raise StreamError(
            f"epoch {bad} is outside the recording's {n_kept} kept epochs (0..{n_kept - 1})"
        )
    return idx[:epochs].astype(np.int64)


def wire_epochs(
    epochs_uv: np.ndarray,
    indices: np.ndarray,
    norm,
    *,
    noise: NoiseSpec | None = None,
    stats: SignalStats | None = None,
    seed: int = 0,
) -> np.ndarray:
    """int16 wire samples (n, 4, 3000) of the recording's epochs ``indices``; with ``noise``,
    each epoch's noise comes from epoch_rng(seed, its recording index)."""
    x = epochs_uv[indices]
    if noise is None:
        return norm.to_wire(x)
    out = np.empty(x.shape, np.int16)
    for k, i in enumerate(indices):
        out[k] = norm.to_wire(add_noise(x[k], noise, stats, epoch_rng(seed, int(i))))
    return out


def read_adversarial_file(path: str | Path) -> AdversarialEpochs:
    """Read and check an adversarial epoch file (``--adversarial``); the error names the file
    and what is wrong with it."""
    if not Path(path).is_file():
        raise StreamError(f"--adversarial {path}: no such file")
    return adversarial.read(path)


def check_adversarial(adv: AdversarialEpochs, record: str, model: ModelFiles) -> None:
    """The file must be for this recording and for this model's int8 model; StreamError (one
    line) names the file and the mismatch."""
    got = adv.meta.get("record")
    if got != record:
        raise StreamError(
            f"{adv.path}: adversarial epochs of record {got}, not of {record} (the recording "
            f"streamed): use adversarial/<attack>-eps<E>/{record}.npz"
        )
    want = hashlib.sha256(model.tflite).hexdigest()
    crafted = adv.meta.get("int8_model_sha256")
    if crafted != want:
        raise StreamError(
            f"{adv.path}: made for the int8 model with SHA-256 {str(crafted)[:16]}..., but "
            f"{model.folder / 'model_int8.tflite'} has {want[:16]}...: use the files written "
            "for this model, or --model the folder they were written for"
        )


def _check_adversarial_recording(adv: AdversarialEpochs, rec, norm) -> None:
    if adv.wire.shape[1] != len(norm.channels):
        raise StreamError(
            f"{adv.path}: {adv.wire.shape[1]} channels, the model reads {len(norm.channels)}"
        )
    if adv.index[0] < 0 or adv.index[-1] >= len(rec):
        raise StreamError(
            f"{adv.path}: epoch {int(adv.index[-1])} is outside {rec.name}'s {len(rec)} kept epochs"
        )
    differ = np.flatnonzero(rec.labels[adv.index] != adv.labels)
    if len(differ):
        i = int(adv.index[differ[0]])
        raise StreamError(
            f"{adv.path}: the expert stage of epoch {i} is {int(adv.labels[differ[0]])} in the "
            f"file and {int(rec.labels[i])} in {rec.name}'s hypnogram ({len(differ)} epochs "
            "differ): the file was made from another scoring of this record"
        )


# ------------------------------------------------------------------------------------------
# The run folder


def _plan_meta(
    pair, options: StreamOptions, model: ModelFiles, indices, adv: AdversarialEpochs | None
) -> dict:
    """The settings a resumed run must share with the run it continues."""
    meta = {
        "psg": str(Path(pair.psg).resolve()),
        "hypnogram": str(Path(pair.hypnogram).resolve()),
        "start": options.start,
        "epochs": options.epochs,
        "noise": str(options.noise) if options.noise else None,
        "seed": options.seed,
        "model_hash": model.model_hash.hex(),
    }
    # Only when used, so that run folders written before these options still resume.
    if options.indices is not None:
        idx = np.asarray(indices, dtype=np.int64)
        meta["indices"] = {
            "n": len(idx),
            "first": int(idx[0]),
            "last": int(idx[-1]),
            "sha256": hashlib.sha256(idx.tobytes()).hexdigest(),
        }
    if adv is not None:
        meta["adversarial"] = {"file": str(adv.path.resolve()), "sha256": adv.sha256}
    return meta


def _new_meta(pair, rec, plan_meta, options, stats, model, refs, board_meta, adv) -> dict:
    simulated = is_simulated(pair.psg)
    return {
        "format": 1,
        "tool": f"host_tools {__version__}",
        "plan": plan_meta,
        "recording": {
            "path": str(Path(pair.psg).resolve()),
            "hypnogram": str(Path(pair.hypnogram).resolve()),
            "name": rec.name,
            "start": rec.start.isoformat(),
            "kept_epochs": len(rec),
            "simulated": simulated,
            "note": (
                "simulated recording (sleepdata.simulator): the figures show that the pipeline "
                "works; they are not results on real sleep data"
                if simulated
                else "recording as given (not produced by this toolkit's simulator)"
            ),
        },
        "noise": (
            {"spec": str(options.noise), "seed": options.seed, "stats": stats.to_dict()}
            if options.noise
            else None
        ),
        "adversarial": adv.describe() if adv is not None else None,
        "model": {
            "folder": str(model.folder),
            "hash": model.model_hash.hex(),
            "output_quantisation": {
                "scale": refs.output_scale,
                "zero_point": refs.output_zero_point,
            },
        },
        "board": board_meta,
        "layer_counts": None,
        "host": {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
        },
        "sessions": [],
    }


def _board_meta(info: Info, port_label: str) -> dict:
    return {
        "board": info.board,
        "firmware_version": info.firmware_version,
        "build_hash": info.build_hash,
        "protocol_version": info.protocol_version,
        "counter_kind": CounterKind(info.counter_kind).name.lower(),
        "core_clock_hz": info.core_clock_hz,
        "static_ram_bytes": info.static_ram_bytes,
        "port": port_label,
    }


def _noise_stats(config: dict, rec) -> SignalStats:
    """The training split's statistics from config.json, else (documented in
    docs/streaming.md) those of the recording being streamed."""
    return SignalStats.from_config(config) or SignalStats.fit(
        rec.epochs,
        source=(
            f"this recording's {len(rec)} kept epochs (config.json has no training-split "
            "signal_stats)"
        ),
    )


def _check_continuation(out: Path, meta: dict, info: Info, stats: SignalStats | None) -> None:
    """A resumed run must use the same board and the same noise as the run it continues."""
    before = meta["board"]
    if (before["board"], before["build_hash"]) != (info.board, info.build_hash):
        raise StreamError(
            f"--resume: {out} was streamed to {before['board']} (firmware build "
            f"{before['build_hash']:#010x}), this board is {info.board} (build "
            f"{info.build_hash:#010x}); counts of two boards do not mix: use the same board "
            "or another --out"
        )
    if stats is not None and (meta.get("noise") or {}).get("stats") != stats.to_dict():
        raise StreamError(
            f"--resume: {out} was streamed with noise statistics from "
            f"{meta['noise']['stats']['source']!r}, this run's come from {stats.source!r}; "
            "the noise would differ: choose another --out"
        )


def _open_folder(out: Path, plan: dict, resume: bool) -> tuple[dict | None, rep.Results]:
    """(stored run.json or None, rows already done); checks that resume continues the same
    run."""
    results_path = out / rep.RESULTS
    has_rows = results_path.is_file() and results_path.stat().st_size > 0
    if not resume:
        if has_rows or (out / rep.RUN).is_file():
            raise StreamError(
                f"{out} already holds a run ({rep.RESULTS}, {rep.RUN}); continue it with "
                "--resume or choose another --out"
            )
        return None, rep.Results()
    if not (out / rep.RUN).is_file():
        if has_rows:
            raise StreamError(f"{out} has {rep.RESULTS} but no {rep.RUN}: it cannot be resumed")
        return None, rep.Results()
    meta = rep.read_meta(out)
    stored = meta.get("plan", {})
    diff = [k for k in plan if stored.get(k) != plan[k]]
    if diff:
        detail = "; ".join(f"{k}: run {stored.get(k)!r}, now {plan[k]!r}" for k in diff)
        raise StreamError(
            f"--resume: {out} was streamed with other settings ({detail}); pass the same "
            "recording and options, or choose another --out"
        )
    done = rep.read_results(results_path, repair=True) if has_rows else rep.Results()
    return meta, done


# ------------------------------------------------------------------------------------------
# Streaming


def _sleep_until(t: float) -> None:
    delay = t - time.monotonic()
    if delay > 0:
        time.sleep(delay)


class _Counted:
    """An iterable that counts how many items the consumer has taken."""

    def __init__(self, items: Iterable):
        self._items = items
        self.taken = 0

    def __iter__(self):
        for item in self._items:
            self.taken += 1
            yield item


OnResult = Callable[[rep.EpochRow, int, int], None]


def stream(
    device: Device,
    psg: str | Path,
    out: str | Path,
    options: StreamOptions | None = None,
    *,
    port_label: str = "",
    on_result: OnResult | None = None,
    started: float | None = None,
) -> dict:
    """Stream a recording to ``device``, write the run folder ``out``, return report.json's
    content. ``on_result(row, done, total)`` is called after each row is written;
    ``started`` (time.perf_counter) counts earlier set-up, e.g. booting an emulator, into the
    wall time. Raises StreamInterrupted on KeyboardInterrupt, after saving everything."""
    from sleepdata.normalise import Normaliser
    from sleepdata.psg import load_recording, pair_for

    options = options or StreamOptions()
    t_wall0 = time.perf_counter() if started is None else started
    cpu0 = time.process_time()
    bytes_call0 = device.bytes_sent
    out = Path(out)
    model = ModelFiles.load(options.model_dir)
    norm = Normaliser.from_dict(model.config["normalisation"])

    if options.noise is not None and options.adversarial is not None:
        raise StreamError(
            "--noise and --adversarial exclude each other: an adversarial file holds the "
            "perturbed samples already"
        )
    pair = pair_for(psg, options.hypnogram)
    adv = None
    if options.adversarial is not None:
        adv = read_adversarial_file(options.adversarial)
        check_adversarial(adv, pair.name, model)

    info = device.hello()
    check_board(info, model, norm)

    rec = load_recording(pair)
    indices = options.indices
    if adv is not None:
        _check_adversarial_recording(adv, rec, norm)
        if indices is None:
            indices = adv.index
        else:
            extra = np.setdiff1d(np.asarray(indices), adv.index)
            if len(extra):
                raise StreamError(
                    f"{adv.path}: holds no epoch {int(extra[0])} ({len(extra)} of the epochs "
                    "asked for are not in the file)"
                )
    plan = plan_epochs(len(rec), options.start, options.epochs, indices)
    plan_meta = _plan_meta(pair, options, model, plan, adv)
    out.mkdir(parents=True, exist_ok=True)
    meta, done = _open_folder(out, plan_meta, options.resume)
    board_meta = _board_meta(info, port_label)
    todo = np.array([i for i in plan if not len(done) or i > done.epoch[-1]], dtype=np.int64)
    if not len(todo):
        return {}  # every planned epoch is in results.csv already
    stats = None
    if options.noise is not None:
        stats = options.stats or _noise_stats(model.config, rec)
    if meta is not None:
        _check_continuation(out, meta, info, stats)
    refs = References(model)
    if meta is None:
        meta = _new_meta(pair, rec, plan_meta, options, stats, model, refs, board_meta, adv)

    if adv is not None:
        wire = adv.rows(todo)
    else:
        wire = wire_epochs(
            rec.epochs, todo, norm, noise=options.noise, stats=stats, seed=options.seed
        )
    session = {
        "started": dt.datetime.now().isoformat(timespec="seconds"),
        "status": "running",
        "first_epoch": int(todo[0]),
        "epochs": 0,
        "realtime": options.realtime,
        "port": port_label,
    }
    meta["sessions"].append(session)
    rep.write_meta(out, meta)

    total, n_done = len(plan), len(done)
    worker = ReferenceWorker(refs, norm.to_int8(wire))
    fed = _Counted(np.ascontiguousarray(w.T) for w in wire)
    bytes0 = device.bytes_sent
    retries0 = _retries(device)
    t_stream = time.perf_counter()
    cpu_stream = time.process_time()
    session["setup_s"] = t_stream - t_wall0
    session["setup_cpu_s"] = cpu_stream - cpu0
    status = "complete"
    try:
        with rep.ResultsWriter(out / rep.RESULTS) as writer:
            worker.start()
            for k, r in enumerate(_board_results(device, fed, meta, int(todo[0]), options)):
                i = int(todo[k])
                ref = worker.get(k)
                row = rep.EpochRow(
                    epoch=i,
                    onset_s=float(rec.onsets_s[i]),
                    expert=int(rec.labels[i]),
                    onchip=int(r.stage),
                    onchip_scores=tuple(int(v) for v in r.scores),
                    tflm_scores=tuple(int(v) for v in ref.tflm_scores),
                    float_probs=tuple(float(v) for v in ref.float_probs),
                    preprocess_count=int(r.preprocess_count),
                    inference_count=int(r.inference_count),
                )
                writer.write(row)
                session["epochs"] = k + 1
                n_done += 1
                if on_result is not None:
                    on_result(row, n_done, total)
    except KeyboardInterrupt:
        status = "interrupted"
    except BaseException as exc:
        status = f"failed: {exc}"
        raise
    finally:
        worker.stop()
        session.update(
            status=status,
            stream_s=time.perf_counter() - t_stream,
            stream_cpu_s=time.process_time() - cpu_stream,
            reference_cpu_s=worker.cpu_s,
            stream_bytes=device.bytes_sent - bytes0,
            bytes_sent=device.bytes_sent - bytes_call0,
            retries=_retries(device) - retries0,
            **_sample_counts(device, fed.taken, session["epochs"]),
        )
        session["wall_s"] = time.perf_counter() - t_wall0
        rep.write_meta(out, meta)

    results_all = rep.read_results(out / rep.RESULTS)
    report = (
        rep.write_outputs(out, results_all, meta, figures=options.figures)
        if len(results_all)
        else {}
    )
    if report:  # the end-to-end wall time includes rendering the outputs
        session["wall_s"] = time.perf_counter() - t_wall0
        report = rep.write_outputs(out, results_all, meta, figures=False)
    rep.write_meta(out, meta)
    if status == "interrupted":
        raise StreamInterrupted(out, len(results_all), total)
    return report


def _board_results(
    device: Device, fed: Iterable[np.ndarray], meta: dict, first_index: int, options
) -> Iterator:
    """The board's RESULTs for the epochs of ``fed``, in order, as stream epochs 0, 1, ...
    (after RESET_STREAM).

    Without per-layer counts in ``meta`` yet, the first epoch is sent on its own with PROFILE on
    (profiling adds a frame and the board's per-layer bookkeeping, so it stays off for the
    rest). With ``options.realtime``, epoch k is sent once 30 s x (k + 1) have passed, the
    moment a recorder would have it complete, in a call of its own so that its RESULT is read
    as soon as the board sends it (pipelining gains nothing at that pace)."""
    source: Iterator[np.ndarray] = iter(fed)
    t0 = time.monotonic()
    device.reset_stream()
    first: list = []
    if meta["layer_counts"] is None:
        if options.realtime:
            _sleep_until(t0 + EPOCH_S)
        device.set_profile(True)
        first = list(device.stream_epochs(0, [next(source)]))
        device.set_profile(False)
        from .bench import layer_names

        meta["layer_counts"] = {
            "epoch": first_index,
            "counts": [list(map(int, c)) for c in device.layer_counts or []],
            "names": layer_names(),
        }
    if options.realtime:

        def paced() -> Iterator:
            for k, samples in enumerate(source, len(first)):
                _sleep_until(t0 + (k + 1) * EPOCH_S)
                yield from device.stream_epochs(k, [samples])

        rest = paced()
    else:
        rest = device.stream_epochs(len(first), source)
    for k, r in enumerate(_chain(first, rest)):
        if r.epoch_index != k:
            raise DeviceError(
                f"stream: RESULT for stream epoch {r.epoch_index}, expected {k}; the board and "
                "the host disagree about the stream"
            )
        yield r


def _retries(device) -> int:
    """Frames and RESULTs the device layer sent or asked for again so far (docs/protocol.md,
    "Recovery"); 0 for a device that keeps no such counts."""
    return int(getattr(device, "frames_resent", 0)) + int(getattr(device, "results_resent", 0))


def _sample_counts(device: Device, epochs_sent: int, epochs_scored: int) -> dict:
    """Samples sent, acknowledged by the board and scored in one session."""
    acked = getattr(device, "samples_acked", None)
    how = "sent = epochs handed to Device.stream_epochs x 3000; scored = RESULTs x 3000; "
    if acked is None:
        how += (
            "this Device does not expose the ACKed index (it checks every ACK against the "
            "samples it sent and raises on a difference)"
        )
    else:
        how += "acked = the next expected sample index in the board's last ACK"
    return {
        "samples_sent": epochs_sent * EPOCH_SAMPLES,
        "samples_acked": acked,
        "samples_scored": epochs_scored * EPOCH_SAMPLES,
        "sample_check": how,
    }


def _chain(first: list, rest: Iterable) -> Iterator:
    yield from first
    yield from rest
