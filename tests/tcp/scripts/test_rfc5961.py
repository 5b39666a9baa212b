"""RFC 5961 blind-attack hardening: RST (3), SYN (4) and ACK (5) checks, the rate limit (7),
and the SYN-SENT rules of RFC 9293 3.10.7.3 that go with them."""

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


def test_established_in_window_rst_not_exact_challenge_ack() -> None:
    run(
        PASSIVE_OPEN
        + """
        +0.01 < R 1000:1000(0) win 0              # in the window, but not RCV.NXT
        +0 > . 1:1(0) ack 1                       # the challenge ACK: a real peer answers RST 1
        +0 expect state ESTABLISHED
        +0 expect drop TCP_RST_NOT_EXACT 1
        +0 expect counter tcp.challenge_acks_sent 1
        +0 expect error none
        +0.01 < R 1:1(0) win 0                    # what the true peer sends back: exact
        +0 expect state CLOSED
        +0 expect error ECONNRESET
        """
    )


def test_established_out_of_window_rst_dropped_silently() -> None:
    run(
        PASSIVE_OPEN
        + """
        +0.01 < R 100000:100000(0) win 0          # beyond RCV.NXT + RCV.WND
        +0 < R. 4294967000:4294967000(0) ack 1 win 0   # below RCV.NXT
        +0 expect state ESTABLISHED
        +0 expect drop TCP_OUT_OF_WINDOW 2
        +0 expect counter tcp.challenge_acks_sent 0
        end strict 1                              # no ACK for an RST
        """
    )


# -- SYN (RFC 5961 4.2) ------------------------------------------------------------------------
def test_established_in_window_syn_challenge_ack() -> None:
    run(
        PASSIVE_OPEN
        + """
        +0.01 < S 500:500(0) win 65535 <mss 1460> # in the window, any sequence number
        +0 > . 1:1(0) ack 1                       # challenge ACK, no reset
        +0 expect state ESTABLISHED
        +0 expect drop TCP_SYN_IN_WINDOW 1
        +0 expect counter tcp.challenge_acks_sent 1
        +0 expect counter tcp.resets_sent 0
        """
    )


def test_established_syn_at_rcv_nxt_challenge_ack_too() -> None:
    run(
        PASSIVE_OPEN
        + """
        +0.01 < S 1:1(0) win 65535                # even at RCV.NXT: RFC 5961 drops RFC 793's RST
        +0 > . 1:1(0) ack 1
        +0 expect state ESTABLISHED
        +0 expect drop TCP_SYN_IN_WINDOW 1
        """
    )


# -- ACK (RFC 5961 5.2) ------------------------------------------------------------------------
def test_established_ack_for_unsent_data_acked_and_dropped() -> None:
    run(
        PASSIVE_OPEN
        + """
        +0 write 100
        +0 > P. 1:101(100) ack 1
        +0.01 < P. 1:11(10) ack 500 win 65535     # SEG.ACK > SND.NXT
        +0 > . 101:101(0) ack 1                   # ACK, and the data is not taken
        +0 expect drop TCP_ACK_UNSENT 1
        +0 expect info receive_buffered 0
        +0 expect info unacked 100
        +0.01 < . 1:1(0) ack 101 win 65535
        +0 expect info unacked 0
        """
    )


# Peer window (and so MAX.SND.WND) 1000: after 2000 bytes are acknowledged, SND.UNA - MAX.SND.WND
# is relative 1001.
SMALL_PEER_WINDOW = """
    0 listen 8080
    +0 < S 0:0(0) win 1000 <mss 1000>
    +0 > S. 0:0(0) ack 1 <mss 1460>
    +0.01 < . 1:1(0) ack 1 win 1000
    +0 accept
    +0 write 2000
    +0 > . 1:1001(1000) ack 1
    +0.01 < . 1:1(0) ack 1001 win 1000
    +0 > P. 1001:2001(1000) ack 1
    +0.01 < . 1:1(0) ack 2001 win 1000
    +0 expect info unacked 0
"""


def test_established_ack_older_than_max_snd_wnd_challenge_ack() -> None:
    run(
        SMALL_PEER_WINDOW
        + """
        +0.01 < P. 1:11(10) ack 1000 win 1000     # SEG.ACK < SND.UNA - MAX.SND.WND
        +0 > . 2001:2001(0) ack 1                 # challenge ACK; the data is dropped
        +0 expect drop TCP_ACK_TOO_OLD 1
        +0 expect counter tcp.challenge_acks_sent 1
        +0 expect info receive_buffered 0
        +0 expect state ESTABLISHED
        """
    )


def test_established_old_ack_within_max_snd_wnd_accepted() -> None:
    run(
        SMALL_PEER_WINDOW
        + """
        +0.01 < P. 1:11(10) ack 1001 win 1000     # SND.UNA - MAX.SND.WND exactly: acceptable
        +0 expect drop TCP_ACK_TOO_OLD 0
        +0 expect info receive_buffered 10        # the text is taken
        +0.04 > . 2001:2001(0) ack 11
        """
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
def test_syn_sent_rst_without_ack_ignored() -> None:
    run("""
        0 connect 10.0.0.1:9000
        +0 > S 0:0(0) <...>
        +0.1 < R 0:0(0) win 0
        +0 expect state SYN-SENT
        +0 expect drop TCP_RST_IGNORED 1
        +0.9 > S 0:0(0) <...>                     # the SYN is retransmitted as if nothing came
        +0.1 < S. 0:0(0) ack 1 win 65535 <mss 1460>
        +0 > . 1:1(0) ack 1
        +0 expect state ESTABLISHED
    """)


def test_syn_sent_rst_with_bad_ack_ignored() -> None:
    run("""
        0 connect 10.0.0.1:9000
        +0 > S 0:0(0) <...>
        +0.1 < R. 0:0(0) ack 5 win 0              # does not ack our SYN (ISS+1): drop it
        +0 < R. 0:0(0) ack 0 win 0                # SEG.ACK =< ISS
        +0 expect state SYN-SENT
        +0 expect drop TCP_BAD_ACK 2
        +0 expect counter tcp.resets_sent 0       # never answer an RST
        +0.9 > S 0:0(0) <...>
    """)


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


def test_syn_sent_syn_ack_with_bad_ack_answered_with_rst() -> None:
    run("""
        0 connect 10.0.0.1:9000
        +0 > S 0:0(0) <...>
        +0.1 < S. 0:0(0) ack 100 win 65535 <mss 1460>
        +0 > R 100:100(0) win 0                   # <SEQ=SEG.ACK><CTL=RST>
        +0 expect state SYN-SENT
        +0 expect drop TCP_BAD_ACK 1
        +0.1 < S. 0:0(0) ack 1 win 65535 <mss 1460>   # the right one still works
        +0 > . 1:1(0) ack 1
        +0 expect state ESTABLISHED
    """)


def test_syn_sent_ack_without_syn_dropped() -> None:
    run("""
        0 connect 10.0.0.1:9000
        +0 > S 0:0(0) <...>
        +0.1 < . 0:0(0) ack 1 win 65535           # acks our SYN but has no SYN of its own
        +0 expect state SYN-SENT
        +0 expect drop TCP_NO_SYN 1
        +0.9 > S 0:0(0) <...>
    """)
