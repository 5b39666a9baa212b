"""HTTP response content, produced lazily: what ``http.py`` routes answer with.

A ``Content`` hands out at most ``size`` bytes per ``read`` (the session asks for the stream's
``send_room``), so a response is never built whole: ``PatternContent`` computes the ``/bytes``
pattern slice by slice, ``EchoContent`` passes the request body through as it arrives, and
``ChunkedContent`` frames any of them in RFC 9112 7.1 chunks. A ``Response`` is the status, the
content and how it is framed; the session adds the head.
Entry points: ``pattern_bytes``, ``Content`` and its kinds, ``Response``, ``text_response``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pystack.services.http_message import ChunkedReader, LengthReader, reason_phrase

CHUNK_SIZE = 16384  # data per chunk of a chunked response
PATTERN_PERIOD = 251  # a prime: no common segment size is a multiple of it
NO_CONTENT = frozenset({204, 304})  # never a body, never a Content-Length here
_CYCLE = bytes(range(PATTERN_PERIOD))
_BLOCK = _CYCLE * (65536 // PATTERN_PERIOD + 2)


def pattern_bytes(offset: int, size: int) -> bytes:
    """Bytes ``offset .. offset+size`` of the ``/bytes`` pattern (byte i is i % 251)."""
    start = offset % PATTERN_PERIOD
    if start + size <= len(_BLOCK):
        return _BLOCK[start : start + size]
    return (_CYCLE * ((start + size) // PATTERN_PERIOD + 1))[start : start + size]


# -- response content: produced lazily, at most ``size`` bytes per read ----------------------------
class Content:
    done = False

    def read(self, size: int) -> bytes:
        raise NotImplementedError


class FixedContent(Content):
    def __init__(self, data: bytes) -> None:
        self.data = memoryview(data)
        self.done = not data

    def read(self, size: int) -> bytes:
        piece, self.data = bytes(self.data[:size]), self.data[size:]
        self.done = not self.data
        return piece


class PatternContent(Content):
    def __init__(self, length: int) -> None:
        self.offset, self.length = 0, length
        self.done = length == 0

    def read(self, size: int) -> bytes:
        piece = pattern_bytes(self.offset, min(size, self.length - self.offset))
        self.offset += len(piece)
        self.done = self.offset == self.length
        return piece


class EchoContent(Content):
    """The request body itself, read from the session's input buffer as it arrives."""

    def __init__(self, body: LengthReader | ChunkedReader, buffer: bytearray) -> None:
        self.body, self.buffer = body, buffer
        self.done = body.done

    def read(self, size: int) -> bytes:
        piece = self.body.read(self.buffer, size)
        self.done = self.body.done
        return piece


class ChunkedContent(Content):
    """RFC 9112 7.1 framing around ``inner``: hex size CRLF data CRLF ..., then ``0`` CRLF CRLF."""

    def __init__(self, inner: Content) -> None:
        self.inner = inner

    def read(self, size: int) -> bytes:
        if self.inner.done:
            self.done = True
            return b"0\r\n\r\n"
        data = self.inner.read(min(size - 12, CHUNK_SIZE)) if size > 12 else b""
        if data:
            return b"%x\r\n%b\r\n" % (len(data), data)
        if self.inner.done:  # (it ended without data: a chunked upload's last chunk arrived)
            self.done = True
            return b"0\r\n\r\n"
        return b""


@dataclass
class Response:
    status: int
    content: Content
    length: int | None  # Content-Length; None: chunked
    content_type: str = "text/plain; charset=utf-8"
    fields: list[tuple[str, str]] = field(default_factory=list)
    reads_body: bool = False  # the content is the request body (echo)
    close: bool = False  # close the connection after it
    until_close: bool = False  # length None, framed by the close (an HTTP/1.0 client's echo)


def text_response(
    status: int,
    text: str = "",
    fields: list[tuple[str, str]] | None = None,
    close: bool = False,
) -> Response:
    """A short text/plain response (none at all for 204 and 304)."""
    body = b"" if status in NO_CONTENT else (text or f"{status} {reason_phrase(status)}\n").encode()
    return Response(status, FixedContent(body), len(body), fields=fields or [], close=close)
