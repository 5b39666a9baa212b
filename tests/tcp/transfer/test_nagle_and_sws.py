"""Nagle's algorithm (RFC 896, RFC 9293 3.7.4) and TCP_NODELAY, sender and receiver silly window
syndrome avoidance (RFC 9293 3.8.6.2.1 and 3.8.6.2.2).

The scripts that need only the notation and default settings are in the corpus
(scripts/tcp/data/, run by tests/script/test_corpus.py); the tests here change a setting or
assert more than a script can.
"""

from __future__ import annotations

from pystack.tcp.settings import TCPSettings
from tests.helpers.scripts import run


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
