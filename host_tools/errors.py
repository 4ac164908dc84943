"""Errors of the link to a board, raised by the request/reply device (``host_tools.device``) and
the selective-repeat sender (``host_tools.sender``); each names the operation and what to check.
"""

from __future__ import annotations

from .protocol import ErrorReply


class DeviceError(RuntimeError):
    """The board did not answer as the protocol says; names the operation and what to check."""


class BoardErrorReply(DeviceError):
    """The board answered a request with ERROR (``reply``: its code, detail and frame)."""

    def __init__(self, operation: str, reply: ErrorReply):
        self.reply = reply
        super().__init__(
            f"{operation}: the board answered ERROR {reply.code!r} "
            f"(detail {reply.detail}, frame {reply.seq})"
        )


class BoardRestarted(DeviceError):
    """The board announced itself (INFO, sequence number 0) while nothing asked for it."""
