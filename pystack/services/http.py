"""An HTTP/1.1 server (RFC 9110, RFC 9112) for testing clients: port 80, and over TLS on 8443.

Routes (``GET`` and ``HEAD`` unless noted; ``/`` lists them)::

    /               a small HTML index            /json          a small JSON document
    /bytes/N        N bytes: byte i is i % 251    /chunked/N     the same, chunked
    /echo           POST or PUT: the request body back (Content-Length or chunked uploads)
    /status/N       status N (200..599)           /redirect[/N]  302 chains to /json

Anything else is 404; a known method a route does not take is 405 (with ``Allow``); an unknown
method is 501. The ``/bytes`` pattern has period 251, a prime, so a segment repeated, lost or
misplaced by any common size (1460, 4096, 65536...) changes the bytes; any client can check it.

One ``HTTPSession`` per connection reads requests into a bounded input buffer (``INPUT_LIMIT``)
and handles them strictly in order, one ``Exchange`` at a time: pipelined requests wait in the
buffer (then in TCP's window) until the previous response is queued. Responses are produced
lazily, at most ``send_room`` bytes at a time, so ``/bytes/100000000`` never exists in memory,
and ``/echo`` streams: it reads the upload only as fast as it can send it back (a chunked
upload is answered chunked). A response to a request with a body the route does not use is
sent at once and the body read and dropped, keeping the connection usable.

Persistence follows RFC 9112 9.3: HTTP/1.1 keeps the connection unless ``Connection: close``;
HTTP/1.0 closes after the response unless ``Connection: keep-alive`` (MicroPython's urequests
sends 1.0 with ``close`` and reads to EOF). Every response has ``Date``, ``Server`` and either
``Content-Length`` or ``Transfer-Encoding: chunked`` (never chunked to a 1.0 client; none for
204 and 304). A malformed request (``http_message.py``) is answered 400/414/431/501/505 and the
connection closed, since where the next request starts is unknown; a bad request line is
answered as soon as it is in, without waiting for the rest of the head. A first byte of 0x16 (a
TLS ClientHello on this plain port) closes the connection at once (``tls_rejected``).
``Expect: 100-continue`` gets an interim 100 when the body will be read.

Deadlines (the phases of ``session.py``; a slot held past one is closed, counted):
- a request head must be complete within ``head_timeout`` (10 s) of its first byte, or of the
  accept (the TLS handshake's end) for the first: a total, however the bytes trickle in; then
  408 (``timeouts``), or a plain close if nothing arrived (``idle_closed``);
- a request body gets ``body_timeout`` (20 s) plus 1/``body_rate`` s per byte (500 bytes/s),
  never more than ``body_timeout`` ahead; while we are the ones not reading (an echo the client
  does not read) it is not charged. Too slow: 408, or the connection closed if the response
  had started (``body_timeouts``);
- an idle keep-alive connection is closed after ``idle_timeout`` (30 s, ``idle_closed``), and a
  response that moves nothing for as long (the client stopped reading) is reset
  (``timeouts``).
Entry points: ``HTTPService``, ``HTTPSService`` (the /bytes pattern itself:
``http_content.pattern_bytes``).
"""

from __future__ import annotations

import json
import re
import ssl
import time
from collections.abc import Callable
from email.utils import formatdate
from typing import TYPE_CHECKING, Any

from pystack.services.http_content import (
    NO_CONTENT,
    PATTERN_PERIOD,
    ChunkedContent,
    Content,
    EchoContent,
    FixedContent,
    PatternContent,
    Response,
    text_response,
)
from pystack.services.http_message import (
    MAX_HEAD,
    MAX_REQUEST_LINE,
    ChunkedReader,
    HTTPError,
    LengthReader,
    RequestHead,
    check_request_line,
    find_head_end,
    parse_request_head,
    response_head,
    skip_empty_lines,
)
from pystack.services.session import Phase, Session, SessionService, Stream

if TYPE_CHECKING:
    from pystack.stack import Stack

SERVER = "pystack"
MAX_BYTES = 100_000_000  # /bytes/N and /chunked/N
MAX_BODY = 16 * 1024 * 1024  # request bodies; larger: 413
MAX_REDIRECTS = 20  # /redirect/N
_HOST = re.compile(r"[A-Za-z0-9.-]{1,253}(:[0-9]{1,5})?")  # a Host we may echo in Location
INPUT_LIMIT = 1 << 16  # request bytes buffered per connection (>= MAX_HEAD)
IDLE_TIMEOUT = 30.0  # an idle keep-alive connection, or a response nobody reads: closed
HEAD_TIMEOUT = 10.0  # a whole request head, from its first byte (or the accept): else 408
BODY_TIMEOUT = 20.0  # a request body's first allowance, and the most a burst can buy
BODY_RATE = 500.0  # bytes per second a request body must keep up (each byte buys 1/rate s)
MAX_EMPTY_LINES = 2  # empty lines ignored before a request line (RFC 9112 2.2); more: 400
TLS_HANDSHAKE = b"\x16"  # the first byte of a TLS record carrying a ClientHello
REQUESTS_PER_STEP = 8  # pipelined requests answered per step
SEND_ROUNDS = 16  # content pieces handed to the stream per step
KNOWN_METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "TRACE", "CONNECT", "PATCH"}
)
READ_ONLY = ("GET", "HEAD")
UPLOAD = ("POST", "PUT")
ROUTES = (
    ("/", "this page"),
    ("/json", "a small JSON document"),
    ("/bytes/N", f"N bytes (N <= {MAX_BYTES}), byte i is i % {PATTERN_PERIOD}"),
    ("/chunked/N", "the same bytes with chunked transfer-encoding"),
    ("/echo", "POST or PUT: the request body back"),
    ("/status/N", "a response with status N (200..599)"),
    ("/redirect", "302 to /json; /redirect/N: N redirects, then /json"),
)


def index_page() -> bytes:
    items = "\n".join(f"<li><code>{path}</code>: {text}</li>" for path, text in ROUTES)
    return (
        "<!DOCTYPE html>\n<html><head><title>pystack</title></head><body>\n"
        f"<h1>pystack HTTP test server</h1>\n<ul>\n{items}\n</ul>\n</body></html>\n"
    ).encode()


def json_document() -> bytes:
    document = {
        "server": SERVER,
        "message": "Hello from a TCP/IP stack written in Python",
        "routes": [path for path, _ in ROUTES],
        "ok": True,
    }
    return (json.dumps(document, indent=2) + "\n").encode()


# -- one request and its response in flight --------------------------------------------------------
class Exchange:
    def __init__(
        self,
        head: RequestHead | None,
        response: Response,
        body: LengthReader | ChunkedReader | None,
        fields: list[tuple[str, str]],
        interim: bytes = b"",
    ) -> None:
        self.head = head
        self.response = response
        self.body = body  # the request body still to read (or drop)
        self.keep_alive = head is not None and head.keep_alive and not response.close
        if not self.keep_alive:
            fields.append(("Connection", "close"))
        elif head is not None and head.version < (1, 1):
            fields.append(("Connection", "keep-alive"))
        self.pending = memoryview(interim + response_head(response.status, fields))
        self.started = False  # some of it was handed to the stream
        self.content: Content | None = response.content
        if head is not None and head.method == "HEAD":
            self.content = None

    @property
    def finished(self) -> bool:
        content_done = self.content is None or self.content.done
        return not self.pending and content_done and (self.body is None or self.body.done)


class HTTPSession(Session):
    def __init__(self, stream: Stream, now: float, service: HTTPService) -> None:
        super().__init__(stream, now)
        self.service = service
        self.buffer = bytearray()
        self.exchange: Exchange | None = None
        self.last_activity = now
        self.requests = 0
        self.head_started: float | None = None  # when the request head being read began
        self.empty_lines = 0  # empty lines skipped before the next request line
        self.body_deadline = 0.0  # the request body must have arrived by then (see _body_read)

    # -- phases --------------------------------------------------------------------------------
    def start(self, now: float) -> None:
        self.head_started = now  # the first request head is due from the start
        self._set_phase(now)

    def _set_phase(self, now: float) -> None:
        """OPENING while a request head is due, IDLE between requests, ACTIVE in an exchange;
        each with its deadline (see ``HTTPService``)."""
        if self.stream.closing:
            return
        service, exchange = self.service, self.exchange
        if exchange is None:
            if self.buffer and self.head_started is None:
                self.head_started = now  # the first byte of the next request
            if self.head_started is not None:
                self.enter(Phase.OPENING, self.head_started + service.head_timeout)
            else:
                self.enter(Phase.IDLE, self.last_activity + service.idle_timeout)
            return
        if self._waiting_for_body():
            self.enter(Phase.ACTIVE, self.body_deadline)
            return
        body = exchange.body
        if body is not None and not body.done:  # input waits for us, not the client
            self.body_deadline = max(self.body_deadline, now + service.body_timeout)
        self.enter(Phase.ACTIVE, self.last_activity + service.idle_timeout)

    def _waiting_for_body(self) -> bool:
        exchange = self.exchange
        if exchange is None or exchange.pending:
            return False
        body = exchange.body
        return body is not None and not body.done and body.starved(self.buffer)

    def _body_read(self, size: int, now: float) -> None:
        """``size`` bytes of a request body arrived: each buys ``1 / body_rate`` seconds, never
        more than ``body_timeout`` ahead (a fast burst does not buy a long silence)."""
        service = self.service
        extended = self.body_deadline + size / service.body_rate
        self.body_deadline = min(extended, now + service.body_timeout)

    def expired(self, now: float) -> None:
        service, exchange = self.service, self.exchange
        if exchange is None and self.head_started is not None:
            if self.buffer or self.empty_lines:  # (something of a request arrived)
                self._fail(HTTPError(408, "request head incomplete"), now, "timeouts")
                self.last_activity = now
                self._set_phase(now)
                return
            service.count("idle_closed")  # (nothing of a request arrived)
            self.stream.close(now)
        elif exchange is None:
            service.count("idle_closed")
            self.stream.close(now)
        elif self._waiting_for_body():
            if exchange.started:
                service.count("body_timeouts")
                self.stream.close(now)  # (the response is cut short: the client sees an error)
                self.exchange = None
            else:
                self._fail(HTTPError(408, "request body too slow"), now, "body_timeouts")
                self.last_activity = now
                self._set_phase(now)
        else:
            service.count("timeouts")  # the client stopped reading the response
            self.stream.abort(now)

    # -- stepping ------------------------------------------------------------------------------
    def step(self, now: float) -> bool:
        moved = self._step(now)
        self._set_phase(now)
        return moved

    def _step(self, now: float) -> bool:
        stream = self.stream
        if stream.closing:
            return False
        moved = self._read(now)
        for _ in range(REQUESTS_PER_STEP):
            if self.exchange is None:
                if not self._start(now):
                    break
                moved = True
                if self.exchange is None:  # (it closed the connection)
                    return True
            moved = self._advance(now) or moved
            exchange = self.exchange
            if exchange is None:  # (it ended the connection)
                return True
            if not exchange.finished:
                break
            self.exchange = None
            if not exchange.keep_alive:
                stream.close(now)
                return True
        if moved:
            self.last_activity = now
            return True
        return self._eof(now)

    def _read(self, now: float) -> bool:
        room = INPUT_LIMIT - len(self.buffer)
        if room <= 0 or not self.stream.readable:
            return False
        data = self.stream.receive(room)
        self.buffer += data
        exchange = self.exchange
        if exchange is not None and exchange.body is not None and not exchange.body.done:
            self._body_read(len(data), now)
        return True

    def _start(self, now: float) -> bool:
        """Parse the next request head if it is all here; True when an exchange began or the
        request was refused."""
        buffer = self.buffer
        self.empty_lines += skip_empty_lines(buffer)
        if self.empty_lines > MAX_EMPTY_LINES:
            self._fail(HTTPError(400, "empty lines instead of a request line"), now)
            return True
        if buffer[:1] == TLS_HANDSHAKE:
            self.service.count("tls_rejected")  # a ClientHello: this client expects TLS
            buffer.clear()
            self.stream.close(now)
            return True
        end = find_head_end(buffer)
        if end is None:
            first_line = buffer.find(b"\n")
            try:
                if first_line >= 0:
                    check_request_line(bytes(buffer[:first_line]))  # fail early, not at the end
                elif len(buffer) > MAX_REQUEST_LINE:
                    raise HTTPError(414, "request line too long")
            except HTTPError as error:
                self._fail(error, now)
                return True
            if len(buffer) > MAX_HEAD:
                self._fail(HTTPError(431, "request head too large"), now)
                return True
            return False
        head_bytes = bytes(buffer[:end])
        del buffer[:end]
        self.empty_lines = 0
        self.head_started = None
        try:
            if len(head_bytes) > MAX_HEAD:
                raise HTTPError(431, "request head too large")
            head = parse_request_head(head_bytes)
            response = self.service.route(head)
        except HTTPError as error:
            self._fail(error, now)
            return True
        self._begin(head, response, now)
        return True

    def _begin(self, head: RequestHead, response: Response, now: float) -> None:
        self.requests += 1
        self.progressed(now)
        self.body_deadline = now + self.service.body_timeout
        self.service.count("requests")
        body: LengthReader | ChunkedReader | None = None
        if head.chunked:
            body = ChunkedReader(MAX_BODY)
        elif head.content_length:
            body = LengthReader(head.content_length)
        interim = b""
        if "100-continue" in head.tokens("expect") and head.version >= (1, 1) and body:
            if response.reads_body:
                interim = response_head(100, [])  # RFC 9110 10.1.1: go ahead, send the body
            else:
                response.close = True  # the client may never send the body: do not wait for it
        if response.close:
            body = None  # (what the client still sends is dropped by the lingering close)
        if response.reads_body and body is not None:
            echo: Content = EchoContent(body, self.buffer)
            chunk = head.chunked and not response.until_close
            response.content = ChunkedContent(echo) if chunk else echo
        self.exchange = Exchange(head, response, body, self.service.fields(response), interim)

    def _fail(self, error: HTTPError, now: float, event: str = "bad_requests") -> None:
        """A request we cannot frame: answer ``error.status`` and close after it."""
        self.service.count(event)
        self.buffer.clear()
        self.head_started = None
        response = text_response(error.status, f"{error.status} {error.reason}\n", close=True)
        self.exchange = Exchange(None, response, None, self.service.fields(response))

    def _advance(self, now: float) -> bool:
        exchange = self.exchange
        assert exchange is not None
        moved = False
        try:
            body = exchange.body
            if body is not None and not exchange.response.reads_body and not body.done:
                before = len(self.buffer)
                body.read(self.buffer, len(self.buffer))  # a body nobody wants: drop it
                moved = len(self.buffer) != before
            moved = self._send(exchange, now) or moved
        except HTTPError as error:  # a bad chunked body
            self.service.count("bad_bodies")
            if exchange.started:
                self.stream.close(now)  # (the response is cut short: the client sees an error)
                self.exchange = None
            else:
                self._fail(error, now)
            return True
        body = exchange.body
        if body is not None and not body.done and body.starved(self.buffer):
            if self.stream.at_eof:
                self.service.count("incomplete")  # the client stopped inside a request body
                self.stream.close(now)
                self.exchange = None
                return True
        return moved

    def _send(self, exchange: Exchange, now: float) -> bool:
        stream, moved = self.stream, False
        for _ in range(SEND_ROUNDS):
            if not exchange.pending:
                content = exchange.content
                room = stream.send_room
                if content is None or content.done or not room:
                    break
                piece = content.read(room)
                if not piece:
                    break
                exchange.pending = memoryview(piece)
            sent = stream.send(exchange.pending, now)
            if not sent:
                break
            exchange.pending = exchange.pending[sent:]
            exchange.started = moved = True
        return moved

    def _eof(self, now: float) -> bool:
        """The client finished sending: close once nothing is left to answer."""
        if self.exchange is not None or not self.stream.at_eof:
            return False
        if self.buffer:
            self.service.count("incomplete")
        self.stream.close(now)
        return True


class HTTPService(SessionService):
    """HTTP on port 80 (``tls=`` a server context for HTTPS; see ``HTTPSService``)."""

    name, default_port = "http", 80

    def __init__(
        self,
        stack: Stack,
        port: int | None = None,
        backlog: int = 128,
        tls: ssl.SSLContext | None = None,
        max_connections: int | None = None,
        clock: Callable[[], float] = time.time,
        idle_timeout: float = IDLE_TIMEOUT,
        head_timeout: float = HEAD_TIMEOUT,
        body_timeout: float = BODY_TIMEOUT,
        body_rate: float = BODY_RATE,
    ) -> None:
        super().__init__(stack, port, backlog, tls, max_connections)
        if min(idle_timeout, head_timeout, body_timeout, body_rate) <= 0:
            raise ValueError("HTTP timeouts and the body rate must be > 0")
        self.clock = clock
        self.idle_timeout = idle_timeout
        self.head_timeout = head_timeout
        self.body_timeout = body_timeout
        self.body_rate = body_rate
        self._date: tuple[int, str] = (-1, "")

    def make_session(self, stream: Stream, now: float) -> Session:
        return HTTPSession(stream, now, self)

    def date(self) -> str:
        """RFC 9110 5.6.7 IMF-fixdate of the wall clock, computed once per second."""
        second = int(self.clock())
        if self._date[0] != second:
            self._date = (second, formatdate(second, usegmt=True))
        return self._date[1]

    def fields(self, response: Response) -> list[tuple[str, str]]:
        fields = [("Date", self.date()), ("Server", SERVER)]
        if response.status not in NO_CONTENT:
            fields.append(("Content-Type", response.content_type))
            if response.until_close:
                pass  # RFC 9112 6.3: no framing field, the body ends with the connection
            elif response.length is None:
                fields.append(("Transfer-Encoding", "chunked"))
            else:
                fields.append(("Content-Length", str(response.length)))
        return fields + response.fields

    # -- routing -----------------------------------------------------------------------------
    def route(self, head: RequestHead) -> Response:
        """The response to ``head`` (its content still to be produced)."""
        method, path = head.method, head.path
        if method not in KNOWN_METHODS:
            return text_response(501, f"method {method} not implemented\n")
        if path == "/echo":
            return self._allow(head, UPLOAD) or self._echo(head)
        prefix, _, argument = path[1:].partition("/")
        if prefix == "status" and _number(argument) is not None:
            return self._status(_number(argument) or 0)  # (any method)
        if path not in ("/", "/json", "/redirect") and (
            prefix not in ("bytes", "chunked", "redirect") or _number(argument) is None
        ):
            return text_response(404, f"no such page: {path[:200]}\n")
        allowed = self._allow(head, READ_ONLY)
        if allowed is not None:
            return allowed
        if path == "/":
            page = index_page()
            return Response(200, FixedContent(page), len(page), "text/html; charset=utf-8")
        if path == "/json":
            document = json_document()
            return Response(200, FixedContent(document), len(document), "application/json")
        if path == "/redirect":
            return self._redirect(head, "/json")
        number = _number(argument) or 0
        if prefix == "redirect":
            if not 1 <= number <= MAX_REDIRECTS:
                return text_response(400, f"/redirect/N takes N in 1..{MAX_REDIRECTS}\n")
            return self._redirect(head, "/json" if number == 1 else f"/redirect/{number - 1}")
        return self._bytes(head, number, chunked=prefix == "chunked")

    def _status(self, status: int) -> Response:
        if not 200 <= status <= 599:  # (1xx are not final responses)
            return text_response(400, "/status/N takes N in 200..599\n")
        return text_response(status)

    def _bytes(self, head: RequestHead, size: int, chunked: bool) -> Response:
        if size > MAX_BYTES:
            return text_response(400, f"at most {MAX_BYTES} bytes\n")
        octets = "application/octet-stream"
        if chunked and head.version >= (1, 1):  # RFC 9112 7: never chunked to a 1.0 client
            return Response(200, ChunkedContent(PatternContent(size)), None, octets)
        return Response(200, PatternContent(size), size, octets)

    def _allow(self, head: RequestHead, methods: tuple[str, ...]) -> Response | None:
        if head.method in methods:
            return None
        return text_response(405, fields=[("Allow", ", ".join(methods))])

    def _redirect(self, head: RequestHead, path: str) -> Response:
        """302 with an absolute Location when the request named its host: RFC 9110 allows a
        relative one, but older clients (micropython-lib's urequests) follow only absolute URLs."""
        host = head.field("host")
        scheme = "https" if self.tls is not None else "http"
        location = f"{scheme}://{host}{path}" if host and _HOST.fullmatch(host) else path
        return text_response(302, f"redirecting to {location}\n", fields=[("Location", location)])

    def _echo(self, head: RequestHead) -> Response:
        if head.content_length is not None and head.content_length > MAX_BODY:
            return text_response(413, f"at most {MAX_BODY} bytes\n", close=True)
        kind = head.field("content-type") or "application/octet-stream"
        length = None if head.chunked else (head.content_length or 0)
        empty = FixedContent(b"")
        # An HTTP/1.0 client cannot take a chunked answer (RFC 9112 7): the close frames it.
        until_close = head.chunked and head.version < (1, 1)
        return Response(200, empty, length, kind, reads_body=True, until_close=until_close)


def _number(text: str) -> int | None:
    """A path segment of ASCII digits (at most 11) as a number; anything else is None."""
    return int(text) if text.isascii() and text.isdigit() and len(text) < 12 else None


class HTTPSService(HTTPService):
    """HTTP over TLS on port 8443, with the simulated network's certificate unless given one;
    the other options are ``HTTPService``'s."""

    name, default_port = "https", 8443

    def __init__(
        self,
        stack: Stack,
        port: int | None = None,
        *,
        tls: ssl.SSLContext | None = None,
        **options: Any,
    ) -> None:
        from pystack.services.tls import server_context

        super().__init__(stack, port, tls=tls if tls is not None else server_context(), **options)
