"""Application-level TCP transfers over a ``Simulation``: apps that write and read, and the loop
that drives them together with the network.

``StreamApp`` is one end of one connection seen from its application: it writes its outgoing
bytes as fast as the send buffer takes them, half-closes when done, hashes everything it reads
(SHA-256, so 10 MB streams are compared without keeping them) and closes once the peer's EOF has
arrived and its own data is out. ``run_apps`` is the loop: let every app act, ``settle`` the
network at the current instant, and advance the clock to the next deadline *only* when no app
made progress since the last settle. Advancing with ``Simulation.step`` instead would settle
and then jump ahead in one call, so an app would see data (or an EOF) that arrived in that
settle only after the jump: a receiver that already has everything would sit idle until, say,
the peer's FIN-WAIT-2 timer expires. Every run is bounded in virtual time, wall time and
iterations.
"""

from __future__ import annotations

import dataclasses
import hashlib
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from pystack.link.base import Link, LinkKind
from pystack.link.impair import ImpairmentConfig, ImpairmentLink
from pystack.link.memory import MemoryLink
from pystack.sim.network import Simulation
from pystack.stack import Stack, StackConfig
from pystack.tcp.connection import TCPConnection
from pystack.tcp.state import TCPState
from pystack.wire.addresses import ip_from_str

A_ADDRESS = "10.0.0.1"
B_ADDRESS = "10.0.0.2"
CHUNK = 256 * 1024  # what an app offers ``send`` at a time
READ = 1 << 20  # what an app asks ``receive`` for at a time


def pattern(size: int, seed: int | str) -> bytes:
    """Reproducible random bytes (random, so a misplaced segment cannot go unnoticed)."""
    return random.Random(seed).randbytes(size)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class StreamApp:
    """One application end: send ``outgoing``, read to EOF, then close."""

    def __init__(
        self,
        connection: TCPConnection,
        outgoing: bytes = b"",
        name: str = "",
        half_close: bool = True,
    ) -> None:
        """``half_close=False``: no FIN after the data; the close at the peer's EOF sends it."""
        self.connection = connection
        self.half_close = half_close
        self.outgoing = memoryview(outgoing)
        self.name = name
        self.sent = 0
        self.received = 0
        self._hash = hashlib.sha256()
        self.shut = False
        self.closed = False
        self.first_data_at: int | None = None  # run_apps iteration of the first bytes read
        self.closed_at: int | None = None  # run_apps iteration of the close

    @property
    def received_sha256(self) -> str:
        return self._hash.hexdigest()

    @property
    def done(self) -> bool:
        return self.closed or self.failed

    @property
    def failed(self) -> bool:
        connection = self.connection
        return connection.state is TCPState.CLOSED and not self.closed

    def step(self, now: float, iteration: int = 0) -> bool:
        """Do what the application can do now; True when anything moved."""
        connection = self.connection
        if self.done:
            return False
        progress = False
        total = len(self.outgoing)
        while self.sent < total and connection.send_room:
            accepted = connection.send(self.outgoing[self.sent : self.sent + CHUNK], now)
            if accepted == 0:
                break
            self.sent += accepted
            progress = True
        if self.sent == total and not self.shut and connection.state.synchronized:
            if self.half_close:
                connection.shutdown(now)
                progress = True
            self.shut = True
        while data := connection.receive(READ):
            self._hash.update(data)
            if self.first_data_at is None:
                self.first_data_at = iteration
            self.received += len(data)
            progress = True
        if self.shut and connection.at_eof:
            connection.close(now)
            self.closed = progress = True
            self.closed_at = iteration
        return progress


@dataclass
class RunResult:
    completed: bool
    iterations: int
    wall: float
    virtual: float


def run_apps(
    sim: Simulation,
    apps: Sequence[StreamApp],
    timeout: float,
    wall_timeout: float = 60.0,
    max_iterations: int = 5_000_000,
) -> RunResult:
    """Drive ``apps`` and the network until every app is done or a bound is hit."""
    start_wall = time.monotonic()
    start_virtual = sim.now
    end = start_virtual + timeout
    clock = sim.clock
    iterations = 0
    pending = list(apps)
    while iterations < max_iterations:
        iterations += 1
        sim.settle()
        now = sim.now
        progress = False
        for app in pending:
            if app.step(now, iterations):
                progress = True
        pending = [app for app in pending if not app.done]
        if not pending:
            break
        if iterations % 256 == 0 and time.monotonic() - start_wall > wall_timeout:
            break
        if progress:
            continue  # let the network carry what the apps just did before time moves
        deadline = sim.next_deadline()
        if deadline is None or deadline > end:
            break
        clock.set(max(now, deadline))
    return RunResult(
        completed=not pending,
        iterations=iterations,
        wall=time.monotonic() - start_wall,
        virtual=sim.now - start_virtual,
    )


@dataclass
class Network:
    """Two stacks, ``a`` (10.0.0.1) and ``b`` (10.0.0.2), on one in-memory IP link.

    The impairment wraps ``a``'s end of the link, so an unprefixed setting hits both directions.
    """

    impairment: str | None = None
    config: StackConfig = field(default_factory=StackConfig)
    trace: bool = False
    b_config: StackConfig | None = None  # ``b``'s own, when it differs from ``config``

    def __post_init__(self) -> None:
        self.sim = Simulation()
        end_a, end_b = MemoryLink.pair(kind=LinkKind.IP, capacity=100_000)
        link_a: Link = end_a
        self.impaired: ImpairmentLink | None = None
        if self.impairment:
            self.impaired = ImpairmentLink(end_a, ImpairmentConfig.parse(self.impairment))
            link_a = self.impaired
        self.a = self.sim.add(
            Stack(_with_address(self.config, A_ADDRESS), link_a, self.sim.clock, random.Random(1))
        )
        self.b = self.sim.add(
            Stack(
                _with_address(self.b_config or self.config, B_ADDRESS),
                end_b,
                self.sim.clock,
                random.Random(2),
            )
        )
        self.lines: list[str] = []
        if self.trace:
            self.a.set_trace(self._record, "a")
            self.b.set_trace(self._record, "b")

    def _record(self, line: str) -> None:
        self.lines.append(f"{self.sim.now:.6f} {line}")

    def trace_digest(self) -> str:
        return sha256("\n".join(self.lines).encode())

    def connect_pairs(self, count: int, port: int = 80, backlog: int = 1024) -> list[Pair]:
        """``count`` connections from ``b`` to a listener on ``a``; returns (client, server)."""
        listener = self.a.tcp.listen(port, backlog)
        clients = [
            self.b.tcp.connect(ip_from_str(A_ADDRESS), port, self.sim.now) for _ in range(count)
        ]
        assert self.sim.run_until(lambda: listener.pending == count, timeout=600.0), (
            f"only {listener.pending} of {count} connections were established"
        )
        servers = []
        while (server := listener.accept()) is not None:
            servers.append(server)
        by_port = {server.remote_port: server for server in servers}
        return [Pair(client, by_port[client.local_port]) for client in clients]

    def run_until_closed(self, connections: Sequence[TCPConnection], timeout: float) -> bool:
        """Run until every connection reached CLOSED (TIME-WAIT included)."""
        return self.sim.run_until(
            lambda: all(c.state is TCPState.CLOSED for c in connections), timeout
        )


@dataclass
class Pair:
    client: TCPConnection
    server: TCPConnection


def _with_address(config: StackConfig, address: str) -> StackConfig:
    return dataclasses.replace(config, address=f"{address}/24")
