"""The long header-mutation fuzz run of the PSG (or hypnogram) reading path.

    .venv/bin/python scripts/fuzz_edf.py --mutants 20000 --seed 0
    .venv/bin/python scripts/fuzz_edf.py --seconds 300 --seed 1000000
    .venv/bin/python scripts/fuzz_edf.py --target hypnogram --mutants 2000

Mutant k uses seed S + k, so any finding is reproduced by its seed alone
(``--seed SEED --mutants 1``). The mutator and the oracle (an independent EDF reader) are those
of the short run in `make test`: tests/sleepdata/edf_fuzz.py. Prints executions, loaded /
refused counts, the refusal reasons and every finding (crash, inconsistent values, refusal
that is not one line naming the file, hang, output on stdout/stderr); exits 1 on any finding.
"""

from __future__ import annotations

import argparse
import faulthandler
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.sleepdata.edf_fuzz import TIMEOUT_S, fuzz, make_base  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mutants", type=int, default=None, help="number of mutants to run")
    parser.add_argument("--seconds", type=float, default=None, help="stop after this long")
    parser.add_argument("--seed", type=int, default=0, help="seed of the first mutant")
    parser.add_argument("--target", choices=("psg", "hypnogram"), default="psg")
    args = parser.parse_args(argv)
    if args.mutants is None and args.seconds is None:
        args.mutants = 1000
    if any(v is not None and v <= 0 for v in (args.mutants, args.seconds)):
        print("error: --mutants and --seconds must be positive", file=sys.stderr)
        return 2
    kinds, reasons, findings = Counter(), Counter(), []
    began = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="fuzz-edf-") as tmp:
        base = make_base(Path(tmp) / "base")
        work = Path(tmp) / "mutant"
        work.mkdir()
        count = args.mutants if args.mutants is not None else 10**12
        # A hang inside C ignores the per-mutant alarm: dump every thread's stack and exit. The
        # dump goes to a copy of fd 2, as fd 2 itself is redirected while a mutant runs.
        watchdog = os.fdopen(os.dup(2), "w")
        faulthandler.dump_traceback_later(3 * TIMEOUT_S, exit=True, file=watchdog)
        for outcome in fuzz(base, work, range(args.seed, args.seed + count), target=args.target):
            faulthandler.dump_traceback_later(3 * TIMEOUT_S, exit=True, file=watchdog)
            kinds[outcome.kind] += 1
            if outcome.kind == "refused":
                reasons[outcome.reason] += 1
            if outcome.finding:
                findings.append(outcome)
                print(f"FINDING {outcome.kind}: {outcome.reason} [{outcome.mutation}]", flush=True)
            if args.seconds is not None and time.monotonic() - began >= args.seconds:
                break
        faulthandler.cancel_dump_traceback_later()
        watchdog.close()
    elapsed = time.monotonic() - began
    executions = sum(kinds.values())
    print(f"target: {args.target}; seeds {args.seed}..{args.seed + executions - 1}")
    print(f"executions: {executions:,} in {elapsed:.1f} s ({executions / elapsed:.0f}/s)")
    print(f"loaded: {kinds['loaded']:,}  refused: {kinds['refused']:,}  findings: {len(findings)}")
    print("refusal reasons:")
    for reason, n in reasons.most_common():
        print(f"  {n:7,}  {reason}")
    by_kind = Counter(f.kind for f in findings)
    print("findings: " + (", ".join(f"{k} {n}" for k, n in by_kind.items()) or "none"))
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
