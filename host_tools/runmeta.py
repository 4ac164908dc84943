"""run.json of a stream: what a resumed run must share with the run it continues (the plan),
what was streamed to which board (the recording, the noise, the model, the board's INFO), and
the checks that a ``--resume`` continues the same run in the same folder
(host_tools.runfolder holds the file formats).
"""

from __future__ import annotations

import hashlib
import os
import platform
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from sleepdata import provenance
from sleepdata.adversarial import AdversarialEpochs
from sleepdata.noise import SignalStats

from . import __version__
from . import runfolder as rf
from .inputs import StreamError
from .protocol import CounterKind, Info
from .reference import ModelFiles

if TYPE_CHECKING:
    from .stream import StreamOptions


def plan_meta(
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


def new_meta(pair, rec, plan_meta, options, stats, model, refs, board_meta, adv) -> dict:
    """run.json of a new run (its sessions are appended as they start)."""
    kind = provenance.kind_of(pair.psg)
    simulated = kind == provenance.SIMULATED
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
            "data_provenance": provenance.describe([pair.psg]),
            "note": (
                "simulated recording (sleepdata.simulator): the figures show that the pipeline "
                "works; they are not results on real sleep data"
                if simulated
                else f"real recording ({kind}; not produced by this toolkit's simulator)"
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


def board_meta(info: Info, port_label: str) -> dict:
    """run.json's "board": the board's INFO as the report needs it."""
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


def noise_stats(config: dict, rec) -> SignalStats:
    """The training split's statistics from config.json, else (documented in
    docs/streaming.md) those of the recording being streamed."""
    return SignalStats.from_config(config) or SignalStats.fit(
        rec.epochs,
        source=(
            f"this recording's {len(rec)} kept epochs (config.json has no training-split "
            "signal_stats)"
        ),
    )


def check_continuation(out: Path, meta: dict, info: Info, stats: SignalStats | None) -> None:
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


def open_folder(out: Path, plan: dict, resume: bool) -> tuple[dict | None, rf.Results]:
    """(stored run.json or None, rows already done); checks that resume continues the same
    run."""
    results_path = out / rf.RESULTS
    has_rows = results_path.is_file() and results_path.stat().st_size > 0
    if not resume:
        if has_rows or (out / rf.RUN).is_file():
            raise StreamError(
                f"{out} already holds a run ({rf.RESULTS}, {rf.RUN}); continue it with "
                "--resume or choose another --out"
            )
        return None, rf.Results()
    if not (out / rf.RUN).is_file():
        if has_rows:
            raise StreamError(f"{out} has {rf.RESULTS} but no {rf.RUN}: it cannot be resumed")
        return None, rf.Results()
    meta = rf.read_meta(out)
    stored = meta.get("plan", {})
    diff = [k for k in plan if stored.get(k) != plan[k]]
    if diff:
        detail = "; ".join(f"{k}: run {stored.get(k)!r}, now {plan[k]!r}" for k in diff)
        raise StreamError(
            f"--resume: {out} was streamed with other settings ({detail}); pass the same "
            "recording and options, or choose another --out"
        )
    done = rf.read_results(results_path, repair=True) if has_rows else rf.Results()
    return meta, done
