"""The runner with UDP datagrams, ICMP echoes and errors both ways, and ``set`` settings."""

from __future__ import annotations

import random

import pytest

from pystack.clock import ManualClock
from pystack.link.base import LinkKind
from pystack.link.memory import MemoryLink
from pystack.script import ScriptFailure, ScriptRunner
from pystack.script.settings import SettingError, configure
from pystack.stack import Stack, StackConfig
from tests.helpers.scripts import run

UDP_EXCHANGE = """
    0 udp bind 8080
    +0.1 < udp 9000>8080 (10)
    +0 udp recvfrom 10 from 10.0.0.1:9000
    +0 udp sendto 10.0.0.1:9000 "hello"
    +0 > udp 8080>9000 "hello"
    +0 udp recvfrom * = EAGAIN
"""


def failure(text: str) -> ScriptFailure:
    with pytest.raises(ScriptFailure) as error:
        run(text)
    return error.value


def test_a_udp_exchange_runs_and_is_traced() -> None:
    result = run(UDP_EXCHANGE)
    trace = result.trace
    assert "0.1 < udp 9000>8080 (10)  # line 3" in trace
    assert "0.1 udp recvfrom 10 from 10.0.0.1:9000  # line 4: 10 bytes from 10.0.0.1:9000" in trace
    assert '0.1 > udp 8080>9000 "hello"  # line 6' in trace
    assert "raised EAGAIN" in trace


def test_a_datagram_with_other_bytes_fails_the_recvfrom() -> None:
    error = failure("""
        0 udp bind 8080
        +0 < udp 9000>8080 "abc"
        +0 udp recvfrom 3
    """)
    assert error.line is not None and error.line.number == 4
    assert error.reason.startswith("the datagram from 10.0.0.1:9000 differs: payload: byte 0")


def test_a_datagram_from_someone_else_fails_the_recvfrom() -> None:
    error = failure("""
        0 udp bind 8080
        +0 < udp 9001>8080 (1)
        +0 udp recvfrom 1 from 10.0.0.1:9000
    """)
    assert error.reason == "the datagram came from 10.0.0.1:9001, expected 10.0.0.1:9000"


def test_an_outbound_udp_line_checks_ports_and_payload() -> None:
    error = failure("""
        0 udp bind 8080
        +0 udp sendto 10.0.0.1:9000 4
        +0 > udp 8081>9000 (5)
    """)
    assert error.reason == "pystack's packet differs from the line"
    assert error.actual == "0 > udp 8080>9000 (4)"
    assert error.details == ("source port: expected 8081, got 8080", "payload: 4 bytes, expected 5")


def test_a_tcp_line_meeting_a_datagram_says_so() -> None:
    error = failure("""
        0 udp bind 8080
        +0 udp sendto 10.0.0.1:9000 1
        +0 > S 0:0(0)
    """)
    assert error.reason == "pystack sent something other than TCP"
    assert error.actual == "0 > udp 8080>9000 (1)"


def test_an_unexpected_datagram_is_shown_in_notation() -> None:
    error = failure("""
        0 udp bind 8080
        +0 udp sendto 10.0.0.1:9000 "x"
        +1 udp close
    """)
    assert error.actual == '0 > udp 8080>9000 "x"'


def test_a_datagram_to_a_closed_port_gets_port_unreachable() -> None:
    result = run("""
        0 < udp 9000>7 (4)
        +0 > icmp unreachable port
        +0 expect counter udp.received 1
        +0 expect counter udp.delivered 0
    """)
    assert "0 > icmp unreachable port  # line 3" in result.trace
    error = failure("""
        0 < udp 9000>7 (4)
        +0 > icmp unreachable host
    """)
    assert error.details == ("type: expected unreachable host, got unreachable port",)


def test_ping_is_answered_with_the_same_id_seq_and_data() -> None:
    run("""
        0 < icmp echo id 7 seq 1 (56)
        +0 > icmp echo-reply id 7 seq 1 (56)
        +1 < icmp echo id 7 seq 2 "ping"
        +0 > icmp echo-reply id * seq 2 "ping"
    """)
    error = failure("""
        0 < icmp echo id 7 seq 1 (56)
        +0 > icmp echo-reply id 8 seq 1 (55)
    """)
    assert error.details == ("id: expected 8, got 7", "payload: 56 bytes, expected 55")
    assert error.actual == "0 > icmp echo-reply id 7 seq 1 (56)"


def test_an_icmp_error_quoting_udp_reaches_the_connected_socket_once() -> None:
    result = run("""
        0 udp bind 8080
        +0 udp connect 10.0.0.1:9000
        +0 udp send 3
        +0 > udp 8080>9000 (3)
        +0.01 < icmp unreachable port of udp
        +0 udp recvfrom * = ECONNREFUSED
        +0 udp recvfrom * = EAGAIN
    """)
    assert "< icmp unreachable port of udp  # line 6: quoting > udp 8080>9000 (3)" in result.trace


def test_the_error_quotes_the_last_tcp_or_udp_packet_or_the_one_asked_for() -> None:
    script = """
        0 listen 8080
        +0 < S 0:0(0) win 65535
        +0 > S. 0:0(0) ack 1
        +0 udp bind 5000
        +0 udp sendto 10.0.0.1:9000 1
        +0 > udp 5000>9000 (1)
        +0 < icmp unreachable port
        +0 < icmp unreachable port of tcp
    """
    trace = run(script).trace
    assert "< icmp unreachable port  # line 8: quoting > udp 5000>9000 (1)" in trace
    assert "of tcp  # line 9: quoting > S. 0:0(0) ack 1 win 65535" in trace
    error = failure("0 < icmp unreachable port of udp\n")
    assert error.reason == "an ICMP error quotes pystack's last UDP packet, but none was sent"


def test_udp_calls_need_a_socket_and_only_one() -> None:
    assert failure("0 udp recvfrom *\n").reason == (
        "no UDP socket yet: open one with 'udp bind PORT' first"
    )
    error = failure("0 udp bind 1\n+0 udp bind 2\n")
    assert error.reason == "the script's UDP socket is open already ('udp close' first)"
    run("0 udp bind 1\n+0 udp close\n+0 udp bind 1\n")  # closing frees the port


def test_bind_to_a_taken_port_fails_with_eaddrinuse() -> None:
    run("0 udp bind 0\n")  # an ephemeral port
    error = failure("0 udp bind 53\n+0 udp close\n+0 udp bind 53 = EADDRINUSE\n")
    assert error.reason == "the call succeeded, expected it to fail with EADDRINUSE"


# settings -------------------------------------------------------------------------------------
SYN = """
    0 listen 8080
    +0 < S 0:0(0) win 65535 <mss 1460,sackOK,TS val 1 ecr 0,nop,wscale 7>
"""


def test_settings_change_what_pystack_offers() -> None:
    run(SYN + "+0 > S. 0:0(0) ack 1 <mss 1460,sackOK,TS val * ecr 1,nop,wscale *>\n")
    run(
        "set sack off\nset timestamps off\nset wscale off\nset mss 1000\n"
        + SYN
        + "+0 > S. 0:0(0) ack 1 <mss 1000>\n"
    )


def test_set_initial_rto_times_the_first_retransmission() -> None:
    run("""
        set initial_rto 0.25
        0 connect 10.0.0.1:9000
        +0 > S 0:0(0) <...>
        +0.25 > S 0:0(0) <...>
        +0 abort
    """)


def test_settings_argument_and_lines_combine_and_a_line_wins() -> None:
    text = "set sack off\n" + SYN + "+0 > S. 0:0(0) ack 1 <mss 1000,TS val * ecr 1,nop,wscale *>\n"
    run(text, settings={"sack": "on", "mss": "1000"})


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"ecn": "on"}, "set ecn: the pystack target has no such setting (congestion_control,"),
        ({"sack": "maybe"}, "set sack maybe: bad value (on|off"),
        ({"mss": "10"}, "set mss 10: must be 28..65495"),
        ({"initial_rto": "-1"}, "set initial_rto -1: bad value"),
        ({"initial_rto": "100"}, "initial_rto <= max_rto"),
        ({"congestion_control": "bbr"}, "set congestion_control bbr: bad value (newreno|cubic"),
    ],
)
def test_bad_settings_are_one_clear_error(settings: dict[str, str], message: str) -> None:
    with pytest.raises(SettingError) as error:
        configure(settings)
    assert message in str(error.value)


def test_the_congestion_control_setting_picks_the_algorithm() -> None:
    assert configure({"congestion_control": "cubic"})["tcp"].congestion_control.value == "cubic"


def test_a_bad_set_line_stops_the_run_before_it_starts() -> None:
    with pytest.raises(SettingError):
        run("set nagle off\n0 listen 80\n")


def test_settings_need_a_stack_the_runner_makes() -> None:
    link, wire = MemoryLink.pair(kind=LinkKind.IP)
    stack = Stack(StackConfig(address="10.0.0.2/24"), link, ManualClock(), random.Random(1))
    with pytest.raises(ValueError, match="'set' lines configure a stack the runner makes"):
        ScriptRunner("set sack off\n0 listen 80\n", stack=stack, wire=wire)
