"""The data-at-scale benchmark (`make bench-scale`, docs/data.md "A cohort larger than memory").

A Sleep-EDF-78-sized cohort of generated nights (153 by default) is simulated and prepared with
``--jobs``, then trained on for one epoch, each step a separate process whose peak resident
memory is read from the kernel (``os.wait4``). Also measured: loading a night from the cache
(median and worst over the cohort) and the peak memory of reading the longest night from its EDF
file. The figures go to WORK/bench-scale.json and are printed with the targets:

- one training epoch over the cohort with a peak RSS <= 4 GB;
- loading a night from the cache <= 0.1 s.

Every step is resumable: a step whose output is complete is not redone (its earlier time is
kept), so the benchmark can be finished in pieces. Simulated nights, not real recordings.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

RSS_TARGET_BYTES = 4 * 10**9
LOAD_TARGET_S = 0.1


def _run(args: list[str], log: Path) -> dict:
    """Run ``python -m training ARGS`` to completion: wall time, CPU time, peak RSS."""
    t0 = time.monotonic()
    with open(log, "w") as f:
        proc = subprocess.Popen([sys.executable, "-m", "training", *args], stdout=f, stderr=f)
        _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.monotonic() - t0
    if proc.returncode != 0:
        raise SystemExit(f"bench-scale: {' '.join(args[:1])} failed ({proc.returncode}); see {log}")
    return {
        "command": "python -m training " + " ".join(args),
        "wall_s": round(wall, 1),
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 1),
        # ru_maxrss is in KiB on Linux; for a step with worker processes it is the largest
        # single process (the kernel does not add them up)
        "peak_rss_bytes": usage.ru_maxrss * 1024,
    }


def _step(results: dict, name: str, done: bool, args: list[str], work: Path) -> None:
    if done and name in results:
        print(f"{name}: done earlier ({results[name]['wall_s']} s)")
        return
    print(f"{name}: python -m training {' '.join(args)}", flush=True)
    results[name] = _run(args, work / f"{name}.log")
    print(f"{name}: {results[name]['wall_s']} s", flush=True)


def _load_times(data: Path, cache_dir: Path) -> dict:
    from sleepdata import cache
    from sleepdata.psg import discover_pairs

    eager, lazy = [], []
    for pair in discover_pairs(data):
        t0 = time.perf_counter()
        cache.load(pair, cache_dir, lazy=True)
        t1 = time.perf_counter()
        rec = cache.load(pair, cache_dir)
        t2 = time.perf_counter()
        lazy.append(t1 - t0)
        eager.append(t2 - t1)
        del rec
    return {
        "nights": len(eager),
        "epochs_in_memory_median_s": round(statistics.median(eager), 4),
        "epochs_in_memory_max_s": round(max(eager), 4),
        "on_demand_median_s": round(statistics.median(lazy), 4),
        "on_demand_max_s": round(max(lazy), 4),
        "note": "cache.load after the first run: entry found by the remembered file digests; "
        "'in memory' reads the night's int16 epochs and converts them to float32 microvolts, "
        "'on demand' (training) reads labels and metadata only",
    }


def _longest_night_read(data: Path) -> dict:
    from sleepdata.psg import discover_pairs

    longest = max(discover_pairs(data), key=lambda p: p.psg.stat().st_size)
    code = (
        "from sleepdata.psg import load_recording, pair_for; "
        f"r = load_recording(pair_for({str(longest.psg)!r})); print(len(r))"
    )
    base = "import numpy, pyedflib, sleepdata.psg"
    out = {}
    for name, snippet in (("reading", code), ("imports_only", base)):
        t0 = time.monotonic()
        proc = subprocess.Popen([sys.executable, "-c", snippet], stdout=subprocess.DEVNULL)
        _, status, usage = os.wait4(proc.pid, 0)
        if os.waitstatus_to_exitcode(status) != 0:
            raise SystemExit(f"bench-scale: reading {longest.psg} failed")
        out[name] = {"peak_rss_bytes": usage.ru_maxrss * 1024, "wall_s": time.monotonic() - t0}
    return {
        "psg": longest.psg.name,
        "psg_bytes": longest.psg.stat().st_size,
        "peak_rss_bytes": out["reading"]["peak_rss_bytes"],
        "peak_rss_of_the_imports_bytes": out["imports_only"]["peak_rss_bytes"],
    }


def _split(nights: int) -> tuple[str, str]:
    """Test and validation subjects of the training step: the first and the next tenth of the
    generated subjects (numbered from 90, two nights each)."""
    from sleepdata.hypnogen import FIRST_GENERATED_SUBJECT

    subjects = list(range(FIRST_GENERATED_SUBJECT, FIRST_GENERATED_SUBJECT + (nights + 1) // 2))
    k = max(1, len(subjects) // 10)
    if len(subjects) < 3:
        raise SystemExit("bench-scale: --nights must make at least 3 subjects (5 nights)")
    return ",".join(map(str, subjects[:k])), ",".join(map(str, subjects[k : 2 * k]))


def bench_scale(work: Path, nights: int, jobs: int, seed: int) -> dict:
    work.mkdir(parents=True, exist_ok=True)
    out_file = work / "bench-scale.json"
    results = json.loads(out_file.read_text()) if out_file.is_file() else {}
    data, cache_dir = work / f"sim{nights}", work / "cache"
    j = ["--jobs", str(jobs)]
    sim_args = ["simulate", "--nights", str(nights), "--seed", str(seed), "--out", str(data)]
    _step(results, "simulate", (data / ".done").is_file(), [*sim_args, *j], work)
    (data / ".done").touch()
    _step(results, "prepare", (work / "prepare.done").is_file(),
          ["prepare", str(data), "--out", str(cache_dir), *j], work)  # fmt: skip
    (work / "prepare.done").touch()
    results["prepare_again_all_cached"] = _run(
        ["prepare", str(data), "--out", str(cache_dir), *j], work / "prepare-again.log"
    )
    test, val = _split(nights)
    train_args = ["train", "--data", str(data), "--cache", str(cache_dir), "--out",
                  str(work / "train"), "--epochs", "1", "--test-subjects", test,
                  "--val-subjects", val, "--seed", str(seed)]  # fmt: skip
    _step(results, "train_one_epoch", (work / "train" / "metrics.json").is_file(), train_args, work)
    results["cache_load"] = _load_times(data, cache_dir)
    results["longest_night_from_edf"] = _longest_night_read(data)
    from sleepdata.psg import discover_pairs

    n_epochs = sum(len(json.loads(p.read_text())["labels"]) for p in cache_dir.glob("*.json"))
    results["cohort"] = {
        "nights": nights,
        "epochs": n_epochs,
        "float32_in_memory_bytes": n_epochs * 4 * 3000 * 4,
        "cache_bytes": sum(p.stat().st_size for p in cache_dir.glob("*.npy")),
        "psg_bytes": sum(p.psg.stat().st_size for p in discover_pairs(data)),
        "note": "simulated nights (generated hypnograms), not real recordings",
    }
    rss = results["train_one_epoch"]["peak_rss_bytes"]
    load = results["cache_load"]["epochs_in_memory_max_s"]
    results["targets"] = {
        "train_epoch_peak_rss_le_4GB": {"value_bytes": rss, "met": rss <= RSS_TARGET_BYTES},
        "cache_load_le_0.1s": {"value_s": load, "met": load <= LOAD_TARGET_S},
    }
    results["machine"] = {"cores": os.cpu_count(), "jobs": jobs}
    out_file.write_text(json.dumps(results, indent=1) + "\n")
    return results
