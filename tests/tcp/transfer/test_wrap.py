"""Data transfer across 2**32 (RFC 9293 3.4: sequence numbers are compared modulo 2**32).

pystack's ISN is forced to 2**32 - 3000 (its byte 3000 is sequence number 0) and the peer's to
2**32 - 2000 (its byte 2000 wraps). The peer's timestamp clock wraps too (RFC 7323 5.2: PAWS
compares TS values modulo 2**32 as well).
"""

from __future__ import annotations

import textwrap

from pystack.script import ScriptResult, ScriptRunner
from pystack.tcp.connection import TCPConnection
from pystack.tcp.settings import TCPSettings
from tests.helpers.scripts import run
from tests.tcp.transfer.handshakes import DUPACK_RECOVERY

MOD = 1 << 32
LOCAL_ISN = MOD - 3000
PEER_ISN = MOD - 2000

HANDSHAKE = """
    0 listen 8080
    +0 < S 0:0(0) win 65535 <mss 1460,sackOK,TS val 4294967200 ecr 0>
    +0 > S. 0:0(0) ack 1 win 65535 <mss 1460,sackOK,TS val * ecr 4294967200>
    +0.1 < . 1:1(0) ack 1 win 65535 <nop,nop,TS val 4294967290 ecr *>
    +0 accept
"""


def run_near_the_wrap(
    script: str, tcp_settings: TCPSettings | None = None
) -> tuple[ScriptResult, TCPConnection]:
    runner = ScriptRunner(
        textwrap.dedent(script), peer_isn_offset=PEER_ISN, tcp_settings=tcp_settings
    )
    runner.stack.tcp.sequence.isn = lambda *_: LOCAL_ISN  # type: ignore[method-assign]
    result = runner.run()
    connection = result.connection
    assert isinstance(connection, TCPConnection)
    assert connection.iss == LOCAL_ISN and connection.irs == PEER_ISN
    return result, connection


def test_transfer_both_ways_across_the_wrap_with_sack_recovery_and_reassembly() -> None:
    _, connection = run_near_the_wrap(
        HANDSHAKE
        + """
        +0 write 15000
        +0 > . 1:1449(1448) ack 1 <nop,nop,TS val * ecr 4294967290>
        +0 > . 1449:2897(1448) ack 1
        +0 > . 2897:4345(1448) ack 1                # this one holds sequence number 0
        +0 > . 4345:5793(1448) ack 1
        +0 > . 5793:7241(1448) ack 1
        +0 > . 7241:8689(1448) ack 1
        +0 > . 8689:10137(1448) ack 1
        +0 > . 10137:11585(1448) ack 1
        +0 > . 11585:13033(1448) ack 1
        +0 > . 13033:14481(1448) ack 1
        +0.1 < . 1:1(0) ack 1449 win 65535 <nop,nop,TS val 4294967295 ecr *>
        # 1449:2897 is lost; SACK blocks across the wrap, TS vals after theirs
        +0 < . 1:1(0) ack 1449 win 65535 <nop,nop,TS val 3 ecr *,nop,nop,sack 2897:4345>
        +0 < . 1:1(0) ack 1449 win 65535 <nop,nop,TS val 4 ecr *,nop,nop,sack 2897:5793>
        +0 < . 1:1(0) ack 1449 win 65535 <nop,nop,TS val 5 ecr *,nop,nop,sack 2897:7241>
        +0 > . 1449:2897(1448) ack 1 <nop,nop,TS val * ecr 5>      # only the hole
        +0 expect info in_recovery True
        +0.1 < . 1:1(0) ack 14481 win 65535 <nop,nop,TS val 10 ecr *>
        +0 > P. 14481:15001(520) ack 1 <nop,nop,TS val * ecr 10>
        +0 expect info in_recovery False
        # the peer's bytes cross its wrap at 2000, out of order
        +0.1 < . 1:1001(1000) ack 15001 win 65535 <nop,nop,TS val 20 ecr *>
        +0 < . 2001:3001(1000) ack 15001 win 65535 <nop,nop,TS val 21 ecr *>
        +0 > . 15001:15001(0) ack 1001 <nop,nop,TS val * ecr 20,nop,nop,sack 2001:3001>
        +0 < . 1001:2001(1000) ack 15001 win 65535 <nop,nop,TS val 22 ecr *>
        +0 > . 15001:15001(0) ack 3001 <nop,nop,TS val * ecr 22>
        +0 read 3000
        +0 expect drop TCP_PAWS 0
        +0 expect counter tcp.retransmits 1
        end strict 3
        """
    )
    assert connection.snd_una == (LOCAL_ISN + 15001) % MOD == 12001
    assert connection.rcv_nxt == (PEER_ISN + 3001) % MOD == 1001


def test_rto_retransmits_the_segment_that_straddles_the_wrap() -> None:
    run_near_the_wrap(
        HANDSHAKE
        + """
        +0 write 4344
        +0 > . 1:1449(1448) ack 1
        +0 > . 1449:2897(1448) ack 1
        +0 > P. 2897:4345(1448) ack 1               # on the wire: 4294967193 to 1345
        +0.1 < . 1:1(0) ack 2897 win 65535 <nop,nop,TS val 4294967295 ecr *>
        +1 > . 2897:4345(1448) ack 1                # the RTO: the same bytes
        +0.1 < . 1:1(0) ack 4345 win 65535 <nop,nop,TS val 100 ecr *>
        +0 expect info unacked 0
        +0 expect drop TCP_ACK_UNSENT 0
        end strict 3
        """,
        tcp_settings=DUPACK_RECOVERY,  # the RTO path, without RACK-TLP
    )


def test_window_edge_that_lands_exactly_on_zero_is_still_an_advertised_edge() -> None:
    # The SYN-ACK offers 1000 bytes from RCV.NXT = 2**32 - 1000, so the advertised right edge
    # (RCV.ADV) is sequence number 0. It is a real edge: after 700 unread bytes the window still
    # offered is 300 and must not shrink (RFC 9293 3.8.6.2.2). Code that took RCV.ADV = 0 for
    # "nothing advertised yet" saw no offered window, and its receiver SWS avoidance answered
    # with a zero window instead.
    peer_isn = MOD - 1001
    result = run(
        """
        0 listen 8080
        +0 < S 0:0(0) win 65535 <mss 1460>
        +0 > S. 0:0(0) ack 1 win 1000 <mss 1460>
        +0.01 < . 1:1(0) ack 1 win 65535
        +0 accept
        +0 < P. 1:701(700) ack 1 win 65535
        +0.04 > . 1:1(0) ack 701 win 300
        +0 < P. 701:1001(300) ack 1 win 65535    # the rest of the offered window is accepted
        +0.04 > . 1:1(0) ack 1001 win 0
        +0 expect drop TCP_BEYOND_WINDOW 0
        +0 expect info receive_buffered 1000
        end strict 3
        """,
        peer_isn_offset=peer_isn,
        tcp_settings=TCPSettings(receive_buffer=1000),
    )
    connection = result.connection
    assert isinstance(connection, TCPConnection)
    assert connection.irs == peer_isn and connection.rcv_nxt == 0  # (peer_isn + 1001) % 2**32
