"""Per-connection sessions: the shape of the bigger services (HTTP, MQTT, TLS echo).

The small services of ``stream.py`` keep almost no state per connection. A protocol server keeps
a parser, a queue of replies and timers for each one, so here a ``SessionService`` owns one
``Session`` per accepted connection and steps it. A session never touches the connection
directly: it reads and writes a ``Stream``, which is either the plain connection
(``PlainStream``) or TLS over it (``pystack.services.tls.TLSStream``). That is how any of these
services is wrapped in TLS: the same session code, given another stream.

What every session service guarantees (what a server on a small device must):
- **Bounded work per step.** Each session gets at most ``ROUNDS`` rounds of (move bytes through
  the stream, let the session act) per ``Stack.poll``. When a session could still do more, the
  service reports itself due at once (``next_deadline``) instead of looping, so one busy
  connection cannot starve the others, and the stack still wakes up for the rest of the work.
- **Phase deadlines.** Every session is in a ``Phase`` with a deadline (``Session.enter``): a
  TLS handshake must finish within ``handshake_timeout`` of the accept (``handshake_timeouts``);
  then each service bounds its own phases (HTTP: the whole request head, the body at a minimum
  rate, idle keep-alive; MQTT: the CONNECT, 1.5 keep-alive periods; TLS echo: idle). A deadline
  is a total for the phase, never extended by a byte that does not finish it, so a client
  trickling one byte at a time (slowloris) cannot hold a slot past it. When one passes, the
  service calls ``Session.expired``, which answers if it can (HTTP 408) and closes.
- **Fair slots.** With ``max_connections`` sessions open, a new connection evicts the session
  that has made the least progress (``Session.eviction_key``: first one whose close is done,
  then those still opening (in a TLS handshake, a request head or before CONNECT), then idle
  ones; within each, the fewest units of progress, then the longest without progress). A
  session in the middle of a transfer (``Phase.ACTIVE``, or anything we sent not yet
  acknowledged) is never evicted. The victim is reset and counted (``<name>.evicted``). Only when
  every session is active is the newcomer reset instead (``<name>.refused``): idle or slow
  clients cannot deny service to a new one.
- **Timers are data.** A session says when it next needs attention (its phase deadline and
  ``Session.deadline``); the service's ``next_deadline`` is the earliest one, so a simulation
  jumps straight to it.
- **Counted events.** Everything unusual (bad input, timeouts, refusals) is counted in the stack's
  counters as ``<service name>.<event>`` and in ``SessionService.events``.
- **Contained failures.** Sessions run inside ``Stack.poll``: an exception escaping one (a bug)
  would stop the whole stack. It is caught at this boundary, counted as ``internal_errors``
  (kept in ``last_exception``; the tests fail on it) and that connection is reset.

Closing is the lingering close of RFC 9112 9.6: ``Stream.close`` sends what is queued and then
our FIN, keeps reading (and discarding) until the peer's FIN, then closes. Closing at once with
unread input would make the TCP layer send a reset, which can destroy a response the peer has
not read yet. A peer that never sends its FIN is reset ``LINGER`` seconds after it acknowledged
ours (so everything we sent arrived), and any close is cut short after ``CLOSE_TIMEOUT`` (a
peer that stops reading keeps our FIN waiting behind a zero window for ever).
Entry points: ``Stream``, ``PlainStream``, ``Phase``, ``Session``, ``SessionService``.
"""

from __future__ import annotations

from collections import Counter
from enum import IntEnum
from typing import TYPE_CHECKING

from pystack.services.stream import StreamService
from pystack.tcp.connection import TCPConnection
from pystack.tcp.state import TCPState

if TYPE_CHECKING:
    import ssl

    from pystack.stack import Stack

ROUNDS = 8  # (pump, step) rounds per session per poll
LINGER = 5.0  # seconds to wait for the peer's FIN once ours is acknowledged
CLOSE_TIMEOUT = 120.0  # seconds from close() after which the connection is reset anyway
DISCARD = 1 << 16  # bytes read and dropped per round while lingering
MAX_CONNECTIONS = 64
HANDSHAKE_TIMEOUT = 10.0  # seconds from accepting a connection to a finished TLS handshake
_GONE = (TCPState.CLOSED, TCPState.TIME_WAIT)


class Phase(IntEnum):
    """Where a session is; the lower phases are evicted first (``Session.eviction_key``)."""

    CLOSING = 0  # our side is done (ranked by the service from ``Stream.closing``)
    OPENING = 1  # not yet useful: in the TLS handshake, a request head, before MQTT's CONNECT
    IDLE = 2  # between requests or packets
    ACTIVE = 3  # a request or transfer in progress: never evicted


class Stream:
    """A byte stream with flow control, as a session sees it (the TCPConnection calls it uses)."""

    def __init__(self, connection: TCPConnection) -> None:
        self.connection = connection
        self.closing = False  # close() was called: no more sends
        self.close_deadline: float | None = None  # reset after this, whatever happens
        self.linger_deadline: float | None = None  # set once our FIN is acknowledged

    @property
    def established(self) -> bool:
        """The stream is ready for the session (TLS: the handshake finished)."""
        return True

    @property
    def delivered(self) -> bool:
        """Everything we sent was acknowledged (nothing of ours is in flight or queued)."""
        return not len(self.connection.send_buffer)

    @property
    def readable(self) -> int:
        raise NotImplementedError

    @property
    def at_eof(self) -> bool:
        """The peer finished sending and every byte it sent was read."""
        raise NotImplementedError

    @property
    def send_room(self) -> int:
        raise NotImplementedError

    def receive(self, size: int) -> bytes:
        raise NotImplementedError

    def send(self, data: bytes | bytearray | memoryview, now: float) -> int:
        raise NotImplementedError

    def pump(self, now: float) -> bool:
        """Move bytes between the application and the connection; True when any moved."""
        raise NotImplementedError

    def close(self, now: float) -> None:
        """Finish sending what is queued, then close (the lingering close)."""
        raise NotImplementedError

    @property
    def finished(self) -> bool:
        """Nothing more will happen on this connection (closed, reset, or in TIME-WAIT)."""
        return self.connection.state in _GONE

    @property
    def deadline(self) -> float | None:
        if self.finished:
            return None
        deadlines = [d for d in (self.close_deadline, self.linger_deadline) if d is not None]
        return min(deadlines) if deadlines else None

    def abort(self, now: float) -> None:
        self.closing = True
        self.close_deadline = self.linger_deadline = None
        self.connection.abort(now)

    def _shut_write(self, now: float) -> None:
        """Queue our FIN after the data and start lingering."""
        if self.close_deadline is None:
            self.close_deadline = now + CLOSE_TIMEOUT
        connection = self.connection
        if connection.state.may_send and not connection.fin_queued:
            connection.shutdown(now)
        self._linger(now)

    def _linger(self, now: float) -> bool:
        """After our FIN: drop what the peer still sends; close at its FIN, reset at a deadline."""
        connection = self.connection
        if connection.state in _GONE:
            return False
        moved = bool(connection.receive(DISCARD))
        if connection.at_eof:
            if self.close_deadline is not None:
                connection.close(now)  # nothing unread: a normal close, no reset
                self.close_deadline = self.linger_deadline = None
            return moved
        if connection.state is TCPState.FIN_WAIT_2 and self.linger_deadline is None:
            self.linger_deadline = now + LINGER  # everything we sent has arrived
        deadline = self.deadline
        if deadline is not None and now >= deadline:
            self.abort(now)
            return True
        return moved


class PlainStream(Stream):
    """The connection itself."""

    @property
    def readable(self) -> int:
        return self.connection.readable if not self.closing else 0

    @property
    def at_eof(self) -> bool:
        connection = self.connection
        return connection.at_eof or connection.state is TCPState.CLOSED

    @property
    def send_room(self) -> int:
        return self.connection.send_room if not self.closing else 0

    def receive(self, size: int) -> bytes:
        return self.connection.receive(size) if not self.closing else b""

    def send(self, data: bytes | bytearray | memoryview, now: float) -> int:
        return self.connection.send(data, now) if self.send_room else 0

    def pump(self, now: float) -> bool:
        return self._linger(now) if self.closing else False

    def close(self, now: float) -> None:
        if not self.closing:
            self.closing = True
            self._shut_write(now)


class Session:
    """One connection's application state. Subclasses implement ``step``."""

    def __init__(self, stream: Stream, now: float) -> None:
        self.stream = stream
        self.opened_at = now
        self.started = False  # ``start`` ran (the stream was established)
        self.phase = Phase.OPENING
        self.phase_deadline: float | None = None
        self.progress = 0  # units of useful work done (requests, packets...)
        self.last_progress = now

    def start(self, now: float) -> None:
        """The stream is established (at once, or after the TLS handshake): enter a phase."""

    def step(self, now: float) -> bool:
        """Do a bounded amount of work; True when anything happened (bytes moved, state changed)."""
        raise NotImplementedError

    def enter(self, phase: Phase, deadline: float | None) -> None:
        """Be in ``phase`` until ``deadline`` (None: no bound); the service calls ``expired``
        once it passes."""
        self.phase = phase
        self.phase_deadline = deadline

    def progressed(self, now: float, amount: int = 1) -> None:
        """Record useful work: sessions with more progress are evicted later."""
        self.progress += amount
        self.last_progress = now

    def expired(self, now: float) -> None:
        """The phase deadline passed: count it and close (or answer first). This default closes."""
        self.stream.close(now)

    def eviction_key(self) -> tuple[int, int, float] | None:
        """How readily this session is evicted (the smallest key goes first); None: never."""
        stream = self.stream
        if stream.finished:
            return (-1, 0, 0.0)
        if stream.closing:
            return (Phase.CLOSING, 0, self.opened_at) if stream.delivered else None
        if self.phase is Phase.ACTIVE or not stream.delivered:
            return None
        return (self.phase, self.progress, self.last_progress)

    def deadline(self) -> float | None:
        """When ``step`` must run next even without input, besides the phase deadline."""
        return None

    def ended(self, now: float) -> None:
        """The connection is gone (closed by either side, reset or timed out)."""


class SessionService(StreamService):
    """A ``StreamService`` with a ``Session`` per connection, optionally over TLS."""

    max_connections = MAX_CONNECTIONS

    def __init__(
        self,
        stack: Stack,
        port: int | None = None,
        backlog: int = 128,
        tls: ssl.SSLContext | None = None,
        max_connections: int | None = None,
        handshake_timeout: float = HANDSHAKE_TIMEOUT,
    ) -> None:
        super().__init__(stack, port, backlog)
        self.tls = tls
        if max_connections is not None:
            if max_connections < 1:
                raise ValueError("max_connections must be >= 1")
            self.max_connections = max_connections
        if handshake_timeout <= 0:
            raise ValueError("handshake_timeout must be > 0")
        self.handshake_timeout = handshake_timeout
        self.sessions: dict[TCPConnection, Session] = {}
        self.events: Counter[str] = Counter()
        self.refused = 0
        self.evicted = 0
        self.last_exception: Exception | None = None
        self._busy = False
        self._now = 0.0

    def make_session(self, stream: Stream, now: float) -> Session:
        raise NotImplementedError

    def count(self, event: str, amount: int = 1) -> None:
        self.events[event] += amount
        self.stack.counters.count(f"{self.name}.{event}", amount)

    def make_stream(self, connection: TCPConnection) -> Stream:
        if self.tls is None:
            return PlainStream(connection)
        from pystack.services.tls import TLSStream  # (tls.py builds on this module)

        return TLSStream(connection, self.tls, self.count)

    # -- stepping ------------------------------------------------------------------------------
    def step(self, now: float) -> None:
        self._now = now
        self._accept(now)
        busy = False
        ended: list[TCPConnection] = []
        for connection, session in self.sessions.items():
            busy |= self._step_session(session, now)
            if session.stream.finished:
                ended.append(connection)
        for connection in ended:
            self._ended(self.sessions.pop(connection), now)
        if ended:
            self.connections = dict.fromkeys(self.sessions)
        self._busy = busy

    def _accept(self, now: float) -> None:
        while (connection := self.listener.accept()) is not None:
            self.served += 1
            if len(self.sessions) >= self.max_connections and not self._evict(now):
                connection.abort(now)
                self.refused += 1
                self.count("refused")
                continue
            self.sessions[connection] = self.make_session(self.make_stream(connection), now)
            self.connections[connection] = None

    def _evict(self, now: float) -> bool:
        """Reset the session with the least progress to make room; False when all are active."""
        victim: TCPConnection | None = None
        best: tuple[int, int, float] | None = None
        for connection, session in self.sessions.items():
            key = session.eviction_key()
            if key is not None and (best is None or key < best):
                victim, best = connection, key
        if victim is None:
            return False
        session = self.sessions.pop(victim)
        session.stream.abort(now)
        self._ended(session, now)
        self.connections = dict.fromkeys(self.sessions)
        self.evicted += 1
        self.count("evicted")
        return True

    def _step_session(self, session: Session, now: float) -> bool:
        """Up to ``ROUNDS`` rounds, then the deadlines; True when the session could still do
        more at once."""
        stream = session.stream
        try:
            busy = self._rounds(session, stream, now)
            if not stream.closing and not stream.finished and self._expire(session, now):
                stream.pump(now)
                busy = True
        except Exception as error:  # see "Contained failures" above
            self._internal_error(error, stream, now)
            return False
        return busy

    def _rounds(self, session: Session, stream: Stream, now: float) -> bool:
        for _ in range(ROUNDS):
            if stream.finished:
                return False
            moved = stream.pump(now)
            if not session.started and stream.established and not stream.closing:
                session.started = moved = True
                session.start(now)
            moved = session.step(now) or moved
            moved = stream.pump(now) or moved  # (send what the session just wrote)
            if not moved:
                return False
        return True

    def _expire(self, session: Session, now: float) -> bool:
        """Act on a passed deadline: the TLS handshake's, then the session's phase's."""
        if not session.started:
            if now < session.opened_at + self.handshake_timeout:
                return False
            self.count("handshake_timeouts")
            session.stream.close(now)
            return True
        deadline = session.phase_deadline
        if deadline is None or now < deadline:
            return False
        session.phase_deadline = None
        session.expired(now)
        return True

    def _ended(self, session: Session, now: float) -> None:
        try:
            session.ended(now)
        except Exception as error:
            self._internal_error(error, session.stream, now)

    def _internal_error(self, error: Exception, stream: Stream, now: float) -> None:
        self.count("internal_errors")
        self.last_exception = error
        stream.abort(now)

    def serve(self, connection: TCPConnection, now: float) -> None:
        session = self.sessions.get(connection)
        if session is not None:
            self._step_session(session, now)

    def next_deadline(self) -> float | None:
        """Now when a session has work left, else the earliest timer."""
        if self._busy:
            return self._now
        earliest: float | None = None
        for session in self.sessions.values():
            stream = session.stream
            phase: float | None = None
            if not stream.closing:
                phase = (
                    session.phase_deadline
                    if session.started
                    else session.opened_at + self.handshake_timeout
                )
            for deadline in (phase, session.deadline(), stream.deadline):
                if deadline is not None and (earliest is None or deadline < earliest):
                    earliest = deadline
        return earliest

    def close(self, now: float) -> None:
        super().close(now)
        for session in self.sessions.values():
            self._ended(session, now)
        self.sessions.clear()
        self.connections = {}

    def describe(self) -> str:
        scheme = " (tls)" if self.tls is not None else ""
        return (
            f"{super().describe()}{scheme}, {len(self.sessions)} open, "
            f"{self.evicted} evicted, {self.refused} refused"
        )
