"""Applications of a stack: ``Stack.add_application`` / ``remove_application``, the DHCP client a
host builder attaches, and services leaving their stack when they close."""

from __future__ import annotations

import random

import pytest

from pystack.clock import ManualClock
from pystack.dhcp.client import StackDHCPClient, dhcp_client
from pystack.dhcp.server import DHCPServerService, DHCPServerSettings
from pystack.dns.client import StackResolver
from pystack.dns.resolver import ResolverSettings
from pystack.host import build_stack
from pystack.link.base import LinkKind
from pystack.link.memory import MemoryLink
from pystack.services.datagram import DatagramEchoService
from pystack.services.http import HTTPService
from pystack.services.naming import DNSService
from pystack.services.stream import EchoService, start_services
from pystack.stack import Stack, StackConfig
from pystack.wire.addresses import ip_from_str


class Recorder:
    """An application that records its steps (in a shared list) and has a settable deadline."""

    def __init__(self, name: str, log: list[tuple[str, float]], deadline: float | None = None):
        self.name = name
        self.log = log
        self.deadline = deadline
        self.asked = 0

    def step(self, now: float) -> None:
        self.log.append((self.name, now))

    def next_deadline(self) -> float | None:
        self.asked += 1
        return self.deadline


def _stack(address: str = "10.0.0.2/24") -> Stack:
    link, _wire = MemoryLink.pair(LinkKind.ETHERNET, 1500)
    return Stack(StackConfig(address=address), link, ManualClock(), random.Random(1))


def test_applications_are_stepped_in_the_order_they_were_added() -> None:
    stack = _stack()
    log: list[tuple[str, float]] = []
    first, second, third = Recorder("a", log), Recorder("b", log), Recorder("c", log)
    for application in (first, second, third):
        stack.add_application(application)
    stack.poll(1.0)
    stack.poll(2.0)
    assert log == [("a", 1.0), ("b", 1.0), ("c", 1.0), ("a", 2.0), ("b", 2.0), ("c", 2.0)]
    assert stack.applications == (first, second, third)


def test_the_earliest_application_deadline_is_the_stacks() -> None:
    stack = _stack()
    log: list[tuple[str, float]] = []
    stack.poll(0.0)  # started; nothing else pending
    assert stack.next_deadline() is None
    stack.add_application(Recorder("late", log, 30.0))
    stack.add_application(Recorder("idle", log, None))
    stack.add_application(Recorder("soon", log, 7.5))
    assert stack.next_deadline() == 7.5


def test_a_removed_application_is_neither_stepped_nor_asked_for_deadlines() -> None:
    stack = _stack()
    log: list[tuple[str, float]] = []
    kept, removed = Recorder("kept", log, 50.0), Recorder("removed", log, 5.0)
    stack.add_application(kept)
    stack.add_application(removed)
    stack.poll(1.0)
    assert stack.next_deadline() == 5.0
    stack.remove_application(removed)
    asked = removed.asked
    stack.poll(2.0)
    assert stack.next_deadline() == 50.0
    assert log == [("kept", 1.0), ("removed", 1.0), ("kept", 2.0)]
    assert removed.asked == asked
    assert stack.applications == (kept,)
    stack.remove_application(removed)  # a second close: nothing happens
    assert stack.applications == (kept,)


def test_an_application_may_remove_itself_while_it_is_stepped() -> None:
    stack = _stack()
    log: list[tuple[str, float]] = []
    after = Recorder("after", log)

    class Once(Recorder):
        def step(self, now: float) -> None:
            super().step(now)
            stack.remove_application(self)

    stack.add_application(Once("once", log))
    stack.add_application(after)
    stack.poll(1.0)
    stack.poll(2.0)
    assert log == [("once", 1.0), ("after", 1.0), ("after", 2.0)]


def test_an_application_is_added_once() -> None:
    stack = _stack()
    application = Recorder("a", [])
    stack.add_application(application)
    with pytest.raises(ValueError):
        stack.add_application(application)


def test_find_application_finds_the_first_of_a_kind() -> None:
    stack = _stack()
    assert stack.find_application(Recorder) is None
    first, second = Recorder("a", []), Recorder("b", [])
    stack.add_application(first)
    stack.add_application(second)
    assert stack.find_application(Recorder) is first


def test_a_dhcp_address_gets_its_client_from_the_host_builder() -> None:
    link, _wire = MemoryLink.pair(LinkKind.ETHERNET, 1500)
    stack = build_stack(StackConfig(address="dhcp"), link, ManualClock(), random.Random(1))
    client = dhcp_client(stack)
    assert isinstance(client, StackDHCPClient) and stack.applications == (client,)
    assert stack.address == 0
    # A stack built directly is only the stack: nothing attaches itself.
    bare = Stack(StackConfig(address="dhcp"), link, ManualClock(), random.Random(1))
    assert dhcp_client(bare) is None and bare.applications == ()
    static = build_stack(StackConfig(address="10.0.0.2/24"), link, ManualClock())
    assert static.applications == ()


def test_closed_services_leave_their_stack() -> None:
    stack = _stack()
    services = start_services(stack, "echo,daytime,http,mqtt,dns")
    assert set(map(id, stack.applications)) == set(map(id, services))
    log: list[tuple[str, float]] = []
    last = Recorder("last", log)
    stack.add_application(last)
    for service in services:
        if not isinstance(service, DNSService):  # (answers only; it has no close)
            service.close(0.0)
    assert [type(a) for a in stack.applications] == [DNSService, Recorder]
    stack.poll(1.0)
    assert log == [("last", 1.0)]


@pytest.mark.parametrize("kind", ["echo", "udp-echo", "http", "dhcp-server"])
def test_a_closed_service_is_no_longer_stepped(kind: str) -> None:
    stack = _stack("10.0.0.1/24")
    service: EchoService | DatagramEchoService | HTTPService | DHCPServerService
    if kind == "echo":
        service = EchoService(stack)
    elif kind == "udp-echo":
        service = DatagramEchoService(stack)
    elif kind == "http":
        service = HTTPService(stack)
    else:
        address = ip_from_str("10.0.0.1")
        settings = DHCPServerSettings(address, (address + 1, address + 9), 24)
        service = DHCPServerService(stack, settings)
    if kind != "dhcp-server":  # (that one adds itself)
        stack.add_application(service)
    steps: list[float] = []
    original = service.step

    def counting(now: float) -> None:
        steps.append(now)
        original(now)

    service.step = counting  # type: ignore[method-assign]
    stack.poll(1.0)
    service.close(1.0)
    stack.poll(2.0)
    assert steps == [1.0] and service not in stack.applications


def test_self_adding_applications_join_at_construction() -> None:
    stack = _stack()
    resolver = StackResolver(stack, ResolverSettings(servers=((ip_from_str("10.0.0.1"), 53),)))
    naming = DNSService(stack, {"x.test": 1})
    assert stack.applications == (resolver, naming)
