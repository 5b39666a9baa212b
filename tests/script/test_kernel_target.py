"""The kernel target (pystack/script/kernel.py): scripts run against Linux in a namespace.

The kernel tests follow tests/kernel's rules (the ``kernel`` fixture skips without root, TUN or
namespaces, and fails instead under PYSTACK_REQUIRE_KERNEL=1). Their scripts allow a generous
``tolerance``: they check what the kernel sends and answers, not how fast a loaded machine is.
The tests at the top need no kernel: they check what is refused before anything is created.
"""

from __future__ import annotations

import errno
import os
import socket
import textwrap
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import SimpleNamespace

import pytest

from pystack.netns import NAME_PREFIX, list_namespaces
from pystack.script import ScriptFailure, ScriptResult, parse_script, run_script
from pystack.script.events import ScriptLine, TimeSpec
from pystack.script.kernel import (
    KERNEL_SETTINGS,
    KERNEL_UNSETTABLE,
    KernelScriptRunner,
    KernelTarget,
    KernelTargetError,
    run_kernel_script,
    socket_options,
    sysctl_values,
)
from pystack.script.settings import PYSTACK_SETTINGS

TOLERANCE = 0.5  # seconds; see the module docstring

PASSIVE_OPEN = """
    0 listen 8080
    +0 < S 0:0(0) win 65535 <mss 1460>
    +0 > S. 0:0(0) ack 1 <mss 1460>
    +0.01 < . 1:1(0) ack 1 win 65535
    +0 accept
    +0 expect state ESTABLISHED
"""


def kernel_run(text: str, settings: Mapping[str, str] | None = None) -> ScriptResult:
    return run_kernel_script(textwrap.dedent(text), settings, tolerance=TOLERANCE)


def my_namespaces() -> list[str]:
    """Namespaces this test process created (other processes may be making their own)."""
    mine = f"{NAME_PREFIX}{os.getpid()}-"
    return [name for name in list_namespaces() if name.startswith(mine)]


@dataclass(frozen=True)
class FakeScriptFile:
    """The fields of ``files.ScriptFile`` the kernel target reads."""

    path: str
    text: str
    lines: tuple[ScriptLine, ...]
    settings: Mapping[str, str] = field(default_factory=dict)


# -- refused before any namespace exists (no kernel needed) -----------------------------------
def test_settings_map_to_namespace_sysctls() -> None:
    assert sysctl_values({"sack": "off", "timestamps": "on", "wscale": "off"}) == {
        "net.ipv4.tcp_sack": "0",
        "net.ipv4.tcp_timestamps": "1",
        "net.ipv4.tcp_window_scaling": "0",
    }
    assert sysctl_values({"mss": "536"}) == {}  # a socket option, not a sysctl


def test_every_pystack_setting_maps_to_linux_or_is_refused_with_a_reason() -> None:
    # A name the pystack target knows must not fall through to "no such setting" on Linux.
    for name in PYSTACK_SETTINGS:
        assert (name in KERNEL_SETTINGS) != (name in KERNEL_UNSETTABLE), name
    assert sysctl_values(
        {
            "min_rto": "0.2",
            "max_rto": "60",
            "syn_retries": "3",
            "synack_retries": "2",
            "rack_tlp": "off",
            "dsack": "on",
        }
    ) == {
        "net.ipv4.tcp_rto_min_us": "200000",
        "net.ipv4.tcp_rto_max_ms": "60000",
        "net.ipv4.tcp_syn_retries": "3",
        "net.ipv4.tcp_synack_retries": "2",
        "net.ipv4.tcp_recovery": "0",  # RACK off ...
        "net.ipv4.tcp_early_retrans": "0",  # ... and the tail loss probe with it
        "net.ipv4.tcp_dsack": "1",
    }
    assert socket_options(
        {
            "mss": "536",
            "receive_buffer": "4096",
            "send_buffer": "8192",
            "congestion_control": "newreno",
        }
    ) == [
        (socket.IPPROTO_TCP, socket.TCP_MAXSEG, 536),
        (socket.SOL_SOCKET, socket.SO_RCVBUF, 4096),
        (socket.SOL_SOCKET, socket.SO_SNDBUF, 8192),
        (socket.IPPROTO_TCP, socket.TCP_CONGESTION, b"reno"),  # per socket: see KERNEL_SETTINGS
    ]


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"initial_rto": "1"}, "set initial_rto: not settable on the kernel: Linux's initial RTO"),
        ({"delayed_ack": "0.2"}, "set delayed_ack: not settable on the kernel"),
        ({"nagle": "off"}, "set nagle: not a setting of the kernel target"),
        ({"sack": "maybe"}, "set sack maybe: bad value"),
        ({"mss": "big"}, "set mss big: bad value"),
        ({"max_rto": "500"}, "set max_rto 500: bad value .expected 1..120 seconds"),
        ({"congestion_control": "bbr"}, "set congestion_control bbr: bad value"),
    ],
)
def test_unknown_or_bad_setting_is_a_clear_error(settings: dict[str, str], message: str) -> None:
    with pytest.raises(KernelTargetError, match=message):
        run_kernel_script("0 listen 8080", settings)


def test_a_late_timer_is_allowed_an_eighth_of_its_length() -> None:
    # Linux's timer wheel: a 1 s timer may fire up to 1/8 s late; the early side stays tight.
    sandbox = SimpleNamespace(link=object())  # the window needs no kernel
    runner = KernelScriptRunner("", sandbox, tolerance=0.025)  # type: ignore[arg-type]
    low, high = runner._window(TimeSpec(relative=True, start=1.0))
    assert (low, high) == pytest.approx((0.975, 1.025 + 1.0 / 8))
    low, high = runner._window(TimeSpec(relative=True, start=0.0))
    assert (low, high) == pytest.approx((-0.025, 0.025))


# -- on the kernel -----------------------------------------------------------------------------
def test_passive_open_data_and_close_pass_on_the_kernel(kernel: None) -> None:
    result = kernel_run(
        PASSIVE_OPEN
        + """
        +0 < P. 1:101(100) ack 1 win 65535
        +0 > . 1:1(0) ack 101
        +0 read 100
        +0 write 50
        +0 > P. 1:51(50) ack 101
        +0 < . 101:101(0) ack 51 win 65535
        +0 close
        +0 > F. 51:51(0) ack 101
        +0 expect state FIN-WAIT-1
        +0 < F. 101:101(0) ack 52 win 65535
        +0 > . 52:52(0) ack 102
        +0 expect state TIME-WAIT
        """
    )
    assert result.target == "kernel"
    assert result.stack is None
    assert result.unobservable == []
    trace = result.trace
    assert "> P. 1:51(50) ack 101" in trace  # the kernel's segment, in the script's own numbers
    assert my_namespaces() == []


def test_active_open_maps_isn_port_and_tsval(kernel: None) -> None:
    # The kernel picks its ISN and a random TS val offset; the script numbers both from 0.
    result = kernel_run(
        """
        0 connect 10.0.0.1:9000 from 40000
        +0 > S 0:0(0) <mss 1460,sackOK,TS val 0 ecr 0,nop,wscale *>
        +0 expect state SYN-SENT
        +0.05 < S. 0:0(0) ack 1 win 65535 <mss 1460,sackOK,TS val 700 ecr 0,nop,wscale 7>
        +0 > . 1:1(0) ack 1 <nop,nop,TS val 50 ecr 700>
        +0 expect state ESTABLISHED
        +0 expect info timestamps True
        +0 write 10
        +0 > P. 1:11(10) ack 1 <nop,nop,TS val * ecr 700>
        +0 < . 1:1(0) ack 11 win 65535 <nop,nop,TS val 701 ecr 50>
        """
    )
    assert result.connection is not None and result.connection.local_port == 40000
    # The trace is in script numbers too: the kernel's SYN has TS val 0, its ISN is 0.
    [syn] = [entry for entry in result.events if entry.line == 3]
    assert syn.text.startswith("> S 0:0(0)") and "TS val 0 ecr 0" in syn.text


def test_active_open_from_an_ephemeral_port(kernel: None) -> None:
    result = kernel_run(
        """
        0 connect 10.0.0.1:9000
        +0 > S 0:0(0) <...>
        +0 < S. 0:0(0) ack 1 win 65535 <mss 1460>
        +0 > . 1:1(0) ack 1
        +0 expect state ESTABLISHED
        """
    )
    assert result.connection is not None
    assert result.connection.local_port not in (0, 8080)  # the kernel's choice, learned


def test_wrong_expectation_fails_with_a_readable_difference(kernel: None) -> None:
    with pytest.raises(ScriptFailure) as caught:
        kernel_run(
            """
            0 listen 8080
            +0 < S 0:0(0) win 65535 <mss 1460>
            +0 > S. 0:0(0) ack 1 win 0 <mss 1460>
            """
        )
    failure = caught.value
    assert failure.line is not None and failure.line.number == 4
    report = str(failure)
    assert "the kernel's packet differs from the line" in report
    assert "win: expected 0, got" in report  # (any open window would match: open or closed)
    assert failure.actual is not None and "> S. 0:0(0) ack 1 win" in failure.actual
    assert my_namespaces() == []


IN_WINDOW_RST = (
    PASSIVE_OPEN
    + """
    +0.01 < R 1000:1000(0) win 0          # in the window, but not RCV.NXT
    +0 > . 1:1(0) ack 1                   # the challenge ACK (RFC 5961 3.2)
    +0 expect state ESTABLISHED
    +0 expect counter tcp.challenge_acks_sent 1
    +0 expect error none
    +0.01 < R 1:1(0) win 0                # exactly RCV.NXT: the connection is reset
    +0 expect state CLOSED
    +0 expect error ECONNRESET
    """
)


def test_in_window_rst_with_wrong_seq_gets_a_challenge_ack_on_both_targets(kernel: None) -> None:
    run_script(textwrap.dedent(IN_WINDOW_RST))
    result = kernel_run(IN_WINDOW_RST)
    assert result.unobservable == []  # the counter is TcpExtTCPChallengeACK there


def test_settings_reach_the_kernel(kernel: None) -> None:
    syn_with_sack = """
        0 listen 8080
        +0 < S 0:0(0) win 65535 <mss 1460,sackOK>
        +0 > S. 0:0(0) ack 1 <mss 1460,nop,nop,sackOK>
    """
    kernel_run(syn_with_sack)
    with pytest.raises(ScriptFailure, match="options: expected <mss 1460,sackOK>, got <mss 1460>"):
        kernel_run(syn_with_sack, {"sack": "off"})
    kernel_run(syn_with_sack.replace(",nop,nop,sackOK>", ">"), {"sack": "off"})


def test_a_value_the_kernel_refuses_is_a_clear_error(kernel: None) -> None:
    with pytest.raises(KernelTargetError, match=r"sysctl net\.ipv4\.tcp_ecn=300: Invalid argument"):
        kernel_run("0 listen 8080", {"ecn": "300"})
    assert my_namespaces() == []


def test_blocking_calls_wait_while_the_script_goes_on(kernel: None) -> None:
    result = kernel_run(
        """
        0 listen 8080
        +0 accept                              # nothing yet: waits, the packets still flow
        +0 < S 0:0(0) win 65535 <mss 1460>
        +0 > S. 0:0(0) ack 1 <mss 1460>
        +0.01 < . 1:1(0) ack 1 win 65535
        +0 read 5                              # waits for the data below
        +0.01 < P. 1:6(5) ack 1 win 65535
        +0 > . 1:1(0) ack 6
        +0 expect state ESTABLISHED            # collects the read's result first
        """
    )
    notes = [entry.note for entry in result.events if entry.line in (3, 7)]
    assert notes[0] == "waits for its result" and notes[1].startswith("called at")
    assert notes[2] == "waits for its result" and notes[3].startswith("called at")


def test_a_call_that_never_returns_fails_at_its_own_line(kernel: None) -> None:
    with pytest.raises(ScriptFailure, match="the call still waits for its result") as caught:
        kernel_run(PASSIVE_OPEN + "+0 read 10\n")
    assert caught.value.line is not None and caught.value.line.text == "+0 read 10"
    assert "0 bytes readable" in str(caught.value)


def test_unobservable_expectations_are_listed_not_passed(kernel: None) -> None:
    result = kernel_run(
        PASSIVE_OPEN
        + """
        +0 expect counter tcp.bytes_acked 0
        +0 expect drop TCP_RST_NOT_EXACT 0
        +0 expect info cwnd 10
        +0 expect counter tcp.passive_opens 1
        """
    )
    unobservable = result.unobservable
    assert [entry.split(":")[0] for entry in unobservable] == ["line 9", "line 10", "line 11"]
    with pytest.raises(ScriptFailure, match=r"tcp.passive_opens \(kernel TcpPassiveOpens\) is 1"):
        kernel_run(PASSIVE_OPEN + "+0 expect counter tcp.passive_opens 2\n")


def test_kernel_target_runs_a_script_file(kernel: None) -> None:
    text = "0 listen 8080\n+0 < S 0:0(0) win 65535 <mss 1460,sackOK>\n+0 > S. 0:0(0) ack 1 <mss 1460>\n"
    script = FakeScriptFile("probe.pkt", text, parse_script(text), {"sack": "off"})
    target = KernelTarget(tolerance=TOLERANCE)
    assert target.name == "kernel"
    assert target.run(script).target == "kernel"


def test_namespace_and_device_removed_after_a_failure_or_interrupt(
    kernel: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    devices_before = {name for _, name in socket.if_nameindex()}
    with pytest.raises(ScriptFailure):
        kernel_run(PASSIVE_OPEN + "+0 expect state CLOSED\n")
    assert my_namespaces() == []

    original = KernelScriptRunner._execute

    def interrupted(self: KernelScriptRunner, line: ScriptLine) -> None:
        if line.number == 4:
            raise KeyboardInterrupt  # what Ctrl-C raises in the main thread
        original(self, line)

    monkeypatch.setattr(KernelScriptRunner, "_execute", interrupted)
    with pytest.raises(KeyboardInterrupt):
        kernel_run(PASSIVE_OPEN)
    assert my_namespaces() == []
    assert {name for _, name in socket.if_nameindex()} == devices_before


ICMP_SOFT_ERROR = (
    PASSIVE_OPEN
    + f"""
    +0 write 100
    +0 > P. 1:101(100) ack 1
    +0.05 < icmp unreachable host         # RFC 5461 4.1: soft in a synchronized state
    +0 expect state ESTABLISHED
    +0 expect error none
    +0 expect info soft_error {errno.EHOSTUNREACH}
    """
)


def test_icmp_error_on_a_live_connection_is_soft_on_both_targets(kernel: None) -> None:
    # Linux's SO_ERROR reports the soft error too; the target tells it apart by the state.
    run_script(textwrap.dedent(ICMP_SOFT_ERROR))
    kernel_run(ICMP_SOFT_ERROR)


def test_a_waiting_read_completes_short_when_the_peer_finishes(kernel: None) -> None:
    # 5 of 10 bytes, then the peer's FIN: no more can come, so the read returns what is there
    # and fails exactly as on pystack.
    with pytest.raises(ScriptFailure, match="read 5 bytes, expected 10") as caught:
        kernel_run(
            PASSIVE_OPEN
            + """
            +0 read 10
            +0.01 < P. 1:6(5) ack 1 win 65535
            +0 > . 1:1(0) ack 6
            +0.01 < F. 6:6(0) ack 1 win 65535
            +0.1 expect state CLOSE-WAIT
            """
        )
    assert caught.value.line is not None and caught.value.line.text == "+0 read 10"


def test_a_late_line_is_noted_at_its_own_entry(
    kernel: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = KernelScriptRunner._line_time

    def delayed(self: KernelScriptRunner, spec: object) -> float:
        when = original(self, spec)  # type: ignore[arg-type]
        if self._line is not None and self._line.number == 2:
            self.scheduled -= 1.0  # as if the line came a second (> TOLERANCE) after its time
        return when

    monkeypatch.setattr(KernelScriptRunner, "_line_time", delayed)
    result = kernel_run(PASSIVE_OPEN)
    [listen] = [entry for entry in result.events if entry.line == 2]
    assert listen.note.startswith("late by 100")


def test_udp_and_icmp_lines_run_on_a_kernel_udp_socket(kernel: None) -> None:
    result = kernel_run(
        """
        0 udp bind 7
        +0 < udp 9000>7 "hello"
        +0 udp recvfrom "hello" from 10.0.0.1:9000
        +0 udp sendto 10.0.0.1:9000 "hello"
        +0 > udp 7>9000 "hello"
        +0 udp recvfrom * = EAGAIN
        +0 < udp 9000>5000 (12)
        +0 > icmp unreachable port
        +0 < icmp echo id 7 seq 1 (56)
        +0 > icmp echo-reply id 7 seq 1 (56)
        +0 udp connect 10.0.0.1:9000
        +0 udp send 3
        +0 > udp 7>9000 (3)
        +0 < icmp unreachable port of udp
        +0 udp recvfrom * = ECONNREFUSED
        +0 udp close
        +0 expect counter udp.sent 2
        +0 expect counter icmp.echo_replies_sent 1
        +0 expect counter icmp.received.type8 1
        +0 expect counter icmp.errors_sent.type3 1
        """
    )
    assert result.unobservable == []  # every counter above has its kernel equivalent
    assert '> udp 7>9000 "hello"' in result.trace
    assert my_namespaces() == []


def test_a_setting_reaches_the_kernel_syn_retries(kernel: None) -> None:
    # Linux turns syn_retries into a time limit as if the timeouts doubled (1 + 2 s = 3 s) but
    # retransmits every 1 s (tcp_syn_linear_timeouts): SYNs at 0, 1, 2, gone at 3 s. With the
    # default (6) it would still be in SYN-SENT.
    kernel_run(
        """
        0 connect 10.0.0.1:9000
        +0 > S 0:0(0) <...>
        +1 > S 0:0(0) <...>
        +1 > S 0:0(0) <...>
        +1.5 expect state CLOSED
        +0 expect error ETIMEDOUT
        """,
        {"syn_retries": "1"},
    )
    assert my_namespaces() == []
