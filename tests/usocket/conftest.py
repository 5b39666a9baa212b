"""Fixtures for the usocket tests: one datagram conformance suite, two implementations.

``env`` is parametrized: ``cpython`` runs the suite with CPython's ``socket``/``select`` on the
loopback interface (the peer is a CPython UDP socket, the echo service a thread), ``usocket``
runs it with pystack's MicroPython modules on the simulated network (script host 10.0.0.2, the
peer 10.0.0.1 with a pystack UDP endpoint and the UDP echo service on port 7). Tests written
against ``env`` read the same for both; everything else here is usocket only (``sim``).
Every wait is bounded (``WAIT``); nothing sleeps for correctness.
"""

from __future__ import annotations

import select as cpython_select
import socket as cpython_socket
import threading
import types
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from pystack.sim.world import SimulatedNetwork
from pystack.udp.endpoint import UDPEndpoint
from pystack.wire.addresses import ip_from_str, ip_to_str
from usocket.context import NetworkContext
from usocket.modules import select_module, socket_module

WAIT = 5.0  # seconds: the bound on any wait for something that should happen at once
PEER_PORT = 4000  # the simulated peer's own test endpoint
SIM_HOST = "10.0.0.2"
SIM_PEER = "10.0.0.1"
SIM_BROADCAST = "10.0.0.255"


class Environment:
    """What a conformance test sees: the modules, the addresses, a peer it can drive."""

    name = "?"
    micropython = False
    socket_module: Any
    select_module: Any
    local_ip: str
    peer_ip: str
    broadcast_ip: str
    echo_port: int
    peer_port: int

    def __init__(self) -> None:
        self._sockets: list[Any] = []

    def socket(self, kind: int | None = None) -> Any:
        """A new socket of the module under test (datagram by default), closed at teardown."""
        module = self.socket_module
        s = module.socket(module.AF_INET, module.SOCK_DGRAM if kind is None else kind)
        self._sockets.append(s)
        return s

    def close(self) -> None:
        for s in self._sockets:
            s.close()

    # Implemented per environment -----------------------------------------------------------
    def peer_send(self, data: bytes, to_port: int, to_ip: str | None = None) -> None:
        raise NotImplementedError

    def peer_receive(self, timeout: float = WAIT) -> tuple[bytes, tuple[str, int]]:
        """The next datagram the peer got and its source; AssertionError if none came."""
        raise NotImplementedError

    def peer_pending(self) -> bool:
        raise NotImplementedError

    def free_port(self) -> int:
        """A port nothing on the local side is bound to."""
        raise NotImplementedError

    def poll_key(self, s: Any) -> Any:
        """What ``poll()`` results name a socket by (CPython: the fd; MicroPython: the object)."""
        return s

    def is_timeout(self, error: BaseException) -> bool:
        raise NotImplementedError

    def broadcast_receiver(self) -> tuple[int, Callable[[], tuple[bytes, tuple[str, int]]]]:
        """A peer-side receiver for broadcasts: (port, receive)."""
        raise NotImplementedError


# -- CPython on loopback ---------------------------------------------------------------------
class CPythonEnvironment(Environment):
    name = "cpython"
    micropython = False
    socket_module = cpython_socket
    select_module = cpython_select
    local_ip = "127.0.0.1"
    peer_ip = "127.0.0.1"
    broadcast_ip = "127.255.255.255"

    def __init__(self) -> None:
        super().__init__()
        self._peer = self._bound_socket((self.peer_ip, 0))
        self.peer_port = self._peer.getsockname()[1]
        self._echo = self._bound_socket((self.peer_ip, 0))
        self.echo_port = self._echo.getsockname()[1]
        self._stop_read, self._stop_write = cpython_socket.socketpair()
        self._echo_thread = threading.Thread(target=self._serve_echo, daemon=True)
        self._echo_thread.start()

    def _bound_socket(self, address: tuple[str, int]) -> cpython_socket.socket:
        s = cpython_socket.socket(cpython_socket.AF_INET, cpython_socket.SOCK_DGRAM)
        s.bind(address)
        self._sockets.append(s)
        return s

    def _serve_echo(self) -> None:
        while True:
            readable, _, _ = cpython_select.select([self._echo, self._stop_read], [], [])
            if self._stop_read in readable:
                return
            data, source = self._echo.recvfrom(65535)
            self._echo.sendto(data, source)

    def close(self) -> None:
        self._stop_write.send(b"x")
        self._echo_thread.join(WAIT)
        self._stop_read.close()
        self._stop_write.close()
        super().close()

    def peer_send(self, data: bytes, to_port: int, to_ip: str | None = None) -> None:
        self._peer.sendto(data, (to_ip or self.local_ip, to_port))

    def peer_receive(self, timeout: float = WAIT) -> tuple[bytes, tuple[str, int]]:
        return _receive_within(self._peer, timeout)

    def peer_pending(self) -> bool:
        readable, _, _ = cpython_select.select([self._peer], [], [], 0)
        return bool(readable)

    def free_port(self) -> int:
        probe = cpython_socket.socket(cpython_socket.AF_INET, cpython_socket.SOCK_DGRAM)
        probe.bind((self.local_ip, 0))
        port = int(probe.getsockname()[1])
        probe.close()
        return port

    def poll_key(self, s: Any) -> Any:
        return s.fileno()

    def is_timeout(self, error: BaseException) -> bool:
        return isinstance(error, TimeoutError)

    def broadcast_receiver(self) -> tuple[int, Callable[[], tuple[bytes, tuple[str, int]]]]:
        receiver = self._bound_socket((self.broadcast_ip, 0))  # gets only broadcasts
        return receiver.getsockname()[1], lambda: _receive_within(receiver, WAIT)


def _receive_within(s: cpython_socket.socket, timeout: float) -> tuple[bytes, tuple[str, int]]:
    readable, _, _ = cpython_select.select([s], [], [], timeout)
    assert readable, f"nothing arrived within {timeout} s"
    data, source = s.recvfrom(65535)
    return data, source


# -- usocket on the simulated network --------------------------------------------------------
class Simulation:
    """A running ``SimulatedNetwork`` with the MicroPython modules bound to its host."""

    def __init__(self, **options: Any) -> None:
        self.net = SimulatedNetwork(**options).start()
        self.thread = self.net.thread
        self.host = self.net.host
        self.peer = self.net.peer
        self.context = NetworkContext(self.thread, self.host)
        self.socket: types.ModuleType = socket_module(self.context)
        self.select: types.ModuleType = select_module(self.context)
        self._sockets: list[Any] = []
        self._endpoints: list[UDPEndpoint] = []

    def new_socket(self, kind: int | None = None) -> Any:
        module = self.socket
        s = module.socket(module.AF_INET, module.SOCK_DGRAM if kind is None else kind)
        self._sockets.append(s)
        return s

    def peer_endpoint(self, port: int = 0) -> UDPEndpoint:
        endpoint = self.thread.call(lambda: self.peer.udp.open(0, port))
        self._endpoints.append(endpoint)
        return endpoint

    def peer_send(
        self, endpoint: UDPEndpoint, data: bytes, to_port: int, to_ip: str = SIM_HOST
    ) -> None:
        destination = (ip_from_str(to_ip), to_port)
        self.thread.call(lambda: endpoint.send_to(data, destination, self.peer.clock.now()))

    def peer_receive(
        self, endpoint: UDPEndpoint, timeout: float = WAIT
    ) -> tuple[bytes, tuple[str, int]]:
        assert self.thread.wait_for(lambda: endpoint.pending > 0, timeout), "nothing arrived"
        got = self.thread.call(endpoint.receive)
        assert got is not None
        data, (address, port) = got
        return data, (ip_to_str(address), port)

    def wait_until(self, predicate: Callable[[], bool], timeout: float = WAIT) -> bool:
        """Wait (under the stack lock, woken whenever the stack thread polls) for ``predicate``."""
        return self.thread.wait_for(predicate, timeout)

    def close(self) -> None:
        for s in self._sockets:
            s.close()
        for endpoint in self._endpoints:
            self.thread.call(endpoint.close)
        self.net.close()


class UsocketEnvironment(Environment):
    name = "usocket"
    micropython = True
    local_ip = SIM_HOST
    peer_ip = SIM_PEER
    broadcast_ip = SIM_BROADCAST
    echo_port = 7
    peer_port = PEER_PORT

    def __init__(self, simulation: Simulation) -> None:
        super().__init__()
        self.sim = simulation
        self.socket_module = simulation.socket
        self.select_module = simulation.select
        self._peer = simulation.peer_endpoint(PEER_PORT)
        self._next_port = 5000

    def peer_send(self, data: bytes, to_port: int, to_ip: str | None = None) -> None:
        self.sim.peer_send(self._peer, data, to_port, to_ip or self.local_ip)

    def peer_receive(self, timeout: float = WAIT) -> tuple[bytes, tuple[str, int]]:
        return self.sim.peer_receive(self._peer, timeout)

    def peer_pending(self) -> bool:
        return bool(self.sim.thread.call(lambda: self._peer.pending))

    def free_port(self) -> int:
        self._next_port += 1  # each test has a fresh simulated host: nothing else is bound
        return self._next_port

    def is_timeout(self, error: BaseException) -> bool:
        # MicroPython: OSError(ETIMEDOUT), not CPython's TimeoutError (USOCKET.md 2)
        return (
            isinstance(error, OSError)
            and not isinstance(error, TimeoutError)
            and error.args == (110,)
            and error.errno == 110
        )

    def broadcast_receiver(self) -> tuple[int, Callable[[], tuple[bytes, tuple[str, int]]]]:
        endpoint = self.sim.peer_endpoint(0)  # bound to every address: broadcasts included
        return endpoint.port, lambda: self.sim.peer_receive(endpoint)


@pytest.fixture
def sim() -> Iterator[Simulation]:
    simulation = Simulation(seed=1)
    try:
        yield simulation
    finally:
        simulation.close()


@pytest.fixture(params=["cpython", "usocket"])
def env(request: pytest.FixtureRequest) -> Iterator[Environment]:
    if request.param == "cpython":
        environment: Environment = CPythonEnvironment()
        try:
            yield environment
        finally:
            environment.close()
        return
    simulation = Simulation(seed=1)
    environment = UsocketEnvironment(simulation)
    try:
        yield environment
    finally:
        environment.close()
        simulation.close()
