"""The stack's API for socket layers (the last section of ``Stack``): each method on its own."""

from __future__ import annotations

import random

import pytest

from pystack.clock import ManualClock
from pystack.link.memory import MemoryLink
from pystack.stack import Stack, StackConfig
from pystack.tcp.settings import TCPSettings
from pystack.wire.addresses import ip_from_str

PEER = ip_from_str("10.0.0.1")
ELSEWHERE = ip_from_str("192.0.2.1")


@pytest.fixture
def stack() -> Stack:
    link, _ = MemoryLink.pair()
    settings = TCPSettings(send_buffer=4096, ephemeral_ports=(40000, 40009))
    return Stack(StackConfig(tcp=settings), link, ManualClock(), random.Random(7))


def test_has_route_follows_the_routing_table(stack: Stack) -> None:
    assert stack.has_route(PEER)
    assert not stack.has_route(ELSEWHERE)  # no gateway configured


def test_open_udp_binds_an_endpoint(stack: Stack) -> None:
    endpoint = stack.open_udp(0, 5000)
    assert endpoint.local == (0, 5000) and not endpoint.reuse
    with pytest.raises(OSError):
        stack.open_udp(0, 5000)
    assert stack.open_udp(0, 5001, reuse=True).reuse
    assert stack.open_udp().port != 0  # an ephemeral port


def test_tcp_listen_uses_the_configured_backlog_and_is_listed(stack: Stack) -> None:
    listener = stack.tcp_listen(8080)
    assert listener.backlog == stack.tcp.settings.max_backlog
    assert list(stack.tcp_listening_on()) == [(0, 8080)]


def test_tcp_connect_sets_nodelay_and_holds_its_local_port(stack: Stack) -> None:
    connection = stack.tcp_connect(PEER, 80, 0.0, 40005, None, nodelay=True)
    assert connection.nodelay and connection.local_port == 40005
    assert list(stack.tcp_ports_held()) == [(stack.address, 40005)]
    other = stack.tcp_connect(PEER, 81, 0.0)
    assert not other.nodelay


def test_tcp_set_nodelay_changes_the_connection(stack: Stack) -> None:
    connection = stack.tcp_connect(PEER, 80, 0.0)
    stack.tcp_set_nodelay(connection, True)
    assert connection.nodelay
    stack.tcp_set_nodelay(connection, False)
    assert not connection.nodelay


def test_tcp_send_buffer_size_is_the_setting(stack: Stack) -> None:
    assert stack.tcp_send_buffer_size == 4096


def test_tcp_ephemeral_ports_visits_every_port_once_from_a_random_start(stack: Stack) -> None:
    ports = list(stack.tcp_ephemeral_ports())
    assert sorted(ports) == list(range(40000, 40010))
    start = ports[0]
    assert ports == [40000 + (start - 40000 + step) % 10 for step in range(10)]
    draws = [next(stack.tcp_ephemeral_ports()) for _ in range(20)]
    assert len(set(draws)) > 1  # a fresh random start each time


def test_count_event_adds_to_the_named_counter(stack: Stack) -> None:
    stack.count_event("usocket.accept_queue_full")
    stack.count_event("usocket.accept_queue_full")
    assert stack.counters.counters["usocket.accept_queue_full"] == 2
