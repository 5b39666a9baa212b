"""RFC 5961 blind-attack hardening: RST (3), SYN (4) and ACK (5) checks, the rate limit (7),
and the SYN-SENT rules of RFC 9293 3.10.7.3 that go with them.

The scripts that need nothing but the notation and default settings are in the corpus,
scripts/tcp/rfc5961/ and scripts/tcp/handshake/; the tests here change a setting or assert more than a script can.
"""

from __future__ import annotations

from pystack.tcp.settings import TCPSettings
from tests.helpers.scripts import run
from tests.tcp.scripts import PASSIVE_OPEN, connection_of, transitions


# -- RST (RFC 5961 3.2) ------------------------------------------------------------------------
def test_established_rst_at_rcv_nxt_resets_econnreset() -> None:
    result = run(
        PASSIVE_OPEN
        + """
        +0 < P. 1:101(100) ack 1 win 65535
        +0.04 > . 1:1(0) ack 101
        +0.01 < R 101:101(0) win 0                # exactly RCV.NXT
        +0 expect state CLOSED
        +0 expect error ECONNRESET
        +0 expect counter tcp.resets_received 1
        +0 write 1 = ECONNRESET
        end strict 1
        """
    )
    assert transitions(connection_of(result))[-1][1:] == (
        "ESTABLISHED",
        "CLOSED",
        "RST in ESTABLISHED",
    )


# -- rate limit (RFC 5961 7) -------------------------------------------------------------------
def test_established_challenge_acks_rate_limited_per_second() -> None:
    run(
        PASSIVE_OPEN
        + """
        0.2 < R 1000:1000(0) win 0
        +0 > . 1:1(0) ack 1
        +0.1 < R 2000:2000(0) win 0
        +0 > . 1:1(0) ack 1
        +0.1 < S 3000:3000(0) win 65535           # a SYN's challenge ACK counts the same
        +0 > . 1:1(0) ack 1
        +0.1 < R 4000:4000(0) win 0               # the fourth in second 0: suppressed
        +0 expect counter tcp.challenge_acks_sent 3
        +0 expect counter tcp.challenge_acks_suppressed 1
        +0 expect drop TCP_RST_NOT_EXACT 3
        1.0 < R 5000:5000(0) win 0                # a new second: allowed again
        +0 > . 1:1(0) ack 1
        +0 expect counter tcp.challenge_acks_sent 4
        +0 expect state ESTABLISHED
        """,
        # The per-stack limit alone: no per-connection interval, and a fixed budget per second.
        tcp_settings=TCPSettings(
            challenge_ack_limit=3, challenge_ack_jitter=False, invalid_ack_interval=0
        ),
    )


# -- SYN-SENT (RFC 9293 3.10.7.3, RFC 5961 3.2) ------------------------------------------------
def test_syn_sent_rst_with_acceptable_ack_refused() -> None:
    result = run("""
        0 connect 10.0.0.1:9000
        +0 > S 0:0(0) <...>
        +0.1 < R. 0:0(0) ack 1 win 0
        +0 expect state CLOSED
        +0 expect error ECONNREFUSED
        +0 expect counter tcp.refused 1
        end strict 10
    """)
    assert transitions(connection_of(result))[-1][1:] == (
        "SYN-SENT",
        "CLOSED",
        "RST in SYN-SENT: connection refused",
    )
