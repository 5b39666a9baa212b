"""Scripted-peer tests of the stack-wide limits (docs/policies.md, "TCP limits"): TIME-WAIT
recycling in a full table, refusals with RST, SYN cookies when the table is under pressure, and
the SYN-ACK retransmission schedule of a half-open entry. (A cookie's ACK meeting a full table:
``tests/tcp/test_limits.py``.)
"""

from __future__ import annotations

from pystack.tcp.settings import TCPSettings
from pystack.tcp.state import TCPState
from tests.helpers.scripts import run
from tests.tcp.scripts import PASSIVE_OPEN, connection_of, run_recording


def test_full_table_recycles_the_oldest_time_wait_for_a_new_connect() -> None:
    result, created = run_recording(
        PASSIVE_OPEN
        + """
        +0 close
        +0 > F. 1:1(0) ack 1
        +0.01 < F. 1:1(0) ack 2 win 65535
        +0 > . 2:2(0) ack 2
        +0 expect state TIME-WAIT
        +1 connect 10.0.0.1:9002 from 40000      # table full (1): TIME-WAIT gives way at once
        ports 9002 40000
        +0 > S 0:0(0) <mss 1460>
        +0 expect counter tcp.time_wait_recycled 1
        +0 expect drop TCP_CONNECTION_LIMIT 0
        """,
        tcp_settings=TCPSettings(
            max_connections=1, window_scaling=False, timestamps=False, sack=False
        ),
    )
    old, new = created
    assert old.state is TCPState.CLOSED
    assert old.transitions[-1].cause == "TIME-WAIT recycled: connection table full"
    assert connection_of(result) is new
    assert list(result.stack.tcp.connections.values()) == [new]  # type: ignore[attr-defined]
    assert not result.stack.tcp.time_wait  # type: ignore[attr-defined]


def test_full_table_without_time_wait_refuses_a_syn_with_rst() -> None:
    run(
        PASSIVE_OPEN
        + """
        ports 9001 8080
        +0 < S 0:0(0) win 65535 <mss 1460>        # max_connections 1, nothing to recycle
        +0 > R. *:*(0) ack 1 win 0
        +0 expect drop TCP_CONNECTION_LIMIT 1
        +0 expect counter tcp.connections_refused 1
        +0 expect counter tcp.time_wait_recycled 0
        """,
        tcp_settings=TCPSettings(max_connections=1),
    )


def test_cookie_ack_with_room_makes_the_connection_it_reports() -> None:
    result, created = run_recording(
        """
        0 listen 8080
        +0 < S 0:0(0) win 65535 <mss 1460>        # max_half_open 0: a cookie
        +0 > S. 0:0(0) ack 1 win 65535 <mss 1460>
        +0.01 < . 1:1(0) ack 1 win 65535
        +0 expect counter tcp.syn_cookies_accepted 1
        +0 accept
        +0 expect state ESTABLISHED
        """,
        tcp_settings=TCPSettings(max_half_open=0),
    )
    [connection] = created
    assert connection_of(result) is connection
    assert list(result.stack.tcp.connections.values()) == [connection]  # type: ignore[attr-defined]


def test_table_above_its_high_water_mark_answers_syns_with_cookies() -> None:
    # max_connections 8: high water at 7 entries. Seven SYNs get entries; the eighth a cookie.
    lines = ["0 listen 8080"]
    for port in range(9000, 9007):
        lines += [f"ports {port} 8080", "+0 < S 0:0(0) win 65535 <mss 1460>"]
        lines += ["+0 > S. 0:0(0) ack 1 <mss 1460>"]
    lines += [
        "ports 9007 8080",
        "+0 < S 0:0(0) win 65535 <mss 1460>",
        "+0 > S. 0:0(0) ack 1 win 65535 <mss 1460>",
        "+0 expect counter tcp.syn_cookies_sent 1",
        "+0 expect counter tcp.passive_opens 7",
        "+0.01 < . 1:1(0) ack 1 win 65535",  # the cookie completes: the eighth entry
        "+0 expect counter tcp.syn_cookies_accepted 1",
    ]
    result, created = run_recording(
        "\n".join(lines), isn=0, tcp_settings=TCPSettings(max_connections=8, syn_cookies=True)
    )
    assert len(created) == 8
    assert len(result.stack.tcp.connections) == 8  # type: ignore[attr-defined]


def test_half_open_entry_expires_after_synack_retries_with_backoff() -> None:
    # synack_retries 5 and an initial RTO of 1 s: SYN-ACKs at 0, 1, 3, 7, 15, 31; given up at 63.
    result, created = run_recording(
        """
        0 listen 8080
        +0 < S 0:0(0) win 65535 <mss 1460>
        +0 > S. 0:0(0) ack 1 <mss 1460>
        1 > S. 0:0(0) ack 1 <mss 1460>
        3 > S. 0:0(0) ack 1 <mss 1460>
        7 > S. 0:0(0) ack 1 <mss 1460>
        15 > S. 0:0(0) ack 1 <mss 1460>
        31 > S. 0:0(0) ack 1 <mss 1460>
        62.9 expect counter tcp.state.closed 0
        63 expect counter tcp.state.closed 1      # given up quietly: nothing was synchronized
        +0 expect counter tcp.syn_retransmits 5
        +0 expect counter tcp.timeouts 6
        end strict 200
        """,
        tcp_settings=TCPSettings(window_scaling=False, timestamps=False, sack=False),
    )
    [connection] = created
    assert connection.state is TCPState.CLOSED
    last = connection.transitions[-1]
    assert (last.time, last.cause) == (63.0, "retransmission limit (5) reached")
    [listener] = result.stack.tcp.listeners.values()  # type: ignore[attr-defined]
    assert not listener.syn_queue and listener.pending == 0


def test_a_syn_answered_with_a_cookie_recycles_nothing_its_ack_does() -> None:
    result, created = run_recording(
        PASSIVE_OPEN
        + """
        +0 close
        +0 > F. 1:1(0) ack 1
        +0.01 < F. 1:1(0) ack 2 win 65535
        +0 > . 2:2(0) ack 2
        ports 9001 8080
        +1 < S 0:0(0) win 65535 <mss 1460>        # table full of TIME-WAIT: a cookie
        +0 > S. 0:0(0) ack 1 win 65535 <mss 1460>
        +0 expect counter tcp.time_wait_recycled 0
        +0.01 < . 1:1(0) ack 1 win 65535          # a real handshake: now TIME-WAIT gives way
        +0 expect counter tcp.time_wait_recycled 1
        +0 expect counter tcp.syn_cookies_accepted 1
        +0 accept
        +0 expect state ESTABLISHED
        """,
        tcp_settings=TCPSettings(
            max_connections=1, window_scaling=False, timestamps=False, sack=False
        ),
    )
    old, new = created
    assert old.state is TCPState.CLOSED and connection_of(result) is new
