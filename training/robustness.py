"""REST's noise evaluation (Duggal et al., WWW 2020, https://arxiv.org/abs/2001.11363,
Table 4) of one model folder, float and int8.

``python -m training robustness --model DIR --data DIR --out DIR`` scores the model's held-out
test subjects (the split stored in its config.json) under:

- no noise;
- Gaussian noise c_g = 0.1 / 0.2 / 0.3 (zero-mean, paper eq. 8; and with the training mean,
  REST code) and shot noise c_s = 5000 / 2500 / 1000, drawn by ``sleepdata.noise`` exactly as
  ``host_tools stream --noise`` draws them (per-channel training statistics, epoch ``i`` of a
  recording from ``epoch_rng(seed, i)``), so the host and on-chip figures see the same noisy
  wire samples;
- white-box attacks at eps 2 / 6 / 12 uV (of Fpz-Cz, scaled per channel), each named by its
  source (training/rest.py ``ATTACKS``: ``paper`` eq. 2, ``rest-code``, ``pgd``), crafted on
  the float model through the differentiable deployment input path, then rounded to int16 wire
  samples; the int8 model gets the same wire samples (a transfer attack for it: the int8 model
  has no gradient).

With ``bandpass`` (REST's "Blanco" model: the Liu model plus a test-time 0.5-40 Hz band-pass,
``training.filters``) every input, noisy or attacked, is filtered in microvolts before the int8
conversion; attacks are crafted on the unfiltered model (the filter is a defence the attacker
does not see) and the adversarial wire files hold the filtered samples. With
``write_adversarial`` the filtered wire samples of the other conditions are written too,
``filtered/<condition>/<record>.npz`` (the same file format), for ``host_tools robustness`` to
stream: the host tools add noise themselves but have no filter.

Each condition is scored by the float PyTorch model and by the int8 model on the TensorFlow Lite
Micro reference runtime (``sleepdata.tflm.TflmRunner``), both reading the int8 input the board
computes. Outputs in OUT: ``results.json`` (every condition, both models, ACC / macro-F1 / kappa /
per-class F1), ``table.md`` and ``macro_f1.png`` (drawn by ``sleepdata.robustness_report``); with
``write_adversarial`` the adversarial wire samples per night in
``adversarial/<attack>-eps<E>/<record>.npz`` (``sleepdata.adversarial``; docs/robustness.md).
The training-split statistics come from config.json ``signal_stats`` or, when it has none, are
computed from the training subjects of its split (``--data`` must then hold them).

results.json also records exactly what was scored, so that ``host_tools robustness`` can stream
the same noisy wire samples to a board: per test recording its files and the kept-epoch indices
of the main and attack subsets (``recordings``), the statistics (``signal_stats``), the noise
seed (``noise_seed``) and the int8 model's SHA-256. The "on chip" column of table.md is filled
from an onchip.json of ``host_tools robustness`` in OUT or OUT/onchip when there is one.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from sleepdata import adversarial, cache, provenance
from sleepdata.cohort import pairs_of_subjects, subject_key
from sleepdata.metrics import scores
from sleepdata.noise import (
    GAUSSIAN_LEVELS,
    SHOT_LEVELS,
    NoiseSpec,
    SignalStats,
    add_noise,
    epoch_rng,
)
from sleepdata.normalise import Normaliser
from sleepdata.progress import progress
from sleepdata.psg import Recording
from sleepdata.robustness_report import find_onchip, plot_macro_f1, render_table

from .filters import BandPass
from .loop import predict
from .model import load_model
from .rest import Attack, DifferentiableInput, attack, channel_scale
from .sources import ATTACKS

LEVEL_NAMES = ("low", "med", "high")
EPS_LEVELS_UV = {"low": 2.0, "med": 6.0, "high": 12.0}


@dataclass(frozen=True)
class RobustnessOptions:
    """``max_epochs``: a fixed random subset of the test epochs for every condition (None: all);
    ``adversarial_epochs``: a fixed subset of those for the attacks (they cost 10 gradient
    passes each); ``int8``: also score the int8 model on TFLite Micro; ``seed``: noise seed."""

    max_epochs: int | None = None
    adversarial_epochs: int = 400
    int8: bool = True
    write_adversarial: bool = False
    seed: int = 0
    tflite: str | None = None
    gaussian: tuple[float, ...] = tuple(GAUSSIAN_LEVELS[k] for k in LEVEL_NAMES)
    shot: tuple[float, ...] = tuple(SHOT_LEVELS[k] for k in LEVEL_NAMES)
    eps_uv: tuple[float, ...] = tuple(EPS_LEVELS_UV[k] for k in LEVEL_NAMES)
    attacks: tuple[str, ...] = ATTACKS
    attack_iterations: int = 10
    batch_size: int = 100
    bandpass: BandPass | None = None


@dataclass
class _TestSet:
    recs: list[Recording]
    index: list[np.ndarray]  # per recording: the kept-epoch indices in the subset
    adv: list[np.ndarray] = field(default_factory=list)  # per recording: the attacked ones


def _pick(recs: list[Recording], k: int | None, rng: np.random.Generator, within=None):
    pools = within or [np.arange(len(r)) for r in recs]
    sizes = np.cumsum([0] + [len(p) for p in pools])
    total = int(sizes[-1])
    chosen = np.arange(total) if k is None or k >= total else np.sort(rng.choice(total, k, False))
    return [
        pools[i][chosen[(chosen >= sizes[i]) & (chosen < sizes[i + 1])] - sizes[i]]
        for i in range(len(pools))
    ]


def _stats(config: dict, data, cache_dir, split) -> SignalStats:
    stats = SignalStats.from_config(config)
    if stats is not None:
        return stats
    pairs = pairs_of_subjects(data, split["train"])
    recs = [
        cache.load(p, cache_dir) for p in progress(pairs, desc="training statistics", unit="night")
    ]
    train = [r.epochs for r in recs if subject_key(r) in set(split["train"])]
    if not train:
        raise ValueError(
            f"config.json has no signal_stats and {data} holds none of the training subjects "
            f"{split['train']}: give a --data folder with them"
        )
    return SignalStats.fit(
        train, source=f"training split ({len(train)} nights of {', '.join(split['train'])})"
    )


#: A model folder that is another model behind a test-time filter (REST's Blanco model).
FILTER_FILE = "test_time_filter.json"


def resolve_test_time_filter(
    model_dir: Path, opts: RobustnessOptions
) -> tuple[Path, RobustnessOptions]:
    """For a folder holding `FILTER_FILE` ({"model": folder relative to it, "bandpass": {low_hz,
    high_hz, order, channels}}): the model folder it names and ``opts`` with that band-pass.
    Any other folder is returned as it is."""
    spec = model_dir / FILTER_FILE
    if not spec.is_file():
        return model_dir, opts
    if opts.bandpass is not None:
        raise ValueError(f"{model_dir}: its {FILTER_FILE} sets the band-pass; drop --bandpass")
    try:
        d = json.loads(spec.read_text())
        bp = d["bandpass"]
        band = BandPass(bp["low_hz"], bp["high_hz"], bp["order"], tuple(bp["channels"]))
        target = (model_dir / d["model"]).resolve()
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise ValueError(f"{spec}: not a test-time filter description ({exc})") from None
    if opts.tflite is None:
        opts = replace(opts, tflite=str(target / "model_int8.tflite"))
    return target, replace(opts, bandpass=band)


def _int8_runner(path: Path | None):
    if path is None:
        return None
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: no int8 model; build it with python -m converter build --model DIR "
            "--out DIR and pass --tflite DIR/model_int8.tflite, or use --no-int8"
        )
    from sleepdata.tflm import TflmRunner

    return TflmRunner(path.read_bytes())


def _score_both(model, runner, x_int8: np.ndarray, y: np.ndarray) -> dict:
    out = {"float": scores(y, predict(model, x_int8).argmax(axis=1))}
    if runner is not None:
        out["int8"] = scores(y, runner.run(x_int8).argmax(axis=1))
    for s in out.values():
        s.pop("confusion", None)
    return out


def robustness(
    model_dir: str | Path,
    data: str | Path,
    out: str | Path,
    opts: RobustnessOptions | None = None,
    *,
    cache_dir: str | Path | None = None,
) -> dict:
    opts = opts or RobustnessOptions()
    model_dir, out = Path(model_dir), Path(out)
    model_dir, opts = resolve_test_time_filter(model_dir, opts)
    out.mkdir(parents=True, exist_ok=True)
    model, config = load_model(model_dir)
    norm = Normaliser.from_dict(config["normalisation"])
    split = config.get("split")
    if not split:
        raise ValueError(f"{model_dir}: config.json has no subject split; cannot find its test set")
    stats = _stats(config, data, cache_dir, split)
    tflite = Path(opts.tflite) if opts.tflite else model_dir / "model_int8.tflite"
    runner = _int8_runner(tflite) if opts.int8 else None
    tflite_hash = hashlib.sha256(tflite.read_bytes()).hexdigest() if tflite.is_file() else None
    test_pairs = pairs_of_subjects(data, split["test"])
    loaded = [
        (p, cache.load(p, cache_dir))
        for p in progress(test_pairs, desc="test nights", unit="night")
    ]
    loaded = [(p, r) for p, r in loaded if subject_key(r) in set(split["test"])]
    pairs, recs = [p for p, _ in loaded], [r for _, r in loaded]
    if not recs:
        raise ValueError(f"{data}: no recording of the test subjects {split['test']}")
    prov = provenance.describe(p.psg for p in pairs)
    rng = np.random.default_rng(opts.seed)
    ts = _TestSet(recs, _pick(recs, opts.max_epochs, rng))
    ts.adv = _pick(recs, opts.adversarial_epochs, rng, within=ts.index)
    y = np.concatenate([r.labels[i] for r, i in zip(recs, ts.index, strict=True)])
    y_adv = np.concatenate([r.labels[i] for r, i in zip(recs, ts.adv, strict=True)])

    conditions: list[dict] = []

    def record(kind: str, level: str, value, res: dict, n: int) -> None:
        conditions.append({"kind": kind, "level": level, "value": value, "n_epochs": n, **res})

    def test_time(x_uv: np.ndarray) -> np.ndarray:
        """What the model's input path receives: the signal, band-passed for Blanco."""
        return x_uv if opts.bandpass is None or not len(x_uv) else opts.bandpass.apply(x_uv)

    # With a test-time filter the board cannot draw the inputs itself (host_tools adds noise
    # but has no filter): the filtered wire samples of every condition go to files it streams.
    write_filtered = opts.write_adversarial and opts.bandpass is not None

    def wire_of(r: Recording, idx, x_uv: np.ndarray, slug: str | None = None, noise=None):
        """The wire samples of ``x_uv`` (epochs ``idx`` of ``r``) as the board receives them;
        with a filter written to filtered/SLUG/<record>.npz (condition SLUG, as host_tools
        robustness names its streams)."""
        wire = norm.to_wire(test_time(x_uv))
        if write_filtered and slug is not None and len(idx):
            meta = {
                "record": r.name,
                "condition": slug,
                "noise": noise,
                "test_time_filter": opts.bandpass.to_dict(),
                "int8_model_sha256": tflite_hash,
            }
            path = out / "filtered" / slug / f"{r.name}.npz"
            adversarial.write(path, wire=wire, index=idx, labels=r.labels[idx], meta=meta)
        return wire

    def inputs(subset: list[np.ndarray], slug: str | None = None) -> np.ndarray:
        wires = [wire_of(r, i, r.epochs[i], slug) for r, i in zip(recs, subset, strict=True)]
        return norm.to_int8(np.concatenate(wires))

    # the attack subset lies within the main one: "none" files serve both no-noise rows
    record("none", "-", 0, _score_both(model, runner, inputs(ts.index, "none"), y), len(y))
    res = _score_both(model, runner, inputs(ts.adv), y_adv)
    record("none (attack subset)", "-", 0, res, len(y_adv))

    for kind, values in (
        ("gaussian", opts.gaussian),
        ("gaussian-mean", opts.gaussian),
        ("shot", opts.shot),
    ):
        for level, value in zip(LEVEL_NAMES, values, strict=True):
            spec = NoiseSpec(kind, value)
            parts = []
            for r, idx in progress(
                list(zip(recs, ts.index, strict=True)), desc=str(spec), unit="night", nested=True
            ):
                noisy = (
                    np.stack(
                        [
                            add_noise(r.epochs[i], spec, stats, epoch_rng(opts.seed, int(i)))
                            for i in idx
                        ]
                    )
                    if len(idx)
                    else np.zeros((0, *r.epochs.shape[1:]))
                )
                noise = {"kind": kind, "value": value, "seed": opts.seed}
                parts.append(norm.to_int8(wire_of(r, idx, noisy, f"{kind}-{level}", noise)))
            record(kind, level, value, _score_both(model, runner, np.concatenate(parts), y), len(y))

    inp = DifferentiableInput(norm)
    scale = channel_scale(stats)
    for kind in opts.attacks:
        for k, (level, eps) in enumerate(zip(LEVEL_NAMES, opts.eps_uv, strict=True)):
            spec = Attack(kind, eps, opts.attack_iterations)
            gen = torch.Generator().manual_seed(opts.seed * 1000 + ATTACKS.index(kind) * 10 + k)
            parts = []
            for r, idx in zip(recs, ts.adv, strict=True):
                wire = []
                for b in progress(
                    range(0, len(idx), opts.batch_size),
                    desc=f"{kind} eps {eps:g} {r.name}",
                    unit="batch",
                    nested=True,
                ):
                    sel = idx[b : b + opts.batch_size]
                    x_adv = attack(
                        model,
                        inp,
                        torch.from_numpy(r.epochs[sel]),
                        torch.from_numpy(r.labels[sel].astype(np.int64)),
                        spec,
                        scale,
                        gen,
                    )
                    wire.append(norm.to_wire(test_time(x_adv.numpy())))
                wire = (
                    np.concatenate(wire) if wire else np.zeros((0, *r.epochs.shape[1:]), np.int16)
                )
                parts.append(norm.to_int8(wire))
                if opts.write_adversarial:
                    _write_adversarial(
                        out / "adversarial" / f"{kind}-eps{eps:g}" / f"{r.name}.npz",
                        r,
                        idx,
                        wire,
                        spec,
                        scale,
                        model_dir,
                        tflite_hash,
                        opts.seed,
                    )
            res = _score_both(model, runner, np.concatenate(parts), y_adv)
            record(f"adversarial {kind}", level, eps, res, len(y_adv))

    result = {
        "model": str(model_dir),
        "int8_model": str(tflite) if runner is not None else None,
        "int8_model_sha256": tflite_hash,
        "data": str(data),
        "test_subjects": split["test"],
        "signal_stats": stats.to_dict(),
        "noise_seed": opts.seed,
        "recordings": {
            r.name: {
                "psg": str(Path(p.psg).resolve()),
                "hypnogram": str(Path(p.hypnogram).resolve()),
                "kept_epochs": len(r),
                "main": [int(i) for i in idx],
                "attack": [int(i) for i in adv],
            }
            for p, r, idx, adv in zip(pairs, recs, ts.index, ts.adv, strict=True)
        },
        "recordings_note": (
            "the kept-epoch indices scored per test recording: 'main' for the clean, Gaussian "
            "and shot conditions, 'attack' for the attacks and the attack-subset baseline; "
            "metrics pool them over the recordings in this order. Noise of epoch i of a "
            "recording: sleepdata.noise.epoch_rng(noise_seed, i) with signal_stats"
        ),
        "attack_eps_scale": scale.tolist(),
        "options": {k: v for k, v in asdict(opts).items() if k != "bandpass"},
        "data_provenance": prov,
        "test_time_filter": opts.bandpass.to_dict() if opts.bandpass else None,
        "note": (
            f"{prov['label']}; macro-F1 pooled over the chosen test epochs; attacks crafted on "
            "the float model and transferred to the int8 model"
            + ("; every input band-passed before the int8 conversion" if opts.bandpass else "")
        ),
        "conditions": conditions,
    }
    onchip = find_onchip(out)
    result["table_md"] = render_table(
        {"float": result, "int8": result}, models=False, onchip={"float": onchip}
    )
    (out / "results.json").write_text(json.dumps(result, indent=1) + "\n")
    (out / "table.md").write_text(result["table_md"])
    name = model_dir.name + (" + band-pass" if opts.bandpass else "")
    plot_macro_f1(out / "macro_f1.png", {name: result})
    return result


def _write_adversarial(
    path: Path, rec: Recording, idx, wire, spec: Attack, scale, model_dir, tflite_hash, seed
) -> None:
    meta = {
        "record": rec.name,
        "attack": spec.kind,
        "eps_uv": spec.eps_uv,
        "eps_uv_per_channel": (spec.eps_uv * np.asarray(scale)).tolist(),
        "iterations": spec.iterations,
        "step_uv": spec.step,
        "seed": seed,
        "crafted_on": f"float model {model_dir}",
        "int8_model_sha256": tflite_hash,
    }
    adversarial.write(path, wire=wire, index=idx, labels=rec.labels[idx], meta=meta)
