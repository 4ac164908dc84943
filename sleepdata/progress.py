"""Progress of long work, as every command of the toolkit shows it: a bar on a terminal, and
periodic plain lines when the output is a file or a pipe (a log gets one line every
``interval_s`` and one at the end, never cursor escapes).

``progress(...)`` has the part of tqdm's interface the toolkit uses: iterate over it, or call
``update(n)``; ``write(msg)`` prints a message without breaking the bar; ``close()`` (or the
``with`` block) ends it. Nested progress (an inner loop) is shown only on a terminal.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Iterator
from typing import IO, Any


def progress(
    iterable: Iterable | None = None,
    *,
    desc: str,
    unit: str = "it",
    total: int | None = None,
    initial: int = 0,
    nested: bool = False,
    disable: bool = False,
    interval_s: float = 30.0,
    file: IO[str] | None = None,
) -> Any:
    """A tqdm bar when ``file`` (default stderr) is a terminal, else a ``PlainProgress``.

    ``nested``: an inner loop's progress (left off when not on a terminal, where its lines
    would drown the outer ones)."""
    file = file or sys.stderr
    on_terminal = hasattr(file, "isatty") and file.isatty()
    if on_terminal:
        from tqdm import tqdm

        return tqdm(
            iterable,
            desc=desc,
            unit=unit,
            total=total,
            initial=initial,
            leave=not nested,
            disable=disable,
            file=file,
        )
    return PlainProgress(
        iterable,
        desc=desc,
        unit=unit,
        total=total,
        initial=initial,
        disable=disable or nested,
        interval_s=interval_s,
        file=file,
    )


class PlainProgress:
    """Progress as plain lines: ``desc: done/total unit (rate unit/s, ETA m:ss)``."""

    def __init__(
        self,
        iterable: Iterable | None = None,
        *,
        desc: str,
        unit: str = "it",
        total: int | None = None,
        initial: int = 0,
        disable: bool = False,
        interval_s: float = 30.0,
        file: IO[str] | None = None,
        clock=time.monotonic,
    ):
        self.iterable = iterable
        if total is None and iterable is not None and hasattr(iterable, "__len__"):
            total = len(iterable)
        self.desc, self.unit, self.total = desc, unit, total
        self.n = self._start_n = initial
        self.disable = disable
        self.interval_s = interval_s
        self.file = file or sys.stderr
        self._clock = clock
        self._t0 = self._last = clock()
        self._closed = False

    def __iter__(self) -> Iterator:
        if self.iterable is None:
            raise TypeError("PlainProgress made without an iterable: call update() instead")
        try:
            for item in self.iterable:
                yield item
                self.update(1)
        finally:
            self.close()

    def __enter__(self) -> PlainProgress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def update(self, n: int = 1) -> None:
        self.n += n
        now = self._clock()
        if now - self._last >= self.interval_s:
            self._last = now
            self._line()

    def write(self, message: str) -> None:
        """A message on a line of its own."""
        print(message, file=self.file, flush=True)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self.n != self._start_n:
            self._line()

    def line(self) -> str:
        """The progress line as it would be printed now."""
        done = f"{self.n}/{self.total}" if self.total is not None else f"{self.n}"
        elapsed = self._clock() - self._t0
        rate = (self.n - self._start_n) / elapsed if elapsed > 0 else 0.0
        text = f"{self.desc}: {done} {self.unit}"
        if rate > 0:
            text += f" ({rate:.2f} {self.unit}/s"
            if self.total is not None and self.n < self.total:
                eta = int((self.total - self.n) / rate)
                text += f", ETA {eta // 60}:{eta % 60:02d}"
            text += ")"
        return text

    def _line(self) -> None:
        if not self.disable:
            print(self.line(), file=self.file, flush=True)
