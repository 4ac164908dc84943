"""SIGTERM and SIGHUP handled as Ctrl-C: a supervisor's ``kill PID``, an IDE's stop button or
a closed terminal must leave a run folder that can be continued and no emulator running,
exactly as Ctrl-C does.

Inside ``signals_as_interrupts()`` the first SIGTERM or SIGHUP raises KeyboardInterrupt in the
main thread, so every ``except KeyboardInterrupt`` / ``finally`` that saves results and stops
QEMU runs; a second one is ignored, so that a supervisor repeating its signal does not cut that
clean-up short (SIGKILL still ends the process; QEMU then dies with it, host_tools.emulator).
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

#: The signals handled as Ctrl-C (SIGHUP does not exist on Windows).
SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name))


class Interrupts:
    """Which signal, if any, turned into the KeyboardInterrupt being handled."""

    def __init__(self) -> None:
        self.received: str | None = None  # "SIGTERM" or "SIGHUP"

    def message(self, text: str) -> str:
        """``text`` (an "interrupted ..." line) naming the signal when one caused it."""
        return f"{self.received} received; {text}" if self.received else text

    def _handle(self, signum: int, frame) -> None:
        if self.received is not None:
            return
        self.received = signal.Signals(signum).name
        raise KeyboardInterrupt(self.received)


@contextlib.contextmanager
def signals_as_interrupts() -> Iterator[Interrupts]:
    """Handle SIGTERM and SIGHUP as Ctrl-C while the block runs, then restore the previous
    handlers. Outside the main thread (where Python cannot install handlers) nothing changes."""
    state = Interrupts()
    if threading.current_thread() is not threading.main_thread():
        yield state
        return
    previous = {sig: signal.signal(sig, state._handle) for sig in SIGNALS}
    try:
        yield state
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
