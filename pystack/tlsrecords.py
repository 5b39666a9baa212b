"""TLS records between CPython's sans-IO ``ssl.SSLObject`` and a byte transport.

An ``SSLObject`` (``SSLContext.wrap_bio``) never touches a socket: it reads ciphertext from one
``ssl.MemoryBIO`` (``incoming``) and writes ciphertext to another (``outgoing``). ``RecordPump``
holds the three and does the moving both users of TLS in this project need:

- the simulated peer's TLS services (``pystack.services.tls``), event-driven: ciphertext from a
  TCP connection is ``feed``-ed in, ``handshake_step`` and ``read`` report "wants input" as a
  value, and ``flush`` hands ciphertext to the connection within its send room;
- scripts' TLS sockets (``usocket.tls_socket``), over a MicroPython stream: ``drive`` runs one
  SSLObject operation to completion, fetching one record at a time (``receive_record``) and
  flushing, and raises ``WouldBlock`` with the direction the stream must become ready in.

Ciphertext the transport has not taken yet stays in the pump (``outgoing_pending`` counts it
with what the BIO holds); ``take_outgoing`` empties both for a best-effort last write (an alert,
close_notify). Errors of the TLS layer are ``ssl.SSLError`` as CPython raises them, and a
record header that is not TLS is ``BadRecord``: each user maps these to its own errors.
Nothing here blocks, sleeps or reads a clock.
Entry points: ``RecordPump``, ``WouldBlock``, ``BadRecord``.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

HEADER = 5  # TLS record header: type, version (2), length (2)
MAX_RECORD = 16384 + 2048  # the largest TLSCiphertext (RFC 5246 6.2.3)
RECORD_TYPES = (20, 21, 22, 23, 24)  # change_cipher_spec, alert, handshake, application, heartbeat

Send = Callable[[bytearray], "int | None"]  # takes ciphertext, says how much went (0/None: none)
Read = Callable[[int], "bytes | None"]  # up to n bytes; None: nothing now; b"": EOF


class WouldBlock(Exception):
    """The transport would block; ``writing``: it must become writable (else readable)."""

    def __init__(self, writing: bool) -> None:
        super().__init__(writing)
        self.writing = writing


class BadRecord(Exception):
    """A record header that is not TLS (not a known type, not version 3.x, or too long)."""


class RecordPump:
    """An SSLObject, its two BIOs, and the ciphertext on its way between them and a transport."""

    __slots__ = ("_record", "_unsent", "eof_fed", "incoming", "outgoing", "tls")

    def __init__(
        self, tls: ssl.SSLObject, incoming: ssl.MemoryBIO, outgoing: ssl.MemoryBIO
    ) -> None:
        self.tls = tls
        self.incoming = incoming
        self.outgoing = outgoing
        self.eof_fed = False  # feed_eof was called
        self._record = bytearray()  # the part of the next record received so far
        self._unsent = bytearray()  # ciphertext the transport has not taken yet

    @classmethod
    def wrap(
        cls, context: ssl.SSLContext, server_side: bool, server_hostname: str | None = None
    ) -> RecordPump:
        """A pump around a new SSLObject of ``context``."""
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        tls = context.wrap_bio(
            incoming, outgoing, server_side=server_side, server_hostname=server_hostname
        )
        return cls(tls, incoming, outgoing)

    # -- ciphertext in -----------------------------------------------------------------------------
    def feed(self, data: bytes) -> None:
        self.incoming.write(data)

    def feed_eof(self) -> None:
        """The transport's EOF: OpenSSL then reports EOF (SSLEOFError, or b'' after close_notify)."""
        self.incoming.write_eof()
        self.eof_fed = True

    def receive_record(self, read: Read) -> bool:
        """Read (part of) one TLS record with ``read`` into the incoming BIO, asking for no more
        than the record holds (the 5-byte header, then the length it announces); False when
        ``read`` had nothing before the record was complete. Raises ``BadRecord``."""
        record = self._record
        while True:
            have = len(record)
            size = HEADER if have < HEADER else HEADER + int.from_bytes(record[3:5], "big")
            data = read(size - have)
            if data is None:
                return False
            if not data:
                self.feed_eof()
                return True
            record += data
            if len(record) < HEADER:
                continue
            if not _plausible(record):
                raise BadRecord
            if len(record) == HEADER + int.from_bytes(record[3:5], "big"):
                self.incoming.write(bytes(record))
                record.clear()
                return True

    # -- ciphertext out ----------------------------------------------------------------------------
    @property
    def outgoing_pending(self) -> int:
        """Ciphertext produced and not yet taken by the transport, in bytes."""
        return len(self._unsent) + self.outgoing.pending

    def flush(self, send: Send, limit: int | None = None) -> bool:
        """Offer waiting ciphertext to ``send`` until it takes none, or ``limit`` bytes went;
        True when none is left."""
        if self.outgoing.pending:
            self._unsent += self.outgoing.read()
        unsent = self._unsent
        if limit is None:
            while unsent:
                sent = send(unsent)
                if not sent:  # None or 0: it would block
                    return False
                del unsent[:sent]
            return True
        while unsent and limit > 0:
            sent = send(unsent[:limit])
            if not sent:
                return False
            del unsent[:sent]
            limit -= sent
        return not unsent

    def take_outgoing(self) -> bytes:
        """All waiting ciphertext, for a last best-effort write; the pump keeps none."""
        pending = bytes(self._unsent) + self.outgoing.read()
        self._unsent.clear()
        return pending

    def discard_outgoing(self) -> None:
        """Drop waiting ciphertext (the transport can send no more)."""
        self._unsent.clear()
        self.outgoing.read()

    # -- TLS operations ----------------------------------------------------------------------------
    def handshake_step(self) -> bool:
        """Run the handshake as far as the input allows: True when it is complete, False while
        it wants more ciphertext. Other failures raise ``ssl.SSLError``."""
        try:
            self.tls.do_handshake()
        except ssl.SSLWantReadError:
            return False
        return True

    def read(self, size: int) -> bytes | None:
        """Up to ``size`` bytes of plaintext; None while more ciphertext is needed, b'' after
        the peer's close_notify. The transport's EOF without one raises ``ssl.SSLEOFError``."""
        try:
            return self.tls.read(size)
        except ssl.SSLWantReadError:
            return None

    def write(self, data: bytes | bytearray | memoryview) -> int:
        """Encrypt ``data`` into records (raises ``ssl.SSLError``, WANT_READ included)."""
        return self.tls.write(data)

    def close_notify(self) -> None:
        """Queue our close_notify (``SSLObject.unwrap``), not waiting for the peer's; best effort,
        never an error."""
        try:
            self.tls.unwrap()
        except (ssl.SSLError, ValueError):
            pass  # SSLWantReadError: the peer's close_notify is not awaited

    def drive(self, operation: Callable[[], T], send: Send, read: Read, flight_first: bool) -> T:
        """Run ``operation`` (an SSLObject call) to completion over a stream transport: while it
        wants input, flush what it wrote and fetch one record. Raises ``WouldBlock`` when the
        transport is not ready; with ``flight_first`` (during a handshake) unsent ciphertext
        must leave before the peer's answer is read. EOF where a record was needed raises
        ``ssl.SSLEOFError``; a bad record ``BadRecord``."""
        while True:
            try:
                return operation()
            except ssl.SSLWantReadError:
                pass
            if not self.flush(send) and flight_first:
                raise WouldBlock(True)  # our flight must leave before the peer can answer
            if self.incoming.eof:
                raise ssl.SSLEOFError("EOF occurred in violation of protocol")
            if not self.receive_record(read):
                raise WouldBlock(False)


def _plausible(record: bytearray) -> bool:
    length = int.from_bytes(record[3:5], "big")
    return record[0] in RECORD_TYPES and record[1] == 3 and length <= MAX_RECORD
