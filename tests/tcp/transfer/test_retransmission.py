"""Retransmission (RFC 6298 timer, Karn's rule, the retransmission queue, the retry limit) and
out-of-order reassembly on the receiving side. Handshakes end at 0.1 s (RTT 0.1 s, RTO 1 s).

The scripts that need only the notation and default settings are in the corpus
(scripts/tcp/loss/ and data/, run by tests/script/test_corpus.py); the tests here change a setting or
assert more than a script can.
"""

from __future__ import annotations

import pytest

from pystack.tcp.connection import TCPConnection
from pystack.tcp.settings import TCPSettings
from tests.helpers.scripts import run
from tests.tcp.transfer.handshakes import PLAIN, SACK


def connection_of(result: object) -> TCPConnection:
    connection = getattr(result, "connection", None)
    assert isinstance(connection, TCPConnection)
    return connection


# -- the retransmission timer ------------------------------------------------------------------
def test_rto_doubles_on_each_timeout_up_to_max_rto() -> None:
    run(
        PLAIN
        + """
        +0 write 100
        +0 > P. 1:101(100) ack 1
        +1 > . 1:101(100) ack 1
        +2 > . 1:101(100) ack 1
        +4 > . 1:101(100) ack 1
        +5 > . 1:101(100) ack 1                     # (5.5) with (2.5): capped at max_rto
        +0 expect info rto 5.0
        +5 > . 1:101(100) ack 1
        +0.1 < . 1:1(0) ack 101 win 65535
        +0 expect info rto 5.0                       # acked, but no sample (Karn): backed off
        +0 expect info retransmits 5
        +0 expect counter tcp.timeouts 5
        +0 write 100
        +0 > P. 101:201(100) ack 1
        +0.1 < . 1:1(0) ack 201 win 65535
        +0 expect info rto 1.0                       # RFC 6298 5: a new sample ends the backoff
        end strict 10
        """,
        tcp_settings=TCPSettings(max_rto=5.0),
    )


def test_min_rto_is_configurable() -> None:
    run(
        """
        0 listen 8080
        +0 < S 0:0(0) win 65535 <mss 1460>
        +0 > S. 0:0(0) ack 1 win 65535 <mss 1460>
        +0.01 < . 1:1(0) ack 1 win 65535            # RTT 10 ms: SRTT + 4 RTTVAR = 30 ms
        +0 accept
        +0 expect info rto 0.2                       # RFC 6298 (2.4): not below min_rto
        +0 write 100
        +0 > P. 1:101(100) ack 1
        +0.2 > . 1:101(100) ack 1
        +0.4 > . 1:101(100) ack 1
        +0.01 < . 1:1(0) ack 101 win 65535
        """,
        tcp_settings=TCPSettings(min_rto=0.2),
    )


def test_rto_backs_off_and_karn_skips_retransmitted_sample() -> None:
    result = run(
        PLAIN
        + """
        +0 expect info srtt 0.1                      # from the handshake
        +0 write 1000
        +0 > P. 1:1001(1000) ack 1
        +1 > . 1:1001(1000) ack 1
        +2 > . 1:1001(1000) ack 1
        +0.2 < . 1:1(0) ack 1001 win 65535          # RFC 6298 3: ambiguous, no sample
        +0 expect info srtt 0.1
        +0 expect info rttvar 0.05
        +0 write 1000
        +0 > P. 1001:2001(1000) ack 1
        +0.3 < . 1:1(0) ack 2001 win 65535          # a segment sent once: R = 0.3 s
        """
    )
    info = connection_of(result).tcp_info()
    assert info["srtt"] == pytest.approx(0.875 * 0.1 + 0.125 * 0.3)
    assert info["rttvar"] == pytest.approx(0.75 * 0.05 + 0.25 * 0.2)
    assert info["rto"] == 1.0


def test_data_retries_exhausted_times_out_with_etimedout_and_rst() -> None:
    run(
        PLAIN
        + """
        +0 write 100
        +0 > P. 1:101(100) ack 1
        +1 > . 1:101(100) ack 1
        +2 > . 1:101(100) ack 1
        +2 > . 1:101(100) ack 1                     # three retries (max_rto 2 s)
        +2 > R. 101:101(0) ack 1 win 0              # the fourth timeout gives up
        +0 expect state CLOSED
        +0 expect error ETIMEDOUT
        +0 expect counter tcp.timeouts 4
        +0 write 10 = ETIMEDOUT
        end strict 5
        """,
        tcp_settings=TCPSettings(data_retries=3, max_rto=2.0),
    )


# -- reassembly --------------------------------------------------------------------------------
def test_out_of_order_segments_are_delivered_in_order() -> None:
    run(
        PLAIN
        + """
        +0.1 < . 3001:4001(1000) ack 1 win 65535
        +0 > . 1:1(0) ack 1
        +0 read 0                                    # nothing readable across the hole
        +0 < . 1001:2001(1000) ack 1 win 65535
        +0 > . 1:1(0) ack 1
        +0 < P. 4001:5001(1000) ack 1 win 65535
        +0 > . 1:1(0) ack 1
        +0 < . 1:1001(1000) ack 1 win 65535
        +0 > . 1:1(0) ack 2001
        +0 read 2000
        +0 < . 2001:3001(1000) ack 1 win 65535
        +0 > . 1:1(0) ack 5001
        +0 read 3000                                 # the peer's bytes 3000..4999, in order
        +0 expect info out_of_order []
        +0 expect counter tcp.out_of_order_segments 3
        """
    )


def test_out_of_order_data_beyond_the_limit_is_dropped() -> None:
    run(
        SACK
        + """
        +0.1 < . 1001:2001(1000) ack 1 win 65535
        +0 > . 1:1(0) ack 1 <nop,nop,sack 1001:2001>
        +0 < . 3001:4001(1000) ack 1 win 65535
        +0 > . 1:1(0) ack 1 <nop,nop,sack 3001:4001 1001:2001>
        +0 < . 5001:6001(1000) ack 1 win 65535      # a third KB: over the 2 KB bound
        +0 > . 1:1(0) ack 1 <nop,nop,sack 3001:4001 1001:2001>   # not held, not SACKed
        +0 expect drop TCP_OUT_OF_ORDER_LIMIT 1
        +0 < . 1:1001(1000) ack 1 win 65535
        +0 > . 1:1(0) ack 2001 <nop,nop,sack 3001:4001>
        +0 < . 2001:3001(1000) ack 1 win 65535
        +0 > . 1:1(0) ack 4001
        +0 < . 4001:5001(1000) ack 1 win 65535
        +0 < . 5001:6001(1000) ack 1 win 65535      # the dropped KB comes again
        +0 > . 1:1(0) ack 6001                      # every second segment: at once
        +0 read 6000
        """,
        tcp_settings=TCPSettings(out_of_order_limit=2000),
    )
