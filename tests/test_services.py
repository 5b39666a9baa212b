"""The small TCP services (echo, discard, chargen, daytime) running in a simulated stack.

The services run on host ``a`` (started as ``pystack up --serve`` starts them, stepped inside
``Stack.poll``); clients on host ``b`` are ``StreamApp``s or hand-written loops. Everything runs
on the manual clock, so nothing sleeps; every run is bounded.
"""

from __future__ import annotations

import re

import pytest

from pystack.services.stream import (
    ChargenService,
    DaytimeService,
    DiscardService,
    EchoService,
    StreamService,
    parse_services,
    start_services,
)
from pystack.stack import Stack
from pystack.tcp.connection import TCPConnection
from pystack.tcp.state import TCPState
from pystack.wire.addresses import ip_from_str
from tests.helpers.tcp_transfer import A_ADDRESS, Network, StreamApp, pattern, run_apps, sha256

PRINTABLE = bytes(range(32, 127))  # RFC 864: the 95 printable ASCII characters


def rfc864_lines(count: int) -> bytes:
    """What RFC 864 describes, built independently: line i is 72 characters from offset i."""
    lines = []
    for index in range(count):
        start = index % len(PRINTABLE)
        line = bytes(PRINTABLE[(start + k) % len(PRINTABLE)] for k in range(72))
        lines.append(line + b"\r\n")
    return b"".join(lines)


@pytest.fixture
def net() -> Network:
    return Network()


def _connect(net: Network, port: int) -> TCPConnection:
    connection = net.b.tcp.connect(ip_from_str(A_ADDRESS), port, net.sim.now)
    # A service that sends and closes at once (daytime, chargen=N) may have us in CLOSE-WAIT.
    assert net.sim.run_until(lambda: connection.state is not TCPState.SYN_SENT, timeout=10.0)
    assert connection.state in (TCPState.ESTABLISHED, TCPState.CLOSE_WAIT), connection.state
    return connection


def _start_tcp(stack: Stack, spec: str) -> list[StreamService]:
    """``start_services``, keeping the TCP services (it may start UDP forms as well)."""
    return [s for s in start_services(stack, spec) if isinstance(s, StreamService)]


def _serve(stack: Stack, service: StreamService) -> StreamService:
    stack.add_application(service)
    return service


def _read_until(net: Network, connection: TCPConnection, size: int, timeout: float) -> bytes:
    """Read until ``size`` bytes arrived, EOF, or ``timeout`` virtual seconds passed."""
    got = bytearray()

    def ready() -> bool:
        got.extend(connection.receive(1 << 20))
        return len(got) >= size or connection.at_eof or connection.state is TCPState.CLOSED

    net.sim.run_until(ready, timeout)
    return bytes(got)


def _finish(net: Network, *apps: StreamApp, timeout: float = 1000.0) -> None:
    result = run_apps(net.sim, apps, timeout=timeout)
    assert result.completed, result


# -- echo (RFC 862) -------------------------------------------------------------------------
def test_echo_returns_a_small_message_exactly_then_closes_after_the_client(net: Network) -> None:
    [echo] = _start_tcp(net.a, "echo")
    client = StreamApp(_connect(net, 7), b"hello, echo\r\n")
    _finish(net, client)
    assert client.received == 13 and client.received_sha256 == sha256(b"hello, echo\r\n")
    assert net.run_until_closed([client.connection], timeout=200.0)
    assert echo.served == 1 and echo.bytes_in == echo.bytes_out == 13
    assert not echo.connections


def test_echo_returns_4mb_exactly_through_flow_control(net: Network) -> None:
    [echo] = _start_tcp(net.a, "echo")
    data = pattern(4_000_000, "echo")
    client = StreamApp(_connect(net, 7), data)
    _finish(net, client)
    assert client.received == len(data) and client.received_sha256 == sha256(data)
    assert echo.bytes_in == echo.bytes_out == len(data)


def test_echo_stops_reading_while_the_client_does_not_read(net: Network) -> None:
    # Echo reads only what it can send: with the client not reading, both directions fill up
    # and the client's send blocks; nothing is lost, and reading resumes everything.
    [echo] = _start_tcp(net.a, "echo")
    connection = _connect(net, 7)
    data = pattern(3_000_000, "blocked")
    sent = 0
    for _ in range(200):
        accepted = connection.send(data[sent : sent + 65536], net.sim.now)
        sent += accepted
        net.sim.run_for(0.5)
        if accepted == 0:
            break
    assert sent < len(data), "the client never blocked"
    capacity = connection.receive_buffer.capacity
    assert connection.readable == capacity  # our receive buffer is full ...
    assert echo.bytes_in == echo.bytes_out <= sent  # ... and echo held back its reads
    assert echo.bytes_out < len(data)
    client = StreamApp(connection, data)
    client.sent = sent
    _finish(net, client)
    assert client.received_sha256 == sha256(data)


# -- discard (RFC 863) ----------------------------------------------------------------------
def test_discard_accepts_everything_and_sends_nothing(net: Network) -> None:
    [discard] = _start_tcp(net.a, "discard")
    data = pattern(2_000_000, "discard")
    client = StreamApp(_connect(net, 9), data)
    _finish(net, client)
    assert client.received == 0  # EOF, no data
    assert discard.bytes_in == len(data) and discard.bytes_out == 0
    assert net.a.statistics()["counters"]["tcp.bytes_received"] == len(data)


# -- chargen (RFC 864) ----------------------------------------------------------------------
def test_chargen_pattern_is_72_character_lines_rotating_by_one(net: Network) -> None:
    start_services(net.a, "chargen")
    connection = _connect(net, 19)
    got = _read_until(net, connection, 95 * 74 * 2 + 1000, timeout=10.0)
    assert len(got) >= 95 * 74 * 2 + 1000
    lines = len(got) // 74
    assert got[: lines * 74] == rfc864_lines(lines)
    first_two = got[:148].split(b"\r\n")
    assert first_two[0] == bytes(range(32, 104)) and first_two[1] == bytes(range(33, 105))
    # The line after the 95th starts over with the first one.
    assert got[95 * 74 : 96 * 74] == got[:74]


def test_chargen_without_limit_runs_until_the_client_closes(net: Network) -> None:
    [chargen] = _start_tcp(net.a, "chargen")
    connection = _connect(net, 19)
    got = _read_until(net, connection, 1_000_000, timeout=10.0)
    assert len(got) >= 1_000_000 and not connection.at_eof
    connection.shutdown(net.sim.now)
    rest = bytearray()

    def drained() -> bool:
        rest.extend(connection.receive(1 << 20))
        return connection.at_eof

    assert net.sim.run_until(drained, timeout=10.0)
    assert connection.at_eof
    whole = got + rest
    assert whole == (rfc864_lines(len(whole) // 74 + 1))[: len(whole)]
    connection.close(net.sim.now)
    assert net.run_until_closed([connection], timeout=200.0)
    assert not chargen.connections


@pytest.mark.parametrize("limit", [0, 1, 73, 74, 1000, 95 * 74 * 3 + 5, 700_000])
def test_chargen_with_a_limit_sends_exactly_that_many_bytes_then_closes(
    net: Network, limit: int
) -> None:
    start_services(net.a, f"chargen={limit}")
    connection = _connect(net, 19)
    got = _read_until(net, connection, limit + 1, timeout=100.0)
    assert connection.at_eof, "chargen did not close"
    assert len(got) == limit
    assert got == rfc864_lines(limit // 74 + 1)[:limit]
    connection.close(net.sim.now)
    assert net.run_until_closed([connection], timeout=200.0)
    assert connection.error is None


def test_chargen_rejects_a_negative_limit(net: Network) -> None:
    with pytest.raises(ValueError, match="limit"):
        ChargenService(net.a, limit=-1)


# -- daytime (RFC 867) ----------------------------------------------------------------------
def test_daytime_sends_one_line_then_closes(net: Network) -> None:
    _serve(net.a, DaytimeService(net.a, clock=lambda: 86400 * 365 + 3723.5))
    connection = _connect(net, 13)
    got = _read_until(net, connection, 1000, timeout=10.0)
    assert connection.at_eof
    assert got == b"Friday, January 01, 1971 01:02:03-UTC\r\n"


def test_daytime_with_the_real_clock_has_the_rfc_867_shape(net: Network) -> None:
    start_services(net.a, "daytime")
    connection = _connect(net, 13)
    got = _read_until(net, connection, 1000, timeout=10.0)
    assert connection.at_eof
    day = r"(Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday)"
    month = (
        r"(January|February|March|April|May|June|July|August|September|October|November|December)"
    )
    assert re.fullmatch(rf"{day}, {month} \d\d, \d{{4}} \d\d:\d\d:\d\d-UTC\r\n", got.decode())


# -- spec parsing and several services at once ----------------------------------------------
def test_parse_services_reads_names_and_the_chargen_limit() -> None:
    assert parse_services("echo, discard ,chargen=1000,daytime") == [
        ("echo", None),
        ("discard", None),
        ("chargen", 1000),
        ("daytime", None),
    ]
    assert parse_services("chargen") == [("chargen", None)]
    assert parse_services("echo,") == [("echo", None)]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("", "no service"),
        (" , ,", "no service"),
        ("bogus", "unknown service"),
        ("echo,telnet", "unknown service"),
        ("Echo", "unknown service"),
        ("echo=5", "bad service argument"),
        ("daytime=1", "bad service argument"),
        ("chargen=x", "bad service argument"),
        ("chargen=-1", "bad service argument"),
        ("chargen=1.5", "bad service argument"),
    ],
)
def test_parse_services_rejects_bad_specs(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_services(spec)


def test_start_services_uses_the_well_known_ports(net: Network) -> None:
    services = _start_tcp(net.a, "echo,discard,chargen=10,daytime")
    assert [(s.name, s.port) for s in services] == [
        ("echo", 7),
        ("discard", 9),
        ("chargen", 19),
        ("daytime", 13),
    ]
    assert isinstance(services[0], EchoService) and isinstance(services[1], DiscardService)
    assert set(net.a.tcp.listeners) == {(0, 7), (0, 9), (0, 19), (0, 13)}
    assert isinstance(services[2], ChargenService) and services[2].limit == 10
    assert isinstance(services[3], DaytimeService)
    with pytest.raises(OSError):
        start_services(net.a, "echo")  # port 7 is taken


def test_several_clients_of_every_service_at_once(net: Network) -> None:
    echo, discard, chargen = _start_tcp(net.a, "echo,discard,chargen=50000")
    daytime = _serve(net.a, DaytimeService(net.a, clock=lambda: 0.0))
    now = net.sim.now
    target = ip_from_str(A_ADDRESS)
    echo_data = [pattern(100_000 + 5_000 * i, f"echo/{i}") for i in range(10)]
    echo_apps = [
        StreamApp(net.b.tcp.connect(target, 7, now), data, half_close=True) for data in echo_data
    ]
    discard_apps = [
        StreamApp(net.b.tcp.connect(target, 9, now), pattern(200_000, f"d/{i}")) for i in range(5)
    ]
    # chargen and daytime clients send nothing: they read until the service closes.
    chargen_apps = [
        StreamApp(net.b.tcp.connect(target, 19, now), half_close=False) for _ in "abcde"
    ]
    daytime_apps = [StreamApp(net.b.tcp.connect(target, 13, now), half_close=False) for _ in "abc"]
    apps = echo_apps + discard_apps + chargen_apps + daytime_apps
    _finish(net, *apps)
    for app, data in zip(echo_apps, echo_data, strict=True):
        assert app.received_sha256 == sha256(data)
    assert all(app.received == 0 for app in discard_apps)
    expected = sha256(rfc864_lines(50000 // 74 + 1)[:50000])
    assert all(app.received_sha256 == expected for app in chargen_apps)
    line = sha256(b"Thursday, January 01, 1970 00:00:00-UTC\r\n")
    assert all(app.received_sha256 == line for app in daytime_apps)
    assert (echo.served, discard.served, chargen.served, daytime.served) == (10, 5, 5, 3)
    assert discard.bytes_in == 5 * 200_000
    assert net.run_until_closed([app.connection for app in apps], timeout=200.0)
    for service in (echo, discard, chargen, daytime):
        service.step(net.sim.now)
        assert not service.connections
    assert net.a.statistics()["drops"] == {} and net.b.statistics()["drops"] == {}
