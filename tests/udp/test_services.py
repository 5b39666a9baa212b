"""The UDP forms of echo (RFC 862), discard (RFC 863) and daytime (RFC 867), run on stack ``b``
and used from stack ``a``; and ``start_services`` starting both the TCP and the UDP forms."""

from __future__ import annotations

import calendar
import random

import pytest

from pystack.link.base import LinkKind
from pystack.services.datagram import (
    DatagramDaytimeService,
    DatagramDiscardService,
    DatagramEchoService,
)
from pystack.services.stream import EchoService, start_services
from pystack.udp.endpoint import UDPEndpoint
from tests.sim.topology import B_IP, TwoHosts
from tests.udp.helpers import KINDS, hosts


def ask(net: TwoHosts, client: UDPEndpoint, port: int, data: bytes) -> list[bytes]:
    client.send_to(data, (B_IP, port), net.now)
    net.sim.run_for(0.1)
    answers = []
    while (datagram := client.receive()) is not None:
        assert datagram[1] == (B_IP, port)
        answers.append(datagram[0])
    return answers


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("size", [0, 1, 1472, 5000, 30000])
def test_echo_returns_each_datagram_exactly(kind: LinkKind, size: int) -> None:
    net = hosts(kind)
    service = DatagramEchoService(net.b)
    net.b.add_application(service)
    data = random.Random(size).randbytes(size)
    client = net.a.udp.open()
    assert ask(net, client, 7, data) == [data]
    assert (service.served, service.bytes_in, service.bytes_out) == (1, size, size)


def test_echo_answers_a_burst_larger_than_lwips_four_slots() -> None:
    net = hosts()
    net.b.add_application(DatagramEchoService(net.b))
    client = net.a.udp.open()
    client.set_queue_limit(64)
    for number in range(20):
        client.send_to(bytes([number]) * 10, (B_IP, 7), net.now)
    net.sim.run_for(0.1)
    answers = []
    while (datagram := client.receive()) is not None:
        answers.append(datagram[0])
    assert answers == [bytes([n]) * 10 for n in range(20)]


def test_echo_ignores_other_small_services_so_two_echoes_never_ping_pong() -> None:
    net = hosts()
    service = DatagramEchoService(net.b)
    net.b.add_application(service)
    other_echo = net.a.udp.open(0, 7)
    assert ask(net, other_echo, 7, b"loop?") == []
    assert service.ignored == 1 and service.served == 0


def test_discard_keeps_quiet_and_counts() -> None:
    net = hosts()
    service = DatagramDiscardService(net.b)
    net.b.add_application(service)
    client = net.a.udp.open()
    assert ask(net, client, 9, b"into the void") == []
    assert (service.served, service.bytes_in, service.bytes_out) == (1, 13, 0)


def test_daytime_answers_any_datagram_with_the_time() -> None:
    net = hosts()
    stamp = calendar.timegm((2026, 8, 1, 12, 34, 56, 0, 0, 0))
    service = DatagramDaytimeService(net.b, clock=lambda: stamp)
    net.b.add_application(service)
    client = net.a.udp.open()
    assert ask(net, client, 13, b"what time is it?") == [
        b"Saturday, August 01, 2026 12:34:56-UTC\r\n"
    ]
    assert ask(net, client, 13, b"") == [b"Saturday, August 01, 2026 12:34:56-UTC\r\n"]


def test_start_services_starts_tcp_and_udp_forms_on_the_same_ports() -> None:
    net = hosts()
    services = start_services(net.b, "echo,discard,chargen=10,daytime")
    kinds = [(s.name, s.port, type(s).__name__) for s in services]
    assert kinds == [
        ("echo", 7, "EchoService"),
        ("echo", 7, "DatagramEchoService"),
        ("discard", 9, "DiscardService"),
        ("discard", 9, "DatagramDiscardService"),
        ("chargen", 19, "ChargenService"),  # no UDP chargen here
        ("daytime", 13, "DaytimeService"),
        ("daytime", 13, "DatagramDaytimeService"),
    ]
    assert len(net.b.applications) == 7
    assert isinstance(services[0], EchoService)
    client = net.a.udp.open()
    assert ask(net, client, 7, b"both") == [b"both"]
    connection = net.a.tcp.connect(B_IP, 7, net.now)
    net.sim.run_for(0.5)
    connection.send(b"tcp too", net.now)
    net.sim.run_for(0.5)
    assert connection.receive(100) == b"tcp too"
    assert net.b.udp.endpoints()[0].local == (0, 7)
