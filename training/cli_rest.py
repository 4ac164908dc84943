"""``python -m training finetune | robustness | robustness-table``: REST's fine-tuning and
noise evaluation from the command line (the parsers and commands; ``training.cli`` runs them)."""

from __future__ import annotations

import argparse
import sys

from sleepdata.cache import default_cache

from .sources import ATTACKS


def _int_list(text: str) -> tuple[int, ...]:
    """'4,8,16,32' -> (4, 8, 16, 32)."""
    try:
        values = tuple(int(t) for t in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected integers like 4,8,16,32") from None
    if any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"{text!r}: every value must be positive")
    return values


def _band(text: str) -> tuple[float, float]:
    """'0.5,40' -> (0.5, 40.0)."""
    try:
        low, high = (float(t) for t in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected LOW,HIGH in Hz like 0.5,40") from None
    return low, high


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
    "optimizer",
    "gaussian_fraction",
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

    from .filters import BandPass
    from .robustness import RobustnessOptions, robustness

    torch.set_num_threads(args.threads)
    opts = RobustnessOptions(
        max_epochs=args.max_epochs,
        adversarial_epochs=args.adversarial_epochs,
        int8=not args.no_int8,
        write_adversarial=args.write_adversarial,
        seed=args.seed,
        tflite=args.tflite,
        bandpass=BandPass(*args.bandpass) if args.bandpass else None,
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
            into[name] = folder.split(",") if option == "--run" else folder
    try:
        print(compare(runs, args.out, onchip))
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: robustness-table: {exc}", file=sys.stderr)
        return 2
    return 0


def cmd_study_models(args: argparse.Namespace) -> int:
    from .study_models import render, write

    specs = []
    for item in args.model:
        name, sep, rest = item.partition("=")
        parts = rest.split(",") if rest else []
        if not sep or not name or not 1 <= len(parts) <= 3:
            print(
                f"error: --model {item!r}: expected NAME=FOLDER[,REPORT[,BENCH]]", file=sys.stderr
            )
            return 2
        parts += [None] * (3 - len(parts))
        specs.append((name, *parts))
    try:
        rows = write(args.out, specs)
    except (OSError, KeyError, ValueError) as exc:
        print(f"error: study-models: {exc}", file=sys.stderr)
        return 2
    print(render(rows), end="")
    return 0


def add_rest_commands(sub) -> None:
    """The finetune, robustness and robustness-table parsers, added to the subparsers ``sub``."""
    p = sub.add_parser(
        "finetune",
        help="REST: fine-tune a model folder with noise or adversarial training, prune, retrain",
    )
    p.add_argument("--init", required=True, help="model folder to start from (its split is used)")
    p.add_argument("--data", required=True, help="folder of PSG/hypnogram pairs")
    p.add_argument("--out", required=True, help="run folder (re-run the command to resume)")
    p.add_argument("--config", help="JSON file of options (RobustConfig in training/finetune.py)")
    p.add_argument(
        "--augment",
        choices=["none", "gaussian", *ATTACKS],
        help="training input: clean, Gaussian noise (paper eq. 8), or an attack: paper (eq. 2), "
        "rest-code (REST's code: random start, step 0.01 uV), pgd (standard)",
    )
    p.add_argument(
        "--optimizer",
        choices=["adam", "sgd"],
        help="adam (amsgrad, cosine decay; default) or sgd (the paper's: momentum 0.9, lr / 10 "
        "after 1/3 and 2/3 of each stage)",
    )
    p.add_argument("--epochs", type=int)
    p.add_argument("--samples-per-epoch", type=int, help="training epochs drawn per epoch")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--eps-uv", type=float, help="attack budget, uV of Fpz-Cz (default 10)")
    p.add_argument("--attack-iterations", type=int)
    p.add_argument("--gaussian-c", type=float)
    p.add_argument(
        "--gaussian-fraction", type=float, help="share of each batch given Gaussian noise (0.5)"
    )
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
        choices=list(ATTACKS),
        help="attack of the adversarial validation score (default paper: eq. 2, the same for "
        "every compared model)",
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
        "--bandpass",
        type=_band,
        metavar="LOW,HIGH",
        help="band-pass every test input (noisy or attacked) in uV before the int8 conversion: "
        "REST's Blanco model is the Liu model with --bandpass 0.5,40 (zero-phase 4th-order "
        "Butterworth on EEG and EOG; training/filters.py)",
    )
    p.add_argument(
        "--write-adversarial",
        action="store_true",
        help="also write the adversarial wire samples per night (OUT/adversarial/*.npz; with a "
        "band-pass, the filtered samples of every other condition too: OUT/filtered/*.npz, "
        "for host_tools robustness)",
    )
    p.add_argument("--seed", type=int, default=0, help="noise seed (as host_tools stream)")
    p.add_argument("--threads", type=int, default=2, help="torch threads (2)")
    p.add_argument("--cache", default=default_cache(), help="epoch cache folder")
    p.set_defaults(func=cmd_robustness)

    p = sub.add_parser(
        "robustness-table", help="one macro-F1 table and plot over several robustness runs"
    )
    p.add_argument(
        "--run",
        action="append",
        required=True,
        help="NAME=FOLDER of a robustness output, or NAME=FOLDER,FOLDER,... (one per training "
        "seed: study.md shows mean +- std); the paper's names baseline, liu, blanco, ford, "
        "rest_a, rest_as are ordered as in its Table 4",
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

    p = sub.add_parser(
        "study-models", help="the study's models side by side: channels, MACs, flash, RAM, cost"
    )
    p.add_argument(
        "--model",
        action="append",
        required=True,
        metavar="NAME=FOLDER[,REPORT[,BENCH]]",
        help="a model folder, the converter's report.json and host_tools bench --json of its "
        "firmware; ratios are against the model named baseline",
    )
    p.add_argument("--out", required=True, help="Markdown file (and the same name .json)")
    p.set_defaults(func=cmd_study_models)
