"""Progress output: plain periodic lines into a file or pipe, a bar only on a terminal."""

from __future__ import annotations

import io

from sleepdata.progress import PlainProgress, progress


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_a_file_gets_a_line_per_interval_and_one_at_the_end():
    out, clock = io.StringIO(), Clock()
    bar = PlainProgress(
        desc="stream", unit="epoch", total=100, interval_s=30, file=out, clock=clock
    )
    for _ in range(100):
        clock.t += 1.0  # one epoch per second
        bar.update(1)
    bar.close()
    bar.close()  # once only
    lines = out.getvalue().splitlines()
    assert lines == [
        "stream: 30/100 epoch (1.00 epoch/s, ETA 1:10)",
        "stream: 60/100 epoch (1.00 epoch/s, ETA 0:40)",
        "stream: 90/100 epoch (1.00 epoch/s, ETA 0:10)",
        "stream: 100/100 epoch (1.00 epoch/s)",
    ]
    assert "\r" not in out.getvalue() and "\x1b" not in out.getvalue()


def test_iterating_counts_and_nested_progress_stays_silent_off_a_terminal():
    out = io.StringIO()
    assert list(progress(range(5), desc="load", unit="night", file=out)) == list(range(5))
    assert out.getvalue().splitlines()[-1].startswith("load: 5/5 night")
    quiet = io.StringIO()
    assert list(progress(range(3), desc="batch", nested=True, file=quiet)) == [0, 1, 2]
    assert quiet.getvalue() == ""


def test_messages_are_lines_of_their_own_and_resumed_work_counts_from_initial():
    out, clock = io.StringIO(), Clock()
    bar = progress(desc="stream", unit="epoch", total=10, initial=4, file=out)
    bar.write("interrupted: run again with --resume")
    bar._clock = clock
    bar.close()  # nothing done since the start: no progress line
    assert out.getvalue() == "interrupted: run again with --resume\n"


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_terminal_gets_a_bar():
    from tqdm import tqdm

    bar = progress(desc="x", total=3, file=Terminal())
    assert isinstance(bar, tqdm)
    bar.close()
