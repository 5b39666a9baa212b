"""Nagle's algorithm (RFC 896, RFC 9293 3.7.4) and TCP_NODELAY, sender and receiver silly window
syndrome avoidance (RFC 9293 3.8.6.2.1 and 3.8.6.2.2)."""

from __future__ import annotations

from pystack.tcp.settings import TCPSettings
from tests.helpers.scripts import run
from tests.tcp.transfer.handshakes import PLAIN


def test_nagle_holds_small_writes_while_data_is_unacked() -> None:
    run(
        PLAIN
        + """
        +0 write 10
        +0 > P. 1:11(10) ack 1                      # nothing in flight: at once
        +0.01 write 10
        +0.01 write 10                              # held: the first 10 are unacknowledged
        +0.08 < . 1:1(0) ack 11 win 65535
        +0 > P. 11:31(20) ack 1                     # both, coalesced, on the ACK
        +0.1 < . 1:1(0) ack 31 win 65535
        end strict 1
        """
    )


def test_nagle_lets_full_sized_segments_go() -> None:
    run(
        PLAIN
        + """
        +0 write 10
        +0 > P. 1:11(10) ack 1
        +0.01 write 2000
        +0 > . 11:1471(1460) ack 1                  # a full segment is never held
        +0.1 < . 1:1(0) ack 1471 win 65535
        +0 > P. 1471:2011(540) ack 1                # the small rest waited for the ACK
        """
    )


def test_nodelay_sends_small_writes_at_once() -> None:
    run(
        PLAIN
        + """
        +0 nodelay on
        +0 write 10
        +0 > P. 1:11(10) ack 1
        +0.01 write 10
        +0 > P. 11:21(10) ack 1                     # TCP_NODELAY: no waiting for the ACK
        +0.01 write 10
        +0 > P. 21:31(10) ack 1
        +0.01 nodelay off
        +0 write 10                                 # Nagle again
        +0.07 < . 1:1(0) ack 31 win 65535
        +0 > P. 31:41(10) ack 1
        """
    )


def test_sender_avoids_tiny_window_limited_segments() -> None:
    run("""
        0 listen 8080
        +0 < S 0:0(0) win 3000 <mss 1460>
        +0 > S. 0:0(0) ack 1 win 65535 <mss 1460>
        +0.1 < . 1:1(0) ack 1 win 3000              # the largest window it offers: 3000
        +0 accept
        +0 write 5000
        +0 > . 1:1461(1460) ack 1
        +0 > . 1461:2921(1460) ack 1                # 80 more fit: below 3000 / 2, held
        +0.1 < . 1:1(0) ack 1461 win 3000
        +0 > . 2921:4381(1460) ack 1                # again a full one, and no 80-byte piece
        +0.1 < . 1:1(0) ack 4381 win 3000
        +0 > P. 4381:5001(620) ack 1                # the rest fits whole: it goes
        +0.1 < . 1:1(0) ack 5001 win 3000
        end strict 2
    """)


def test_receiver_opens_its_window_only_by_a_segment_or_half_the_buffer() -> None:
    run(
        """
        0 listen 8080
        +0 < S 0:0(0) win 65535 <mss 1000>
        +0 > S. 0:0(0) ack 1 win 4000 <mss 1460>
        +0.1 < . 1:1(0) ack 1 win 65535
        +0 accept
        +0 < . 1:1001(1000) ack 1 win 65535
        +0 < . 1001:2001(1000) ack 1 win 65535
        +0 > . 1:1(0) ack 2001 win 2000
        +0 < . 2001:3001(1000) ack 1 win 65535
        +0 < . 3001:4001(1000) ack 1 win 65535
        +0 > . 1:1(0) ack 4001 win 0                # the buffer is full
        +0.1 read 100
        +0.1 read 899                               # 999 bytes free: less than one MSS
        +0.1 read 1                                 # 1000 = min(4000 / 2, MSS): now
        +0 > . 1:1(0) ack 4001 win 1000
        +0.1 < P. 4001:4101(100) ack 1 win 65535
        +0.04 > . 1:1(0) ack 4101 win 900           # the right edge stays where it was
        +0.1 read 50
        +0.1 read 1000                              # 1050 more: 1950 offered
        +0 > . 1:1(0) ack 4101 win 1950
        end strict 1
        """,
        tcp_settings=TCPSettings(receive_buffer=4000),
    )
