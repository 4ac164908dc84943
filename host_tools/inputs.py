"""What a stream sends, checked before a sample goes out: the epochs planned (a range or a list
of kept epochs), their int16 wire samples (the recording's, with REST noise if asked, or an
adversarial epoch file's), and the checks that the board, the model and an adversarial file fit
together. Errors are one line naming the file or option and the fix.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from sleepdata import adversarial
from sleepdata.adversarial import AdversarialEpochs
from sleepdata.layout import EPOCH_SAMPLES, MODEL_FS_HZ
from sleepdata.noise import NoiseSpec, SignalStats, add_noise, epoch_rng

from .errors import DeviceError
from .protocol import Info
from .reference import ModelFiles


class StreamError(RuntimeError):
    """Options or a run folder that do not fit together; says what to do instead."""


class BoardMismatchError(DeviceError):
    """The board runs another model or preprocessing than this host has."""


def check_board(info: Info, model: ModelFiles, norm) -> None:
    """The board must run this host's model with its preprocessing; raises BoardMismatchError
    naming the difference and the fix."""
    from .emulator import committed_model_hash

    folder = model.folder
    if hashlib.sha256(model.tflite).hexdigest() == committed_model_hash():
        build = "make -C firmware BOARD=<board>"  # the model of the committed C
    elif (folder / "engine_model.c").is_file():
        build = f"make -C firmware BOARD=<board> MODEL_DIR={folder.resolve()}"
    else:
        build = (
            f"python -m converter build --model {folder} --out {folder}, then make -C firmware "
            f"BOARD=<board> MODEL_DIR={folder.resolve()}"
        )
    fix = (
        "run firmware built for this model: on the emulated board leave out --firmware "
        f"(host_tools builds it); on a real board flash the ELF of `{build}`; or pass --model "
        "the folder the board was built from"
    )
    if info.model_hash != model.model_hash:
        raise BoardMismatchError(
            f"the board runs model {info.model_hash.hex()}, this host has "
            f"{model.model_hash.hex()} ({model.folder / 'model_int8.tflite'}): {fix}"
        )
    want = (len(norm.channels), MODEL_FS_HZ, EPOCH_SAMPLES)
    got = (info.channels, info.sample_rate_hz, info.epoch_samples)
    if got != want:
        raise BoardMismatchError(
            f"the board takes {got[0]} channels at {got[1]} Hz in epochs of {got[2]} samples; "
            f"this host sends {want[0]} at {want[1]} Hz in epochs of {want[2]}: {fix}"
        )
    host_norm = [(int(c.remove_dc), c.shift, c.offset, c.multiplier) for c in norm.channels]
    for c, (board_c, host_c) in enumerate(zip(info.norm, host_norm, strict=True)):
        if tuple(board_c) != host_c:
            raise BoardMismatchError(
                f"channel {c} ({norm.channels[c].name}): the board normalises with "
                f"(remove_dc, shift, offset, multiplier) = {tuple(board_c)}, this host's "
                f"config.json with {host_c}: {fix}"
            )


def plan_epochs(n_kept: int, start: int, epochs: int | None, indices=None) -> range | np.ndarray:
    """Recording epoch indices to stream: ``epochs`` from ``start`` (all to the end: None), or
    the first ``epochs`` of ``indices`` (strictly increasing kept-epoch indices; all: None)."""
    if indices is not None:
        return _plan_indices(n_kept, start, epochs, indices)
    if start < 0 or start >= n_kept:
        raise StreamError(
            f"--start {start} is outside the recording's {n_kept} kept epochs (0..{n_kept - 1})"
        )
    if epochs is not None and epochs < 1:
        raise StreamError(f"--epochs {epochs}: stream at least one epoch")
    stop = n_kept if epochs is None else min(n_kept, start + epochs)
    return range(start, stop)


def _plan_indices(n_kept: int, start: int, epochs: int | None, indices) -> np.ndarray:
    idx = np.asarray(indices)
    if start != 0:
        raise StreamError(
            f"--start {start} cannot be combined with a list of epochs to stream; use --epochs "
            "to keep the first N of the list"
        )
    if epochs is not None and epochs < 1:
        raise StreamError(f"--epochs {epochs}: stream at least one epoch")
    if idx.ndim != 1 or not len(idx) or not np.issubdtype(idx.dtype, np.integer):
        raise StreamError("the list of epochs to stream must be a non-empty list of integers")
    if (np.diff(idx) <= 0).any():
        raise StreamError("the list of epochs to stream must be strictly increasing")
    if idx[0] < 0 or idx[-1] >= n_kept:
        bad = int(idx[0] if idx[0] < 0 else idx[-1])
        raise StreamError(
            f"epoch {bad} is outside the recording's {n_kept} kept epochs (0..{n_kept - 1})"
        )
    return idx[:epochs].astype(np.int64)


def wire_epochs(
    epochs_uv: np.ndarray,
    indices: np.ndarray,
    norm,
    *,
    noise: NoiseSpec | None = None,
    stats: SignalStats | None = None,
    seed: int = 0,
) -> np.ndarray:
    """int16 wire samples (n, 4, 3000) of the recording's epochs ``indices``; with ``noise``,
    each epoch's noise comes from epoch_rng(seed, its recording index)."""
    x = epochs_uv[indices]
    if noise is None:
        return norm.to_wire(x)
    out = np.empty(x.shape, np.int16)
    for k, i in enumerate(indices):
        out[k] = norm.to_wire(add_noise(x[k], noise, stats, epoch_rng(seed, int(i))))
    return out


def read_adversarial_file(path: str | Path) -> AdversarialEpochs:
    """Read and check an adversarial epoch file (``--adversarial``); the error names the file
    and what is wrong with it."""
    if not Path(path).is_file():
        raise StreamError(f"--adversarial {path}: no such file")
    return adversarial.read(path)


def check_adversarial(adv: AdversarialEpochs, record: str, model: ModelFiles) -> None:
    """The file must be for this recording and for this model's int8 model; StreamError (one
    line) names the file and the mismatch."""
    got = adv.meta.get("record")
    if got != record:
        raise StreamError(
            f"{adv.path}: adversarial epochs of record {got}, not of {record} (the recording "
            f"streamed): use adversarial/<attack>-eps<E>/{record}.npz"
        )
    want = hashlib.sha256(model.tflite).hexdigest()
    crafted = adv.meta.get("int8_model_sha256")
    if crafted != want:
        raise StreamError(
            f"{adv.path}: made for the int8 model with SHA-256 {str(crafted)[:16]}..., but "
            f"{model.folder / 'model_int8.tflite'} has {want[:16]}...: use the files written "
            "for this model, or --model the folder they were written for"
        )


def check_adversarial_recording(adv: AdversarialEpochs, rec, norm) -> None:
    """The file's epochs must be in the recording ``rec`` with its expert stages, and have the
    model's channels; StreamError otherwise."""
    if adv.wire.shape[1] != len(norm.channels):
        raise StreamError(
            f"{adv.path}: {adv.wire.shape[1]} channels, the model reads {len(norm.channels)}"
        )
    if adv.index[0] < 0 or adv.index[-1] >= len(rec):
        raise StreamError(
            f"{adv.path}: epoch {int(adv.index[-1])} is outside {rec.name}'s {len(rec)} kept epochs"
        )
    differ = np.flatnonzero(rec.labels[adv.index] != adv.labels)
    if len(differ):
        i = int(adv.index[differ[0]])
        raise StreamError(
            f"{adv.path}: the expert stage of epoch {i} is {int(adv.labels[differ[0]])} in the "
            f"file and {int(rec.labels[i])} in {rec.name}'s hypnogram ({len(differ)} epochs "
            "differ): the file was made from another scoring of this record"
        )
