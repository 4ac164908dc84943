"""``python -m training``: the training side of ULW-SleepNet from the command line.

Data: ``prepare`` (epoch every PSG/hypnogram pair of a folder into the cache, with a per-stage
table; ``--jobs N`` nights in parallel), ``simulate`` (Sleep-EDF-format PSG files from real or
generated hypnograms, any number of nights),
``hypnostats`` (the hypnogram statistics that generated nights are drawn from).
Models: ``train`` (subject-wise cross-validation or a fixed subject split, resumable),
``finetune`` (REST: noise or adversarial fine-tuning, pruning, retraining), ``evaluate`` (score a
folder of recordings: metrics, hypnograms, plots), ``summary`` (parameters and MACs per layer),
``model-card`` (MODEL_CARD.md of a fine-tuned model folder).
Robustness: ``robustness`` (REST's noise and attack evaluation, float and int8),
``robustness-table`` (one table and plot over several such runs), ``study-models`` (the REST
study's models side by side: channels removed, MACs, flash, RAM, instructions).
Benchmarks: ``bench-train`` (one training epoch), ``bench-data`` (simulate and load one night),
``bench-scale`` (a Sleep-EDF-78-sized cohort: prepare in parallel, training memory, cache load).
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from sleepdata import cache, hypnogen, simulator
from sleepdata.cache import default_cache
from sleepdata.cli import ArgumentParser
from sleepdata.cohort import hypnogram_files, parse_subjects, stage_table, subject_name
from sleepdata.errors import DataError
from sleepdata.jobs import Outcome, default_jobs, run_nights
from sleepdata.names import parse_name
from sleepdata.psg import discover_pairs

from .cli_rest import add_rest_commands
from .errors import TrainingError

# ------------------------------------------------------------------------------------------
# Argument types


def _nights(text: str) -> int:
    n = int(text)
    if not 1 <= n <= hypnogen.MAX_GENERATED_NIGHTS:
        raise argparse.ArgumentTypeError(f"must be between 1 and {hypnogen.MAX_GENERATED_NIGHTS}")
    return n


def _jobs_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--jobs",
        type=_positive,
        default=1,
        help=f"nights in parallel, each in its own process (this machine: {default_jobs()} "
        "cores; default 1). A night that fails is reported and the others go on",
    )


def _positive(text: str) -> int:
    n = int(text)
    if n < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return n


def _subject_list(text: str) -> list[str]:
    try:
        return parse_subjects(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


# ------------------------------------------------------------------------------------------
# Commands


def _subject_numbers(keys) -> str:
    from .splits import subject_numbers

    return subject_numbers(keys)


def _report_failures(outcomes: list[Outcome], what: str, name) -> int:
    """Print each failed night with its error (stderr); returns how many failed."""
    failed = [o for o in outcomes if not o.ok]
    for o in failed:
        named = o.error if o.error.startswith(str(name(o.item))) else f"{name(o.item)}: {o.error}"
        print(f"{what} failed: {named}", file=sys.stderr)
    if failed:
        print(
            f"{len(failed)} of {len(outcomes)} nights failed ({what}); the others are done",
            file=sys.stderr,
        )
    return len(failed)


def cmd_prepare(args: argparse.Namespace) -> int:
    pairs = discover_pairs(args.data)
    job = functools.partial(cache.prepare, cache_dir=str(args.out))
    outcomes = run_nights(job, pairs, jobs=args.jobs, desc="prepare")
    done = [o.result for o in outcomes if o.ok]
    if done:
        print(stage_table([(d["name"], d["labels"]) for d in done]))
    for d in done:
        clipped = {c: n for c, n in d["saturated_samples"].items() if n}
        if clipped:
            print(f"note: {d['name']}: samples beyond the wire's range, saturated: {clipped}")
    subjects = {subject_name(d["subject"]) if d["subject"] >= 0 else d["name"] for d in done}
    print(
        f"{len(done)} recordings of {len(subjects)} subjects ({_subject_numbers(subjects)}) "
        f"cached in {args.out}"
    )
    if Path(args.out) == default_cache():
        print("train, evaluate, finetune and robustness read this cache by default")
    else:
        print(f"give train, evaluate, finetune and robustness --cache {args.out} to use it")
    return 1 if _report_failures(outcomes, "prepare", lambda pair: pair.psg) else 0


def _ranges(numbers: list[int]) -> str:
    """Subject numbers as --test-subjects takes them: listed up to 12, else as ranges
    ([90, 91, 92, 95] -> '90-92, 95')."""
    if len(numbers) <= 12:
        return ", ".join(map(str, sorted(numbers)))
    spans: list[list[int]] = []
    for n in sorted(numbers):
        if spans and n == spans[-1][1] + 1:
            spans[-1][1] = n
        else:
            spans.append([n, n])
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in spans)


def cmd_simulate(args: argparse.Namespace) -> int:
    out = Path(args.out)
    if args.hypnograms is not None:
        hyps = hypnogram_files(Path(args.hypnograms))[: args.nights]
        origin = f"real hypnograms from {args.hypnograms}"
    else:
        hyps = hypnogen.generated_hypnograms(out, args.nights or 2, args.seed)
        origin = "generated hypnograms (statistics of real Sleep-EDF nights)"
    job = functools.partial(simulator.simulate_from_hypnogram, out_dir=out, seed=args.seed)
    outcomes = run_nights(job, hyps, jobs=args.jobs, desc="simulate")
    numbers, others = [], []
    for o in outcomes:
        if o.ok:
            psg = o.result[0]
            try:
                numbers.append(parse_name(psg.name).subject)
            except ValueError:
                others.append(psg.name)  # not a Sleep-EDF name: a subject of its own
    done = sum(o.ok for o in outcomes)
    print(
        f"{done} simulated Sleep-EDF-format nights in {out} from {origin} "
        f"(seed {args.seed}); simulated signals, not real recordings"
    )
    n_subjects = len(set(numbers)) + len(others)
    noun = "subject" if n_subjects == 1 else "subjects"
    listed = ", ".join(x for x in (_ranges(list(set(numbers))), *sorted(others)) if x)
    print(f"{n_subjects} {noun}: {listed} (the numbers --test-subjects/--val-subjects take)")
    return 1 if _report_failures(outcomes, "simulate", lambda hyp: hyp) else 0


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


def cmd_bench_scale(args: argparse.Namespace) -> int:
    from .bench_scale import bench_scale

    result = bench_scale(Path(args.work), args.nights, args.jobs, args.seed)
    print(json.dumps(result, indent=1))
    missed = [name for name, t in result["targets"].items() if not t["met"]]
    print("all targets met" if not missed else "TARGET MISSED: " + ", ".join(missed))
    return 1 if missed else 0


def cmd_train(args: argparse.Namespace) -> int:
    from . import distributed
    from .train import TrainConfig, run

    cfg = TrainConfig.from_file(
        args.config,
        recipe=args.recipe,
        epochs=args.epochs,
        seed=args.seed,
        batch_size=args.batch_size,
        normalisation=args.normalisation,
        class_weights=args.class_weights or None,
        compile=args.compile or None,
        samples_per_epoch=args.samples_per_epoch,
    )
    ctx = distributed.setup(args.device, args.amp)  # under torchrun: joins the group
    try:
        result = run(
            args.data,
            args.out,
            cfg,
            folds=args.folds,
            test_subjects=args.test_subjects or [],
            val_subjects=args.val_subjects or [],
            cache_dir=args.cache,
            ctx=ctx,
        )
    finally:
        distributed.cleanup()
    if not ctx.is_main:
        return 0
    from sleepdata.metrics import format_scores

    print(format_scores(result))
    print(f"pooled over test subjects; details in {args.out}/metrics.json")
    report = Path(args.out) / "cv_report.md"
    if "over_folds" in result:
        print()
        print(report.read_text(), end="")
        print(f"(written to {report})")
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
        raise DataError(args.model, f"cannot write its model card ({exc})") from None
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
    parser = ArgumentParser(
        prog="python -m training",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("prepare", help="load every PSG/hypnogram pair of a folder into a cache")
    p.add_argument("data", help="folder with *-PSG.edf and *-Hypnogram.edf files")
    p.add_argument(
        "--out",
        default=default_cache(),
        help=f"cache folder (default {default_cache()}: the one train and evaluate read)",
    )
    _jobs_option(p)
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
    _jobs_option(p)
    p.set_defaults(func=cmd_simulate)

    p = sub.add_parser(
        "bench-scale",
        help="a Sleep-EDF-78-sized generated cohort: simulate, prepare, one training epoch's "
        "peak memory, cache load time (resumable)",
    )
    p.add_argument("--work", default="build/bench-scale", help="work folder (re-run to resume)")
    p.add_argument("--nights", type=_nights, default=153)
    p.add_argument("--seed", type=int, default=0)
    _jobs_option(p)
    p.set_defaults(func=cmd_bench_scale)

    p = sub.add_parser("hypnostats", help="learn hypnogram statistics for generated nights")
    p.add_argument("--hypnograms", required=True, help="folder of real hypnograms")
    p.add_argument("--out", required=True, help="JSON file to write")
    p.set_defaults(func=cmd_hypnostats)

    p = sub.add_parser("train", help="train ULW-SleepNet with subject-wise cross-validation")
    p.add_argument("--data", required=True, help="folder of PSG/hypnogram pairs")
    p.add_argument("--out", required=True, help="run folder (re-run the command to resume)")
    p.add_argument("--folds", type=int, help="subject-wise folds (default 5)")
    p.add_argument(
        "--test-subjects",
        type=_subject_list,
        help="fixed split instead of folds: subject numbers as simulate and prepare print "
        "them, e.g. 90,91",
    )
    p.add_argument(
        "--val-subjects",
        type=_subject_list,
        help="with --test-subjects: validation subjects, e.g. 92",
    )
    p.add_argument(
        "--recipe",
        choices=["project", "paper"],
        help="project (default): batch 128, 30 epochs, checkpoint by validation macro-F1, "
        "PyTorch's initialisation and BatchNorm momentum; paper: the original ULW-SleepNet "
        "training (batch 32, 50 epochs, Glorot initialisation, Keras BatchNorm momentum 0.99, "
        "checkpoint by validation accuracy); the options below override it",
    )
    p.add_argument("--epochs", type=int, help="training epochs (default: the recipe's, 30 or 50)")
    p.add_argument(
        "--samples-per-epoch", type=int, help="30-s epochs drawn per training epoch (default all)"
    )
    p.add_argument("--batch-size", type=int, help="default: the recipe's, 128 or 32")
    p.add_argument("--seed", type=int)
    p.add_argument("--config", help="JSON file of training options (see training/train.py)")
    p.add_argument("--normalisation", choices=["fixed", "zscore"])
    p.add_argument("--class-weights", action="store_true", help="inverse-frequency weights")
    p.add_argument("--compile", action="store_true", help="torch.compile (faster long runs)")
    p.add_argument(
        "--device",
        choices=["auto", "cpu", "cuda", "mps"],
        default="auto",
        help="auto (default): cuda if available, else mps if available, else cpu",
    )
    p.add_argument(
        "--amp",
        choices=["bf16", "fp16"],
        help="mixed precision, CUDA only (fp16 with loss scaling); default float32",
    )
    p.add_argument("--cache", default=default_cache(), help="epoch cache folder")
    p.set_defaults(func=cmd_train)

    add_rest_commands(sub)

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
    except (DataError, TrainingError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        if sys.stderr.isatty():
            print(file=sys.stderr)  # off the line of a bar that Ctrl-C left unfinished
        print("interrupted; finished cache entries are kept", file=sys.stderr)
        return 130
