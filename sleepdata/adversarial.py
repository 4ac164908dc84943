"""The adversarial epoch file: attacked epochs of one recording, as the int16 samples that go on
the wire, so that a board can be streamed exactly what the float model was attacked with.

One ``.npz`` per recording (docs/robustness.md):

- ``wire`` int16 (n, channels, 3000): the attacked epochs, in wire units;
- ``epoch_index`` int64 (n,), strictly increasing: the recording's kept epochs they replace;
- ``labels`` int8 (n,): the expert stages of those epochs;
- ``meta``: a JSON string with ``format`` (``FORMAT``), ``record``, ``attack``, ``eps_uv``,
  ``eps_uv_per_channel``, ``iterations``, ``step_uv``, ``seed``, ``crafted_on`` and
  ``int8_model_sha256`` (the int8 model the file is meant for).

The same format carries the band-passed inputs of a model with a test-time filter (REST's
Blanco model), one file per condition and recording: ``meta`` then has ``condition``, ``noise``
(kind, value, seed or null), ``test_time_filter`` and ``int8_model_sha256`` instead of the
attack's fields.

``write`` is used by training's robustness evaluation, ``read`` by the host tools.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import DataError
from .layout import EPOCH_SAMPLES

FORMAT = "ulw-sleepnet adversarial wire epochs v1"
_ARRAYS = ("wire", "epoch_index", "labels", "meta")


class AdversarialFileError(DataError):
    """A file that is not a well-formed adversarial epoch file."""


@dataclass(frozen=True)
class AdversarialEpochs:
    """An adversarial epoch file: int16 ``wire`` (n, channels, 3000) at the recording's kept
    epochs ``index`` (n,), expert ``labels`` (n,), its ``meta`` and the file's SHA-256."""

    path: Path
    wire: np.ndarray
    index: np.ndarray
    labels: np.ndarray
    meta: dict
    sha256: str

    def rows(self, indices: np.ndarray) -> np.ndarray:
        """The file's wire samples of the recording epochs ``indices`` (each in the file)."""
        pos = np.searchsorted(self.index, indices)
        return self.wire[pos]

    def describe(self) -> dict:
        """What a run folder records about the file."""
        m = self.meta
        keys = ("attack", "eps_uv", "eps_uv_per_channel", "iterations", "step_uv", "seed")
        return {
            "file": str(self.path.resolve()),
            "sha256": self.sha256,
            **{k: m.get(k) for k in keys},
            "crafted_on": m.get("crafted_on"),
            "record": m.get("record"),
            "int8_model_sha256": m.get("int8_model_sha256"),
            "epochs_in_file": len(self.index),
            # a file of band-passed inputs (a model with a test-time filter) instead of attacks
            **{k: m[k] for k in ("condition", "noise", "test_time_filter") if k in m},
        }


def write(
    path: str | Path, *, wire: np.ndarray, index: np.ndarray, labels: np.ndarray, meta: dict
) -> Path:
    """Write a file atomically (a ``.part.npz`` renamed into place); ``meta`` gets ``format``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".part.npz")
    np.savez_compressed(
        tmp,
        wire=np.asarray(wire, dtype=np.int16),
        epoch_index=np.asarray(index, dtype=np.int64),
        labels=np.asarray(labels, dtype=np.int8),
        meta=np.array(json.dumps({"format": FORMAT, **meta})),
    )
    tmp.replace(path)
    return path


def read(path: str | Path) -> AdversarialEpochs:
    """Read a file and check its layout; AdversarialFileError names the file and the problem."""
    path = Path(path)
    if not path.is_file():
        raise AdversarialFileError(path, "no such file")
    raw = path.read_bytes()
    try:
        with np.load(io.BytesIO(raw), allow_pickle=False) as f:
            missing = [k for k in _ARRAYS if k not in f.files]
            if missing:
                raise AdversarialFileError(
                    path,
                    f"not an adversarial epoch file (no {', '.join(missing)}); write one with "
                    "python -m training robustness --write-adversarial",
                )
            wire, index, labels = f["wire"], f["epoch_index"], f["labels"]
            meta = json.loads(str(f["meta"]))
    except (OSError, ValueError) as exc:
        raise AdversarialFileError(
            path, f"cannot be read as an adversarial epoch file ({exc})"
        ) from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise AdversarialFileError(path, f"not an adversarial epoch file (format {FORMAT!r})")
    n = len(index)
    if wire.dtype != np.int16 or wire.ndim != 3 or wire.shape[::2] != (n, EPOCH_SAMPLES) or not n:
        raise AdversarialFileError(
            path,
            f"wire is {wire.dtype} {wire.shape} for {n} epoch indices; expected int16 "
            f"({n}, channels, {EPOCH_SAMPLES}) with at least one epoch",
        )
    if labels.shape != (n,) or (np.diff(index) <= 0).any():
        raise AdversarialFileError(
            path,
            f"labels {labels.shape} / epoch_index {index.shape} do not fit, or the epoch "
            "indices are not strictly increasing",
        )
    return AdversarialEpochs(
        path,
        wire,
        index.astype(np.int64),
        labels.astype(np.int64),
        meta,
        hashlib.sha256(raw).hexdigest(),
    )
