"""TCP options during data transfer: MSS (RFC 9293 3.7.1), window scaling and timestamps
(RFC 7323), SACK (RFC 2018, D-SACK RFC 2883). pystack is the listener; the peer connects.

The scripts that need only the notation and default settings are in the corpus
(scripts/tcp/options/, run by tests/script/test_corpus.py); the tests here change a setting or
assert more than a script can.
"""

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


# -- timestamps --------------------------------------------------------------------------------
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


# -- SACK --------------------------------------------------------------------------------------
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
