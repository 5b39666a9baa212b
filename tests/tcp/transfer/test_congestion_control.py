"""Congestion control seen on the wire: slow start with byte counting (RFC 5681 3.1, RFC 3465),
congestion avoidance, the loss window after an RTO, fast retransmit and NewReno recovery
(RFC 5681 3.2, RFC 6582), limited transmit (RFC 3042) and SACK recovery (RFC 6675).
MSS 1460 without timestamps; IW10 is 14600 bytes."""

from __future__ import annotations

from tests.helpers.scripts import run
from tests.tcp.transfer.handshakes import DUPACK_RECOVERY, PLAIN, SACK

# Ten segments out at 0.1 s: the initial window.
INITIAL_WINDOW = """
    +0 write 40000
    +0 > . 1:1461(1460) ack 1
    +0 > . 1461:2921(1460) ack 1
    +0 > . 2921:4381(1460) ack 1
    +0 > . 4381:5841(1460) ack 1
    +0 > . 5841:7301(1460) ack 1
    +0 > . 7301:8761(1460) ack 1
    +0 > . 8761:10221(1460) ack 1
    +0 > . 10221:11681(1460) ack 1
    +0 > . 11681:13141(1460) ack 1
    +0 > . 13141:14601(1460) ack 1
    +0 expect info cwnd 14600
    +0 expect info ssthresh 2147483648
"""


def test_slow_start_grows_cwnd_by_the_bytes_acked_at_most_two_segments_per_ack() -> None:
    run(
        PLAIN
        + INITIAL_WINDOW
        + """
        +0.1 < . 1:1(0) ack 1461 win 65535          # one segment acknowledged: +1 MSS
        +0 > . 14601:16061(1460) ack 1              # the one that left, and one more
        +0 > . 16061:17521(1460) ack 1
        +0 expect info cwnd 16060
        +0.01 < . 1:1(0) ack 5841 win 65535         # three at once: +2 MSS (RFC 3465 L)
        +0 > . 17521:18981(1460) ack 1
        +0 > . 18981:20441(1460) ack 1
        +0 > . 20441:21901(1460) ack 1
        +0 > . 21901:23361(1460) ack 1
        +0 > . 23361:24821(1460) ack 1
        +0 expect info cwnd 18980
        +0.01 < . 1:1(0) ack 6801 win 65535         # 960 bytes: +960
        +0 > . 24821:26281(1460) ack 1
        +0 expect info cwnd 19940
        """
    )


def test_rto_sets_the_loss_window_and_halves_ssthresh() -> None:
    run(
        PLAIN
        + INITIAL_WINDOW
        + """
        +1 > . 1:1461(1460) ack 1                   # the RTO: one segment
        +0 expect info cwnd 1460                    # RFC 5681 3.1: LW = 1 SMSS
        +0 expect info ssthresh 7300                # max(FlightSize / 2, 2 SMSS)
        +2 > . 1:1461(1460) ack 1                   # a second timeout of the same segment
        +0 expect info ssthresh 7300                # is not halved again
        +0.1 < . 1:1(0) ack 1461 win 65535
        +0 > . 1461:2921(1460) ack 1                # go-back-N from the first unacked byte
        +0 > . 2921:4381(1460) ack 1
        +0 expect info cwnd 2920                    # slow start again
        """
    )


def test_congestion_avoidance_adds_about_one_segment_per_window() -> None:
    run(
        PLAIN
        + INITIAL_WINDOW
        + """
        +1 > . 1:1461(1460) ack 1                   # RTO: ssthresh 7300, cwnd 1460
        +0.1 < . 1:1(0) ack 14601 win 65535         # everything had arrived: +2 MSS
        +0 > . 14601:16061(1460) ack 1
        +0 > . 16061:17521(1460) ack 1
        +0 > . 17521:18981(1460) ack 1
        +0 expect info cwnd 4380
        +0.1 < . 1:1(0) ack 16061 win 65535
        +0 > . 18981:20441(1460) ack 1
        +0 > . 20441:21901(1460) ack 1
        +0 expect info cwnd 5840
        +0.01 < . 1:1(0) ack 17521 win 65535
        +0 > . 21901:23361(1460) ack 1
        +0 > . 23361:24821(1460) ack 1
        +0 expect info cwnd 7300                    # = ssthresh: slow start is over
        +0.01 < . 1:1(0) ack 18981 win 65535
        +0 > . 24821:26281(1460) ack 1              # one for one: cwnd is unchanged ...
        +0 expect info cwnd 7300
        +0.01 < . 1:1(0) ack 20441 win 65535
        +0 > . 26281:27741(1460) ack 1
        +0.01 < . 1:1(0) ack 21901 win 65535
        +0 > . 27741:29201(1460) ack 1
        +0.01 < . 1:1(0) ack 23361 win 65535
        +0 > . 29201:30661(1460) ack 1
        +0 expect info cwnd 7300
        +0.01 < . 1:1(0) ack 24821 win 65535        # ... until a whole cwnd (7300) is acked:
        +0 > . 30661:32121(1460) ack 1
        +0 > . 32121:33581(1460) ack 1
        +0 expect info cwnd 8760                    # one SMSS more (RFC 5681 3.1 byte counting)
        """
    )


def test_limited_transmit_sends_new_data_on_the_first_two_duplicate_acks() -> None:
    run(
        PLAIN
        + INITIAL_WINDOW
        + """
        +0.1 < . 1:1(0) ack 1 win 65535             # 1:1461 is lost
        +0 > . 14601:16061(1460) ack 1              # RFC 3042: one new segment
        +0 expect info cwnd 14600                   # cwnd unchanged
        +0 < . 1:1(0) ack 1 win 65535
        +0 > . 16061:17521(1460) ack 1              # and one more
        +0 expect info duplicate_acks 2
        +0 expect info in_recovery False
        """
    )


def test_three_duplicate_acks_trigger_fast_retransmit() -> None:
    run(
        PLAIN
        + INITIAL_WINDOW
        + """
        +0.1 < . 1:1(0) ack 1 win 65535
        +0 > . 14601:16061(1460) ack 1
        +0 < . 1:1(0) ack 1 win 65535
        +0 > . 16061:17521(1460) ack 1
        +0 < . 1:1(0) ack 1 win 65535
        +0 > . 1:1461(1460) ack 1                   # the third: fast retransmit, no RTO
        +0 expect info in_recovery True
        +0 expect info ssthresh 7300                # FlightSize 14600 without the two above
        +0 expect info cwnd 11680                   # ssthresh + 3 SMSS
        +0 expect counter tcp.fast_retransmits 1
        +0 < . 1:1(0) ack 1 win 65535               # a fourth: cwnd inflates by 1 SMSS
        +0 expect info cwnd 13140
        +0.1 < . 1:1(0) ack 17521 win 65535         # everything: recovery ends
        +0 > . 17521:18981(1460) ack 1
        +0 > . 18981:20441(1460) ack 1
        +0 expect info in_recovery False
        +0 expect info cwnd 2920                    # min(ssthresh, max(FlightSize, SMSS) + SMSS)
        +0 expect counter tcp.recoveries_completed 1
        """
    )


def test_newreno_partial_ack_retransmits_the_next_hole_and_stays_in_recovery() -> None:
    run(
        PLAIN
        + INITIAL_WINDOW
        + """
        # 1:1461 and 5841:7301 are lost.
        +0.1 < . 1:1(0) ack 1 win 65535
        +0 > . 14601:16061(1460) ack 1
        +0 < . 1:1(0) ack 1 win 65535
        +0 > . 16061:17521(1460) ack 1
        +0 < . 1:1(0) ack 1 win 65535
        +0 > . 1:1461(1460) ack 1
        +0 expect info in_recovery True
        +0.1 < . 1:1(0) ack 5841 win 65535          # partial: below recover (17521)
        +0 > . 5841:7301(1460) ack 1                # RFC 6582 3.2 (5): the next hole at once
        +0 expect info in_recovery True
        +0 expect info cwnd 7300                    # 11680 - 5840 + 1460: deflated
        +0 expect counter tcp.partial_acks 1
        +0.1 < . 1:1(0) ack 17521 win 65535         # the full acknowledgement
        +0 > . 17521:18981(1460) ack 1
        +0 > . 18981:20441(1460) ack 1
        +0 expect info in_recovery False
        +0 expect counter tcp.recoveries_completed 1
        +0 expect info ssthresh 7300
        +0 expect counter tcp.retransmits 2         # each lost segment once, nothing else
        """
    )


def test_duplicate_acks_below_recover_after_an_rto_do_not_start_recovery() -> None:
    run(
        PLAIN
        + INITIAL_WINDOW
        + """
        +0.1 < . 1:1(0) ack 1 win 65535
        +0 > . 14601:16061(1460) ack 1
        +0 < . 1:1(0) ack 1 win 65535
        +0 > . 16061:17521(1460) ack 1
        +0 < . 1:1(0) ack 1 win 65535
        +0 > . 1:1461(1460) ack 1                   # fast retransmit
        +1 > . 1:1461(1460) ack 1                   # lost again: the RTO, recover = 17521
        +0 expect info in_recovery False
        +0 expect info cwnd 1460
        +0.1 < . 1:1(0) ack 2921 win 65535
        +0 > . 2921:4381(1460) ack 1                # go-back-N in slow start
        +0 > . 4381:5841(1460) ack 1
        +0 > . 5841:7301(1460) ack 1
        +0.1 < . 1:1(0) ack 2921 win 65535          # duplicates caused by the go-back-N
        +0 > . 7301:8761(1460) ack 1                # (limited transmit)
        +0 < . 1:1(0) ack 2921 win 65535
        +0 > . 8761:10221(1460) ack 1
        +0 < . 1:1(0) ack 2921 win 65535            # a third: 2921 is below recover (17521)
        +0 expect info in_recovery False            # RFC 6582 3.2 (2): no fast retransmit
        +0 expect counter tcp.fast_retransmits 1
        """
    )


def test_sack_recovery_retransmits_only_the_holes() -> None:
    run(
        SACK
        + INITIAL_WINDOW
        + """
        # 1:1461 and 4381:5841 are lost; the peer SACKs the rest as it arrives.
        +0.1 < . 1:1(0) ack 1 win 65535 <sack 1461:2921>
        +0 > . 14601:16061(1460) ack 1              # limited transmit
        +0 < . 1:1(0) ack 1 win 65535 <sack 1461:4381>
        +0 > . 16061:17521(1460) ack 1
        +0 < . 1:1(0) ack 1 win 65535 <sack 5841:7301 1461:4381>
        +0 > . 1:1461(1460) ack 1                   # third duplicate: the first hole
        +0 expect info in_recovery True
        +0 expect info ssthresh 7300
        # RFC 6937 PRR: cwnd = pipe + sndcnt, and sndcnt is 0: the fast retransmit already
        # sent more than ssthresh/RecoverFS (7300/17520) of the 1460 bytes delivered.
        +0 expect info cwnd 13140
        +0 < . 1:1(0) ack 1 win 65535 <sack 5841:8761 1461:4381>
        +0 < . 1:1(0) ack 1 win 65535 <sack 5841:10221 1461:4381>
        +0 < . 1:1(0) ack 1 win 65535 <sack 5841:11681 1461:4381>
        +0 < . 1:1(0) ack 1 win 65535 <sack 5841:13141 1461:4381>
        +0 > . 4381:5841(1460) ack 1                # lost (3 SMSS SACKed above); PRR allows it
        +0 < . 1:1(0) ack 1 win 65535 <sack 5841:14601 1461:4381>
        +0 > . 17521:18981(1460) ack 1              # then new data, never SACKed data again
        +0.05 < . 1:1(0) ack 4381 win 65535 <sack 5841:16061>   # partial: pipe 4380
        +0 > . 18981:20441(1460) ack 1
        +0 > . 20441:21901(1460) ack 1
        +0 expect info in_recovery True
        +0 < . 1:1(0) ack 17521 win 65535           # everything up to recover
        +0 > . 21901:23361(1460) ack 1              # cwnd min(7300, 4380 + 1460)
        +0 expect info in_recovery False
        +0 expect info cwnd 5840
        +0 expect counter tcp.retransmits 2
        """,
        tcp_settings=DUPACK_RECOVERY,
    )
