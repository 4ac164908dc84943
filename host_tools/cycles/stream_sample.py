"""The stream report's ``cycles_estimate``: a sample of a finished run's epochs (first, middle,
last) sent again, the same input to the same firmware, to a fresh emulated board under the trace
plugin. The estimate's instruction counts must equal the run's own counts of those epochs, which
proves it is of the code and input the run counted."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .errors import CyclesError
from .estimate import LABEL, estimate_epochs
from .memory import load_settings


def sample_positions(n: int, k: int) -> list[int]:
    """``k`` positions spread over ``n`` rows: first, last and evenly between."""
    if n == 0 or k <= 0:
        return []
    return sorted({round(x) for x in np.linspace(0, n - 1, min(k, n))})


def estimate_run_sample(
    folder: str | Path,
    *,
    board: str,
    elf: Path | None,
    model,
    model_dir: str | Path | None,
    n: int = 3,
) -> dict:
    """The ``cycles_estimate`` section of run folder ``folder`` (a plain stream on an emulated
    board: a noisy or adversarial stream's input is not re-created here, and says so)."""
    from sleepdata.normalise import Normaliser
    from sleepdata.psg import load_recording, pair_for

    from ..inputs import wire_epochs
    from ..runfolder import RESULTS, read_meta, read_results

    folder = Path(folder)
    meta = read_meta(folder)
    if meta.get("noise") or meta.get("adversarial"):
        return {"made": False, "why": "estimated for clean streams only (the input is re-sent)"}
    results = read_results(folder / RESULTS)
    pos = sample_positions(len(results), n)
    epochs = results.epoch[pos]
    rec = load_recording(pair_for(meta["recording"]["path"], meta["recording"]["hypnogram"]))
    norm = Normaliser.from_dict(model.config["normalisation"])
    wire = wire_epochs(rec.epochs, epochs, norm).transpose(0, 2, 1)
    est = estimate_epochs(wire, board=board, elf=elf, model=model, model_dir=model_dir)
    run_counts = [int(c) for c in results.inference_count[pos]]
    # the run's per-layer epoch was counted with per-layer profiling on
    profiled = (meta.get("layer_counts") or {}).get("epoch")
    traced = [
        p if int(e) == profiled else u
        for e, u, p in zip(
            epochs,
            est["per_epoch_instructions"],
            est["per_epoch_instructions_profiled"],
            strict=True,
        )
    ]
    if traced != run_counts:
        raise CyclesError(
            f"{folder}: epochs {epochs.tolist()} counted {run_counts} instructions in the run "
            f"and {traced} when re-sent for the estimate: the firmware "
            "or the input differs"
        )
    settings = load_settings()
    return {
        "made": True,
        "estimate": LABEL,
        "model": model.folder.name,
        "model_hash": model.model_hash.hex(),
        "epochs": [int(e) for e in epochs],
        "instructions_equal_run_counts": True,
        "memory_settings": {k: s.description for k, s in settings.items()},
        "per_epoch": est["per_epoch"],
        "per_layer": est["per_layer"],
        "seconds": est["seconds"]["total"],
    }
