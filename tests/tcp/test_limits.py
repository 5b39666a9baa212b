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


def test_idle_connections_hold_no_buffer_memory() -> None:
    """Capacities are bounds, not reservations: 50 connections with 256 KiB buffers each fit
    in a 64 KiB memory limit while they hold nothing."""
    stack = _stack(TCPSettings(memory_limit=64 * 1024))
    peer = ip_from_str("10.0.0.1")
    for port in range(50):
        stack.tcp.connect(peer, 9000 + port, 0.0)
    assert len(stack.tcp.connections) == 50
    assert stack.tcp.memory.held == 0


def test_buffer_memory_limit_counts_bytes_held_and_refuses_beyond_it() -> None:
    settings = TCPSettings(send_buffer=4096, memory_limit=5000)
    stack = _stack(settings)
    peer = ip_from_str("10.0.0.1")
    first = stack.tcp.connect(peer, 9000, 0.0)
    second = stack.tcp.connect(peer, 9001, 0.0)
    assert first.send(b"x" * 4096, 0.0) == 4096  # SYN-SENT: queued until the handshake
    assert stack.tcp.memory.held == 4096
    assert second.send_buffer.room == 5000 - 4096  # the pool, not the buffer, is the tighter bound
    assert second.send(b"y" * 4096, 0.0) == 904
    assert stack.tcp.memory.held == 5000 and second.send_buffer.room == 0
    with pytest.raises(OSError) as raised:
        stack.tcp.connect(peer, 9100, 0.0)
    assert raised.value.errno == 105  # ENOBUFS
    assert stack.counters.drops[DropReason.TCP_MEMORY_LIMIT] == 1
    assert len(stack.tcp.connections) == 2


def test_max_connections_bounds_the_table_whatever_the_memory() -> None:
    stack = _stack(TCPSettings(max_connections=3))
    peer = ip_from_str("10.0.0.1")
    for port in range(3):
        stack.tcp.connect(peer, 9000 + port, 0.0)
    with pytest.raises(OSError):
        stack.tcp.connect(peer, 9003, 0.0)
    assert stack.counters.drops[DropReason.TCP_CONNECTION_LIMIT] == 1


def test_closed_connections_give_their_memory_back() -> None:
    stack = _stack(TCPSettings(send_buffer=4096, memory_limit=4096))
    peer = ip_from_str("10.0.0.1")
    first = stack.tcp.connect(peer, 9000, 0.0)
    first.send(b"x" * 4096, 0.0)
    with pytest.raises(OSError):
        stack.tcp.connect(peer, 9001, 0.0)
    first.abort(0.0)
    assert stack.tcp.memory.held == 0
    stack.tcp.connect(peer, 9002, 0.0)  # room again
    assert len(stack.tcp.connections) == 1
