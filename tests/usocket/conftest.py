"""Fixtures for the usocket tests: one conformance suite (datagram and stream), two implementations.

``env`` is parametrized: ``cpython`` runs the suite with CPython's ``socket``/``select`` on the
loopback interface (the peer is a CPython UDP socket, the echo service a thread), ``usocket``
runs it with pystack's MicroPython modules on the simulated network (script host 10.0.0.2, the
peer 10.0.0.1 with a pystack UDP endpoint and the UDP echo service on port 7). Tests written
against ``env`` read the same for both; everything else here is usocket only (``sim``).

Streams: ``env.stream_port(name)`` names a TCP service of the peer: ``echo``, ``discard``,
``daytime`` (one line, then close), ``chargen`` (``CHARGEN_SIZE`` bytes of the RFC 864 pattern,
then close) and ``halfclose`` (sends ``HALF_CLOSE_GREETING``, then its FIN at once, and reads on
until the client's FIN; ``env.half_close_received()`` is what it read). On CPython one selector
thread serves them on 127.0.0.1; on usocket the simulated peer runs the first four on 7, 9, 13,
19, and the half-close peer is a pystack listener on the peer. Server-side tests use a listening
socket of the module under test and a client of the same module over 127.0.0.1 (pystack has its
own loopback, decision 7): ``stream_pair``.
Every wait is bounded (``WAIT``); nothing sleeps for correctness.
"""

from __future__ import annotations

import select as cpython_select
import selectors
import socket as cpython_socket
import threading
import time
import types
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from pystack.services.stream import chargen_pattern
from pystack.sim.world import SimulatedNetwork
from pystack.tcp.connection import TCPConnection
from pystack.tcp.listener import TCPListener
from pystack.udp.endpoint import UDPEndpoint
from pystack.wire.addresses import ip_from_str, ip_to_str
from usocket.context import NetworkContext
from usocket.modules import select_module, socket_module

WAIT = 5.0  # seconds: the bound on any wait for something that should happen at once
PEER_PORT = 4000  # the simulated peer's own test endpoint
SIM_HOST = "10.0.0.2"
SIM_PEER = "10.0.0.1"
SIM_BROADCAST = "10.0.0.255"
LOOPBACK = "127.0.0.1"
CHARGEN_SIZE = 1_000_000  # the simulated peer's chargen=1000000: that many bytes, then close
HALF_CLOSE_GREETING = b"bye"
HALF_CLOSE_PORT = 4001  # the simulated peer's half-close server
SIM_SERVICES = {"echo": 7, "discard": 9, "daytime": 13, "chargen": 19}


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

    def stream(self, timeout: float | None = WAIT) -> Any:
        """A new SOCK_STREAM socket of the module under test with ``timeout``."""
        s = self.socket(self.socket_module.SOCK_STREAM)
        s.settimeout(timeout)
        return s

    def connect(self, service: str, timeout: float | None = WAIT) -> Any:
        """A stream socket connected (blocking, bounded by ``timeout``) to a peer service."""
        s = self.stream(timeout)
        s.connect((self.peer_ip, self.stream_port(service)))
        return s

    def track(self, s: Any) -> Any:
        """Close ``s`` at teardown (accepted sockets)."""
        self._sockets.append(s)
        return s

    def stream_pair(
        self, port: int | None = None, backlog: int | None = None
    ) -> tuple[Any, Any, Any, tuple[str, int]]:
        """See ``stream_pair``: a loopback listener, its client and the accepted socket."""
        return stream_pair(
            self.socket, self.track, self.socket_module, port or self.free_tcp_port(), backlog
        )

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

    # Streams ---------------------------------------------------------------------------------
    def stream_port(self, name: str) -> int:
        """The peer's port of the TCP service ``name`` (see the module docstring)."""
        raise NotImplementedError

    def half_close_received(self, timeout: float = WAIT) -> bytes:
        """What the half-close peer read before the client's FIN (waits for that FIN)."""
        raise NotImplementedError

    def free_tcp_port(self) -> int:
        """A TCP port nothing on the local side (127.0.0.1 included) is bound to."""
        raise NotImplementedError

    def closed_tcp_port(self) -> int:
        """A TCP port of ``peer_ip`` nothing listens on: a SYN to it is answered with RST."""
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
        self._streams: CPythonStreamServices | None = None

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
        if self._streams is not None:
            self._streams.close()

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

    def _stream_services(self) -> CPythonStreamServices:
        if self._streams is None:
            self._streams = CPythonStreamServices(self.peer_ip)
        return self._streams

    def stream_port(self, name: str) -> int:
        return self._stream_services().ports[name]

    def half_close_received(self, timeout: float = WAIT) -> bytes:
        services = self._stream_services()
        assert services.half_close_done.wait(timeout), "the half-close peer saw no FIN"
        return bytes(services.half_close_data)

    def free_tcp_port(self) -> int:
        probe = cpython_socket.socket(cpython_socket.AF_INET, cpython_socket.SOCK_STREAM)
        probe.bind((LOOPBACK, 0))
        port = int(probe.getsockname()[1])
        probe.close()
        return port

    def closed_tcp_port(self) -> int:
        return self.free_tcp_port()


def _receive_within(s: cpython_socket.socket, timeout: float) -> tuple[bytes, tuple[str, int]]:
    readable, _, _ = cpython_select.select([s], [], [], timeout)
    assert readable, f"nothing arrived within {timeout} s"
    data, source = s.recvfrom(65535)
    return data, source


class _ServedStream:
    """One connection of ``CPythonStreamServices``."""

    __slots__ = ("eof", "finish", "left", "out", "produced", "service", "sock")

    def __init__(self, sock: cpython_socket.socket, service: str) -> None:
        self.sock = sock
        self.service = service
        self.out = bytearray()  # waiting to be sent
        self.left = 0  # chargen: bytes still to produce
        self.produced = 0
        self.eof = False  # the client's FIN arrived
        self.finish = False  # once everything is sent: close (halfclose: shut the write side)


ECHO_HOLD = 1 << 20  # echo stops reading while this much waits to go back (flow control)
_READ, _WRITE = selectors.EVENT_READ, selectors.EVENT_WRITE


class CPythonStreamServices:
    """The CPython peer's TCP services (module docstring), one selector thread on ``address``."""

    NAMES = ("echo", "discard", "daytime", "chargen", "halfclose")

    def __init__(self, address: str) -> None:
        self._selector = selectors.DefaultSelector()
        self._stop_read, self._stop_write = cpython_socket.socketpair()
        self._selector.register(self._stop_read, _READ, None)
        self.ports: dict[str, int] = {}
        self._listeners: list[cpython_socket.socket] = []
        for name in self.NAMES:
            listener = cpython_socket.socket(cpython_socket.AF_INET, cpython_socket.SOCK_STREAM)
            listener.bind((address, 0))
            listener.listen(64)
            listener.setblocking(False)
            self._selector.register(listener, _READ, name)
            self._listeners.append(listener)
            self.ports[name] = listener.getsockname()[1]
        self._served: set[_ServedStream] = set()
        self._pattern = chargen_pattern()
        self.half_close_data = bytearray()
        self.half_close_done = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True, name="stream-services")
        self._thread.start()

    def close(self) -> None:
        self._stop_write.send(b"x")
        self._thread.join(WAIT)
        for served in list(self._served):
            self._drop(served)
        for listener in self._listeners:
            listener.close()
        self._selector.close()
        self._stop_read.close()
        self._stop_write.close()

    def _serve(self) -> None:
        while True:
            for key, events in self._selector.select():
                if key.data is None:
                    return
                if isinstance(key.data, str):
                    self._accept(key.fileobj, key.data)  # type: ignore[arg-type]
                else:
                    self._step(key.data, events)

    def _accept(self, listener: cpython_socket.socket, service: str) -> None:
        try:
            sock, _ = listener.accept()
        except OSError:
            return
        sock.setblocking(False)
        served = _ServedStream(sock, service)
        if service == "daytime":
            line = time.strftime("%A, %B %d, %Y %H:%M:%S-UTC\r\n", time.gmtime())
            served.out += line.encode()
            served.finish = True
        elif service == "chargen":
            served.left = CHARGEN_SIZE
            served.finish = True
        elif service == "halfclose":
            served.out += HALF_CLOSE_GREETING
            served.finish = True
        self._served.add(served)
        self._selector.register(sock, _READ, served)
        self._update(served)

    def _step(self, served: _ServedStream, events: int) -> None:
        try:
            if events & _READ:
                self._read(served)
            if served in self._served and events & _WRITE:
                self._write(served)
        except OSError:  # reset by the client: forget the connection
            self._drop(served)
        if served in self._served:
            self._update(served)

    def _read(self, served: _ServedStream) -> None:
        data = served.sock.recv(65536)
        if not data:
            served.eof = True
            if served.service == "halfclose":
                self.half_close_done.set()
            if served.service != "echo":
                self._drop(served)
            else:
                served.finish = True  # echo: close after the peer does, once all is back
            return
        if served.service == "echo":
            served.out += data
        elif served.service == "halfclose":
            self.half_close_data += data

    def _write(self, served: _ServedStream) -> None:
        if served.left and len(served.out) < 65536:
            cycle = len(self._pattern)
            start = served.produced % cycle
            want = min(served.left, 65536)
            chunk = (self._pattern[start:] + self._pattern * (want // cycle + 1))[:want]
            served.out += chunk
            served.left -= want
            served.produced += want
        if served.out:
            sent = served.sock.send(served.out)
            del served.out[:sent]

    def _update(self, served: _ServedStream) -> None:
        if served.finish and not served.out and not served.left:
            if served.service != "halfclose":
                self._drop(served)
                return
            served.sock.shutdown(cpython_socket.SHUT_WR)  # half-close: reading goes on
            served.finish = False
        mask = 0
        if not served.eof and not (served.service == "echo" and len(served.out) >= ECHO_HOLD):
            mask |= _READ
        if served.out or served.left:
            mask |= _WRITE
        if not mask:
            self._drop(served)
            return
        self._selector.modify(served.sock, mask, served)

    def _drop(self, served: _ServedStream) -> None:
        self._served.discard(served)
        try:
            self._selector.unregister(served.sock)
        except (KeyError, ValueError):
            pass
        served.sock.close()


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

    def new_stream(self, timeout: float | None = WAIT) -> Any:
        """A new SOCK_STREAM socket with ``timeout`` (closed at teardown)."""
        s = self.new_socket(self.socket.SOCK_STREAM)
        s.settimeout(timeout)
        return s

    def track(self, s: Any) -> Any:
        """Close ``s`` at teardown (accepted sockets)."""
        self._sockets.append(s)
        return s

    def stream_pair(
        self, port: int, backlog: int | None = None
    ) -> tuple[Any, Any, Any, tuple[str, int]]:
        """See ``stream_pair``: a loopback listener on ``port``, its client, the accepted socket."""
        return stream_pair(self.new_socket, self.track, self.socket, port, backlog)


class SimHalfClosePeer:
    """A pystack listener on the simulated peer: for each connection it sends
    ``HALF_CLOSE_GREETING`` and its FIN at once (half-close), then reads until the client's FIN."""

    def __init__(self, simulation: Simulation, port: int) -> None:
        self._sim = simulation
        self._connections: list[TCPConnection] = []
        self._data = bytearray()
        self._done = False
        self._listener: TCPListener | None = None

        def start() -> None:
            self._listener = simulation.peer.tcp.listen(port, 16)
            simulation.peer.add_application(self)

        simulation.thread.call(start)

    def next_deadline(self) -> float | None:
        return None

    def step(self, now: float) -> None:
        assert self._listener is not None
        while (connection := self._listener.accept()) is not None:
            connection.send(HALF_CLOSE_GREETING, now)
            connection.shutdown(now)  # the FIN follows the greeting; reading goes on
            self._connections.append(connection)
        for connection in list(self._connections):
            self._data += connection.receive(1 << 20)
            if connection.at_eof:
                self._done = True
                connection.close(now)
                self._connections.remove(connection)

    def received(self, timeout: float) -> bytes:
        assert self._sim.wait_until(lambda: self._done, timeout), "the half-close peer saw no FIN"
        with self._sim.thread.lock:
            return bytes(self._data)


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
        self._half_close: SimHalfClosePeer | None = None

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

    def stream_port(self, name: str) -> int:
        if name == "halfclose":
            if self._half_close is None:
                self._half_close = SimHalfClosePeer(self.sim, HALF_CLOSE_PORT)
            return HALF_CLOSE_PORT
        return SIM_SERVICES[name]

    def half_close_received(self, timeout: float = WAIT) -> bytes:
        assert self._half_close is not None, "stream_port('halfclose') first"
        return self._half_close.received(timeout)

    def free_tcp_port(self) -> int:
        return self.free_port()

    def closed_tcp_port(self) -> int:
        return 81  # nothing listens there on the simulated peer: it answers the SYN with RST


def stream_pair(
    new_socket: Callable[[int], Any],
    track: Callable[[Any], Any],
    module: Any,
    port: int,
    backlog: int | None = None,
) -> tuple[Any, Any, Any, tuple[str, int]]:
    """A listening socket of ``module`` on 127.0.0.1:``port`` (``listen()`` or
    ``listen(backlog)``), a client of the same module connected to it, and the accepted socket:
    ``(listener, client, accepted, address accept() returned)``. Every socket has timeout WAIT."""
    listener = new_socket(module.SOCK_STREAM)
    listener.bind((LOOPBACK, port))
    if backlog is None:
        listener.listen()
    else:
        listener.listen(backlog)
    listener.settimeout(WAIT)
    client = new_socket(module.SOCK_STREAM)
    client.settimeout(WAIT)
    client.connect((LOOPBACK, port))
    accepted, address = listener.accept()
    track(accepted)
    accepted.settimeout(WAIT)
    return listener, client, accepted, address


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
