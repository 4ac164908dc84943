"""A stream run folder: ``results.csv`` (one row per epoch, written as results arrive),
``run.json`` (what was streamed, to which board, and each session's timing) and everything
rendered from those two files: ``report.json``, ``report.md``, ``hypnogram.png``,
``hypnogram_onchip.edf`` and ``hypnogram_onchip.tsv``.

``host_tools report DIR`` re-renders a folder from results.csv + run.json alone (no board, no
model runtime). What every figure means: docs/streaming.md. Nothing here prints.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from sleepdata.layout import EPOCH_S
from sleepdata.metrics import scores
from sleepdata.stages import N_STAGES, STAGE_NAMES
from sleepdata.tflm import int8_probs

RESULTS = "results.csv"
RUN = "run.json"
REPORT_JSON = "report.json"
REPORT_MD = "report.md"
PLOT = "hypnogram.png"
EDF = "hypnogram_onchip.edf"
TSV = "hypnogram_onchip.tsv"

_S = STAGE_NAMES
#: results.csv columns, in order. Stages are names (W, N1, N2, N3, REM); scores are int8.
RESULT_COLUMNS: tuple[str, ...] = (
    "epoch",  # index of the epoch among the recording's kept (scored) epochs
    "onset_s",  # seconds from the PSG start
    "expert",
    "onchip",
    *(f"onchip_{s}" for s in _S),
    "tflm",
    *(f"tflm_{s}" for s in _S),
    "bitexact",  # 1 when the on-chip scores and stage equal TFLite Micro's
    "float",
    *(f"float_p_{s}" for s in _S),
    "preprocess_count",
    "inference_count",
)
MAX_LISTED_MISMATCHES = 100

#: Board power profiles for the energy estimate; the figures and their source: docs/power.md.
POWER_PROFILES = {
    "nucleo-l476rg": {
        "mcu": "STM32L476RG",
        "datasheet": "STMicroelectronics DS10198 (STM32L476xx), feature summary, typical values",
        "supply_v": 3.0,
        "clock_hz": 80_000_000,
        "run_ua_per_mhz": 100.0,
        "sleep_mode": "Stop 2 with RTC",
        "sleep_ua": 1.4,
    }
}
NIGHT_EPOCHS = 8 * 3600 // EPOCH_S  # an 8-h night, the unit of the energy estimate


class RunFolderError(RuntimeError):
    """A run folder that cannot be read or continued; names the file and what to do."""


# ------------------------------------------------------------------------------------------
# results.csv


@dataclass
class EpochRow:
    """One epoch's results: the board's, TFLite Micro's and the float model's."""

    epoch: int
    onset_s: float
    expert: int
    onchip: int
    onchip_scores: tuple[int, ...]
    tflm_scores: tuple[int, ...]
    float_probs: tuple[float, ...]
    preprocess_count: int
    inference_count: int

    @property
    def tflm(self) -> int:
        return int(np.argmax(self.tflm_scores))

    @property
    def float_stage(self) -> int:
        return int(np.argmax(self.float_probs))

    @property
    def bitexact(self) -> bool:
        return tuple(self.onchip_scores) == tuple(self.tflm_scores) and self.onchip == self.tflm

    def line(self) -> str:
        fields = [
            str(self.epoch),
            f"{self.onset_s:.2f}",
            _S[self.expert],
            _S[self.onchip],
            *(str(int(v)) for v in self.onchip_scores),
            _S[self.tflm],
            *(str(int(v)) for v in self.tflm_scores),
            "1" if self.bitexact else "0",
            _S[self.float_stage],
            *(f"{v:.6f}" for v in self.float_probs),
            str(self.preprocess_count),
            str(self.inference_count),
        ]
        return ",".join(fields) + "\n"


@dataclass
class Results:
    """The rows of a results.csv as arrays (n = number of epochs)."""

    epoch: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    onset_s: np.ndarray = field(default_factory=lambda: np.zeros(0))
    expert: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    onchip: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    onchip_scores: np.ndarray = field(default_factory=lambda: np.zeros((0, N_STAGES), np.int64))
    tflm: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    tflm_scores: np.ndarray = field(default_factory=lambda: np.zeros((0, N_STAGES), np.int64))
    bitexact: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    float_stage: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    float_probs: np.ndarray = field(default_factory=lambda: np.zeros((0, N_STAGES)))
    preprocess_count: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    inference_count: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))

    def __len__(self) -> int:
        return int(self.epoch.size)


_HEADER = ",".join(RESULT_COLUMNS) + "\n"


def _parse_line(path: Path, lineno: int, line: str) -> list:
    parts = line.rstrip("\n").split(",")
    if len(parts) != len(RESULT_COLUMNS):
        raise RunFolderError(
            f"{path}: line {lineno} has {len(parts)} fields, expected {len(RESULT_COLUMNS)}; "
            "the file was edited or is not a results.csv"
        )
    stage = {name: k for k, name in enumerate(_S)}
    try:
        k = 4
        row = [int(parts[0]), float(parts[1]), stage[parts[2]], stage[parts[3]]]
        row.append([int(v) for v in parts[k : k + 5]])
        row.append(stage[parts[k + 5]])
        row.append([int(v) for v in parts[k + 6 : k + 11]])
        row.append(parts[k + 11] == "1")
        row.append(stage[parts[k + 12]])
        row.append([float(v) for v in parts[k + 13 : k + 18]])
        row += [int(parts[k + 18]), int(parts[k + 19])]
    except (ValueError, KeyError) as exc:
        raise RunFolderError(f"{path}: line {lineno} cannot be read ({exc})") from None
    return row


def read_results(path: str | Path, *, repair: bool = False) -> Results:
    """Read a results.csv written row by row.

    A last line without its newline is a row torn by a crash or Ctrl-C: it is dropped, and with
    ``repair`` also cut off the file so that appending continues cleanly. Any other malformed
    line, a wrong header, or an epoch that is not after the previous one raises RunFolderError.
    """
    path = Path(path)
    data = path.read_bytes()
    complete = data[: data.rfind(b"\n") + 1]
    if repair and len(complete) != len(data):
        os.truncate(path, len(complete))
    lines = complete.decode("utf-8", errors="replace").splitlines(keepends=True)
    if not lines:
        return Results()
    if lines[0] != _HEADER:
        raise RunFolderError(f"{path}: the header is not that of a results.csv ({RESULTS})")
    rows = [_parse_line(path, i + 2, line) for i, line in enumerate(lines[1:])]
    for i in range(1, len(rows)):
        if rows[i][0] <= rows[i - 1][0]:
            raise RunFolderError(
                f"{path}: line {i + 2} has epoch {rows[i][0]} after epoch {rows[i - 1][0]} "
                "(duplicate or out of order); the file was edited or mixes two runs"
            )
    if not rows:
        return Results()
    cols = list(zip(*rows, strict=True))
    return Results(
        epoch=np.array(cols[0], np.int64),
        onset_s=np.array(cols[1], np.float64),
        expert=np.array(cols[2], np.int64),
        onchip=np.array(cols[3], np.int64),
        onchip_scores=np.array(cols[4], np.int64),
        tflm=np.array(cols[5], np.int64),
        tflm_scores=np.array(cols[6], np.int64),
        bitexact=np.array(cols[7], bool),
        float_stage=np.array(cols[8], np.int64),
        float_probs=np.array(cols[9], np.float64),
        preprocess_count=np.array(cols[10], np.int64),
        inference_count=np.array(cols[11], np.int64),
    )


class ResultsWriter:
    """Appends rows to results.csv, one write and flush per row: a crash at any moment leaves
    whole rows plus at most one torn last line, which `read_results` drops."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        new = not self.path.exists() or self.path.stat().st_size == 0
        self._f = open(self.path, "a", encoding="utf-8", newline="")
        if new:
            self._f.write(_HEADER)
            self._f.flush()

    def write(self, row: EpochRow) -> None:
        self._f.write(row.line())
        self._f.flush()

    def close(self) -> None:
        if not self._f.closed:
            self._f.flush()
            os.fsync(self._f.fileno())
            self._f.close()

    def __enter__(self) -> ResultsWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# ------------------------------------------------------------------------------------------
# run.json


def read_meta(folder: str | Path) -> dict:
    path = Path(folder) / RUN
    if not path.is_file():
        raise RunFolderError(f"{path} does not exist; is {folder} a folder written by stream?")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise RunFolderError(f"{path}: not valid JSON ({exc})") from None


def write_meta(folder: str | Path, meta: dict) -> None:
    """run.json, replaced atomically (a crash leaves the old or the new file, never half)."""
    path = Path(folder) / RUN
    tmp = path.with_suffix(".json.part")
    tmp.write_text(json.dumps(meta, indent=1) + "\n")
    tmp.replace(path)


# ------------------------------------------------------------------------------------------
# Figures


def _stats(x: np.ndarray) -> dict:
    x = np.asarray(x, dtype=np.float64)
    return {
        "min": int(x.min()),
        "median": float(np.median(x)),
        "p99": float(np.percentile(x, 99)),
        "max": int(x.max()),
    }


def onchip_probs(results: Results, meta: dict) -> np.ndarray:
    """Hypnodensity from the board's int8 scores: softmax of the dequantised logits."""
    q = meta["model"]["output_quantisation"]
    return int8_probs(results.onchip_scores, q["scale"], q["zero_point"])


def _energy(count_per_epoch: float, kind: str) -> dict:
    """Energy estimate of the MCU core for the nucleo-l476rg profile (docs/power.md)."""
    p = POWER_PROFILES["nucleo-l476rg"]
    active_s = count_per_epoch / p["clock_hz"]
    run_ma = p["run_ua_per_mhz"] * p["clock_hz"] / 1e6 / 1e3
    idle_s = max(EPOCH_S - active_s, 0.0)
    per_epoch_j = p["supply_v"] * (run_ma * 1e-3 * active_s + p["sleep_ua"] * 1e-6 * idle_s)
    return {
        "estimate": True,
        "profile": "nucleo-l476rg",
        **p,
        "run_ma": run_ma,
        "active_s_per_epoch": active_s,
        "energy_per_epoch_mj": per_epoch_j * 1e3,
        "night_epochs": NIGHT_EPOCHS,
        "energy_per_night_j": per_epoch_j * NIGHT_EPOCHS,
        "average_current_ua": per_epoch_j / p["supply_v"] / EPOCH_S * 1e6,
        "assumes": (
            f"the median on-chip count per epoch (preprocessing + inference) as "
            f"{'cycles at 1 instruction per cycle' if kind == 'instructions' else 'cycles'} "
            f"at {p['clock_hz'] / 1e6:g} MHz in run mode, the rest of each 30-s epoch in "
            f"{p['sleep_mode']}; MCU only (no acquisition front end, UART, regulator or "
            "debugger); datasheet typical figures, not a measurement (docs/power.md)"
        ),
    }


def _sum_sessions(sessions: list[dict], key: str) -> float:
    return float(sum(s.get(key) or 0 for s in sessions))


def build_report(results: Results, meta: dict) -> dict:
    """Every figure of a run (docs/streaming.md, "report.json") from its results and run.json."""
    n = len(results)
    if n == 0:
        raise RunFolderError("results.csv holds no epoch yet: nothing to report")
    board = meta["board"]
    kind = board["counter_kind"]
    rec = meta["recording"]
    mism = np.flatnonzero(~results.bitexact)
    mismatches = [
        {
            "epoch": int(results.epoch[i]),
            "actual": results.onchip_scores[i].tolist(),
            "expected": results.tflm_scores[i].tolist(),
            "actual_stage": _S[int(results.onchip[i])],
            "expected_stage": _S[int(results.tflm[i])],
        }
        for i in mism[:MAX_LISTED_MISMATCHES]
    ]
    onchip_vs_expert = scores(results.expert, results.onchip)
    float_vs_expert = scores(results.expert, results.float_stage)
    total = results.preprocess_count + results.inference_count
    median_total = float(np.median(total))
    clock = board["core_clock_hz"]
    board_s = median_total / clock
    sessions = meta.get("sessions", [])
    stream_s = _sum_sessions(sessions, "stream_s")
    streamed = _sum_sessions(sessions, "epochs")
    bytes_stream = _sum_sessions(sessions, "stream_bytes")
    cpu_s = _sum_sessions(sessions, "stream_cpu_s")
    ref_cpu_s = _sum_sessions(sessions, "reference_cpu_s")
    # An interrupted session leaves epochs in flight (sent, not scored); they are streamed
    # again on resume. The sample check is therefore over the sessions that finished.
    finished = [s for s in sessions if s.get("status") == "complete"]
    samples_sent = int(_sum_sessions(finished, "samples_sent"))
    samples_scored = int(_sum_sessions(finished, "samples_scored"))
    acked = [s.get("samples_acked") for s in finished]
    samples_acked = None if None in acked else int(sum(acked))
    balanced = samples_sent == samples_scored and samples_acked in (None, samples_sent)
    resent = int(
        sum(s.get("samples_sent", 0) - s.get("samples_scored", 0) for s in sessions)
        - (samples_sent - samples_scored)
    )
    last = sessions[-1] if sessions else {}
    per_layer, macs = [], None
    lc = meta.get("layer_counts")
    if lc:
        names = lc.get("names") or []
        for i, (count, m) in enumerate(lc["counts"]):
            per_layer.append(
                {
                    "layer": names[i] if i < len(names) else str(i),
                    "count": int(count),
                    "macs": int(m),
                    "per_mac": round(count / m, 2) if m else None,
                }
            )
        macs = int(sum(m for _, m in lc["counts"]))
    report = {
        "recording": {
            "path": rec["path"],
            "hypnogram": rec["hypnogram"],
            "simulated": rec["simulated"],
            "note": rec["note"],
        },
        "epochs": n,
        "first_epoch": int(results.epoch[0]),
        "last_epoch": int(results.epoch[-1]),
        "noise": meta.get("noise"),
        "adversarial": meta.get("adversarial"),
        "board": board["board"],
        "firmware_version": board["firmware_version"],
        "firmware_build_hash": board["build_hash"],
        "model_hash": meta["model"]["hash"],
        "bitexact_vs_tflm": float(results.bitexact.mean()),
        "bitexact_tolerance": "0 on every int8 score and on the stage",
        "mismatches": len(mism),
        "mismatch_list": mismatches,
        "agreement_vs_float": float(np.mean(results.onchip == results.float_stage)),
        "acc_vs_expert": onchip_vs_expert["acc"],
        "kappa_vs_expert": onchip_vs_expert["kappa"],
        "macro_f1_vs_expert": onchip_vs_expert["macro_f1"],
        "onchip_vs_expert": onchip_vs_expert,
        "float_vs_expert": float_vs_expert,
        "counter_kind": kind,
        "count_per_epoch_median": median_total,
        "count_per_epoch": {
            "total": _stats(total),
            "preprocess": _stats(results.preprocess_count),
            "inference": _stats(results.inference_count),
        },
        "macs_per_epoch": macs,
        "inference_per_mac": round(float(np.median(results.inference_count)) / macs, 2)
        if macs
        else None,
        "per_layer": per_layer,
        "per_layer_epoch": lc.get("epoch") if lc else None,
        "core_clock_hz": clock,
        "board_s_per_epoch": board_s,
        "real_time_factor": board_s / EPOCH_S,
        "x_real_time": EPOCH_S / board_s if board_s > 0 else None,
        "real_time_assumes": (
            "1 instruction per cycle at the board's clock (the counts are instructions)"
            if kind == "instructions"
            else "cycles measured on the board (DWT) at its clock"
        ),
        "energy": _energy(median_total, kind),
        "host_to_board_kBps": bytes_stream / stream_s / 1e3 if stream_s > 0 else None,
        "bytes_sent": int(_sum_sessions(sessions, "bytes_sent")),
        "retries": int(_sum_sessions(sessions, "retries")),
        "samples_sent": samples_sent,
        "samples_acked": samples_acked,
        "samples_scored": samples_scored,
        "no_sample_dropped": balanced,
        "samples_in_flight_at_interruptions": resent,
        "sample_check": last.get("sample_check"),
        "epochs_per_s": streamed / stream_s if stream_s > 0 else None,
        "host_cpu_ms_per_epoch": cpu_s / streamed * 1e3 if streamed else None,
        "reference_cpu_ms_per_epoch": ref_cpu_s / streamed * 1e3 if streamed else None,
        "wall_s": _sum_sessions(sessions, "wall_s"),
        "stream_s": stream_s,
        "sessions": sessions,
        "last_session": {
            k: last.get(k)
            for k in ("status", "epochs", "wall_s", "setup_s", "stream_s", "stream_cpu_s")
        },
    }
    return report


# ------------------------------------------------------------------------------------------
# Rendering


def _f(v, fmt: str = ".3f") -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    return format(v, fmt)


def _scores_rows(name: str, s: dict) -> str:
    f1 = " | ".join(_f(s["per_class_f1"][k]) for k in _S)
    return f"| {name} | {_f(s['acc'])} | {_f(s['macro_f1'])} | {_f(s['kappa'])} | {f1} |"


def _confusion_md(title: str, cm) -> list[str]:
    lines = [f"{title} (rows expert, columns predicted):", ""]
    lines.append("| expert \\ predicted | " + " | ".join(_S) + " |")
    lines.append("|---" * (N_STAGES + 1) + "|")
    for name, row in zip(_S, cm, strict=True):
        lines.append(f"| {name} | " + " | ".join(str(v) for v in row) + " |")
    return [*lines, ""]


def _noise_text(noise: dict | None) -> str:
    if not noise:
        return "none"
    return f"{noise['spec']} (seed {noise['seed']}; statistics: {noise['stats']['source']})"


def _adversarial_text(adv: dict | None) -> str:
    if not adv:
        return "none"
    return (
        f"{adv['attack']} eps {adv['eps_uv']:g} uV (of Fpz-Cz), the int16 wire samples of "
        f"`{adv['file']}` ({adv['crafted_on']})"
    )


def _epochs_text(r: dict) -> str:
    span = r["last_epoch"] - r["first_epoch"] + 1
    subset = "" if span == r["epochs"] else f", {r['epochs']} of them"
    return f"{r['epochs']} (recording epochs {r['first_epoch']}..{r['last_epoch']}{subset})"


def render_markdown(r: dict) -> str:
    """report.md: the same figures as report.json, for people."""
    rec = r["recording"]
    kind = r["counter_kind"]
    cnt = r["count_per_epoch"]
    e = r["energy"]
    lines = [
        f"# Stream report: {Path(rec['path']).name}",
        "",
        f"- Recording: `{rec['path']}` (hypnogram `{rec['hypnogram']}`)",
        f"- **{rec['note']}**",
        f"- Epochs: {_epochs_text(r)}",
        f"- Noise: {_noise_text(r['noise'])}",
        f"- Adversarial epochs: {_adversarial_text(r.get('adversarial'))}",
        f"- Board: {r['board']}, firmware {r['firmware_version']} "
        f"(build {r['firmware_build_hash']:#010x}), model {r['model_hash']}",
        "",
        "## On-chip results against the references",
        "",
        f"- Bit-exact vs TFLite Micro: **{r['bitexact_vs_tflm']:.4f}** "
        f"({r['epochs'] - r['mismatches']} of {r['epochs']} epochs; tolerance: "
        f"{r['bitexact_tolerance']})",
        f"- Stage agreement with the float (ONNX) model: {r['agreement_vs_float']:.4f}",
    ]
    if r["mismatch_list"]:
        lines += ["", "First mismatches (epoch: on-chip scores vs TFLite Micro):", ""]
        for m in r["mismatch_list"][:10]:
            lines.append(f"- epoch {m['epoch']}: actual {m['actual']} expected {m['expected']}")
    lines += [
        "",
        "## Scores against the expert hypnogram",
        "",
        "| model | ACC | macro-F1 | kappa | " + " | ".join(f"F1 {s}" for s in _S) + " |",
        "|---" * (4 + N_STAGES) + "|",
        _scores_rows("on-chip (int8)", r["onchip_vs_expert"]),
        _scores_rows("float (ONNX)", r["float_vs_expert"]),
        "",
        *_confusion_md("On-chip", r["onchip_vs_expert"]["confusion"]),
        *_confusion_md("Float", r["float_vs_expert"]["confusion"]),
    ]
    if rec["simulated"]:
        lines += [
            "These scores are on a simulated recording: they show that the pipeline works, "
            "not how well the model scores real sleep.",
            "",
        ]
    lines += [
        f"## Work on the board (counts are {kind})",
        "",
        "| per epoch | min | median | p99 | max |",
        "|---|---|---|---|---|",
    ]
    for name in ("preprocess", "inference", "total"):
        c = cnt[name]
        lines.append(
            f"| {name} | {c['min']:,} | {c['median']:,.0f} | {c['p99']:,.0f} | {c['max']:,} |"
        )
    lines += [
        "",
        f"- At the board's clock ({r['core_clock_hz'] / 1e6:g} MHz): "
        f"{r['board_s_per_epoch'] * 1e3:.1f} ms per 30-s epoch, real-time factor "
        f"{r['real_time_factor']:.4f} ({_f(r['x_real_time'], '.0f')}x faster than real time); "
        f"assumes {r['real_time_assumes']}.",
        f"- Energy (**estimate**, {e['profile']} / {e['mcu']}): {e['energy_per_epoch_mj']:.2f} mJ "
        f"per epoch, **{e['energy_per_night_j']:.1f} J per 8-h night** "
        f"({e['night_epochs']} epochs), {e['average_current_ua']:.0f} uA average at "
        f"{e['supply_v']:g} V; assumes {e['assumes']}.",
        "",
    ]
    if r["per_layer"]:
        lines += [
            f"### Per layer (epoch {r['per_layer_epoch']}; {r['macs_per_epoch']:,} MACs, "
            f"{_f(r['inference_per_mac'], '.2f')} {kind} per MAC over the inference)",
            "",
            f"| layer | {kind} | MACs | per MAC |",
            "|---|---|---|---|",
        ]
        for row in r["per_layer"]:
            lines.append(
                f"| {row['layer']} | {row['count']:,} | {row['macs']:,} | "
                f"{_f(row['per_mac'], '.2f')} |"
            )
        lines.append("")
    lines += [
        "## Transfer and host",
        "",
        f"- Streamed {_f(r['epochs_per_s'], '.2f')} epochs/s, "
        f"host -> board {_f(r['host_to_board_kBps'], '.1f')} kB/s, "
        f"{r['bytes_sent']:,} bytes sent, {r['retries']} retries",
        "- Samples of the finished sessions: sent "
        f"{r['samples_sent']:,}, acknowledged "
        f"{_f(r['samples_acked'], ',')}, scored {r['samples_scored']:,}: "
        f"{'none dropped' if r['no_sample_dropped'] else 'MISMATCH'} ({r['sample_check']})"
        + _in_flight_text(r["samples_in_flight_at_interruptions"]),
        f"- Host CPU {_f(r['host_cpu_ms_per_epoch'], '.1f')} ms per epoch while streaming "
        f"(of which references {_f(r['reference_cpu_ms_per_epoch'], '.1f')} ms)",
        f"- Wall time {r['wall_s']:.1f} s over {len(r['sessions'])} session(s), "
        f"{r['stream_s']:.1f} s of it streaming",
        "",
        "| session | status | epochs | wall s | setup s | stream s | epochs/s | CPU ms/epoch |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for i, s in enumerate(r["sessions"]):
        eps = s["epochs"] / s["stream_s"] if s.get("stream_s") else None
        cpu = s["stream_cpu_s"] / s["epochs"] * 1e3 if s.get("epochs") else None
        lines.append(
            f"| {i + 1} | {s.get('status')} | {s.get('epochs')} | {_f(s.get('wall_s'), '.1f')} | "
            f"{_f(s.get('setup_s'), '.1f')} | {_f(s.get('stream_s'), '.1f')} | {_f(eps, '.2f')} "
            f"| {_f(cpu, '.1f')} |"
        )
    return "\n".join(lines) + "\n"


def _in_flight_text(samples: int) -> str:
    if not samples:
        return ""
    return f"; {samples:,} samples in flight at interruptions were sent again on resume"


def _sessions_text(r: dict) -> str:
    n = len(r["sessions"])
    return f" over {n} sessions" if n > 1 else ""


def summary_text(r: dict, folder: str | Path) -> str:
    """The few lines printed at the end of a stream."""
    e = r["energy"]
    return "\n".join(
        [
            f"{r['epochs']} epochs of {r['recording']['path']}"
            + (" (simulated)" if r["recording"]["simulated"] else "")
            + (f"; noise {r['noise']['spec']}" if r.get("noise") else "")
            + (
                f"; adversarial {r['adversarial']['attack']} eps {r['adversarial']['eps_uv']:g}"
                if r.get("adversarial")
                else ""
            ),
            f"bit-exact vs TFLite Micro {r['bitexact_vs_tflm']:.4f} ({r['mismatches']} "
            f"mismatches), agreement vs float {r['agreement_vs_float']:.4f}",
            f"vs expert: ACC {r['acc_vs_expert']:.3f}  macro-F1 {r['macro_f1_vs_expert']:.3f}  "
            f"kappa {r['kappa_vs_expert']:.3f}",
            f"{r['counter_kind']} per epoch: median {r['count_per_epoch_median']:,.0f} "
            f"(real-time factor {r['real_time_factor']:.4f} at "
            f"{r['core_clock_hz'] / 1e6:g} MHz); energy estimate "
            f"{e['energy_per_night_j']:.1f} J per 8-h night ({e['profile']})",
            f"wall {r['wall_s']:.1f} s{_sessions_text(r)}, {_f(r['epochs_per_s'], '.2f')} "
            "epochs/s, host CPU "
            f"{_f(r['host_cpu_ms_per_epoch'], '.1f')} ms/epoch, "
            f"{_f(r['host_to_board_kBps'], '.1f')} kB/s; samples sent {r['samples_sent']:,}, "
            f"acked {_f(r['samples_acked'], ',')}, scored {r['samples_scored']:,}: "
            f"{'none dropped' if r['no_sample_dropped'] else 'MISMATCH'}",
            f"report: {Path(folder) / REPORT_MD}",
        ]
    )


def plot_run(path: str | Path, results: Results, meta: dict) -> None:
    """Expert, on-chip and float hypnograms, and the on-chip hypnodensity."""
    import matplotlib.pyplot as plt

    # The private step helpers of sleepdata.plots draw exactly like plot_hypnogram (which takes
    # one predicted hypnogram only).
    from sleepdata.plots import _CLINICAL, _COLORS, _ROW, _save, _steps

    onsets = results.onset_s
    panels = [("expert", results.expert), ("on-chip", results.onchip)]
    panels.append(("float", results.float_stage))
    fig, axes = plt.subplots(4, 1, figsize=(11, 7.8), sharex=True)
    for ax, (name, y) in zip(axes, panels, strict=False):
        ax.plot(*_steps(onsets, _ROW[y]), lw=1, color="black")
        ax.set_yticks(range(len(_CLINICAL)), _CLINICAL)
        ax.set_ylim(len(_CLINICAL) - 0.5, -0.5)
        ax.set_ylabel(name)
    x, p = _steps(onsets, onchip_probs(results, meta))
    axes[-1].stackplot(x, p.T, labels=STAGE_NAMES, colors=_COLORS, lw=0)
    axes[-1].set_ylim(0, 1)
    axes[-1].set_ylabel("on-chip\nhypnodensity")
    axes[-1].legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize="small")
    axes[-1].set_xlabel(f"hours from epoch {int(results.epoch[0])}")
    rec = meta["recording"]
    sim = " (simulated recording)" if rec["simulated"] else ""
    axes[0].set_title(f"{Path(rec['path']).name}{sim}: {meta['board']['board']}")
    _save(fig, path)


def write_edf(path: str | Path, results: Results, meta: dict) -> None:
    """The on-chip stages as a Sleep-EDF style EDF+ hypnogram (sleepdata.hypnogram format).

    It starts at the PSG's start, like Sleep-EDF hypnograms: the time before the first streamed
    epoch and any gaps between kept epochs are "Sleep stage ?"."""
    from sleepdata.hypnogram import write_hypnogram
    from sleepdata.stages import UNSCORED

    start = dt.datetime.fromisoformat(meta["recording"]["start"])
    onsets = results.onset_s
    if not np.allclose(onsets / EPOCH_S, np.rint(onsets / EPOCH_S)):
        # onsets off the 30-s grid from the PSG start: the file starts at the first epoch
        start += dt.timedelta(seconds=float(onsets[0]))
        onsets = onsets - onsets[0]
    slots = np.rint(onsets / EPOCH_S).astype(np.int64)
    grid = np.full(int(slots[-1]) + 1, UNSCORED, dtype=np.int8)
    grid[slots] = results.onchip
    tmp = Path(path).with_suffix(".edf.part")
    write_hypnogram(tmp, start, grid, patient="host_tools_stream_onchip_stages")
    tmp.replace(path)


def write_tsv(path: str | Path, results: Results, meta: dict) -> None:
    """The on-chip stages as TSV (sleepdata.hypnogram.write_stage_tsv), p(stage) from the
    on-chip scores."""
    from sleepdata.hypnogram import write_stage_tsv

    probs = onchip_probs(results, meta)
    write_stage_tsv(path, results.onset_s, results.expert, results.onchip, probs)


def write_outputs(
    folder: str | Path, results: Results, meta: dict, *, figures: bool = True
) -> dict:
    """report.json, report.md and (``figures``) hypnogram.png and the on-chip hypnogram (EDF+,
    TSV)."""
    folder = Path(folder)
    report = build_report(results, meta)
    tmp = folder / (REPORT_JSON + ".part")
    tmp.write_text(json.dumps(report, indent=1) + "\n")
    tmp.replace(folder / REPORT_JSON)
    (folder / REPORT_MD).write_text(render_markdown(report))
    if figures:
        plot_run(folder / PLOT, results, meta)
        write_edf(folder / EDF, results, meta)
        write_tsv(folder / TSV, results, meta)
    return report


def render_folder(folder: str | Path) -> dict:
    """``host_tools report DIR``: every output again from results.csv + run.json."""
    folder = Path(folder)
    meta = read_meta(folder)
    if not (folder / RESULTS).is_file():
        raise RunFolderError(f"{folder / RESULTS} does not exist")
    return write_outputs(folder, read_results(folder / RESULTS), meta)
