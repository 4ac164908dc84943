"""``python -m converter build --model DIR --out DIR`` and ``python -m converter vectors``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from sleepdata.errors import DataError

from .export import ConversionError
from .graph import UnsupportedModelError


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m converter", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("build", help="ONNX, int8 TFLite, C sources and a verified report")
    p.add_argument("--model", required=True, help="model folder (config.json + weights.pt)")
    p.add_argument("--out", required=True, help="output folder, e.g. build/model")
    p.add_argument(
        "--data",
        help="EDF folder for calibration and checks (default: simulated "
        "nights of generated subjects)",
    )
    p.add_argument("--check", type=int, default=2000, help="inputs checked against TFLM")
    p.add_argument("--seed", type=int, default=0)
    v = sub.add_parser("vectors", help="test vectors for the on-target unit tests")
    v.add_argument("--model", default="models/ulw_sleepnet")
    v.add_argument("--out", default="firmware/test/test_target/vectors.h")
    args = parser.parse_args(argv)
    if args.command == "vectors":
        from .vectors import write_vectors

        print(f"wrote {write_vectors(args.model, args.out)}")
        return 0
    from .build import build, render_markdown

    try:
        report = build(args.model, args.out, data=args.data, n_check=args.check, seed=args.seed)
    except (UnsupportedModelError, ConversionError, DataError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(render_markdown(report))
    print(f"artefacts and report in {args.out}")
    return 0 if all(report["targets_met"].values()) else 1
