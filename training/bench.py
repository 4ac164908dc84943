"""Benchmarks: the data path on one night (simulate, load, load from the cache), one
training epoch over a data folder with where its time goes and what an adversarial attack on
every sample would add, and the training throughput of 1..N data-parallel processes
(`bench_processes`; ``python -m training.bench --nproc 1 2 --data FOLDER``)."""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import socket
import tempfile
import time
from pathlib import Path

import numpy as np
import pyedflib
import torch
import torch.nn.functional as F

from sleepdata import cache, hypnogen, simulator
from sleepdata.noise import SignalStats
from sleepdata.normalise import Normaliser
from sleepdata.psg import pair_for

from . import distributed
from .loop import as_float
from .model import ULWSleepNet
from .rest import Attack, DifferentiableInput, attack, channel_scale
from .splits import load_recordings, model_inputs
from .train import TrainConfig, train_fold

#: One training epoch over the 37,614 epochs of the 35 nights of build/sim35 may take 60 s; a
#: benchmark on other nights is held to the same rate.
TRAIN_TARGET_S, TRAIN_TARGET_SAMPLES = 60, 37_614

#: Seconds the data path may take on one night.
DATA_TARGETS_S = {"simulate_s": 10, "load_uncached_s": 10, "load_cached_s": 3}


def bench_data(hypnogram: str | Path | None, seed: int) -> tuple[dict, bool]:
    """Times the data path on one night in a temporary folder: simulate its PSG from
    ``hypnogram`` (None: a generated one), load it without cache, load it from the cache.
    Returns the figures (seconds, rounded, with ``targets``: `DATA_TARGETS_S`) and whether every
    unrounded time met its target."""
    work = Path(tempfile.mkdtemp(prefix="bench-data-"))
    try:
        if hypnogram is not None:
            hyp = Path(hypnogram)
        else:
            hyp = hypnogen.generated_hypnograms(work / "hyp", 1, seed)[0]
        t0 = time.perf_counter()
        psg, hyp_copy = simulator.simulate_from_hypnogram(hyp, work / "night", seed=seed)
        t_sim = time.perf_counter() - t0
        pair = pair_for(psg, hyp_copy)
        t0 = time.perf_counter()
        rec = cache.load(pair, work / "cache")
        t_cold = time.perf_counter() - t0
        t0 = time.perf_counter()
        cache.load(pair, work / "cache")
        t_warm = time.perf_counter() - t0
        with pyedflib.EdfReader(str(psg)) as reader:
            hours = reader.file_duration / 3600
        times = {"simulate_s": t_sim, "load_uncached_s": t_cold, "load_cached_s": t_warm}
        met = all(times[k] <= limit for k, limit in DATA_TARGETS_S.items())
        result = {
            "night": psg.name,
            "recorded_hours": round(hours, 2),
            "epochs": len(rec),
            "simulate_s": round(t_sim, 2),
            "load_uncached_s": round(t_cold, 2),
            "load_cached_s": round(t_warm, 3),
            "targets": dict(DATA_TARGETS_S),
        }
        return result, met
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _timed(fn, repeats: int) -> float:
    fn()  # warm-up
    t0 = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - t0) / repeats


def block_breakdown(model: ULWSleepNet, batch: torch.Tensor, repeats: int = 5) -> dict:
    """Seconds per batch, forward + backward, of each extractor block and of the head."""
    out, h = {}, batch.unsqueeze(1)
    for i, block in enumerate(model.extractor):
        x = h.detach().requires_grad_()
        out[f"dssc{i + 1}"] = _timed(lambda b=block, x=x: b(x).sum().backward(), repeats)
        with torch.no_grad():
            h = block(x)
    feats = h.mean(dim=3).transpose(1, 2).flatten(1).detach().requires_grad_()
    out["head"] = _timed(lambda: model.head(feats).sum().backward(), repeats)
    return out


#: The attack REST-style fine-tuning runs on every training batch (the study's: the paper's
#: eq. 2, eps 10 uV, 10 iterations), and how many batches time it.
BENCH_ATTACK, ATTACK_BATCHES = Attack("paper", 10.0, 10), 3


def attack_cost(
    model: ULWSleepNet,
    recs,
    norm: Normaliser,
    y: torch.Tensor,
    order: np.ndarray,
    batch_size: int,
    seed: int,
) -> dict:
    """Seconds the `BENCH_ATTACK` takes on ``ATTACK_BATCHES`` batches of raw microvolts (the
    first batches of ``order`` over the recordings' epochs in turn, labels ``y``), and that rate
    extrapolated to one epoch over every sample."""
    starts = np.cumsum([0] + [len(r) for r in recs])
    n = int(starts[-1])

    def microvolts(idx: np.ndarray) -> torch.Tensor:
        night = np.searchsorted(starts, idx, side="right") - 1
        return torch.from_numpy(
            np.stack([recs[r].epochs[i - starts[r]] for r, i in zip(night, idx, strict=True)])
        )

    inp = DifferentiableInput(norm)
    scale = channel_scale(SignalStats.fit([r.epochs for r in recs], source="bench"))
    gen = torch.Generator().manual_seed(seed)
    n_batches = min(ATTACK_BATCHES, math.ceil(n / batch_size))
    seconds = 0.0
    for b in range(n_batches):
        idx = np.sort(order[b * batch_size : (b + 1) * batch_size])
        x_uv = microvolts(idx)
        t0 = time.perf_counter()
        attack(model, inp, x_uv, y[idx], BENCH_ATTACK, scale, gen)
        seconds += time.perf_counter() - t0
    per_batch = seconds / n_batches
    return {
        "attack": str(BENCH_ATTACK),
        "timed_batches": n_batches,
        "per_batch_s": round(per_batch, 2),
        "epoch_s_extrapolated": round(per_batch * n / batch_size, 1),
        "note": f"extrapolated from {n_batches} batches of {batch_size} to all {n:,} "
        "samples; added to the training epoch when every batch is attacked",
    }


def bench_train(
    data: str | Path, cache_dir, *, batch_size: int = 128, compile: bool = False, seed: int = 0
) -> dict:
    recs = load_recordings(data, cache_dir)
    t0 = time.perf_counter()
    norm = Normaliser.fit([r.epochs for r in recs], seed=seed)
    x = model_inputs(recs, norm)
    y = torch.from_numpy(np.concatenate([r.labels for r in recs]).astype(np.int64))
    prep_s = time.perf_counter() - t0
    torch.manual_seed(seed)
    model = ULWSleepNet()
    step = torch.compile(model) if compile else model
    opt = torch.optim.Adam(model.parameters(), amsgrad=True)
    order = np.random.default_rng(seed).permutation(len(x))
    times = {"batch_to_float": 0.0, "forward": 0.0, "backward": 0.0, "optimizer": 0.0}
    t_epoch = time.perf_counter()
    for b in range(math.ceil(len(x) / batch_size)):
        idx = np.sort(order[b * batch_size : (b + 1) * batch_size])
        t = time.perf_counter()
        xb = as_float(x[idx])
        t1 = time.perf_counter()
        loss = F.cross_entropy(step(xb), y[idx])
        t2 = time.perf_counter()
        opt.zero_grad()
        loss.backward()
        t3 = time.perf_counter()
        opt.step()
        t4 = time.perf_counter()
        for k, a, z in (
            ("batch_to_float", t, t1),
            ("forward", t1, t2),
            ("backward", t2, t3),
            ("optimizer", t3, t4),
        ):
            times[k] += z - a
    epoch_s = time.perf_counter() - t_epoch
    blocks = block_breakdown(model, as_float(x[:batch_size]))
    total_blocks = sum(blocks.values())
    return {
        "samples": len(x),
        "nights": len(recs),
        "batch_size": batch_size,
        "compile": compile,
        "threads": torch.get_num_threads(),
        "epoch_s": round(epoch_s, 1),
        "samples_per_s": round(len(x) / epoch_s),
        "input_prep_s": round(prep_s, 1),
        "epoch_breakdown_s": {k: round(v, 1) for k, v in times.items()},
        "share_by_block": {k: round(v / total_blocks, 3) for k, v in blocks.items()},
        "attack_per_epoch": attack_cost(model, recs, norm, y, order, batch_size, seed),
        "target_epoch_s": round(TRAIN_TARGET_S * len(x) / TRAIN_TARGET_SAMPLES, 1),
        "target": f"{TRAIN_TARGET_S} s per {TRAIN_TARGET_SAMPLES:,} epochs (the 35 nights of "
        "build/sim35), in proportion to the epochs here",
    }


# ------------------------------------------------------------------------------------------
# Data-parallel throughput


def _throughput_rank(rank: int, nproc: int, port: int, job: dict, results) -> None:
    """One rank in torchrun's environment: `train_fold` (the training code itself, under
    DistributedDataParallel when nproc > 1) on ``job``'s nights for ``job["epochs"]`` epochs
    of ``job["batches"]`` global batches; rank 0 puts the seconds of each epoch's batch loop
    (the all-reduces keep the ranks in step) and its torch threads into ``results``."""
    os.environ.update(
        {
            "RANK": str(rank),
            "LOCAL_RANK": str(rank),
            "WORLD_SIZE": str(nproc),
            "LOCAL_WORLD_SIZE": str(nproc),
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": str(port),
        }
    )
    if nproc == 1:  # a plain single process, as without torchrun
        for k in ("RANK", "WORLD_SIZE"):
            del os.environ[k]
    ctx = distributed.setup("cpu")
    if job["threads"] is not None:
        torch.set_num_threads(job["threads"])
    try:
        recs = load_recordings(job["data"], job["cache"])[: job["nights"]]
        norm = Normaliser.fit([r.epochs for r in recs], seed=0)
        x = model_inputs(recs, norm)
        y = np.concatenate([r.labels for r in recs])
        data = {"train": (x, y), "val": (x[:64], y[:64])}
        cfg = TrainConfig(
            epochs=job["epochs"],
            batch_size=job["batch_size"],
            samples_per_epoch=job["batches"] * job["batch_size"],
            seed=0,
        )
        folder = Path(job["work"]) / f"p{nproc}"
        history = train_fold(folder, data, ULWSleepNet().config, cfg, {}, ctx, timed=True)
        if ctx.is_main:
            results.put(([row["train_s"] for row in history], torch.get_num_threads()))
    finally:
        distributed.cleanup()


def bench_processes(
    data: str | Path,
    cache_dir,
    nprocs: tuple[int, ...] = (1, 2),
    *,
    batch_size: int = 128,
    batches: int = 8,
    epochs: int = 3,
    nights: int = 4,
    threads: int | None = None,
) -> dict:
    """Training samples per second of `train_fold` with each number of processes of
    ``nprocs`` (gloo on localhost, each rank with the machine's cores divided among the
    ranks as torch threads; ``threads``: that many instead), on the first ``nights`` nights of
    ``data``: ``epochs`` epochs of ``batches`` global batches of ``batch_size``, each epoch's
    batch loop timed (validation, checkpoint and plots left out). The first epoch warms up;
    the rate is that of the best later epoch (the least disturbed by other load)."""
    import torch.multiprocessing as mp

    ctx = mp.get_context("spawn")
    out = {"cores": len(os.sched_getaffinity(0)), "batch_size": batch_size, "runs": []}
    with tempfile.TemporaryDirectory(prefix="bench-ddp-") as work:
        job = {
            "data": str(data),
            "cache": cache_dir,
            "nights": nights,
            "batch_size": batch_size,
            "batches": batches,
            "epochs": max(2, epochs),
            "work": work,
            "threads": threads,
        }
        for nproc in nprocs:
            with socket.socket() as sock:
                sock.bind(("127.0.0.1", 0))
                port = sock.getsockname()[1]
            results = ctx.SimpleQueue()
            mp.spawn(_throughput_rank, args=(nproc, port, job, results), nprocs=nproc)
            seconds, used = results.get()
            out["runs"].append(
                {
                    "processes": nproc,
                    "threads_per_process": used,
                    "epoch_batch_loop_s": seconds,
                    "samples_per_s": round(batches * batch_size / min(seconds[1:]), 1),
                }
            )
    return out


if __name__ == "__main__":
    from sleepdata.cache import default_cache

    parser = argparse.ArgumentParser(
        prog="python -m training.bench", description=bench_processes.__doc__
    )
    parser.add_argument("--data", required=True, help="folder of PSG/hypnogram pairs")
    parser.add_argument("--cache", default=default_cache(), help="epoch cache folder")
    parser.add_argument("--nproc", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--batches", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=3, help="the first warms up (>= 2)")
    parser.add_argument("--nights", type=int, default=4)
    parser.add_argument("--threads", type=int, help="torch threads per process")
    a = parser.parse_args()
    figures = bench_processes(
        a.data,
        a.cache,
        tuple(a.nproc),
        batch_size=a.batch_size,
        batches=a.batches,
        epochs=a.epochs,
        nights=a.nights,
        threads=a.threads,
    )
    print(json.dumps(figures, indent=1))
