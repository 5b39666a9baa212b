"""The MicroPython ``socket`` object (modlwip's ``lwip_socket_obj_t``): a facade over its part.

Rules are those of docs/usocket.md, cited by section. A socket is one of two kinds, fixed at
creation: its ``_part`` is a ``DatagramPart`` (usocket.datagram_part) or a ``StreamPart``
(usocket.stream_part), and every call that differs by kind is one call on the part. This class
keeps what is the same for both: argument checks, the options' parsing, the stream protocol
(read, readline, write...), the poll ioctl, repr and close. The class is created per
``NetworkContext`` by ``socket_type(context)``, so every socket knows its stack without a global.
Every stack access happens under the context's lock; blocking waits use ``context.wait`` with
the socket's timeout (None = blocking, 0 = non-blocking, else milliseconds).
Entry points: ``socket_type``.
"""

from __future__ import annotations

import sys
from typing import Any

from usocket import constants as c
from usocket import streamio
from usocket.addresses import format_address, parse_address
from usocket.context import NetworkContext
from usocket.datagram_part import DatagramPart
from usocket.errors import EAGAIN, EBADF, EINVAL, fail
from usocket.part import SocketPart
from usocket.stream import BADF, DEFAULT_BACKLOG
from usocket.stream_part import StreamPart
from usocket.streamio import allocation_failure, buffer_bytes, machine_int

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


def _receive_size(bufsize: Any) -> int:
    """recv's size as ``lwip_socket_recv`` takes it: ``mp_obj_get_int`` (an int beyond a machine
    word is an OverflowError at once, never a wait), then ``vstr_init_len(size)``. For -1 that
    allocates size + 1 = 0 bytes (one, at least) and lwIP then copies a whole segment or
    datagram into it: on a board the call returns the data, over the heap; pystack returns the
    same data, with no limit, and overwrites nothing. Below -1 the allocation fails at once."""
    size = machine_int(bufsize)
    if size < 0:
        if size != -1:
            raise allocation_failure(size)
        return sys.maxsize
    return size


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
        part: SocketPart
        if self._kind == c.SOCK_STREAM:
            part = StreamPart(self._context)
        elif self._kind == c.SOCK_DGRAM:
            part = DatagramPart(self._context)
        else:
            fail(EINVAL)  # USOCKET.md 2: an unknown type (and SOCK_RAW, off on lwIP ports)
        self._part = part

    def __repr__(self) -> str:
        part = self._part
        state = BADF if part.closed else part.state_number()
        timeout = -1 if part.timeout is None else part.timeout
        return f"<socket state={state} timeout={timeout}>"

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass

    @property
    def _closed(self) -> bool:
        return self._part.closed

    def _check_open(self) -> None:
        if self._part.closed:
            fail(EBADF)

    # -- options (USOCKET.md 3 setsockopt, settimeout) -----------------------------------------
    def settimeout(self, value: float | None) -> None:
        if value is None:
            self._part.timeout = None
            return
        if isinstance(value, str | bytes | bytearray) or not hasattr(value, "__float__"):
            # mp_obj_get_float: a number or nothing (CPython's float("1") would parse strings)
            raise TypeError(f"can't convert {type(value).__name__} to float")
        seconds = float(value)
        if seconds < 0:
            raise ValueError("timeout must be >= 0 or None")
        self._part.timeout = int(1000 * seconds)  # truncation: 0.0004 s means non-blocking

    def setblocking(self, flag: object) -> None:
        self._part.timeout = None if flag else 0

    def setsockopt(self, level: int, optname: int, value: Any) -> None:
        # USOCKET.md 3: the level is ignored, options are told apart by name only (except for
        # pystack's TCP_CONGESTION below, which needs IPPROTO_TCP and a bytes value).
        optname = _get_int(optname)
        if optname in (c.SO_REUSEADDR, c.SO_BROADCAST, c.TCP_NODELAY):
            value = _get_int(value)  # modlwip reads these values with mp_obj_get_int
        part = self._part
        if optname == c.SO_REUSEADDR:
            part.set_reuse(bool(value))
        elif optname == c.SO_BROADCAST:
            part.set_broadcast(bool(value))
        elif optname in (c.IP_ADD_MEMBERSHIP, c.IP_DROP_MEMBERSHIP):
            part.membership(optname == c.IP_ADD_MEMBERSHIP, value)
        elif optname == c.TCP_NODELAY:
            part.set_nodelay(bool(value))
        elif (
            optname == c.TCP_CONGESTION
            and level == c.IPPROTO_TCP
            and isinstance(value, bytes | bytearray)
            and isinstance(part, StreamPart)
        ):
            # pystack's extension (docs/usocket.md): Linux's TCP_CONGESTION, e.g. b"cubic".
            # Any other level, value type or socket kind still gets modlwip's warning below.
            part.set_congestion_control(bytes(value))
        elif optname == c.SO_CALLBACK:
            if value is not None and not callable(value):
                raise TypeError("callback must be callable or None")
            part.check_open()
            part.prepare_callback()
            context = self._context
            context.call(lambda: context.streams.watch(self, value))
        else:
            print(NOT_IMPLEMENTED_WARNING)  # on stdout, as modlwip does

    # -- life cycle ----------------------------------------------------------------------------
    def close(self) -> None:
        part = self._part
        if part.closed:
            return  # USOCKET.md 3 close: twice is fine
        part.close()

    def makefile(self, *arguments: Any) -> _Socket:
        if not 0 <= len(arguments) <= 2:
            raise TypeError("makefile takes 1 to 3 arguments")
        return self  # USOCKET.md 3 makefile: the socket itself

    # -- addresses and data (each one call on the part) ----------------------------------------
    def bind(self, address: Any) -> None:
        local = parse_address(address)
        part = self._part
        if part.closed:
            fail(EBADF)
        part.bind(local)

    def connect(self, address: Any) -> None:
        part = self._part
        if part.closed:
            fail(EBADF)  # modlwip checks the PCB before it parses the address
        part.connect(address)

    def send(self, data: Any) -> int:
        part = self._part
        if part.closed:
            fail(EBADF)
        return part.send(buffer_bytes(data))

    def sendto(self, data: Any, address: Any) -> int:
        part = self._part
        if part.closed:
            fail(EBADF)
        payload = buffer_bytes(data)  # modlwip takes the buffer before it parses the address
        return part.sendto(payload, parse_address(address))

    def sendall(self, data: Any) -> None:
        part = self._part
        if part.closed:
            fail(EBADF)  # modlwip: the PCB check, then the buffer, then the type
        part.sendall(buffer_bytes(data))

    def recv(self, bufsize: int, flags: int = 0) -> bytes:
        size, flags = _receive_size(bufsize), machine_int(flags)
        part = self._part
        if part.closed:
            fail(EBADF)
        return part.recv(size, flags)

    def recvfrom(self, bufsize: int, flags: int = 0) -> tuple[bytes, tuple[str, int]]:
        size, flags = _receive_size(bufsize), machine_int(flags)
        part = self._part
        if part.closed:
            fail(EBADF)
        data, source = part.recvfrom(size, flags)
        return data, format_address(source)

    def listen(self, backlog: int = DEFAULT_BACKLOG) -> None:
        backlog = _get_int(backlog)
        self._check_open()
        self._part.listen(backlog)

    def accept(self) -> tuple[_Socket, tuple[str, int]]:
        source = self._part
        connection = source.accept()  # (EOPNOTSUPP on a datagram socket, before EBADF)
        accepted = type(self)(self._af, c.SOCK_STREAM)
        part = accepted._part
        assert isinstance(part, StreamPart)
        part.adopt(connection, source.timeout)
        return accepted, format_address((connection.remote_address, connection.remote_port))

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
            part = self._part
            return c.POLLNVAL if part.closed else part.poll(argument)
        if request == c.MP_STREAM_CLOSE:
            self.close()
            return 0
        if request == c.MP_STREAM_GET_FILENO:
            return -1
        fail(EINVAL)

    def _news(self) -> tuple[int, int, int]:
        """What a socket callback fires on (under the lock): see ``SocketPart.news``."""
        return self._part.news()
