"""The selective-repeat sender (``Device.stream_epochs``, host_tools/sender.py) over a scripted
lossy link to a board's side written in Python (tests/host_tools/scripted_link.py): chosen frames
are dropped, damaged or reordered both ways, and every epoch must still arrive whole and exactly
once, with what it took counted. The emulated board's versions: tests/hil/test_reliability.py."""

from __future__ import annotations

import numpy as np
import pytest

from host_tools.device import BoardErrorReply, Device, LinkCounters
from host_tools.protocol import EPOCH_SAMPLES, Coding, MsgType

from .scripted_link import (
    LAYERS,
    Rule,
    ScriptedBoard,
    ScriptedLink,
    board_scores,
    covers,
    of_type,
    result_of,
)

N_EPOCHS = 8


@pytest.fixture(scope="module")
def epochs() -> np.ndarray:
    """(8, 3000, 4) int16 wire epochs, each different."""
    return np.random.default_rng(0).integers(-3000, 3000, (N_EPOCHS, EPOCH_SAMPLES, 4), np.int16)


def run(epochs, rules=(), *, reboot_after=None, board=None, first_epoch=0):
    """Stream ``epochs`` through a scripted link; (device, link, results)."""
    board = board or ScriptedBoard()
    link = ScriptedLink(board, rules, reboot_after=reboot_after)
    dev = Device(link, timeout_s=20, frame_timeout_s=0.05)
    dev.reset_stream()
    results = list(dev.stream_epochs(first_epoch, epochs))
    return dev, link, results


def check_whole_and_once(epochs, results, first_epoch=0):
    """Every epoch's RESULT once, in order, with the scores of the samples the host sent."""
    assert [r.epoch_index for r in results] == list(range(first_epoch, first_epoch + len(epochs)))
    assert [r.scores for r in results] == [board_scores(e) for e in epochs]


def test_a_clean_link_needs_no_retry(epochs):
    dev, link, results = run(epochs)
    check_whole_and_once(epochs, results)
    assert dev.counters == LinkCounters(bytes_sent=dev.counters.bytes_sent)  # nothing else
    assert link.to_board["SAMPLES"] == N_EPOCHS * EPOCH_SAMPLES // 125  # full frames only
    assert dev.samples_acked == N_EPOCHS * EPOCH_SAMPLES
    assert link.board.scored == list(range(N_EPOCHS))


def test_lost_frames_are_sent_again_and_counted(epochs):
    rules = [
        Rule("to_board", covers(1000), "drop"),
        Rule("to_board", covers(EPOCH_SAMPLES + 2990), "drop"),  # an epoch's last frame
        Rule("to_board", covers(2 * EPOCH_SAMPLES + 1500), "drop", times=2),  # and its resend
        Rule("to_board", covers(5 * EPOCH_SAMPLES), "drop"),  # an epoch's first frame
    ]
    dev, link, results = run(epochs, rules)
    check_whole_and_once(epochs, results)
    assert all(r.fired == r.times for r in rules)
    assert dev.frames_resent == link.resent_frames >= 5
    assert dev.results_resent == link.resends == 0
    assert link.board.scored == list(range(N_EPOCHS))  # the board scored each epoch once


def test_damaged_frames_get_bad_crc_and_are_sent_again(epochs):
    rules = [
        Rule("to_board", covers(k * EPOCH_SAMPLES + 350 * k), "corrupt") for k in range(N_EPOCHS)
    ]
    dev, link, results = run(epochs, rules)
    check_whole_and_once(epochs, results)
    assert all(r.fired == 1 for r in rules)
    assert dev.errors_seen == {"BAD_CRC": N_EPOCHS}
    assert dev.frames_resent == link.resent_frames >= N_EPOCHS


def test_reordered_frames_are_stored_where_they_belong(epochs):
    # the link is assumed to keep the order, so a frame overtaken by the next one counts as lost
    # and is sent again; the late copy and the resend store the same samples
    rules = [Rule("to_board", covers(k * EPOCH_SAMPLES + 1250), "hold") for k in range(4)]
    dev, link, results = run(epochs[:4], rules)
    check_whole_and_once(epochs[:4], results)
    assert all(r.fired == 1 for r in rules)
    assert dev.frames_resent == link.resent_frames


def test_lost_and_damaged_replies_are_recovered(epochs):
    rules = [
        Rule("to_host", of_type(MsgType.ACK), "drop", times=3),
        Rule("to_host", result_of(2), "drop"),
        Rule("to_host", result_of(5), "corrupt"),
        Rule("to_host", result_of(N_EPOCHS - 1), "drop"),  # the last: nothing comes after it
    ]
    dev, link, results = run(epochs, rules)
    check_whole_and_once(epochs, results)
    assert all(r.fired == r.times for r in rules)
    assert dev.results_resent == link.resends >= 3
    assert dev.frames_resent == link.resent_frames
    assert link.board.scored == list(range(N_EPOCHS))  # a RESEND re-sends, never re-scores


def test_a_result_lost_again_and_again_holds_the_stream_back(epochs):
    # the board keeps the last RESULTS_KEPT RESULTs: the stream must not run further ahead of a
    # missing one, or its RESENDs could no longer be answered
    rules = [Rule("to_host", result_of(1), "drop", times=6)]
    dev, link, results = run(epochs, rules)
    check_whole_and_once(epochs, results)
    assert rules[0].fired == 6 and dev.results_resent == link.resends >= 5
    assert link.early_epochs == []
    assert 1 + 4 in link.started_epochs  # (the check above saw the epochs it guards)


def test_a_board_restart_mid_stream_is_survived(epochs):
    per_epoch = EPOCH_SAMPLES // 125
    dev, link, results = run(epochs, reboot_after=3 * per_epoch + 10)
    check_whole_and_once(epochs, results)
    assert dev.restarts == 1 and link.board.reboots == 1
    # after the restart the board counts epochs from 0 again: from the first one not scored
    restart = link.board.scored.index(0, 1)
    assert link.board.scored[:restart] == list(range(restart))
    assert link.board.scored[restart] == 0 and len(link.board.scored) >= N_EPOCHS


def test_stream_epochs_continue_from_the_first_epoch_given(epochs):
    board = ScriptedBoard()
    link = ScriptedLink(board)
    dev = Device(link, timeout_s=20, frame_timeout_s=0.05)
    dev.reset_stream()
    dev.set_profile(True)
    first = dev.send_epoch(0, epochs[0])
    dev.set_profile(False)
    rest = list(dev.stream_epochs(1, epochs[1:4]))
    check_whole_and_once(epochs[:4], [first, *rest])
    assert dev.layer_counts == list(LAYERS)


def test_an_engine_error_stops_the_stream_naming_it(epochs):
    with pytest.raises(BoardErrorReply, match=r"SAMPLES: the board answered ERROR .*ENGINE"):
        run(epochs[:4], board=ScriptedBoard(engine_error_at=2))


def smooth_epochs(n: int) -> np.ndarray:
    """(n, 3000, 4) int16 epochs that code shorter than raw, as EEG does."""
    steps = np.random.default_rng(1).normal(0, 30, (n, EPOCH_SAMPLES, 4))
    return np.cumsum(steps, axis=1).clip(-32768, 32767).astype(np.int16)


@pytest.mark.parametrize("wire", ["auto", "raw"])
def test_a_board_that_decodes_coded_samples_gets_them_unless_raw_is_asked(wire):
    epochs = smooth_epochs(3)
    link = ScriptedLink(ScriptedBoard(codings=Coding.RICE))
    dev = Device(link, timeout_s=20, frame_timeout_s=0.05, wire=wire)
    assert dev.hello().codings == Coding.RICE and dev.version == 4
    dev.reset_stream()
    results = list(dev.stream_epochs(0, epochs))
    check_whole_and_once(epochs, results)  # the board's scores hash the samples it stored
    coded = link.to_board.get("SAMPLES_RICE", 0)
    assert (coded, link.to_board.get("SAMPLES", 0)) == ((72, 0) if wire == "auto" else (0, 72))
    assert dev.status().samples_stored is not None  # a version-4 STATUS_REPLY


def test_a_version_3_board_is_spoken_to_in_version_3_with_raw_samples():
    epochs = smooth_epochs(2)
    board = ScriptedBoard(version=3)
    link = ScriptedLink(board)
    dev = Device(link, timeout_s=20, frame_timeout_s=0.05)
    info = dev.hello()
    assert dev.version == 3 and info.codings == 0  # after 3 ERROR BAD_VERSION to HELLO v4
    dev.reset_stream()
    check_whole_and_once(epochs, list(dev.stream_epochs(0, epochs)))
    assert "SAMPLES_RICE" not in link.to_board and link.to_board["SAMPLES"] == 48
    st = dev.status()
    assert st.samples_stored is None and st.receive_count is None  # a version-3 reply
