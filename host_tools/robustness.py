"""``host_tools robustness --run DIR``: the noise robustness of a ``python -m training
robustness`` run, measured on a board.

``training robustness`` scores a model's test epochs under noise with the float model and the
int8 model on TensorFlow Lite Micro, and records in DIR/results.json exactly which epochs it
scored (per test recording, the kept-epoch indices of its main and attack subsets), the
training-split statistics and the noise seed. This operation streams the same epochs to ONE
board with the same noise, condition by condition:

- no noise: the union of both subsets, one stream per night (the "no noise" and "no noise
  (attack subset)" rows select their epochs from it);
- gaussian / gaussian-mean / shot at each level: the main subset, noise drawn on the host by
  ``sleepdata.noise`` with the run's statistics and seed (epoch i of a recording from
  ``epoch_rng(seed, i)``): the same int16 wire samples the TFLM column of the run saw;
- each attack and eps with files in DIR/adversarial/<attack>-eps<E>/<record>.npz: the attack
  subset, the files' wire samples (``host_tools stream --adversarial``).

A run whose inputs were band-passed on the host (results.json ``test_time_filter``: REST's
Blanco model) streams, for every condition but the attacks, the filtered wire samples that
``training robustness --write-adversarial`` wrote to DIR/filtered/<condition>/<record>.npz
(this package has no filter and adds no noise of its own to them).

Each stream is a ``host_tools stream`` run folder OUT/<condition>/<record> (results.csv,
run.json, report.json, report.md; the hypnogram figures are skipped for speed). Running the
same command again continues where it stopped. OUT/onchip.json holds per condition the on-chip
ACC / macro-F1 / kappa against the expert, TFLite Micro's int8 figures on the same epochs, the
bit-exact fraction and the median count per epoch; OUT/table.md is the run's table with the
"on chip" column filled. ``max_epochs`` keeps the first N epochs of each subset, pooled over the
recordings in results.json's order. Nothing here prints; progress goes to
``sleepdata.progress`` (a bar on a terminal, plain lines in a log).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from sleepdata.metrics import scores
from sleepdata.noise import KINDS, NoiseSpec, SignalStats
from sleepdata.psg import RecordingPair, discover_pairs

from . import runfolder as rf
from .device import Device
from .inputs import StreamError, check_adversarial, read_adversarial_file
from .reference import TFLITE, ModelFiles
from .stream import StreamOptions, stream

ONCHIP_JSON = "onchip.json"
TABLE_MD = "table.md"
RESULTS_JSON = "results.json"


class SweepError(StreamError):
    """A robustness run folder, model or data that do not fit together; says what to do."""


@dataclass(frozen=True)
class Night:
    """One test recording of the run and its two subsets of kept-epoch indices."""

    name: str
    pair: RecordingPair
    main: np.ndarray
    attack: np.ndarray


@dataclass
class Job:
    """One ``stream`` run folder: ``indices`` of ``night`` with ``options``."""

    folder: Path
    night: Night
    indices: np.ndarray
    options: StreamOptions


@dataclass
class Condition:
    """One row of results.json, the epochs it covers per night and the folders holding them."""

    host: dict
    subset: str  # "main" or "attack"
    slug: str
    select: dict[str, np.ndarray] = field(default_factory=dict)  # night -> indices
    skipped: str | None = None


@dataclass
class Sweep:
    run_dir: Path
    out: Path
    run: dict
    model: ModelFiles
    nights: list[Night]
    conditions: list[Condition]
    jobs: list[Job]
    max_epochs: int | None

    @property
    def total_epochs(self) -> int:
        return int(sum(len(j.indices) for j in self.jobs))


# ------------------------------------------------------------------------------------------
# Planning (no board needed: every error comes before one is started)


def load_run(run_dir: str | Path) -> dict:
    path = Path(run_dir) / RESULTS_JSON
    if not path.is_file():
        raise SweepError(
            f"{path} does not exist: --run must be the --out folder of "
            "python -m training robustness"
        )
    try:
        run = json.loads(path.read_text())
    except ValueError as exc:
        raise SweepError(f"{path}: not JSON ({exc})") from None
    for key in ("recordings", "signal_stats", "noise_seed", "conditions"):
        if key not in run:
            raise SweepError(
                f"{path} has no {key!r}: it does not record exactly which epochs were scored "
                "(an older training robustness); run python -m training robustness again"
            )
    return run


def _model(run: dict, run_dir: Path, model: str | Path | None) -> ModelFiles:
    folder = Path(model) if model else Path(run["model"])
    if not (folder / TFLITE).is_file() and not model:
        raise SweepError(
            f"{folder / TFLITE} (the model of {run_dir / RESULTS_JSON}) does not exist: pass "
            "--model the model folder the run was made with"
        )
    files = ModelFiles.load(folder)
    want = run.get("int8_model_sha256")
    got = hashlib.sha256(files.tflite).hexdigest()
    if want and got != want:
        raise SweepError(
            f"{folder / TFLITE} (SHA-256 {got[:16]}...) is not the int8 model "
            f"{run_dir / RESULTS_JSON} was scored with ({want[:16]}...): pass --model the "
            "folder of that model"
        )
    return files


def _nights(run: dict, run_dir: Path, data: str | Path | None) -> list[Night]:
    found = {p.name: p for p in discover_pairs(data)} if data else {}
    nights = []
    for name, r in run["recordings"].items():
        if data:
            if name not in found:
                raise SweepError(
                    f"{data} holds no recording {name} (a test recording of {run_dir}); pass "
                    "--data the folder the run was made from"
                )
            pair = found[name]
        else:
            pair = RecordingPair(Path(r["psg"]), Path(r["hypnogram"]))
            for path in (pair.psg, pair.hypnogram):
                if not path.is_file():
                    raise SweepError(
                        f"{path} does not exist: pass --data the folder holding {name}"
                    )
        main = np.asarray(r["main"], dtype=np.int64)
        attack = np.asarray(r["attack"], dtype=np.int64)
        nights.append(Night(name, pair, main, attack))
    if not nights:
        raise SweepError(f"{run_dir / RESULTS_JSON} records no test recording")
    return nights


def first_pooled(nights: list[Night], subset: str, n: int | None) -> dict[str, np.ndarray]:
    """Per night, the indices of ``subset`` among the first ``n`` of it pooled over the nights
    in order (all: None)."""
    out, left = {}, n
    for night in nights:
        idx = getattr(night, subset)
        keep = idx if left is None else idx[: max(left, 0)]
        out[night.name] = keep
        if left is not None:
            left -= len(keep)
    return out


def _slug(c: dict) -> tuple[str, str, str | None]:
    """(folder name, subset, attack name or None) of a results.json condition."""
    kind = c["kind"]
    if kind == "none":
        return "none", "main", None
    if kind == "none (attack subset)":
        return "none", "attack", None
    if kind in KINDS:
        return f"{kind}-{c['level']}", "main", None
    if kind.startswith("adversarial "):
        attack = kind.split(" ", 1)[1]
        return f"{attack}-eps{c['value']:g}", "attack", attack
    raise SweepError(f"results.json condition {kind!r} is not one this tool knows")


def plan_sweep(
    run_dir: str | Path,
    out: str | Path,
    *,
    model: str | Path | None = None,
    data: str | Path | None = None,
    max_epochs: int | None = None,
) -> Sweep:
    """Every stream of the sweep, checked against the run, the model and the data."""
    run_dir, out = Path(run_dir), Path(out)
    if max_epochs is not None and max_epochs < 1:
        raise SweepError(f"--max-epochs {max_epochs}: keep at least one epoch")
    run = load_run(run_dir)
    files = _model(run, run_dir, model)
    nights = _nights(run, run_dir, data)
    stats = SignalStats.from_dict(run["signal_stats"])
    seed = int(run["noise_seed"])
    cut = {s: first_pooled(nights, s, max_epochs) for s in ("main", "attack")}
    filtered = run.get("test_time_filter")
    conditions: list[Condition] = []
    wanted: dict[tuple[str, str], dict] = {}  # (slug, night) -> indices, options
    for c in run["conditions"]:
        slug, subset, attack = _slug(c)
        cond = Condition(c, subset, slug)
        conditions.append(cond)
        noise, files_dir = None, None
        if filtered and attack is None:  # band-passed on the host: stream training's samples
            files_dir = run_dir / "filtered" / slug
            if not files_dir.is_dir():
                raise SweepError(
                    f"{run_dir}: its inputs were band-passed on the host "
                    f"({filtered.get('low_hz')}-{filtered.get('high_hz')} Hz), which host_tools "
                    f"cannot do, and {files_dir} is missing: re-run python -m training "
                    "robustness with --write-adversarial, which writes the filtered samples"
                )
        elif c["kind"] in KINDS:
            noise = NoiseSpec(c["kind"], float(c["value"]))
        if attack is not None:
            files_dir = run_dir / "adversarial" / slug
            if not files_dir.is_dir():
                cond.skipped = (
                    f"no adversarial files in {files_dir} (python -m training robustness "
                    "--write-adversarial writes them)"
                )
                continue
        for night in nights:
            idx = cut[subset][night.name]
            if not len(idx):
                continue
            adversarial = None
            if files_dir is not None:
                adversarial = files_dir / f"{night.name}.npz"
                check_adversarial(read_adversarial_file(adversarial), night.name, files)
            cond.select[night.name] = idx
            key = (slug, night.name)
            if key in wanted:
                wanted[key]["indices"] = np.union1d(wanted[key]["indices"], idx)
                continue
            wanted[key] = {
                "night": night,
                "indices": idx,
                "options": StreamOptions(
                    hypnogram=night.pair.hypnogram,
                    noise=noise,
                    seed=seed if noise is not None else 0,
                    stats=stats if noise is not None else None,
                    adversarial=adversarial,
                    resume=True,
                    model_dir=files.folder,
                    figures=False,
                ),
            }
    jobs = []
    for (slug, name), w in wanted.items():
        opts = w["options"]
        indices = tuple(int(i) for i in w["indices"])
        jobs.append(
            Job(
                out / slug / name,
                w["night"],
                w["indices"],
                replace(opts, indices=indices),
            )
        )
    return Sweep(run_dir, out, run, files, nights, conditions, jobs, max_epochs)


# ------------------------------------------------------------------------------------------
# Streaming and scoring


def _rows_done(folder: Path) -> int:
    path = folder / rf.RESULTS
    return len(rf.read_results(path)) if path.is_file() else 0


def run_sweep(
    device: Device,
    sweep: Sweep,
    *,
    port_label: str = "",
    progress: bool = True,
    on_stream: Callable[[Job], None] | None = None,
) -> dict:
    """Stream every job of ``sweep`` to ``device`` (continuing folders already there), then
    write OUT/onchip.json and OUT/table.md; returns onchip.json's content."""
    from sleepdata.progress import progress as progress_bar

    t0 = time.perf_counter()
    sweep.out.mkdir(parents=True, exist_ok=True)
    bar = progress_bar(total=sweep.total_epochs, unit="epoch", desc="on chip", disable=not progress)
    streamed = 0

    def on_result(row, done, total) -> None:
        nonlocal streamed
        streamed += 1
        bar.update(1)

    try:
        for job in sweep.jobs:
            # (an attribute both a tqdm bar and sleepdata.progress's plain lines read)
            bar.desc = f"{job.folder.parent.name} {job.night.name}"
            bar.update(min(_rows_done(job.folder), len(job.indices)))
            if on_stream is not None:
                on_stream(job)
            stream(
                device,
                job.night.pair.psg,
                job.folder,
                job.options,
                port_label=port_label,
                on_result=on_result,
            )
    finally:
        bar.close()
    result = summarise(sweep)
    result["this_session"] = {
        "wall_s": time.perf_counter() - t0,
        "epochs_streamed": streamed,
        "s_per_epoch": (time.perf_counter() - t0) / streamed if streamed else None,
    }
    write_outputs(sweep, result)
    return result


def _folder_results(folder: Path) -> tuple[rf.Results, dict]:
    return rf.read_results(folder / rf.RESULTS), rf.read_meta(folder)


def summarise(sweep: Sweep) -> dict:
    """onchip.json's content from the run folders (every job must be complete)."""
    cache: dict[Path, tuple[rf.Results, dict]] = {}
    conditions, board, counter_kind = [], None, None
    truncated = False
    for cond in sweep.conditions:
        c = cond.host
        entry = {
            "kind": c["kind"],
            "level": c["level"],
            "value": c["value"],
            "subset": cond.subset,
            "n_epochs_host": c["n_epochs"],
        }
        if cond.skipped:
            conditions.append({**entry, "n_epochs": 0, "skipped": cond.skipped})
            continue
        parts, folders, wall = [], [], 0.0
        for night in sweep.nights:
            if night.name not in cond.select:
                continue
            folder = sweep.out / cond.slug / night.name
            if folder not in cache:
                cache[folder] = _folder_results(folder)
            res, meta = cache[folder]
            board = board or meta["board"]
            counter_kind = meta["board"]["counter_kind"]
            want = cond.select[night.name]
            pos = np.searchsorted(res.epoch, want)
            ok = (pos < len(res)) & (res.epoch[np.minimum(pos, len(res) - 1)] == want)
            if not len(res) or not ok.all():
                raise SweepError(
                    f"{folder / rf.RESULTS} lacks {int((~ok).sum())} of the {len(want)} "
                    "epochs of this condition: run the same command again to complete it"
                )
            parts.append(pos)
            folders.append(str(folder.relative_to(sweep.out)))
            wall += sum(s.get("wall_s") or 0.0 for s in meta.get("sessions", []))

        def cat(attr: str, parts=parts, cond=cond) -> np.ndarray:
            names = [n.name for n in sweep.nights if n.name in cond.select]
            return np.concatenate(
                [
                    getattr(cache[sweep.out / cond.slug / name][0], attr)[pos]
                    for name, pos in zip(names, parts, strict=True)
                ]
            )

        expert, onchip, tflm = cat("expert"), cat("onchip"), cat("tflm")
        bitexact = cat("bitexact")
        count = cat("preprocess_count") + cat("inference_count")
        on, tf = scores(expert, onchip), scores(expert, tflm)
        for s in (on, tf):
            s.pop("confusion", None)
        n = len(expert)
        truncated |= n < c["n_epochs"]
        host_int8 = c.get("int8", {}).get("macro_f1")
        conditions.append(
            {
                **entry,
                "n_epochs": n,
                "onchip": on,
                "tflm_int8": tf,
                "host": {
                    "float_macro_f1": c.get("float", {}).get("macro_f1"),
                    "int8_macro_f1": host_int8,
                },
                "onchip_equals_tflm": bool(on["macro_f1"] == tf["macro_f1"]),
                "tflm_equals_host_int8": _same_f1(tf["macro_f1"], host_int8)
                if "int8" in c and n == c["n_epochs"]
                else None,
                "bitexact": float(bitexact.mean()),
                "mismatches": int((~bitexact).sum()),
                "count_per_epoch_median": float(np.median(count)),
                "runs": folders,
                "wall_s": wall,
            }
        )
    measured = [c for c in conditions if not c.get("skipped")]
    n_all = sum(c["n_epochs"] for c in measured)
    return {
        "format": 1,
        "run": str(sweep.run_dir),
        "model": str(sweep.model.folder),
        "model_hash": sweep.model.model_hash.hex(),
        "board": board,
        "counter_kind": counter_kind,
        "noise_seed": sweep.run["noise_seed"],
        "signal_stats_source": sweep.run["signal_stats"].get("source"),
        "max_epochs": sweep.max_epochs,
        "truncated": truncated,
        "epochs_streamed_total": sweep.total_epochs,
        "note": (
            (
                f"--max-epochs {sweep.max_epochs}: the first {sweep.max_epochs} epochs of each "
                "subset, pooled over the recordings in results.json's order; conditions with "
                "fewer epochs than the host figures (n_epochs < n_epochs_host) are not "
                "comparable with them, only with tflm_int8 on the same epochs. "
                if truncated
                else "the same epochs as the host figures. "
            )
            + "Noise drawn on the host as in training robustness (same statistics and seed); "
            "adversarial conditions stream the files' wire samples."
            + (
                " Simulated nights: the figures say that the pipeline works, not how well the "
                "model scores real sleep."
                if sweep.run.get("data_provenance", {}).get("data") == "simulated"
                else ""
            )
        ),
        "data_provenance": sweep.run.get("data_provenance"),
        "all_bitexact": all(c["bitexact"] == 1.0 for c in measured),
        "epochs_scored": n_all,
        "conditions": conditions,
    }


def _same_f1(a: float | None, b: float | None) -> bool:
    """Whether two macro-F1 are equal; undefined ones (None: one stage throughout) equal each
    other only."""
    if a is None or b is None:
        return a is None and b is None
    return bool(np.isclose(a, b, rtol=0, atol=1e-12))


def write_outputs(sweep: Sweep, result: dict) -> None:
    from sleepdata.robustness_report import render_table

    tmp = sweep.out / (ONCHIP_JSON + ".part")
    tmp.write_text(json.dumps(result, indent=1) + "\n")
    tmp.replace(sweep.out / ONCHIP_JSON)
    table = render_table(
        {"float": sweep.run, "int8": sweep.run}, models=False, onchip={"float": result}
    )
    (sweep.out / TABLE_MD).write_text(table)
