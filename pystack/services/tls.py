"""Server-side TLS over a pystack TCP connection, and the TLS echo service (port 443).

TLS here is CPython's ``ssl`` module in its sans-IO form: ``SSLContext.wrap_bio`` gives an
``SSLObject`` that reads ciphertext from one ``ssl.MemoryBIO`` (``incoming``) and writes
ciphertext to another (``outgoing``); it never touches a socket. ``pystack.tlsrecords.RecordPump``
holds the three and moves the bytes (shared with scripts' TLS sockets). ``TLSStream`` is the
adapter between it and a ``TCPConnection``, with the ``Stream`` interface of ``session.py``, so
any session service runs over TLS unchanged (``SessionService(..., tls=server_context())``)::

    TCPConnection --receive--> incoming BIO --SSLObject.read--> plaintext --> session
    TCPConnection <--send----- outgoing BIO <-SSLObject.write-- plaintext <-- session

``pump(now)`` does the moving, each direction bounded: ciphertext is fed only while the incoming
BIO holds less than ``FEED_LIMIT`` (the TCP receive buffer keeps the rest, and its window pushes
back on the peer), plaintext is decrypted only while less than ``PLAINTEXT_LIMIT`` waits for the
session, and ``send_room`` shrinks as the outgoing BIO fills (flushed within the connection's
``send_room``). The handshake runs inside ``pump`` until it completes; until then the session
sees no room and no data.

Closing sends close_notify (``SSLObject.unwrap``), then our FIN, then lingers like a plain stream.
The peer's close_notify is its end of data; a TCP FIN without one (a truncated stream, RFC 8446
6.1) also ends the data, counted as ``tls_truncated``. Any TLS error (a bad record, a failed
handshake, plain HTTP sent to a TLS port) is counted as ``tls_errors``, the alert OpenSSL
produced is sent if it fits, and the connection closes: never an exception out of ``pump``.

Session tickets are off (``num_tickets = 0``): TLS 1.3 servers send them after the handshake,
and a client that never reads them closes with unread data, which many stacks (this one too)
turn into a reset. Resumption buys nothing for a test server.
Entry points: ``server_context``, ``TLSStream``, ``TLSEchoService``.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from pystack.services.certs import SERVER_CERT, SERVER_KEY
from pystack.services.session import (
    CLOSE_TIMEOUT,
    HANDSHAKE_TIMEOUT,
    Phase,
    Session,
    SessionService,
    Stream,
)
from pystack.tcp.connection import TCPConnection
from pystack.tlsrecords import RecordPump

if TYPE_CHECKING:
    from pystack.stack import Stack

FEED_LIMIT = 1 << 15  # ciphertext held in the incoming BIO (two full TLS records)
PLAINTEXT_LIMIT = 1 << 16  # decrypted bytes waiting for the session
OUTGOING_LIMIT = 1 << 16  # ciphertext waiting in the outgoing BIO before send_room is 0
ECHO_PORT = 443
ECHO_IDLE_TIMEOUT = 300.0  # an echo connection moving nothing for this long is closed


def server_context(cert: str | Path = SERVER_CERT, key: str | Path = SERVER_KEY) -> ssl.SSLContext:
    """A TLS 1.2+ server context with the simulated network's certificate (or the one given)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert, key)
    context.num_tickets = 0  # see the module docstring
    return context


class TLSStream(Stream):
    """TLS (server side) over ``connection``; ``count`` records events (``tls_errors``...)."""

    def __init__(
        self,
        connection: TCPConnection,
        context: ssl.SSLContext,
        count: Callable[[str], None],
    ) -> None:
        super().__init__(connection)
        self.records = RecordPump.wrap(context, server_side=True)
        self.count = count
        self.handshake_done = False
        self.peer_closed = False  # close_notify (or a bare FIN) arrived
        self.error: str | None = None
        self._plaintext = bytearray()
        self._shut = False  # our FIN is queued

    # -- the Stream interface --------------------------------------------------------------------
    @property
    def established(self) -> bool:
        return self.handshake_done

    @property
    def delivered(self) -> bool:
        return not self.records.outgoing_pending and super().delivered

    @property
    def readable(self) -> int:
        return len(self._plaintext)

    @property
    def at_eof(self) -> bool:
        return (self.peer_closed or self.error is not None) and not self._plaintext

    @property
    def send_room(self) -> int:
        if not self.handshake_done or self.closing or not self.connection.may_send:
            return 0
        return max(0, OUTGOING_LIMIT - self.records.outgoing_pending)

    def receive(self, size: int) -> bytes:
        data = bytes(self._plaintext[:size])
        del self._plaintext[:size]
        return data

    def send(self, data: bytes | bytearray | memoryview, now: float) -> int:
        room = self.send_room
        if not room:
            return 0
        piece = data[:room]
        try:
            return self.records.write(piece)
        except ssl.SSLWantReadError:
            return 0  # (a renegotiation wants input first; TLS 1.3 has none)
        except ssl.SSLError as error:
            self._fail(error, now)
            return 0

    def pump(self, now: float) -> bool:
        if self._shut:
            return self._linger(now)
        if self.close_deadline is not None and now >= self.close_deadline:
            self.abort(now)  # our close_notify never got out
            return True
        moved = False
        if not self.closing:  # (after close or an error nothing more is read: lingering drops it)
            moved = self._feed()
            if not self.handshake_done:
                moved = self._handshake(now) or moved
            if self.handshake_done and not self.closing and not self.peer_closed:
                moved = self._decrypt(now) or moved
        moved = self._flush(now) or moved
        if self.closing and not self.records.outgoing_pending and not self._shut:
            self._shutdown(now)
            moved = True
        return moved

    def close(self, now: float) -> None:
        if self.closing:
            return
        self.closing = True
        self.close_deadline = now + CLOSE_TIMEOUT
        if self.handshake_done and self.error is None:
            self.records.close_notify()  # (not waiting for the peer's)
        self.pump(now)

    # -- the moving parts ------------------------------------------------------------------------
    def _feed(self) -> bool:
        """Ciphertext from the connection into the incoming BIO, up to ``FEED_LIMIT``."""
        connection = self.connection
        records = self.records
        moved = False
        room = FEED_LIMIT - records.incoming.pending
        if room > 0 and connection.readable:
            data = connection.receive(room)
            records.feed(data)
            moved = bool(data)
        if connection.at_eof and not records.eof_fed:
            records.feed_eof()
            moved = True
        return moved

    def _handshake(self, now: float) -> bool:
        try:
            done = self.records.handshake_step()
        except ssl.SSLError as error:
            self._fail(error, now)
            return True
        if not done:
            if self.records.eof_fed:  # (OpenSSL reports this as an EOF error; be sure anyway)
                self._fail(ssl.SSLEOFError("EOF during the handshake"), now)
                return True
            return False
        self.handshake_done = True
        self.count("tls_handshakes")
        return True

    def _decrypt(self, now: float) -> bool:
        moved = False
        for _ in range(PLAINTEXT_LIMIT // 4096 + 1):  # bounded: each read is at least a record
            room = PLAINTEXT_LIMIT - len(self._plaintext)
            if room <= 0:
                break
            try:
                data = self.records.read(room)
            except ssl.SSLEOFError:  # a FIN without close_notify: a truncated stream
                self.count("tls_truncated")
                self.peer_closed = moved = True
                break
            except ssl.SSLError as error:
                self._fail(error, now)
                return True
            if data is None:  # more ciphertext needed
                break
            if not data:  # close_notify: the peer's end of data
                self.peer_closed = moved = True
                break
            self._plaintext += data
            moved = True
        return moved

    def _flush(self, now: float) -> bool:
        """Ciphertext from the outgoing BIO into the connection, within its send room."""
        connection = self.connection
        records = self.records
        room = connection.send_room
        pending = records.outgoing_pending
        if not room or not pending:
            if pending and not connection.may_send:
                records.discard_outgoing()  # the connection cannot send any more: drop it
            return False
        records.flush(lambda data: connection.send(data, now), room)  # (one send: it fits)
        return True

    def _shutdown(self, now: float) -> None:
        self._shut = True
        self._shut_write(now)

    def _fail(self, error: ssl.SSLError, now: float) -> None:
        """Count the error, keep the alert OpenSSL queued, and close after sending it."""
        if self.error is not None:
            return
        self.error = getattr(error, "reason", None) or type(error).__name__
        self.count("tls_errors")
        self._plaintext.clear()
        self.closing = True
        self.close_deadline = now + CLOSE_TIMEOUT
        self._flush(now)
        if not self.records.outgoing_pending:
            self._shutdown(now)


class TLSEchoSession(Session):
    """Echo (RFC 862) over TLS: send back every byte, close after the peer's close_notify.

    The handshake is bounded by the service's ``handshake_timeout`` (``session.py``); after it a
    connection that moves nothing for ``ECHO_IDLE_TIMEOUT`` is closed (``timeouts``): a silent
    client must not hold a slot for ever."""

    def __init__(self, stream: Stream, now: float, service: TLSEchoService) -> None:
        super().__init__(stream, now)
        self.service = service

    def start(self, now: float) -> None:
        self.progressed(now)  # (the handshake)
        self.enter(Phase.IDLE, now + ECHO_IDLE_TIMEOUT)

    def step(self, now: float) -> bool:
        stream = self.stream
        if stream.closing:
            return False
        room = stream.send_room
        if room and stream.readable:
            data = stream.receive(room)
            self.service.bytes_in += len(data)
            self.service.bytes_out += stream.send(data, now)
            self.progressed(now)
            self.enter(Phase.IDLE, now + ECHO_IDLE_TIMEOUT)
            return True
        if stream.at_eof and not stream.readable:
            stream.close(now)
            return True
        return False

    def expired(self, now: float) -> None:
        self.service.count("timeouts")
        self.stream.close(now)


class TLSEchoService(SessionService):
    """TLS echo on port 443: what ``ssl.wrap_socket`` clients (MicroPython's too) test against."""

    name, default_port = "tlsecho", ECHO_PORT

    def __init__(
        self,
        stack: Stack,
        port: int | None = None,
        backlog: int = 128,
        tls: ssl.SSLContext | None = None,
        max_connections: int | None = None,
        handshake_timeout: float = HANDSHAKE_TIMEOUT,
    ) -> None:
        context = tls if tls is not None else server_context()
        super().__init__(stack, port, backlog, context, max_connections, handshake_timeout)

    def make_session(self, stream: Stream, now: float) -> Session:
        return TLSEchoSession(stream, now, self)
