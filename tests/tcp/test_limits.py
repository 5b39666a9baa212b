"""Stack-wide TCP bounds: the connection table, buffer memory by use, refusals and cookies."""

from __future__ import annotations

import errno
import gc
import random
import tracemalloc

import pytest

from pystack.link.base import LinkKind
from pystack.link.memory import MemoryLink
from pystack.stack import Stack, StackConfig
from pystack.stats import DropReason
from pystack.tcp.connection import TCPConnection
from pystack.tcp.settings import TCPSettings
from pystack.tcp.state import TCPState
from pystack.wire.addresses import ip_from_str
from pystack.wire.ipv4 import PROTO_TCP, IPv4Packet
from pystack.wire.tcp import SYN, TCPSegment
from tests.helpers.tcp_transfer import A_ADDRESS, Network


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


# -- in-process, two stacks: refusals, cookies under pressure, 10,000 connections -------------
def _client_config(**tcp: object) -> StackConfig:
    return StackConfig(tcp=TCPSettings(max_connections=20_000, **tcp))  # type: ignore[arg-type]


def test_cookie_ack_meeting_a_full_table_is_refused_and_leaves_no_phantom() -> None:
    net = Network(
        config=StackConfig(tcp=TCPSettings(max_connections=2, max_half_open=0)),
        b_config=_client_config(),
    )
    a, b, now = net.a, net.b, net.sim.now
    listener = a.tcp.listen(80, 16)
    client = b.tcp.connect(ip_from_str(A_ADDRESS), 80, now)
    b.poll(now)  # the SYN
    a.poll(now)  # max_half_open 0: answered with a cookie, no entry
    assert a.counters.counters["tcp.syn_cookies_sent"] == 1 and not a.tcp.connections
    for port in (5001, 5002):  # meanwhile the table fills (SYNs to a silent host)
        a.tcp.connect(ip_from_str("10.0.0.3"), port, now)
    a.poll(now)
    b.poll(now)  # the client takes the SYN-ACK: ESTABLISHED, its ACK goes out
    assert client.state is TCPState.ESTABLISHED
    a.poll(now)  # a valid cookie, no room: refused with RST
    assert a.counters.drops[DropReason.TCP_CONNECTION_LIMIT] == 1
    assert a.counters.counters["tcp.connections_refused"] == 1
    assert a.counters.counters.get("tcp.syn_cookies_accepted", 0) == 0
    assert listener.pending == 0 and listener.accept() is None
    assert all(key[3] != client.local_port for key in a.tcp.connections)  # no phantom
    b.poll(now)
    assert client.state is TCPState.CLOSED and client.error == errno.ECONNRESET


def test_connection_beyond_the_limit_is_refused_with_rst() -> None:
    limit = 10
    net = Network(
        config=StackConfig(tcp=TCPSettings(max_connections=limit)), b_config=_client_config()
    )
    pairs = net.connect_pairs(limit)  # the last ones through cookies (high-water mark: 9)
    assert all(pair.server.state is TCPState.ESTABLISHED for pair in pairs)
    extra = net.b.tcp.connect(ip_from_str(A_ADDRESS), 80, net.sim.now)
    assert net.sim.run_until(lambda: extra.state is TCPState.CLOSED, timeout=5.0)
    assert extra.error == errno.ECONNREFUSED
    assert net.sim.now < 1.0  # at once: no retransmitted SYN
    assert net.a.counters.drops[DropReason.TCP_CONNECTION_LIMIT] == 1
    assert net.a.counters.counters["tcp.connections_refused"] == 1
    assert len(net.a.tcp.connections) == limit


def _spoofed_syn(rng: random.Random, port: int) -> bytes:
    source = ip_from_str(f"10.0.0.{rng.randrange(100, 250)}")
    segment = TCPSegment(rng.randrange(1024, 65536), port, rng.getrandbits(32), 0, SYN, 65535)
    payload = segment.build(source, ip_from_str(A_ADDRESS))
    return IPv4Packet(source, ip_from_str(A_ADDRESS), PROTO_TCP, payload).build()


def test_syn_flood_over_every_service_port_leaves_legitimate_handshakes_working() -> None:
    """The issue's flood: 400 spoofed SYNs to each of 8 ports. Half-open entries stop at
    max_half_open, cookies answer the rest, nothing is refused, and real clients connect."""
    ports = (7, 9, 19, 80, 443, 1883, 8443, 13)
    net = Network(b_config=_client_config())
    a, b = net.a, net.b
    settings = a.tcp.settings
    listeners = {port: a.tcp.listen(port, 128) for port in ports}
    rng = random.Random(15)
    for port in ports:
        for _ in range(400):
            b.link.send(_spoofed_syn(rng, port), net.sim.now)
    net.sim.settle()
    assert a.tcp.half_open() == settings.max_half_open
    assert len(a.tcp.connections) == settings.max_half_open
    assert a.counters.counters["tcp.syn_cookies_sent"] == 8 * 400 - settings.max_half_open
    assert DropReason.TCP_CONNECTION_LIMIT not in a.counters.drops
    clients = [b.tcp.connect(ip_from_str(A_ADDRESS), port, net.sim.now) for port in (80, 1883)]
    assert net.sim.run_until(lambda: all(listeners[p].pending for p in (80, 1883)), timeout=1.0)
    for client, port in zip(clients, (80, 1883), strict=True):
        server = listeners[port].accept()
        assert server is not None and client.state is TCPState.ESTABLISHED
        client.send(b"hello", net.sim.now)
        assert net.sim.run_until(lambda s=server: s.readable == 5, timeout=1.0)  # type: ignore[misc]
    # The spoofed half-open entries expire on the SYN-ACK schedule (63 s), the real ones stay.
    assert net.sim.run_until(lambda: len(a.tcp.connections) == 2, timeout=64.0)
    assert a.tcp.half_open() == 0


def test_ten_thousand_idle_connections_fit_and_the_next_is_refused() -> None:
    """The real scale in-process: 10,000 established connections (the default limit), memory
    per idle connection measured with tracemalloc (printed, not asserted beyond a loose bound),
    then the 10,001st is refused with RST."""
    count = TCPSettings().max_connections
    net = Network(b_config=_client_config())
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        servers = _connect_in_batches(net, count, batch=1000)
        gc.collect()
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    per_connection = (after - before) / (2 * count)  # both ends are idle pystack connections
    print(f"\n{count} idle established connections: {per_connection:.0f} bytes each")
    assert per_connection <= 4096  # issue 13's target
    assert len(net.a.tcp.connections) == count and net.a.tcp.memory.held == 0
    assert all(server.state is TCPState.ESTABLISHED for server in servers)
    extra = net.b.tcp.connect(ip_from_str(A_ADDRESS), 80, net.sim.now)
    assert net.sim.run_until(lambda: extra.state is TCPState.CLOSED, timeout=5.0)
    assert extra.error == errno.ECONNREFUSED
    assert net.a.counters.counters["tcp.connections_refused"] == 1


def _connect_in_batches(net: Network, count: int, batch: int) -> list[TCPConnection]:
    """``count`` connections from ``b`` to a listener on ``a`` (accepted as they complete:
    a listen backlog is at most ``max_backlog``); returns the server ends."""
    listener = net.a.tcp.listen(80, batch)
    servers: list[TCPConnection] = []
    while len(servers) < count:
        size = min(batch, count - len(servers))
        for _ in range(size):
            net.b.tcp.connect(ip_from_str(A_ADDRESS), 80, net.sim.now)
        assert net.sim.run_until(lambda n=size: listener.pending == n, timeout=10.0)  # type: ignore[misc]
        while (server := listener.accept()) is not None:
            servers.append(server)
    return servers
