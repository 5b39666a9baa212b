"""10,000 connections (issue 13): work is counted, never timed.

One simulated world for the module: an echo service on ``a`` with 10,000 established
connections from ``b``, every server end with keepalive on (so each has a timer in the heap).
Then:
- idle polls inspect a constant number of timer-heap entries, whatever the number of idle
  connections with timers (``TCPLayer.timer_inspections``), and serve no connection;
- traffic on a few connections serves only those (``StreamService.serve_calls``);
- closing all 10,000 serves each connection a bounded number of times: O(connections), not
  O(connections x polls) as when every connection was served on every poll.
"""

from __future__ import annotations

import random

import pytest

from pystack.services.stream import EchoService
from pystack.stack import StackConfig
from pystack.tcp.connection import TCPConnection
from pystack.tcp.settings import TCPSettings
from pystack.tcp.state import TCPState
from pystack.wire.addresses import ip_from_str
from tests.helpers.tcp_transfer import A_ADDRESS, Network

COUNT = 10_000
BATCH = 200  # connections opened at a time (below max_half_open: no SYN cookies)


class World:
    def __init__(self) -> None:
        config = StackConfig(tcp=TCPSettings(max_connections=2 * COUNT))
        self.net = Network(config=config, b_config=config)
        self.echo = EchoService(self.net.a, backlog=BATCH)
        self.net.a.add_application(self.echo)
        self.clients: list[TCPConnection] = []
        server = ip_from_str(A_ADDRESS)
        while len(self.clients) < COUNT:
            batch = [self.net.b.tcp.connect(server, 7, self.net.sim.now) for _ in range(BATCH)]
            self.clients += batch
            assert self.net.sim.run_until(
                lambda: len(self.echo.connections) == len(self.clients), timeout=30.0
            )
        now = self.net.sim.now
        for connection in self.echo.connections:
            connection.set_keepalive(True, now)  # a timer (2 h away) in the heap for each
        self.net.sim.settle()


@pytest.fixture(scope="module")
def world() -> World:
    return World()


def test_idle_polls_inspect_a_constant_number_of_timers(world: World) -> None:
    a = world.net.a
    heap = len(a.tcp._timers)
    assert heap >= COUNT  # every idle connection has a timer (keepalive, 2 h away)
    # Entries left behind by rescheduled timers (the handshakes' retransmission timers) are
    # dropped lazily, each once: a first look may pop them, never more than the heap held.
    before = a.tcp.timer_inspections
    a.next_deadline()
    assert a.tcp.timer_inspections - before <= heap + 1
    served = world.echo.serve_calls
    start = world.net.sim.now
    costs = []
    for index in range(200):  # 200 polls over 100 s of virtual time, nothing arriving
        before = a.tcp.timer_inspections
        a.poll(start + index * 0.5)
        assert a.next_deadline() is not None
        costs.append(a.tcp.timer_inspections - before)
    # One look at the top of the heap in run_timers, one in next_deadline: not 10,000.
    assert max(costs) == 2
    assert world.echo.serve_calls == served  # idle connections are not served either


def test_traffic_serves_only_the_connections_with_news(world: World) -> None:
    net, echo = world.net, world.echo
    chosen = random.Random(13).sample(world.clients, 10)
    served = echo.serve_calls
    for client in chosen:
        client.send(b"ping", net.sim.now)
    assert net.sim.run_until(lambda: all(c.readable == 4 for c in chosen), timeout=5.0)
    assert all(c.receive(4) == b"ping" for c in chosen)
    # Each of the 10 is served when its data arrives and again when its echo is acknowledged:
    # a few calls each, never one per open connection per poll.
    assert echo.serve_calls - served <= 4 * len(chosen)


def test_closing_all_costs_linear_work(world: World) -> None:
    net, echo = world.net, world.echo
    served, steps = echo.serve_calls, net.sim.steps
    for client in world.clients:
        client.close(net.sim.now)
    assert net.sim.run_until(lambda: not echo.connections, timeout=30.0)
    assert all(c.state in (TCPState.TIME_WAIT, TCPState.CLOSED) for c in world.clients)
    calls = echo.serve_calls - served
    # The FIN (served: the echo closes too), the ACK of our FIN (CLOSED: forgotten, not
    # served). Serving every open connection on every poll would cost far more: at least one
    # call per connection per simulator step while they close.
    assert calls <= 2 * COUNT
    assert net.sim.steps > steps  # (the run took several steps)
