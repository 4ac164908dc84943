"""The one epoch loop of training and fine-tuning, its resumable checkpoint, and inference.

``fit`` runs epochs of shuffled mini-batches, validates after each, keeps the best epoch in
FOLDER/model and writes FOLDER/checkpoint.pt after every epoch, so that stopping and calling it
again with the same arguments continues where it stopped and ends with the same weights as an
uninterrupted run. What is trained on and how it is scored comes from a `Recipe`: cross-validated
training (training/train.py) and REST fine-tuning (training/finetune.py) are its two users.

Under torchrun (training/distributed.py) every rank runs the loop over the same batches (the
recipe trains on its share of each); rank 0 alone writes the folder, and a resumed run restores
rank 0's checkpoint on every rank, with each rank's own dropout generator.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from sleepdata.normalise import INPUT_SCALE
from sleepdata.progress import PlainProgress, progress
from sleepdata.stages import N_STAGES

from . import distributed
from .model import save_model


def as_float(x_int8: np.ndarray) -> torch.Tensor:
    """int8 model inputs (n, 4, 3000) -> the float values the model reads (q / 16)."""
    return torch.from_numpy(x_int8).to(torch.float32) * INPUT_SCALE


def predict(model: nn.Module, x_int8: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """Softmax probabilities (n, 5) of int8 inputs (n, 4, 3000), in eval mode, computed on the
    model's device and returned on the CPU.

    Small batches are faster on CPU: at 512 epochs each activation tensor is ~200 MB and the
    time goes to allocating it (2.5x slower than 64 on the 2-core development machine)."""
    model.eval()
    device = next(model.parameters()).device
    out = []
    with torch.no_grad():
        for i in range(0, len(x_int8), batch_size):
            logits = model(as_float(x_int8[i : i + batch_size]).to(device))
            out.append(torch.softmax(logits.float(), dim=1).cpu())
    return torch.cat(out).numpy() if out else np.zeros((0, N_STAGES), np.float32)


# ------------------------------------------------------------------------------------------
# Checkpoints


def save_checkpoint(path: Path, model, opt, sched, rng, gen, **extra) -> None:
    """Everything a resumed run needs, written atomically (a crash leaves the previous one):
    model, optimiser, scheduler, the numpy generator ``rng``, the torch generator ``gen`` and
    torch's global generator (dropout draws from it), plus ``extra``."""
    tmp = path.with_name(path.name + ".part")
    torch.save(
        {
            "model": model.state_dict(),
            "optimizer": opt.state_dict(),
            "scheduler": sched.state_dict(),
            "numpy_rng": rng.bit_generator.state,
            "torch_rng": torch.get_rng_state(),
            "torch_gen": gen.get_state(),
            **extra,
        },
        tmp,
    )
    tmp.replace(path)


def load_checkpoint(path: Path, model, opt, sched, rng, gen) -> dict | None:
    """Restores from ``path``, if it exists, what `save_checkpoint` saved; returns the whole
    saved state (for the caller's own entries), else None. Under torchrun rank 0 reads the
    file and every rank restores what it read."""
    exists = distributed.is_main() and path.is_file()
    state = distributed.share(
        torch.load(path, map_location="cpu", weights_only=False) if exists else None
    )
    if state is None:
        return None
    model.load_state_dict(state["model"])
    opt.load_state_dict(state["optimizer"])
    sched.load_state_dict(state["scheduler"])
    rng.bit_generator.state = state["numpy_rng"]
    # Checkpoints written before training and fine-tuning shared this loop hold only one of
    # the two torch generators: training's the global one, fine-tuning's its own.
    if "torch_rng" in state:
        torch.set_rng_state(state["torch_rng"])
    if "torch_gen" in state:
        gen.set_state(state["torch_gen"])
    return state


# ------------------------------------------------------------------------------------------
# The loop


@dataclass(frozen=True)
class Recipe:
    """What `fit` trains on and how it scores an epoch.

    ``batch_loss(idx, rng, gen)``: the loss terms of the batch of training samples ``idx``
    (sorted indices), the model in training mode; the term "loss" is minimised. ``rng`` (numpy)
    and ``gen`` (torch) are the loop's generators, for random augmentation: they are part of
    the checkpoint. Each term's mean over the epoch's samples goes to the history as
    ``train_<term>``. ``validate()``: the epoch's validation figures, added to its history row.
    The epoch with the largest ``validate()[select]`` is saved to FOLDER/model, its config.json
    holding ``selected_epoch`` and the figures named in ``recorded`` (None: all of them).
    ``progress(row)``: the progress bar's figures from a history row. ``timed``: history rows
    also hold ``train_s`` and ``val_s``, the seconds spent training and validating."""

    batch_loss: Callable[[np.ndarray, np.random.Generator, torch.Generator], dict]
    validate: Callable[[], dict[str, float]]
    select: str
    progress: Callable[[dict], dict[str, str]]
    recorded: tuple[str, ...] | None = None
    timed: bool = False


def _rank_rng_states() -> list[dict]:
    """Every rank's global torch generator states (CPU, and CUDA's when there is one), in
    rank order: dropout draws from them, differently on each rank."""
    own = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        own["cuda"] = torch.cuda.get_rng_state()
    return distributed.gather(own)


def _restore_rank_rng(states: list[dict]) -> None:
    """This rank's generator states from a checkpoint's `_rank_rng_states` (a rank beyond
    those the checkpoint's run had keeps its freshly seeded generator)."""
    rank = distributed.rank()
    if rank < len(states):
        torch.set_rng_state(states[rank]["cpu"])
        if "cuda" in states[rank] and torch.cuda.is_available():
            torch.cuda.set_rng_state(states[rank]["cuda"])


def fit(
    folder: Path,
    model: nn.Module,
    opt: torch.optim.Optimizer,
    sched: torch.optim.lr_scheduler.LRScheduler,
    recipe: Recipe,
    *,
    epochs: int,
    samples: int,
    per_epoch: int,
    batch_size: int,
    seed: int,
    extra: dict,
    scaler: torch.amp.GradScaler | None = None,
) -> list[dict]:
    """Trains ``model`` for ``epochs`` epochs; returns the history (one dict per epoch), also
    written to FOLDER/history.json. Each epoch draws ``per_epoch`` of the ``samples`` training
    samples without replacement (a fresh permutation), in batches of ``batch_size``; the
    optimiser and then the scheduler step after every batch. The numpy and torch generators
    of the recipe start from ``seed``. ``extra`` goes into the selected model's config.json.
    ``scaler``: fp16 mixed precision's GradScaler (None: plain backward and step). Resumes
    from FOLDER/checkpoint.pt when it exists. Under torchrun the loss terms of the history are
    the means over the ranks of what the recipe returned, and rank 0 alone writes."""
    main = distributed.is_main()
    if main:
        folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(seed)
    history: list[dict] = []
    best, start = -1.0, 0
    ckpt = folder / "checkpoint.pt"
    state = load_checkpoint(ckpt, model, opt, sched, rng, gen)
    if state is not None:
        # "best_f1": the name in checkpoints of training before the loops were merged
        best = state["best"] if "best" in state else state["best_f1"]
        history, start = state["history"], state["epoch"]
        if "rank_rng" in state:
            _restore_rank_rng(state["rank_rng"])
        if scaler is not None and "scaler" in state:
            scaler.load_state_dict(state["scaler"])
    n_batches = math.ceil(per_epoch / batch_size)
    bar = progress(
        range(start, epochs),
        desc=folder.name,
        unit="epoch",
        initial=start,
        total=epochs,
        disable=not main,
    )
    for epoch in bar:
        order = rng.permutation(samples)[:per_epoch]
        totals: dict[str, float] = {}
        t0 = time.perf_counter()
        batches = progress(
            range(n_batches),
            desc=f"epoch {epoch + 1}",
            unit="batch",
            nested=True,
            disable=not main,
        )
        for b in batches:
            idx = np.sort(order[b * batch_size : (b + 1) * batch_size])
            terms = recipe.batch_loss(idx, rng, gen)
            opt.zero_grad()
            if scaler is None:
                terms["loss"].backward()
                opt.step()
            else:
                scaler.scale(terms["loss"]).backward()
                scaler.step(opt)
                scaler.update()
            sched.step()
            values = [v.item() if isinstance(v, torch.Tensor) else float(v) for v in terms.values()]
            for k, value in zip(terms, distributed.mean_over_ranks(values), strict=True):
                totals[k] = totals.get(k, 0.0) + value * len(idx)
        train_s = time.perf_counter() - t0
        val = recipe.validate()
        row = {"epoch": epoch + 1, **{f"train_{k}": v / per_epoch for k, v in totals.items()}}
        row.update(val)
        if recipe.timed:
            row["train_s"] = round(train_s, 1)
            row["val_s"] = round(time.perf_counter() - t0 - train_s, 1)
        history.append(row)
        # an undefined score (one stage in truth and prediction alike: None) never wins
        score = val[recipe.select]
        if score is not None and score > best:
            best = score
            kept = val if recipe.recorded is None else {k: val[k] for k in recipe.recorded}
            if main:
                selected = {**extra, "selected_epoch": epoch + 1, **kept}
                save_model(folder / "model", model, selected)
        figures = recipe.progress(row)
        if isinstance(bar, PlainProgress):
            # A log gets each epoch's figures as a line of their own (a bar shows them inline);
            # under torchrun rank 0 alone writes them (the other ranks' are the same).
            shown = ", ".join(f"{k} {v}" for k, v in figures.items())
            if main:
                bar.write(f"{folder.name}: epoch {epoch + 1}/{epochs}: {shown}")
        else:
            bar.set_postfix(figures)
        own = {"scaler": scaler.state_dict()} if scaler is not None else {}
        if distributed.world_size() > 1:
            own["rank_rng"] = _rank_rng_states()
        if main:
            save_checkpoint(
                ckpt,
                model,
                opt,
                sched,
                rng,
                gen,
                history=history,
                best=best,
                epoch=epoch + 1,
                **own,
            )
    if main:
        (folder / "history.json").write_text(json.dumps(history, indent=1) + "\n")
    return history
