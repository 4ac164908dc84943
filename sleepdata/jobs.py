"""Night-by-night work in parallel processes, with one progress bar and failures kept per night.

``run_nights(fn, items, jobs=N, ...)`` calls ``fn(item)`` for every item, in N worker processes
(N = 1: in this process), and returns one `Outcome` per item, in the order given. A night whose
``fn`` raises is recorded with its error and the others go on; Ctrl-C stops the workers and
propagates. Workers are started with "spawn" (a fresh interpreter importing only what ``fn``
needs), so the calling process may hold threads or large arrays without the workers inheriting
them; ``fn`` must pickle (a module-level function, or a functools.partial of one).
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from typing import Any

from .progress import progress


@dataclass
class Outcome:
    item: Any
    result: Any = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return text if text else type(exc).__name__


def _call(fn: Callable[[Any], Any], item: Any) -> tuple[Any, str | None]:
    """Runs in a worker: the result, or the error as text (an exception need not pickle)."""
    try:
        return fn(item), None
    except Exception as exc:
        return None, _describe(exc)


def default_jobs() -> int:
    """One worker per core this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def run_nights(
    fn: Callable[[Any], Any],
    items: Sequence[Any],
    *,
    jobs: int,
    desc: str,
    unit: str = "night",
) -> list[Outcome]:
    if jobs < 1:
        raise ValueError(f"--jobs {jobs}: must be at least 1")
    outcomes = [Outcome(item) for item in items]
    if jobs == 1 or len(items) <= 1:
        for out in progress(outcomes, desc=desc, unit=unit):
            try:
                out.result = fn(out.item)
            except Exception as exc:  # recorded for this night; the others go on
                out.error = _describe(exc)
        return outcomes
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=min(jobs, len(items)), mp_context=context) as pool:
        futures = {pool.submit(_call, fn, out.item): out for out in outcomes}
        try:
            for future in progress(as_completed(futures), desc=desc, unit=unit, total=len(futures)):
                out = futures[future]
                try:
                    out.result, out.error = future.result()
                except Exception as exc:  # the worker died (e.g. killed for memory)
                    out.error = _describe(exc)
        except BaseException:
            for future in futures:
                future.cancel()
            raise
    return outcomes
