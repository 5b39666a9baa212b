"""Delayed ACKs (RFC 9293 3.8.6.3, RFC 5681 4.2): every second full-sized segment at once, a
lone segment after ``delayed_ack`` (0.04 s), out-of-order data and hole fills at once.

The scripts that need only the notation and default settings are in the corpus
(scripts/tcp/data/, run by tests/script/test_corpus.py); the tests here change a setting or
assert more than a script can.
"""

from __future__ import annotations

import pytest

from pystack.tcp.settings import TCPSettings
from tests.helpers.scripts import run
from tests.tcp.transfer.handshakes import PLAIN, SACK


def test_the_delay_is_configurable_and_bounded_below_half_a_second() -> None:
    run(
        PLAIN
        + """
        +0.1 < P. 1:101(100) ack 1 win 65535
        +0.2 > . 1:1(0) ack 101
        """,
        tcp_settings=TCPSettings(delayed_ack=0.2),
    )
    # RFC 9293 3.8.6.3: "the delay MUST be less than 0.5 seconds".
    with pytest.raises(ValueError, match=r"below 0\.5 s"):
        TCPSettings(delayed_ack=0.5)


def test_out_of_order_segment_is_acked_at_once() -> None:
    run(
        SACK
        + """
        +0.1 < . 1461:2921(1460) ack 1 win 65535
        +0 > . 1:1(0) ack 1 <nop,nop,sack 1461:2921>   # RFC 5681 4.2: a duplicate ACK, now
        +0.01 < . 4381:5841(1460) ack 1 win 65535
        +0 > . 1:1(0) ack 1 <nop,nop,sack 4381:5841 1461:2921>
        """
    )
