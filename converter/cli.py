"""``python -m converter build --model DIR --out OUT`` and ``python -m converter vectors``.

``build`` makes OUT a deployable model folder (the model's config.json and weights.pt, the
.onnx and int8 .tflite, the firmware's generated C and the checked report); then
``make -C firmware BOARD=emu-m4 MODEL_DIR=OUT BUILD=build/OUT-fw`` builds firmware for it and
``python -m host_tools stream NIGHT --model OUT`` streams a night through an emulated board
running it (docs/streaming.md).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from sleepdata.cli import ArgumentParser
from sleepdata.errors import DataError

from .export import ConversionError
from .graph import UnsupportedModelError
from .quiet import silence_tensorflow_logs


def main(argv: Sequence[str] | None = None) -> int:
    parser = ArgumentParser(prog="python -m converter", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("build", help="ONNX, int8 TFLite, C sources and a verified report")
    p.add_argument(
        "--model",
        required=True,
        help="model folder (config.json + weights.pt), e.g. the RUN/split/model that "
        "python -m training train writes",
    )
    p.add_argument(
        "--out",
        required=True,
        help="output folder, e.g. build/model: becomes a deployable model folder (--model OUT "
        "for host_tools, MODEL_DIR=OUT for the firmware)",
    )
    p.add_argument(
        "--data",
        help="EDF folder for calibration and checks (default: simulated "
        "nights of generated subjects)",
    )
    p.add_argument("--check", type=int, default=2000, help="inputs checked against TFLM")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--shortcut",
        choices=("composed", "as-trained"),
        default="composed",
        help="each DSSC shortcut stream as one composed unit (exact in float, fewer MACs; "
        "default) or as the two trained units",
    )
    v = sub.add_parser("vectors", help="test vectors for the on-target unit tests")
    v.add_argument("--model", default="models/ulw_sleepnet")
    v.add_argument("--out", default="firmware/test/test_target/vectors.h")
    args = parser.parse_args(argv)
    silence_tensorflow_logs()  # (before anything imports TensorFlow)
    if args.command == "vectors":
        from .vectors import write_vectors

        print(f"wrote {write_vectors(args.model, args.out)}")
        return 0
    from .build import build, render_markdown

    try:
        report = build(
            args.model,
            args.out,
            data=args.data,
            n_check=args.check,
            seed=args.seed,
            compose_shortcut=args.shortcut == "composed",
        )
    except (UnsupportedModelError, ConversionError, DataError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(render_markdown(report))
    out = Path(args.out).resolve()
    # the folder host_tools' emulator builds this model's firmware in, so that both share it
    build_dir = f"build/emu-m4-{report['model_hash'][:8]}"
    print(
        f"deployable model folder {args.out}; firmware for it: make -C firmware BOARD=emu-m4 "
        f"MODEL_DIR={out} BUILD={build_dir} (any board of firmware/boards/boards.ini); "
        f"stream through the emulated board: python -m host_tools stream PSG.edf --model "
        f"{args.out} (builds that firmware when missing)"
    )
    return 0 if all(report["targets_met"].values()) else 1
