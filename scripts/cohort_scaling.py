"""The cohort benchmark's figures (`make bench-cohort`): for cohort folders streamed through 1, 2,
... emulated boards, the wall time, epochs/s, scaling efficiency (n-board throughput / (n x the
1-board throughput)) and where the CPU time went (the host process; its child processes: the boards'
QEMUs and the reference processes).

    python scripts/cohort_scaling.py build/bench-cohort/boards-1 build/bench-cohort/boards-2
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path


def figures(folder: Path) -> dict:
    r = json.loads((folder / "report.json").read_text())
    sessions = r["sessions"]
    boards = {s["boards"] for s in sessions}
    if len(boards) != 1:
        raise SystemExit(f"{folder}: sessions with different board counts {sorted(boards)}")
    wall = sum(s["wall_s"] for s in sessions)
    return {
        "folder": str(folder),
        "boards": boards.pop(),
        "nights": f"{r['nights_done']} done, {r['nights_failed']} failed",
        "epochs": r["epochs_streamed"],
        "wall_s": wall,
        "epochs_per_s": r["epochs_per_s"],
        "host_cpu_ms_per_epoch": r["host_cpu_ms_per_epoch"],
        "host_cpu_share": sum(s["cpu_s"] for s in sessions) / wall,
        "boards_cpu_share": sum(s.get("board_processes_cpu_s", 0.0) for s in sessions) / wall,
    }


def main(argv: list[str]) -> int:
    rows = [figures(Path(a)) for a in argv]
    base = next((r for r in rows if r["boards"] == 1), None)
    print(f"{os.cpu_count()} cores; CPU shares are core-seconds per wall second")
    for r in rows:
        eff = ""
        if base is not None and r is not base:
            ratio = r["epochs_per_s"] / (r["boards"] * base["epochs_per_s"])
            eff = f"; scaling efficiency {ratio:.2f}"
        print(
            f"{r['boards']} board(s): {r['nights']}, {r['epochs']:,} epochs in "
            f"{r['wall_s']:.0f} s, {r['epochs_per_s']:.2f} epochs/s; "
            f"host CPU {r['host_cpu_ms_per_epoch']:.1f} ms/epoch "
            f"(host {r['host_cpu_share']:.2f}, child processes (QEMUs, references) "
            f"{r['boards_cpu_share']:.2f} of a core)"
            f"{eff}"
        )
    print(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
