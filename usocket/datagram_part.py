"""The datagram part of a MicroPython socket: modlwip's UDP calls on a pystack ``UDPEndpoint``.

Rules are those of docs/usocket.md, cited by section. The endpoint is opened at bind, connect
or the first send (``SocketPart.udp_endpoint``); the calls only streams have raise what modlwip
raises for a UDP socket (EOPNOTSUPP for listen and accept, NotImplementedError for sendall).
Entry points: ``DatagramPart``.
"""

from __future__ import annotations

from typing import Any

from pystack.tcp.connection import TCPConnection
from pystack.udp.endpoint import Datagram
from usocket import constants as c
from usocket.addresses import parse_address
from usocket.context import NetworkContext
from usocket.errors import EAGAIN, EHOSTUNREACH, EINVAL, EOPNOTSUPP, ETIMEDOUT, fail
from usocket.part import SocketPart

ACTIVE_UDP = 4  # modlwip's STATE_ACTIVE_UDP


class DatagramPart(SocketPart):
    __slots__ = ("peer",)

    def __init__(self, context: NetworkContext) -> None:
        super().__init__(context)
        self.peer: tuple[int, int] | None = None  # set by connect()

    def state_number(self) -> int:
        return ACTIVE_UDP

    def prepare_callback(self) -> None:
        self.udp_endpoint()  # modlwip's UDP PCB exists from the start

    def bind(self, local: tuple[int, int]) -> None:
        if self.udp is not None:
            old, self.udp = self.udp, None
            self.context.call(old.close)
        self.udp_endpoint(local)

    def connect(self, address: Any) -> None:
        remote = parse_address(address)
        endpoint = self.udp_endpoint()
        self.context.call(lambda: endpoint.connect(remote))
        self.peer = remote

    def send(self, payload: bytes) -> int:
        if self.peer is None:
            fail(EINVAL)  # USOCKET.md 3 send: UDP send() without connect() (lwIP ERR_VAL)
        return self.sendto(payload, self.peer)

    def sendto(self, payload: bytes, remote: tuple[int, int]) -> int:
        # modlwip cuts the data to 65535 bytes, then pbuf_alloc fails for anything one IPv4
        # packet cannot carry: the UDP layer refuses it with ENOMEM and sends nothing.
        endpoint = self.udp_endpoint()
        context = self.context
        try:
            return int(context.call(lambda: endpoint.send_to(payload, remote, context.now())))
        except OSError as error:
            fail(error.errno or EHOSTUNREACH)

    def sendall(self, payload: bytes) -> None:
        raise NotImplementedError("sendall on a UDP socket")

    def recv(self, bufsize: int, flags: int) -> bytes:
        return self.recvfrom(bufsize, flags)[0]

    def recvfrom(self, bufsize: int, flags: int) -> tuple[bytes, tuple[int, int]]:
        timeout = 0 if flags & c.MSG_DONTWAIT else self.timeout
        peek = bool(flags & c.MSG_PEEK)
        got = self._take(timeout, peek)
        while got is None:  # another thread took it first: wait again
            got = self._take(timeout, peek)
        data, source = got
        return data[: max(bufsize, 0)], source  # USOCKET.md 3: the rest of the datagram is lost

    def _take(self, timeout: int | None, peek: bool) -> Datagram | None:
        """Wait for a datagram and take (or peek at) it; None if another thread was first."""
        endpoint = self.udp_endpoint()
        context = self.context
        if not context.wait(lambda: endpoint.pending > 0 or self.closed, timeout):
            fail(EAGAIN if timeout == 0 else ETIMEDOUT)
        self.check_open()
        return context.call(lambda: endpoint.receive(peek))

    def listen(self, backlog: int) -> None:
        fail(EOPNOTSUPP)

    def accept(self) -> TCPConnection:
        fail(EOPNOTSUPP)

    def poll(self, mask: int) -> int:
        endpoint = self.udp
        events = mask & c.POLLOUT
        if endpoint is not None and mask & c.POLLIN and endpoint.pending:
            events |= c.POLLIN
        return events

    def news(self) -> tuple[int, int, int]:
        endpoint = self.udp
        return (endpoint.pending if endpoint is not None else 0), 0, 0
