"""Layer 2: a board on a serial port (real or emulated), spoken to in frames (docs/protocol.md).

Every request waits for its reply with a timeout; errors name the operation and what to check.
"""

from __future__ import annotations

import contextlib
import select
import socket
import time
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import replace
from typing import ClassVar

import numpy as np
from serial import SerialException
from serial.urlhandler.protocol_socket import Serial as SocketSerial

from .protocol import (
    EPOCH_SAMPLES,
    MAX_FRAME,
    MAX_SAMPLES_PER_FRAME,
    ErrorCode,
    ErrorReply,
    Frame,
    FrameDecoder,
    Info,
    MsgType,
    Result,
    Status,
    decode_ack,
    decode_error,
    decode_info,
    decode_layer_counts,
    decode_result,
    decode_status,
    encode_resend,
    encode_samples,
)


def open_port(url: str, baud: int = 921600, *, timeout_s: float = 0.05):
    """A pyserial port for a device path, ``socket://host:port`` or ``rfc2217://host:port``.

    On a TCP link Nagle's algorithm is turned off: with several frames in flight it would hold
    each frame back until the previous one is acknowledged by TCP (40 ms delayed ACKs), which
    cuts an emulated board's link from ~140 to ~25 kB/s.
    """
    import serial

    port = serial.serial_for_url(url, baudrate=baud, timeout=timeout_s)
    sock = getattr(port, "_socket", None)  # pyserial's socket:// and rfc2217:// transports
    if sock is not None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return port


def read_available(port, wait_s: float) -> bytes:
    """What the port has received, waiting up to ``wait_s`` for the first byte (b"" if none).

    pyserial's ``socket://`` port reports at most 1 byte ``in_waiting`` and reads with its own
    timeout, so it is read through its socket; other ports through ``in_waiting``. A port
    object may also bring its own ``read_available(wait_s)`` (host_tools.faults does).
    """
    own = getattr(port, "read_available", None)
    if own is not None:
        return own(wait_s)
    if isinstance(port, SocketSerial):
        ready, _, _ = select.select([port._socket], [], [], wait_s)
        if not ready:
            return b""
        data = port._socket.recv(65536)
        if not data:
            raise SerialException("the connection was closed")
        return data
    n = port.in_waiting
    if n:
        return port.read(n)
    port.timeout = wait_s
    return port.read(1)


class DeviceError(RuntimeError):
    """The board did not answer as the protocol says; names the operation and what to check."""


class BoardErrorReply(DeviceError):
    def __init__(self, operation: str, reply: ErrorReply):
        self.reply = reply
        super().__init__(
            f"{operation}: the board answered ERROR {reply.code!r} "
            f"(detail {reply.detail}, frame {reply.seq})"
        )


class BoardRestarted(DeviceError):
    """The board announced itself (INFO, sequence number 0) while nothing asked for it."""


class Device:
    """A board behind a serial port. ``reopen`` (a callable returning a new port) lets a stream
    survive a cut link: the link is reopened and the stream resynchronised."""

    def __init__(self, port, *, timeout_s: float = 30.0, reopen=None, frame_timeout_s=0.25):
        self.port = port
        self.timeout_s = timeout_s
        self.reopen = reopen
        self.frame_timeout_s = frame_timeout_s  # no ACK this long after a frame: resynchronise
        self.decoder = FrameDecoder()
        self.pending: list[Frame] = []
        self.seq = 0
        self.bytes_sent = 0
        self.layer_counts: list[tuple[int, int]] | None = None  # of the last epoch, if profiling
        self.samples_acked = 0  # the board's next expected sample index, from its last ACK
        # link figures of streaming (docs/streaming.md)
        self.frames_resent = 0  # SAMPLES frames sent again
        self.resyncs = 0  # recoveries through STATUS (after an error, a timeout or a cut)
        self.results_resent = 0  # RESULTs asked for again (RESEND)
        self.relinks = 0  # cut links reopened
        self.restarts = 0  # board restarts survived
        self.errors_seen: dict[str, int] = {}  # ERROR replies by code name
        self.epoch_offset = 0  # stream epoch = the board's epoch index + this (after a restart)

    # -- framing --------------------------------------------------------------------------

    def send(self, type_: int, payload: bytes = b"") -> int:
        self.seq = (self.seq % 0xFFFF) + 1  # 1..65535: 0 is the board's own announcement
        data = Frame(type_, self.seq, payload).encode()
        try:
            self.port.write(data)
        except (OSError, SerialException) as exc:
            self._relink(exc)
        self.bytes_sent += len(data)
        return self.seq

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
        self.decoder = FrameDecoder()
        self.relinks += 1

    def send_raw(self, data: bytes) -> None:
        """Bytes as they are (tests of malformed frames, flushing the board's parser)."""
        try:
            self.port.write(data)
        except (OSError, SerialException) as exc:
            self._relink(exc)
        self.bytes_sent += len(data)

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
        """
        for _ in range(attempts):
            seq = self.send(MsgType.HELLO)
            try:
                while True:
                    frame = self.receive("HELLO", timeout_s=wait_s)
                    if frame.type == MsgType.INFO and frame.seq == seq:
                        return decode_info(frame.payload)
            except DeviceError:
                continue
        raise DeviceError(
            f"HELLO: no INFO after {attempts} attempts; check the port, the "
            "cable, the baud rate and that the board runs this firmware"
        )

    def reset_stream(self) -> None:
        """The board forgets partial epochs; its stream starts again at sample 0."""
        seq = self.send(MsgType.RESET_STREAM)
        while True:  # replies still on their way (a RESULT, the board's announcement) go
            frame = self.receive("RESET_STREAM")
            if frame.type == MsgType.ERROR and frame.seq == seq:
                raise BoardErrorReply("RESET_STREAM", decode_error(frame.payload))
            if frame.type == MsgType.ACK and frame.seq == seq:
                break
        self.samples_acked = 0
        self.epoch_offset = 0

    def set_profile(self, enabled: bool) -> None:
        """Per-layer counts (LAYER_COUNTS before each RESULT) on or off."""
        self.send(MsgType.PROFILE, bytes([1 if enabled else 0]))
        self.expect("PROFILE", MsgType.ACK)

    def stream_epochs(
        self, first_epoch: int, epochs: Iterable[np.ndarray], *, window: int = 4
    ) -> Iterator[Result]:
        """Send consecutive epochs (each (3000, 4) int16) from stream epoch ``first_epoch`` on
        and yield each epoch's RESULT, in order, as it arrives.

        Pipelined (docs/protocol.md, "Flow control"): up to ``window`` SAMPLES frames are
        unacknowledged at a time, and the first frame of an epoch waits for the ACK of the
        previous epoch's last frame, which the board sends once its receive buffer is free. So
        the board receives epoch n+1 while it scores epoch n.

        Reliable ("Recovery"): a corrupted or lost frame, a lost reply, a cut link (with
        ``reopen``) or a board restart is detected and the stream resumes from what the board
        has, so every epoch's RESULT is yielded exactly once. The counters ``frames_resent``,
        ``resyncs``, ``results_resent``, ``relinks`` and ``restarts`` say what it took.
        """
        if window < 1:
            raise ValueError("window must be >= 1")
        return _Stream(self, first_epoch, epochs, window).run()

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
            elif time.monotonic() > deadline:
                return None
        return self.pending.pop(0)

    def status(self, *, attempts: int = 8, on_frame=None) -> Status:
        """The board's receive state (STATUS). Frames that arrive meanwhile go to
        ``on_frame`` (or are dropped)."""
        for attempt in range(attempts):
            if attempt:
                # a corrupted length field makes a parser take what follows as payload (up to
                # a frame's size). The board's: zeros end that frame and are skipped after. Ours:
                # a fresh decoder (what it held is garbage by now).
                self.send_raw(bytes(MAX_FRAME))
                self.decoder = FrameDecoder()
            seq = self.send(MsgType.STATUS)
            deadline = time.monotonic() + self.frame_timeout_s
            while (left := deadline - time.monotonic()) > 0:
                frame = self.next_frame(left)
                if frame is None:
                    break
                if frame.type == MsgType.STATUS_REPLY and frame.seq == seq:
                    return decode_status(frame.payload)
                if on_frame is not None:
                    on_frame(frame)
        raise DeviceError(
            f"STATUS: no reply after {attempts} attempts; check the port, the cable and that "
            "the board runs this firmware"
        )

    def send_epoch(self, epoch_index: int, samples: np.ndarray) -> Result:
        """One epoch of int16 samples (3000, 4), in frames; returns the board's RESULT."""
        (result,) = self.stream_epochs(epoch_index, [samples])
        return result


class _Stream:
    """One Device.stream_epochs call: frames out, replies in, recovery (docs/protocol.md)."""

    MIN_FRAME = 5  # samples per frame after repeated errors
    GROW_AFTER = 16  # clean ACKs before the frame size doubles again
    CORRUPTION: ClassVar[set[ErrorCode]] = {
        ErrorCode.BAD_CRC,
        ErrorCode.BAD_VERSION,
        ErrorCode.UNKNOWN_TYPE,
        ErrorCode.TOO_LONG,
        ErrorCode.BAD_LENGTH,
        ErrorCode.OVERRUN,
    }

    def __init__(self, dev: Device, first_epoch: int, epochs: Iterable[np.ndarray], window: int):
        self.dev = dev
        self.source = iter(epochs)
        self.window = window
        self.kept: dict[int, np.ndarray] = {}  # epoch -> samples, until its RESULT
        self.results: dict[int, Result] = {}
        self.want = first_epoch  # next RESULT to yield
        self.next_new = first_epoch  # next epoch to take from the source
        self.exhausted = False
        self.queue: deque[int] = deque()  # epochs to send again (after a restart)
        self.sending: int | None = None  # epoch being sent
        self.send_pos = dev.samples_acked  # board sample index of the next frame
        self.sent_high = dev.samples_acked  # highest index sent so far (resends are below)
        self.in_flight: list[tuple[int, int, int, float, int]] = []  # seq, start, end, t, gen
        self.gen = 0  # go-backs so far: ACKs of frames sent before the last one are stale
        self.timeouts = 0  # consecutive timeouts without progress
        self.spf = MAX_SAMPLES_PER_FRAME
        self.clean = 0
        self.handed: dict[int, float] = {}  # epoch -> when its buffer was freed
        self.result_wait_s = 2.0  # grows with the slowest inference seen
        self.ack_latency_s = 0.0  # moving average of frame -> ACK (slow links, busy hosts)
        self.last_reply = time.monotonic()  # nothing heard for long while waiting: ask STATUS
        self.seen = 0  # RESULTs received since the board's stream began (restart detection)
        self.trouble = False  # resynchronise through STATUS

    # -- helpers ----------------------------------------------------------------------------

    def base(self, epoch: int) -> int:
        return (epoch - self.dev.epoch_offset) * EPOCH_SAMPLES

    def go_back(self) -> None:
        """Send again from the board's next expected index (go-back-N)."""
        self.gen += 1
        self.in_flight.clear()
        if self.sending is not None:
            self.send_pos = max(self.dev.samples_acked, self.base(self.sending))

    def shrink(self) -> None:
        self.spf = max(self.MIN_FRAME, self.spf // 2)
        self.clean = 0

    def take_next_epoch(self) -> None:
        if self.queue:
            self.sending = self.queue.popleft()
        elif not self.exhausted:
            try:
                samples = next(self.source)
            except StopIteration:
                self.exhausted = True
                return
            if samples.shape != (EPOCH_SAMPLES, 4):
                raise ValueError(
                    f"an epoch is ({EPOCH_SAMPLES}, 4) int16 samples, got {samples.shape}"
                )
            self.kept[self.next_new] = samples
            self.sending = self.next_new
            self.next_new += 1
        else:
            return
        self.send_pos = max(self.send_pos, self.base(self.sending))

    def send_frames(self) -> None:
        epoch = self.sending
        end = self.base(epoch) + EPOCH_SAMPLES
        while len(self.in_flight) < self.window and self.send_pos < end:
            start = self.send_pos
            n = min(self.spf, end - start)
            off = start - self.base(epoch)
            block = self.kept[epoch][off : off + n]
            seq = self.dev.send(MsgType.SAMPLES, encode_samples(start, block))
            self.in_flight.append((seq, start, start + n, time.monotonic(), self.gen))
            if start < self.sent_high:
                self.dev.frames_resent += 1
            self.sent_high = max(self.sent_high, start + n)
            self.send_pos = start + n

    # -- replies ----------------------------------------------------------------------------

    def handle(self, frame: Frame) -> None:
        dev = self.dev
        if frame.type == MsgType.ACK:
            nxt = decode_ack(frame.payload)
            mine = [f for f in self.in_flight if f[0] == frame.seq]
            dev.samples_acked = nxt
            self.timeouts = 0
            self.in_flight = [f for f in self.in_flight if f[2] > nxt and f[0] != frame.seq]
            if mine:
                latency = time.monotonic() - mine[0][3]
                self.ack_latency_s = 0.8 * self.ack_latency_s + 0.2 * latency
                if mine[0][2] > nxt and mine[0][4] == self.gen:
                    self.go_back()  # that frame was not stored: one before it was lost
                else:
                    self.clean += 1
                    if self.clean >= self.GROW_AFTER:
                        self.spf = min(MAX_SAMPLES_PER_FRAME, self.spf * 2)
                        self.clean = 0
            if self.sending is not None and nxt >= self.base(self.sending) + EPOCH_SAMPLES:
                self.handed[self.sending] = time.monotonic()
                self.sending = None
        elif frame.type == MsgType.RESULT:
            result = decode_result(frame.payload)
            epoch = result.epoch_index + dev.epoch_offset
            if epoch == self.sending:
                # its RESULT came before the ACK that frees the board's buffer (that ACK was
                # lost): the board took the epoch, so the next one can go
                self.in_flight.clear()
                dev.samples_acked = max(dev.samples_acked, self.base(epoch) + EPOCH_SAMPLES)
                self.send_pos = dev.samples_acked
                self.sending = None
            if epoch >= self.want and epoch not in self.results:
                self.results[epoch] = replace(result, epoch_index=epoch)
                self.seen += 1
                if epoch in self.handed:
                    waited = time.monotonic() - self.handed.pop(epoch)
                    self.result_wait_s = max(self.result_wait_s, 3 * waited + 1.0)
        elif frame.type == MsgType.LAYER_COUNTS:
            dev.layer_counts = decode_layer_counts(frame.payload)
        elif frame.type == MsgType.ERROR:
            err = decode_error(frame.payload)
            name = err.code.name if isinstance(err.code, ErrorCode) else str(err.code)
            dev.errors_seen[name] = dev.errors_seen.get(name, 0) + 1
            if err.code == ErrorCode.ENGINE:
                raise BoardErrorReply("SAMPLES", err)
            if err.code in self.CORRUPTION:
                # a frame was damaged: smaller frames from now on. The frames after it are
                # refused as out of sequence, and their ACKs take the stream back (go_back);
                # no frame after it: the ACK timeout does. (Which frame an ERROR is about
                # cannot be told: its header may be the damaged part.)
                self.shrink()
            elif err.code != ErrorCode.OUT_OF_SEQUENCE:  # (an ACK with the index follows)
                self.trouble = True  # BUSY, NO_RESULT: ask the board where it is
        elif frame.type == MsgType.INFO and frame.seq == 0:
            raise BoardRestarted("the board restarted (it announced itself)")
        # anything else (a late STATUS_REPLY, a stray INFO) carries nothing for the stream

    # -- recovery ---------------------------------------------------------------------------

    def resync(self) -> None:
        dev = self.dev
        dev.resyncs += 1
        self.trouble = False
        st = dev.status(on_frame=self.handle)
        if st.next_index < dev.samples_acked or st.results_sent < self.seen:
            raise BoardRestarted("the board restarted (its stream went back)")
        dev.samples_acked = st.next_index
        self.in_flight.clear()
        if self.sending is not None:
            end = self.base(self.sending) + EPOCH_SAMPLES
            self.send_pos = max(st.next_index, self.base(self.sending))
            if st.next_index >= end and not st.epoch_waiting:  # its deferred ACK was lost
                self.handed[self.sending] = time.monotonic()
                self.sending = None
        for epoch in range(self.want, self.next_new):
            board_epoch = epoch - dev.epoch_offset
            if 0 <= board_epoch < st.results_sent and epoch not in self.results:
                dev.send(MsgType.RESEND, encode_resend(board_epoch))
                dev.results_resent += 1

    def restart(self) -> None:
        """The board lost its state: start its stream again at the first epoch not scored."""
        dev = self.dev
        dev.restarts += 1
        dev.hello()
        dev.reset_stream()
        dev.epoch_offset = self.want
        self.queue = deque(e for e in sorted(self.kept) if e >= self.want)
        self.sending = None
        self.send_pos = self.sent_high = 0
        self.in_flight.clear()
        self.handed.clear()
        self.seen = 0
        self.trouble = False

    # -- the loop ---------------------------------------------------------------------------

    def run(self) -> Iterator[Result]:
        dev = self.dev
        while True:
            while self.want in self.results:
                result = self.results.pop(self.want)
                self.kept.pop(self.want, None)
                self.want += 1
                yield result
            if self.sending is None:
                self.take_next_epoch()
            if self.sending is None and self.exhausted and self.want >= self.next_new:
                return
            try:
                if self.sending is not None:
                    self.send_frames()
                relinks = dev.relinks
                frame = dev.next_frame(0.02)
                now = time.monotonic()
                if frame is not None:
                    self.last_reply = now
                    self.handle(frame)
                if dev.relinks != relinks:
                    self.trouble = True
                elif self.in_flight and now - self.in_flight[0][3] > max(
                    dev.frame_timeout_s, 4 * self.ack_latency_s
                ):
                    # a frame or its ACK was lost, or a damaged length field made a parser
                    # swallow what followed: start both parsers afresh and send again
                    self.timeouts += 1
                    self.shrink()
                    dev.decoder = FrameDecoder()
                    if self.timeouts >= 3:
                        self.trouble = True  # nothing gets through: ask the board
                    else:
                        dev.send_raw(bytes(MAX_FRAME))
                        self.go_back()
                elif any(now - t > self.result_wait_s for t in self.handed.values()):
                    self.trouble = True  # a RESULT was lost
                    self.handed = {e: now for e in self.handed}
                elif now - self.last_reply > max(1.0, 8 * self.ack_latency_s):
                    # waiting for a reply that may have been lost (the deferred ACK of an
                    # epoch's last frame, after a STATUS said the epoch was still waiting)
                    self.trouble = True
                    self.last_reply = now
                if self.trouble:
                    self.resync()
            except BoardRestarted:
                self.restart()
