"""A board's side of the protocol in Python and a link that loses, damages or reorders chosen
frames: the host's selective-repeat sender tested without QEMU (tests/host_tools/test_sender.py).

``ScriptedBoard`` follows docs/protocol.md and the firmware's receive logic (firmware/app/main.c):
SAMPLES stored at their index in any order with a 600-block map, ACKs with the SACK bitmap, the
complete epoch ACKed twice (waiting, then taken), an inference of ``inference_s`` seconds with
double buffering, RESULTs kept for RESEND (the last RESULTS_KEPT), STATUS, RESET_STREAM, PROFILE,
HELLO, and a reboot that loses the state and announces itself. Its int8 scores are a hash of the
epoch's samples, so a RESULT says whether the board received the epoch whole and unchanged.

``ScriptedLink`` sits between a ``Device`` and the board (it is the Device's port): each host
frame and each board frame passes ``Rule``s that drop, corrupt or hold back (reorder) the frames
they match. It also counts, from the bytes it carries, what the sender's counters must say.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from host_tools.protocol import (
    EPOCH_SAMPLES,
    N_CHANNELS,
    RESULTS_KEPT,
    SACK_BLOCKS,
    SAMPLE_BLOCK,
    Ack,
    Coding,
    CounterKind,
    ErrorCode,
    ErrorReply,
    Frame,
    FrameDecoder,
    Info,
    MsgType,
    ProtocolError,
    Result,
    Status,
    decode_result,
    encode_ack,
    encode_error,
    encode_info,
    encode_result,
    encode_status,
)
from host_tools.samples import decode_samples, decode_samples_rice

BLOCKS = EPOCH_SAMPLES // SAMPLE_BLOCK
LAYERS = ((1000, 100), (2000, 0))  # LAYER_COUNTS the board reports with PROFILE on


def board_scores(samples: np.ndarray) -> tuple[int, ...]:
    """The scripted board's 5 int8 scores for an epoch (3000, 4) int16: a hash of its bytes."""
    digest = hashlib.sha256(np.ascontiguousarray(samples, dtype="<i2").tobytes()).digest()
    return tuple(int(v) for v in np.frombuffer(digest[:5], np.int8))


def board_info(codings: int = 0) -> Info:
    return Info(
        firmware_version="scripted",
        build_hash=1,
        protocol_version=3,
        model_hash=bytes(8),
        channels=N_CHANNELS,
        sample_rate_hz=100,
        epoch_samples=EPOCH_SAMPLES,
        norm=[(0, 0, 0, 1)] * N_CHANNELS,
        static_ram_bytes=0,
        counter_kind=CounterKind.INSTRUCTIONS,
        core_clock_hz=1,
        board="scripted",
        codings=codings,
    )


class ScriptedBoard:
    """The board's side of the link; ``receive(bytes)`` in, ``tick()`` runs its model, frames for
    the host accumulate in ``out``."""

    def __init__(
        self,
        *,
        inference_s: float = 0.002,
        engine_error_at: int | None = None,
        version: int = 4,
        codings: int = 0,
    ):
        self.inference_s = inference_s
        self.version = version  # the newest protocol version it speaks (docs/protocol.md)
        self.codings = codings  # INFO's codings: SAMPLES_RICE decoded when Coding.RICE is set
        self.engine_error_at = engine_error_at  # board epoch whose inference fails
        self.out: list[Frame] = []
        self.scored: list[int] = []  # board epochs scored, in order (across reboots)
        self.reboots = 0
        self._reset_state()

    def _reset_state(self) -> None:
        self.parser = FrameDecoder()
        self.reply_version = 3  # the last valid frame's version (3 after a reset)
        self.next_index = 0  # every sample before it is stored
        self.rx_base = 0  # first sample of the epoch being received
        self.rx = np.zeros((EPOCH_SAMPLES, N_CHANNELS), np.int16)
        self.have = np.zeros(BLOCKS, bool)
        self.full = False  # a complete epoch waits for the model
        self.rx_epoch = 0
        self.rx_last_seq = 0
        self.results_sent = 0
        self.kept: dict[int, tuple[int, bytes]] = {}  # slot -> (epoch, RESULT payload)
        self.model: tuple[float, int, int, np.ndarray] | None = None  # done at, epoch, seq, x
        self.profile = False

    def reboot(self) -> None:
        """A reset: the state is lost, the board announces itself (INFO, sequence number 0)."""
        self.reboots += 1
        self._reset_state()
        self._send(MsgType.INFO, 0, encode_info(board_info(), version=3))

    # -- what the host sends ----------------------------------------------------------------

    def receive(self, data: bytes) -> None:
        frames = self.parser.feed(data)
        for code, _ in self.parser.errors:  # a damaged frame: ERROR as the firmware sends it
            self._error(code, 0, 0)
        self.parser.errors.clear()
        for f in frames:
            self._on_frame(f)
        self.tick()

    def _on_frame(self, f: Frame) -> None:
        if f.version > self.version:
            self._error(ErrorCode.BAD_VERSION, 0, f.seq)
            return
        self.reply_version = f.version
        if f.type == MsgType.HELLO:
            info = encode_info(board_info(self.codings), version=f.version)
            self._send(MsgType.INFO, f.seq, info)
        elif f.type == MsgType.SAMPLES or (
            f.type == MsgType.SAMPLES_RICE and self.codings & Coding.RICE
        ):
            self._on_samples(f)
        elif f.type == MsgType.PROFILE:
            self.profile = f.payload != b"\0"
            self._ack(f.seq)
        elif f.type == MsgType.RESET_STREAM:
            self.full = False  # (an epoch already taken is still scored)
            self.next_index = self.rx_base = self.results_sent = 0
            self.have[:] = False
            self.kept.clear()
            self._ack(f.seq)
        elif f.type == MsgType.STATUS:
            st = self._state(0)
            status = Status(
                st.next_index, st.epoch_waiting, st.sack_from, st.sack, self.results_sent
            )
            self._send(MsgType.STATUS_REPLY, f.seq, encode_status(status, self.reply_version))
        elif f.type == MsgType.RESEND:
            epoch = int.from_bytes(f.payload, "little")
            kept = self.kept.get(epoch % RESULTS_KEPT)
            if kept is not None and kept[0] == epoch:
                self._send(MsgType.RESULT, f.seq, kept[1])
            else:
                self._error(ErrorCode.NO_RESULT, 0, f.seq)
        elif f.type == MsgType.REBOOT:
            self._ack(f.seq)
            self.reboot()
        else:
            self._error(ErrorCode.UNKNOWN_TYPE, int(f.type), f.seq)

    def _on_samples(self, f: Frame) -> None:
        decode = decode_samples_rice if f.type == MsgType.SAMPLES_RICE else decode_samples
        try:
            first, samples = decode(f.payload)
        except ProtocolError:
            self._error(ErrorCode.BAD_LENGTH, 0, f.seq)
            return
        n, base = len(samples), self.rx_base
        end = first + n
        if end <= base and first + EPOCH_SAMPLES >= base:  # a resend of the last epoch
            self._ack(f.seq)
            return
        if first < base or first >= base + EPOCH_SAMPLES:
            self._error(ErrorCode.OUT_OF_SEQUENCE, 0, f.seq)
            self._ack(f.seq)
            return
        if self.full:  # the host did not wait for the ACK saying the epoch was taken
            self._error(ErrorCode.BUSY, 0, f.seq)
            return
        if end > base + EPOCH_SAMPLES:
            self._error(ErrorCode.BAD_LENGTH, 1, f.seq)
            self._ack(f.seq)
            return
        t0 = first - base
        self.rx[t0 : t0 + n] = samples
        self.have[t0 // SAMPLE_BLOCK : (t0 + n) // SAMPLE_BLOCK] = True
        while (
            self.next_index < base + EPOCH_SAMPLES
            and self.have[(self.next_index - base) // SAMPLE_BLOCK]
        ):
            self.next_index += SAMPLE_BLOCK
        if self.next_index == base + EPOCH_SAMPLES:  # complete: ACKed now and once taken
            self.rx_epoch = base // EPOCH_SAMPLES
            self.rx_last_seq = f.seq
            self.have[:] = False
            self.rx_base = self.next_index
            self.full = True
        window = SACK_BLOCKS * SAMPLE_BLOCK
        self._ack(f.seq, end - window if end > window else 0)

    # -- the model (main() of the firmware) -------------------------------------------------

    def tick(self) -> None:
        now = time.monotonic()
        if self.model is not None and now >= self.model[0]:
            _, epoch, seq, x = self.model
            self.model = None
            self._result(epoch, seq, x)
        if self.full and self.model is None:  # take the epoch: the next one may come
            self.full = False
            self.model = (now + self.inference_s, self.rx_epoch, self.rx_last_seq, self.rx.copy())
            self._ack(self.rx_last_seq)

    def _result(self, epoch: int, seq: int, x: np.ndarray) -> None:
        if epoch == self.engine_error_at:
            self._error(ErrorCode.ENGINE, 3, seq)
            return
        if self.profile:
            counts = bytes([len(LAYERS)]) + b"".join(
                c.to_bytes(4, "little") + m.to_bytes(4, "little") for c, m in LAYERS
            )
            self._send(MsgType.LAYER_COUNTS, seq, counts)
        scores = board_scores(x)
        stage = int(np.argmax(scores))
        payload = encode_result(
            Result(epoch, stage, scores, 1000 + epoch, 50_000 + epoch, CounterKind.INSTRUCTIONS)
        )
        self.kept[epoch % RESULTS_KEPT] = (epoch, payload)
        self.scored.append(epoch)
        self.results_sent += 1
        self._send(MsgType.RESULT, seq, payload)

    # -- replies ----------------------------------------------------------------------------

    def _state(self, sack_from: int) -> Ack:
        sack_from = max(sack_from, self.next_index + SAMPLE_BLOCK)
        sack = set()
        for i in range(SACK_BLOCKS):
            block = (sack_from + SAMPLE_BLOCK * i - self.rx_base) // SAMPLE_BLOCK
            if block < BLOCKS and self.have[block]:
                sack.add(i)
        return Ack(self.next_index, self.full, sack_from, frozenset(sack))

    def _ack(self, seq: int, sack_from: int = 0) -> None:
        self._send(MsgType.ACK, seq, encode_ack(self._state(sack_from)))

    def _error(self, code: int, detail: int, seq: int) -> None:
        self._send(MsgType.ERROR, seq, encode_error(ErrorReply(code, detail, seq)))

    def _send(self, type_: int, seq: int, payload: bytes) -> None:
        self.out.append(Frame(type_, seq, payload, self.reply_version))


@dataclass
class Rule:
    """Do ``action`` to the first ``times`` frames going ``direction`` ("to_board" or
    "to_host") that ``match``: "drop", "corrupt" (its CRC: the receiver drops it) or, to the
    board only, "hold" (deliver it after the next frame: a reordering)."""

    direction: str
    match: Callable[[Frame], bool]
    action: str
    times: int = 1
    fired: int = 0


def covers(sample: int) -> Callable[[Frame], bool]:
    """Matches the SAMPLES frames that carry board sample ``sample``."""

    def match(f: Frame) -> bool:
        if f.type != MsgType.SAMPLES:
            return False
        first, samples = decode_samples(f.payload)
        return first <= sample < first + len(samples)

    return match


def result_of(epoch: int) -> Callable[[Frame], bool]:
    """Matches the RESULT frames of board epoch ``epoch`` (sent or sent again)."""
    return lambda f: f.type == MsgType.RESULT and decode_result(f.payload).epoch_index == epoch


def of_type(type_: MsgType) -> Callable[[Frame], bool]:
    return lambda f: f.type == type_


def _damaged(data: bytes) -> bytes:
    return data[:-1] + bytes([data[-1] ^ 0x5A])  # the CRC's last byte: the frame is dropped


class ScriptedLink:
    """The Device's port: frames to ``board`` and back, through ``rules``. With
    ``reboot_after``, the board reboots once that many SAMPLES frames have reached it.

    Counted from the bytes carried: ``resent_frames`` (SAMPLES frames carrying a block the host
    had sent before, since the last RESET_STREAM), ``resends`` (RESEND frames), ``to_board``
    (frames the host wrote, by type name) and ``early_epochs``: board epochs whose first frame
    went out while a RESULT RESULTS_KEPT or more epochs before it had not reached the host.

    A stream still running ``deadline_s`` after the link was made fails the test (the sender
    never gives up on a board that answers, so a recovery bug would otherwise hang)."""

    def __init__(
        self,
        board: ScriptedBoard,
        rules=(),
        *,
        reboot_after: int | None = None,
        deadline_s: float = 30.0,
    ):
        self.board = board
        self.deadline = time.monotonic() + deadline_s
        self.rules = list(rules)
        self.reboot_after = reboot_after
        self.samples_delivered = 0
        self.held: bytes | None = None
        self.inbox = b""
        self.sent_blocks: set[int] = set()
        self.started_epochs: set[int] = set()
        self.results_delivered: set[int] = set()
        self.resent_frames = 0
        self.resends = 0
        self.to_board: dict[str, int] = {}
        self.early_epochs: list[int] = []

    def _action(self, direction: str, frame: Frame) -> str:
        for rule in self.rules:
            if rule.direction == direction and rule.fired < rule.times and rule.match(frame):
                rule.fired += 1
                return rule.action
        return "pass"

    def write(self, data: bytes) -> int:
        data = bytes(data)
        frames = FrameDecoder().feed(data)
        action = "pass"
        if len(frames) == 1:  # (else the zero bytes that flush the board's parser)
            frame = frames[0]
            self._count(frame)
            action = self._action("to_board", frame)
        if action == "drop":
            pass
        elif action == "hold":
            self._deliver(self.held)
            self.held = data
        else:
            self._deliver(_damaged(data) if action == "corrupt" else data)
            self._deliver(self.held)
            self.held = None
        return len(data)

    def _count(self, frame: Frame) -> None:
        name = MsgType(frame.type).name
        self.to_board[name] = self.to_board.get(name, 0) + 1
        if frame.type == MsgType.RESET_STREAM:
            self.sent_blocks.clear()
            self.started_epochs.clear()
            self.results_delivered.clear()
        elif frame.type == MsgType.RESEND:
            self.resends += 1
        elif frame.type == MsgType.SAMPLES:
            first, samples = decode_samples(frame.payload)
            blocks = set(range(first, first + len(samples), SAMPLE_BLOCK))
            self.resent_frames += bool(blocks & self.sent_blocks)
            self.sent_blocks |= blocks
            epoch = first // EPOCH_SAMPLES
            if epoch not in self.started_epochs:
                self.started_epochs.add(epoch)
                missing = [
                    e for e in range(epoch - RESULTS_KEPT + 1) if e not in self.results_delivered
                ]
                if missing:
                    self.early_epochs.append(epoch)

    def _deliver(self, data: bytes | None) -> None:
        if not data:
            return
        if data[3:4] == bytes([MsgType.SAMPLES]):
            self.samples_delivered += 1
        self.board.receive(data)
        if self.reboot_after is not None and self.samples_delivered == self.reboot_after:
            self.reboot_after = None
            self.board.reboot()

    def read_available(self, wait_s: float) -> bytes:
        if time.monotonic() > self.deadline:
            raise AssertionError("the stream did not end before the scripted link's deadline")
        deadline = time.monotonic() + wait_s
        while True:
            self.board.tick()
            self._collect()
            if self.inbox or time.monotonic() >= deadline:
                break
            time.sleep(min(0.0005, wait_s))
        if self.held is not None and not self.inbox:  # nothing follows it: deliver it late
            self._deliver(self.held)
            self.held = None
        data, self.inbox = self.inbox, b""
        return data

    def _collect(self) -> None:
        frames, self.board.out = self.board.out, []
        for frame in frames:
            action = self._action("to_host", frame)
            if action == "drop":
                continue
            data = frame.encode()
            if action == "corrupt":
                data = _damaged(data)
            elif frame.type == MsgType.RESULT:
                self.results_delivered.add(decode_result(frame.payload).epoch_index)
            self.inbox += data

    def close(self) -> None:
        pass
