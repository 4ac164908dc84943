"""Benchmark: one training epoch over a data folder, and where the time goes."""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from sleepdata.normalise import Normaliser

from .model import ULWSleepNet
from .train import as_float, load_recordings, model_inputs


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
        "target_epoch_s": 60,
    }
