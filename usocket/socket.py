"""The MicroPython ``socket`` object (modlwip's ``lwip_socket_obj_t``): datagrams and streams.

Rules are those of shared/USOCKET.md, cited by section. The TCP state machine (modlwip's state
number, the accept ring, bindings) is in ``stream.py``; this class turns it into the method
calls, errnos and waits a script sees. The class is created per
``NetworkContext`` by ``socket_type(context)``, so every socket knows its stack without a global.
Every stack access happens under the context's lock; blocking waits use ``context.wait`` with
the socket's timeout (None = blocking, 0 = non-blocking, else milliseconds).
Entry points: ``socket_type``.
"""

from __future__ import annotations

from typing import Any

from usocket import constants as c
from usocket import streamio
from usocket.addresses import format_address, parse_address
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
    ENOMEM,
    ENOTCONN,
    EOPNOTSUPP,
    ETIMEDOUT,
    fail,
)
from usocket.stream import (
    BADF,
    CONNECTED,
    CONNECTING,
    DEFAULT_BACKLOG,
    LISTENING,
    NEW,
    PEER_CLOSED,
    PEER_RST_HANDLED,
    SEND_WAIT_ROOM,
    StreamEndpoint,
    lwip_errno,
)
from usocket.streamio import buffer_bytes

MAX_DATAGRAM = 65535  # USOCKET.md 3 send: longer UDP data is cut to this
NOT_IMPLEMENTED_WARNING = "Warning: lwip.setsockopt() not implemented"


def _int_arguments(arguments: tuple[Any, ...]) -> tuple[int, int, int]:
    """USOCKET.md 2: 0 to 4 positional ints (the fourth is ignored); None is a TypeError."""
    if len(arguments) > 4:
        raise TypeError("function takes at most 4 positional arguments")
    for value in arguments:
        if not isinstance(value, int):
            raise TypeError(f"can't convert {type(value).__name__} to int")
    af = arguments[0] if len(arguments) > 0 else c.AF_INET
    kind = arguments[1] if len(arguments) > 1 else c.SOCK_STREAM
    proto = arguments[2] if len(arguments) > 2 else 0
    return af, kind, proto


def _get_int(value: Any) -> int:
    """MicroPython's ``mp_obj_get_int``: an int (or bool); anything else is a TypeError."""
    if not isinstance(value, int):
        raise TypeError(f"can't convert {type(value).__name__} to int")
    return value


def socket_type(context: NetworkContext) -> type:
    """The ``socket`` class for scripts running on ``context``'s stack."""

    class socket(_Socket):
        _context = context

    socket.__qualname__ = "socket"
    return socket


class _Socket:
    _context: NetworkContext
    _stack_driven = True  # readiness changes only when the stack polls (polling.py)

    def __init__(self, *arguments: Any, **keywords: Any) -> None:
        if keywords:
            raise TypeError("function doesn't take keyword arguments")
        self._af, self._kind, self._proto = _int_arguments(arguments)
        if self._kind not in (c.SOCK_STREAM, c.SOCK_DGRAM):
            fail(EINVAL)  # USOCKET.md 2: an unknown type (and SOCK_RAW, off on lwIP ports)
        self._timeout: int | None = None  # blocking
        self._closed = False
        self._reuse = False
        self._broadcast = False
        self._endpoint: Any = None  # UDP endpoint, created at bind/connect/first send
        self._peer: tuple[int, int] | None = None
        self._tcp: StreamEndpoint | None = None
        if self._kind == c.SOCK_STREAM:
            self._tcp = StreamEndpoint(self._context.streams)

    def __repr__(self) -> str:
        if self._closed:
            state = BADF
        elif self._tcp is None:
            state = 4  # modlwip's STATE_ACTIVE_UDP
        else:
            with self._context.lock:
                state = self._tcp.state()
        timeout = -1 if self._timeout is None else self._timeout
        return f"<socket state={state} timeout={timeout}>"

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass

    # -- options (USOCKET.md 3 setsockopt, settimeout) -----------------------------------------
    def settimeout(self, value: float | None) -> None:
        if value is None:
            self._timeout = None
            return
        if isinstance(value, str | bytes | bytearray) or not hasattr(value, "__float__"):
            # mp_obj_get_float: a number or nothing (CPython's float("1") would parse strings)
            raise TypeError(f"can't convert {type(value).__name__} to float")
        seconds = float(value)
        if seconds < 0:
            raise ValueError("timeout must be >= 0 or None")
        self._timeout = int(1000 * seconds)  # truncation: 0.0004 s means non-blocking

    def setblocking(self, flag: object) -> None:
        self._timeout = None if flag else 0

    def setsockopt(self, level: int, optname: int, value: Any) -> None:
        del level  # USOCKET.md 3: the level is ignored, options are told apart by name only
        optname = _get_int(optname)
        if optname in (c.SO_REUSEADDR, c.SO_BROADCAST, c.TCP_NODELAY):
            value = _get_int(value)  # modlwip reads these values with mp_obj_get_int
        if optname == c.SO_REUSEADDR:
            self._reuse = bool(value)
            if self._tcp is not None:
                self._tcp.reuse = self._reuse
        elif optname == c.SO_BROADCAST:
            self._broadcast = bool(value)
            if self._endpoint is not None:
                self._context.call(lambda: setattr(self._endpoint, "broadcast", self._broadcast))
        elif optname in (c.IP_ADD_MEMBERSHIP, c.IP_DROP_MEMBERSHIP):
            self._membership(optname == c.IP_ADD_MEMBERSHIP, value)
        elif optname == c.TCP_NODELAY:
            if self._tcp is not None:
                nodelay = bool(value)
                self._context.call(lambda: self._set_nodelay(nodelay))
        elif optname == c.SO_CALLBACK:
            if value is not None and not callable(value):
                raise TypeError("callback must be callable or None")
            self._check_open()
            if self._tcp is None:
                self._udp_endpoint()  # modlwip's UDP PCB exists from the start
            self._context.call(lambda: self._context.streams.watch(self, value))
        else:
            print(NOT_IMPLEMENTED_WARNING)  # on stdout, as modlwip does

    def _set_nodelay(self, nodelay: bool) -> None:
        tcp = self._stream()
        tcp.nodelay = nodelay
        if tcp.connection is not None:
            tcp.connection.nodelay = nodelay
            tcp.connection.owner.connection_changed(tcp.connection)  # may send what Nagle held

    def _membership(self, join: bool, value: Any) -> None:
        buffer = buffer_bytes(value)
        if len(buffer) != 8:
            raise ValueError("ip_mreq must be 8 bytes")
        group = int.from_bytes(buffer[:4], "big")
        interface = int.from_bytes(buffer[4:], "big")
        endpoint = self._udp_endpoint()
        context = self._context
        if join:
            context.call(lambda: endpoint.join(group, interface, context.now()))
        else:
            context.call(lambda: endpoint.leave(group, interface, context.now()))

    # -- life cycle ----------------------------------------------------------------------------
    def close(self) -> None:
        if self._closed:
            return  # USOCKET.md 3 close: twice is fine
        self._closed = True
        endpoint, self._endpoint = self._endpoint, None
        if endpoint is not None:
            self._context.call(endpoint.close)
        tcp = self._tcp
        if tcp is not None:
            context = self._context
            context.call(lambda: tcp.close(context.now()))

    def makefile(self, *arguments: Any) -> _Socket:
        if not 0 <= len(arguments) <= 2:
            raise TypeError("makefile takes 1 to 3 arguments")
        return self  # USOCKET.md 3 makefile: the socket itself

    def _check_open(self) -> None:
        if self._closed:
            fail(EBADF)

    # -- datagram ------------------------------------------------------------------------------
    def _udp_endpoint(self, address: tuple[int, int] = (0, 0)) -> Any:
        """The UDP endpoint, bound to ``address`` (0 = any, port 0 = ephemeral) on first use."""
        self._check_open()
        if self._endpoint is None:
            context = self._context
            try:
                self._endpoint = context.call(
                    lambda: context.stack.udp.open(address[0], address[1], reuse=self._reuse)
                )
            except OSError as error:
                fail(error.errno or EADDRINUSE)
            self._endpoint.broadcast = self._broadcast
        return self._endpoint

    def bind(self, address: Any) -> None:
        local = parse_address(address)
        self._check_open()
        if self._tcp is not None:
            self._context.call(lambda: self._bind_stream(local))
            return
        if self._endpoint is not None:
            old, self._endpoint = self._endpoint, None
            self._context.call(old.close)
        self._udp_endpoint(local)

    def connect(self, address: Any) -> None:
        self._check_open()  # modlwip checks the PCB before it parses the address
        if self._tcp is not None:
            tcp = self._tcp
            with self._context.lock:
                state = tcp.state()
            if state in (BADF, PEER_RST_HANDLED) or state < 0:
                fail(EBADF)  # no PCB: a failed TCP socket cannot be connected again
            self._connect_stream(parse_address(address))
            return
        remote = parse_address(address)
        endpoint = self._udp_endpoint()
        self._context.call(lambda: endpoint.connect(remote))
        self._peer = remote

    def send(self, data: Any) -> int:
        self._check_open()
        payload = buffer_bytes(data)
        if self._tcp is not None:
            return self._send_stream(payload)
        if self._peer is None:
            fail(EINVAL)  # USOCKET.md 3 send: UDP send() without connect() (lwIP ERR_VAL)
        return self._send_to(payload, self._peer)

    def sendto(self, data: Any, address: Any) -> int:
        self._check_open()
        payload = buffer_bytes(data)  # modlwip takes the buffer before it parses the address
        remote = parse_address(address)
        if self._kind != c.SOCK_DGRAM:
            return self.send(payload)  # USOCKET.md 3 sendto: TCP ignores the address
        return self._send_to(payload, remote)

    def _send_to(self, payload: bytes, remote: tuple[int, int]) -> int:
        payload = payload[:MAX_DATAGRAM]
        endpoint = self._udp_endpoint()
        context = self._context
        try:
            return int(context.call(lambda: endpoint.send_to(payload, remote, context.now())))
        except OSError as error:
            fail(error.errno or EHOSTUNREACH)

    def sendall(self, data: Any) -> None:
        self._check_open()  # modlwip: the PCB check, then the buffer, then the type
        payload = buffer_bytes(data)
        if self._tcp is None:
            raise NotImplementedError("sendall on a UDP socket")
        self._sendall_stream(payload)

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        return self._receive(bufsize, flags)[0]

    def recvfrom(self, bufsize: int, flags: int = 0) -> tuple[bytes, tuple[str, int]]:
        data, source = self._receive(bufsize, flags)
        return data, format_address(source)

    def _receive(self, bufsize: int, flags: int) -> tuple[bytes, tuple[int, int]]:
        if not isinstance(bufsize, int) or not isinstance(flags, int):
            raise TypeError("bufsize and flags must be ints")
        self._check_open()
        if self._tcp is not None:
            return self._receive_stream(bufsize, flags), self._tcp.peer
        endpoint = self._udp_endpoint()
        timeout = 0 if flags & c.MSG_DONTWAIT else self._timeout
        peek = bool(flags & c.MSG_PEEK)
        context = self._context
        if not context.wait(lambda: endpoint.pending > 0 or self._closed, timeout):
            fail(EAGAIN if timeout == 0 else ETIMEDOUT)
        self._check_open()
        got = context.call(lambda: endpoint.receive(peek))
        if got is None:  # another thread took it first
            return self._receive(bufsize, flags)
        data, source = got
        return data[: max(bufsize, 0)], source  # USOCKET.md 3: the rest of the datagram is lost

    # -- the stream protocol every modlwip socket has (py/stream.c; USOCKET.md 3) --------------
    def _read_once(self, size: int) -> bytes | None:
        """The stream read hook: recv without flags; EAGAIN is "would block"."""
        try:
            return self.recv(size)
        except OSError as error:
            if error.args[:1] == (EAGAIN,):
                return None
            raise

    def _write_once(self, data: bytes) -> int | None:
        """The stream write hook: send; EAGAIN is "would block"."""
        try:
            return self.send(data)
        except OSError as error:
            if error.args[:1] == (EAGAIN,):
                return None
            raise

    def read(self, size: int | None = None) -> bytes | None:
        return streamio.read(self._read_once, size)

    def readall(self) -> bytes | None:
        return streamio.read_all(self._read_once)

    def readline(self, limit: int | None = None) -> bytes | None:
        return streamio.readline(self._read_once, limit)

    def readinto(self, buffer: Any, nbytes: int | None = None) -> int | None:
        return streamio.readinto(self._read_once, buffer, nbytes)

    def write(self, buffer: Any, *arguments: int) -> int | None:
        return streamio.write(self._write_once, streamio.write_slice(buffer, arguments))

    # -- poll (USOCKET.md 4) ---------------------------------------------------------------------
    def ioctl(self, request: int, argument: int = 0) -> int:
        if request == c.MP_STREAM_POLL:
            return self._poll(argument)
        if request == c.MP_STREAM_CLOSE:
            self.close()
            return 0
        if request == c.MP_STREAM_GET_FILENO:
            return -1
        fail(EINVAL)

    def _poll(self, mask: int) -> int:
        if self._closed:
            return c.POLLNVAL
        if self._kind == c.SOCK_DGRAM:
            endpoint = self._endpoint
            events = mask & c.POLLOUT
            if endpoint is not None and mask & c.POLLIN and endpoint.pending:
                events |= c.POLLIN
            return events
        tcp = self._stream()
        with self._context.lock:
            return tcp.poll(mask)

    def _news(self) -> tuple[int, int, int]:
        """What a socket callback fires on (under the lock): bytes or datagrams waiting,
        connections waiting, and whether the peer closed (or an error came)."""
        tcp = self._tcp
        if tcp is None:
            endpoint = self._endpoint
            return (endpoint.pending if endpoint is not None else 0), 0, 0
        connection = tcp.connection
        state = tcp.state()
        ended = 1 if state == PEER_CLOSED or (state < 0 and state != BADF) else 0
        return (connection.readable if connection is not None else 0), len(tcp.ring), ended

    # -- stream (TCP) ----------------------------------------------------------------------------
    def _stream(self) -> StreamEndpoint:
        assert self._tcp is not None
        return self._tcp

    def _bind_stream(self, local: tuple[int, int]) -> None:
        """USOCKET.md 3 bind, under the lock: EADDRINUSE on a clash (SO_REUSEADDR: see listen)."""
        tcp = self._stream()
        if tcp.badf:
            fail(EBADF)
        if tcp.state() != NEW:
            fail(EINVAL)  # lwIP tcp_bind: only in state CLOSED (ERR_VAL)
        try:
            self._context.streams.bind(tcp, local[0], local[1])
        except OSError as error:
            fail(error.errno or EADDRINUSE)

    def listen(self, backlog: int = DEFAULT_BACKLOG) -> None:
        backlog = _get_int(backlog)
        self._check_open()
        if self._tcp is None:
            fail(EOPNOTSUPP)
        self._context.call(lambda: self._listen_stream(max(backlog, 0)))

    def _listen_stream(self, backlog: int) -> None:
        tcp = self._stream()
        registry = self._context.streams
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
        stack = self._context.stack
        try:
            tcp.listener = stack.tcp.listen(port, stack.tcp.settings.max_backlog, address)
        except OSError as error:
            fail(error.errno or EADDRINUSE)
        tcp.slots = slots
        registry.listening.add(tcp)
        registry.start_pump()

    def accept(self) -> tuple[_Socket, tuple[str, int]]:
        tcp = self._tcp
        if tcp is None:
            fail(EOPNOTSUPP)
        self._check_open()
        context = self._context
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

            if not context.wait(ready, self._timeout):
                fail(EAGAIN if self._timeout == 0 else ETIMEDOUT)
            with context.lock:
                connection = tcp.ring.popleft() if tcp.ring else None
            if connection is not None:
                break  # (else another thread took it, or the socket closed: look again)
        accepted = type(self)(self._af, c.SOCK_STREAM)
        accepted._timeout = self._timeout  # USOCKET.md 3 accept: inherits the listener's mode
        accepted._stream().connection = connection  # (Nagle on: lwIP does not inherit TF_NODELAY)
        return accepted, format_address((connection.remote_address, connection.remote_port))

    def _connect_stream(self, remote: tuple[int, int]) -> None:
        tcp = self._stream()
        context = self._context
        context.call(lambda: self._start_connect(remote))
        if self._timeout == 0:
            fail(EINPROGRESS)  # decision 2: always, even when it could complete at once
        if not context.wait(lambda: tcp.state() != CONNECTING, self._timeout):
            fail(ETIMEDOUT)  # the SYN carries on; a later connect() raises EALREADY
        with context.lock:
            state = tcp.state()
        if state < 0:
            fail(-state)  # the error stays pending: recv and poll report it as well

    def _start_connect(self, remote: tuple[int, int]) -> None:
        tcp = self._stream()
        state = tcp.state()
        if state in (BADF, PEER_RST_HANDLED) or state < 0:
            fail(EBADF)  # no PCB: a failed TCP socket cannot be connected again
        if state == CONNECTED:
            fail(EISCONN)
        if state != NEW:
            fail(EALREADY)
        stack = self._context.stack
        if stack.ip.routes.lookup(remote[0]) is None:
            fail(EHOSTUNREACH)  # lwIP tcp_connect: ERR_RTE, and the state stays NEW
        local_address, local_port = tcp.bound if tcp.bound is not None else (0, None)
        try:
            connection = stack.tcp.connect(
                remote[0], remote[1], self._context.now(), local_port, local_address
            )
        except ValueError:
            fail(EINVAL)  # port 0
        except OSError as error:
            fail(error.errno if error.errno == EADDRINUSE else ENOMEM)
        connection.nodelay = tcp.nodelay
        tcp.connection = connection
        tcp.peer = remote

    def _send_stream(self, payload: bytes) -> int:
        """USOCKET.md 3 send: what fits now (maybe short); waits only when nothing fits."""
        tcp = self._stream()
        context = self._context
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

        while True:
            sent = context.call_and_flush(attempt)
            if sent is not None:
                return sent
            if self._timeout == 0:
                fail(EAGAIN)
            if not context.wait(ready, self._timeout):
                fail(ETIMEDOUT)

    def _check_connected(self) -> int:
        """modlwip's ``lwip_socket_check_connected`` (under the lock): a socket without a PCB
        raises its pending errno, once (then EBADF); returns the state otherwise."""
        tcp = self._stream()
        state = tcp.state()
        if state == BADF:
            fail(EBADF)
        if state == PEER_RST_HANDLED:
            fail(ECONNRESET)  # decision 3 (modlwip reads outside its table here)
        if state < 0:
            tcp.forget()  # the first send after an error reports it, later ones EBADF
            fail(-state)
        return state

    def _sendall_stream(self, payload: bytes) -> None:
        """USOCKET.md 3 sendall: non-blocking and too big for the buffer is EAGAIN, nothing sent."""
        tcp = self._stream()
        if self._timeout == 0:
            with self._context.lock:
                state = self._check_connected()
                connection = tcp.connection
                if state == CONNECTING or connection is None:
                    # CONNECTING has no room yet; a NEW socket's PCB has a whole empty buffer
                    # (send() then says ENOTCONN)
                    free = (
                        0 if state == CONNECTING else self._context.stack.tcp.settings.send_buffer
                    )
                else:
                    free = connection.send_room
            if len(payload) > free:
                fail(EAGAIN)
        view = memoryview(payload)
        done = 0
        while done < len(payload):
            done += self._send_stream(view[done:].tobytes())

    def _receive_stream(self, bufsize: int, flags: int) -> bytes:
        """USOCKET.md 3 recv, TCP: data first (even after FIN or RST), then the pending error."""
        if bufsize < 0:
            raise ValueError("negative buffersize in recv")
        tcp = self._stream()
        context = self._context
        timeout = 0 if flags & c.MSG_DONTWAIT else self._timeout
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

        while True:
            data = context.call(attempt)
            if data is not None:
                return data
            if not context.wait(ready, timeout):
                fail(ETIMEDOUT)
