"""Small TCP services that run inside a stack: echo (RFC 862), discard (RFC 863), chargen
(RFC 864) and daytime (RFC 867); ``start_services`` also starts DNS (``naming.py``) and the
session services: ``http`` (80), ``https`` (8443), ``tlsecho`` (443) and ``mqtt`` (1883), see
``http.py``, ``tls.py``, ``mqtt.py``.

They are applications, not protocol code: each owns a listener and is stepped by ``Stack.poll``
after input is processed (whoever builds one adds it with ``Stack.add_application``, as
``start_services`` does; ``close`` removes it), so they work the same on a real device (``pystack up --serve``) and in
a simulation. They never block and respect flow control: echo reads only as much as it can send.
A step serves only the connections with news (the readiness set the TCP layer fills through
``TCPConnection.ready_set``), so its cost follows the active connections, not the open ones.
``start_services`` also starts the UDP forms of echo, discard and daytime (``datagram.py``) and,
for ``dns``, a DNS server answering ``pystack.test`` with the stack's own address plus the names
it is given (``pystack up --serve dns --hosts FILE``).
Entry points: ``EchoService``, ``DiscardService``, ``ChargenService``, ``DaytimeService``,
``parse_services``, ``start_services``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from pystack.services.datagram import DATAGRAM_SERVICES, DatagramService
from pystack.services.naming import DNSService
from pystack.tcp.connection import TCPConnection
from pystack.tcp.settings import CongestionControlName
from pystack.tcp.state import TCPState

if TYPE_CHECKING:
    from pystack.stack import Stack

CHARGEN_LINE = 72  # RFC 864: 72 printable characters, then CR LF
CHARGEN_CHARACTERS = bytes(range(32, 127))  # the 95 printable ASCII characters
CHARGEN_RUN = 1 << 18  # bytes chargen offers send at most at a time
OWN_NAME = "pystack.test"  # what ``--serve dns`` answers with the stack's own address


def chargen_pattern() -> bytes:
    """One full cycle of RFC 864 lines (95 lines of 74 bytes), each starting one character later."""
    doubled = CHARGEN_CHARACTERS * 2
    return b"".join(doubled[i : i + CHARGEN_LINE] + b"\r\n" for i in range(len(CHARGEN_CHARACTERS)))


class StreamService:
    name = "service"
    default_port = 0

    def __init__(
        self,
        stack: Stack,
        port: int | None = None,
        backlog: int = 128,
        congestion: CongestionControlName | str | None = None,
    ) -> None:
        """``congestion``: the congestion control of the connections served (None: the stack's
        ``congestion_control`` setting)."""
        self.stack = stack
        self.port = port if port is not None else self.default_port
        self.listener = stack.tcp.listen(self.port, backlog)
        if congestion is not None:
            stack.tcp_set_congestion_control(self.listener, congestion)
        # The open connections, in accept order (an insertion-ordered dict used as a set: O(1)
        # removal when one closes).
        self.connections: dict[TCPConnection, None] = {}
        # The readiness set: connections with news since they were last served. The TCP layer
        # adds a connection here (through its ``ready_set``) when a segment, a timer or an ICMP
        # error reached it or it closed; ``step`` serves only these, so a poll costs O(active
        # connections), not O(open ones): closing 10,000 echo connections in the simulator took
        # 490,688 ``serve`` calls when every connection was served on every poll, 10,000 now.
        self._ready: dict[TCPConnection, None] = {}
        # Connections that could not send because the stack's shared buffer memory is full
        # while nothing of theirs is in flight: no ACK of theirs will come to report room, so
        # they are served on every step (as every connection was before the readiness set).
        self._starved: dict[TCPConnection, None] = {}
        self._now = 0.0
        self.served = 0
        self.bytes_in = 0
        self.bytes_out = 0
        self.serve_calls = 0  # connections served, ever: the work the readiness set bounds

    def step(self, now: float) -> None:
        self._now = now
        ready = self._ready
        while (connection := self.listener.accept()) is not None:
            self.connections[connection] = None
            connection.ready_set = ready
            ready[connection] = None  # (it may hold data or a FIN already)
            self.served += 1
            self.opened(connection, now)
        if self._starved:
            ready.update(self._starved)
            self._starved.clear()
        if not ready:
            return
        batch = list(ready)  # serving may add a connection again (it closed): the next step
        ready.clear()
        for connection in batch:
            if connection.state is TCPState.CLOSED:
                connection.ready_set = None
                self.connections.pop(connection, None)
            elif connection in self.connections:
                self.serve_calls += 1
                self.serve(connection, now)
                if (
                    connection.may_send
                    and not connection.send_room
                    and not len(connection.send_buffer)
                ):
                    self._starved[connection] = None

    def again(self, connection: TCPConnection) -> None:
        """Serve ``connection`` at the next step although nothing new arrived (a service that
        stopped at its per-step bound with work left)."""
        self._ready[connection] = None

    def next_deadline(self) -> float | None:
        # Due at once while a connection waits to be served (``again``, or news that arrived
        # after this poll's step, e.g. looped back during the flush); else only new input
        # (which the layer reports in the readiness set) brings work.
        return self._now if self._ready else None

    def opened(self, connection: TCPConnection, now: float) -> None:
        """A new connection was accepted."""

    def serve(self, connection: TCPConnection, now: float) -> None:
        raise NotImplementedError

    def close(self, now: float) -> None:
        self.listener.close(now)
        for connection in list(self.connections):
            connection.ready_set = None
            connection.abort(now)
        self.connections.clear()
        self._ready.clear()
        self.stack.remove_application(self)

    def _finish_if_peer_done(self, connection: TCPConnection, now: float) -> None:
        if connection.at_eof and not connection.fin_queued:
            connection.close(now)

    def describe(self) -> str:
        return f"{self.name}/{self.port}: {self.served} connections, {self.bytes_in} bytes in, {self.bytes_out} out"


class EchoService(StreamService):
    """RFC 862: send back everything received; close after the peer does."""

    name, default_port = "echo", 7

    def serve(self, connection: TCPConnection, now: float) -> None:
        room = connection.send_room
        if room and connection.readable:
            data = connection.receive(room)
            self.bytes_in += len(data)
            self.bytes_out += connection.send(data, now)
        if not connection.readable:
            self._finish_if_peer_done(connection, now)


class DiscardService(StreamService):
    """RFC 863: read and throw away; close after the peer does."""

    name, default_port = "discard", 9

    def serve(self, connection: TCPConnection, now: float) -> None:
        while data := connection.receive(1 << 20):
            self.bytes_in += len(data)
        self._finish_if_peer_done(connection, now)


class ChargenService(StreamService):
    """RFC 864: a repeating pattern until the peer closes, or exactly ``limit`` bytes then close."""

    name, default_port = "chargen", 19

    def __init__(
        self, stack: Stack, port: int | None = None, backlog: int = 128, limit: int | None = None
    ) -> None:
        super().__init__(stack, port, backlog)
        if limit is not None and limit < 0:
            raise ValueError("chargen limit must be >= 0")
        self.limit = limit
        self._pattern = chargen_pattern()
        # The pattern repeated past CHARGEN_RUN bytes: any chunk up to CHARGEN_RUN long starting
        # anywhere in the first cycle is a slice of it, a view handed to send without building
        # the chunk (which cost three copies of it: 32 us per 64 KiB segment under cProfile).
        cycles = CHARGEN_RUN // len(self._pattern) + 2
        self._run = memoryview(self._pattern * cycles)
        self._sent: dict[TCPConnection, int] = {}

    def serve(self, connection: TCPConnection, now: float) -> None:
        while connection.receive(1 << 20):
            pass  # RFC 864: whatever the peer sends is thrown away
        sent = self._sent.get(connection, 0)
        if connection.at_eof or not connection.may_send:
            if not connection.fin_queued:
                connection.close(now)
            self._sent.pop(connection, None)
            return
        run, cycle = self._run, len(self._pattern)
        for _ in range(64):  # bounded work per step
            room = connection.send_room
            remaining = None if self.limit is None else self.limit - sent
            if room == 0 or remaining == 0:
                break
            want = min(room if remaining is None else min(room, remaining), CHARGEN_RUN)
            start = sent % cycle
            accepted = connection.send(run[start : start + want], now)
            sent += accepted
            self.bytes_out += accepted
            if accepted == 0:
                break
        else:
            self.again(connection)  # room left after the bound: go on at the next step
        self._sent[connection] = sent
        if self.limit is not None and sent >= self.limit:
            connection.close(now)
            self._sent.pop(connection, None)


class DaytimeService(StreamService):
    """RFC 867: one line with the date and time, then close."""

    name, default_port = "daytime", 13

    def __init__(
        self,
        stack: Stack,
        port: int | None = None,
        backlog: int = 128,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(stack, port, backlog)
        self._clock = clock

    def opened(self, connection: TCPConnection, now: float) -> None:
        line = time.strftime("%A, %B %d, %Y %H:%M:%S-UTC\r\n", time.gmtime(self._clock()))
        self.bytes_out += connection.send(line.encode(), now)
        connection.close(now)

    def serve(self, connection: TCPConnection, now: float) -> None:
        connection.receive(1 << 20)


_SERVICES: dict[str, type[StreamService]] = {
    "echo": EchoService,
    "discard": DiscardService,
    "chargen": ChargenService,
    "daytime": DaytimeService,
}
_DATAGRAM_ONLY = ("dns",)
_SESSION_SERVICES = ("http", "https", "tlsecho", "mqtt")  # built by _session_service
_NAMES = (*_SERVICES, *_SESSION_SERVICES, *_DATAGRAM_ONLY)


def parse_services(text: str) -> list[tuple[str, int | None]]:
    """``"echo,discard,chargen=1000"`` to [(name, argument)]; ``ValueError`` on a bad spec."""
    result: list[tuple[str, int | None]] = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, _, value = item.partition("=")
        if name not in _NAMES:
            raise ValueError(f"unknown service {name!r} (have: {', '.join(_NAMES)})")
        argument: int | None = None
        if value:
            if name != "chargen" or not value.isdigit():
                raise ValueError(f"bad service argument {item!r} (only chargen=N takes one)")
            argument = int(value)
        result.append((name, argument))
    if not result:
        raise ValueError("no service named")
    return result


Service = StreamService | DatagramService | DNSService


def start_services(
    stack: Stack, text: str, hosts: Mapping[str, int] | None = None
) -> list[Service]:
    """Start each named service on TCP and, for echo, discard and daytime, on UDP too (the RFCs
    define both forms on the same port). ``dns`` is UDP only: its zone is ``pystack.test`` (the
    stack's address) plus ``hosts``."""
    services: list[Service] = []
    for name, argument in parse_services(text):
        if name == "dns":
            services.append(DNSService(stack, {OWN_NAME: stack.address, **(hosts or {})}))
            continue  # DNSService adds itself to the stack's applications
        if name == "chargen":
            service: StreamService = ChargenService(stack, limit=argument)
        elif name in _SESSION_SERVICES:
            service = _session_service(stack, name)
        else:
            service = _SERVICES[name](stack)
        stack.add_application(service)
        services.append(service)
        datagram = DATAGRAM_SERVICES.get(name)
        if datagram is not None:
            udp = datagram(stack)
            stack.add_application(udp)
            services.append(udp)
    return services


def _session_service(stack: Stack, name: str) -> StreamService:
    """``http``, ``https``, ``tlsecho`` or ``mqtt``. Imported here, not at the top: those modules
    build on ``StreamService`` (through ``session.py``), so they import this one."""
    if name == "mqtt":
        from pystack.services.mqtt import MQTTBroker

        return MQTTBroker(stack)
    if name == "tlsecho":
        from pystack.services.tls import TLSEchoService

        return TLSEchoService(stack)
    from pystack.services.http import HTTPService, HTTPSService

    return HTTPSService(stack) if name == "https" else HTTPService(stack)
