"""Delayed ACKs (RFC 9293 3.8.6.3, RFC 5681 4.2): every second full-sized segment at once, a
lone segment after ``delayed_ack`` (0.04 s), out-of-order data and hole fills at once."""

from __future__ import annotations

import pytest

from pystack.tcp.settings import TCPSettings
from tests.helpers.scripts import run
from tests.tcp.transfer.handshakes import PLAIN, SACK


def test_every_second_full_sized_segment_is_acked_at_once() -> None:
    run(
        PLAIN
        + """
        +0.1 < . 1:1461(1460) ack 1 win 65535
        +0 < . 1461:2921(1460) ack 1 win 65535
        +0 > . 1:1(0) ack 2921                      # the second: no delay
        +0 < . 2921:4381(1460) ack 1 win 65535
        +0 < . 4381:5841(1460) ack 1 win 65535
        +0 > . 1:1(0) ack 5841
        +0 < . 5841:7301(1460) ack 1 win 65535      # a fifth: waits for a sixth or the timer
        +0.04 > . 1:1(0) ack 7301
        +0 read 7300
        """
    )


def test_a_single_segment_is_acked_after_the_delay() -> None:
    run(
        PLAIN
        + """
        +0.1 < P. 1:101(100) ack 1 win 65535
        +0.04 > . 1:1(0) ack 101                    # delayed_ack = 0.04 s, not at once
        +0 read 100
        end strict 1
        """
    )


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


def test_data_sent_within_the_delay_carries_the_ack() -> None:
    run(
        PLAIN
        + """
        +0.1 < P. 1:101(100) ack 1 win 65535
        +0.01 read 100
        +0 write 50                                 # the reply: no separate ACK
        +0 > P. 1:51(50) ack 101
        +0.1 < . 101:101(0) ack 51 win 65535
        end strict 1
        """
    )


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


def test_segment_filling_a_hole_is_acked_at_once() -> None:
    run(
        SACK
        + """
        +0.1 < . 1461:2921(1460) ack 1 win 65535
        +0 > . 1:1(0) ack 1 <nop,nop,sack 1461:2921>
        +0.01 < . 1:1461(1460) ack 1 win 65535      # fills it: no delay
        +0 > . 1:1(0) ack 2921 <>
        +0.01 < P. 2921:3021(100) ack 1 win 65535   # in order again: delayed as usual
        +0.04 > . 1:1(0) ack 3021
        +0 read 3020
        """
    )
