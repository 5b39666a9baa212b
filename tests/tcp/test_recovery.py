"""Unit tests of pystack.tcp.recovery: RACK's record of what is in flight (RFC 8985) and PRR's
quota (RFC 6937), without a connection. Times are plain seconds, sequence numbers absolute."""

from __future__ import annotations

import sys

import pytest

from pystack.tcp.recovery import LOST, RETRANSMITTED, RackState, prr_quota

MSS = 1000


def ranges(rack: RackState) -> list[tuple[int, int, float, int]]:
    return [(r.start, r.end, r.time, r.flags) for r in rack.segments]


def sent_four(rack: RackState, now: float = 1.0) -> None:
    for index in range(4):
        rack.sent(index * MSS, (index + 1) * MSS, now, retransmission=False)


def test_new_data_is_appended_and_a_retransmission_replaces_the_overlap() -> None:
    rack = RackState()
    sent_four(rack)
    # a retransmission of the middle of two records splits both; the outer parts keep time 1
    rack.sent(500, 1500, 2.0, retransmission=True)
    assert ranges(rack) == [
        (0, 500, 1.0, 0),
        (500, 1500, 2.0, RETRANSMITTED),
        (1500, 2000, 1.0, 0),
        (2000, 3000, 1.0, 0),
        (3000, 4000, 1.0, 0),
    ]


def test_a_retransmission_of_data_no_longer_recorded_is_inserted_in_order() -> None:
    rack = RackState()
    rack.sent(2000, 3000, 1.0, retransmission=False)
    rack.sent(0, 1000, 2.0, retransmission=True)  # e.g. after an RTO forgot nothing but SACKs
    assert [(r.start, r.end) for r in rack.segments] == [(0, 1000), (2000, 3000)]


def test_the_cumulative_ack_drops_delivered_records_and_trims_a_partial_one() -> None:
    rack = RackState()
    sent_four(rack)
    rack.acknowledged(1500, 1.1)
    assert [(r.start, r.end) for r in rack.segments] == [(1500, 2000), (2000, 3000), (3000, 4000)]
    assert rack.xmit_time == 1.0 and rack.end_seq == 1000 and rack.rtt == pytest.approx(0.1)


def test_sacked_records_are_delivered_and_a_lower_one_is_lost_after_rtt_plus_reo_wnd() -> None:
    rack = RackState()
    rack.sent(0, 1000, 1.0, False)
    rack.sent(1000, 2000, 1.01, False)
    rack.sent(2000, 3000, 1.02, False)
    rack.note_rtt(0.1)
    rack.sacked(lambda start, end: start == 1000, 1.11)  # 1000:2000 took RACK.rtt = 0.1
    assert [(r.start, r.end) for r in rack.segments] == [(0, 1000), (2000, 3000)]
    reo_wnd = rack.reo_wnd(False, 1000, 3, MSS, srtt=0.1)
    assert reo_wnd == pytest.approx(0.025)  # min_RTT / 4
    # 0:1000 was sent at 1.0: lost at 1.0 + 0.1 + 0.025; 2000:3000 was sent later: not judged
    lost, timeout = rack.detect_loss(1.11, reo_wnd)
    assert lost == 0 and timeout == pytest.approx(0.015)
    lost, timeout = rack.detect_loss(1.125, reo_wnd)
    assert lost == 1 and timeout == 0.0
    assert rack.first_lost() == (0, 1000)
    assert rack.pipe() == 1000  # only 2000:3000 is in flight: 0:1000 is deemed lost
    assert rack.lost_bytes() == 1000
    # once resent, the record is in flight again, no longer lost
    rack.sent(0, 1000, 1.2, retransmission=True)
    assert rack.first_lost() is None and rack.pipe() == 2000


def test_reo_wnd_is_zero_when_loss_is_evident_and_reordering_was_never_seen() -> None:
    rack = RackState()
    rack.note_rtt(0.2)
    assert rack.reo_wnd(True, 0, 3, MSS, srtt=0.3) == 0.0  # in recovery
    assert rack.reo_wnd(False, 3 * MSS, 3, MSS, srtt=0.3) == 0.0  # DupThresh segments SACKed
    rack.reordering_seen = True
    assert rack.reo_wnd(True, 3 * MSS, 3, MSS, srtt=0.3) == pytest.approx(0.05)
    rack.reo_wnd_mult = 10
    assert rack.reo_wnd(True, 0, 3, MSS, srtt=0.3) == pytest.approx(0.3)  # at most SRTT


def test_an_original_delivered_below_the_highest_delivered_end_is_reordering() -> None:
    rack = RackState()
    sent_four(rack)
    rack.sacked(lambda start, end: start == 2000, 1.1)
    assert not rack.reordering_seen
    rack.acknowledged(1000, 1.12)
    assert rack.reordering_seen


def test_a_retransmission_acked_faster_than_min_rtt_gives_no_rack_sample() -> None:
    rack = RackState()
    rack.note_rtt(0.1)
    rack.sent(0, 1000, 1.0, False)
    rack.sent(0, 1000, 1.3, True)
    rack.acknowledged(1000, 1.31)  # 10 ms after the resend: the original's ACK
    assert rack.xmit_time is None


def test_dsack_grows_reo_wnd_once_per_round_and_16_quiet_recoveries_reset_it() -> None:
    rack = RackState()
    rack.note_dsack(snd_una=0, snd_nxt=5000)
    rack.note_dsack(snd_una=1000, snd_nxt=6000)  # the same round trip: no second step
    assert rack.reo_wnd_mult == 2
    rack.note_dsack(snd_una=5000, snd_nxt=9000)  # the next round
    assert rack.reo_wnd_mult == 3
    for _ in range(15):
        rack.recovery_ended()
    assert rack.reo_wnd_mult == 3
    rack.recovery_ended()
    assert rack.reo_wnd_mult == 1


def test_an_rto_marks_everything_lost_and_last_range_is_the_highest() -> None:
    rack = RackState()
    sent_four(rack)
    rack.mark_all_lost()
    assert all(r.flags & LOST for r in rack.segments) and rack.pipe() == 0
    assert rack.last_range() == (3000, 4000)
    rack.clear()
    assert rack.last_range() is None and rack.first_lost() is None


def test_sequence_numbers_wrap() -> None:
    rack = RackState()
    top = (1 << 32) - 500
    rack.sent(top, (top + 1000) & 0xFFFFFFFF, 1.0, False)
    rack.sent((top + 1000) & 0xFFFFFFFF, (top + 2000) & 0xFFFFFFFF, 1.0, False)
    assert rack.pipe() == 2000
    rack.acknowledged((top + 1000) & 0xFFFFFFFF, 1.1)
    assert [(r.start, r.end) for r in rack.segments] == [(500, 1500)]


def test_an_idle_record_is_small() -> None:
    rack = RackState()
    sent_four(rack)
    rack.acknowledged(4000, 1.1)
    assert rack.segments == []
    # the state an idle connection keeps for RACK: the object and an empty list
    assert sys.getsizeof(rack) + sys.getsizeof(rack.segments) < 200


# -- PRR (RFC 6937) ------------------------------------------------------------------------------
def test_prr_proportional_part_sends_ssthresh_over_recoverfs_of_what_is_delivered() -> None:
    # RecoverFS 20 segments, ssthresh 10: one segment out per two delivered
    quota = [
        prr_quota(k * MSS, out, MSS, 15 * MSS, 10 * MSS, 20 * MSS, MSS)
        for k, out in ((1, 1000), (2, 1000), (3, 1000), (4, 1000))
    ]
    assert quota == [0, 0, 500, 1000]


def test_prr_first_ack_may_always_send_the_fast_retransmit() -> None:
    assert prr_quota(MSS, 0, MSS, 19 * MSS, 10 * MSS, 20 * MSS, MSS) == MSS


def test_prr_slow_start_reduction_bound_below_ssthresh() -> None:
    # pipe 5 segments < ssthresh 10: at most what was delivered and not yet sent, + 1 MSS
    assert prr_quota(8 * MSS, 6 * MSS, MSS, 5 * MSS, 10 * MSS, 20 * MSS, MSS) == 3 * MSS
    # ... and never beyond ssthresh
    assert prr_quota(20 * MSS, 2 * MSS, MSS, 9 * MSS, 10 * MSS, 20 * MSS, MSS) == MSS
