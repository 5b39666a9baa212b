"""The listen backlog (RFC 9293 3.10.7.2 plus Linux practice): the SYN queue and the accept queue,
their overflow policies, SYN cookies and the connection limit.

Scripts with several peers switch with ``ports PEER 8080``; where handshakes interleave, every
connection gets ISN 1000 (``run_recording(isn=...)``) so that one relative numbering fits all.
"""

from __future__ import annotations

from pystack.tcp.settings import AcceptOverflow, TCPSettings
from pystack.tcp.state import TCPState
from tests.helpers.scripts import run
from tests.tcp.scripts import connection_of, run_recording, transitions

FIXED_ISN = 1000


def test_listen_half_open_connections_do_not_fill_the_backlog() -> None:
    # The SYN queue (syn_queue) and the accept queue (backlog) are counted apart.
    result, created = run_recording(
        """
        0 listen 8080 backlog 1
        +0 < S 0:0(0) win 65535 <mss 1460>
        +0 > S. 0:0(0) ack 1 <mss 1460>
        ports 9001 8080
        +0.01 < S 0:0(0) win 65535 <mss 1460>
        +0 > S. 0:0(0) ack 1 <mss 1460>
        ports 9002 8080
        +0.01 < S 0:0(0) win 65535 <mss 1460>
        +0 > S. 0:0(0) ack 1 <mss 1460>
        +0 accept ?
        """
    )
    listener = result.stack.tcp.listeners[(0, 8080)]
    assert len(listener.syn_queue) == 3 and listener.pending == 0
    assert [c.state for c in created] == [TCPState.SYN_RECEIVED] * 3


def test_listen_accept_queue_full_syn_dropped() -> None:
    result = run("""
        0 listen 8080 backlog 1
        +0 < S 0:0(0) win 65535 <mss 1460>
        +0 > S. 0:0(0) ack 1 <mss 1460>
        +0.01 < . 1:1(0) ack 1 win 65535          # the accept queue is now full
        ports 9001 8080
        +0.01 < S 0:0(0) win 65535 <mss 1460>     # dropped: the peer will retry
        +0 expect drop TCP_ACCEPT_QUEUE_FULL 1
        +0.5 accept                               # room again
        +0.49 < S 0:0(0) win 65535 <mss 1460>     # the peer's retransmitted SYN, at 1 s
        +0 > S. 0:0(0) ack 1 <mss 1460>
        +0.01 < . 1:1(0) ack 1 win 65535
        +0 accept
        +0 expect state ESTABLISHED
    """)
    assert connection_of(result).remote_port == 9001


def test_listen_accept_queue_full_handshake_ack_dropped_synack_retransmitted() -> None:
    # AcceptOverflow.DROP (Linux tcp_abort_on_overflow = 0): the completing ACK is ignored,
    # the connection stays SYN-RECEIVED and its SYN-ACK retransmission asks for the ACK again.
    result, created = run_recording(
        """
        0 listen 8080 backlog 1
        +0 < S 0:0(0) win 65535 <mss 1460>
        +0 > S. 0:0(0) ack 1 <mss 1460>
        ports 9001 8080
        +0 < S 0:0(0) win 65535 <mss 1460>        # both SYNs fit: the accept queue is empty
        +0 > S. 0:0(0) ack 1 <mss 1460>
        ports 9000 8080
        +0.01 < . 1:1(0) ack 1 win 65535          # the first completes: accept queue full
        ports 9001 8080
        +0 < . 1:1(0) ack 1 win 65535             # no room: ignored
        +0 expect drop TCP_ACCEPT_QUEUE_FULL 1
        +0.5 accept                               # takes the first; room for the second
        +0 expect state ESTABLISHED
        1 > S. 0:0(0) ack 1 <mss 1460>            # only the second's SYN-ACK is retransmitted
        +0.01 < . 1:1(0) ack 1 win 65535
        +0 accept
        +0 expect state ESTABLISHED
        +0 < P. 1:11(10) ack 1 win 65535
        +0 read 10
        """,
        isn=FIXED_ISN,
    )
    first, second = created
    assert connection_of(result) is second and second.remote_port == 9001
    assert first.state is TCPState.ESTABLISHED
    assert transitions(second)[-1] == (1.01, "SYN-RECEIVED", "ESTABLISHED", "ACK of our SYN-ACK")


def test_listen_accept_queue_full_handshake_ack_reset_when_policy_is_reset() -> None:
    _, created = run_recording(
        """
        0 listen 8080 backlog 1
        +0 < S 0:0(0) win 65535 <mss 1460>
        +0 > S. 0:0(0) ack 1 <mss 1460>
        ports 9001 8080
        +0 < S 0:0(0) win 65535 <mss 1460>
        +0 > S. 0:0(0) ack 1 <mss 1460>
        ports 9000 8080
        +0.01 < . 1:1(0) ack 1 win 65535
        ports 9001 8080
        +0 < . 1:1(0) ack 1 win 65535             # no room: tcp_abort_on_overflow = 1
        +0 > R. 1:1(0) ack 1 win 0
        +0 expect drop TCP_ACCEPT_QUEUE_FULL 1
        end strict 3                              # nothing more for either connection
        """,
        isn=FIXED_ISN,
        tcp_settings=TCPSettings(accept_overflow=AcceptOverflow.RESET),
    )
    assert [c.state for c in created] == [TCPState.ESTABLISHED, TCPState.CLOSED]


# -- SYN queue full ----------------------------------------------------------------------------
COOKIE_SETTINGS = TCPSettings(syn_queue=1)


def test_listen_syn_queue_full_syn_cookie_handshake_established() -> None:
    result, created = run_recording(
        """
        0 listen 8080
        +0 < S 0:0(0) win 65535 <mss 1460>
        +0 > S. 0:0(0) ack 1 <mss 1460>           # the SYN queue (1) is now full
        ports 9001 8080
        +0.01 < S 0:0(0) win 65535 <mss 1460,sackOK,TS val 100 ecr 0,nop,wscale 7>
        +0 > S. 0:0(0) ack 1 win 65535 <mss 1460> # a cookie: only MSS, nothing remembered
        +0 expect counter tcp.syn_cookies_sent 1
        +0.01 < . 1:1(0) ack 1 win 65535          # the cookie comes back
        +0 expect counter tcp.syn_cookies_accepted 1
        +0 accept
        +0 expect state ESTABLISHED
        +0 expect info timestamps False
        +0 expect info sack False
        +0 expect info snd_wscale 0
        +0 < P. 1:101(100) ack 1 win 65535
        +0 read 100
        +0 write 50
        +0 > P. 1:51(50) ack 101
        +0.01 < . 101:101(0) ack 51 win 65535
        +0 expect info unacked 0
        """,
        tcp_settings=COOKIE_SETTINGS,
    )
    connection = connection_of(result)
    assert len(created) == 2 and created[1] is connection  # nothing existed before the ACK
    assert transitions(connection) == [(0.02, "CLOSED", "ESTABLISHED", "valid SYN cookie")]
    layer = result.stack.tcp
    peer = connection.remote_address
    local = connection.local_address
    # The ISN is the cookie of this SYN: it decodes to the MSS it was sent with.
    cookie = layer.sequence.check_cookie(
        connection.iss, local, 8080, peer, 9001, connection.irs, 0.02
    )
    assert cookie == 1460
    assert connection.iss == layer.sequence.cookie(
        local, 8080, peer, 9001, connection.irs, 1460, 0.01
    )


def test_listen_syn_cookie_ack_with_data_established_and_delivered() -> None:
    run(
        """
        0 listen 8080
        +0 < S 0:0(0) win 65535 <mss 1460>
        +0 > S. 0:0(0) ack 1 <mss 1460>
        ports 9001 8080
        +0.01 < S 0:0(0) win 65535 <mss 1000>
        +0 > S. 0:0(0) ack 1 <mss 1460>           # our own MSS, whatever the peer's
        +0.01 < P. 1:11(10) ack 1 win 65535       # the cookie ACK carries data
        +0 accept
        +0 read 10
        +0 expect info peer_mss 536               # MSS 1000 encoded as the largest step below
        """,
        tcp_settings=COOKIE_SETTINGS,
    )


def test_listen_forged_cookie_ack_gets_rst() -> None:
    run(
        """
        0 listen 8080
        +0 < S 0:0(0) win 65535 <mss 1460>
        +0 > S. 0:0(0) ack 1 <mss 1460>
        ports 9001 8080
        +0.01 < S 0:0(0) win 65535 <mss 1460>
        +0 > S. 0:0(0) ack 1 <mss 1460>
        +0.01 < . 1:1(0) ack 2 win 65535          # not the cookie we sent
        +0 > R 2:2(0) win 0                       # <SEQ=SEG.ACK><CTL=RST>
        +0 expect drop TCP_BAD_COOKIE 1
        ports 9002 8080
        +0 < . 1:1(0) ack 1 win 65535             # another port: no cookie was sent to it
        +0 > R 1:1(0) win 0
        +0 expect drop TCP_BAD_COOKIE 2
        +0 accept ?
        +0 expect counter tcp.syn_cookies_accepted 0
        """,
        tcp_settings=COOKIE_SETTINGS,
    )


def test_listen_stale_cookie_ack_gets_rst() -> None:
    run(
        """
        0 listen 8080
        +0 < S 0:0(0) win 65535 <mss 1460>
        +0 > S. 0:0(0) ack 1 <mss 1460>
        ports 9001 8080
        +0.01 < S 0:0(0) win 65535 <mss 1460>
        +0 > S. 0:0(0) ack 1 <mss 1460>
        ports 9000 8080
        +0.5 < R 1:1(0) win 0                     # the first peer gives up its handshake
        ports 9001 8080
        200 < . 1:1(0) ack 1 win 65535            # 200 s on, the cookie is too old (> 128 s)
        +0 > R 1:1(0) win 0
        +0 expect drop TCP_BAD_COOKIE 1
        +0 accept ?
        """,
        tcp_settings=COOKIE_SETTINGS,
    )


def test_listen_syn_queue_full_without_cookies_syn_dropped() -> None:
    run(
        """
        0 listen 8080
        +0 < S 0:0(0) win 65535 <mss 1460>
        +0 > S. 0:0(0) ack 1 <mss 1460>
        ports 9001 8080
        +0.01 < S 0:0(0) win 65535 <mss 1460>     # no room, no cookies: silently dropped
        +0 expect drop TCP_SYN_QUEUE_FULL 1
        +0 expect counter tcp.syn_cookies_sent 0
        +0.01 < . 1:1(0) ack 1 win 65535          # an ACK for no handshake: RST
        +0 > R 1:1(0) win 0
        +0 expect drop TCP_BAD_ACK 1
        """,
        tcp_settings=TCPSettings(syn_queue=1, syn_cookies=False),
    )


# -- connection limit --------------------------------------------------------------------------
def test_listen_connection_limit_syn_refused_with_rst() -> None:
    run(
        """
        0 listen 8080
        +0 < S 0:0(0) win 65535 <mss 1460>
        +0 > S. 0:0(0) ack 1 <mss 1460>
        +0.01 < . 1:1(0) ack 1 win 65535
        +0 accept
        ports 9001 8080
        +0 < S 0:0(0) win 65535 <mss 1460>        # max_connections 1: no room in the table
        +0 > R. *:*(0) ack 1 win 0                # refused at once (seq 0: no ISN of its own)
        +0 expect drop TCP_CONNECTION_LIMIT 1
        +0 expect counter tcp.connections_refused 1
        +0 connect 10.0.0.1:9002 = ENOBUFS        # an active open hits the same limit
        +0 expect drop TCP_CONNECTION_LIMIT 2
        """,
        tcp_settings=TCPSettings(max_connections=1),
    )
