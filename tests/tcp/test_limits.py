"""Stack-wide TCP bounds: connections and the buffer memory they may reserve."""

from __future__ import annotations

import random

import pytest

from pystack.link.base import LinkKind
from pystack.link.memory import MemoryLink
from pystack.stack import Stack, StackConfig
from pystack.stats import DropReason
from pystack.tcp.settings import TCPSettings
from pystack.wire.addresses import ip_from_str


def _stack(settings: TCPSettings) -> Stack:
    link, _ = MemoryLink.pair(kind=LinkKind.IP)
    return Stack(StackConfig(address="10.0.0.2/24", tcp=settings), link, rng=random.Random(1))


def test_buffer_memory_limit_refuses_connections_beyond_it() -> None:
    per_connection = 3 * 1024  # send + receive + out-of-order capacities below
    settings = TCPSettings(
        send_buffer=1024,
        receive_buffer=1024,
        out_of_order_limit=1024,
        memory_limit=5 * per_connection,
    )
    stack = _stack(settings)
    peer = ip_from_str("10.0.0.1")
    for port in range(5):
        stack.tcp.connect(peer, 9000 + port, 0.0)
    with pytest.raises(OSError) as raised:
        stack.tcp.connect(peer, 9100, 0.0)
    assert raised.value.errno == 105  # ENOBUFS
    assert stack.counters.drops[DropReason.TCP_CONNECTION_LIMIT] == 1
    assert len(stack.tcp.connections) == 5


def test_max_connections_bounds_the_table_whatever_the_memory() -> None:
    stack = _stack(TCPSettings(max_connections=3))
    peer = ip_from_str("10.0.0.1")
    for port in range(3):
        stack.tcp.connect(peer, 9000 + port, 0.0)
    with pytest.raises(OSError):
        stack.tcp.connect(peer, 9003, 0.0)
    assert stack.counters.drops[DropReason.TCP_CONNECTION_LIMIT] == 1


def test_closed_connections_give_their_memory_back() -> None:
    settings = TCPSettings(
        send_buffer=1024, receive_buffer=1024, out_of_order_limit=1024, memory_limit=2 * 3 * 1024
    )
    stack = _stack(settings)
    peer = ip_from_str("10.0.0.1")
    first = stack.tcp.connect(peer, 9000, 0.0)
    stack.tcp.connect(peer, 9001, 0.0)
    first.abort(0.0)
    stack.tcp.connect(peer, 9002, 0.0)  # room again
    assert len(stack.tcp.connections) == 2
