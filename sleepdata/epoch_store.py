"""A night's epochs kept on disk as the int16 wire samples the board receives, read on demand.

`WireEpochs` stands where a float32 (n, 4, 3000) microvolt array would (``Recording.epochs``):
``len``, ``shape``, ``ndim``, ``size``, indexing by an integer, a slice, an index array or a
boolean mask, ``astype`` and ``np.asarray`` all give microvolts, computed as wire x lsb from the
samples read for that request alone. Nothing is held in memory between requests, so a cohort far
larger than RAM can be trained on: the training loop reads each batch's epochs (page cache, not
the process, keeps the file's bytes).

Reads go through ``numpy.load(..., mmap_mode="r")`` and copy out the rows asked for; the mapping
is dropped when the request returns, so the rows do not stay resident in the process (a mapping
kept open would count every page ever touched in its resident size).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .layout import EPOCH_SAMPLES, MODEL_CHANNELS


class WireEpochs:
    """Epochs (n, 4, 3000) stored as int16 wire samples in the .npy file ``path``; one wire
    step of channel c is ``lsb_uv[c]`` microvolts."""

    dtype = np.dtype(np.float32)
    ndim = 3

    def __init__(self, path: str | Path, lsb_uv, n_epochs: int):
        self.path = Path(path)
        self.lsb_uv = np.asarray(lsb_uv, dtype=np.float64)
        self.shape = (int(n_epochs), len(MODEL_CHANNELS), EPOCH_SAMPLES)
        if self.lsb_uv.shape != (len(MODEL_CHANNELS),):
            raise ValueError(f"{self.path}: one lsb per channel expected, got {self.lsb_uv}")
        self._scale = self.lsb_uv.astype(np.float32).reshape(-1, 1)

    def __len__(self) -> int:
        return self.shape[0]

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    def __repr__(self) -> str:
        return f"WireEpochs({str(self.path)!r}, {len(self)} epochs)"

    # -- reading ------------------------------------------------------------------------------

    def _rows(self, index, convert):
        """``convert(rows)`` of the stored rows ``index``, read through a mapping that is
        dropped before returning."""
        if isinstance(index, np.ndarray) and index.dtype == bool:
            index = np.flatnonzero(index)
        mapped = np.load(self.path, mmap_mode="r")
        try:
            if mapped.dtype != np.int16 or mapped.shape != self.shape:
                raise ValueError(
                    f"{self.path}: holds {mapped.dtype} {mapped.shape}, "
                    f"expected int16 {self.shape}; delete the cache entry to rebuild it"
                )
            return convert(mapped[index])
        finally:
            del mapped

    def wire(self, index=slice(None)) -> np.ndarray:
        """The int16 wire samples of ``index`` (an int, a slice, an index array or a boolean
        mask over epochs), copied out of the file."""
        return self._rows(index, lambda rows: np.array(rows, copy=True))

    def __getitem__(self, index) -> np.ndarray:
        """Microvolts of ``index``: wire x lsb, in float32 (one pass over the stored rows)."""
        return self._rows(index, lambda rows: np.multiply(rows, self._scale, dtype=np.float32))

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        out = self[:]
        return out if dtype is None else out.astype(dtype)

    def astype(self, dtype) -> np.ndarray:
        return self[:].astype(dtype)

    def memmap(self) -> np.ndarray:
        """The int16 samples as a read-only memory map (n, 4, 3000), for callers that manage
        their own residency."""
        return np.load(self.path, mmap_mode="r")
