"""The report layer of a stream run folder: every figure of a run (``report.json``) from its
``results.csv`` + ``run.json`` (host_tools.runfolder), then ``report.md`` (host_tools.rendering)
and the hypnogram exports (host_tools.exports).

``host_tools report DIR`` re-renders a folder from those two files alone (no board, no model
runtime), the faults section of a ``--faults`` stream included. What every figure means:
docs/streaming.md. Nothing here prints.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from sleepdata import provenance
from sleepdata.layout import EPOCH_S, EPOCH_SAMPLES
from sleepdata.metrics import scores
from sleepdata.stages import STAGE_NAMES

from .exports import plot_run, write_edf, write_tsv
from .power import energy_estimate
from .rendering import render_markdown
from .runfolder import (
    EDF,
    PLOT,
    REPORT_JSON,
    REPORT_MD,
    RESULTS,
    TSV,
    Results,
    RunFolderError,
    read_meta,
    read_results,
)

_S = STAGE_NAMES
MAX_LISTED_MISMATCHES = 100


def _stats(x: np.ndarray) -> dict:
    x = np.asarray(x, dtype=np.float64)
    return {
        "min": int(x.min()),
        "median": float(np.median(x)),
        "p99": float(np.percentile(x, 99)),
        "max": int(x.max()),
    }


def _sum_sessions(sessions: list[dict], key: str) -> float:
    return float(sum(s.get(key) or 0 for s in sessions))


def _recorded(session: dict) -> bool:
    """Whether the session wrote its end record (a killed one, SIGKILL or a power cut, did
    not: its status stays "running" and it has no sample counts)."""
    return "samples_sent" in session


def sample_figures(sessions: list[dict], n_rows: int) -> dict:
    """report.json's sample check over every session of a run whose results.csv holds
    ``n_rows`` epochs.

    Cumulative over the sessions: a session that wrote its end record counts what it
    recorded; the epochs of sessions that did not (killed) are the rows of results.csv no
    recorded session accounts for, each counted as sent, acknowledged and scored (what was in
    flight when it was killed is not known; resume sends it again). An interrupted session
    leaves samples in flight (sent, not scored) that resume sends again; they are not
    dropped. ``no_sample_dropped``: sent minus those in flight equals scored, scored equals
    the rows of results.csv, and every complete session's samples were all acknowledged."""
    recorded = [s for s in sessions if _recorded(s)]
    missing = len(sessions) - len(recorded)
    sent = int(_sum_sessions(recorded, "samples_sent"))
    scored = int(_sum_sessions(recorded, "samples_scored"))
    acked_each = [s.get("samples_acked") for s in recorded]
    acked = None if None in acked_each else int(sum(acked_each))
    in_flight = int(
        sum(
            s["samples_sent"] - s.get("samples_scored", 0)
            for s in recorded
            if s.get("status") != "complete"
        )
    )
    recovered = max(0, n_rows * EPOCH_SAMPLES - scored) if missing else 0
    sent, scored = sent + recovered, scored + recovered
    if acked is not None:
        acked += recovered
    complete_acked = all(
        s.get("samples_acked") in (None, s["samples_sent"])
        for s in recorded
        if s.get("status") == "complete"
    )
    return {
        "samples_sent": sent,
        "samples_acked": acked,
        "samples_scored": scored,
        "no_sample_dropped": bool(
            sent - in_flight == scored and scored == n_rows * EPOCH_SAMPLES and complete_acked
        ),
        "samples_in_flight_at_interruptions": in_flight,
        "samples_recovered_from_results": recovered,
        "sessions_without_record": missing,
    }


def _as_reported(sessions: list[dict], epochs: np.ndarray) -> list[dict]:
    """The sessions as report.json lists them: one without an end record gets the number of
    its rows in results.csv (those from its first epoch up to the next session's) and says
    that it ended without a record."""
    out = []
    for i, s in enumerate(sessions):
        if _recorded(s) or "first_epoch" not in s:
            out.append(s)
            continue
        nxt = sessions[i + 1].get("first_epoch") if i + 1 < len(sessions) else None
        hi = len(epochs) if nxt is None else int(np.searchsorted(epochs, nxt))
        rows = hi - int(np.searchsorted(epochs, s["first_epoch"]))
        out.append({**s, "status": "ended without a record (killed?)", "epochs": rows})
    return out


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
    sessions = _as_reported(meta.get("sessions", []), results.epoch)
    stream_s = _sum_sessions(sessions, "stream_s")
    # per-epoch rates over the sessions that recorded their time (not the killed ones)
    streamed = _sum_sessions([s for s in sessions if _recorded(s)], "epochs")
    bytes_stream = _sum_sessions(sessions, "stream_bytes")
    cpu_s = _sum_sessions(sessions, "stream_cpu_s")
    ref_cpu_s = _sum_sessions(sessions, "reference_cpu_s")
    samples = sample_figures(sessions, n)
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
    model_macs = lc.get("model_macs") if lc else None
    report = {
        "recording": {
            "path": rec["path"],
            "hypnogram": rec["hypnogram"],
            "simulated": rec["simulated"],
            # run folders written before provenance was recorded: from the file, if still there
            "data_provenance": rec.get("data_provenance") or _provenance(rec["path"]),
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
        # per MAC of the trained network (what peers divide by), when the graph composes its
        # shortcut streams and computes fewer
        "model_macs_per_epoch": model_macs,
        "inference_per_model_mac": round(float(np.median(results.inference_count)) / model_macs, 2)
        if model_macs
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
        "energy": energy_estimate(median_total, kind, _cycles_per_instruction(meta)),
        "cycles_estimate": meta.get("cycles_estimate"),
        "host_to_board_kBps": bytes_stream / stream_s / 1e3 if stream_s > 0 else None,
        "bytes_sent": int(_sum_sessions(sessions, "bytes_sent")),
        "retries": int(_sum_sessions(sessions, "retries")),
        **samples,
        "sample_check": next(
            (s["sample_check"] for s in reversed(sessions) if s.get("sample_check")), None
        ),
        "link": link_figures(sessions, streamed, bytes_stream, n),
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
    if meta.get("faults"):  # a --faults stream: what was injected and what it took
        report["faults"] = {**meta["faults"], "epochs_scored": n}
    return report


#: bytes on the wire per epoch in raw SAMPLES frames of 125 samples: 24 x (8 + 6 + 1000 + 4)
RAW_BYTES_PER_EPOCH = 24 * (8 + 6 + 8 * 125 + 4)
#: UART rates of the projection: a classic default, the ST-LINK virtual COM port's usual rate,
#: and about the most it sustains
PROJECTED_BAUDS = (115_200, 921_600, 2_250_000)


def link_figures(sessions: list[dict], streamed: float, bytes_stream: float, n: int) -> dict:
    """What the samples took on the link (docs/protocol.md, Versions and Coded samples): the
    wire choice, bytes per epoch against raw frames, the board's receive count per epoch (from
    its STATUS at the end of each complete session on a version-4 board) and the seconds a
    night of ``n`` epochs needs at real UART rates (10 bits per byte: 8N1), raw and as sent."""
    last = sessions[-1] if sessions else {}
    per_epoch = bytes_stream / streamed if streamed else None
    stored = sum(s.get("samples_stored") or 0 for s in sessions)
    count = sum(s.get("receive_count") or 0 for s in sessions if s.get("samples_stored"))
    projection = {
        str(baud): {
            "raw_s": round(RAW_BYTES_PER_EPOCH * n * 10 / baud, 1),
            "as_sent_s": round(per_epoch * n * 10 / baud, 1) if per_epoch else None,
        }
        for baud in PROJECTED_BAUDS
    }
    return {
        "wire": last.get("wire", "raw"),  # (runs before version 4: raw, the only wire)
        "samples_coded": last.get("samples_coded"),
        "protocol_version": last.get("protocol_version"),
        "bytes_per_epoch": per_epoch,
        "raw_bytes_per_epoch": RAW_BYTES_PER_EPOCH,
        "ratio_vs_raw": RAW_BYTES_PER_EPOCH / per_epoch if per_epoch else None,
        "board_receive_count_per_epoch": count / (stored / EPOCH_SAMPLES) if stored else None,
        "receive_count_note": "counter units (as counter_kind) the board's service spent "
        "storing the samples it received, decoding included, per 3000 samples stored (resent "
        "ones count again); beside the preprocessing and the inference",
        "night_s_at_baud": projection,
        "night_epochs": n,
    }


def _cycles_per_instruction(meta: dict) -> float | None:
    """The nucleo-l476rg cycles per instruction of the run's cycle estimate, if one was made."""
    ce = meta.get("cycles_estimate") or {}
    if not ce.get("made"):
        return None
    return ce["per_epoch"]["cycles_per_instruction"].get("nucleo-l476rg")


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


def _provenance(psg: str) -> dict | None:
    """The provenance of the PSG file at ``psg``, None when it is gone."""
    try:
        return provenance.describe([psg])
    except OSError:
        return None
