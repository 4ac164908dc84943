"""The run's on-chip hypnogram in other forms: ``hypnogram.png`` (expert, on-chip and float
hypnograms and the on-chip hypnodensity), an EDF+ hypnogram and a TSV (sleepdata.hypnogram's
formats)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np

from sleepdata.layout import EPOCH_S
from sleepdata.tflm import int8_probs

from .runfolder import Results


def onchip_probs(results: Results, meta: dict) -> np.ndarray:
    """Hypnodensity from the board's int8 scores: softmax of the dequantised logits."""
    q = meta["model"]["output_quantisation"]
    return int8_probs(results.onchip_scores, q["scale"], q["zero_point"])


def plot_run(path: str | Path, results: Results, meta: dict) -> None:
    """Expert, on-chip and float hypnograms, and the on-chip hypnodensity."""
    from sleepdata.plots import plot_hypnograms

    rec = meta["recording"]
    sim = " (simulated recording)" if rec["simulated"] else ""
    plot_hypnograms(
        path,
        results.onset_s,
        [("expert", results.expert), ("on-chip", results.onchip), ("float", results.float_stage)],
        probs=onchip_probs(results, meta),
        probs_label="on-chip\nhypnodensity",
        title=f"{Path(rec['path']).name}{sim}: {meta['board']['board']}",
        xlabel=f"hours from epoch {int(results.epoch[0])}",
    )


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
