"""On-disk cache of loaded recordings, keyed by the content of the PSG and hypnogram files.

A cache entry is ``<CACHE>/<record>-<key>.npz`` where key = SHA-256 over the loader version and
both files' bytes, so an edited file or a new loader never returns stale epochs. Entries are
written to a temporary file and renamed into place: an interrupted run leaves no half-written
entry, and entries already written stay valid.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import tempfile
from pathlib import Path

import numpy as np

from .psg import Recording, RecordingPair, load_recording

#: Bump when the loader's output for the same files changes.
LOADER_VERSION = "1"
_CHUNK = 1 << 22


def default_cache() -> Path:
    """The epoch cache folder used when none is given: $XDG_CACHE_HOME (else ~/.cache)
    /ulw-sleepnet-mcu/epochs."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "ulw-sleepnet-mcu" / "epochs"


def file_digest(*paths: Path) -> str:
    h = hashlib.sha256(LOADER_VERSION.encode())
    for path in paths:
        with open(path, "rb") as f:
            while chunk := f.read(_CHUNK):
                h.update(chunk)
        h.update(b"\0")
    return h.hexdigest()


def entry_path(cache_dir: Path, pair: RecordingPair) -> Path:
    return cache_dir / f"{pair.name}-{file_digest(pair.psg, pair.hypnogram)[:20]}.npz"


def save(path: Path, rec: Recording) -> None:
    meta = {
        "name": rec.name,
        "subject": rec.subject,
        "night": rec.night,
        "start": rec.start.isoformat(),
        "source": rec.source,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.stem, suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(
                f,
                epochs=rec.epochs,
                labels=rec.labels,
                onsets_s=rec.onsets_s,
                meta=np.array(json.dumps(meta)),
            )
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read(path: Path) -> Recording:
    with np.load(path) as z:
        meta = json.loads(str(z["meta"]))
        return Recording(
            name=meta["name"],
            subject=meta["subject"],
            night=meta["night"],
            start=dt.datetime.fromisoformat(meta["start"]),
            epochs=z["epochs"],
            labels=z["labels"],
            onsets_s=z["onsets_s"],
            source=meta["source"],
        )


def load(pair: RecordingPair, cache_dir: str | Path | None) -> Recording:
    """The recording for ``pair``, from the cache when present, else loaded and cached."""
    if cache_dir is None:
        return load_recording(pair)
    path = entry_path(Path(cache_dir), pair)
    if path.is_file():
        return read(path)
    rec = load_recording(pair)
    save(path, rec)
    return rec
