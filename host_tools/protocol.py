"""Layer 1 of the host tools: wire framing and payload codecs, no I/O.

The source of truth is docs/protocol.md (version 4); the constants below are checked
against firmware/app/protocol_defs.h by tests/host_tools/test_protocol_constants.py. Everything
is little-endian.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import astuple, dataclass
from enum import IntEnum

SYNC = b"\xa5\x5a"
PROTOCOL_VERSION = 4
PROTOCOL_VERSION_MIN = 3  # the oldest version both sides still speak (docs/protocol.md, Versions)
HEADER_LEN = 8
CRC_LEN = 4
MAX_PAYLOAD = 1024
MAX_FRAME = HEADER_LEN + MAX_PAYLOAD + CRC_LEN
MAX_SAMPLES_PER_FRAME = 125
SAMPLE_BLOCK = 5  # SAMPLES frames start and end on multiples of this
SACK_BLOCKS = 64  # blocks after the next expected index that ACK and STATUS_REPLY report
N_CHANNELS = 4
EPOCH_SAMPLES = 3000
SAMPLE_RATE_HZ = 100
RESULTS_KEPT = 4  # the last RESULTs a board keeps for RESEND


class MsgType(IntEnum):
    HELLO = 0x01
    SAMPLES = 0x02
    RESET_STREAM = 0x03
    PROFILE = 0x04
    STATUS = 0x05
    RESEND = 0x06
    REBOOT = 0x07
    SAMPLES_RICE = 0x08
    INFO = 0x81
    ACK = 0x82
    RESULT = 0x83
    ERROR = 0x84
    LAYER_COUNTS = 0x85
    STATUS_REPLY = 0x86
    EVENT_COUNTS = 0x87


class ErrorCode(IntEnum):
    BAD_CRC = 1
    BAD_VERSION = 2
    UNKNOWN_TYPE = 3
    TOO_LONG = 4
    BAD_LENGTH = 5
    OUT_OF_SEQUENCE = 6
    ENGINE = 7
    BUSY = 8
    OVERRUN = 9
    NO_RESULT = 10
    NO_EVENTS = 11  # detail 0: no DWT event counters; 1: the events pass disagreed
    BAD_CODING = 12  # detail 1, 2, 3: samples.CodingError


#: ERROR codes that say a frame arrived damaged (or bytes were lost), not that the host and the
#: board disagree: the ACKs after them show what is missing (docs/protocol.md, "Recovery").
CORRUPTION_ERRORS = frozenset(
    {
        ErrorCode.BAD_CRC,
        ErrorCode.BAD_VERSION,
        ErrorCode.UNKNOWN_TYPE,
        ErrorCode.TOO_LONG,
        ErrorCode.BAD_LENGTH,
        ErrorCode.OVERRUN,
    }
)


class CounterKind(IntEnum):
    INSTRUCTIONS = 0
    CYCLES = 1


class ProfileMode(IntEnum):
    """PROFILE's payload."""

    OFF = 0
    COUNTS = 1  # LAYER_COUNTS before each RESULT
    EVENTS = 2  # and EVENT_COUNTS (DWT events per layer) after LAYER_COUNTS


#: EVENT_COUNTS' columns: the Armv7-M DWT event counters, in register order.
EVENT_NAMES = ("cpi", "exc", "sleep", "lsu", "fold")
EVENTS_PER_LAYER = len(EVENT_NAMES)
EVENT_COUNTS_HEAD = 12  # bytes before the rows


class ProtocolError(Exception):
    """A frame or payload that cannot be encoded or decoded."""


def crc32(data: bytes) -> int:
    """CRC-32 (IEEE 802.3; reflected poly 0xEDB88320, init and final xor 0xFFFFFFFF): zlib's
    crc32, the C side's proto_crc32."""
    return zlib.crc32(data)


_HEADER = struct.Struct("<2sBBHH")  # sync, version, type, seq, payload length


def _pack(what: str, fmt: str, *values) -> bytes:
    try:
        return struct.pack(fmt, *values)
    except struct.error as exc:
        raise ProtocolError(f"{what}: cannot encode {values!r}: {exc}") from None


def _unpack(what: str, fmt: str, payload: bytes) -> tuple:
    size = struct.calcsize(fmt)
    if len(payload) != size:
        raise ProtocolError(f"{what}: payload is {len(payload)} bytes, expected {size}")
    return struct.unpack(fmt, payload)


@dataclass(frozen=True)
class Frame:
    """One frame (docs/protocol.md, "Frame"): type, sequence number and payload."""

    type: int
    seq: int
    payload: bytes
    version: int = PROTOCOL_VERSION

    def encode(self) -> bytes:
        if len(self.payload) > MAX_PAYLOAD:
            raise ProtocolError(f"payload is {len(self.payload)} bytes, at most {MAX_PAYLOAD}")
        if not 0 <= self.seq <= 0xFFFF:
            raise ProtocolError(f"sequence number {self.seq} is not in 0..65535")
        if not 0 <= self.type <= 0xFF:
            raise ProtocolError(f"message type {self.type} is not in 0..255")
        body = _HEADER.pack(SYNC, self.version, self.type, self.seq, len(self.payload))
        body += bytes(self.payload)
        return body + struct.pack("<I", crc32(body[2:]))


def reply_length_ok(mtype: int, n: int) -> bool:
    """Whether a board -> host frame of type ``mtype`` can have a payload of ``n`` bytes."""
    fixed = _REPLY_LENGTHS.get(mtype)
    if fixed is not None:
        return n in fixed
    if mtype == MsgType.EVENT_COUNTS:
        return n >= EVENT_COUNTS_HEAD and (n - EVENT_COUNTS_HEAD) % (4 * EVENTS_PER_LAYER) == 0
    return mtype == MsgType.LAYER_COUNTS and n >= 1 and (n - 1) % 8 == 0


class FrameDecoder:
    """Incremental frame decoder; resynchronises on the next sync pair after a bad frame.

    ``errors`` holds ``(ErrorCode, info)`` for each dropped candidate (the newest
    ``max_errors``). Bytes outside frames are skipped silently. Never raises on bytes input.

    ``replies_only=True`` (the host reading a board): a header whose type is not a board reply
    or whose length that type cannot have is dropped at once, as the board does with the frames
    it receives, so that a damaged length field does not make the decoder wait for (and then
    drop) the frames that follow.
    """

    max_errors = 256

    def __init__(self, *, replies_only: bool = False) -> None:
        self.replies_only = replies_only
        self._buf = bytearray()
        self._offset = 0  # stream offset of self._buf[0]
        self.errors: list[tuple[ErrorCode, str]] = []

    @property
    def partial(self) -> bool:
        """Whether bytes of a frame not yet complete are held (a sync pair seen, its frame not)."""
        return SYNC in self._buf or self._buf[-1:] == SYNC[:1]

    def _reject(self, code: ErrorCode, pos: int, why: str) -> None:
        self.errors.append((code, f"offset {self._offset + pos}: {why}"))
        del self.errors[: -self.max_errors]

    def feed(self, data: bytes) -> list[Frame]:
        buf = self._buf
        buf += data
        frames: list[Frame] = []
        pos = 0
        while True:
            pos = buf.find(SYNC, pos)
            if pos < 0:  # keep a trailing first sync byte only
                pos = len(buf) - 1 if buf[-1:] == SYNC[:1] else len(buf)
                break
            if len(buf) - pos < HEADER_LEN:
                break
            _, version, mtype, seq, n = _HEADER.unpack_from(buf, pos)
            if not PROTOCOL_VERSION_MIN <= version <= PROTOCOL_VERSION:
                self._reject(ErrorCode.BAD_VERSION, pos, f"version {version}")
            elif n > MAX_PAYLOAD:
                self._reject(ErrorCode.TOO_LONG, pos, f"payload length {n}")
            elif self.replies_only and not reply_length_ok(mtype, n):
                self._reject(ErrorCode.BAD_LENGTH, pos, f"type {mtype:#04x} with length {n}")
            else:
                end = pos + HEADER_LEN + n + CRC_LEN
                if len(buf) < end:
                    break
                (crc,) = struct.unpack_from("<I", buf, end - CRC_LEN)
                computed = crc32(buf[pos + 2 : end - CRC_LEN])
                if crc == computed:
                    payload = bytes(buf[pos + HEADER_LEN : end - CRC_LEN])
                    mtype = MsgType(mtype) if mtype in MsgType._value2member_map_ else mtype
                    frames.append(Frame(mtype, seq, payload, version))
                    pos = end
                    continue
                self._reject(ErrorCode.BAD_CRC, pos, f"crc {crc:#010x} != {computed:#010x}")
            pos += 1  # resynchronise after the first sync byte of the bad candidate
        del buf[:pos]
        self._offset += pos
        return frames


def _ascii(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode("ascii", errors="replace")


def _fixed(what: str, value: bytes, size: int) -> bytes:
    if len(value) > size:
        raise ProtocolError(f"{what} is {len(value)} bytes, at most {size}")
    return value


@dataclass
class Info:
    """INFO payload (docs/protocol.md, INFO table; 96 bytes, 95 in version 3)."""

    firmware_version: str
    build_hash: int
    protocol_version: int
    model_hash: bytes
    channels: int
    sample_rate_hz: int
    epoch_samples: int
    norm: list[tuple[int, int, int, int]]  # per channel: remove_dc, shift, offset, multiplier
    static_ram_bytes: int
    counter_kind: CounterKind
    core_clock_hz: int
    board: str
    stack_peak_bytes: int = 0  # deepest stack use since the board's reset
    codings: int = 0  # Coding bits: the sample codings the board decodes (0 in version 3)


class Coding(IntEnum):
    """Bits of INFO's codings field: the SAMPLES codings a board decodes."""

    RICE = 0x01  # SAMPLES_RICE


_INFO_V3 = "<16sIB8sBHH" + "BBhi" * N_CHANNELS + "IBI16sI"
_INFO = _INFO_V3 + "B"
_NAMES = ("firmware_version", "board")


def _counter_kind(what: str, value: int) -> CounterKind:
    try:
        return CounterKind(value)
    except ValueError:
        raise ProtocolError(f"{what}: unknown counter kind {value}") from None


def encode_info(info: Info, version: int = PROTOCOL_VERSION) -> bytes:
    """Info -> INFO payload (offsets 0, 16, 20, 21, 29, 30, 32, 34, 66, 70, 71, 75, 91, 95:
    96 bytes; version 3 without the codings, 95)."""
    if len(info.model_hash) != 8 or len(info.norm) != N_CHANNELS:
        raise ProtocolError("INFO: model_hash must be 8 bytes and norm have 4 entries")
    f = astuple(info)
    fw, board = (_fixed(f"INFO {k}", getattr(info, k).encode("ascii"), 16) for k in _NAMES)
    norm = (v for channel in f[7] for v in channel)
    head = (fw, *f[1:7], *norm, *f[8:11], board, info.stack_peak_bytes)
    if version < 4:
        return _pack("INFO", _INFO_V3, *head)
    return _pack("INFO", _INFO, *head, info.codings)


def decode_info(payload: bytes) -> Info:
    """INFO payload (INFO table: 96 bytes, or 95 from a version-3 board) -> Info."""
    v3 = len(payload) == struct.calcsize(_INFO_V3)
    v = _unpack("INFO", _INFO_V3 if v3 else _INFO, payload)
    norm = [tuple(v[7 + 4 * c : 11 + 4 * c]) for c in range(N_CHANNELS)]
    ram, kind, clock = v[23], _counter_kind("INFO", v[24]), v[25]
    codings = 0 if v3 else v[28]
    return Info(_ascii(v[0]), *v[1:7], norm, ram, kind, clock, _ascii(v[26]), v[27], codings)


@dataclass
class Result:
    """RESULT payload (docs/protocol.md, RESULT table; 19 bytes)."""

    epoch_index: int
    stage: int
    scores: tuple[int, int, int, int, int]  # int8 logits W, N1, N2, N3, REM
    preprocess_count: int
    inference_count: int
    counter_kind: CounterKind


_RESULT = "<IB5bIIB"


def encode_result(r: Result) -> bytes:
    """Result -> RESULT payload (19 bytes)."""
    if len(r.scores) != 5:
        raise ProtocolError(f"RESULT: {len(r.scores)} scores, expected 5")
    f = astuple(r)
    return _pack("RESULT", _RESULT, *f[:2], *f[2], *f[3:])


def decode_result(payload: bytes) -> Result:
    """RESULT payload (RESULT table, 19 bytes) -> Result."""
    v = _unpack("RESULT", _RESULT, payload)
    return Result(v[0], v[1], tuple(v[2:7]), v[7], v[8], _counter_kind("RESULT", v[9]))


def _sack_bits(sack: frozenset[int] | set[int]) -> int:
    bits = 0
    for i in sack:
        if not 0 <= i < SACK_BLOCKS:
            raise ProtocolError(f"SACK block {i} is not in 0..{SACK_BLOCKS - 1}")
        bits |= 1 << i
    return bits


def _sack_set(bits: int) -> frozenset[int]:
    return frozenset(i for i in range(SACK_BLOCKS) if bits >> i & 1)


@dataclass(frozen=True)
class Ack:
    """ACK payload (docs/protocol.md, 17 bytes): the board's receive state after a frame."""

    next_index: int  # next expected sample index: every sample before it is stored
    epoch_waiting: bool = False  # a complete epoch waits for the model (send no next epoch yet)
    sack_from: int = 0  # first sample of the blocks ``sack`` reports
    # stored blocks from sack_from on: i in sack = samples sack_from + 5 i .. + 5 are stored
    sack: frozenset[int] = frozenset()

    def stored(self, index: int) -> bool | None:
        """Whether the 5-sample block starting at board sample ``index`` is stored: True,
        False, or None when this ACK does not say."""
        if index < self.next_index:
            return True
        if index == self.next_index:
            return False
        i = (index - self.sack_from) // SAMPLE_BLOCK
        if not 0 <= i < SACK_BLOCKS:
            return None
        return i in self.sack


_ACK = "<IBIQ"


def encode_ack(ack: Ack | int) -> bytes:
    """ACK payload (Messages table): u32 next expected index, u8 epoch waiting, u32 first
    sample of the SACK blocks, u64 SACK bits."""
    if isinstance(ack, int):
        ack = Ack(ack)
    return _pack(
        "ACK", _ACK, ack.next_index, int(ack.epoch_waiting), ack.sack_from, _sack_bits(ack.sack)
    )


def decode_ack(payload: bytes) -> Ack:
    """ACK payload (17 bytes) -> Ack."""
    nxt, waiting, first, bits = _unpack("ACK", _ACK, payload)
    return Ack(nxt, bool(waiting), first, _sack_set(bits))


@dataclass(frozen=True)
class Status(Ack):
    """STATUS_REPLY payload (docs/protocol.md; 29 bytes, 21 in version 3): the receive state
    as in ACK, the RESULTs sent since the last RESET_STREAM or reset, then (version 4) the
    samples stored since then and the counter units spent storing them (None from a
    version-3 board)."""

    results_sent: int = 0
    samples_stored: int | None = None
    receive_count: int | None = None

    @property
    def ack(self) -> Ack:
        return Ack(self.next_index, self.epoch_waiting, self.sack_from, self.sack)


_STATUS_V3 = "<IBIQI"
_STATUS = _STATUS_V3 + "II"


def encode_status(st: Status, version: int = PROTOCOL_VERSION) -> bytes:
    head = encode_ack(st.ack) + _pack("STATUS_REPLY", "<I", st.results_sent)
    if version < 4:
        return head
    return head + _pack("STATUS_REPLY", "<II", st.samples_stored or 0, st.receive_count or 0)


def decode_status(payload: bytes) -> Status:
    if len(payload) == struct.calcsize(_STATUS_V3):
        nxt, waiting, first, bits, sent = _unpack("STATUS_REPLY", _STATUS_V3, payload)
        return Status(nxt, bool(waiting), first, _sack_set(bits), sent)
    nxt, waiting, first, bits, sent, stored, count = _unpack("STATUS_REPLY", _STATUS, payload)
    return Status(nxt, bool(waiting), first, _sack_set(bits), sent, stored, count)


def encode_resend(epoch: int) -> bytes:
    """RESEND payload: u32 epoch index whose RESULT is wanted again."""
    return _pack("RESEND", "<I", epoch)


def decode_layer_counts(payload: bytes) -> list[tuple[int, int]]:
    """LAYER_COUNTS payload: u8 n, then n x (u32 count, u32 MACs) -> [(count, macs), ...]."""
    if not payload:
        raise ProtocolError("LAYER_COUNTS: empty payload")
    n = payload[0]
    if len(payload) != 1 + 8 * n:
        raise ProtocolError(
            f"LAYER_COUNTS: payload is {len(payload)} bytes, expected {1 + 8 * n} for {n} layers"
        )
    return [struct.unpack_from("<II", payload, 1 + 8 * i) for i in range(n)]


@dataclass
class EventCounts:
    """EVENT_COUNTS payload (docs/protocol.md): the DWT events of each engine layer in an
    epoch's events pass, the sampler's own events subtracted."""

    period_cycles: int  # cycles between two sampler ticks
    samples: int  # sampler ticks in the pass
    late: int  # intervals between two reads long enough for a counter to wrap (0: all exact)
    layers: list[tuple[int, int, int, int, int]]  # per layer, in EVENT_NAMES order


_EVENTS_HEAD = "<BBHII"


def encode_event_counts(e: EventCounts) -> bytes:
    """EventCounts -> EVENT_COUNTS payload: u8 n, u8 events per layer (5), u16 sampler period,
    u32 samples, u32 late, then n x 5 x u32."""
    if any(len(row) != EVENTS_PER_LAYER for row in e.layers):
        raise ProtocolError(f"EVENT_COUNTS: every layer needs {EVENTS_PER_LAYER} counts")
    rows = [v for row in e.layers for v in row]
    head = (len(e.layers), EVENTS_PER_LAYER, e.period_cycles, e.samples, e.late)
    return _pack("EVENT_COUNTS", _EVENTS_HEAD + f"{len(rows)}I", *head, *rows)


def decode_event_counts(payload: bytes) -> EventCounts:
    """EVENT_COUNTS payload -> EventCounts (lengths checked as decode_layer_counts does)."""
    if len(payload) < EVENT_COUNTS_HEAD:
        raise ProtocolError(f"EVENT_COUNTS: payload is {len(payload)} bytes, too short")
    n, k, period, samples, late = struct.unpack_from(_EVENTS_HEAD, payload)
    if k != EVENTS_PER_LAYER:
        raise ProtocolError(f"EVENT_COUNTS: {k} events per layer, expected {EVENTS_PER_LAYER}")
    want = EVENT_COUNTS_HEAD + 4 * k * n
    if len(payload) != want:
        raise ProtocolError(
            f"EVENT_COUNTS: payload is {len(payload)} bytes, expected {want} for {n} layers"
        )
    rows = struct.unpack_from(f"<{k * n}I", payload, EVENT_COUNTS_HEAD)
    layers = [tuple(rows[k * i : k * (i + 1)]) for i in range(n)]
    return EventCounts(period, samples, late, layers)


@dataclass
class ErrorReply:
    """ERROR payload (Messages and Error codes tables): u8 code, u8 detail, u16 seq."""

    code: ErrorCode | int
    detail: int
    seq: int


def encode_error(e: ErrorReply) -> bytes:
    """ErrorReply -> ERROR payload (4 bytes)."""
    return _pack("ERROR", "<BBH", e.code, e.detail, e.seq)


def decode_error(payload: bytes) -> ErrorReply:
    """ERROR payload (4 bytes) -> ErrorReply; unknown codes stay plain ints."""
    code, detail, seq = _unpack("ERROR", "<BBH", payload)
    known = code in ErrorCode._value2member_map_
    return ErrorReply(ErrorCode(code) if known else code, detail, seq)


_REPLY_LENGTHS = {  # versions 4 and 3
    MsgType.INFO: {struct.calcsize(_INFO), struct.calcsize(_INFO_V3)},
    MsgType.ACK: {struct.calcsize(_ACK)},
    MsgType.RESULT: {struct.calcsize(_RESULT)},
    MsgType.ERROR: {4},
    MsgType.STATUS_REPLY: {struct.calcsize(_STATUS), struct.calcsize(_STATUS_V3)},
}
