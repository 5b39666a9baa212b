"""The persist timer (zero-window probes, RFC 9293 3.8.6.1, and the SWS override timeout of
3.8.6.2.1) and keepalive (RFC 1122 4.2.3.6). Handshakes end at 0.1 s with RTO 1 s."""

from __future__ import annotations

from pystack.script import ScriptRunner
from pystack.tcp.settings import TCPSettings
from tests.helpers.scripts import run
from tests.tcp.transfer.handshakes import PLAIN, TIMESTAMPS, step_through

KEEPALIVE = TCPSettings(keepalive_idle=10.0, keepalive_interval=2.0, keepalive_probes=3)


def keepalive_on(runner: ScriptRunner) -> None:
    connection = runner.result().connection
    assert connection is not None
    connection.set_keepalive(True, runner.clock.now())  # type: ignore[attr-defined]


# -- persist -----------------------------------------------------------------------------------
def test_zero_window_probes_back_off_until_the_window_opens() -> None:
    run(
        PLAIN
        + """
        +0 write 100
        +0 > P. 1:101(100) ack 1
        +0.1 < . 1:1(0) ack 101 win 0               # all taken, and the window closed
        +0 write 3000
        +1 > . 101:102(1) ack 1                     # one octet past the closed window
        +0.05 < . 1:1(0) ack 101 win 0              # refused
        +1.95 > . 101:102(1) ack 1                  # backed off: 2 s
        +4 > . 101:102(1) ack 1                     # 4 s
        +0 expect counter tcp.window_probes 3
        +1 < . 1:1(0) ack 101 win 65535             # the window update
        +0 > . 101:1561(1460) ack 1                 # from the left edge: the probed octet too
        +0 > . 1561:3021(1460) ack 1
        +0.1 < . 1:1(0) ack 3021 win 65535
        +0 > P. 3021:3101(80) ack 1                 # Nagle held the small rest until now
        +0.1 < . 1:1(0) ack 3101 win 65535
        end strict 5
        """
    )


def test_zero_window_probe_octet_taken_moves_the_edge() -> None:
    run(
        PLAIN
        + """
        +0 write 100
        +0 > P. 1:101(100) ack 1
        +0.1 < . 1:1(0) ack 101 win 0
        +0 write 1000
        +1 > . 101:102(1) ack 1
        +0.05 < . 1:1(0) ack 102 win 0              # the receiver took the octet
        +1.95 > . 102:103(1) ack 1                  # the next probe carries the next octet
        +0.05 < . 1:1(0) ack 102 win 65535
        +0 > P. 102:1101(999) ack 1
        """
    )


def test_probes_carry_timestamps() -> None:
    run(
        TIMESTAMPS
        + """
        +0 write 100
        +0 > P. 1:101(100) ack 1 <nop,nop,TS val * ecr 200>
        +0.1 < . 1:1(0) ack 101 win 0 <nop,nop,TS val 300 ecr *>
        +0 write 100
        +1 > . 101:102(1) ack 1 <nop,nop,TS val * ecr 300>
        """
    )


def test_a_small_window_is_used_after_the_override_timeout() -> None:
    run(
        PLAIN
        + """
        +0 write 1000
        +0 > P. 1:1001(1000) ack 1
        +0.1 < . 1:1(0) ack 1001 win 100            # far below half the largest window
        +0 write 3000                               # SWS avoidance: no 100-byte segment now
        +1 > . 1001:1101(100) ack 1                 # but not never: as much as fits
        +0 expect counter tcp.sws_override_sends 1
        +0.1 < . 1:1(0) ack 1101 win 65535
        +0 > . 1101:2561(1460) ack 1
        +0.1 < . 1:1(0) ack 2561 win 65535
        +0 > P. 2561:4001(1440) ack 1
        """
    )


# -- keepalive ---------------------------------------------------------------------------------
def test_keepalive_is_off_by_default() -> None:
    run(
        PLAIN
        + """
        +0 write 10
        +0 > P. 1:11(10) ack 1
        +0.1 < . 1:1(0) ack 11 win 65535
        end strict 8000                              # longer than keepalive_idle (7200 s)
        """
    )


def test_answered_keepalive_probes_keep_the_connection() -> None:
    result = step_through(
        PLAIN
        + """
        +0 write 10                                  # keepalive on
        +0 > P. 1:11(10) ack 1
        +0.1 < . 1:1(0) ack 11 win 65535
        +10 > . 10:10(0) ack 1                      # SEG.SEQ = SND.NXT - 1, no data
        +0.05 < . 1:1(0) ack 11 win 65535           # the answer
        +10 > . 10:10(0) ack 1                      # idle again: a new probe 10 s later
        +0.05 < . 1:1(0) ack 11 win 65535
        +0 expect state ESTABLISHED
        +0 expect counter tcp.keepalive_probes 2
        +5 write 10
        +0 > P. 11:21(10) ack 1
        """,
        {"keepalive on": keepalive_on},
        tcp_settings=KEEPALIVE,
    )
    assert result.connection is not None and result.connection.error is None


def test_unanswered_keepalive_probes_time_out_with_etimedout() -> None:
    step_through(
        PLAIN
        + """
        +0 write 10                                  # keepalive on
        +0 > P. 1:11(10) ack 1
        +0.1 < . 1:1(0) ack 11 win 65535
        +10 > . 10:10(0) ack 1
        +2 > . 10:10(0) ack 1                       # every keepalive_interval
        +2 > . 10:10(0) ack 1
        +2 > R. 11:11(0) ack 1 win 0                # three unanswered: give up
        +0 expect state CLOSED
        +0 expect error ETIMEDOUT
        +0 expect counter tcp.keepalive_timeouts 1
        +0 write 1 = ETIMEDOUT
        end strict 20
        """,
        {"keepalive on": keepalive_on},
        tcp_settings=KEEPALIVE,
    )
