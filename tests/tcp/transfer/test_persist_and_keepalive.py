"""The persist timer (zero-window probes, RFC 9293 3.8.6.1, and the SWS override timeout of
3.8.6.2.1) and keepalive (RFC 1122 4.2.3.6). Handshakes end at 0.1 s with RTO 1 s.

The scripts that need only the notation and default settings are in the corpus
(scripts/tcp/data/, run by tests/script/test_corpus.py); the tests here change a setting or
assert more than a script can.
"""

from __future__ import annotations

from pystack.script import ScriptRunner
from pystack.tcp.settings import TCPSettings
from tests.tcp.transfer.handshakes import PLAIN, step_through

KEEPALIVE = TCPSettings(keepalive_idle=10.0, keepalive_interval=2.0, keepalive_probes=3)


def keepalive_on(runner: ScriptRunner) -> None:
    connection = runner.result().connection
    assert connection is not None
    connection.set_keepalive(True, runner.clock.now())  # type: ignore[attr-defined]


# -- keepalive ---------------------------------------------------------------------------------
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
