"""TCP options during data transfer: MSS (RFC 9293 3.7.1), window scaling and timestamps
(RFC 7323), SACK (RFC 2018, D-SACK RFC 2883). pystack is the listener; the peer connects."""

from __future__ import annotations

import pytest

from pystack.tcp.connection import TCPConnection
from tests.helpers.scripts import run
from tests.tcp.transfer.handshakes import DUPACK_RECOVERY, PLAIN, SACK, TIMESTAMPS


def connection_of(result: object) -> TCPConnection:
    connection = getattr(result, "connection", None)
    assert isinstance(connection, TCPConnection)
    return connection


# -- MSS ---------------------------------------------------------------------------------------
def test_mss_option_comes_from_the_link_mtu() -> None:
    run(
        """
        0 listen 8080
        +0 < S 0:0(0) win 65535 <mss 1460>
        +0 > S. 0:0(0) ack 1 win 65535 <mss 1240>   # MTU 1280 - 20 (IP) - 20 (TCP)
        +0.1 < . 1:1(0) ack 1 win 65535
        +0 accept
        +0 expect info mss 1240                     # min(peer's 1460, ours)
        +0 expect info peer_mss 1460
        +0 write 2000
        +0 > . 1:1241(1240) ack 1
        +0.1 < . 1:1(0) ack 1241 win 65535
        +0 > P. 1241:2001(760) ack 1                # the rest, once Nagle allows it
        """,
        config_overrides={"mtu": 1280},
    )


def test_mss_is_clamped_by_the_peers_mss_option() -> None:
    run("""
        0 listen 8080
        +0 < S 0:0(0) win 65535 <mss 1000>
        +0 > S. 0:0(0) ack 1 win 65535 <mss 1460>   # we announce our own limit, not the peer's
        +0.1 < . 1:1(0) ack 1 win 65535
        +0 accept
        +0 expect info mss 1000
        +0 write 2500
        +0 > . 1:1001(1000) ack 1
        +0 > . 1001:2001(1000) ack 1
        +0.1 < . 1:1(0) ack 2001 win 65535
        +0 > P. 2001:2501(500) ack 1
    """)


def test_mss_defaults_to_536_when_the_peer_sends_none() -> None:
    run("""
        0 listen 8080
        +0 < S 0:0(0) win 65535
        +0 > S. 0:0(0) ack 1 win 65535 <mss 1460>
        +0.1 < . 1:1(0) ack 1 win 65535
        +0 accept
        +0 expect info peer_mss 536                 # RFC 9293 3.7.1: no option means 536
        +0 expect info mss 536
        +0 write 1200
        +0 > . 1:537(536) ack 1
        +0 > . 537:1073(536) ack 1
        +0.1 < . 1:1(0) ack 1073 win 65535
        +0 > P. 1073:1201(128) ack 1
    """)


def test_timestamps_take_twelve_bytes_of_every_segment() -> None:
    run(
        TIMESTAMPS
        + """
        +0 expect info mss 1448                     # 1460 - NOP NOP TS (RFC 7323)
        +0 write 1448
        +0 > P. 1:1449(1448) ack 1 <nop,nop,TS val * ecr 200>
        """
    )


# -- window scaling ----------------------------------------------------------------------------
def test_no_window_scale_in_the_syn_ack_unless_the_syn_offers_it() -> None:
    result = run(
        PLAIN
        + """
        +0 expect info snd_wscale 0
        +0 expect info rcv_wscale 0
        +0.1 < P. 1:11(10) ack 1 win 1000
        +0.04 > . 1:1(0) ack 11 win 65525           # the right edge stays at 1 + 65535
        +0 read 10
        +0 expect info snd_wnd 1000                 # the peer's window field, unscaled
        +0 write 1000
        +0 > P. 1:1001(1000) ack 11 win 65525
        """
    )
    assert connection_of(result).rcv_wscale == 0


def test_window_scale_negotiated_when_both_offer_it() -> None:
    run("""
        0 listen 8080
        +0 < S 0:0(0) win 65535 <mss 1460,nop,wscale 7>
        +0 > S. 0:0(0) ack 1 win 65535 <mss 1460,nop,wscale 3>  # 65535 << 3 covers 256 KB
        +0.1 < . 1:1(0) ack 1 win 10
        +0 accept
        +0 expect info snd_wscale 7
        +0 expect info snd_wnd 1280                 # 10 << 7
        +0 write 1200
        +0 > P. 1:1201(1200) ack 1 win 32768        # 262144 >> 3
        +0.1 < . 1:1(0) ack 1201 win 10
        +0 write 100
        +0 > P. 1201:1301(100) ack 1 win 32768
    """)


def test_windows_in_syn_segments_are_never_scaled() -> None:
    run("""
        0 connect 10.0.0.1:9000
        +0 > S 0:0(0) win 65535 <mss 1460,sackOK,TS val * ecr 0,nop,wscale 3>
        +0.1 < S. 0:0(0) ack 1 win 1000 <mss 1460,nop,wscale 7>
        +0 > . 1:1(0) ack 1 win 32768               # scaled from here on
        +0 expect info snd_wnd 1000                 # RFC 7323 2.2: not 1000 << 7
        +0 write 3000
        +0 > . 1:1001(1000) ack 1 win 32768         # no more than the window
        end strict 0.5
    """)


def test_peer_window_scale_above_14_is_clamped_to_14() -> None:
    run("""
        0 listen 8080
        +0 < S 0:0(0) win 65535 <mss 1460,nop,wscale 15>
        +0 > S. 0:0(0) ack 1 win 65535 <mss 1460,nop,wscale 3>
        +0 expect counter tcp.wscale_clamped 1      # RFC 7323 2.3: log it, use 14
        +0.1 < . 1:1(0) ack 1 win 1
        +0 accept
        +0 expect info snd_wscale 14
        +0 expect info snd_wnd 16384                # 1 << 14, not 1 << 15
    """)


# -- timestamps --------------------------------------------------------------------------------
def test_timestamps_are_on_every_segment_once_negotiated() -> None:
    run(
        TIMESTAMPS
        + """
        +0 write 100
        +0 > P. 1:101(100) ack 1 win 32768 <nop,nop,TS val * ecr 200>
        +1 > . 1:101(100) ack 1 <nop,nop,TS val * ecr 200>             # RTO retransmission
        +0.1 < P. 1:11(10) ack 101 win 512 <nop,nop,TS val 300 ecr *>
        +0.04 > . 101:101(0) ack 11 <nop,nop,TS val * ecr 300>         # delayed pure ACK
        +0 read 10
        +0 close
        +0 > F. 101:101(0) ack 11 <nop,nop,TS val * ecr 300>
        +0.1 < F. 11:11(0) ack 102 win 512 <nop,nop,TS val 400 ecr *>
        +0 > . 102:102(0) ack 12 <nop,nop,TS val * ecr 400>
        +0 expect state TIME-WAIT
        """,
        tcp_settings=DUPACK_RECOVERY,  # the RTO path, without RACK-TLP
    )


def test_rtt_is_measured_from_the_echoed_timestamp() -> None:
    result = run(
        TIMESTAMPS
        + """
        +0 nodelay on
        +0 write 100
        +0 > P. 1:101(100) ack 1 <nop,nop,TS val * ecr 200>
        +0.1 write 100
        +0 > P. 101:201(100) ack 1 <nop,nop,TS val * ecr 200>
        +0.1 < . 1:1(0) ack 201 win 512 <nop,nop,TS val 300 ecr *>    # echoes the 0.2 segment
        """
    )
    # The handshake gave 0.1 s; the ACK echoes the TS val sent at 0.2, so the sample is 0.1 s
    # (timing the first unacknowledged segment instead would give 0.2 s).
    info = connection_of(result).tcp_info()
    assert info["srtt"] == pytest.approx(0.1)
    assert info["rttvar"] == pytest.approx(0.75 * 0.05)


def test_timestamps_give_rtt_samples_for_retransmitted_segments() -> None:
    result = run(
        TIMESTAMPS
        + """
        +0 write 100
        +0 > P. 1:101(100) ack 1 <nop,nop,TS val * ecr 200>
        +1 > . 1:101(100) ack 1 <nop,nop,TS val * ecr 200>
        +0.3 < . 1:1(0) ack 101 win 512 <nop,nop,TS val 300 ecr *>    # echoes the retransmission
        """,
        tcp_settings=DUPACK_RECOVERY,  # the RTO path, without RACK-TLP
    )
    # RFC 6298 3: with timestamps a retransmitted segment is no longer ambiguous: R = 0.3 s.
    info = connection_of(result).tcp_info()
    assert info["srtt"] == pytest.approx(0.875 * 0.1 + 0.125 * 0.3)
    assert info["rttvar"] == pytest.approx(0.75 * 0.05 + 0.25 * 0.2)
    assert info["rto"] == 1.0


def test_paws_drops_a_segment_with_an_old_timestamp_and_acks() -> None:
    run(
        TIMESTAMPS
        + """
        +0.1 < . 1:1001(1000) ack 1 win 512 <nop,nop,TS val 300 ecr *>
        +0 < . 1001:2001(1000) ack 1 win 512 <nop,nop,TS val 301 ecr *>
        +0 > . 1:1(0) ack 2001 <nop,nop,TS val * ecr 300>
        +0.1 < . 2001:3001(1000) ack 1 win 512 <nop,nop,TS val 250 ecr *>  # older than 300
        +0 > . 1:1(0) ack 2001 <nop,nop,TS val * ecr 300>   # RFC 7323 5.3 R1: drop, but ACK
        +0 expect drop TCP_PAWS 1
        +0 read 2000
        +0 > . 1:1(0) ack 2001 win 32768 <nop,nop,TS val * ecr 300>   # window update
        +0 read 0                                    # the old segment's data was not taken
        +0.1 < . 2001:3001(1000) ack 1 win 512 <nop,nop,TS val 350 ecr *>  # sent again, newer
        +0.04 > . 1:1(0) ack 3001 <nop,nop,TS val * ecr 350>
        +0 read 1000
        +0 expect drop TCP_PAWS 1
        """
    )


def test_paws_takes_the_sack_blocks_of_a_reordered_duplicate_ack() -> None:
    # Linux's tcp_disordered_ack: a pure duplicate ACK that arrives after a newer one fails PAWS,
    # but its SACK blocks are still news. It is taken, not dropped or answered, and does not
    # move TS.Recent back.
    result = run(
        TIMESTAMPS
        + """
        +0 write 4344
        +0 > . 1:1449(1448) ack 1 <nop,nop,TS val * ecr 200>
        +0 > . 1449:2897(1448) ack 1
        +0 > P. 2897:4345(1448) ack 1
        +0.1 < . 1:1(0) ack 1 win 512 <nop,nop,TS val 300 ecr *,nop,nop,sack 1449:2897>
        +0 < . 1:1(0) ack 1 win 512 <nop,nop,TS val 250 ecr *,nop,nop,sack 2897:4345>
        +0 expect counter tcp.paws_disordered_acks 1
        +0 expect drop TCP_PAWS 0
        +0 expect info duplicate_acks 2
        +0.5 < . 1:1(0) ack 4345 win 512 <nop,nop,TS val 400 ecr *>
        end strict 1
        """,
        tcp_settings=DUPACK_RECOVERY,  # the RTO path, without RACK-TLP
    )
    connection = connection_of(result)
    assert connection.ts_recent == 400 and connection.snd_una == connection.snd_max


def test_ts_recent_is_updated_only_by_segments_at_the_left_window_edge() -> None:
    run(
        TIMESTAMPS
        + """
        # RFC 7323 4.3 (A): of two segments acknowledged together, the ACK echoes the first.
        +0.1 < . 1:1001(1000) ack 1 win 512 <nop,nop,TS val 300 ecr *>
        +0 < . 1001:2001(1000) ack 1 win 512 <nop,nop,TS val 301 ecr *>
        +0 > . 1:1(0) ack 2001 <nop,nop,TS val * ecr 300>
        # (B): an out-of-order segment does not update TS.Recent...
        +0.1 < . 3001:4001(1000) ack 1 win 512 <nop,nop,TS val 500 ecr *>
        +0 > . 1:1(0) ack 2001 <nop,nop,TS val * ecr 300,nop,nop,sack 3001:4001>
        # ... the segment that fills the hole does, although its TS val is older.
        +0.1 < . 2001:3001(1000) ack 1 win 512 <nop,nop,TS val 400 ecr *>
        +0 > . 1:1(0) ack 4001 <nop,nop,TS val * ecr 400>
        +0 read 4000
        +0 > . 1:1(0) ack 4001 win 32768 <nop,nop,TS val * ecr 400>   # window update
        """
    )


# -- SACK --------------------------------------------------------------------------------------
def test_sack_permitted_only_when_the_syn_offers_it() -> None:
    run(
        PLAIN
        + """
        +0 expect info sack False
        +0.1 < . 1001:2001(1000) ack 1 win 65535
        +0 > . 1:1(0) ack 1 <>                       # a duplicate ACK without SACK blocks
        """
    )


def test_sack_blocks_report_out_of_order_data_most_recent_first() -> None:
    run(
        SACK
        + """
        +0 expect info sack True
        +0.1 < . 1:1001(1000) ack 1 win 65535
        +0 < . 2001:3001(1000) ack 1 win 65535
        +0 > . 1:1(0) ack 1001 <nop,nop,sack 2001:3001>
        +0 < . 6001:7001(1000) ack 1 win 65535
        +0 > . 1:1(0) ack 1001 <nop,nop,sack 6001:7001 2001:3001>
        +0 < . 4001:5001(1000) ack 1 win 65535
        +0 > . 1:1(0) ack 1001 <nop,nop,sack 4001:5001 6001:7001 2001:3001>
        +0 < . 3001:4001(1000) ack 1 win 65535     # joins two blocks: the joined one is first
        +0 > . 1:1(0) ack 1001 <nop,nop,sack 2001:5001 6001:7001>
        +0 < . 8001:9001(1000) ack 1 win 65535
        +0 > . 1:1(0) ack 1001 <nop,nop,sack 8001:9001 2001:5001 6001:7001>
        +0 < . 10001:11001(1000) ack 1 win 65535   # four blocks fit without timestamps
        +0 > . 1:1(0) ack 1001 <nop,nop,sack 10001:11001 8001:9001 2001:5001 6001:7001>
        +0 < . 1001:2001(1000) ack 1 win 65535     # fills the first hole
        +0 > . 1:1(0) ack 5001 <nop,nop,sack 10001:11001 8001:9001 6001:7001>
        +0 read 4000
        """
    )


def test_sack_blocks_with_timestamps_are_at_most_three() -> None:
    run(
        TIMESTAMPS
        + """
        +0.1 < . 1001:2001(1000) ack 1 win 512 <nop,nop,TS val 300 ecr *>
        +0 > . 1:1(0) ack 1 <nop,nop,TS val * ecr 200,nop,nop,sack 1001:2001>
        +0 < . 3001:4001(1000) ack 1 win 512 <nop,nop,TS val 301 ecr *>
        +0 > . 1:1(0) ack 1 <nop,nop,TS val * ecr 200,nop,nop,sack 3001:4001 1001:2001>
        +0 < . 5001:6001(1000) ack 1 win 512 <nop,nop,TS val 302 ecr *>
        +0 > . 1:1(0) ack 1 <...>
        +0 < . 7001:8001(1000) ack 1 win 512 <nop,nop,TS val 303 ecr *>
        +0 > . 1:1(0) ack 1 <nop,nop,TS val * ecr 200,nop,nop,sack 7001:8001 5001:6001 3001:4001>
        """
    )


def test_a_dsack_block_proving_the_rto_needless_undoes_the_reduction() -> None:
    result = run(
        SACK
        + """
        +0 write 2920
        +0 > . 1:1461(1460) ack 1
        +0 > P. 1461:2921(1460) ack 1
        +1 > . 1:1461(1460) ack 1                   # RTO: the ACK is late, not lost
        +0.1 < . 1:1(0) ack 2921 win 65535          # the ACK of the originals
        +0 expect info cwnd 4380                    # 1 MSS after the RTO + 2 MSS of slow start
        +0 write 100
        +0 > P. 2921:3021(100) ack 1
        +0.05 < . 1:1(0) ack 2921 win 65535 <sack 1:1461>   # RFC 2883: 1:1461 came twice
        # The RTO's one retransmission was needless (RFC 3708): the reduction is undone.
        +0 expect info cwnd 14600
        +0 expect info ssthresh 2147483648
        +0 expect counter tcp.undos 1
        +0 expect counter tcp.dsacks_received 1
        +0 expect info in_recovery False
        +0 expect info sack_scoreboard []
        +0.05 < . 1:1(0) ack 3021 win 65535
        +0 write 100
        +0 > P. 3021:3121(100) ack 1
        end strict 0.5
        """,
        tcp_settings=DUPACK_RECOVERY,  # the RTO path, without RACK-TLP
    )
    assert connection_of(result).scoreboard.dsack_count == 1
