"""Layer 3 operation: stream a recording to a board and compare every epoch's result.

``stream(device, psg, out)`` is what ``host_tools stream NIGHT.edf`` runs:

1. read the PSG + hypnogram with the data layer (``sleepdata.psg``), optionally add
   noise in microvolts (``sleepdata.noise``, REST's definitions), convert to the int16 wire
   samples with the model's ``Normaliser``; or take the int16 wire samples of an adversarial
   epoch file (``training robustness --write-adversarial``) instead of the recording's own;
2. check the board's INFO against the host's model (hash, channels, rate, epoch length,
   normalisation constants; ``host_tools.inputs``);
3. send the epochs with ``Device.stream_epochs``; for every epoch, compute from the SAME wire
   samples the int8 input, the TFLite Micro reference and the float ONNX output (on a process
   of their own, ``host_tools.reference_process``, off the sender's path), and append one row
   to ``results.csv`` as each RESULT arrives;
4. render the outputs (``host_tools.report``).

run.json (``host_tools.runmeta``) records the plan, the recording, the model, the board and each
session; with a fault-injecting link also what was injected and what it took.

A run folder can be continued (``resume=True``) after a crash or Ctrl-C: the rows already in
results.csv are kept and streaming continues after the last complete one. Nothing here prints;
progress goes to the ``on_result`` callback.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sleepdata.layout import EPOCH_S, EPOCH_SAMPLES
from sleepdata.noise import NoiseSpec, SignalStats

from . import runfolder as rf
from . import runmeta
from .device import Device, DeviceError
from .errors import BoardErrorReply
from .faults import fault_record
from .inputs import (
    StreamError,
    check_adversarial,
    check_adversarial_recording,
    check_board,
    plan_epochs,
    read_adversarial_file,
    wire_epochs,
)
from .protocol import PROTOCOL_VERSION
from .reference import ModelFiles
from .reference_process import ReferenceProcess
from .report import write_outputs


class StreamInterrupted(Exception):
    """Ctrl-C (or SIGTERM / SIGHUP in the command line, host_tools.interrupts, or a callback's
    KeyboardInterrupt) stopped the stream; everything written is kept and the folder can be
    continued with resume."""

    def __init__(self, folder: Path, done: int, total: int):
        self.folder, self.done, self.total = folder, done, total
        super().__init__(
            f"interrupted: {folder / rf.RESULTS} holds {done} of {total} epochs; "
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
    model_dir: Path | None = None  # None: the shipped model (default_model_dir())
    indices: tuple[int, ...] | None = None
    adversarial: Path | None = None
    stats: SignalStats | None = None
    figures: bool = True


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


OnResult = Callable[[rf.EpochRow, int, int], None]


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

    options = options or StreamOptions()
    t_wall0 = time.perf_counter() if started is None else started
    cpu0 = time.process_time()
    model = ModelFiles.load(options.model_dir)
    refs = ReferenceProcess(model).start()  # its models load while the board is asked
    try:
        return _stream(device, psg, Path(out), options, model, refs, port_label, on_result,
                       t_wall0, cpu0)  # fmt: skip
    finally:
        refs.stop()


def _stream(
    device: Device,
    psg: str | Path,
    out: Path,
    options: StreamOptions,
    model: ModelFiles,
    refs: ReferenceProcess,
    port_label: str,
    on_result: OnResult | None,
    t_wall0: float,
    cpu0: float,
) -> dict:
    from sleepdata.normalise import Normaliser
    from sleepdata.psg import load_recording, pair_for

    link = device.counters
    bytes_call0 = link.bytes_sent
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
        check_adversarial_recording(adv, rec, norm)
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
    plan_meta = runmeta.plan_meta(pair, options, model, plan, adv)
    out.mkdir(parents=True, exist_ok=True)
    meta, done = runmeta.open_folder(out, plan_meta, options.resume)
    board_meta = runmeta.board_meta(info, port_label)
    todo = np.array([i for i in plan if not len(done) or i > done.epoch[-1]], dtype=np.int64)
    if not len(todo):
        return {}  # every planned epoch is in results.csv already
    stats = None
    if options.noise is not None:
        stats = options.stats or runmeta.noise_stats(model.config, rec)
    if meta is not None:
        runmeta.check_continuation(out, meta, info, stats)
    if meta is None:
        meta = runmeta.new_meta(pair, rec, plan_meta, options, stats, model, refs, board_meta, adv)

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
    rf.write_meta(out, meta)

    total, n_done = len(plan), len(done)
    refs.compute(norm.to_int8(wire))
    fed = _Counted(np.ascontiguousarray(w.T) for w in wire)
    bytes0, retries0 = link.bytes_sent, link.retries
    t_stream = time.perf_counter()
    cpu_stream = time.process_time()
    session["setup_s"] = t_stream - t_wall0
    session["setup_cpu_s"] = cpu_stream - cpu0
    status = "complete"
    try:
        with rf.ResultsWriter(out / rf.RESULTS) as writer:
            for k, r in enumerate(_board_results(device, fed, meta, int(todo[0]), options, model)):
                i = int(todo[k])
                ref = refs.get(k)
                row = rf.EpochRow(
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
        # the rows in the file are the truth: an interrupt between writing a row and counting
        # it must not make the report's sample check disagree with results.csv
        with contextlib.suppress(rf.RunFolderError, OSError):
            session["epochs"] = len(rf.read_results(out / rf.RESULTS)) - len(done)
        session.update(
            status=status,
            stream_s=time.perf_counter() - t_stream,
            stream_cpu_s=time.process_time() - cpu_stream,
            reference_cpu_s=refs.cpu_s,
            stream_bytes=link.bytes_sent - bytes0,
            bytes_sent=link.bytes_sent - bytes_call0,
            retries=link.retries - retries0,
            **_sample_counts(device, fed.taken, session["epochs"]),
            **_wire_figures(device, status == "complete"),
        )
        session["wall_s"] = time.perf_counter() - t_wall0
        faults = getattr(device, "faults", None)
        if faults is not None:  # a fault-injecting link: the report's "faults" section
            meta["faults"] = fault_record(faults, link)
        else:
            meta.pop("faults", None)
        rf.write_meta(out, meta)

    results_all = rf.read_results(out / rf.RESULTS)
    report = (
        write_outputs(out, results_all, meta, figures=options.figures) if len(results_all) else {}
    )
    if report:  # the end-to-end wall time includes rendering the outputs
        session["wall_s"] = time.perf_counter() - t_wall0
        report = write_outputs(out, results_all, meta, figures=False)
    rf.write_meta(out, meta)
    if status == "interrupted":
        raise StreamInterrupted(out, len(results_all), total)
    return report


def _board_results(
    device: Device,
    fed: Iterable[np.ndarray],
    meta: dict,
    first_index: int,
    options: StreamOptions,
    model: ModelFiles,
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
        counts = [list(map(int, c)) for c in device.layer_counts or []]
        meta["layer_counts"] = {
            "epoch": first_index,
            "counts": counts,
            "names": model.layer_names(len(counts)),
            # the trained network's MACs when the int8 graph computes fewer (engine_layers.json)
            "model_macs": model.model_macs,
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


def _wire_figures(device: Device, complete: bool) -> dict:
    """How the samples went (docs/protocol.md, Versions and Coded samples): the wire choice,
    the protocol version spoken and, after a complete stream on a version-4 board, its receive
    figures from a STATUS: samples stored (resent ones again) and the counter units its
    service spent storing them, decoding included."""
    figures = {
        "wire": getattr(device, "wire", "raw"),
        "samples_coded": bool(getattr(device, "codes_samples", False)),
        "protocol_version": getattr(device, "version", None),
    }
    if complete and figures["protocol_version"] == PROTOCOL_VERSION:
        try:
            st = device.status(budget_s=10.0)
        except (DeviceError, BoardErrorReply) as exc:
            figures["receive_error"] = str(exc)
        else:
            figures.update(samples_stored=st.samples_stored, receive_count=st.receive_count)
    return figures


def _chain(first: list, rest: Iterable) -> Iterator:
    yield from first
    yield from rest
