"""``host_tools stream``: one night through one board (host_tools.stream), or a cohort of nights
through several boards (host_tools.cli_cohort)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from .cli_boards import firmware_arg, open_device, port_label


def cmd_stream(args, exit_error: int, exit_interrupted: int) -> int:
    from sleepdata.progress import progress
    from sleepdata.psg import pair_for

    from .cli_cohort import cmd_cohort, is_cohort_request
    from .inputs import check_adversarial, read_adversarial_file
    from .reference import ModelFiles
    from .rendering import faults_text, summary_text
    from .stream import StreamInterrupted, stream

    if is_cohort_request(args):
        return cmd_cohort(args, args.interrupts, exit_error, exit_interrupted)
    args.night, args.port = args.night[0], args.port[0] if args.port else None
    started = time.perf_counter()
    # a missing file, model folder or an adversarial file for another record or model fails
    # before a board starts
    pair = pair_for(args.night, args.hypnogram)
    model = ModelFiles.load(args.model)
    if args.adversarial:
        adv = read_adversarial_file(args.adversarial)
        check_adversarial(adv, pair.name, model)
    out = Path(args.out) if args.out else Path("runs") / "stream" / Path(args.night).name[:8]
    options = stream_options(args, model.folder)
    bar = None

    def on_result(row, done: int, total: int) -> None:
        nonlocal bar
        if bar is None:
            bar = progress(total=total, initial=done - 1, unit="epoch", desc="stream")
        bar.update(1)

    interrupted = None
    dev, close = open_device(args)
    try:
        report = stream(
            dev,
            args.night,
            out,
            options,
            port_label=port_label(args),
            on_result=on_result,
            started=started,
        )
    except StreamInterrupted as exc:
        interrupted = exc
    finally:
        # the bar ends (and the emulator stops) before any message, so none lands inside it
        if bar is not None:
            bar.close()
        close()
    if interrupted is not None:
        print(args.interrupts.message(str(interrupted)), file=sys.stderr)
        return exit_interrupted
    if not report:
        print(
            f"nothing to stream: {out} already holds every planned epoch "
            f"(host_tools report {out} renders it again)"
        )
        return 0
    if args.cycles_sample and not args.port:
        from .cycles.commands import stream_cycles

        report = stream_cycles(args, out, model, firmware=firmware_arg(args))
    print(summary_text(report, out))
    if report.get("faults"):
        print(faults_text(report))
    return 0


def stream_options(args, model_dir: Path):
    """The StreamOptions of the command line (a cohort's apply to each of its nights)."""
    from .stream import StreamOptions

    return StreamOptions(
        hypnogram=Path(args.hypnogram) if args.hypnogram else None,
        start=args.start,
        epochs=args.epochs,
        realtime=args.realtime,
        noise=args.noise,
        seed=args.seed,
        resume=args.resume,
        model_dir=model_dir,
        adversarial=Path(args.adversarial) if args.adversarial else None,
    )
