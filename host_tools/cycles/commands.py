"""The cycle estimate's parts of the ``host_tools`` commands: ``bench --cycles`` and the stream
report's ``cycles_estimate`` (docs/cycles.md)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from ..errors import DeviceError
from ..report import write_outputs
from ..runfolder import RESULTS, read_meta, read_results, write_meta
from .calibrate import calibrate, read_measured
from .calibrate import render as render_calibration
from .errors import CyclesError
from .estimate import estimate_epochs, render
from .memory import load_settings
from .stream_sample import estimate_run_sample


def bench_cycles(args, model, epochs, *, firmware: Path | None) -> int:
    """``host_tools bench --cycles``: the estimate of ``epochs``, printed."""
    if args.port:
        raise DeviceError(
            "--cycles estimates cycles on an emulated board (--board); a real board measures "
            "them: plain `host_tools bench --port URL` reports its DWT cycle counts"
        )
    result = estimate_epochs(
        epochs,
        board=args.board,
        elf=firmware,
        model=model,
        model_dir=args.model,
        settings=load_settings(args.memory_profile),
        keep_trace=Path(args.keep_trace) if args.keep_trace else None,
    )
    print(json.dumps(result, indent=1) if args.json else render(result))
    return 0


def stream_cycles(args, out: Path, model, *, firmware: Path | None) -> dict:
    """The report's cycle estimate: a sample of the run's epochs re-sent to a traced board."""
    print(f"cycle estimate: {args.cycles_sample} epochs of the run again, traced", flush=True)
    meta = read_meta(out)
    try:
        meta["cycles_estimate"] = estimate_run_sample(
            out,
            board=args.board,
            elf=firmware,
            model=model,
            model_dir=model.folder,
            n=args.cycles_sample,
        )
    except CyclesError as exc:  # the run stands; the report says why it has no estimate
        print(f"warning: no cycle estimate: {exc}", file=sys.stderr)
        meta["cycles_estimate"] = {"made": False, "why": str(exc)}
    write_meta(out, meta)
    return write_outputs(out, read_results(out / RESULTS), meta, figures=False)


def calibrate_command(args, open_board) -> int:
    """``host_tools calibrate``: the real board's per-layer cycles (``--port``, or a recorded
    ``--measured`` bench --json file) against the emulated board's estimate of the same epochs;
    the fitted stalls written as a board profile. ``open_board(args)`` opens --port."""
    from ..bench import bench, fixed_epochs
    from ..reference import ModelFiles

    model = ModelFiles.load(args.model)
    if args.measured:
        measured = read_measured(args.measured)
        inputs = measured.get("inputs") or {}
        n, seed, psg = measured["epochs"], inputs.get("seed", 0), inputs.get("psg")
    elif args.port:
        n, seed, psg = args.epochs, args.seed, args.psg
    else:
        raise CyclesError("calibrate needs the real board (--port URL) or its --measured file")
    epochs = fixed_epochs(model, n, seed, psg)
    if not args.measured:
        dev, close = open_board(args)
        try:
            measured = bench(dev, model=model, epochs=epochs)
        finally:
            close()
        measured["inputs"] = {"seed": seed, "psg": psg}
        Path(args.out).with_suffix(".measured.json").write_text(json.dumps(measured, indent=1))
        measured = read_measured(Path(args.out).with_suffix(".measured.json"))
    estimate = estimate_epochs(epochs, board=args.board, model=model, model_dir=args.model)
    result = calibrate(measured, estimate, setting=args.setting, out=args.out)
    print(json.dumps(result, indent=1) if args.json else render_calibration(result))
    return 0
