"""The TCP half of a MicroPython socket: modlwip's stream states on a pystack ``TCPConnection``.

modlwip keeps one small state number per socket (docs/usocket.md 2): NEW, LISTENING,
CONNECTING, CONNECTED, PEER_CLOSED (FIN received), PEER_RST_HANDLED (the RST was reported once),
or a negative lwIP error waiting to be reported. Every errno and poll bit a script sees follows
from that number, so ``StreamEndpoint.state()`` derives it from the pystack connection each time
it is asked, plus the two facts only the socket knows (the RST was reported; the socket lost its
PCB). pystack's errors are mapped to what lwIP would report (``lwip_errno``): a refused connect
is ECONNRESET, a connection that timed out is ECONNABORTED.

lwIP's accept queue is modelled exactly (USOCKET.md 3 listen): ``listen(backlog)`` gives a ring of
``backlog`` slots (one when backlog <= 1). pystack's listener completes handshakes; the context's
``StreamRegistry`` moves each new connection into its socket's ring as soon as the stack has it
(it is a stack application, stepped on every poll) and, when the ring is full, aborts it: the client saw
its connect succeed and then gets a RST, as on a board. A queued connection that the peer reset
is taken off the ring silently; data that arrives before accept() waits in the connection.

Local addresses: lwIP binds a PCB at bind(); pystack has no bound-but-idle PCBs, so the registry
keeps the socket-level bindings and checks clashes against them, pystack's listeners and its
connections (TIME-WAIT included). With SO_REUSEADDR on both sides bind succeeds and listen()
reports the clash, as lwIP does with SO_REUSE=1.
Entry points: ``StreamEndpoint``, ``StreamRegistry``, ``lwip_errno``.
"""

from __future__ import annotations

import errno as _errno
import weakref
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pystack.tcp.connection import TCPConnection
from pystack.tcp.listener import TCPListener
from pystack.tcp.settings import CongestionControlName
from pystack.tcp.state import TCPState
from usocket import constants as c
from usocket.errors import (
    EADDRINUSE,
    ECONNABORTED,
    ECONNRESET,
    EHOSTUNREACH,
)

if TYPE_CHECKING:
    from pystack.stack import Stack
    from usocket.context import NetworkContext

# modlwip's socket states (lwip_socket_obj_t.state); negative values are -errno, pending.
NEW, LISTENING, CONNECTING, CONNECTED, PEER_CLOSED, PEER_RST_HANDLED = 0, 1, 2, 3, 5, 6  # (4: UDP)
BADF = -_errno.EBADF  # the socket lost its PCB (closed, or an error was reported by send)

SEND_WAIT_ROOM = 16  # USOCKET.md 3 send: a blocking send waits until this much is free
DEFAULT_BACKLOG = 2  # MICROPY_PY_SOCKET_LISTEN_BACKLOG_DEFAULT

# pystack's errno (what Linux would say) -> what lwIP reports for the same event.
_LWIP_ERRNO = {
    _errno.ECONNREFUSED: ECONNRESET,  # RST answering the SYN: lwIP says ERR_RST
    _errno.ECONNRESET: ECONNRESET,
    _errno.ETIMEDOUT: ECONNABORTED,  # retransmissions gave up: lwIP aborts the PCB (ERR_ABRT)
    _errno.EHOSTUNREACH: EHOSTUNREACH,  # a hard ICMP error: lwIP's "no route" errno
    _errno.ENETUNREACH: EHOSTUNREACH,
}


def lwip_errno(code: int) -> int:
    """The errno a board reports for a connection error pystack recorded as ``code``."""
    return _LWIP_ERRNO.get(code, ECONNABORTED)


class StreamEndpoint:
    """The TCP state of one socket. Every method runs under the stack lock."""

    def __init__(self, registry: StreamRegistry) -> None:
        self.registry = registry
        self.bound: tuple[int, int] | None = None  # (address, port) from bind() or listen()
        self.reuse = False
        self.nodelay = False
        # pystack's TCP_CONGESTION (None: the stack's setting), applied at connect and listen.
        self.congestion: CongestionControlName | None = None
        self.listener: TCPListener | None = None
        self.ring: deque[TCPConnection] = deque()
        self.slots = 1
        self.connection: TCPConnection | None = None
        self.peer = (0, 0)  # filled in by connect() only (accepted sockets report 0.0.0.0:0)
        self.rst_handled = False
        self.badf = False

    # -- the state number ----------------------------------------------------------------------
    def state(self) -> int:
        if self.badf:
            return BADF
        if self.listener is not None:
            return LISTENING
        connection = self.connection
        if connection is None:
            return NEW
        if self.rst_handled:
            return PEER_RST_HANDLED
        if connection.error is not None:
            return -lwip_errno(connection.error)
        state = connection.state
        if state is TCPState.SYN_SENT or state is TCPState.SYN_RECEIVED:
            return CONNECTING
        if connection.fin_received or state is TCPState.CLOSED:
            return PEER_CLOSED
        return CONNECTED

    def report(self, state: int) -> None:
        """The pending error ``state`` was raised to the script: what modlwip does afterwards."""
        if state == -ECONNRESET:
            self.rst_handled = True
        else:
            self.forget()

    def forget(self) -> None:
        """The PCB is gone (lwIP freed it): from now on the socket is BADF."""
        self.badf = True
        self.registry.unbind(self)

    # -- polling (USOCKET.md 4, socket poll table) ---------------------------------------------
    def poll(self, mask: int) -> int:
        state = self.state()
        if state == LISTENING:
            self.take_new_connections()
            return c.POLLIN if mask & c.POLLIN and self.ring else 0
        if state == BADF:
            return c.POLLNVAL
        if state == NEW:
            return (mask & c.POLLOUT) | c.POLLHUP
        if state == CONNECTING:
            return 0
        connection = self.connection
        assert connection is not None
        events = 0
        if mask & c.POLLIN and connection.readable:
            events |= c.POLLIN
        if state == CONNECTED:
            if mask & c.POLLOUT and connection.send_room > 0:
                events |= c.POLLOUT
        elif state == PEER_CLOSED:
            events |= mask & (c.POLLIN | c.POLLOUT)
        elif state == PEER_RST_HANDLED:
            events |= (mask & c.POLLIN) | c.POLLHUP
        elif state == -ECONNRESET:
            events |= (mask & (c.POLLIN | c.POLLOUT)) | c.POLLERR | c.POLLHUP
        else:  # another pending error: the PCB is gone, only buffered data is left
            events |= c.POLLERR
        return events

    # -- the accept ring -----------------------------------------------------------------------
    def take_new_connections(self) -> None:
        """Move completed handshakes from pystack's listener into the ring; RST what won't fit."""
        listener = self.listener
        if listener is None:
            return
        ring = self.ring
        if ring and any(_reset_before_accept(queued) for queued in ring):
            kept = [queued for queued in ring if not _reset_before_accept(queued)]
            ring.clear()
            ring.extend(kept)
        while (connection := listener.accept()) is not None:
            if _reset_before_accept(connection):
                continue
            if len(ring) >= self.slots:
                # lwIP's accept callback returns ERR_BUF and lwIP aborts the new connection.
                context = self.registry.context
                connection.abort(context.now())
                context.stack.count_event("usocket.accept_queue_full")
                context.thread.wake()  # the RST leaves at the stack thread's next flush
                continue
            ring.append(connection)

    def close(self, now: float) -> None:
        """USOCKET.md 3 close: FIN (or RST when data was left unread); a listener's queue is reset."""
        listener, self.listener = self.listener, None
        if listener is not None:
            for queued in self.ring:
                queued.abort(now)
            self.ring.clear()
            listener.close(now)
            self.registry.listening.discard(self)
        connection, self.connection = self.connection, None
        if connection is not None and connection.state is not TCPState.CLOSED:
            connection.close(now)
        self.registry.unbind(self)
        self.badf = True


def _reset_before_accept(connection: TCPConnection) -> bool:
    """lwIP takes a reset unaccepted connection off the queue, data and all."""
    return connection.state is TCPState.CLOSED and connection.error is not None


class StreamRegistry:
    """The TCP bookkeeping of one ``NetworkContext``: bindings, listening sockets, the pump."""

    def __init__(self, context: NetworkContext) -> None:
        self.context = context
        self.bindings: dict[int, list[StreamEndpoint]] = {}  # port -> sockets holding it
        self.listening: set[StreamEndpoint] = set()
        # sockets with a callback (setsockopt 20): id -> (weak socket, callback, last news)
        self.watched: dict[int, tuple[weakref.ref[Any], Callable[[Any], object], tuple[int, ...]]]
        self.watched = {}
        self._pumping = False

    def step(self, now: float) -> None:
        """The registry is a stack application, stepped on every poll: new connections reach
        their listening socket's ring at once, and sockets with a callback get it scheduled
        when something arrived."""
        for endpoint in list(self.listening):
            endpoint.take_new_connections()
        if self.watched:
            self._run_callbacks()

    def watch(self, sock: Any, callback: Callable[[Any], object] | None) -> None:
        """USOCKET.md 3 setsockopt: optname 20 sets (or, with None, removes) the callback."""
        if callback is None:
            self.watched.pop(id(sock), None)
            return
        self.watched[id(sock)] = (weakref.ref(sock), callback, sock._news())
        self.start_pump()

    def _run_callbacks(self) -> None:
        schedule = self.context.schedule
        for key, (reference, callback, last) in list(self.watched.items()):
            sock = reference()
            if sock is None or sock._closed:
                del self.watched[key]
                continue
            news = sock._news()
            if news == last:
                continue
            self.watched[key] = (reference, callback, news)
            if schedule is None or not any(new > old for new, old in zip(news, last, strict=True)):
                continue  # (only arrivals count: reading the data changes nothing)
            try:
                schedule(callback, sock)
            except RuntimeError:  # micropython.schedule's queue is full
                self.context.stack.count_event("usocket.callback_queue_full")

    def next_deadline(self) -> float | None:
        """No timers: the registry only reacts to what a poll brought."""
        return None

    def start_pump(self) -> None:
        """Join the stack's applications (once) when a socket first needs ``step``."""
        if not self._pumping:
            self._pumping = True
            _add_application(self.context.stack, self)

    # -- local addresses -----------------------------------------------------------------------
    def port_in_use(
        self, address: int, port: int, reuse: bool, endpoint: StreamEndpoint | None = None
    ) -> bool:
        """Would binding ``address:port`` clash? SO_REUSEADDR on both sides lets it through."""
        for other in self.bindings.get(port, ()):
            if other is endpoint or other.bound is None:
                continue
            if _overlap(other.bound[0], address) and not (reuse and other.reuse):
                return True
        stack = self.context.stack
        for listen_address, listen_port in stack.tcp_listening_on():
            if listen_port == port and _overlap(listen_address, address) and not reuse:
                return True
        if not reuse:
            for held_address, held_port in stack.tcp_ports_held():
                if held_port == port and _overlap(held_address, address):
                    return True
        return False

    def listener_clash(self, address: int, port: int) -> bool:
        """Another listener on the port: lwIP's tcp_listen fails with ERR_USE."""
        return any(
            listen_port == port and _overlap(listen_address, address)
            for listen_address, listen_port in self.context.stack.tcp_listening_on()
        )

    def bind(self, endpoint: StreamEndpoint, address: int, port: int) -> None:
        if port == 0:
            port = self.free_port(address)
        elif self.port_in_use(address, port, endpoint.reuse, endpoint):
            raise OSError(EADDRINUSE, "address in use")
        self.unbind(endpoint)
        endpoint.bound = (address, port)
        self.bindings.setdefault(port, []).append(endpoint)

    def unbind(self, endpoint: StreamEndpoint) -> None:
        if endpoint.bound is None:
            return
        holders = self.bindings.get(endpoint.bound[1])
        if holders is not None and endpoint in holders:
            holders.remove(endpoint)
            if not holders:
                del self.bindings[endpoint.bound[1]]
        endpoint.bound = None

    def free_port(self, address: int) -> int:
        for candidate in self.context.stack.tcp_ephemeral_ports():
            if not self.port_in_use(address, candidate, False):
                return candidate
        raise OSError(EADDRINUSE, "no free port")


def _add_application(stack: Stack, application: StreamRegistry) -> None:
    """Have ``stack`` step ``application`` on every poll."""
    stack.add_application(application)


def _overlap(a: int, b: int) -> bool:
    return a == 0 or b == 0 or a == b
