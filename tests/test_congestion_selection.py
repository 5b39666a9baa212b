"""Choosing the congestion control: per stack (``TCPSettings``, ``--congestion``), per connection
and per listener through the stack's socket API (usocket's TCP_CONGESTION: in
tests/usocket/test_congestion_option.py), and what ``tcp_info``, ``--stats`` and
``--trace=events`` show of it."""

from __future__ import annotations

import random
import re
from pathlib import Path

import pytest

from pystack.clock import ManualClock
from pystack.link.memory import MemoryLink
from pystack.services.stream import EchoService
from pystack.stack import Stack, StackConfig
from pystack.tcp.congestion import Cubic, NewReno
from pystack.tcp.settings import CongestionControlName, TCPSettings, congestion_control_name
from pystack.wire.addresses import ip_from_str
from tests.test_tracing import pystack

A, B = ip_from_str("10.0.0.1"), ip_from_str("10.0.0.2")


def pair(settings: TCPSettings | None = None) -> tuple[Stack, Stack, ManualClock]:
    """Two stacks on one in-memory wire (server 10.0.0.1, client 10.0.0.2)."""
    left, right = MemoryLink.pair()
    clock = ManualClock()
    tcp = settings or TCPSettings()
    server = Stack(StackConfig(address="10.0.0.1/24", tcp=tcp), left, clock, random.Random(1))
    client = Stack(StackConfig(address="10.0.0.2/24", tcp=tcp), right, clock, random.Random(2))
    return server, client, clock


def settle(clock: ManualClock, *stacks: Stack, rounds: int = 50) -> None:
    for _ in range(rounds):
        for stack in stacks:
            stack.poll(clock.now())
        clock.advance(0.001)


def test_names_parse_in_any_case_and_unknown_ones_list_the_known() -> None:
    assert congestion_control_name("CUBIC") is CongestionControlName.CUBIC
    assert congestion_control_name(CongestionControlName.NEWRENO) is CongestionControlName.NEWRENO
    with pytest.raises(ValueError, match=r"unknown congestion control 'vegas' \(known: newreno"):
        congestion_control_name("vegas")
    with pytest.raises(ValueError):
        congestion_control_name(13)  # type: ignore[arg-type]


def test_the_stack_setting_chooses_every_connections_algorithm() -> None:
    server, client, clock = pair(TCPSettings(congestion_control=CongestionControlName.CUBIC))
    listener = server.tcp_listen(7)
    connection = client.tcp_connect(A, 7, clock.now())
    settle(clock, server, client)
    accepted = listener.accept()
    assert accepted is not None
    assert isinstance(connection.congestion, Cubic) and isinstance(accepted.congestion, Cubic)
    assert connection.tcp_info()["congestion_control"] == "cubic"


def test_tcp_connect_and_tcp_listen_choose_per_connection() -> None:
    server, client, clock = pair()  # the stacks run NewReno
    listener = server.tcp_listen(7, congestion="cubic")
    plain = server.tcp_listen(8)
    cubic = client.tcp_connect(A, 7, clock.now(), congestion=CongestionControlName.CUBIC)
    reno = client.tcp_connect(A, 8, clock.now())
    settle(clock, server, client)
    assert isinstance(cubic.congestion, Cubic) and type(reno.congestion) is NewReno
    accepted, other = listener.accept(), plain.accept()
    assert accepted is not None and other is not None
    assert isinstance(accepted.congestion, Cubic)  # the listener's choice is inherited
    assert type(other.congestion) is NewReno
    info = accepted.tcp_info()
    assert info["congestion_control"] == "cubic"
    assert set(info["congestion_state"]) == {  # type: ignore[arg-type]
        "region",
        "w_max",
        "k",
        "w_est",
        "epoch_start",
        "cwnd_epoch",
    }
    assert other.tcp_info()["congestion_state"] == {}


def test_tcp_set_congestion_control_switches_a_live_connection_keeping_its_window() -> None:
    server, client, clock = pair()
    server.tcp_listen(7)
    connection = client.tcp_connect(A, 7, clock.now())
    settle(clock, server, client)
    cwnd, ssthresh = connection.congestion.cwnd, connection.congestion.ssthresh
    client.tcp_set_congestion_control(connection, "cubic")
    assert isinstance(connection.congestion, Cubic)
    assert (connection.congestion.cwnd, connection.congestion.ssthresh) == (cwnd, ssthresh)
    with pytest.raises(ValueError, match="unknown congestion control"):
        client.tcp_set_congestion_control(connection, "bbr")
    assert isinstance(connection.congestion, Cubic)  # unchanged by the refusal
    client.tcp_set_congestion_control(connection, CongestionControlName.NEWRENO)
    assert type(connection.congestion) is NewReno


def test_an_unknown_algorithm_is_refused_before_anything_is_sent() -> None:
    server, client, clock = pair()
    with pytest.raises(ValueError, match="unknown congestion control 'vegas'"):
        client.tcp_connect(A, 7, clock.now(), congestion="vegas")
    assert not client.tcp.connections
    with pytest.raises(ValueError):
        server.tcp_listen(7, congestion="vegas")
    assert not list(server.tcp_listening_on())


def test_a_service_can_choose_its_connections_algorithm() -> None:
    server, client, clock = pair()
    service = EchoService(server, 7, congestion="cubic")
    server.add_application(service)
    connection = client.tcp_connect(A, 7, clock.now())
    connection.send(b"hello", clock.now())
    settle(clock, server, client)
    assert connection.receive(100) == b"hello"
    (served,) = service.connections
    assert isinstance(served.congestion, Cubic)


# -- the command line ------------------------------------------------------------------------------
BULK = """
import socket
s = socket.socket()
s.connect(socket.getaddrinfo("10.0.0.1", 9)[0][-1])
s.write(b"x" * 200000)
s.close()
print("sent")
"""


def test_run_congestion_cubic_shows_in_stats_and_trace(tmp_path: Path) -> None:
    done = pystack(
        tmp_path,
        "run",
        "--congestion",
        "cubic",
        "--impair",
        "delay=10ms,drop=out:tcp:data:30",
        "--stats",
        "--trace=events",
        source=BULK,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "sent\n"
    err = done.stderr
    # The trace: the algorithm on the first event line, CUBIC's state with the new ssthresh.
    assert re.search(r"\* TCP .*: cwnd \d+, ssthresh \d+, rto [\d.]+ s, cubic \(slow start\)", err)
    entered = re.search(
        r"cwnd (\d+) -> \d+, ssthresh \d+ -> (\d+), recovery entered, cubic \(recovery, W_max (\d+), K",
        err,
    )
    assert entered is not None
    # ssthresh is cut to 0.7 of the window (cwnd itself then follows PRR, RFC 6937, down to it)
    before, ssthresh, w_max = (int(x) for x in entered.groups())
    assert w_max == before and ssthresh <= 0.7 * before + 1448
    # --stats: the column and the host's connection (in TIME-WAIT) running CUBIC.
    assert re.search(r"recv buf +congestion control", err)
    assert re.search(r"TIME-WAIT .* cubic \(", err)


@pytest.mark.parametrize("command", [["run"], ["up", "--netns", "pystack-never-created"]])
def test_an_unknown_congestion_option_is_status_2(
    command: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    from pystack.cli import main

    with pytest.raises(SystemExit) as raised:
        main([*command, "--congestion", "vegas", "x.py"])
    assert raised.value.code == 2
    err = capsys.readouterr().err
    assert "--congestion" in err and "invalid choice: 'vegas'" in err
