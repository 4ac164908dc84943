"""On-disk cache of loaded recordings, keyed by the content of the PSG and hypnogram files.

An entry is two files, ``<CACHE>/<record>-<key>.npy`` and ``<record>-<key>.json``:

- the .npy holds the night's epochs as int16 wire samples (n, 4, 3000), exactly what the host
  sends the board (sleepdata.normalise.DEFAULT_LSB_UV: 0.05 uV for EEG and EOG, 0.001 uV for
  the EMG envelope). Half the bytes of float32, memory-mappable, and the model's int8 input is
  computed from these integers anyway, so training on the cache gives the same inputs as the
  board. Microvolts read back are the wire's: rounded to the step and saturated at +-32767
  steps (+-1638 uV EEG/EOG, +-32.8 uV EMG; Sleep-EDF's physical ranges lie inside), the count
  of saturated samples per channel being in the .json;
- the .json holds the labels, onsets, record name, subject, night, start, source and steps. It
  is written last: an entry without it is incomplete and is rebuilt.

key = SHA-256 over the loader version and both files' SHA-256, so an edited file or a new
loader never returns stale epochs. Hashing a PSG file costs about as much as reading it, so
each file's digest is remembered in ``<CACHE>/.digests`` with its size and modification time:
a cache hit then reads the .json alone (the epochs are read when used, see
sleepdata.epoch_store). Every file is written to a temporary name and renamed into place: an
interrupted run leaves no half-written entry, and entries already written stay valid.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import tempfile
from pathlib import Path

import numpy as np

from .epoch_store import WireEpochs
from .layout import CHANNEL_NAMES
from .normalise import DEFAULT_LSB_UV, wire_samples
from .psg import Recording, RecordingPair, load_recording

#: Bump when the loader's output for the same files changes.
LOADER_VERSION = "2"
FORMAT = 2
_CHUNK = 1 << 22
_WIRE_MAX = 32767


def default_cache() -> Path:
    """The epoch cache folder used when none is given: $XDG_CACHE_HOME (else ~/.cache)
    /ulw-sleepnet-mcu/epochs."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "ulw-sleepnet-mcu" / "epochs"


def _write_atomic(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name, suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _remembered_sha256(path: Path, memo_dir: Path | None) -> str:
    """The file's SHA-256, from ``memo_dir`` when its size and modification time are those
    remembered there."""
    if memo_dir is None:
        return _sha256(path)
    st = path.stat()
    stamp = {"size": st.st_size, "mtime_ns": st.st_mtime_ns}
    name = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:24]
    memo = memo_dir / f"{name}.json"
    try:
        known = json.loads(memo.read_text())
        if known.get("path") == str(path.resolve()) and known.get("stamp") == stamp:
            return known["sha256"]
    except (OSError, ValueError, KeyError):
        pass
    digest = _sha256(path)
    record = {"path": str(path.resolve()), "stamp": stamp, "sha256": digest}
    _write_atomic(memo, lambda f: f.write(json.dumps(record).encode()))
    return digest


def file_digest(*paths: Path, memo_dir: Path | None = None) -> str:
    h = hashlib.sha256(LOADER_VERSION.encode())
    for path in paths:
        h.update(_remembered_sha256(Path(path), memo_dir).encode())
        h.update(b"\0")
    return h.hexdigest()


def _with(stem: Path, suffix: str) -> Path:
    return stem.with_name(stem.name + suffix)  # record names may hold dots


def entry_stem(cache_dir: Path, pair: RecordingPair) -> Path:
    """The entry's path without suffix: add .npy (epochs) or .json (the rest)."""
    memo = cache_dir / ".digests"
    return cache_dir / f"{pair.name}-{file_digest(pair.psg, pair.hypnogram, memo_dir=memo)[:20]}"


def save(stem: Path, rec: Recording) -> dict:
    """Write ``rec`` as the entry ``stem``; returns its .json content."""
    x = np.asarray(rec.epochs)
    lsb = np.asarray(DEFAULT_LSB_UV, dtype=np.float64)
    saturated = (np.abs(np.rint(x / lsb.reshape(-1, 1))) > _WIRE_MAX).sum(axis=(0, 2))
    wire = wire_samples(x, lsb)
    _write_atomic(_with(stem, ".npy"), lambda f: np.save(f, wire))
    meta = {
        "format": FORMAT,
        "name": rec.name,
        "subject": rec.subject,
        "night": rec.night,
        "start": rec.start.isoformat(),
        "source": rec.source,
        "n_epochs": len(rec),
        "lsb_uv": lsb.tolist(),
        "saturated_samples": dict(zip(CHANNEL_NAMES, saturated.tolist(), strict=True)),
        "labels": rec.labels.tolist(),
        "onsets_s": rec.onsets_s.tolist(),
    }
    _write_atomic(_with(stem, ".json"), lambda f: f.write(json.dumps(meta).encode()))
    return meta


def _entry(pair: RecordingPair, cache_dir: Path) -> Path:
    """The entry of ``pair``, written first when missing."""
    stem = entry_stem(cache_dir, pair)
    if not _with(stem, ".json").is_file():
        save(stem, load_recording(pair))
    return stem


def read(stem: Path, *, lazy: bool = False) -> Recording:
    """The cached recording ``stem``: its epochs as microvolts in memory, or with ``lazy`` a
    `WireEpochs` reading them from the .npy when used."""
    meta = json.loads(_with(stem, ".json").read_text())
    if meta.get("format") != FORMAT:
        raise ValueError(f"{stem}.json: cache format {meta.get('format')}, expected {FORMAT}")
    epochs = WireEpochs(_with(stem, ".npy"), meta["lsb_uv"], meta["n_epochs"])
    return Recording(
        name=meta["name"],
        subject=meta["subject"],
        night=meta["night"],
        start=dt.datetime.fromisoformat(meta["start"]),
        epochs=epochs if lazy else epochs[:],
        labels=np.asarray(meta["labels"], dtype=np.int8),
        onsets_s=np.asarray(meta["onsets_s"], dtype=np.float64),
        source=meta["source"],
    )


def load(pair: RecordingPair, cache_dir: str | Path | None, *, lazy: bool = False) -> Recording:
    """The recording for ``pair``, from the cache when present, else loaded and cached. With
    ``lazy`` its epochs stay on disk until indexed (see `read`); without a cache they are
    always in memory."""
    if cache_dir is None:
        return load_recording(pair)
    stem = _entry(pair, Path(cache_dir))
    return read(stem, lazy=lazy)


def prepare(pair: RecordingPair, cache_dir: str | Path) -> dict:
    """Cache one night; returns what a summary needs: name, subject, labels and the saturated
    sample counts (module level, for worker processes)."""
    stem = _entry(pair, Path(cache_dir))
    meta = json.loads(_with(stem, ".json").read_text())
    return {
        "name": meta["name"],
        "subject": meta["subject"],
        "labels": np.asarray(meta["labels"], dtype=np.int8),
        "saturated_samples": meta["saturated_samples"],
    }
