"""Layer 2a: the byte link to a board (a serial device, or a TCP socket to an emulated one).

``open_port`` opens any pyserial URL with the settings a pipelined stream needs;
``read_available`` reads whatever has arrived without waiting for a fixed count. The request /
reply device (``host_tools.device``), the fault injector (``host_tools.faults``) and the
emulator (``host_tools.emulator``) all go through these two.
"""

from __future__ import annotations

import select
import socket

from serial import SerialException
from serial.urlhandler.protocol_socket import Serial as SocketSerial


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
    """What the port has received, waiting up to ``wait_s`` seconds for the first byte (b"" if
    none).

    pyserial's ``socket://`` port reports at most 1 byte ``in_waiting`` and reads with its own
    timeout, so it is read through its socket; other ports through ``in_waiting``. A port
    object may also bring its own ``read_available(wait_s)`` (host_tools.faults does, and the
    scripted links of the tests).
    """
    own = getattr(port, "read_available", None)
    if own is not None:
        return own(wait_s)
    if isinstance(port, SocketSerial):
        sock = port._socket
        try:  # what has arrived already, without a select (one system call, not two)
            data = sock.recv(65536, socket.MSG_DONTWAIT)
        except BlockingIOError:
            ready, _, _ = select.select([sock], [], [], wait_s)
            if not ready:
                return b""
            data = sock.recv(65536)
        if not data:
            raise SerialException("the connection was closed")
        return data
    n = port.in_waiting
    if n:
        return port.read(n)
    port.timeout = wait_s
    return port.read(1)
