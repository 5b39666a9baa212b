"""Modern loss recovery, packet by packet on virtual time: RACK-TLP (RFC 8985), PRR (RFC 6937),
D-SACK (RFC 2883) and the undo of a needless reduction (RFC 3708 detection).

Handshakes end at 0.1 s (RTT 0.1 s, so SRTT 0.1 s and RACK.min_RTT 0.1 s; RTO 1 s). SACK is
agreed and timestamps are not, so segments carry 1460 bytes.
"""

from __future__ import annotations

from pystack.tcp.settings import TCPSettings
from tests.helpers.scripts import run
from tests.tcp.transfer.handshakes import DUPACK_RECOVERY, SACK

TWO_SEGMENTS = """
    +0 write 2920
    +0 > . 1:1461(1460) ack 1
    +0 > P. 1461:2921(1460) ack 1
"""


# -- TLP: a lost tail is repaired without an RTO ------------------------------------------------
def test_a_lost_last_segment_is_resent_by_the_tail_loss_probe_not_the_rto() -> None:
    run(
        SACK
        + TWO_SEGMENTS
        + """
        +0.1 < . 1:1(0) ack 1461 win 65535          # 1461:2921 was lost: nothing more comes
        # RFC 8985 7.2: PTO = 2 * SRTT + WCDelAckT (one segment in flight) = 0.2 + 0.2 s.
        # No new data waits, so the probe is the last segment again (7.3).
        +0.4 > P. 1461:2921(1460) ack 1
        +0 expect counter tcp.tlp_probes 1
        +0.1 < . 1:1(0) ack 2921 win 65535          # no D-SACK (yet): the probe filled a hole
        +0 expect counter tcp.timeouts 0
        +0 expect info cwnd 17520                   # IW + 2 MSS of slow start
        +0 write 100
        +0 > P. 2921:3021(100) ack 1
        +0.1 < . 1:1(0) ack 3021 win 65535          # 7.4: past the probe, still no D-SACK
        +0 expect counter tcp.tlp_repairs 1
        # One loss event for the window: ssthresh = cwnd / 2 (17620 / 2, after this ACK's
        # slow start), cwnd = ssthresh; no recovery.
        +0 expect info ssthresh 8810
        +0 expect info cwnd 8810
        +0 expect info in_recovery False
        """
    )


def test_without_rack_tlp_the_same_tail_loss_waits_for_the_rto() -> None:
    run(
        SACK
        + TWO_SEGMENTS
        + """
        +0.1 < . 1:1(0) ack 1461 win 65535
        +1 > . 1461:2921(1460) ack 1                # RFC 6298: the RTO, 1 s after the ACK
        +0 expect counter tcp.timeouts 1
        +0 expect info cwnd 1460
        """,
        tcp_settings=DUPACK_RECOVERY,
    )


def test_a_probe_the_peer_reports_as_a_duplicate_changes_no_window() -> None:
    run(
        SACK
        + TWO_SEGMENTS
        + """
        +0.1 < . 1:1(0) ack 1461 win 65535
        +0.4 > P. 1461:2921(1460) ack 1
        +0 < . 1:1(0) ack 2921 win 65535            # the original's ACK (it was only slow)
        +0 < . 1:1(0) ack 2921 win 65535 <sack 1461:2921>   # and a D-SACK for the probe
        +0 expect counter tcp.tlp_repairs 0
        +0 expect counter tcp.dsacks_received 1
        +0 expect info cwnd 17520                   # IW + 2 MSS of slow start: no reduction
        """
    )


def test_a_probe_sends_new_data_when_the_window_allows() -> None:
    run(
        SACK
        + """
        +0 write 1460
        +0 > P. 1:1461(1460) ack 1
        +0 write 100                                # Nagle holds it: data is unacknowledged
        # The segment was lost. The probe (2 * SRTT + 0.2 s) carries the new 100 bytes.
        +0.4 > P. 1461:1561(100) ack 1
        +0 expect counter tcp.tlp_probes 1
        +0.1 < . 1:1(0) ack 1 win 65535 <sack 1461:1561>
        # RACK: 1:1461 was sent before the probe, which was delivered: lost once RACK.rtt
        # (0.1 s) + reo_wnd (min_RTT / 4) has passed since it was sent. That is long past.
        +0 > . 1:1461(1460) ack 1
        +0 expect counter tcp.rack_lost_segments 1
        +0 expect info in_recovery True
        +0.1 < . 1:1(0) ack 1561 win 65535
        +0 expect info in_recovery False
        +0 expect counter tcp.timeouts 0
        """
    )


# -- RACK: lost by time, not by counting duplicate ACKs ----------------------------------------
FOUR_SEGMENTS = """
    +0 write 5840
    +0 > . 1:1461(1460) ack 1
    +0 > . 1461:2921(1460) ack 1
    +0 > . 2921:4381(1460) ack 1
    +0 > P. 4381:5841(1460) ack 1
"""


def test_rack_marks_a_segment_lost_one_reordering_window_after_a_later_one_arrived() -> None:
    run(
        SACK
        + FOUR_SEGMENTS
        + """
        +0.1 < . 1:1(0) ack 1 win 65535 <sack 1461:2921>   # one duplicate ACK only
        +0 expect info in_recovery False
        # RFC 8985 6.2: 1:1461 was sent no later than 1461:2921, which took RACK.rtt = 0.1 s;
        # it is lost at its send time + RACK.rtt + reo_wnd (min_RTT / 4 = 0.025 s): at 0.225.
        +0.025 > . 1:1461(1460) ack 1
        +0 expect counter tcp.rack_lost_segments 1
        +0 expect counter tcp.duplicate_acks 1
        +0 expect info in_recovery True
        +0.1 < . 1:1(0) ack 5841 win 65535
        +0 expect info in_recovery False
        """
    )


def test_a_reordered_segment_arriving_within_the_window_is_not_resent() -> None:
    result = run(
        SACK
        + FOUR_SEGMENTS
        + """
        +0.1 < . 1:1(0) ack 1 win 65535 <sack 1461:2921>
        +0.02 < . 1:1(0) ack 2921 win 65535         # 1:1461 was only late (reordered)
        +0.1 < . 1:1(0) ack 5841 win 65535
        +0 expect counter tcp.rack_lost_segments 0
        +0 expect counter tcp.retransmits 0
        end strict 1
        """
    )
    rack = result.connection.rack  # type: ignore[attr-defined]
    assert rack is not None and rack.reordering_seen  # 1:1461 came after a higher segment


def test_the_dupack_path_waits_for_three_duplicates_where_rack_waits_for_time() -> None:
    run(
        SACK
        + FOUR_SEGMENTS
        + """
        +0.1 < . 1:1(0) ack 1 win 65535 <sack 1461:2921>
        +0.5 expect info in_recovery False          # one duplicate ACK: RFC 6675 waits
        +0 expect counter tcp.retransmits 0
        +0 < . 1:1(0) ack 1 win 65535 <sack 1461:4381>
        +0 < . 1:1(0) ack 1 win 65535 <sack 1461:5841>  # the third duplicate ACK
        +0 > . 1:1461(1460) ack 1                   # RFC 5681 fast retransmit
        +0 expect info in_recovery True
        """,
        tcp_settings=TCPSettings(rack_tlp=False, limited_transmit=False),
    )


# -- PRR: the sending rate during recovery -----------------------------------------------------
def test_prr_sends_one_segment_for_every_two_delivered_while_pipe_exceeds_ssthresh() -> None:
    lines = [
        "+0 write 40000",
        *(f"+0 > . {1 + 1460 * i}:{1461 + 1460 * i}(1460) ack 1" for i in range(20)),
        "+0 expect info cwnd 29200",
        # 1:1461 is lost; the peer SACKs the others one by one.
        "+0.1 < . 1:1(0) ack 1 win 65535 <sack 1461:2921>",
        "+0 < . 1:1(0) ack 1 win 65535 <sack 1461:4381>",
        "+0 < . 1:1(0) ack 1 win 65535 <sack 1461:5841>",
        # Three segments SACKed and no reordering seen: reo_wnd is 0 (RFC 8985 6.2), so RACK
        # marks 1:1461 lost now. Recovery: ssthresh = 29200 / 2, RecoverFS = 29200. PRR lets
        # the first ACK send one segment (the fast retransmit) ...
        "+0 > . 1:1461(1460) ack 1",
        "+0 expect info ssthresh 14600",
        "+0 expect info in_recovery True",
    ]
    # ... then, with pipe above ssthresh, sndcnt = ceil(prr_delivered * ssthresh / RecoverFS)
    # - prr_out: one new segment for every second segment delivered (ssthresh/RecoverFS = 1/2).
    # prr_delivered counts from the ACK that began recovery, and the fast retransmit took the
    # first turn, so the new segments follow the 6th, 8th, 10th and 12th SACKed segment.
    new = 29201
    for sacked in range(4, 14):
        lines.append(f"+0 < . 1:1(0) ack 1 win 65535 <sack 1461:{1 + 1460 * (sacked + 1)}>")
        if sacked % 2 == 0 and sacked >= 6:
            lines.append(f"+0 > . {new}:{new + 1460}(1460) ack 1")
            new += 1460
    lines.append("+0 expect counter tcp.retransmits 1")
    run(SACK + "\n".join("    " + line for line in lines) + "\n", tcp_settings=IW20)


# 20 segments in flight, and no RFC 3042 sends beyond cwnd to muddle the ratio.
IW20 = TCPSettings(initial_window_segments=20, limited_transmit=False)


# -- D-SACK: sent for a duplicate, and the undo it allows --------------------------------------
def test_a_duplicate_segment_is_answered_at_once_with_a_dsack_block() -> None:
    run(
        SACK
        + """
        +0 < P. 1:1001(1000) ack 1 win 65535
        +0.04 > . 1:1(0) ack 1001                    # the delayed ACK (it may be lost)
        +0.1 < P. 1:1001(1000) ack 1 win 65535      # the peer sends it again
        +0 > . 1:1(0) ack 1001 <nop,nop,sack 1:1001>    # RFC 2883 4: the duplicate, D-SACKed
        +0 expect counter tcp.dsacks_sent 1
        +0 < P. 1001:1101(100) ack 1 win 65535
        +0.04 > . 1:1(0) ack 1101                    # reported once: no D-SACK again
        """
    )


def test_a_duplicate_of_data_held_out_of_order_is_dsacked_before_its_block() -> None:
    run(
        SACK
        + """
        +0 < P. 1001:2001(1000) ack 1 win 65535
        +0 > . 1:1(0) ack 1 <nop,nop,sack 1001:2001>
        +0 < P. 3001:4001(1000) ack 1 win 65535
        +0 > . 1:1(0) ack 1 <nop,nop,sack 3001:4001 1001:2001>
        +0 < P. 1001:2001(1000) ack 1 win 65535     # again: already held
        # RFC 2883 4.1.2: the D-SACK block first, the held block containing it second
        +0 > . 1:1(0) ack 1 <nop,nop,sack 1001:2001 1001:2001 3001:4001>
        +0 expect counter tcp.dsacks_sent 1
        """
    )


def test_a_fast_retransmit_proven_needless_by_dsack_is_undone() -> None:
    result = run(
        SACK
        + """
        +0 write 14600
        """
        + "".join(
            f"        +0 > . {1 + 1460 * i}:{1461 + 1460 * i}(1460) ack 1\n" for i in range(9)
        )
        + """
        +0 > P. 13141:14601(1460) ack 1
        +0.1 < . 1:1(0) ack 1 win 65535 <sack 1461:2921>
        +0 < . 1:1(0) ack 1 win 65535 <sack 1461:4381>
        +0 < . 1:1(0) ack 1 win 65535 <sack 1461:5841>
        +0 > . 1:1461(1460) ack 1                   # RACK: lost (reo_wnd 0 at 3 SACKed)
        +0 expect info ssthresh 7300
        +0 < . 1:1(0) ack 14601 win 65535           # the original was only late ...
        +0 expect info in_recovery False
        +0 expect info cwnd 2920                    # ... but the window was cut (RFC 6582 exit)
        +0.1 < . 1:1(0) ack 14601 win 65535 <sack 1:1461>   # ... as the D-SACK proves
        +0 expect counter tcp.undos 1
        +0 expect info cwnd 14600                   # RFC 3708 / Linux: the reduction undone
        +0 expect info ssthresh 2147483648
        """
    )
    rack = result.connection.rack  # type: ignore[attr-defined]
    assert rack is not None and rack.reo_wnd_mult == 2  # RFC 8985 6.2 step 4: D-SACK widens it


def test_the_dsack_of_a_needless_probe_does_not_undo_a_needed_retransmission() -> None:
    run(
        SACK
        + FOUR_SEGMENTS
        + """
        # No ACK for two round trips: PTO (2 * SRTT) fires at 0.3 and resends the last segment.
        +0.2 > P. 4381:5841(1460) ack 1
        +0.05 < . 1:1(0) ack 1 win 65535 <sack 1461:2921>   # the originals of 2, 3 and 4
        +0 < . 1:1(0) ack 1 win 65535 <sack 1461:4381>
        +0 < . 1:1(0) ack 1 win 65535 <sack 1461:5841>
        +0 > . 1:1461(1460) ack 1                   # 1:1461 really was lost: RACK resends it
        +0 expect info in_recovery True
        +0 < . 1:1(0) ack 1 win 65535 <sack 4381:5841 1461:5841>   # D-SACK: the probe's copy
        +0 expect counter tcp.dsacks_received 1
        +0 expect counter tcp.undos 0               # one D-SACK, but two resends to account for
        +0.05 < . 1:1(0) ack 5841 win 65535
        +0 expect info in_recovery False
        +0 expect counter tcp.undos 0
        """
    )


def test_a_retransmitted_data_and_fin_in_time_wait_gets_a_dsack_and_restarts_the_timer() -> None:
    result = run(
        SACK
        + """
        +0 shutdown                                  # our FIN; we still read
        +0 > F. 1:1(0) ack 1
        +0.1 < . 1:1(0) ack 2 win 65535
        +0 expect state FIN-WAIT-2
        +0 < FP. 1:101(100) ack 2 win 65535
        +0 > . 2:2(0) ack 102
        +0 expect state TIME-WAIT
        +1 < FP. 1:101(100) ack 2 win 65535          # our ACK was lost: all of it again
        +0 > . 2:2(0) ack 102 <nop,nop,sack 1:101>   # the duplicate text, D-SACKed at once
        """
    )
    connection = result.connection  # type: ignore[attr-defined]
    # RFC 9293 3.10.7.4: the retransmitted FIN restarted the 2 MSL wait (at 1.2 s)
    assert connection.time_wait_deadline == 1.2 + 2 * connection.settings.msl
