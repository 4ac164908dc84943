"""Layer 2c: the selective-repeat sender behind ``Device.stream_epochs`` (docs/protocol.md,
"Flow control" and "Recovery").

Pipelined: up to ``window`` x 125 samples are unacknowledged at a time, and the first frame of an
epoch waits for the ACK that says the board took the previous epoch out of its receive buffer,
so the board receives epoch n+1 while it scores epoch n.

Reliable: every ACK says which 5-sample blocks the board holds, so a lost or damaged frame is
sent again as soon as an ACK of a later frame shows the gap (or after a timeout sized from the
measured round trips); a lost RESULT is asked for again (RESEND), and the stream never starts an
epoch RESULTS_KEPT past a missing RESULT (the board would forget it); a cut link (with the
device's ``reopen``) or a board restart is detected and the stream resumes from what the board
has. Every epoch's RESULT is yielded exactly once. What it took is counted in the device's
``LinkCounters``.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np

from .errors import BoardErrorReply, BoardRestarted
from .frame_size import FrameSize
from .protocol import (
    CORRUPTION_ERRORS,
    EPOCH_SAMPLES,
    MAX_FRAME,
    MAX_SAMPLES_PER_FRAME,
    RESULTS_KEPT,
    SACK_BLOCKS,
    SAMPLE_BLOCK,
    Ack,
    ErrorCode,
    Frame,
    MsgType,
    Result,
    decode_ack,
    decode_error,
    decode_event_counts,
    decode_layer_counts,
    decode_result,
    decode_status,
    encode_resend,
)
from .samples import RICE_HEAD, EpochFrames

if TYPE_CHECKING:
    from .device import Device

BLOCKS = EPOCH_SAMPLES // SAMPLE_BLOCK  # 5-sample blocks per epoch


class _Sent:
    """A SAMPLES frame in flight: blocks b0..b1 of the epoch being sent."""

    __slots__ = ("b0", "b1", "resent", "seq", "size", "t")

    def __init__(self, seq: int, b0: int, b1: int, t: float, resent: bool, size: int):
        self.seq, self.b0, self.b1, self.t, self.resent, self.size = seq, b0, b1, t, resent, size


class SelectiveRepeatSender:
    """One Device.stream_epochs call: frames out, replies in, recovery (docs/protocol.md).
    ``run()`` yields the RESULTs of stream epochs ``first_epoch``, ``first_epoch + 1``, ...
    (one per epoch of ``epochs``, each (3000, 4) int16), in order."""

    MIN_RTO_S = 0.01, 0.05  # the shortest wait for an ACK (lossy link, clean link: rto())
    MAX_FRAMES = 64  # frames in flight at most (small frames on a noisy link)
    STRIKES = 6  # timeouts in a row without any reply: ask the board (STATUS)

    def __init__(self, dev: Device, first_epoch: int, epochs: Iterable[np.ndarray], window: int):
        self.dev = dev
        self.source = iter(epochs)
        self.window_samples = window * MAX_SAMPLES_PER_FRAME
        self.kept: dict[int, np.ndarray] = {}  # epoch -> samples, until its RESULT
        self.results: dict[int, Result] = {}
        self.want = first_epoch  # next RESULT to yield
        self.next_new = first_epoch  # next epoch to take from the source
        self.exhausted = False
        self.queue: deque[int] = deque()  # epochs to send again (after a restart)
        self.sending: int | None = None  # epoch being sent (until the board has taken it)
        self.have = np.zeros(BLOCKS, bool)  # its blocks the board said it holds
        self.out = np.zeros(BLOCKS, bool)  # its blocks in flight
        self.ever = np.zeros(BLOCKS, bool)  # its blocks sent at least once
        self.complete = False  # the board holds all of it and will take it when idle
        self.frames: EpochFrames | None = None  # the frames of the epoch being sent
        self.in_flight: list[_Sent] = []  # in send order
        self.srtt = 0.0  # smoothed frame -> ACK time and its deviation (RFC 6298)
        self.rttvar = 0.0
        self.strikes = 0  # timeouts since the last reply
        self.size = FrameSize()  # samples per frame from the loss seen (outcome())
        self.handed: dict[int, float] = {}  # epoch -> when the board took it (RESULT due)
        self.asked: dict[int, float] = {}  # epoch -> when its RESULT was last asked (RESEND)
        self.inference_s = 0.0  # smoothed time from 'taken' to its RESULT
        self.result_wait_s = 2.0  # before a RESULT counts as lost: from inference_s
        self.last_poll = 0.0
        self.last_rto = 0.0
        self.probe: tuple[int, int | None] | None = None  # STATUS seq, last frame sent before
        self.last_reply = time.monotonic()
        self.seen = 0  # RESULTs received since the board's stream began (restart detection)
        self.trouble = False  # resynchronise through STATUS

    # -- helpers ----------------------------------------------------------------------------

    def base_result_wait(self) -> float:
        return 2 * self.inference_s + 0.1

    def next_epoch(self) -> int:
        """The epoch take_next_epoch() would start."""
        return self.queue[0] if self.queue else self.next_new

    def base(self, epoch: int) -> int:
        return (epoch - self.dev.epoch_offset) * EPOCH_SAMPLES

    def rto(self) -> float:
        """A frame unanswered this long is lost (doubled per timeout without a reply). While
        bytes are being lost, 1.5 smoothed round trips: a needless resend costs a few bytes,
        every wait for a lost frame stalls the stream; else TCP's srtt + 4 deviations, as a
        timeout is then most likely a late ACK (docs/protocol.md, Recovery)."""
        if not self.srtt:
            rto = 1.0
        elif self.size.lossy:
            rto = max(self.MIN_RTO_S[0], 1.5 * self.srtt)
        else:
            rto = max(self.MIN_RTO_S[1], self.srtt + 4 * self.rttvar)
        return min(2.0, rto * (2 ** min(self.strikes, 3)))

    def start_epoch(self, epoch: int) -> None:
        self.sending = epoch
        self.have[:] = False
        self.out[:] = False
        self.ever[:] = False
        self.complete = False
        self.frames = EpochFrames(self.kept[epoch], self.dev.codes_samples)
        self.in_flight.clear()
        done = self.dev.samples_acked - self.base(epoch)
        if done > 0:
            self.have[: min(BLOCKS, done // SAMPLE_BLOCK)] = True
            self.ever[:] = self.have

    def take_next_epoch(self) -> None:
        if self.queue:
            self.start_epoch(self.queue.popleft())
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
            self.next_new += 1
            self.start_epoch(self.next_new - 1)

    def taken(self, epoch: int) -> None:
        """The board took the epoch out of its receive buffer: its RESULT is due, the next
        epoch may go."""
        self.handed.setdefault(epoch, time.monotonic())
        if epoch == self.sending:
            self.sending = None
            self.in_flight.clear()

    def outcome(self, sent: _Sent, lost: bool) -> None:
        self.size.outcome(sent.size, lost)

    def send_frames(self) -> None:
        if self.complete:
            return
        epoch, dev = self.sending, self.dev
        base = self.base(epoch)
        flying = sum(f.b1 - f.b0 for f in self.in_flight) * SAMPLE_BLOCK
        blocks_per_frame = self.size.spf // SAMPLE_BLOCK
        sent = False
        while len(self.in_flight) < self.MAX_FRAMES and flying < self.window_samples:
            free = ~(self.have | self.out)
            b0 = int(np.argmax(free))
            if not free[b0]:
                if sent and self.size.lossy:  # the epoch's last frames: no later frame's
                    self.send_probe()  # ACK would show them lost, a STATUS after them does
                return
            run = free[b0 : b0 + blocks_per_frame]
            k = len(run) if run.all() else int(np.argmin(run))
            mtype, payload = self.frames.frame(base, b0 * SAMPLE_BLOCK, k * SAMPLE_BLOCK)
            if mtype == MsgType.SAMPLES_RICE:  # bytes per sample of the frames being sent
                self.size.coded(RICE_HEAD, (len(payload) - RICE_HEAD) / (k * SAMPLE_BLOCK))
            seq = dev.send(mtype, payload)
            resent = bool(self.ever[b0 : b0 + k].any())
            if resent:
                dev.counters.frames_resent += 1
            self.in_flight.append(
                _Sent(seq, b0, b0 + k, time.monotonic(), resent, len(payload) + 12)
            )
            self.out[b0 : b0 + k] = True
            self.ever[b0 : b0 + k] = True
            flying += k * SAMPLE_BLOCK
            sent = True

    def block_states(self, ack: Ack) -> np.ndarray:
        """What ``ack`` says of each block of the epoch being sent (as Ack.stored, for all of
        them at once): 1 stored, 0 missing, -1 it does not say."""
        base = self.base(self.sending)
        states = np.full(BLOCKS, -1, np.int8)
        cum = (ack.next_index - base) // SAMPLE_BLOCK
        states[: max(0, min(cum, BLOCKS))] = 1
        if 0 <= cum < BLOCKS:
            states[cum] = 0
        first = (ack.sack_from - base) // SAMPLE_BLOCK
        lo, hi = max(first, cum + 1, 0), min(first + SACK_BLOCKS, BLOCKS)
        if lo < hi:
            bits = np.zeros(SACK_BLOCKS, np.int8)
            bits[list(ack.sack)] = 1
            states[lo:hi] = bits[lo - first : hi - first]
        return states

    @staticmethod
    def frame_state(states: bytes, f: _Sent) -> bool | None:
        """True: the board holds the frame's blocks; False: it lacks one; None: cannot tell
        (``states``: block_states as bytes, which a frame's few blocks are faster checked in
        than a numpy array)."""
        seg = states[f.b0 : f.b1]
        if b"\x00" in seg:
            return False
        return None if b"\xff" in seg else True

    # -- replies ----------------------------------------------------------------------------

    def apply(self, ack: Ack, seq: int | None, *, is_ack: bool = True) -> None:
        """The board's receive state after it handled SAMPLES frame ``seq`` (its ACK, or a
        STATUS_REPLY to a STATUS sent after that frame)."""
        dev = self.dev
        dev.samples_acked = ack.next_index
        if self.sending is None:
            return
        base = self.base(self.sending)
        end = base + EPOCH_SAMPLES
        if ack.next_index >= end:
            if not ack.epoch_waiting or ack.next_index > end:
                self.taken(self.sending)
                return
            self.complete = True
            self.have[:] = True
            self.in_flight.clear()
            self.out[:] = False
            return
        if ack.next_index < base:
            return  # (a reply about the previous epoch)
        # frames the board has answered: ``seq`` and every frame sent before it (the link
        # keeps the order); those it lacks were lost on the way
        pos = next((k for k, f in enumerate(self.in_flight) if f.seq == seq), None)
        now = time.monotonic()
        if is_ack and pos is not None and not self.in_flight[pos].resent:  # (Karn's rule)
            rtt = now - self.in_flight[pos].t
            if self.srtt:
                self.rttvar = 0.75 * self.rttvar + 0.25 * abs(self.srtt - rtt)
                self.srtt = 0.875 * self.srtt + 0.125 * rtt
            else:
                self.srtt, self.rttvar = rtt, rtt / 2
            self.dev.rtt_s = self.srtt + 4 * self.rttvar
        cum = (ack.next_index - base) // SAMPLE_BLOCK
        if pos is not None and all(f.b1 <= cum for f in self.in_flight[: pos + 1]):
            # the usual case, nothing missing up to the ACKed frame: those frames are stored
            self.have[:cum] = True
            self.size.delivered([f.size for f in self.in_flight[: pos + 1]])
            del self.in_flight[: pos + 1]
            return
        states = self.block_states(ack)
        self.have |= states == 1
        keep, unknown, states = [], False, states.tobytes()
        for k, f in enumerate(self.in_flight):
            state = self.frame_state(states, f)
            if is_ack and k == pos and state is None:  # ACKed: stored
                self.have[f.b0 : f.b1] = True
                state = True
            if state is True:
                self.outcome(f, False)
            elif state is False and pos is not None and k <= pos:
                self.outcome(f, True)
                self.out[f.b0 : f.b1] = False
            else:
                keep.append(f)
                unknown |= pos is not None and k < pos
        self.in_flight = keep
        if unknown and time.monotonic() - self.last_poll > self.rto():
            # frames the board has handled that this ACK does not cover (resent ones, further
            # back): a STATUS reports from the first missing block on
            self.send_probe()

    def handle(self, frame: Frame) -> None:
        dev = self.dev
        if frame.type == MsgType.ACK:
            self.strikes = 0
            self.apply(decode_ack(frame.payload), frame.seq)
        elif frame.type == MsgType.STATUS_REPLY:
            st = decode_status(frame.payload)
            if st.next_index < dev.samples_acked or st.results_sent < self.seen:
                raise BoardRestarted("the board restarted (its stream went back)")
            self.strikes = 0
            after = None
            if self.probe and frame.seq == self.probe[0]:
                after, self.probe, self.last_poll = self.probe[1], None, 0.0
            self.apply(st.ack, after, is_ack=False)
            self.ask_results(st.results_sent)
        elif frame.type == MsgType.RESULT:
            result = decode_result(frame.payload)
            epoch = result.epoch_index + dev.epoch_offset
            taken = self.handed.get(epoch)  # (None: the 'taken' ACK was lost)
            if epoch == self.sending:
                # its RESULT came before the ACK that says the board took it (lost)
                dev.samples_acked = max(dev.samples_acked, self.base(epoch) + EPOCH_SAMPLES)
                self.taken(epoch)
            if epoch >= self.want and epoch not in self.results:
                self.results[epoch] = replace(result, epoch_index=epoch)
                self.seen += 1
                self.handed.pop(epoch, None)
                if taken is not None and epoch not in self.asked:  # the inference time
                    t = time.monotonic() - taken
                    self.inference_s = 0.75 * self.inference_s + 0.25 * t if self.inference_s else t
                    self.result_wait_s = self.base_result_wait()
                self.asked.pop(epoch, None)
                # RESULTs of the epochs taken before it were sent before it: lost
                for e in sorted(self.handed):
                    if e < epoch and e not in self.results:
                        self.resend_result(e)
        elif frame.type == MsgType.LAYER_COUNTS:
            dev.layer_counts = decode_layer_counts(frame.payload)
        elif frame.type == MsgType.EVENT_COUNTS:
            dev.event_counts = decode_event_counts(frame.payload)
        elif frame.type == MsgType.ERROR:
            err = decode_error(frame.payload)
            name = err.code.name if isinstance(err.code, ErrorCode) else str(err.code)
            seen = dev.counters.errors_seen
            seen[name] = seen.get(name, 0) + 1
            if err.code in (ErrorCode.ENGINE, ErrorCode.NO_EVENTS):
                # NO_EVENTS here: an epoch's events pass did not reproduce its scores
                raise BoardErrorReply("SAMPLES", err)
            if err.code == ErrorCode.BAD_LENGTH and err.detail == 0:
                pass  # a damaged frame; the ACKs of the frames after it show what it carried
            elif err.code == ErrorCode.NO_RESULT:
                # a RESEND came before the inference ended: wait longer before asking again
                # (had the board restarted instead, its announcement would say so); at most 4x
                # the usual wait: while a RESULT is missing the stream stops a few epochs on
                if self.inference_s:
                    limit = 4 * self.base_result_wait()
                    self.result_wait_s = min(limit, 1.5 * self.result_wait_s)
            elif err.code not in CORRUPTION_ERRORS:
                # BUSY, NO_RESULT, OUT_OF_SEQUENCE, a frame across an epoch's end: the host
                # and the board disagree about the stream; ask the board where it is
                self.trouble = True
        elif frame.type == MsgType.INFO and frame.seq == 0:
            raise BoardRestarted("the board restarted (it announced itself)")
        # anything else (a stray INFO) carries nothing for the stream

    def send_probe(self) -> None:
        self.last_poll = time.monotonic()
        last = self.in_flight[-1].seq if self.in_flight else None
        self.probe = (self.dev.send(MsgType.STATUS), last)

    def resend_result(self, epoch: int) -> None:
        now = time.monotonic()
        if now - self.asked.get(epoch, -1e9) < self.result_wait_s:
            return
        self.asked[epoch] = now
        self.handed[epoch] = now
        self.dev.send(MsgType.RESEND, encode_resend(epoch - self.dev.epoch_offset))
        self.dev.counters.results_resent += 1

    def ask_results(self, results_sent: int) -> None:
        """RESEND the RESULTs the board sent (``results_sent`` since its stream began) and the
        host does not have."""
        for epoch in range(self.want, self.next_new):
            board_epoch = epoch - self.dev.epoch_offset
            if 0 <= board_epoch < results_sent and epoch not in self.results:
                self.resend_result(epoch)

    # -- recovery ---------------------------------------------------------------------------

    def resync(self) -> None:
        dev = self.dev
        dev.counters.resyncs += 1
        self.trouble = False
        self.strikes = 0
        st = dev.status(on_frame=self.handle)
        if st.next_index < dev.samples_acked or st.results_sent < self.seen:
            raise BoardRestarted("the board restarted (its stream went back)")
        if self.sending is not None:  # what the board holds is what it says now
            self.in_flight.clear()
            self.out[:] = False
            self.have[:] = False
            self.complete = False
        self.apply(st.ack, None)
        self.asked.clear()
        self.ask_results(st.results_sent)

    def restart(self) -> None:
        """The board lost its state: start its stream again at the first epoch not scored."""
        dev = self.dev
        dev.counters.restarts += 1
        dev.hello()
        dev.reset_stream()
        dev.epoch_offset = self.want
        self.queue = deque(e for e in sorted(self.kept) if e >= self.want)
        self.sending = None
        self.in_flight.clear()
        self.handed.clear()
        self.asked.clear()
        self.seen = 0
        self.strikes = 0
        self.trouble = False

    def timeouts(self, now: float) -> None:
        """Frames unanswered for a timeout are lost; a lost 'taken' ACK or RESULT is asked for."""
        rto = self.rto()
        if self.in_flight and now - max(self.in_flight[0].t, self.last_rto) > rto:
            self.last_rto = now
            # a frame or the ACKs after it were lost, or a damaged length field made the
            # board's parser take what followed as payload: send again what is unanswered
            self.strikes += 1
            if self.strikes >= self.STRIKES:
                self.trouble = True  # nothing gets through: ask the board
                return
            if self.strikes >= 2:
                self.dev.send_raw(bytes(MAX_FRAME))  # ends a frame the parser may be in
            # the oldest frame is lost: send it again, and every other frame unanswered as long
            # (the last frames of an epoch have no later frame whose ACK would show them
            # missing); a STATUS tells which of them the board has after all
            oldest = self.in_flight.pop(0)
            self.outcome(oldest, True)
            self.out[oldest.b0 : oldest.b1] = False
            for f in (late := [f for f in self.in_flight if now - f.t > rto]):
                self.out[f.b0 : f.b1] = False
            self.in_flight = [f for f in self.in_flight if f not in late]
            self.send_probe()
        elif self.complete and now - max(self.last_poll, self.last_reply) > max(2 * rto, 0.05):
            # waiting for the board to take the epoch (the previous one is being scored): its
            # ACK saying so may have been lost
            self.send_probe()
        for epoch, t in list(self.handed.items()):
            if now - t > self.result_wait_s and epoch not in self.results:
                self.resend_result(epoch)  # (NO_RESULT if it is not scored yet: STATUS)
        if now - self.last_reply > max(1.0, 20 * rto) and self.sending is not None:
            self.trouble = True  # nothing heard for long (a cut link, a stuck parser)
            self.last_reply = now

    # -- the loop ---------------------------------------------------------------------------

    def run(self) -> Iterator[Result]:
        dev = self.dev
        while True:
            while self.want in self.results:
                result = self.results.pop(self.want)
                self.kept.pop(self.want, None)
                self.want += 1
                yield result
            if self.sending is None and self.next_epoch() - self.want < RESULTS_KEPT:
                # (the board keeps the last RESULTS_KEPT RESULTs: one lost on the link can be
                # asked for again only while the stream is at most that far ahead of it)
                self.take_next_epoch()
            if self.sending is None and self.exhausted and self.want >= self.next_new:
                return
            try:
                if self.sending is not None:
                    self.send_frames()
                relinks = dev.counters.relinks
                frame = dev.next_frame(0.01)
                now = time.monotonic()
                while frame is not None:  # everything that has arrived, then send again
                    self.last_reply = now
                    self.handle(frame)
                    frame = dev.next_frame(0) if dev.pending else None
                if dev.counters.relinks != relinks:
                    self.trouble = True
                else:
                    self.timeouts(now)
                if self.trouble:
                    self.resync()
            except BoardRestarted:
                self.restart()
