"""Every RFC 9293 state reached and left (3.3.2 figure 5, 3.5, 3.6, 3.10.7.1, RFC 1337).

The scripts that need only the notation and default settings are in the corpus
(scripts/tcp/handshake/, close/ and malformed/, run by tests/script/test_corpus.py); the tests here change a setting or
assert more than a script can.
"""

from __future__ import annotations

from pystack.tcp.settings import TCPSettings
from pystack.tcp.state import TCPState
from tests.helpers.scripts import run
from tests.tcp.scripts import (
    PASSIVE_OPEN,
    connection_of,
    run_recording,
    transitions,
)

SHORT_MSL = TCPSettings(msl=5.0)  # TIME-WAIT lasts 10 s


# -- opening ---------------------------------------------------------------------------------
def test_listen_syn_then_ack_passive_open_established() -> None:
    result = run(PASSIVE_OPEN)
    assert transitions(connection_of(result)) == [
        (0.0, "CLOSED", "SYN-RECEIVED", "SYN received by listener"),
        (0.01, "SYN-RECEIVED", "ESTABLISHED", "ACK of our SYN-ACK"),
    ]


def test_syn_sent_syn_retransmitted_with_backoff_1_2_4_then_established() -> None:
    result = run("""
        0 connect 10.0.0.1:9000
        +0 > S 0:0(0) <...>
        +0 expect state SYN-SENT
        +1 > S 0:0(0) <...>                       # RFC 6298 (2.1): initial RTO 1 s
        +2 > S 0:0(0) <...>                       # (5.5): back off, doubled
        +4 > S 0:0(0) <...>
        +0.5 < S. 0:0(0) ack 1 win 65535 <mss 1460>
        +0 > . 1:1(0) ack 1
        +0 expect state ESTABLISHED
        +0 expect info retransmits 3
    """)
    assert transitions(connection_of(result)) == [
        (0.0, "CLOSED", "SYN-SENT", "active open"),
        (7.5, "SYN-SENT", "ESTABLISHED", "SYN-ACK received"),
    ]


def test_syn_sent_no_answer_gives_up_after_syn_retries_etimedout() -> None:
    result = run(
        """
        0 connect 10.0.0.1:9000
        +0 > S 0:0(0) <...>
        +1 > S 0:0(0) <...>
        +2 > S 0:0(0) <...>
        +3.9 expect state SYN-SENT
        +0.1 expect state CLOSED                  # the third timeout, at 7 s: no RST, just gone
        +0 expect error ETIMEDOUT
        end strict 10
        """,
        tcp_settings=TCPSettings(syn_retries=2),
    )
    assert transitions(connection_of(result))[-1] == (
        7.0,
        "SYN-SENT",
        "CLOSED",
        "retransmission limit (2) reached",
    )


def test_syn_sent_crossing_syn_simultaneous_open_established() -> None:
    # RFC 9293 3.5 figure 8: both SYNs cross; each side answers with SYN-ACK.
    result = run("""
        0 connect 10.0.0.1:9000
        +0 > S 0:0(0) <...>
        +0.1 < S 0:0(0) win 65535 <mss 1460>      # the peer's SYN, without ACK
        +0 > S. 0:0(0) ack 1 <mss 1460>           # same ISN, options as the peer offered
        +0 expect state SYN-RECEIVED
        +0.1 < S. 0:0(0) ack 1 win 65535 <mss 1460>   # its SYN-ACK: acks our SYN
        +0 expect state ESTABLISHED
        +0 write 10
        +0 > P. 1:11(10) ack 1
        +0.01 < P. 1:6(5) ack 11 win 65535
        +0 read 5
        +0.04 > . 11:11(0) ack 6
    """)
    assert transitions(connection_of(result)) == [
        (0.0, "CLOSED", "SYN-SENT", "active open"),
        (0.1, "SYN-SENT", "SYN-RECEIVED", "SYN received in SYN-SENT (simultaneous open)"),
        (0.2, "SYN-RECEIVED", "ESTABLISHED", "ACK of our SYN-ACK"),
    ]


def test_syn_received_rst_returns_to_listen() -> None:
    result, created = run_recording("""
        0 listen 8080
        +0 < S 0:0(0) win 65535 <mss 1460>
        +0 > S. 0:0(0) ack 1 <mss 1460>
        +0.01 < R 1:1(0) win 0                    # RFC 9293 3.10.7.4: back to LISTEN
        +0 accept ?
        +0 expect counter tcp.resets_received 1
        +1 < S 500:500(0) win 65535 <mss 1460>    # the listener still answers
        +0 > S. 0:0(0) ack 501 <mss 1460>
        +0.01 < . 501:501(0) ack 1 win 65535
        +0 accept
        +0 expect state ESTABLISHED
        end strict 3                              # the reset connection retransmits nothing
    """)
    first, second = created
    assert transitions(first)[-1] == (0.01, "SYN-RECEIVED", "CLOSED", "RST in SYN-RECEIVED")
    assert first.error is None  # a passive open: nobody is told
    assert connection_of(result) is second
    assert 8080 in {port for _, port in result.stack.tcp.listeners}


def test_syn_received_no_ack_synack_retransmitted_then_silently_gone() -> None:
    result, created = run_recording(
        """
        0 listen 8080
        +0 < S 0:0(0) win 65535 <mss 1460>
        +0 > S. 0:0(0) ack 1 <mss 1460>
        +1 > S. 0:0(0) ack 1 <mss 1460>           # synack_retries 2: 1 s, then 2 s later
        +2 > S. 0:0(0) ack 1 <mss 1460>
        +4 accept ?                               # the third timeout at 7 s: gone, no RST
        +0 expect counter tcp.syn_retransmits 2
        +1 < . 1:1(0) ack 1 win 65535             # too late: the listener has no such handshake
        +0 > R 1:1(0)
        end strict 5
        """,
        tcp_settings=TCPSettings(synack_retries=2),
    )
    (connection,) = created
    assert connection.state is TCPState.CLOSED
    assert transitions(connection)[-1] == (
        7.0,
        "SYN-RECEIVED",
        "CLOSED",
        "retransmission limit (2) reached",
    )
    assert not result.stack.tcp.listeners[(0, 8080)].syn_queue


# -- closing -----------------------------------------------------------------------------------
def test_fin_wait_1_peer_fin_crosses_ours_closing_then_time_wait() -> None:
    result = run(
        PASSIVE_OPEN
        + """
        +0 close
        +0 > F. 1:1(0) ack 1
        +0 expect state FIN-WAIT-1
        +0.05 < F. 1:1(0) ack 1 win 65535         # its FIN does not ack ours: simultaneous close
        +0 > . 2:2(0) ack 2
        +0 expect state CLOSING
        +0.05 < . 2:2(0) ack 2 win 65535
        +0 expect state TIME-WAIT
        +10 expect state CLOSED
        """,
        tcp_settings=SHORT_MSL,
    )
    assert transitions(connection_of(result))[2:] == [
        (0.01, "ESTABLISHED", "FIN-WAIT-1", "close"),
        (0.06, "FIN-WAIT-1", "CLOSING", "FIN received (simultaneous close)"),
        (0.11, "CLOSING", "TIME-WAIT", "our FIN acknowledged in CLOSING"),
        (10.11, "TIME-WAIT", "CLOSED", "TIME-WAIT expired (2*MSL)"),
    ]


def test_fin_wait_1_fin_acking_ours_time_wait() -> None:
    result = run(
        PASSIVE_OPEN
        + """
        +0 close
        +0 > F. 1:1(0) ack 1
        +0.05 < F. 1:1(0) ack 2 win 65535
        +0 > . 2:2(0) ack 2
        +0 expect state TIME-WAIT
        """,
        tcp_settings=SHORT_MSL,
    )
    # The fifth step (ACK) moves to FIN-WAIT-2, the eighth (FIN) on to TIME-WAIT.
    assert transitions(connection_of(result))[-2:] == [
        (0.06, "FIN-WAIT-1", "FIN-WAIT-2", "our FIN acknowledged"),
        (0.06, "FIN-WAIT-2", "TIME-WAIT", "FIN received in FIN-WAIT-2"),
    ]


def test_fin_wait_2_after_shutdown_still_receives_data() -> None:
    result = run(
        PASSIVE_OPEN
        + """
        +0 write 100
        +0 > P. 1:101(100) ack 1
        +0 shutdown                               # half-close: our FIN follows the data
        +0 > F. 101:101(0) ack 1
        +0 expect state FIN-WAIT-1
        +0 write 1 = EPIPE
        +0.05 < . 1:1(0) ack 102 win 65535
        +0 expect state FIN-WAIT-2
        +0.1 < P. 1:1001(1000) ack 102 win 65535  # the peer goes on sending
        +0.04 > . 102:102(0) ack 1001
        +0 read 1000
        +0.1 < F. 1001:1001(0) ack 102 win 65535
        +0 > . 102:102(0) ack 1002
        +0 read eof
        +0 expect state TIME-WAIT
        +100 expect state CLOSED                  # after 2*MSL (60 s); no FIN-WAIT-2 timeout
        """
    )
    assert transitions(connection_of(result))[3:] == [
        (0.06, "FIN-WAIT-1", "FIN-WAIT-2", "our FIN acknowledged"),
        (0.3, "FIN-WAIT-2", "TIME-WAIT", "FIN received in FIN-WAIT-2"),
        (60.3, "TIME-WAIT", "CLOSED", "TIME-WAIT expired (2*MSL)"),
    ]


def test_fin_wait_2_after_shutdown_does_not_time_out() -> None:
    run(
        PASSIVE_OPEN
        + """
        +0 shutdown
        +0 > F. 1:1(0) ack 1
        +0.05 < . 1:1(0) ack 2 win 65535
        +30 expect state FIN-WAIT-2               # the application may still read: wait on
        """,
        tcp_settings=TCPSettings(fin_wait_2_timeout=10.0),
    )


def test_fin_wait_2_after_close_times_out() -> None:
    result = run(
        PASSIVE_OPEN
        + """
        +0 close
        +0 > F. 1:1(0) ack 1
        +0.05 < . 1:1(0) ack 2 win 65535
        +0 expect state FIN-WAIT-2
        +9.9 expect state FIN-WAIT-2
        +0.1 expect state CLOSED                  # fin_wait_2_timeout 10 s, silently
        +0 expect counter tcp.fin_wait_2_timeouts 1
        +1 < F. 1:1(0) ack 2 win 65535            # the peer's late FIN finds no connection
        +0 > R 2:2(0)
        """,
        tcp_settings=TCPSettings(fin_wait_2_timeout=10.0),
    )
    assert transitions(connection_of(result))[-1] == (
        10.06,
        "FIN-WAIT-2",
        "CLOSED",
        "FIN-WAIT-2 timeout",
    )


def test_close_wait_peer_fin_then_we_still_send_then_last_ack_closed() -> None:
    result = run(
        PASSIVE_OPEN
        + """
        +0.1 < F. 1:1(0) ack 1 win 65535          # the peer half-closes
        +0 > . 1:1(0) ack 2
        +0 expect state CLOSE-WAIT
        +0 read eof
        +0 write 200                              # we may still send
        +0 > P. 1:201(200) ack 2
        +0.05 < . 2:2(0) ack 201 win 65535
        +0 close
        +0 > F. 201:201(0) ack 2
        +0 expect state LAST-ACK
        +0.05 < . 2:2(0) ack 202 win 65535
        +0 expect state CLOSED
        +0 expect error none
        end strict 5
        """
    )
    assert transitions(connection_of(result))[2:] == [
        (0.11, "ESTABLISHED", "CLOSE-WAIT", "FIN received"),
        (0.16, "CLOSE-WAIT", "LAST-ACK", "close"),
        (0.21, "LAST-ACK", "CLOSED", "our FIN acknowledged in LAST-ACK"),
    ]


def test_established_close_with_unread_data_sends_rst() -> None:
    result = run(
        PASSIVE_OPEN
        + """
        +0 < P. 1:101(100) ack 1 win 65535
        +0 close                                  # 100 bytes never read: RFC 2525 2.17
        +0 > R. 1:1(0) ack 101 win 0
        +0 expect state CLOSED
        +0 expect counter tcp.closed_with_unread_data 1
        end strict 5
        """
    )
    assert transitions(connection_of(result))[-1][1:] == ("ESTABLISHED", "CLOSED", "abort")


def test_established_data_after_close_gets_rst() -> None:
    result = run(
        PASSIVE_OPEN
        + """
        +0 close
        +0 > F. 1:1(0) ack 1
        +0.05 < . 1:1(0) ack 2 win 65535
        +0 expect state FIN-WAIT-2
        +0.05 < P. 1:101(100) ack 2 win 65535     # nobody will read it
        +0 > R. 2:2(0) ack 1 win 0
        +0 expect state CLOSED
        +0 expect drop TCP_DATA_AFTER_CLOSE 1
        """
    )
    assert transitions(connection_of(result))[-1][1:] == (
        "FIN-WAIT-2",
        "CLOSED",
        "data after close",
    )


# -- TIME-WAIT ---------------------------------------------------------------------------------
TIME_WAIT = (
    PASSIVE_OPEN
    + """
    +0 close
    +0 > F. 1:1(0) ack 1
    +0.01 < F. 1:1(0) ack 2 win 65535
    +0 > . 2:2(0) ack 2
    +0 expect state TIME-WAIT                     # at 0.02, until 10.02 (msl 5)
"""
)


def test_time_wait_lasts_2_msl_then_closed() -> None:
    result = run(
        TIME_WAIT
        + """
        +9.99 expect state TIME-WAIT
        +0.01 expect state CLOSED
        end strict 5
        """,
        tcp_settings=SHORT_MSL,
    )
    assert transitions(connection_of(result))[-1] == (
        10.02,
        "TIME-WAIT",
        "CLOSED",
        "TIME-WAIT expired (2*MSL)",
    )


def test_time_wait_retransmitted_fin_reacked_and_timer_restarted() -> None:
    result = run(
        TIME_WAIT
        + """
        +4 < F. 1:1(0) ack 2 win 65535            # our ACK was lost: the peer resends its FIN
        +0 > . 2:2(0) ack 2
        +0 expect state TIME-WAIT
        +9.99 expect state TIME-WAIT              # 2*MSL counted again from 4.02
        +0.01 expect state CLOSED
        """,
        tcp_settings=SHORT_MSL,
    )
    assert transitions(connection_of(result))[-1][0] == 14.02


def test_time_wait_rst_ignored_rfc_1337() -> None:
    run(
        TIME_WAIT
        + """
        +1 < R 1:1(0) win 0                       # exactly at RCV.NXT - 1: out of the window
        +1 < R 2:2(0) win 0                       # at RCV.NXT: RFC 1337 says ignore it all the same
        +0 expect state TIME-WAIT
        +0 expect drop TCP_RST_IN_TIME_WAIT 1
        +0 expect drop TCP_OUT_OF_WINDOW 1
        +0 expect counter tcp.resets_received 0
        +7.99 expect state TIME-WAIT
        +0.01 expect state CLOSED                 # the 2*MSL wait ran its full course
        """,
        tcp_settings=SHORT_MSL,
    )


def test_time_wait_new_syn_with_higher_seq_reuses_the_4_tuple() -> None:
    result, created = run_recording(
        TIME_WAIT
        + """
        +1 < S 100000:100000(0) win 65535 <mss 1460>   # RFC 9293 3.10.7.4 note, RFC 6191
        +0 > S. 0:0(0) ack 100001 <mss 1460>      # a new connection from the listener
        +0.01 < . 100001:100001(0) ack 1 win 65535
        +0 accept
        +0 expect state ESTABLISHED
        """,
        tcp_settings=SHORT_MSL,
    )
    old, new = created
    assert transitions(old)[-1] == (
        1.02,
        "TIME-WAIT",
        "CLOSED",
        "new SYN reuses the TIME-WAIT 4-tuple",
    )
    assert connection_of(result) is new and new.remote_port == old.remote_port


def test_time_wait_old_syn_gets_ack_and_no_new_connection() -> None:
    _, created = run_recording(
        TIME_WAIT
        + """
        +1 < S 0:0(0) win 65535 <mss 1460>         # below RCV.NXT: an old duplicate
        +0 > . 2:2(0) ack 2
        +0 expect state TIME-WAIT
        +0 expect drop TCP_OUT_OF_WINDOW 1
        """,
        tcp_settings=SHORT_MSL,
    )
    assert len(created) == 1
