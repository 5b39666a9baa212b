"""Test-side clients for the session services, on stack ``b`` of a ``Network`` (manual clock).

``Client`` is one TCP connection from ``b`` to a service on ``a``, optionally with TLS: a CPython
``ssl.SSLObject`` over two ``MemoryBIO``s, pumped by the test (independent of the server's
``TLSStream``; only CPython's ssl module is shared). ``Driver.run_until`` is the loop: settle
the network, let every client move bytes, and advance the clock to the next deadline only when
nothing moved (as ``tests.helpers.tcp_transfer.run_apps`` does). Every run is bounded in
virtual time, wall time and iterations.

Also here, written from the specs and not from the server's code: an HTTP/1.1 response reader
(Content-Length, chunked, or to EOF) and MQTT 3.1.1 packet builders and a packet splitter.
"""

from __future__ import annotations

import ssl
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from pystack.services.certs import CA_PEM
from pystack.tcp.connection import TCPConnection
from pystack.tcp.state import TCPState
from pystack.wire.addresses import ip_from_str
from tests.helpers.tcp_transfer import A_ADDRESS, Network

MAX_ITERATIONS = 2_000_000
WALL_LIMIT = 30.0


def client_context(verify: bool = True) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(CA_PEM))
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


class Client:
    """One connection to ``port`` on host ``a``; ``received`` collects the plaintext."""

    def __init__(
        self,
        net: Network,
        port: int,
        tls: ssl.SSLContext | None = None,
        hostname: str = "peer.sim",
    ) -> None:
        self.net = net
        self.connection: TCPConnection = net.b.tcp.connect(
            ip_from_str(A_ADDRESS), port, net.sim.now
        )
        self.outgoing = bytearray()  # plaintext not yet accepted
        self.received = bytearray()
        self.tls: ssl.SSLObject | None = None
        self.tls_error: ssl.SSLError | None = None
        self.tls_closed = False  # the server's close_notify arrived
        self.eof_fed = False
        if tls is not None:
            self.incoming_bio, self.outgoing_bio = ssl.MemoryBIO(), ssl.MemoryBIO()
            self.tls = tls.wrap_bio(self.incoming_bio, self.outgoing_bio, server_hostname=hostname)
        self.handshake_done = tls is None

    @property
    def state(self) -> TCPState:
        return self.connection.state

    @property
    def at_eof(self) -> bool:
        """The server finished (FIN, or close_notify for TLS) and everything was read."""
        if self.tls is not None:
            return self.tls_closed or self.tls_error is not None
        return self.connection.at_eof or self.connection.state is TCPState.CLOSED

    def send(self, data: bytes) -> None:
        self.outgoing += data

    def take(self) -> bytes:
        data = bytes(self.received)
        self.received.clear()
        return data

    def pump(self, now: float) -> bool:
        """Move bytes between the test and the connection; True when any moved."""
        if self.connection.state in (TCPState.SYN_SENT, TCPState.CLOSED):
            return False
        if self.tls is None:
            return self._pump_plain(now)
        return self._pump_tls(now)

    def _pump_plain(self, now: float) -> bool:
        moved = False
        connection = self.connection
        if self.outgoing and connection.send_room:
            sent = connection.send(self.outgoing[: connection.send_room], now)
            del self.outgoing[:sent]
            moved = sent > 0
        while data := connection.receive(1 << 20):
            self.received += data
            moved = True
        return moved

    def _pump_tls(self, now: float) -> bool:
        assert self.tls is not None
        moved = False
        connection = self.connection
        while data := connection.receive(1 << 16):
            self.incoming_bio.write(data)
            moved = True
        if connection.at_eof and not self.eof_fed:
            self.incoming_bio.write_eof()
            self.eof_fed = moved = True
        if self.tls_error is None:
            try:
                moved = self._tls_work() or moved
            except ssl.SSLError as error:
                self.tls_error = error
                moved = True
        if self.outgoing_bio.pending and connection.send_room:
            connection.send(self.outgoing_bio.read(connection.send_room), now)
            moved = True
        return moved

    def _tls_work(self) -> bool:
        assert self.tls is not None
        moved = False
        if not self.handshake_done:
            try:
                self.tls.do_handshake()
            except ssl.SSLWantReadError:
                return False
            self.handshake_done = moved = True
        if self.outgoing and self.outgoing_bio.pending < 1 << 16:
            piece = bytes(self.outgoing[: 1 << 14])
            self.tls.write(piece)
            del self.outgoing[: len(piece)]
            moved = True
        for _ in range(64):
            try:
                data = self.tls.read(1 << 16)
            except ssl.SSLWantReadError:
                break
            except ssl.SSLZeroReturnError:  # (after our own close_notify it is raised)
                data = b""
            if not data:
                self.tls_closed = True
                break
            self.received += data
            moved = True
        return moved

    def close_notify(self) -> None:
        assert self.tls is not None
        try:
            self.tls.unwrap()
        except ssl.SSLWantReadError:
            pass

    def close(self) -> None:
        self.connection.close(self.net.sim.now)


@dataclass
class Driver:
    """Runs the network and the clients together."""

    net: Network
    clients: list[Client] = field(default_factory=list)

    def connect(
        self, port: int, tls: ssl.SSLContext | None = None, hostname: str = "peer.sim"
    ) -> Client:
        client = Client(self.net, port, tls, hostname)
        self.clients.append(client)
        assert self.run_until(lambda: client.state is not TCPState.SYN_SENT, 10.0)
        if tls is not None:
            self.run_until(lambda: client.handshake_done or client.tls_error is not None, 10.0)
        return client

    def run_until(self, predicate: Callable[[], bool], timeout: float) -> bool:
        sim = self.net.sim
        end = sim.now + timeout
        started = time.monotonic()
        for iteration in range(MAX_ITERATIONS):
            sim.settle()
            now = sim.now
            moved = False
            for client in self.clients:
                moved = client.pump(now) or moved
            if predicate():
                return True
            if iteration % 256 == 0 and time.monotonic() - started > WALL_LIMIT:
                return False
            if moved:
                continue
            deadline = sim.next_deadline()
            if deadline is None or deadline > end:
                if now >= end:
                    return predicate()
                sim.clock.set(end)
                continue
            sim.clock.set(max(now, deadline))
        return predicate()

    def run_for(self, duration: float) -> None:
        """Run exactly ``duration`` virtual seconds."""
        self.run_until(lambda: False, duration)


# -- HTTP: a response reader (RFC 9112) ---------------------------------------------------------
@dataclass
class HTTPResponse:
    version: str
    status: int
    reason: str
    headers: list[tuple[str, str]]
    body: bytes
    chunk_sizes: list[int] = field(default_factory=list)

    def header(self, name: str) -> str | None:
        values = [v for k, v in self.headers if k.lower() == name.lower()]
        return ", ".join(values) if values else None


def read_response(
    data: bytearray, head_request: bool = False, eof: bool = False
) -> HTTPResponse | None:
    """One response from the front of ``data`` (consumed), or None while incomplete."""
    end = data.find(b"\r\n\r\n")
    if end < 0:
        return None
    lines = data[:end].decode("latin-1").split("\r\n")
    version, status, reason = [*lines[0].split(" ", 2), ""][:3]
    headers = [
        (name.strip(), value.strip())
        for name, _, value in (line.partition(":") for line in lines[1:])
    ]
    response = HTTPResponse(version, int(status), reason, headers, b"")
    rest = data[end + 4 :]
    length = response.header("content-length")
    if head_request or response.status in (204, 304) or 100 <= response.status < 200:
        consumed = 0
    elif response.header("transfer-encoding") == "chunked":
        decoded = _dechunk(rest)
        if decoded is None:
            return None
        response.body, response.chunk_sizes, consumed = decoded
    elif length is not None:
        if len(rest) < int(length):
            return None
        response.body, consumed = bytes(rest[: int(length)]), int(length)
    else:  # read to EOF
        if not eof:
            return None
        response.body, consumed = bytes(rest), len(rest)
    del data[: end + 4 + consumed]
    return response


def _dechunk(data: bytes | bytearray) -> tuple[bytes, list[int], int] | None:
    body, sizes, offset = bytearray(), [], 0
    while True:
        line_end = data.find(b"\r\n", offset)
        if line_end < 0:
            return None
        size = int(bytes(data[offset:line_end]).split(b";")[0], 16)
        offset = line_end + 2
        if size == 0:
            trailer_end = data.find(b"\r\n", offset)  # (no trailers from this server)
            if trailer_end < 0:
                return None
            return bytes(body), sizes, trailer_end + 2
        if len(data) < offset + size + 2:
            return None
        body += data[offset : offset + size]
        assert data[offset + size : offset + size + 2] == b"\r\n", "chunk not followed by CRLF"
        sizes.append(size)
        offset += size + 2


def http_request(
    method: str,
    path: str,
    headers: dict[str, str] | None = None,
    body: bytes = b"",
    version: str = "HTTP/1.1",
) -> bytes:
    fields = {"Host": "peer.sim"} if version == "HTTP/1.1" else {}
    fields.update(headers or {})
    if body and "Transfer-Encoding" not in fields:
        fields.setdefault("Content-Length", str(len(body)))
    head = f"{method} {path} {version}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in fields.items())
    return head.encode("latin-1") + b"\r\n" + body


def chunked(pieces: list[bytes], trailer: bytes = b"") -> bytes:
    return (
        b"".join(b"%x\r\n%b\r\n" % (len(p), p) for p in pieces if p) + b"0\r\n" + trailer + b"\r\n"
    )


# -- MQTT 3.1.1: packets a client sends, and a splitter for what it receives ---------------------
def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value % 128, value // 128
        out.append(byte | (128 if value else 0))
        if not value:
            return bytes(out)


def _string(text: str | bytes) -> bytes:
    data = text.encode() if isinstance(text, str) else text
    return struct.pack("!H", len(data)) + data


def mqtt_packet(first: int, body: bytes) -> bytes:
    return bytes([first]) + _varint(len(body)) + body


def mqtt_connect(
    client_id: str,
    clean: bool = True,
    keepalive: int = 60,
    will: tuple[str, bytes, int, bool] | None = None,
    username: str | None = None,
    password: bytes | None = None,
    level: int = 4,
    name: str = "MQTT",
) -> bytes:
    flags = (0x02 if clean else 0) | (0x80 if username is not None else 0)
    flags |= 0x40 if password is not None else 0
    payload = _string(client_id)
    if will is not None:
        topic, message, qos, retain = will
        flags |= 0x04 | (qos << 3) | (0x20 if retain else 0)
        payload += _string(topic) + _string(message)
    if username is not None:
        payload += _string(username)
    if password is not None:
        payload += _string(password)
    header = _string(name) + bytes([level, flags]) + struct.pack("!H", keepalive)
    return mqtt_packet(0x10, header + payload)


def mqtt_publish(
    topic: str,
    payload: bytes,
    qos: int = 0,
    retain: bool = False,
    packet_id: int = 0,
    dup: bool = False,
) -> bytes:
    first = 0x30 | (0x08 if dup else 0) | (qos << 1) | (1 if retain else 0)
    identifier = struct.pack("!H", packet_id) if qos else b""
    return mqtt_packet(first, _string(topic) + identifier + payload)


def mqtt_subscribe(packet_id: int, filters: list[tuple[str, int]]) -> bytes:
    body = struct.pack("!H", packet_id) + b"".join(_string(f) + bytes([q]) for f, q in filters)
    return mqtt_packet(0x82, body)


def mqtt_unsubscribe(packet_id: int, filters: list[str]) -> bytes:
    return mqtt_packet(0xA2, struct.pack("!H", packet_id) + b"".join(_string(f) for f in filters))


def mqtt_ack(kind: int, packet_id: int) -> bytes:
    """PUBACK (4), PUBREC (5), PUBREL (6, flags 0010), PUBCOMP (7)."""
    return bytes([kind << 4 | (2 if kind == 6 else 0), 2]) + struct.pack("!H", packet_id)


PINGREQ = b"\xc0\x00"
DISCONNECT = b"\xe0\x00"


@dataclass
class Received:
    kind: int
    flags: int
    body: bytes

    @property
    def publish(self) -> tuple[str, bytes, int, bool, bool, int | None]:
        """(topic, payload, qos, retain, dup, packet id) of a PUBLISH."""
        assert self.kind == 3
        qos = (self.flags >> 1) & 3
        length = struct.unpack("!H", self.body[:2])[0]
        topic = self.body[2 : 2 + length].decode()
        offset = 2 + length
        packet_id = None
        if qos:
            packet_id = struct.unpack("!H", self.body[offset : offset + 2])[0]
            offset += 2
        return topic, self.body[offset:], qos, bool(self.flags & 1), bool(self.flags & 8), packet_id


def split_packets(data: bytearray) -> list[Received]:
    """Every complete packet at the front of ``data`` (consumed)."""
    packets = []
    while len(data) >= 2:
        length, multiplier, index = 0, 1, 1
        while True:
            if index >= len(data):
                return packets
            byte = data[index]
            length += (byte & 127) * multiplier
            multiplier *= 128
            index += 1
            if not byte & 128:
                break
        if len(data) < index + length:
            return packets
        packets.append(Received(data[0] >> 4, data[0] & 15, bytes(data[index : index + length])))
        del data[: index + length]
    return packets
