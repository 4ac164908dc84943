"""``python -m training``: the training side of ULW-SleepNet from the command line.

Data: ``prepare`` (epoch every PSG/hypnogram pair of a folder into the cache, with a per-stage
table), ``simulate`` (Sleep-EDF-format PSG files from real or generated hypnograms),
``hypnostats`` (the hypnogram statistics that generated nights are drawn from).
Models: ``train`` (subject-wise cross-validation or a fixed subject split, resumable),
``finetune`` (REST: noise or adversarial fine-tuning, pruning, retraining), ``evaluate`` (score a
folder of recordings: metrics, hypnograms, plots), ``summary`` (parameters and MACs per layer),
``model-card`` (MODEL_CARD.md of a fine-tuned model folder).
Robustness: ``robustness`` (REST's noise and attack evaluation, float and int8),
``robustness-table`` (one table and plot over several such runs).
Benchmarks: ``bench-train`` (one training epoch), ``bench-data`` (simulate and load one night).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from tqdm import tqdm

from sleepdata import cache, hypnogen, simulator
from sleepdata.cache import default_cache
from sleepdata.cohort import hypnogram_files, parse_subjects, stage_table
from sleepdata.errors import DataError
from sleepdata.psg import discover_pairs

# ------------------------------------------------------------------------------------------
# Argument types


def _nights(text: str) -> int:
    n = int(text)
    if not 1 <= n <= hypnogen.MAX_GENERATED_NIGHTS:
        raise argparse.ArgumentTypeError(f"must be between 1 and {hypnogen.MAX_GENERATED_NIGHTS}")
    return n


def _int_list(text: str) -> tuple[int, ...]:
    """'4,8,16,32' -> (4, 8, 16, 32)."""
    try:
        values = tuple(int(t) for t in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected integers like 4,8,16,32") from None
    if any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"{text!r}: every value must be positive")
    return values


def _subject_list(text: str) -> list[str]:
    try:
        return parse_subjects(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


# ------------------------------------------------------------------------------------------
# Commands


def cmd_prepare(args: argparse.Namespace) -> int:
    pairs = discover_pairs(args.data)
    rows = []
    for pair in tqdm(pairs, desc="prepare", unit="night"):
        rec = cache.load(pair, args.out)
        rows.append((rec.name, rec.labels))
    print(stage_table(rows))
    print(f"{len(pairs)} recordings cached in {args.out}")
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
    out = Path(args.out)
    if args.hypnograms is not None:
        hyps = hypnogram_files(Path(args.hypnograms))[: args.nights]
        origin = f"real hypnograms from {args.hypnograms}"
    else:
        hyps = hypnogen.generated_hypnograms(out, args.nights or 2, args.seed)
        origin = "generated hypnograms (statistics of real Sleep-EDF nights)"
    for hyp in tqdm(hyps, desc="simulate", unit="night"):
        simulator.simulate_from_hypnogram(hyp, out, seed=args.seed)
    print(
        f"{len(hyps)} simulated Sleep-EDF-format nights in {out} from {origin} "
        f"(seed {args.seed}); simulated signals, not real recordings"
    )
    return 0


def cmd_hypnostats(args: argparse.Namespace) -> int:
    stats = hypnogen.fit(hypnogram_files(Path(args.hypnograms)))
    body = ",\n".join(f" {json.dumps(k)}: {json.dumps(v)}" for k, v in stats.items())
    Path(args.out).write_text("{\n" + body + "\n}\n")
    print(f"statistics of {stats['n_nights']} nights written to {args.out}")
    return 0


def cmd_bench_data(args: argparse.Namespace) -> int:
    from .bench import bench_data

    result, met = bench_data(args.hypnogram, args.seed)
    print(json.dumps(result, indent=1))
    print("all targets met" if met else "TARGET MISSED")
    return 0 if met else 1


def cmd_train(args: argparse.Namespace) -> int:
    from .train import TrainConfig, run

    cfg = TrainConfig.from_file(
        args.config,
        epochs=args.epochs,
        seed=args.seed,
        batch_size=args.batch_size,
        normalisation=args.normalisation,
        class_weights=args.class_weights or None,
        compile=args.compile or None,
    )
    if bool(args.test_subjects) != bool(args.val_subjects):
        raise SystemExit("error: --test-subjects and --val-subjects go together")
    result = run(
        args.data,
        args.out,
        cfg,
        folds=args.folds,
        test_subjects=args.test_subjects or [],
        val_subjects=args.val_subjects or [],
        cache_dir=args.cache,
    )
    from sleepdata.metrics import format_scores

    print(format_scores(result))
    print(f"pooled over test subjects; details in {args.out}/metrics.json")
    return 0


#: RobustConfig fields set from the command-line options of the same name (--eps-uv: eps_uv).
_FINETUNE_OPTIONS = (
    "augment",
    "epochs",
    "samples_per_epoch",
    "batch_size",
    "lr",
    "eps_uv",
    "attack_iterations",
    "gaussian_c",
    "adversarial_fraction",
    "lambda_o",
    "lambda_g",
    "prune_fraction",
    "prune_min_fraction",
    "prune_widths",
    "retrain_epochs",
    "select_attack",
    "seed",
)


def cmd_finetune(args: argparse.Namespace) -> int:
    import torch

    from sleepdata.metrics import format_scores

    from .finetune import RobustConfig, finetune

    torch.set_num_threads(args.threads)
    overrides = {k: getattr(args, k) for k in _FINETUNE_OPTIONS}
    try:
        cfg = RobustConfig.from_file(args.config, **overrides)
        result = finetune(args.init, args.data, args.out, cfg, cache_dir=args.cache)
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: finetune: {exc}", file=sys.stderr)
        return 2
    print(format_scores(result))
    print(f"test subjects, clean; model and metrics in {args.out}/model")
    return 0


def cmd_robustness(args: argparse.Namespace) -> int:
    import torch

    from .robustness import RobustnessOptions, robustness

    torch.set_num_threads(args.threads)
    opts = RobustnessOptions(
        max_epochs=args.max_epochs,
        adversarial_epochs=args.adversarial_epochs,
        int8=not args.no_int8,
        write_adversarial=args.write_adversarial,
        seed=args.seed,
        tflite=args.tflite,
    )
    try:
        result = robustness(args.model, args.data, args.out, opts, cache_dir=args.cache)
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: robustness: {exc}", file=sys.stderr)
        return 2
    print(result["table_md"])
    print(f"tables, plot and per-condition metrics in {args.out}")
    return 0


def cmd_robustness_table(args: argparse.Namespace) -> int:
    from sleepdata.robustness_report import compare

    runs, onchip = {}, {}
    for option, items, into in (("--run", args.run, runs), ("--onchip", args.onchip, onchip)):
        for item in items or ():
            name, sep, folder = item.partition("=")
            if not sep or not name or not folder:
                print(f"error: {option} {item!r}: expected NAME=FOLDER", file=sys.stderr)
                return 2
            into[name] = folder
    try:
        print(compare(runs, args.out, onchip))
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: robustness-table: {exc}", file=sys.stderr)
        return 2
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from sleepdata.metrics import format_scores

    from .evaluate import evaluate

    out = args.out or Path(args.model) / "evaluation"
    result = evaluate(args.model, args.data, out, cache_dir=args.cache)
    print(format_scores(result))
    print(f"pooled over {len(result['nights'])} nights; hypnograms, plots and metrics in {out}")
    return 0


def cmd_model_card(args: argparse.Namespace) -> int:
    from .model_card import write

    try:
        path = write(args.model, args.title, convert_report=args.convert_report, bench=args.bench)
    except (OSError, ValueError, KeyError) as exc:
        raise DataError(f"model card of {args.model}: {exc}") from None
    print(f"wrote {path}")
    return 0


def cmd_summary(args: argparse.Namespace) -> int:
    from .model import ULWSleepNet, load_model, summary

    model = load_model(args.model)[0] if args.model else ULWSleepNet()
    s = summary(model)
    if args.json:
        print(json.dumps(s, indent=1))
        return 0
    print(f"{'layer':<32}{'kind':<11}{'output':>16}{'params':>9}{'MACs':>12}")
    for row in s["layers"]:
        shape = "x".join(str(v) for v in row["output_shape"])
        print(f"{row['name']:<32}{row['kind']:<11}{shape:>16}{row['params']:>9}{row['macs']:>12,}")
    print(f"total: {s['params']:,} trainable parameters, {s['macs']:,} MACs per 30-s epoch")
    return 0


def cmd_bench_train(args: argparse.Namespace) -> int:
    from .bench import bench_train

    result = bench_train(args.data, args.cache, batch_size=args.batch_size, compile=args.compile)
    print(json.dumps(result, indent=1))
    met = result["epoch_s"] <= result["target_epoch_s"]
    print(
        "target met"
        if met
        else f"TARGET MISSED: one epoch took {result['epoch_s']} s "
        f"(target {result['target_epoch_s']} s)"
    )
    return 0 if met else 1


# ------------------------------------------------------------------------------------------
# The parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m training",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("prepare", help="load every PSG/hypnogram pair of a folder into a cache")
    p.add_argument("data", help="folder with *-PSG.edf and *-Hypnogram.edf files")
    p.add_argument("--out", required=True, help="cache folder")
    p.set_defaults(func=cmd_prepare)

    p = sub.add_parser("simulate", help="write simulated Sleep-EDF-format PSG files")
    p.add_argument(
        "--hypnograms",
        help="a hypnogram file or a folder of them (real ones); "
        "without it, plausible hypnograms are generated",
    )
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--nights",
        type=_nights,
        help="at most this many nights (generated: default 2, at most "
        f"{hypnogen.MAX_GENERATED_NIGHTS})",
    )
    p.set_defaults(func=cmd_simulate)

    p = sub.add_parser("hypnostats", help="learn hypnogram statistics for generated nights")
    p.add_argument("--hypnograms", required=True, help="folder of real hypnograms")
    p.add_argument("--out", required=True, help="JSON file to write")
    p.set_defaults(func=cmd_hypnostats)

    p = sub.add_parser("train", help="train ULW-SleepNet with subject-wise cross-validation")
    p.add_argument("--data", required=True, help="folder of PSG/hypnogram pairs")
    p.add_argument("--out", required=True, help="run folder (re-run the command to resume)")
    p.add_argument("--folds", type=int, help="subject-wise folds (default 5)")
    p.add_argument(
        "--test-subjects", type=_subject_list, help="fixed split instead of folds: e.g. 0,1,2,3"
    )
    p.add_argument(
        "--val-subjects",
        type=_subject_list,
        help="with --test-subjects: validation subjects, e.g. 4,5",
    )
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--seed", type=int)
    p.add_argument("--config", help="JSON file of training options (see training/train.py)")
    p.add_argument("--normalisation", choices=["fixed", "zscore"])
    p.add_argument("--class-weights", action="store_true", help="inverse-frequency weights")
    p.add_argument("--compile", action="store_true", help="torch.compile (faster long runs)")
    p.add_argument("--cache", default=default_cache(), help="epoch cache folder")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser(
        "finetune",
        help="REST: fine-tune a model folder with noise or adversarial training, prune, retrain",
    )
    p.add_argument("--init", required=True, help="model folder to start from (its split is used)")
    p.add_argument("--data", required=True, help="folder of PSG/hypnogram pairs")
    p.add_argument("--out", required=True, help="run folder (re-run the command to resume)")
    p.add_argument("--config", help="JSON file of options (RobustConfig in training/finetune.py)")
    p.add_argument("--augment", choices=["none", "gaussian", "rest-published", "pgd"])
    p.add_argument("--epochs", type=int)
    p.add_argument("--samples-per-epoch", type=int, help="training epochs drawn per epoch")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--eps-uv", type=float, help="attack budget, uV of Fpz-Cz (default 10)")
    p.add_argument("--attack-iterations", type=int)
    p.add_argument("--gaussian-c", type=float)
    p.add_argument(
        "--adversarial-fraction",
        type=float,
        help="share of each batch replaced by its attacked version (REST: 1, the default)",
    )
    p.add_argument("--lambda-o", type=float, help="spectral term (REST: 3e-3)")
    p.add_argument("--lambda-g", type=float, help="L1 on BatchNorm gammas (REST: 1e-5)")
    p.add_argument("--prune-fraction", type=float, help="DSSC channels removed (REST: 0.8)")
    p.add_argument("--prune-min-fraction", type=float, help="kept per layer (REST: 0.1)")
    p.add_argument(
        "--prune-widths",
        type=_int_list,
        help="channel counts a pruned layer may keep, rounded up to (e.g. 4,8,16,32: the "
        "firmware engine's fast kernels); default: any",
    )
    p.add_argument("--retrain-epochs", type=int)
    p.add_argument(
        "--select-attack",
        choices=["rest-published", "pgd"],
        help="attack of the adversarial validation score (default pgd)",
    )
    p.add_argument("--seed", type=int)
    p.add_argument("--threads", type=int, default=2, help="torch threads (2)")
    p.add_argument("--cache", default=default_cache(), help="epoch cache folder")
    p.set_defaults(func=cmd_finetune)

    p = sub.add_parser(
        "robustness", help="REST's noise evaluation: Gaussian, shot, adversarial; float and int8"
    )
    p.add_argument("--model", required=True, help="model folder (config.json + weights.pt)")
    p.add_argument("--data", required=True, help="folder of PSG/hypnogram pairs")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument(
        "--tflite",
        help="int8 model for TFLite Micro (default: MODEL/model_int8.tflite)",
    )
    p.add_argument("--max-epochs", type=int, help="fixed subset of test epochs (default: all)")
    p.add_argument(
        "--adversarial-epochs",
        type=int,
        default=400,
        help="fixed subset of those for the attacks (default 400)",
    )
    p.add_argument("--no-int8", action="store_true", help="float model only")
    p.add_argument(
        "--write-adversarial",
        action="store_true",
        help="also write the adversarial wire samples per night (OUT/adversarial/*.npz)",
    )
    p.add_argument("--seed", type=int, default=0, help="noise seed (as host_tools stream)")
    p.add_argument("--threads", type=int, default=2, help="torch threads (2)")
    p.add_argument("--cache", default=default_cache(), help="epoch cache folder")
    p.set_defaults(func=cmd_robustness)

    p = sub.add_parser(
        "robustness-table", help="one macro-F1 table and plot over several robustness runs"
    )
    p.add_argument(
        "--run", action="append", required=True, help="NAME=FOLDER of a robustness output"
    )
    p.add_argument(
        "--onchip",
        action="append",
        metavar="NAME=PATH",
        help="onchip.json (or its folder) of host_tools robustness for run NAME; default: "
        "the run's FOLDER/onchip.json or FOLDER/onchip/onchip.json when present",
    )
    p.add_argument("--out", required=True, help="folder for table.md and macro_f1.png")
    p.set_defaults(func=cmd_robustness_table)

    p = sub.add_parser("evaluate", help="score a folder of recordings with a trained model")
    p.add_argument("--model", required=True, help="model folder (config.json + weights.pt)")
    p.add_argument("--data", required=True, help="folder of PSG/hypnogram pairs")
    p.add_argument("--out", help="output folder (default: MODEL/evaluation)")
    p.add_argument("--cache", default=default_cache(), help="epoch cache folder")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("summary", help="parameters and MACs per layer")
    p.add_argument("--model", help="model folder (default: the standard architecture)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_summary)

    p = sub.add_parser("model-card", help="write MODEL_CARD.md of a fine-tuned model folder")
    p.add_argument("--model", required=True, help="model folder (config.json, metrics.json)")
    p.add_argument("--title", required=True, help='what it is, e.g. "REST(A+S), pruned"')
    p.add_argument("--convert-report", help="the converter's report.json for this model")
    p.add_argument("--bench", help="host_tools bench --json output of its firmware")
    p.set_defaults(func=cmd_model_card)

    p = sub.add_parser("bench-train", help="benchmark: one training epoch, with breakdown")
    p.add_argument("--data", required=True, help="folder of PSG/hypnogram pairs")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--compile", action="store_true")
    p.add_argument("--cache", default=default_cache(), help="epoch cache folder")
    p.set_defaults(func=cmd_bench_train)

    p = sub.add_parser("bench-data", help="benchmark: simulate and load one night, with timings")
    p.add_argument("--hypnogram", help="a real hypnogram (default: a generated one)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=cmd_bench_data)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; finished cache entries are kept", file=sys.stderr)
        return 130
