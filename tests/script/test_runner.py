"""The runner end to end against pystack's TCP, and the failure reports it writes."""

from __future__ import annotations

import random
import textwrap

import pytest

from pystack.clock import ManualClock
from pystack.link.base import LinkKind
from pystack.link.memory import MemoryLink
from pystack.script import ScriptFailure, ScriptRunner
from pystack.script.matching import MASK
from pystack.stack import Stack, StackConfig
from pystack.tcp.settings import TCPSettings
from pystack.tcp.state import TCPState
from tests.helpers.scripts import run

HANDSHAKE = """
    0 listen 8080
    +0 < S 0:0(0) win 65535 <mss 1460>
    +0 > S. 0:0(0) ack 1 <mss 1460>
    +0.01 < . 1:1(0) ack 1 win 65535
    +0 accept
"""

PASSIVE_OPEN_DATA_CLOSE = (
    HANDSHAKE
    + """
    +0 expect state ESTABLISHED
    +0 < P. 1:1001(1000) ack 1 win 65535
    +0.04 > . 1:1(0) ack 1001             # the delayed ACK
    +0 read 1000
    +0 write 100
    +0 > P. 1:101(100) ack 1001
    +0.01 < . 1001:1001(0) ack 101 win 65535
    +0 < F. 1001:1001(0) ack 101 win 65535
    +0 > . 101:101(0) ack 1002
    +0 read eof
    +0 expect state CLOSE-WAIT
    +0 close
    +0 > F. 101:101(0) ack 1002
    +0.01 < . 1002:1002(0) ack 102 win 65535
    +0 expect state CLOSED
"""
)


@pytest.mark.parametrize("offset", [0, 2**32 - 100, 2**31])
def test_passive_open_data_and_close(offset: int) -> None:
    result = run(PASSIVE_OPEN_DATA_CLOSE, peer_isn_offset=offset)
    connection = result.connection
    assert connection is not None and connection.state is TCPState.CLOSED
    assert getattr(connection, "irs", None) == offset & MASK  # the peer's ISN on the wire
    assert "0.05 > . 1:1(0) ack 1001" in result.trace
    assert result.clock.now() == pytest.approx(0.07)


def test_active_open_with_syn_retransmission() -> None:
    run("""
        0 connect 10.0.0.1:9000
        +0 > S 0:0(0) <mss 1460,sackOK,TS val * ecr 0,nop,wscale *>
        +1 > S 0:0(0) <...>                      # RFC 6298: initial RTO 1 s
        +0.1 < S. 0:0(0) ack 1 win 65535 <mss 1460>
        +0 > . 1:1(0) ack 1
        +0 expect state ESTABLISHED
        +0 write "hello"
        +0 > P. 1:6(5) ack 1
        end strict 0.5
    """)


def test_syn_to_a_port_without_listener_gets_rst() -> None:
    run("""
        0 < S 0:0(0) win 65535
        +0 > R. 0:0(0) ack 1 win 0
        +0 expect drop TCP_NO_LISTENER 1
        +0 expect counter tcp.resets_sent 1
        +0.5 < . 1:1(0) ack 5000 win 65535      # RFC 9293 3.10.7.1: RST takes the ACK as seq
        +0 > R 5000:5000(0)
        end strict
    """)


def test_timestamps_echo_and_wildcards() -> None:
    run("""
        0 listen 8080
        +0 < S 0:0(0) win 65535 <mss 1460,sackOK,TS val 100 ecr 0,nop,wscale 7>
        +0 > S. 0:0(0) ack 1 <mss 1460,sackOK,TS val * ecr 100,nop,wscale *>
        +0.01 < . 1:1(0) ack 1 win 257 <nop,nop,TS val 101 ecr $>
        +0 accept
        +0 < P. 1:11(10) ack 1 win 257 <nop,nop,TS val 102 ecr *>
        +0.04 > . 1:1(0) ack 11 <nop,nop,TS val * ecr $>
    """)


def test_tolerance_range_and_any_time() -> None:
    run(
        HANDSHAKE
        + """
        tolerance 0.01
        +0 < P. 1:11(10) ack 1 win 65535
        +0.045 > . 1:1(0) ack 11                 # at 0.04, within the tolerance
        +0 < P. 11:21(10) ack 1 win 65535
        +0.03~+0.05 > . 1:1(0) ack 21
        +0 < P. 21:31(10) ack 1 win 65535
        * > . 1:1(0) ack 31
        """
    )


def test_ports_directive_and_fixed_local_port() -> None:
    run("""
        ports 5555 80
        0 listen 80
        +0 < S 7:7(0) win 65535
        +0 > S. 0:0(0) ack 8
        0.5 connect 10.0.0.1:9000 from 40000
        +0 > S 0:0(0) <...>
    """)


def test_icmp_port_unreachable_aborts_syn_sent() -> None:
    run("""
        0 connect 10.0.0.1:9000
        +0 > S 0:0(0) <...>
        +0.1 < icmp unreachable port
        +0 expect state CLOSED
        +0 expect error ECONNREFUSED
    """)


def test_icmp_fragmentation_needed_lowers_the_segment_size() -> None:
    result = run(
        HANDSHAKE
        + """
        +0 write 1400
        +0 > P. 1:1401(1400) ack 1
        +0.01 < icmp unreachable need-frag mtu 1200
        +0 > . 1:1161(1160) ack 1                # RFC 1191: MTU 1200 - 40 bytes of headers
        +0.01 < . 1:1(0) ack 1161 win 65535
        +0 > P. 1161:1401(240) ack 1             # the rest, once Nagle allows it
        +0 expect counter tcp.path_mtu_lowered 1
        """
    )
    assert "quoting > P. 1:1401(1400) ack 1 win 65535 (its first 548 bytes)" in result.trace


def test_call_may_be_required_to_fail() -> None:
    run(
        HANDSHAKE
        + """
        +0 close
        +0 > F. 1:1(0) ack 1
        +0 write 10 = EPIPE
        """
    )


def test_step_by_step() -> None:
    runner = ScriptRunner("0 listen 8080\n+0 < S 0:0(0)\n+0 > S. 0:0(0) ack 1 <...>\n")
    first = runner.step()
    assert first is not None and first.number == 1
    assert runner.step() is not None and len(runner.pending) == 1
    assert runner.step() is not None and not runner.pending
    assert runner.step() is None and runner.finished
    assert [entry.line for entry in runner.result().events] == [1, 2, 3]


def test_settings_and_config_overrides_reach_the_stack() -> None:
    result = run(
        """
        0 connect 10.0.0.1:9000
        +0 > S 0:0(0) <...>
        +2 > S 0:0(0) <...>
        """,
        config_overrides={"mtu": 1000},
        tcp_settings=TCPSettings(initial_rto=2.0),
    )
    assert "<mss 960," in result.trace


def test_runner_over_a_world_built_by_the_test() -> None:
    link, wire = MemoryLink.pair(kind=LinkKind.IP)
    stack = Stack(StackConfig(address="10.0.0.2/24"), link, ManualClock(5.0), random.Random(3))
    result = ScriptRunner("+1 < S 0:0(0)\n+0 > R. 0:0(0) ack 1\n", stack=stack, wire=wire).run()
    assert result.stack is stack and result.clock.now() == 6.0
    with pytest.raises(ValueError, match="needs its wire"):
        ScriptRunner("", stack=stack)


# failures -------------------------------------------------------------------------------------
def failure(script: str, **options: object) -> ScriptFailure:
    with pytest.raises(ScriptFailure) as caught:
        run(script, **options)
    return caught.value


def test_wrong_script_fails_with_a_readable_report() -> None:
    error = failure(
        HANDSHAKE
        + """
        +0 < P. 1:1001(1000) ack 1 win 65535
        +0.04 > . 1:1(0) ack 1000    # wrong: pystack acknowledges all 1000 bytes
        """
    )
    lines = str(error).splitlines()
    assert lines[0] == "script line 9: pystack's packet differs from the line"
    assert (
        lines[1] == "    +0.04 > . 1:1(0) ack 1000    # wrong: pystack acknowledges all 1000 bytes"
    )
    assert lines[2] == "  expected: 0.05 > . 1:1(0) ack 1000"
    assert lines[3].startswith("  actual:   0.05 > . 1:1(0) ack 1001 win ")
    assert lines[4:6] == ["  - ack: expected 1000, got 1001", "last events:"]
    assert lines[6] == "  0 listen 8080  # line 2"
    assert lines[-1].startswith("  0.05 > . 1:1(0) ack 1001 win ")
    assert lines[-1].endswith("# line 9: mismatch")
    assert error.line is not None and error.line.number == 9
    assert error.details == ("ack: expected 1000, got 1001",)


def test_missing_packet() -> None:
    error = failure(HANDSHAKE + "+0 < P. 1:11(10) ack 1 win 65535\n+0 > . 1:1(0) ack 11\n")
    assert str(error).startswith("script line 8: pystack sent nothing\n    +0 > . 1:1(0) ack 11\n")
    assert error.expected == "0.01 > . 1:1(0) ack 11" and error.actual == "nothing"


def test_packet_at_the_wrong_time() -> None:
    error = failure(
        HANDSHAKE + "+0 < P. 1:11(10) ack 1 win 65535\n+0.03~+0.035 > . 1:1(0) ack 11\n"
    )
    assert error.reason == "pystack sent nothing"  # the ACK comes at +0.04, after the range
    error = failure("0 listen 8080\n+0 < S 0:0(0)\n+0.1 > S. 0:0(0) ack 1 <...>\n")
    assert error.reason == "wrong time"  # the SYN-ACK left at once
    assert error.details == ("time: sent at 0, expected 0.1",)


def test_packet_the_script_does_not_expect() -> None:
    error = failure("0 connect 10.0.0.1:9000\n")
    assert error.reason == "pystack sent a packet the script does not expect (the script has ended)"
    assert error.actual is not None and " > S 0:0(0) win " in error.actual
    error = failure("0 connect 10.0.0.1:9000\n+0 > S 0:0(0) <...>\nend strict 3\n")
    assert "'end strict 3' wants quiet" in error.reason
    assert error.actual is not None and error.actual.startswith("1 > S 0:0(0)")
    error = failure("0 connect 10.0.0.1:9000\n+1 write 5\n")
    assert "(the next line, at 1, is not '>')" in error.reason


@pytest.mark.parametrize(
    ("tail", "reason"),
    [
        ("+0 expect state CLOSED", "state is ESTABLISHED, expected CLOSED"),
        ("+0 expect error ECONNRESET", "error is none, expected ECONNRESET"),
        ("+0 expect counter tcp.resets_sent 1", "counter tcp.resets_sent is 0, expected 1"),
        (
            "+0 expect counter tcp.no_such_counter 0",
            "unknown counter 'tcp.no_such_counter': declare it in pystack/counters.py",
        ),
        ("+0 expect drop TCP_OUT_OF_WINDOW 2", "drop count TCP_OUT_OF_WINDOW is 0, expected 2"),
        ("+0 read 10", "read 0 bytes, expected 10"),
        ("+0 read eof", "expected end of stream, but the peer's FIN has not arrived"),
        ("+0 accept", "no connection ready to accept (write 'accept ?' if that is fine)"),
        ("+0 write 5 = ECONNRESET", "the call succeeded, expected it to fail with ECONNRESET"),
        ("+0 < . 1:1(0) ack 1 <TS val 1 ecr $>", "'ecr *' but pystack has sent no TS val yet"),
        ("0 write 1", "time 0 is before the current time 0.01"),
    ],
)
def test_failed_expectations_and_calls(tail: str, reason: str) -> None:
    error = failure(HANDSHAKE + tail + "\n")
    assert error.reason == reason
    assert error.line is not None and error.line.text == tail


def test_read_checks_the_bytes_the_peer_sent() -> None:
    error = failure(HANDSHAKE + "+0 < P. 1:11(10) ack 1 win 65535\n+0 read 5\n+0 read 10\n")
    assert error.reason == "read 5 bytes, expected 10"


def test_read_0_checks_that_nothing_is_readable() -> None:
    error = failure(HANDSHAKE + "+0 < P. 1:11(10) ack 1 win 65535\n+0 read 0\n")
    assert error.reason == "read 0 bytes, but 10 were readable"
    hole = "+0 < P. 11:21(10) ack 1 win 65535\n+0 > . 1:1(0) ack 1 <...>\n+0 read 0\n"
    run(HANDSHAKE + hole)  # the 10 bytes after the hole are not readable yet


def test_payload_must_be_what_the_application_wrote() -> None:
    runner = ScriptRunner(textwrap.dedent(HANDSHAKE) + "+0 write 5\n+0 > P. 1:6(5) ack 1\n")
    while runner.index < len(runner.lines) - 1:
        runner.step()
    runner.application.written[2] ^= 0xFF  # as if pystack had sent other bytes
    with pytest.raises(ScriptFailure) as caught:
        runner.step()
    assert caught.value.details == ("payload: byte 2 of the stream differs from what was written",)


def test_icmp_before_any_packet_from_pystack() -> None:
    error = failure("0 < icmp unreachable port\n")
    assert (
        error.reason == "an ICMP error quotes pystack's last TCP or UDP packet, but none was sent"
    )
