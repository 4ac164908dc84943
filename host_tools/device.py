"""Layer 2: a board on a serial port (real or emulated), spoken to in frames (docs/protocol.md).

Every request waits for its reply with a timeout; errors name the operation and what to check.
"""

from __future__ import annotations

import socket
import time
from collections import deque
from collections.abc import Iterable, Iterator

import numpy as np

from .protocol import (
    EPOCH_SAMPLES,
    MAX_SAMPLES_PER_FRAME,
    ErrorReply,
    Frame,
    FrameDecoder,
    Info,
    MsgType,
    Result,
    decode_ack,
    decode_error,
    decode_info,
    decode_layer_counts,
    decode_result,
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


class DeviceError(RuntimeError):
    """The board did not answer as the protocol says; names the operation and what to check."""


class BoardErrorReply(DeviceError):
    def __init__(self, operation: str, reply: ErrorReply):
        self.reply = reply
        super().__init__(
            f"{operation}: the board answered ERROR {reply.code!r} "
            f"(detail {reply.detail}, frame {reply.seq})"
        )


class Device:
    def __init__(self, port, *, timeout_s: float = 30.0):
        self.port = port
        self.timeout_s = timeout_s
        self.decoder = FrameDecoder()
        self.pending: list[Frame] = []
        self.seq = 0
        self.bytes_sent = 0
        self.layer_counts: list[tuple[int, int]] | None = None  # of the last epoch, if profiling
        self.samples_acked = 0  # the board's next expected sample index, from its last ACK

    # -- framing --------------------------------------------------------------------------

    def send(self, type_: int, payload: bytes = b"") -> int:
        self.seq = (self.seq + 1) & 0xFFFF
        data = Frame(type_, self.seq, payload).encode()
        self.port.write(data)
        self.bytes_sent += len(data)
        return self.seq

    def send_raw(self, data: bytes) -> None:
        """Bytes as they are (tests of malformed frames)."""
        self.port.write(data)
        self.bytes_sent += len(data)

    def receive(self, operation: str, timeout_s: float | None = None) -> Frame:
        deadline = time.monotonic() + (timeout_s or self.timeout_s)
        while not self.pending:
            # what is there, else wait (up to the port's timeout) for one byte: a fixed-size
            # read would sit out the whole timeout on every short reply
            chunk = self.port.read(self.port.in_waiting or 1)
            if chunk:
                self.pending += self.decoder.feed(chunk)
            elif time.monotonic() > deadline:
                raise DeviceError(
                    f"{operation}: no reply within {timeout_s or self.timeout_s} s; "
                    "check the port, the cable, the baud rate and that the board "
                    "runs this firmware"
                )
        return self.pending.pop(0)

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
        self.send(MsgType.RESET_STREAM)
        self.expect("RESET_STREAM", MsgType.ACK)

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
        """
        if window < 1:
            raise ValueError("window must be >= 1")
        in_flight: deque[tuple[int, int]] = deque()  # (seq, next index the ACK must carry)
        results: dict[int, Result] = {}
        want = first_epoch  # the next RESULT to yield
        sent_epochs = 0

        def settle(until) -> Iterator[Result]:
            """Handle replies until ``until()`` holds, yielding RESULTs in order."""
            nonlocal want
            while True:
                while want in results:
                    yield results.pop(want)
                    want += 1
                if until():
                    return
                self._handle(self.receive("SAMPLES"), in_flight, results)

        for k, samples in enumerate(epochs):
            if samples.shape != (EPOCH_SAMPLES, 4):
                raise ValueError(
                    f"an epoch is ({EPOCH_SAMPLES}, 4) int16 samples, got {samples.shape}"
                )
            first = (first_epoch + k) * EPOCH_SAMPLES
            yield from settle(lambda: not in_flight)  # the previous epoch's buffer is free
            for off in range(0, EPOCH_SAMPLES, MAX_SAMPLES_PER_FRAME):
                yield from settle(lambda: len(in_flight) < window)
                block = samples[off : off + MAX_SAMPLES_PER_FRAME]
                seq = self.send(MsgType.SAMPLES, encode_samples(first + off, block))
                in_flight.append((seq, first + off + len(block)))
            sent_epochs += 1
        yield from settle(lambda: want >= first_epoch + sent_epochs and not in_flight)

    def _handle(self, frame: Frame, in_flight: deque, results: dict[int, Result]) -> None:
        if frame.type == MsgType.ACK:
            nxt = decode_ack(frame.payload)
            if not in_flight or in_flight[0][0] != frame.seq:
                raise DeviceError(f"SAMPLES: unexpected ACK of frame {frame.seq}")
            _, expected = in_flight.popleft()
            if nxt != expected:
                raise DeviceError(
                    f"SAMPLES: the board expects sample {nxt} after frame {frame.seq}, "
                    f"sent up to {expected}"
                )
            self.samples_acked = nxt
        elif frame.type == MsgType.RESULT:
            result = decode_result(frame.payload)
            results[result.epoch_index] = result
        elif frame.type == MsgType.LAYER_COUNTS:
            self.layer_counts = decode_layer_counts(frame.payload)
        elif frame.type == MsgType.ERROR:
            raise BoardErrorReply("SAMPLES", decode_error(frame.payload))
        else:
            raise DeviceError(f"SAMPLES: unexpected reply type {frame.type!r}")

    def send_epoch(self, epoch_index: int, samples: np.ndarray) -> Result:
        """One epoch of int16 samples (3000, 4), in frames; returns the board's RESULT."""
        (result,) = self.stream_epochs(epoch_index, [samples])
        return result
