"""Layer 2b: a board on a serial port (real or emulated), spoken to in frames (docs/protocol.md).

``Device`` sends requests and waits for their replies, each with a timeout; a stream of epochs
goes through the selective-repeat sender (``host_tools.sender``). What the link took (bytes,
retries, recoveries) is counted in one ``LinkCounters``. Errors name the operation and what to
check.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
from serial import SerialException

from .errors import BoardErrorReply, DeviceError
from .protocol import (
    CORRUPTION_ERRORS,
    MAX_FRAME,
    PROTOCOL_VERSION,
    PROTOCOL_VERSION_MIN,
    Coding,
    ErrorCode,
    EventCounts,
    Frame,
    FrameDecoder,
    Info,
    MsgType,
    ProfileMode,
    Result,
    Status,
    decode_error,
    decode_info,
    decode_status,
)
from .sender import SelectiveRepeatSender
from .transport import read_available

if TYPE_CHECKING:
    from .faults import FaultCounts

__all__ = ["WIRE_CHOICES", "BoardErrorReply", "Device", "DeviceError", "LinkCounters"]

WIRE_CHOICES = ("auto", "raw")  # host_tools stream --wire


@dataclass
class LinkCounters:
    """What the link to a board took so far (docs/protocol.md, "Recovery"; docs/streaming.md,
    "report.json"). Counts since the Device was made."""

    bytes_sent: int = 0  # every byte written: frames, frames sent again, zero flushes
    frames_resent: int = 0  # SAMPLES frames sent again
    results_resent: int = 0  # RESULTs asked for again (RESEND)
    resyncs: int = 0  # recoveries through STATUS (after an error, a timeout or a cut)
    relinks: int = 0  # cut links reopened
    restarts: int = 0  # board restarts survived
    errors_seen: dict[str, int] = field(default_factory=dict)  # ERROR replies by code name

    @property
    def retries(self) -> int:
        """SAMPLES frames and RESULTs sent or asked for again (report.json's ``retries``)."""
        return self.frames_resent + self.results_resent


def _counter(name: str) -> property:
    return property(lambda self: getattr(self.counters, name), doc=f"``counters.{name}``")


class Device:
    """A board behind a serial port. ``reopen`` (a callable returning a new port) lets a stream
    survive a cut link: the link is reopened and the stream resynchronised. ``faults``: the
    fault injector's counts when the port is a ``host_tools.faults.FaultyLink`` (the stream
    reports them), else None. ``wire``: "auto" sends SAMPLES coded when the board decodes a
    coding and the coded frame is shorter, "raw" never codes (docs/protocol.md, Versions)."""

    #: wait before reading the rest of a frame that has begun to arrive (29 bytes take 0.3 ms
    #: at 921,600 baud): a stream then reads about a frame per call instead of a few bytes
    PARTIAL_WAIT_S = 0.0005

    def __init__(
        self,
        port,
        *,
        timeout_s: float = 30.0,
        reopen=None,
        frame_timeout_s=0.25,
        faults: FaultCounts | None = None,
        wire: str = "auto",
    ):
        if wire not in WIRE_CHOICES:
            raise ValueError(f"wire {wire!r}: expected one of {', '.join(WIRE_CHOICES)}")
        self.wire = wire
        self.version = PROTOCOL_VERSION  # the board's, once hello() has found it
        self.port = port
        self.timeout_s = timeout_s
        self.reopen = reopen
        self.faults = faults
        self.frame_timeout_s = frame_timeout_s  # the shortest wait for a reply to a request
        self.rtt_s = 0.0  # round trip (frame -> reply, with its spread) a stream measured
        self.decoder = FrameDecoder(replies_only=True)
        self.pending: list[Frame] = []
        self.seq = 0
        self.counters = LinkCounters()
        self.layer_counts: list[tuple[int, int]] | None = None  # of the last epoch, if profiling
        self.event_counts: EventCounts | None = None  # of the last epoch, if events were asked
        self.info: Info | None = None  # the board's, from the last hello()
        self.samples_acked = 0  # the board's next expected sample index, from its last ACK
        self.epoch_offset = 0  # stream epoch = the board's epoch index + this (after a restart)

    bytes_sent = _counter("bytes_sent")
    frames_resent = _counter("frames_resent")
    results_resent = _counter("results_resent")
    resyncs = _counter("resyncs")
    relinks = _counter("relinks")
    restarts = _counter("restarts")
    errors_seen = _counter("errors_seen")

    # -- framing --------------------------------------------------------------------------

    def send(self, type_: int, payload: bytes = b"") -> int:
        self.seq = (self.seq % 0xFFFF) + 1  # 1..65535: 0 is the board's own announcement
        self.send_raw(Frame(type_, self.seq, payload, self.version).encode())
        return self.seq

    @property
    def codes_samples(self) -> bool:
        """Whether SAMPLES go coded (SAMPLES_RICE): ``wire`` is auto and the board decodes it."""
        info = self.info
        return self.wire == "auto" and info is not None and bool(info.codings & Coding.RICE)

    def _relink(self, exc: Exception) -> None:
        """Reopen a cut link (or fail saying so); the caller resynchronises."""
        if self.reopen is None:
            raise DeviceError(f"the link failed ({exc}); check the port and the cable") from exc
        deadline = time.monotonic() + self.timeout_s
        with contextlib.suppress(Exception):
            self.port.close()
        while True:
            try:
                self.port = self.reopen()
                break
            except (OSError, SerialException, DeviceError) as again:
                if time.monotonic() > deadline:
                    raise DeviceError(
                        f"the link failed and could not be reopened: {again}"
                    ) from exc
                time.sleep(0.2)
        self.decoder = FrameDecoder(replies_only=True)
        self.counters.relinks += 1

    def send_raw(self, data: bytes) -> None:
        """Bytes as they are (frames; tests of malformed frames; flushing the board's parser)."""
        try:
            self.port.write(data)
        except (OSError, SerialException) as exc:
            self._relink(exc)
        self.counters.bytes_sent += len(data)

    def next_frame(self, timeout_s: float) -> Frame | None:
        """The next frame from the board, or None after ``timeout_s`` (or a reopened link)."""
        deadline = time.monotonic() + timeout_s
        while not self.pending:
            try:
                chunk = read_available(self.port, min(0.05, max(0.0, deadline - time.monotonic())))
            except (OSError, SerialException) as exc:
                self._relink(exc)
                return None
            if chunk:
                self.pending += self.decoder.feed(chunk)
                if not self.pending and self.decoder.partial:
                    # the rest of a frame is on its way: a UART (and QEMU's) delivers frames a
                    # few bytes at a time, and reading each piece costs two system calls
                    time.sleep(self.PARTIAL_WAIT_S)
            elif time.monotonic() > deadline:
                return None
        return self.pending.pop(0)

    def receive(self, operation: str, timeout_s: float | None = None) -> Frame:
        wait = timeout_s or self.timeout_s
        frame = self.next_frame(wait)
        if frame is None:
            raise DeviceError(
                f"{operation}: no reply within {wait} s; check the port, the cable, the baud "
                "rate and that the board runs this firmware"
            )
        return frame

    def expect(self, operation: str, want: MsgType) -> Frame:
        frame = self.receive(operation)
        if frame.type == MsgType.ERROR:
            raise BoardErrorReply(operation, decode_error(frame.payload))
        if frame.type != want:
            raise DeviceError(f"{operation}: expected {want.name}, got type {frame.type!r}")
        return frame

    # -- operations -----------------------------------------------------------------------

    def hello(self, *, attempts: int = 20, wait_s: float = 0.5) -> Info:
        """Synchronise with the board and read its self-description.

        A board that has just booted may have dropped the first bytes (its UART FIFO is reset
        during initialisation), and a half-received frame makes it answer ERROR: like esptool's
        sync, HELLO is retried until an INFO arrives.

        HELLO goes in this host's protocol version; a board of an older version answers ERROR
        BAD_VERSION, and after 3 such answers (one could be a damaged version byte) the host
        speaks the oldest version, 3, with it (docs/protocol.md, Versions).
        """
        self.version, refused = PROTOCOL_VERSION, 0
        for _ in range(attempts):
            seq = self.send(MsgType.HELLO)
            try:
                while True:
                    frame = self.receive("HELLO", timeout_s=wait_s)
                    if frame.type == MsgType.INFO and frame.seq == seq:
                        self.info = decode_info(frame.payload)
                        return self.info
                    if frame.type == MsgType.ERROR and frame.seq == seq:
                        error = decode_error(frame.payload)
                        if error.code == ErrorCode.BAD_VERSION and error.seq == seq:
                            refused += 1
                            if refused >= 3:
                                self.version = PROTOCOL_VERSION_MIN
                            break
            except DeviceError:
                continue
        raise DeviceError(
            f"HELLO: no INFO after {attempts} attempts; check the port, the "
            "cable, the baud rate and that the board runs this firmware"
        )

    def request(
        self,
        operation: str,
        type_: int,
        payload: bytes,
        want: MsgType,
        *,
        budget_s: float | None = None,
        on_frame=None,
    ) -> Frame:
        """Send a request the board may receive more than once (RESET_STREAM, PROFILE, STATUS)
        until its reply comes, and return the reply.

        Over a faulty link the request or its reply may be lost or damaged (at 1 % corrupted
        and 0.5 % dropped bytes, about half the time), so it is sent again until ``budget_s``
        (default: the device's timeout) has passed: a fixed number of tries would end a long
        stream now and then, a time budget only when the board is gone. Before each new try,
        zero bytes end a frame the board's parser may still be in (a corrupted length makes a
        parser take what follows as payload, up to a frame's size; the board skips zeros
        after), and the reply decoder starts afresh (what it held is garbage by now). Other
        frames that arrive meanwhile go to ``on_frame`` (or are dropped). An ERROR reply about
        the request raises, unless it says the frame arrived damaged."""
        budget = self.timeout_s if budget_s is None else budget_s
        deadline = time.monotonic() + budget
        attempts = 0
        while attempts == 0 or time.monotonic() < deadline:
            if attempts:
                self.send_raw(bytes(MAX_FRAME))
                self.decoder = FrameDecoder(replies_only=True)
            attempts += 1
            seq = self.send(type_, payload)
            wait_until = time.monotonic() + self.reply_wait_s()
            while (left := wait_until - time.monotonic()) > 0:
                frame = self.next_frame(left)
                if frame is None:
                    break
                if frame.seq == seq and frame.type == want:
                    return frame
                if frame.seq == seq and frame.type == MsgType.ERROR:
                    err = decode_error(frame.payload)
                    if err.code not in CORRUPTION_ERRORS:
                        raise BoardErrorReply(operation, err)
                if on_frame is not None:
                    on_frame(frame)
        raise DeviceError(
            f"{operation}: no reply in {budget:g} s ({attempts} attempts); check the port, the "
            "cable and that the board runs this firmware"
        )

    def reply_wait_s(self) -> float:
        """How long to wait for the reply to a request: the round trips seen, with a margin."""
        return max(self.frame_timeout_s, 2 * self.rtt_s + 0.05)

    def reset_stream(self) -> None:
        """The board forgets partial epochs; its stream starts again at sample 0."""
        self.request("RESET_STREAM", MsgType.RESET_STREAM, b"", MsgType.ACK)
        self.samples_acked = 0
        self.epoch_offset = 0

    def set_profile(self, enabled: bool, *, events: bool = False) -> None:
        """Per-layer counts (LAYER_COUNTS before each RESULT) on or off; with ``events``, the
        DWT event counters per layer too (EVENT_COUNTS, in ``event_counts``: real boards only,
        each epoch is then run twice). A board without them refuses, and this raises a
        DeviceError naming it; its profiling stays as it was."""
        mode = ProfileMode.EVENTS if events else ProfileMode.COUNTS if enabled else ProfileMode.OFF
        try:
            self.request("PROFILE", MsgType.PROFILE, bytes([mode]), MsgType.ACK)
        except BoardErrorReply as e:
            if e.reply.code != ErrorCode.NO_EVENTS:
                raise
            board = self.info.board if self.info else "this board"
            raise DeviceError(
                f"PROFILE: {board} has no DWT event counters (the emulated boards have none: "
                "QEMU models no DWT); per-layer events need a real board such as nucleo-l476rg"
            ) from e

    def status(self, *, budget_s: float | None = None, on_frame=None) -> Status:
        """The board's receive state (STATUS), asked as request() does."""
        reply = self.request(
            "STATUS",
            MsgType.STATUS,
            b"",
            MsgType.STATUS_REPLY,
            budget_s=budget_s,
            on_frame=on_frame,
        )
        return decode_status(reply.payload)

    def stream_epochs(
        self, first_epoch: int, epochs: Iterable[np.ndarray], *, window: int = 4
    ) -> Iterator[Result]:
        """Send consecutive epochs (each (3000, 4) int16) from stream epoch ``first_epoch`` on
        and yield each epoch's RESULT, in order, as it arrives.

        Pipelined and reliable (docs/protocol.md, "Flow control" and "Recovery"): up to
        ``window`` x 125 samples are unacknowledged at a time, lost or damaged frames and
        RESULTs are sent or asked for again, a cut link (with ``reopen``) or a board restart is
        survived; every epoch's RESULT is yielded exactly once (``host_tools.sender``). What it
        took is counted in ``counters``.
        """
        if window < 1:
            raise ValueError("window must be >= 1")
        return SelectiveRepeatSender(self, first_epoch, epochs, window).run()

    def send_epoch(self, epoch_index: int, samples: np.ndarray) -> Result:
        """One epoch of int16 samples (3000, 4), in frames; returns the board's RESULT."""
        (result,) = self.stream_epochs(epoch_index, [samples])
        return result
