"""The stream part of a MicroPython socket: modlwip's TCP calls, errnos and waits.

Rules are those of docs/usocket.md, cited by section. The TCP state machine (modlwip's state
number, the accept ring, bindings) is ``StreamEndpoint`` in ``stream.py``; this part turns it
into the method calls, errnos and waits a script sees. Every stack access happens under the
context's lock; blocking waits use ``context.wait`` with the socket's timeout.
Entry points: ``StreamPart``.
"""

from __future__ import annotations

from typing import Any

from pystack.tcp.connection import TCPConnection
from pystack.tcp.settings import congestion_control_name
from usocket import constants as c
from usocket.addresses import parse_address
from usocket.context import NetworkContext
from usocket.errors import (
    EADDRINUSE,
    EAGAIN,
    EALREADY,
    EBADF,
    ECONNRESET,
    EHOSTUNREACH,
    EINPROGRESS,
    EINVAL,
    EISCONN,
    ENOENT,
    ENOMEM,
    ENOTCONN,
    ETIMEDOUT,
    fail,
)
from usocket.part import SocketPart
from usocket.stream import (
    BADF,
    CONNECTED,
    CONNECTING,
    LISTENING,
    NEW,
    PEER_CLOSED,
    PEER_RST_HANDLED,
    SEND_WAIT_ROOM,
    StreamEndpoint,
    lwip_errno,
)


class StreamPart(SocketPart):
    __slots__ = ("tcp",)

    def __init__(self, context: NetworkContext) -> None:
        super().__init__(context)
        self.tcp = StreamEndpoint(context.streams)

    def state_number(self) -> int:
        with self.context.lock:
            return self.tcp.state()

    # -- options -------------------------------------------------------------------------------------
    def set_reuse(self, reuse: bool) -> None:
        self.reuse = reuse
        self.tcp.reuse = reuse

    def set_nodelay(self, nodelay: bool) -> None:
        tcp = self.tcp
        stack = self.context.stack

        def apply() -> None:
            tcp.nodelay = nodelay
            if tcp.connection is not None:
                stack.tcp_set_nodelay(tcp.connection, nodelay)  # may send what Nagle held

        self.context.call(apply)

    def set_congestion_control(self, value: bytes) -> None:
        """pystack's TCP_CONGESTION (docs/usocket.md): the algorithm named by ``value`` (a
        trailing NUL allowed, as C callers pass it) for this socket's connection, now if it has
        one, else from connect(); on a listening socket, for the connections it accepts.
        ENOENT for an unknown name, as Linux."""
        try:
            name = congestion_control_name(value.rstrip(b"\0").decode("ascii"))
        except (UnicodeDecodeError, ValueError):
            fail(ENOENT)
        tcp = self.tcp
        stack = self.context.stack

        def apply() -> None:
            tcp.congestion = name
            if tcp.listener is not None:
                stack.tcp_set_congestion_control(tcp.listener, name)
            elif tcp.connection is not None:
                stack.tcp_set_congestion_control(tcp.connection, name)

        self.context.call(apply)

    def close(self) -> None:
        super().close()
        tcp = self.tcp
        context = self.context
        context.call(lambda: tcp.close(context.now()))

    # -- bind, listen, accept, connect ---------------------------------------------------------------
    def bind(self, local: tuple[int, int]) -> None:
        self.context.call(lambda: self._bind(local))

    def _bind(self, local: tuple[int, int]) -> None:
        """USOCKET.md 3 bind, under the lock: EADDRINUSE on a clash (SO_REUSEADDR: see listen)."""
        tcp = self.tcp
        if tcp.badf:
            fail(EBADF)
        if tcp.state() != NEW:
            fail(EINVAL)  # lwIP tcp_bind: only in state CLOSED (ERR_VAL)
        try:
            self.context.streams.bind(tcp, local[0], local[1])
        except OSError as error:
            fail(error.errno or EADDRINUSE)

    def listen(self, backlog: int) -> None:
        self.context.call(lambda: self._listen(max(backlog, 0)))

    def _listen(self, backlog: int) -> None:
        tcp = self.tcp
        registry = self.context.streams
        slots = backlog if backlog > 1 else 1  # USOCKET.md 3 listen: one slot, or a ring
        state = tcp.state()
        if state == LISTENING:
            tcp.slots = slots
            return
        if state == BADF:
            fail(EBADF)
        if state != NEW:
            fail(EINVAL)
        if tcp.bound is None:
            registry.bind(tcp, 0, 0)  # listen() on an unbound socket: an ephemeral port
        assert tcp.bound is not None
        address, port = tcp.bound
        if registry.listener_clash(address, port):
            fail(EADDRINUSE)  # lwIP tcp_listen: ERR_USE (both sockets had SO_REUSEADDR)
        try:
            tcp.listener = self.context.stack.tcp_listen(port, address, tcp.congestion)
        except OSError as error:
            fail(error.errno or EADDRINUSE)
        tcp.slots = slots
        registry.listening.add(tcp)
        registry.start_pump()

    def accept(self) -> TCPConnection:
        """USOCKET.md 3 accept: the next connection from the ring (the facade wraps it)."""
        self.check_open()
        tcp = self.tcp
        context = self.context
        while True:
            with context.lock:
                state = tcp.state()
                if state == BADF:
                    fail(EBADF)
                if state != LISTENING:
                    fail(EINVAL)  # USOCKET.md 3 accept: not listening

            def ready() -> bool:
                tcp.take_new_connections()
                return bool(tcp.ring) or tcp.listener is None

            if not context.wait(ready, self.timeout):
                fail(EAGAIN if self.timeout == 0 else ETIMEDOUT)
            with context.lock:
                connection = tcp.ring.popleft() if tcp.ring else None
            if connection is not None:
                return connection  # (else another thread took it, or the socket closed: again)

    def adopt(self, connection: TCPConnection, timeout: int | None) -> None:
        """Become the socket of an accepted ``connection`` (USOCKET.md 3 accept: the listener's
        mode is inherited; Nagle stays on: lwIP does not inherit TF_NODELAY)."""
        self.timeout = timeout
        self.tcp.connection = connection

    def connect(self, address: Any) -> None:
        tcp = self.tcp
        context = self.context
        with context.lock:
            state = tcp.state()
        if state in (BADF, PEER_RST_HANDLED) or state < 0:
            fail(EBADF)  # no PCB: a failed TCP socket cannot be connected again
        remote = parse_address(address)
        context.call(lambda: self._start_connect(remote))
        if self.timeout == 0:
            fail(EINPROGRESS)  # decision 2: always, even when it could complete at once
        if not context.wait(lambda: tcp.state() != CONNECTING, self.timeout):
            fail(ETIMEDOUT)  # the SYN carries on; a later connect() raises EALREADY
        with context.lock:
            state = tcp.state()
        if state < 0:
            fail(-state)  # the error stays pending: recv and poll report it as well

    def _start_connect(self, remote: tuple[int, int]) -> None:
        tcp = self.tcp
        state = tcp.state()
        if state in (BADF, PEER_RST_HANDLED) or state < 0:
            fail(EBADF)  # no PCB: a failed TCP socket cannot be connected again
        if state == CONNECTED:
            fail(EISCONN)
        if state != NEW:
            fail(EALREADY)
        stack = self.context.stack
        if not stack.has_route(remote[0]):
            fail(EHOSTUNREACH)  # lwIP tcp_connect: ERR_RTE, and the state stays NEW
        local_address, local_port = tcp.bound if tcp.bound is not None else (0, None)
        try:
            connection = stack.tcp_connect(
                remote[0],
                remote[1],
                self.context.now(),
                local_port,
                local_address,
                tcp.nodelay,
                tcp.congestion,
            )
        except ValueError:
            fail(EINVAL)  # port 0
        except OSError as error:
            fail(error.errno if error.errno == EADDRINUSE else ENOMEM)
        tcp.connection = connection
        tcp.peer = remote

    # -- send --------------------------------------------------------------------------------------
    def send(self, payload: bytes) -> int:
        """USOCKET.md 3 send: what fits now (maybe short); waits only when nothing fits."""
        tcp = self.tcp
        context = self.context
        wanted = min(SEND_WAIT_ROOM, max(len(payload), 1))

        def attempt() -> int | None:
            state = self._check_connected()
            if state in (NEW, LISTENING):
                fail(ENOTCONN)  # lwIP tcp_write: ERR_CONN
            if state == CONNECTING:
                return None  # no send buffer yet
            connection = tcp.connection
            assert connection is not None
            if not payload:
                return 0
            room = connection.send_room
            if room == 0:
                return None
            try:
                return connection.send(payload[:room], context.now())
            except ConnectionError as error:
                fail(lwip_errno(error.errno or 0))

        def ready() -> bool:
            if tcp.state() not in (CONNECTING, CONNECTED, PEER_CLOSED):
                return True
            connection = tcp.connection
            return connection is not None and connection.send_room >= wanted

        caught_up = False
        while True:
            sent = context.call_and_flush(attempt)
            if sent is not None:
                return sent
            if self.timeout == 0:
                if caught_up or not context.catch_up(ready):
                    fail(EAGAIN)
                caught_up = True  # room appeared at this instant: one more try
                continue
            if not context.wait(ready, self.timeout):
                fail(ETIMEDOUT)

    def sendto(self, payload: bytes, remote: tuple[int, int]) -> int:
        return self.send(payload)  # USOCKET.md 3 sendto: TCP ignores the address

    def _check_connected(self) -> int:
        """modlwip's ``lwip_socket_check_connected`` (under the lock): a socket without a PCB
        raises its pending errno, once (then EBADF); returns the state otherwise."""
        tcp = self.tcp
        state = tcp.state()
        if state == BADF:
            fail(EBADF)
        if state == PEER_RST_HANDLED:
            fail(ECONNRESET)  # decision 3 (modlwip reads outside its table here)
        if state < 0:
            tcp.forget()  # the first send after an error reports it, later ones EBADF
            fail(-state)
        return state

    def sendall(self, payload: bytes) -> None:
        """USOCKET.md 3 sendall: non-blocking and too big for the buffer is EAGAIN, nothing sent."""
        tcp = self.tcp
        if self.timeout == 0:
            with self.context.lock:
                state = self._check_connected()
                connection = tcp.connection
                if state == CONNECTING or connection is None:
                    # CONNECTING has no room yet; a NEW socket's PCB has a whole empty buffer
                    # (send() then says ENOTCONN)
                    free = 0 if state == CONNECTING else self.context.stack.tcp_send_buffer_size
                else:
                    free = connection.send_room
            if len(payload) > free:
                fail(EAGAIN)
        view = memoryview(payload)
        done = 0
        while done < len(payload):
            done += self.send(view[done:].tobytes())

    # -- receive -----------------------------------------------------------------------------------
    def recv(self, bufsize: int, flags: int) -> bytes:
        """USOCKET.md 3 recv, TCP: data first (even after FIN or RST), then the pending error."""
        tcp = self.tcp
        context = self.context
        timeout = 0 if flags & c.MSG_DONTWAIT else self.timeout
        peek = bool(flags & c.MSG_PEEK)

        def attempt() -> bytes | None:
            state = tcp.state()
            if state == LISTENING:
                fail(ENOTCONN)
            connection = tcp.connection
            if connection is not None and connection.readable:
                return connection.peek(bufsize) if peek else connection.receive(bufsize)
            if state < 0:
                if state != BADF:
                    tcp.report(state)  # ECONNRESET once, then b"" forever
                fail(-state)
            if state in (PEER_CLOSED, PEER_RST_HANDLED):
                return b""  # EOF, every time it is asked for
            if timeout == 0:
                fail(EAGAIN)
            if state != CONNECTED:
                fail(ENOTCONN)  # NEW or CONNECTING: a blocking recv does not wait for these
            return None

        def ready() -> bool:
            connection = tcp.connection
            return tcp.state() != CONNECTED or (connection is not None and connection.readable > 0)

        if timeout == 0:
            context.catch_up(ready)  # virtual time: what has arrived by now is there to read
        while True:
            data = context.call_and_flush(attempt)  # (a window update leaves from here)
            if data is not None:
                return data
            if not context.wait(ready, timeout):
                fail(ETIMEDOUT)

    def recvfrom(self, bufsize: int, flags: int) -> tuple[bytes, tuple[int, int]]:
        return self.recv(bufsize, flags), self.tcp.peer

    # -- poll ----------------------------------------------------------------------------------------
    def poll(self, mask: int) -> int:
        with self.context.lock:
            return self.tcp.poll(mask)

    def news(self) -> tuple[int, int, int]:
        tcp = self.tcp
        connection = tcp.connection
        state = tcp.state()
        ended = 1 if state == PEER_CLOSED or (state < 0 and state != BADF) else 0
        return (connection.readable if connection is not None else 0), len(tcp.ring), ended
