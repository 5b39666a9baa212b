"""The ``SSLSocket`` of MicroPython's ``tls`` module: CPython's ``SSLObject`` over a MicroPython
stream (extmod/modtls_mbedtls.c ``ssl_socket_*``, docs/usocket.md section 5).

The wrapped object is any MicroPython stream: ``read(n)`` (``None`` when a non-blocking stream
would block, ``b''`` at EOF, OSError(ETIMEDOUT) on a timeout), ``write(buf)`` (the count, or
``None``), ``ioctl(MP_STREAM_POLL, mask)`` and ``setblocking``. Ciphertext moves between it and
two ``ssl.MemoryBIO`` (``pystack.tlsrecords.RecordPump``, shared with the simulated peer's TLS
services); OpenSSL never sees a kernel socket. The mbedTLS behaviour and errors are this
module's.

How it mirrors mbedTLS:

- *Reading ciphertext* asks the stream for exactly one TLS record: the 5-byte header, then the
  length it announces, as ``mbedtls_ssl_fetch_input`` does. A MicroPython stream's ``read(n)``
  blocks until it has n bytes, so asking for more than the peer sent could hang; asking for one
  record never does. A header that is not TLS raises MBEDTLS_ERR_SSL_INVALID_RECORD.
- *Stream hooks* ``_read_once``/``_write_once`` are ``socket_read``/``socket_write``: EAGAIN
  becomes ``None``, and ``poll_mask`` records the direction the handshake needs when it is not
  the direction asked (a read that must write sets POLLOUT, a write that must read POLLIN).
  Around them ``read``, ``readinto``, ``readline`` and ``write`` follow py/stream.c exactly.
- *Writes* encrypt at most 4096 bytes (MicroPython's MBEDTLS_SSL_OUT_CONTENT_LEN) per call.
  When the ciphertext cannot all leave at once the call gives ``None`` and keeps it; the next
  ``write`` (which, as with ``mbedtls_ssl_write``, must pass the same data) finishes sending it
  and returns the count. Such waiting ciphertext never holds up a read once the handshake is
  done (a reader that waited for the writer could deadlock two peers with full buffers); during
  the handshake a flight must leave before the peer's answer is read.
- *Errors* are kept (mbedTLS ``last_error``): after any failure, including a timeout of the
  wrapped stream, every later read or write raises again, and poll reports POLLNVAL. The
  fatal alert OpenSSL queues on a failed handshake is sent before the error is raised.
- *EOF*: the peer's close_notify, or the stream's EOF after the handshake, read as ``b''``
  (every time); EOF during the handshake raises MBEDTLS_ERR_SSL_CONN_EOF.
- *Poll* (``socket_ioctl``): POLLIN when decrypted or received-but-unread data is buffered;
  otherwise the wrapped stream is asked, about the ``poll_mask`` direction instead of the
  requested one while the handshake needs it, and the requested bit is faked when that
  direction is ready. A closed or failed socket reports POLLNVAL.

pystack choices: ``close()`` sends close_notify when the handshake had completed (best effort:
only when the stream polls writable, and without waiting for the peer's close_notify; alerts
are sent the same way) and then closes the wrapped stream, also after a failure
(modtls_mbedtls drops the stream there and leaves the closing to the garbage collector). After
``close()``, read and write raise EBADF. ``cipher()`` is ``None`` before the handshake. A
non-blocking ``do_handshake_on_connect`` spins in 1 ms steps as MicroPython does, but gives up
after ``spin_limit`` seconds with MBEDTLS_ERR_SSL_TIMEOUT instead of spinning forever. The
verify callback runs once the handshake is done, on the peer's certificate (depth 0) only:
CPython 3.11 exposes neither OpenSSL's verify callback nor the peer's chain.
There is no ``__del__``: the wrapped socket closes itself when collected. Like an mbedTLS
context, one SSLSocket serves one thread at a time.
Entry points: ``SSLSocket``, ``WiPySSLSocket``.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Callable
from typing import Any, NoReturn, TypeVar

from pystack.tlsrecords import BadRecord, RecordPump, WouldBlock
from usocket import constants as c
from usocket import streamio
from usocket import tls_errors as e
from usocket.context import NetworkContext
from usocket.errors import EBADF, EINVAL, error
from usocket.tls_credentials import SUITES

T = TypeVar("T")

WRITE_CHUNK = 4096  # MicroPython's MBEDTLS_SSL_OUT_CONTENT_LEN
SPIN_STEP = 0.001  # mp_event_wait_ms(1) between non-blocking handshake attempts
_READ, _WRITE = c.POLLIN, c.POLLOUT
_RDWR = c.POLLIN | c.POLLOUT
_OPENSSL_TO_MBEDTLS = {openssl: mbedtls for mbedtls, openssl in SUITES}  # a constant


class SSLSocket:
    """A TLS stream over a MicroPython stream (``tls.SSLContext.wrap_socket`` makes them)."""

    _stack_driven = True  # its readiness follows the wrapped socket (polling.py)

    def __init__(
        self,
        sock: Any,
        records: RecordPump,
        *,
        verify_callback: Callable[..., Any] | None = None,
        spin_limit: float = 60.0,
        no_ca_chain: bool = False,
    ) -> None:
        self._sock: Any = sock
        self._records = records
        self._callback = verify_callback
        self._spin_limit = spin_limit
        self._no_ca_chain = no_ca_chain  # CERT_REQUIRED without a CA: mbedTLS fails regardless
        self._write_done: int | None = None  # plaintext encrypted, its ciphertext not all sent
        self._handshake_done = False
        self._eof = False
        self._error: tuple[type[BaseException], tuple[Any, ...]] | None = None
        self._poll_mask = 0
        self._closed = False

    def __repr__(self) -> str:
        return "<SSLSocket>"

    # -- moving ciphertext -----------------------------------------------------------------------
    def _flush(self) -> bool:
        """Hand queued ciphertext to the stream; True when none is left."""
        return self._records.flush(self._sock.write)

    def _drive(self, operation: Callable[[], T]) -> T:
        """Run ``operation`` on the SSLObject, moving ciphertext (one record at a time, as
        ``mbedtls_ssl_fetch_input``) until it is done; raise ``WouldBlock`` with the direction
        the stream must become ready in."""
        sock = self._sock
        try:
            return self._records.drive(
                operation, sock.write, sock.read, flight_first=not self._handshake_done
            )
        except BadRecord:
            raise e.tls_error(e.SSL_INVALID_RECORD) from None

    def _handshake(self) -> None:
        if self._handshake_done:
            return
        self._drive(self._records.tls.do_handshake)
        self._handshake_done = True
        self._flush()  # the last flight; what does not fit now goes with the next call
        self._call_verify_callback()

    def _call_verify_callback(self) -> None:
        """mbedTLS calls ``verify_callback(cert, depth)`` for each certificate it verifies; a
        non-zero result fails the handshake with that code."""
        der = self._records.tls.getpeercert(True)
        if self._callback is None or der is None:
            return
        result = int(self._callback(memoryview(der), 0))
        if result:
            raise e.tls_error(result)

    # -- failures ----------------------------------------------------------------------------------
    def _check_usable(self) -> None:
        if self._closed:
            raise error(EBADF)
        if self._error is not None:
            kind, arguments = self._error
            raise kind(*arguments)

    def _fail(self, failure: BaseException) -> NoReturn:
        """Remember the failure (mbedTLS ``last_error``), send OpenSSL's alert, raise."""
        self._send_alert()
        raised: BaseException = failure
        later: BaseException = failure  # the stream's own OSError, an error of the callback
        if isinstance(failure, ssl.SSLCertVerificationError) and self._no_ca_chain:
            raised = later = e.tls_error(e.SSL_CA_CHAIN_REQUIRED)  # "got no CA chain"
        elif isinstance(failure, ssl.SSLCertVerificationError):
            raised = ValueError(e.verify_text(failure.verify_code))
            later = e.tls_error(e.X509_CERT_VERIFY_FAILED)
        elif isinstance(failure, ssl.SSLError):
            raised = later = e.translate(failure, self._handshake_done)
        self._error = (type(later), later.args)
        raise raised from None

    def _send_alert(self) -> None:
        if self._sock is not None and self._records.outgoing.pending:
            self._send_last_words(self._sock)

    def _send_last_words(self, sock: Any) -> None:
        """Best effort for an alert or close_notify: only if the stream can take bytes now (a
        blocking write to a peer that reads nothing would hang), and never an error."""
        pending = self._records.take_outgoing()
        try:
            if pending and int(sock.ioctl(c.MP_STREAM_POLL, c.POLLOUT)) & c.POLLOUT:
                sock.write(pending)
        except OSError:
            pass  # the peer has gone: nothing to tell it

    def _attempt(self, step: Callable[[], T]) -> T:
        """Run a step that may fail; failures become MicroPython's errors and are kept."""
        try:
            return step()
        except WouldBlock:
            raise
        except (OSError, ValueError) as failure:  # ssl.SSLError is an OSError
            self._fail(failure)

    # -- the stream hooks (socket_read / socket_write) --------------------------------------------
    def _read_once(self, size: int) -> bytes | None:
        self._poll_mask = 0
        self._check_usable()
        if self._eof:
            return b""
        try:
            return self._attempt(lambda: self._read_record(size))
        except WouldBlock as blocked:
            if blocked.writing:
                self._poll_mask = _WRITE
            return None

    def _read_record(self, size: int) -> bytes:
        self._handshake()
        try:
            data = self._drive(lambda: self._records.tls.read(size))
        except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
            self._eof = True  # close_notify, or EOF after the handshake: mbedtls_ssl_read's 0
            return b""
        if self._records.outgoing_pending:
            self._flush()
        return data

    def _write_once(self, data: bytes) -> int | None:
        self._poll_mask = 0
        self._check_usable()
        try:
            return self._attempt(lambda: self._write_record(data))
        except WouldBlock as blocked:
            if not blocked.writing:
                self._poll_mask = _READ
            return None

    def _write_record(self, data: bytes) -> int:
        self._handshake()
        if self._write_done is None:
            chunk = data[:WRITE_CHUNK]
            self._records.write(chunk)
            self._write_done = len(chunk)
        if not self._flush():
            raise WouldBlock(True)
        done, self._write_done = self._write_done, None
        return done

    def _handshake_now(self) -> None:
        """``do_handshake_on_connect``: block, or spin in 1 ms steps on a non-blocking stream."""
        # A pystack socket: spin on its stack's clock, which may be virtual.
        context = getattr(self._sock, "_context", None)
        if isinstance(context, NetworkContext):
            now = context.now

            def pause() -> None:
                context.wait(lambda: False, round(SPIN_STEP * 1000))

        else:
            now = time.monotonic

            def pause() -> None:
                time.sleep(SPIN_STEP)

        deadline = now() + self._spin_limit
        while True:
            try:
                self._attempt(self._handshake)
                return
            except WouldBlock:
                if now() >= deadline:
                    self._fail(e.tls_error(e.SSL_TIMEOUT))
                pause()

    # -- py/stream.c methods (streamio.py), over this socket's read and write hooks -------------
    def read(self, size: int | None = None) -> bytes | None:
        """``read(n)``: loops until n bytes or EOF; None if it would block before any byte.
        ``read()``: everything to EOF (256 bytes a call, as stream_readall)."""
        return streamio.read(self._read_once, size)

    def readinto(self, buffer: Any, nbytes: int | None = None) -> int | None:
        return streamio.readinto(self._read_once, buffer, nbytes)

    def readline(self, limit: int | None = None) -> bytes | None:
        """One byte at a time up to and including ``\\n`` (stream_unbuffered_readline)."""
        return streamio.readline(self._read_once, limit)

    def write(self, buffer: Any, *arguments: int) -> int | None:
        """``write(buf[, max_len] | [, off, max_len])``: everything, or on a non-blocking
        stream the count so far (None when nothing went: call again with the same data)."""
        return streamio.write(self._write_once, streamio.write_slice(buffer, arguments))

    # -- the rest of the SSLSocket surface ---------------------------------------------------------
    def setblocking(self, flag: object) -> Any:
        return self._sock_or_fail().setblocking(flag)

    def _sock_or_fail(self) -> Any:
        if self._sock is None:
            raise error(EBADF)
        return self._sock

    def getpeercert(self, binary_form: object = False) -> bytes | None:
        if not binary_form:
            raise NotImplementedError
        if self._closed or not self._handshake_done:
            return None
        return self._records.tls.getpeercert(True)

    def cipher(self) -> tuple[str, str] | None:
        if self._closed or not self._handshake_done:
            return None
        got = self._records.tls.cipher()
        if got is None:
            return None
        return _mbedtls_suite(got[0]), got[1]

    def close(self) -> None:
        """close_notify (see the module docstring), then close the wrapped stream; twice is
        fine."""
        if self._closed:
            return
        self._closed = True
        sock, self._sock = self._sock, None
        if self._handshake_done and self._error is None:
            self._send_close_notify(sock)
        close = getattr(sock, "close", None)
        if close is not None:
            close()
        else:
            sock.ioctl(c.MP_STREAM_CLOSE, 0)

    def _send_close_notify(self, sock: Any) -> None:
        self._records.close_notify()  # (the peer's close_notify is not awaited)
        self._send_last_words(sock)

    def ioctl(self, request: int, argument: int = 0) -> int:
        if request == c.MP_STREAM_POLL:
            return self._poll(int(argument))
        if request == c.MP_STREAM_CLOSE:
            self.close()
            return 0
        raise error(EINVAL)

    def _poll(self, mask: int) -> int:
        """modtls_mbedtls ``socket_ioctl(MP_STREAM_POLL)``, step for step."""
        if self._closed or self._error is not None:
            return c.POLLNVAL
        saved = 0
        need = self._poll_mask
        if need and mask & _RDWR:
            saved = mask & _RDWR
            mask = (mask & ~saved) | need
        ready = 0
        records = self._records
        if mask & c.POLLIN and (self._eof or records.tls.pending() or records.incoming.pending):
            ready |= c.POLLIN
            if mask == c.POLLIN:
                return c.POLLIN
        ready |= int(self._sock.ioctl(c.MP_STREAM_POLL, mask))
        if ready & need:
            ready |= saved  # the handshake can go on: let the caller call again
        return ready


class WiPySSLSocket(SSLSocket):
    """The WiPy form (docs/wipy/general.rst): a socket made with ``IPPROTO_SEC`` is wrapped
    before it is connected, and ``connect`` is called on the SSL socket, which connects the
    wrapped socket and then runs the handshake."""

    def __init__(self, *arguments: Any, handshake_on_connect: bool, **keywords: Any) -> None:
        super().__init__(*arguments, **keywords)
        self._handshake_on_connect = handshake_on_connect

    def connect(self, address: Any) -> None:
        self._check_usable()
        self._sock.connect(address)  # EINPROGRESS on a non-blocking socket: handshake later
        if self._handshake_on_connect:
            self._handshake_now()


def _mbedtls_suite(openssl_name: str) -> str:
    return _OPENSSL_TO_MBEDTLS.get(openssl_name, openssl_name)
