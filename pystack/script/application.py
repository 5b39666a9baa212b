"""The application side of a script: its calls run against pystack's TCP user interface.

``Application`` plays the program that uses pystack: it holds the listener, the current
connection, the UDP socket (``udp bind`` opens it, one per script), every byte it wrote (so ``runner.py`` can check the payload pystack sends) and its
read position in the peer's byte stream (so ``read N`` knows which bytes must come). ``perform``
runs one call, ``check`` one expectation; both raise ``CheckFailed`` with a readable reason.
OSError from pystack is left to the caller (a line may expect it: ``= ECONNRESET``).
The TCP surface used is written down as Protocols, so only these names tie the runner to TCP.
Entry points: ``Application``, ``CheckFailed``.
"""

from __future__ import annotations

import errno
from typing import Protocol

from pystack.script import events as ev
from pystack.script.matching import describe_payload, pattern, payload_bytes, payload_problem
from pystack.stack import Stack
from pystack.stats import DropReason
from pystack.tcp.state import TCPState
from pystack.udp.endpoint import UDPEndpoint
from pystack.wire.addresses import ip_from_str, ip_to_str

DEFAULT_BACKLOG = 5
EOF_PROBE = 65536  # ``read eof`` asks for this much and must get nothing


class ConnectionLike(Protocol):
    state: TCPState
    error: int | None
    local_port: int

    @property
    def at_eof(self) -> bool: ...

    @property
    def readable(self) -> int: ...

    def send(self, data: bytes, now: float) -> int: ...

    def set_nodelay(self, enabled: bool) -> None: ...

    def receive(self, size: int) -> bytes: ...

    def shutdown(self, now: float) -> None: ...

    def close(self, now: float) -> None: ...

    def abort(self, now: float) -> None: ...

    def tcp_info(self) -> dict[str, object]: ...


class ListenerLike(Protocol):
    def accept(self) -> ConnectionLike | None: ...


class TCPLike(Protocol):
    def listen(self, port: int, backlog: int = DEFAULT_BACKLOG) -> ListenerLike: ...

    def connect(
        self, address: int, port: int, now: float, local_port: int | None = None
    ) -> ConnectionLike: ...


class UDPLike(Protocol):
    """The UDP socket surface a script's ``udp`` calls use (pystack's ``UDPEndpoint``)."""

    port: int

    def connect(self, address: tuple[int, int]) -> None: ...

    def take_error(self) -> int: ...

    def send(self, data: bytes, now: float) -> int: ...

    def send_to(self, data: bytes, address: tuple[int, int], now: float) -> int: ...

    def receive(self) -> tuple[bytes, tuple[int, int]] | None: ...

    def close(self, now: float | None = None) -> None: ...


class CheckFailed(Exception):
    """A call or expectation did not go as the line says; ``details`` add lines to the report."""

    def __init__(self, reason: str, details: tuple[str, ...] = ()) -> None:
        super().__init__(reason)
        self.reason, self.details = reason, details


def errno_name(number: int | None) -> str:
    return "none" if number is None else errno.errorcode.get(number, str(number))


class Application:
    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.listener: ListenerLike | None = None
        self.connection: ConnectionLike | None = None
        self.written = bytearray()  # every byte the application gave the current connection
        self.read_position: int | None = None  # peer script seq of the next byte to read
        self.udp: UDPLike | None = None  # the script's UDP socket

    @property
    def tcp(self) -> TCPLike:
        layer: TCPLike | None = getattr(self.stack, "tcp", None)
        if layer is None:
            raise CheckFailed("this stack has no TCP layer (stack.tcp)")
        return layer

    def require_connection(self) -> ConnectionLike:
        if self.connection is None:
            raise CheckFailed("no connection yet: 'connect' or 'accept' one first")
        return self.connection

    def use(self, connection: ConnectionLike) -> None:
        self.connection = connection
        self.written = bytearray()

    # calls ------------------------------------------------------------------------------------
    def perform(self, call: ev.Call, now: float) -> str:
        """Run ``call``; returns a note for the trace."""
        if isinstance(call, ev.Listen):
            self.listener = self.tcp.listen(call.port, call.backlog or DEFAULT_BACKLOG)
            return ""
        if isinstance(call, ev.Connect):
            address = ip_from_str(call.address)
            self.use(self.tcp.connect(address, call.port, now, local_port=call.local_port))
            return f"from port {self.require_connection().local_port}"
        if isinstance(call, ev.Accept):
            return self._accept(call)
        if isinstance(call, ev.Write):
            return self._write(call, now)
        if isinstance(call, ev.Read):
            return self._read(call)
        if isinstance(call, ev.UDPBind | ev.UDPConnect | ev.UDPSendTo | ev.UDPRecvFrom):
            return self._udp(call, now)
        if isinstance(call, ev.UDPClose):
            self.require_udp().close(now)
            self.udp = None
            return ""
        connection = self.require_connection()
        if isinstance(call, ev.NoDelay):
            connection.set_nodelay(call.on)
        elif isinstance(call, ev.Simple):
            getattr(connection, call.name)(now)
        return ""

    def _accept(self, call: ev.Accept) -> str:
        if self.listener is None:
            raise CheckFailed("accept without listen")
        connection = self.listener.accept()
        if connection is None:
            if call.optional:
                return "none ready"
            raise CheckFailed("no connection ready to accept (write 'accept ?' if that is fine)")
        self.use(connection)
        return ""

    def _write(self, call: ev.Write, now: float) -> str:
        connection = self.require_connection()
        if call.text is not None:
            data = call.text.encode()
        else:
            data = pattern(len(self.written) + 1, call.length)  # byte at pystack seq s: s & 0xff
        accepted = connection.send(data, now)
        self.written += data[:accepted]
        if accepted != len(data):
            raise CheckFailed(f"send accepted {accepted} of {len(data)} bytes")
        return ""

    def _read(self, call: ev.Read) -> str:
        if not call.exact and self.connection is None:
            return "no connection: nothing read"  # ``read upto``: none is fine
        connection = self.require_connection()
        if call.length is None:
            data = connection.receive(EOF_PROBE)
            if data:
                raise CheckFailed(f"expected end of stream, but {len(data)} bytes were readable")
            if not connection.at_eof:
                raise CheckFailed("expected end of stream, but the peer's FIN has not arrived")
            return ""
        if call.exact and call.length == 0:  # ``read 0``: nothing is readable now
            waiting = connection.readable
            if waiting:
                raise CheckFailed(f"read 0 bytes, but {waiting} were readable")
            return ""
        if self.read_position is None:
            raise CheckFailed("read before any SYN from the peer: its byte stream is unknown")
        data = connection.receive(call.length)
        wanted = pattern(self.read_position, call.length if call.exact else len(data))
        start = self.read_position
        self.read_position += len(data)
        if data == wanted:
            return ""
        if len(data) != len(wanted):
            raise CheckFailed(f"read {len(data)} bytes, expected {len(wanted)}")
        index = next(i for i, (a, b) in enumerate(zip(data, wanted, strict=True)) if a != b)
        raise CheckFailed(
            f"read wrong data: byte {index} (peer seq {start + index}) is {data[index]}, "
            f"expected {wanted[index]}"
        )

    # UDP --------------------------------------------------------------------------------------
    def open_udp(self, port: int) -> UDPLike:
        """A UDP socket bound to ``port`` (0: an ephemeral one)."""
        endpoint: UDPEndpoint = self.stack.udp.open(0, port)
        return endpoint

    def require_udp(self) -> UDPLike:
        if self.udp is None:
            raise CheckFailed("no UDP socket yet: open one with 'udp bind PORT' first")
        return self.udp

    def _udp(
        self, call: ev.UDPBind | ev.UDPConnect | ev.UDPSendTo | ev.UDPRecvFrom, now: float
    ) -> str:
        if isinstance(call, ev.UDPBind):
            if self.udp is not None:
                raise CheckFailed("the script's UDP socket is open already ('udp close' first)")
            self.udp = self.open_udp(call.port)
            return f"port {self.udp.port}" if call.port == 0 else ""
        endpoint = self.require_udp()
        if isinstance(call, ev.UDPConnect):
            endpoint.connect((ip_from_str(call.address), call.port))
            return ""
        # A connected socket reports a pending ICMP error on its next send or receive, once
        # (as Linux: the error is the socket's until a call takes it).
        pending = endpoint.take_error()
        if pending:
            raise OSError(pending, errno.errorcode.get(pending, str(pending)))
        if isinstance(call, ev.UDPSendTo):
            data = payload_bytes(call.payload)
            if call.address is None or call.port is None:
                endpoint.send(data, now)
            else:
                endpoint.send_to(data, (ip_from_str(call.address), call.port), now)
            return ""
        return self._receive_datagram(endpoint, call)

    def _receive_datagram(self, endpoint: UDPLike, call: ev.UDPRecvFrom) -> str:
        datagram = endpoint.receive()
        if datagram is None:
            raise OSError(errno.EAGAIN, "no datagram queued")  # the socket never blocks here
        data, (address, port) = datagram
        source = f"{ip_to_str(address)}:{port}"
        problem = payload_problem(call.payload, data)
        if problem is not None:
            raise CheckFailed(f"the datagram from {source} differs: {problem}")
        if call.source is not None and (ip_from_str(call.source[0]), call.source[1]) != (
            address,
            port,
        ):
            wanted = f"{call.source[0]}:{call.source[1]}"
            raise CheckFailed(f"the datagram came from {source}, expected {wanted}")
        shown = describe_payload(data)
        return f"{len(data)} bytes from {source}" + (
            "" if shown.data is None else f" ({_short(data)})"
        )

    # expectations -----------------------------------------------------------------------------
    def check(self, expectation: ev.Expectation) -> None:
        counters = self.stack.counters if isinstance(expectation, _COUNTED) else None
        if isinstance(expectation, ev.ExpectCounter):
            assert counters is not None
            try:
                counted = counters.counters.get(expectation.name, 0)
            except KeyError as error:  # not declared in pystack/counters.py
                raise CheckFailed(str(error.args[0])) from None
            _compare(f"counter {expectation.name}", counted, expectation.value)
        elif isinstance(expectation, ev.ExpectDrop):
            assert counters is not None
            count = counters.drops.get(DropReason[expectation.reason], 0)
            _compare(f"drop count {expectation.reason}", count, expectation.value)
        elif isinstance(expectation, ev.ExpectState):
            state = self.require_connection().state
            if state is not expectation.state:
                raise CheckFailed(f"state is {state.value}, expected {expectation.state.value}")
        elif isinstance(expectation, ev.ExpectError):
            name = errno_name(self.require_connection().error)
            if name != (expectation.name or "none"):
                raise CheckFailed(f"error is {name}, expected {expectation.name or 'none'}")
        elif isinstance(expectation, ev.ExpectInfo):
            info = self.require_connection().tcp_info()
            if expectation.key not in info:
                raise CheckFailed(
                    f"tcp_info has no {expectation.key!r}", (f"keys: {sorted(info)}",)
                )
            value = info[expectation.key]
            if value != expectation.value and str(value) != str(expectation.value):
                raise CheckFailed(
                    f"tcp_info {expectation.key} is {value}, expected {expectation.value}"
                )


_COUNTED = (ev.ExpectCounter, ev.ExpectDrop)  # checks that read the stack's counters


def _compare(what: str, actual: int, expected: int) -> None:
    if actual != expected:
        raise CheckFailed(f"{what} is {actual}, expected {expected}")


def _short(data: bytes) -> str:
    try:
        text = data.decode()
    except UnicodeDecodeError:
        return f"hex {data.hex()}"
    return repr(text) if text.isprintable() else f"hex {data.hex()}"
