"""A fault-injecting link: wraps any pyserial port (a real board's or an emulated one's) and
drops, corrupts, duplicates, reorders and delays bytes at configured rates, in both directions,
and can cut the link. Deterministic for a seed. Used by ``host_tools stream --faults SPEC`` and
the reliability tests.

SPEC is ``key=value`` pairs separated by commas, e.g. ``corrupt=0.01,drop=0.005,seed=1``:
- ``corrupt``: probability that a byte is replaced by a different random byte;
- ``drop``: probability that a byte is lost;
- ``duplicate``: probability that a byte is delivered twice;
- ``reorder``: probability that a byte is swapped with the next one of the same chunk;
- ``delay``: probability that a chunk is held back for ``delay_ms`` (default 20) milliseconds;
- ``cut_after``: cut the link once after that many bytes (both directions counted): the port
  raises SerialException until the stream reopens the link (Device ``reopen``);
- ``reboot_after``: once that many bytes went to the board, send it a REBOOT frame (a board
  reset in the middle of a stream: it loses its state and announces itself again);
- ``direction``: ``both`` (default), ``to_board`` or ``to_host``;
- ``seed``: the random generator's seed (default 0).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING

import numpy as np
from serial import SerialException

from .protocol import Frame, MsgType
from .transport import read_available

if TYPE_CHECKING:
    from .device import LinkCounters

KINDS = ("corrupt", "drop", "duplicate", "reorder", "delay")


@dataclass
class FaultSpec:
    corrupt: float = 0.0
    drop: float = 0.0
    duplicate: float = 0.0
    reorder: float = 0.0
    delay: float = 0.0
    delay_ms: float = 20.0
    cut_after: int | None = None
    reboot_after: int | None = None
    direction: str = "both"
    seed: int = 0

    @classmethod
    def parse(cls, text: str) -> FaultSpec:
        """``corrupt=0.01,drop=0.005`` -> FaultSpec; a clear ValueError on bad input."""
        known = {f.name: f for f in fields(cls)}
        values: dict = {}
        for item in filter(None, (p.strip() for p in text.split(","))):
            key, sep, raw = item.partition("=")
            if not sep or key not in known:
                raise ValueError(
                    f"fault spec {text!r}: {item!r} is not key=value with a key in "
                    f"{', '.join(known)}"
                )
            try:
                if key == "direction":
                    if raw not in ("both", "to_board", "to_host"):
                        raise ValueError
                    values[key] = raw
                elif key in ("cut_after", "reboot_after", "seed"):
                    values[key] = int(raw)
                else:
                    values[key] = float(raw)
            except ValueError:
                raise ValueError(f"fault spec {text!r}: bad value for {key}: {raw!r}") from None
            if key in KINDS and not 0.0 <= values[key] <= 1.0:
                raise ValueError(f"fault spec {text!r}: {key} must be a probability in [0, 1]")
        return cls(**values)


@dataclass
class FaultCounts:
    """Faults injected so far, by kind, and the bytes that went through."""

    corrupt: int = 0
    drop: int = 0
    duplicate: int = 0
    reorder: int = 0
    delay: int = 0
    cuts: int = 0
    reboots: int = 0
    bytes_to_board: int = 0
    bytes_to_host: int = 0

    def total(self) -> int:
        return (
            self.corrupt + self.drop + self.duplicate + self.reorder + self.delay + self.cuts
        ) + self.reboots


def fault_record(counts: FaultCounts, link: LinkCounters) -> dict:
    """What a faulty link injected and what the stream took to recover, as run.json keeps it
    ("faults"; report.json's "faults" section adds the epochs scored)."""
    return {
        "injected": {k: getattr(counts, k) for k in (*KINDS, "cuts", "reboots")},
        "bytes_to_board": counts.bytes_to_board,
        "bytes_to_host": counts.bytes_to_host,
        "frames_resent": link.frames_resent,
        "results_resent": link.results_resent,
        "resyncs": link.resyncs,
        "relinks": link.relinks,
        "restarts": link.restarts,
        "error_replies": dict(link.errors_seen),
    }


class FaultyLink:
    """Port wrapper with the pyserial calls Device uses (write, read_available, close)."""

    def __init__(self, port, spec: FaultSpec, *, counts: FaultCounts | None = None, rng=None):
        self.port = port
        self.spec = spec
        self.counts = counts or FaultCounts()
        self.rng = rng or np.random.default_rng(spec.seed)
        self.cut = False

    def _maybe_cut(self) -> None:
        if self.cut:
            raise SerialException("link cut (fault injection)")
        after = self.spec.cut_after
        through = self.counts.bytes_to_board + self.counts.bytes_to_host
        if after is not None and self.counts.cuts == 0 and through >= after:
            self.counts.cuts += 1
            self.cut = True
            self.port.close()
            raise SerialException("link cut (fault injection)")

    def _mangle(self, data: bytes) -> bytes:
        """The bytes after this chunk's faults (one random draw per byte and kind)."""
        s, rng, n = self.spec, self.rng, len(data)
        if n == 0:
            return data
        out = bytearray(data)
        if s.corrupt:
            hit = np.flatnonzero(rng.random(n) < s.corrupt)
            for i in hit:
                out[i] ^= int(rng.integers(1, 256))  # never the same byte
            self.counts.corrupt += len(hit)
        if s.reorder and n > 1:
            hit = np.flatnonzero(rng.random(n - 1) < s.reorder)
            for i in hit:
                out[i], out[i + 1] = out[i + 1], out[i]
            self.counts.reorder += len(hit)
        keep = np.ones(n, dtype=bool)
        if s.drop:
            lost = rng.random(n) < s.drop
            keep &= ~lost
            self.counts.drop += int(lost.sum())
        times = np.ones(n, dtype=np.int64)
        if s.duplicate:
            twice = (rng.random(n) < s.duplicate) & keep
            times[twice] = 2
            self.counts.duplicate += int(twice.sum())
        result = bytes(np.repeat(np.frombuffer(bytes(out), dtype=np.uint8)[keep], times[keep]))
        if s.delay and rng.random() < s.delay:
            self.counts.delay += 1
            time.sleep(s.delay_ms / 1000)
        return result

    def write(self, data: bytes) -> int:
        self._maybe_cut()
        after = self.spec.reboot_after
        if after is not None and self.counts.reboots == 0:
            if self.counts.bytes_to_board + len(data) >= after:
                self.counts.reboots += 1
                self.port.write(Frame(MsgType.REBOOT, 0xFFFF, b"").encode())
        self.counts.bytes_to_board += len(data)
        if self.spec.direction in ("both", "to_board"):
            data = self._mangle(bytes(data))
        self.port.write(data)
        return len(data)

    def read_available(self, wait_s: float) -> bytes:
        self._maybe_cut()
        data = read_available(self.port, wait_s)
        self.counts.bytes_to_host += len(data)
        if self.spec.direction in ("both", "to_host"):
            data = self._mangle(data)
        return data

    def close(self) -> None:
        self.port.close()
