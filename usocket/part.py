"""What every MicroPython socket has, whatever its type: the base of its datagram or stream part.

A script's ``socket`` object (``usocket.socket``) is a thin facade over one part, chosen by the
socket type at creation: ``DatagramPart`` (usocket.datagram_part) or ``StreamPart``
(usocket.stream_part). ``SocketPart`` holds the state both kinds share (timeout, closed, the
SO_REUSEADDR and SO_BROADCAST flags) and declares the calls the facade makes; each part answers
them the way modlwip does for its kind (docs/usocket.md, cited by section), so the facade never
asks which kind it has.

Multicast membership (IP_ADD_MEMBERSHIP) needs a UDP endpoint in pystack, where lwIP joins the
group on the interface: a datagram socket uses its own endpoint, a stream socket gets one on the
side. That endpoint (``udp``) is therefore kept here, opened on first use.
Entry points: ``SocketPart``.
"""

from __future__ import annotations

from typing import Any

from pystack.tcp.connection import TCPConnection
from pystack.udp.endpoint import UDPEndpoint
from usocket.context import NetworkContext
from usocket.errors import EADDRINUSE, EBADF, fail
from usocket.streamio import buffer_bytes


class SocketPart:
    """The kind-specific half of a socket. Methods not marked "under the lock" take it."""

    __slots__ = ("broadcast", "closed", "context", "reuse", "timeout", "udp")

    def __init__(self, context: NetworkContext) -> None:
        self.context = context
        self.timeout: int | None = None  # ms; None: blocking, 0: non-blocking
        self.closed = False
        self.reuse = False
        self.broadcast = False
        self.udp: UDPEndpoint | None = None  # created at bind/connect/first send (or a join)

    def check_open(self) -> None:
        if self.closed:
            fail(EBADF)

    # -- the UDP endpoint --------------------------------------------------------------------------
    def udp_endpoint(self, address: tuple[int, int] = (0, 0)) -> UDPEndpoint:
        """The UDP endpoint, bound to ``address`` (0 = any, port 0 = ephemeral) on first use."""
        self.check_open()
        endpoint = self.udp
        if endpoint is None:
            context = self.context
            try:
                endpoint = context.call(
                    lambda: context.stack.open_udp(address[0], address[1], reuse=self.reuse)
                )
            except OSError as error:
                fail(error.errno or EADDRINUSE)
            endpoint.broadcast = self.broadcast
            self.udp = endpoint
        return endpoint

    # -- options (USOCKET.md 3 setsockopt) ---------------------------------------------------------
    def set_reuse(self, reuse: bool) -> None:
        self.reuse = reuse

    def set_broadcast(self, broadcast: bool) -> None:
        self.broadcast = broadcast
        endpoint = self.udp
        if endpoint is not None:
            self.context.call(lambda: setattr(endpoint, "broadcast", broadcast))

    def set_nodelay(self, nodelay: bool) -> None:
        """TCP_NODELAY: only stream sockets take it (others ignore it silently)."""

    def membership(self, join: bool, value: Any) -> None:
        """IP_ADD_MEMBERSHIP / IP_DROP_MEMBERSHIP with an 8-byte ``ip_mreq``."""
        buffer = buffer_bytes(value)
        if len(buffer) != 8:
            raise ValueError("ip_mreq must be 8 bytes")
        group = int.from_bytes(buffer[:4], "big")
        interface = int.from_bytes(buffer[4:], "big")
        endpoint = self.udp_endpoint()
        context = self.context
        if join:
            context.call(lambda: endpoint.join(group, interface, context.now()))
        else:
            context.call(lambda: endpoint.leave(group, interface, context.now()))

    def prepare_callback(self) -> None:
        """Before a socket callback is set (SO_CALLBACK): make what it watches exist."""

    # -- life cycle ----------------------------------------------------------------------------------
    def close(self) -> None:
        """USOCKET.md 3 close (the facade has checked it is the first call)."""
        self.closed = True
        endpoint, self.udp = self.udp, None
        if endpoint is not None:
            self.context.call(endpoint.close)

    # -- the calls every socket has, answered per kind -----------------------------------------------
    def state_number(self) -> int:
        """modlwip's state number, for repr (takes the lock when it must)."""
        raise NotImplementedError

    def bind(self, local: tuple[int, int]) -> None:
        raise NotImplementedError

    def connect(self, address: Any) -> None:
        raise NotImplementedError

    def send(self, payload: bytes) -> int:
        raise NotImplementedError

    def sendto(self, payload: bytes, remote: tuple[int, int]) -> int:
        raise NotImplementedError

    def sendall(self, payload: bytes) -> None:
        raise NotImplementedError

    def recv(self, bufsize: int, flags: int) -> bytes:
        raise NotImplementedError

    def recvfrom(self, bufsize: int, flags: int) -> tuple[bytes, tuple[int, int]]:
        raise NotImplementedError

    def listen(self, backlog: int) -> None:
        raise NotImplementedError

    def accept(self) -> TCPConnection:
        raise NotImplementedError

    def poll(self, mask: int) -> int:
        """USOCKET.md 4, on an open socket."""
        raise NotImplementedError

    def news(self) -> tuple[int, int, int]:
        """What a socket callback fires on (under the lock): bytes or datagrams waiting,
        connections waiting, and whether the peer closed (or an error came)."""
        raise NotImplementedError
