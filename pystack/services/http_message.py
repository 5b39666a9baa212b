"""HTTP/1.1 message syntax for the server (RFC 9112, with RFC 9110's semantics): request heads
parsed into values, request bodies decoded, response heads built.

Parse once, at the edge: ``parse_request_head`` turns the bytes up to the blank line into a
frozen ``RequestHead`` or raises ``HTTPError`` carrying the status to answer with (400, 414,
431, 501, 505) and a reason. Nothing above this module looks at raw header bytes. The request
body is framed by ``Content-Length`` or ``Transfer-Encoding: chunked`` (RFC 9112 6); the
framing rules that keep a server from being confused about where a request ends (request
smuggling) are applied strictly:

- both ``Content-Length`` and ``Transfer-Encoding``: 400; differing ``Content-Length`` values: 400;
- ``Transfer-Encoding: chunked`` in an HTTP/1.0 request is decoded, and the connection closes
  after the response (RFC 9112 6.1 calls that framing faulty and says to close; micropython-lib's
  ``requests`` sends chunked uploads with an HTTP/1.0 request line, so refusing them would break
  it); with a ``Content-Length`` as well it is a 400 like any other such request;
- ``chunked`` not the last coding: 400 (6.3); other codings: 501 (6.1); ``chunked`` twice: 400;
- whitespace before a field's colon, obsolete line folding, control characters: 400 (5.1, 5.2).

A bare LF ends a line as well as CR LF does (RFC 9112 2.2 allows it; hand-typed requests need
it); a CR anywhere else is an error. Empty lines before the request line are skipped (2.2: at
least one SHOULD be; the server allows two and answers more with 400).
Entry points: ``HTTPError``, ``RequestHead``, ``find_head_end``, ``parse_request_head``,
``check_request_line``, ``LengthReader``, ``ChunkedReader``, ``response_head``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from http import HTTPStatus

MAX_REQUEST_LINE = 8192  # longer: 414 (RFC 9112 3: at least 8000 octets SHOULD be supported)
MAX_HEAD = 16384  # the whole request head; longer: 431 (RFC 6585 5)
MAX_FIELDS = 100  # header fields per request; more: 431
MAX_CHUNK_LINE = 1024  # a chunk-size line with its extensions
MAX_TRAILERS = 8192  # the trailer section after the last chunk (read and dropped)

_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # RFC 9110 5.6.2 tchar
_VERSION = re.compile(r"HTTP/([0-9])\.([0-9])")
_HEX = re.compile(rb"[0-9A-Fa-f]{1,16}")
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")  # field values: HTAB allowed, not the rest
_TARGET_BAD = re.compile(r"[\x00-\x20\x7f]")


class HTTPError(Exception):
    """A request this server answers with ``status`` (and closes: the framing may be lost)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"{status} {reason}")
        self.status = status
        self.reason = reason


@dataclass(frozen=True, slots=True)
class RequestHead:
    method: str
    target: str  # as sent
    path: str  # the target's path, without the query (absolute-form reduced to it)
    version: tuple[int, int]
    fields: tuple[tuple[str, str], ...]  # (lower-case name, value), in order
    content_length: int | None
    chunked: bool

    def field(self, name: str) -> str | None:
        """The value of field ``name`` (lower case); repeated fields joined with ", "."""
        values = [value for key, value in self.fields if key == name]
        return ", ".join(values) if values else None

    def tokens(self, name: str) -> list[str]:
        """A comma-separated list field (``Connection``, ``Expect``...) as lower-case tokens."""
        value = self.field(name)
        if value is None:
            return []
        return [item.strip().lower() for item in value.split(",") if item.strip()]

    @property
    def keep_alive(self) -> bool:
        """RFC 9112 9.3: 1.1 persists unless ``close``; 1.0 only with ``keep-alive``."""
        connection = self.tokens("connection")
        if "close" in connection:
            return False
        if self.version < (1, 1) and self.chunked:
            return False  # RFC 9112 6.1: a 1.0 request with Transfer-Encoding: close after it
        return self.version >= (1, 1) or "keep-alive" in connection

    @property
    def has_body(self) -> bool:
        return self.chunked or bool(self.content_length)


def find_head_end(buffer: bytes | bytearray) -> int | None:
    """Where the request head ends (just after its blank line), or None when incomplete."""
    ends = [
        found + size
        for marker, size in ((b"\n\r\n", 3), (b"\n\n", 2))
        if (found := buffer.find(marker)) >= 0
    ]
    return min(ends) if ends else None


def skip_empty_lines(buffer: bytearray) -> int:
    """RFC 9112 2.2: drop empty lines before a request line (some clients add CR LF after a
    body); the number of lines dropped (each LF ends one)."""
    start = 0
    while start < len(buffer) and buffer[start] in b"\r\n":
        start += 1
    if not start:
        return 0
    lines = buffer.count(b"\n", 0, start)
    del buffer[:start]
    return lines


def check_request_line(line: bytes) -> None:
    """Raise ``HTTPError`` if ``line`` (without its LF) cannot be a request line: a bad head is
    answered as soon as its first line is in, not when (or if) the blank line comes."""
    text = line.decode("latin-1")
    if text.endswith("\r"):
        text = text[:-1]
    if "\r" in text:
        raise HTTPError(400, "bare CR in the request line")
    _parse_request_line(text)


def _lines(head: bytes) -> list[str]:
    text = head.decode("latin-1")
    lines = [line[:-1] if line.endswith("\r") else line for line in text.split("\n")]
    while lines and lines[-1] == "":
        lines.pop()
    for line in lines:
        if "\r" in line:
            raise HTTPError(400, "bare CR in the request head")
    return lines


def parse_request_head(head: bytes) -> RequestHead:
    """The request line and fields of ``head`` (the bytes up to and including the blank line)."""
    lines = _lines(head)
    if not lines:
        raise HTTPError(400, "empty request")
    method, target, version = _parse_request_line(lines[0])
    if len(lines) - 1 > MAX_FIELDS:
        raise HTTPError(431, f"more than {MAX_FIELDS} header fields")
    fields = tuple(_parse_field(line) for line in lines[1:])
    content_length, chunked = _framing(fields, version)
    hosts = [value for name, value in fields if name == "host"]
    if version >= (1, 1) and len(hosts) != 1:  # RFC 9112 3.2: exactly one Host, else 400
        raise HTTPError(400, "an HTTP/1.1 request needs exactly one Host field")
    return RequestHead(
        method, target, _path(method, target), version, fields, content_length, chunked
    )


def _parse_request_line(line: str) -> tuple[str, str, tuple[int, int]]:
    if len(line) > MAX_REQUEST_LINE:
        raise HTTPError(414, "request line too long")
    parts = line.split(" ")
    if len(parts) != 3:
        raise HTTPError(400, "the request line is not METHOD SP TARGET SP VERSION")
    method, target, version_text = parts
    if not _TOKEN.fullmatch(method):
        raise HTTPError(400, "bad method")
    if not target or _TARGET_BAD.search(target):
        raise HTTPError(400, "bad request target")
    match = _VERSION.fullmatch(version_text)
    if match is None:
        raise HTTPError(400, "bad HTTP version")
    version = (int(match[1]), int(match[2]))
    if version[0] != 1:
        raise HTTPError(505, "only HTTP/1.x is served")
    return method, target, version


def _parse_field(line: str) -> tuple[str, str]:
    if line[:1] in (" ", "\t"):
        raise HTTPError(400, "obsolete line folding")  # RFC 9112 5.2
    name, colon, value = line.partition(":")
    if not colon or not _TOKEN.fullmatch(name):
        raise HTTPError(400, f"bad header field {name[:40]!r}")  # incl. space before ':' (5.1)
    value = value.strip(" \t")
    if _CONTROL.search(value):
        raise HTTPError(400, f"control character in field {name[:40]!r}")
    return name.lower(), value


def _framing(
    fields: tuple[tuple[str, str], ...], version: tuple[int, int]
) -> tuple[int | None, bool]:
    """RFC 9112 6.1-6.3: the body's length (Content-Length) or chunked, strictly."""
    lengths = {
        v.strip() for name, value in fields if name == "content-length" for v in value.split(",")
    }
    codings = [
        item.strip().lower()
        for name, value in fields
        if name == "transfer-encoding"
        for item in value.split(",")
        if item.strip()
    ]
    if codings:
        if lengths:
            raise HTTPError(400, "both Content-Length and Transfer-Encoding")
        if codings[-1] != "chunked" or codings.count("chunked") != 1:
            raise HTTPError(400, "chunked must be the final transfer coding, once")
        if len(codings) > 1:
            raise HTTPError(501, f"transfer coding {codings[0]!r} not implemented")
        return None, True
    if not lengths:
        return None, False
    if len(lengths) != 1:
        raise HTTPError(400, "conflicting Content-Length values")
    (text,) = lengths
    if not text.isdigit() or not text.isascii() or len(text) > 18:
        raise HTTPError(400, "bad Content-Length")
    return int(text), False


def _path(method: str, target: str) -> str:
    """RFC 9112 3.2: origin-form ``/p?q``, absolute-form ``http://h/p``, asterisk-form ``*``."""
    if target == "*":
        if method != "OPTIONS":
            raise HTTPError(400, "'*' is only for OPTIONS")
        return "*"
    if not target.startswith("/"):
        scheme, separator, rest = target.partition("://")
        if not separator or scheme.lower() not in ("http", "https"):
            raise HTTPError(400, "bad request target")
        slash = rest.find("/")
        target = rest[slash:] if slash >= 0 else "/"
    return target.partition("?")[0].partition("#")[0]


# -- request bodies --------------------------------------------------------------------------
class LengthReader:
    """A body of exactly ``length`` bytes (Content-Length)."""

    def __init__(self, length: int) -> None:
        self.remaining = length

    @property
    def done(self) -> bool:
        return self.remaining == 0

    def starved(self, buffer: bytearray) -> bool:
        """Nothing more can be read until more input arrives."""
        return not buffer

    def read(self, buffer: bytearray, size: int) -> bytes:
        """Up to ``size`` body bytes taken from the front of ``buffer``."""
        take = min(size, self.remaining, len(buffer))
        data = bytes(buffer[:take])
        del buffer[:take]
        self.remaining -= take
        return data


class ChunkedReader:
    """RFC 9112 7.1: ``chunk-size [ext] CRLF data CRLF``..., ``0 CRLF``, trailers, ``CRLF``.

    Decoded incrementally from the session's input buffer: each ``read`` consumes what it can and
    returns the data; a syntax error raises ``HTTPError(400)``; more than ``limit`` data bytes
    raise ``HTTPError(413)``. Chunk extensions and trailer fields are read and ignored.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.total = 0
        self.remaining = 0  # data bytes left in the current chunk
        self.state = "size"  # size, data, data-end, trailer, done
        self.trailer_bytes = 0

    @property
    def done(self) -> bool:
        return self.state == "done"

    def starved(self, buffer: bytearray) -> bool:
        """Nothing more can be read until more input arrives."""
        return not buffer if self.state == "data" else b"\n" not in buffer

    def read(self, buffer: bytearray, size: int) -> bytes:
        out = bytearray()
        for _ in range(64):  # bounded: each round consumes a line or a chunk's data
            if self.state == "done" or len(out) >= size:
                break
            if self.state == "data":
                take = min(size - len(out), self.remaining, len(buffer))
                if not take:
                    break
                out += buffer[:take]
                del buffer[:take]
                self.remaining -= take
                if not self.remaining:
                    self.state = "data-end"
                continue
            line = self._line(buffer)
            if line is None:
                break
            self._after_line(line)
        return bytes(out)

    def _line(self, buffer: bytearray) -> bytes | None:
        end = buffer.find(b"\n")
        limit = MAX_CHUNK_LINE if self.state != "trailer" else MAX_TRAILERS
        if end > limit or (end < 0 and len(buffer) > limit):
            raise HTTPError(400, "chunk line too long")
        if end < 0:
            return None
        line = bytes(buffer[:end])
        del buffer[: end + 1]
        return line[:-1] if line.endswith(b"\r") else line

    def _after_line(self, line: bytes) -> None:
        if self.state == "data-end":
            if line:
                raise HTTPError(400, "chunk data longer than its size")
            self.state = "size"
        elif self.state == "size":
            size_text = line.partition(b";")[0].strip(b" \t")
            if not _HEX.fullmatch(size_text):
                raise HTTPError(400, "bad chunk size")
            self.remaining = int(size_text, 16)
            self.total += self.remaining
            if self.total > self.limit:
                raise HTTPError(413, f"body over {self.limit} bytes")
            self.state = "data" if self.remaining else "trailer"
        else:  # trailer: fields until an empty line
            self.trailer_bytes += len(line) + 2
            if self.trailer_bytes > MAX_TRAILERS:
                raise HTTPError(431, "trailer section too large")
            if not line:
                self.state = "done"


# -- responses ---------------------------------------------------------------------------------
def reason_phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""  # RFC 9112 4: the reason phrase may be empty


def response_head(status: int, fields: list[tuple[str, str]]) -> bytes:
    """``HTTP/1.1 status reason`` and the fields, each line ending in CR LF, then the blank line."""
    lines = [f"HTTP/1.1 {status} {reason_phrase(status)}"]
    lines += [f"{name}: {value}" for name, value in fields]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
