"""RFC 9293 3.10.7.4 step by step: sequence check, RST, SYN, ACK, URG, text, FIN, in that order.

The scripts that need only the notation and default settings are in the corpus
(scripts/tcp/malformed/, data/ and close/, run by tests/script/test_corpus.py); the tests here change a setting or
assert more than a script can.
"""

from __future__ import annotations

from pystack.tcp.settings import TCPSettings
from tests.helpers.scripts import run
from tests.tcp.scripts import PASSIVE_OPEN, connection_of, run_recording, transitions

SMALL_BUFFER = TCPSettings(receive_buffer=1000)  # easy to fill: RCV.WND reaches 0

# With the 1000-byte buffer full, pystack advertises a zero window and RCV.NXT is 1001.
ZERO_WINDOW = (
    PASSIVE_OPEN
    + """
    +0 < P. 1:1001(1000) ack 1 win 65535
    +0.04 > . 1:1(0) ack 1001 win 0               # the delayed ACK closes the window
    """
)


# -- first: check sequence number (the acceptability table) -----------------------------------
def test_established_zero_window_empty_segment_at_rcv_nxt_accepted() -> None:
    # Case 3 (SEG.LEN = 0, RCV.WND = 0): acceptable only if SEG.SEQ = RCV.NXT.
    run(
        ZERO_WINDOW
        + """
        +0 write 10
        +0 > P. 1:11(10) ack 1001 win 0
        +0.01 < . 1001:1001(0) ack 11 win 65535   # its ACK is taken: nothing is retransmitted
        +0 expect info unacked 0
        +0 expect drop TCP_OUT_OF_WINDOW 0
        end strict 3
        """,
        tcp_settings=SMALL_BUFFER,
    )


def test_established_zero_window_empty_segment_off_rcv_nxt_acked_and_dropped() -> None:
    run(
        ZERO_WINDOW
        + """
        +0.01 < . 1002:1002(0) ack 1 win 65535    # case 3: SEG.SEQ != RCV.NXT
        +0 > . 1:1(0) ack 1001 win 0              # <SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK>
        +0 expect drop TCP_OUT_OF_WINDOW 1
        +0.6 < . 1000:1000(0) ack 1 win 65535     # past invalid_ack_interval (0.5 s)
        +0 > . 1:1(0) ack 1001 win 0
        +0 expect drop TCP_OUT_OF_WINDOW 2
        """,
        tcp_settings=SMALL_BUFFER,
    )


def test_established_replies_to_invalid_empty_segments_are_rate_limited() -> None:
    # Linux's tcp_oow_rate_limited: an unacceptable segment without data, SYN or FIN is
    # answered at most once per invalid_ack_interval, so two ends cannot ACK each other forever.
    run(
        ZERO_WINDOW
        + """
        +0.01 < . 1002:1002(0) ack 1 win 65535
        +0 > . 1:1(0) ack 1001 win 0
        +0.01 < . 1000:1000(0) ack 1 win 65535    # 10 ms later: dropped, not answered
        +0 expect drop TCP_OUT_OF_WINDOW 2
        +0 expect counter tcp.invalid_acks_suppressed 1
        +0.6 < . 1003:1003(0) ack 1 win 65535
        +0 > . 1:1(0) ack 1001 win 0
        """,
        tcp_settings=SMALL_BUFFER,
    )


def test_established_zero_window_data_acked_and_dropped() -> None:
    # Case 4 with RCV.WND = 0: no data is acceptable, not even at RCV.NXT.
    run(
        ZERO_WINDOW
        + """
        +0.01 < P. 1001:1002(1) ack 1 win 65535   # a zero-window probe
        +0 > . 1:1(0) ack 1001 win 0
        +0 expect drop TCP_OUT_OF_WINDOW 1
        +0 expect info receive_buffered 1000      # the old bytes are there, the probe's not
        +0 read 1000
        +0 > . 1:1(0) ack 1001 win 1000           # the window reopens (RFC 9293 3.8.6.2.2)
        """,
        tcp_settings=SMALL_BUFFER,
    )


def test_established_zero_window_probe_ack_field_still_taken() -> None:
    # RFC 9293 3.10.7.4: "special allowance should be made to accept valid ACKs" at RCV.WND = 0.
    run(
        ZERO_WINDOW
        + """
        +0 write 10
        +0 > P. 1:11(10) ack 1001 win 0
        +0.01 < P. 1001:1002(1) ack 11 win 65535  # a probe that also acks our 10 bytes
        +0 > . 11:11(0) ack 1001 win 0
        +0 expect drop TCP_OUT_OF_WINDOW 1
        +0 expect info unacked 0
        end strict 3                              # nothing left to retransmit
        """,
        tcp_settings=SMALL_BUFFER,
    )


def test_established_empty_segment_below_rcv_nxt_acked_and_dropped() -> None:
    # Case 2 (SEG.LEN = 0, RCV.WND > 0): RCV.NXT =< SEG.SEQ < RCV.NXT+RCV.WND.
    run(
        PASSIVE_OPEN
        + """
        +0 < P. 1:101(100) ack 1 win 65535
        +0.04 > . 1:1(0) ack 101
        +0.01 < . 100:100(0) ack 1 win 65535      # an old, duplicated ACK
        +0 > . 1:1(0) ack 101
        +0 expect drop TCP_OUT_OF_WINDOW 1
        """
    )


# -- second: check the RST bit -----------------------------------------------------------------
def test_established_out_of_window_rst_dropped_before_the_rst_check() -> None:
    run(
        PASSIVE_OPEN
        + """
        +0.01 < R 70000:70000(0) win 0            # the first step drops it, silently
        +0 expect state ESTABLISHED
        +0 expect drop TCP_OUT_OF_WINDOW 1
        end strict 1
        """
    )


def test_established_rst_at_rcv_nxt_with_any_ack_resets() -> None:
    # The RST bit is checked before the ACK field: a bad ACK does not save the connection.
    result = run(
        PASSIVE_OPEN
        + """
        +0.01 < R. 1:1(0) ack 5000 win 0
        +0 expect state CLOSED
        +0 expect error ECONNRESET
        end strict 1
        """
    )
    assert transitions(connection_of(result))[-1][1:] == (
        "ESTABLISHED",
        "CLOSED",
        "RST in ESTABLISHED",
    )


# -- fourth: check the SYN bit -----------------------------------------------------------------
def test_syn_received_in_window_syn_returns_to_listen() -> None:
    _, created = run_recording("""
        0 listen 8080
        +0 < S 0:0(0) win 65535 <mss 1460>
        +0 > S. 0:0(0) ack 1 <mss 1460>
        +0.01 < S 10:10(0) win 65535 <mss 1460>   # in the window: RFC 9293 back to LISTEN
        +0 expect drop TCP_SYN_IN_WINDOW 1
        +0 accept ?
        +1 < S 20:20(0) win 65535 <mss 1460>      # the listener takes a new SYN
        +0 > S. 0:0(0) ack 21 <mss 1460>
    """)
    first, second = created[:2]
    assert transitions(first)[-1][1:] == (
        "SYN-RECEIVED",
        "CLOSED",
        "SYN in SYN-RECEIVED: back to LISTEN",
    )
    assert second.irs == 20


# -- fifth: check the ACK field ----------------------------------------------------------------
def test_syn_received_bad_ack_answered_with_rst_seq_seg_ack() -> None:
    result = run("""
        0 listen 8080
        +0 < S 0:0(0) win 65535 <mss 1460>
        +0 > S. 0:0(0) ack 1 <mss 1460>
        +0.01 < . 1:1(0) ack 5000 win 65535       # acks what we never sent
        +0 > R 5000:5000(0) win 0                 # <SEQ=SEG.ACK><CTL=RST>
        +0 expect drop TCP_BAD_ACK 1
        +0.99 > S. 0:0(0) ack 1 <mss 1460>        # still SYN-RECEIVED: the SYN-ACK again
        +0.01 < . 1:1(0) ack 1 win 65535
        +0 accept
        +0 expect state ESTABLISHED
    """)
    assert [t[2] for t in transitions(connection_of(result))] == ["SYN-RECEIVED", "ESTABLISHED"]


# -- seventh: process the segment text; eighth: check the FIN bit ------------------------------
def test_established_ack_text_fin_in_one_segment_processed_in_order() -> None:
    result = run(
        PASSIVE_OPEN
        + """
        +0 write 50
        +0 > P. 1:51(50) ack 1
        +0.01 < FP. 1:101(100) ack 51 win 65535   # acks our data, brings data, then FIN
        +0 > . 51:51(0) ack 102
        +0 expect info unacked 0
        +0 expect state CLOSE-WAIT
        +0 read 100
        +0 read eof
        """
    )
    assert transitions(connection_of(result))[-1][1:] == (
        "ESTABLISHED",
        "CLOSE-WAIT",
        "FIN received",
    )


def test_established_out_of_order_data_and_fin_held_until_hole_fills() -> None:
    run(
        PASSIVE_OPEN
        + """
        +0.01 < FP. 101:201(100) ack 1 win 65535
        +0 > . 1:1(0) ack 1
        +0 expect state ESTABLISHED
        +0.01 < P. 1:101(100) ack 1 win 65535
        +0 > . 1:1(0) ack 202
        +0 expect state CLOSE-WAIT
        +0 read 200
        +0 read eof
        """
    )
