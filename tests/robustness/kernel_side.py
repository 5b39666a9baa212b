"""The kernel side of the robustness suite: attacks and the health check, run inside the test's
network namespace as ``python -m tests.robustness.kernel_side COMMAND JSON``.

Each command takes its parameters as one JSON object and prints its result as one JSON line
(the last line of its output); an assertion that fails ends it with a traceback and a non-zero
status, which the test shows. Every socket has a timeout and every loop a bound (a packet count
or a deadline), so a command cannot hang: the test's own timeout is the last resort.

Forged packets go out through an ``AF_PACKET`` socket on the TUN device: on a TUN device a packet
socket's frame is the IP packet itself, delivered to pystack exactly as built (no kernel
fix-ups of lengths, checksums or addresses, unlike a raw IP socket), so a mutated frame reaches
pystack as it was mutated. The same kind of socket captures what pystack sends.

Commands: ``health`` (a 1 MB echo compared byte for byte, then ``GET /json`` answered 200),
``fuzz`` (structure-aware mutated frames), ``synflood`` (spoofed SYNs to every service port with
legitimate clients on every port during the flood), ``blind`` (RST/SYN/data/ACK with random
sequence numbers into a live echo transfer), ``storms`` (injection storms on one connection and
to closed ports, with pystack's replies counted from a capture), ``slowloris``, ``handshakes``
(abandoned TLS handshakes), ``mqtt_idle`` (idle MQTT CONNECTs) and ``mixed`` (echo and HTTP
operations, for the soak under impairment).
"""

from __future__ import annotations

import json
import random
import socket
import ssl
import struct
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

PYSTACK = "10.0.0.2"
KERNEL = "10.0.0.1"
SERVICE_PORTS = (7, 9, 13, 19, 80, 443, 1883, 8443)
CLOSED_PORT = 5  # no service listens there
TIMEOUT = 20.0  # any one socket operation
MTU = 1500  # the device's: a longer frame cannot be sent
CA = Path(__file__).resolve().parents[2] / "pystack" / "services" / "certs" / "ca.pem"
ETH_P_IP = 0x0800
PACKET_OUTGOING = 4  # sll_pkttype of a frame this side sent
SO_TIMESTAMPNS = 35  # Linux: receive times as a struct timespec (not in the socket module)
FIN, SYN, RST, PSH, ACK, URG = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20

Params = dict[str, Any]


# -- packets ---------------------------------------------------------------------------------------


def checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def address(text: str) -> bytes:
    return socket.inet_aton(text)


def ip_packet(
    source: bytes,
    destination: bytes,
    protocol: int,
    payload: bytes,
    *,
    identification: int = 0,
    fragment: int = 0x4000,  # flags and offset: DF
    ttl: int = 64,
    tos: int = 0,
    options: bytes = b"",
) -> bytes:
    """An IPv4 packet with a correct header checksum."""
    options += b"\0" * (-len(options) % 4)
    header_length = 20 + len(options)
    header = struct.pack(
        "!BBHHHBBH4s4s",
        0x40 | header_length // 4,
        tos,
        header_length + len(payload),
        identification,
        fragment,
        ttl,
        protocol,
        0,
        source,
        destination,
    )
    header += options
    header = header[:10] + struct.pack("!H", checksum(header)) + header[12:]
    return header + payload


def transport_checksum(source: bytes, destination: bytes, protocol: int, segment: bytes) -> int:
    pseudo = source + destination + struct.pack("!BBH", 0, protocol, len(segment))
    return checksum(pseudo + segment)


def tcp_segment(
    source: bytes,
    destination: bytes,
    sport: int,
    dport: int,
    seq: int,
    ack: int,
    flags: int,
    *,
    window: int = 65535,
    options: bytes = b"",
    payload: bytes = b"",
    urgent: int = 0,
) -> bytes:
    """A TCP segment (header and payload) with a correct checksum."""
    options += b"\0" * (-len(options) % 4)
    offset = (20 + len(options)) // 4
    header = struct.pack(
        "!HHIIBBHHH",
        sport,
        dport,
        seq & 0xFFFFFFFF,
        ack & 0xFFFFFFFF,
        (offset & 15) << 4,
        flags & 0xFF,
        window,
        0,
        urgent,
    )
    segment = header + options + payload
    value = transport_checksum(source, destination, 6, segment)
    return segment[:16] + struct.pack("!H", value) + segment[18:]


def tcp_packet(
    source: str, sport: int, dport: int, seq: int, ack: int, flags: int, **fields: Any
) -> bytes:
    """An IP packet carrying a TCP segment from ``source`` to pystack."""
    src, dst = address(source), address(PYSTACK)
    return ip_packet(src, dst, 6, tcp_segment(src, dst, sport, dport, seq, ack, flags, **fields))


class Injector:
    """Sends IP packets to pystack through a packet socket on the TUN device, as built."""

    def __init__(self, device: str) -> None:
        self.device = device
        self.socket = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(ETH_P_IP))
        self.socket.bind((device, ETH_P_IP))
        self.sent = 0

    def send(self, packet: bytes) -> None:
        for _ in range(1000):  # the device's queue is full: wait a moment (bounded)
            try:
                self.socket.sendto(packet, (self.device, ETH_P_IP))
                break
            except BlockingIOError:
                time.sleep(0.001)
            except OSError as error:
                if error.errno != 105:  # ENOBUFS
                    raise
                time.sleep(0.001)
        else:
            raise AssertionError("the TUN device's queue stayed full")
        self.sent += 1


class Capture:
    """The TCP segments pystack sends on the device: (source port, destination port, seq, ack,
    flags, payload length, the kernel's receive time in seconds)."""

    def __init__(self, device: str) -> None:
        self.socket = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(ETH_P_IP))
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 << 20)
        self.socket.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        self.socket.bind((device, ETH_P_IP))
        self.socket.settimeout(0.05)

    def drain(self) -> list[tuple[int, int, int, int, int, int, float]]:
        seen = []
        while True:
            try:
                packet, ancillary, _, where = self.socket.recvmsg(70000, 256)
            except TimeoutError:
                return seen
            if where[2] == PACKET_OUTGOING or len(packet) < 40 or packet[9] != 6:
                continue
            if packet[12:16] != address(PYSTACK):
                continue
            stamp = time.time()
            for level, kind, data in ancillary:
                if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
                    seconds, nanoseconds = struct.unpack("@qq", data[:16])
                    stamp = seconds + nanoseconds / 1e9
            header = (packet[0] & 15) * 4
            sport, dport, seq, ack, offset, flags = struct.unpack_from("!HHIIBB", packet, header)
            total = struct.unpack_from("!H", packet, 2)[0]
            length = total - header - (offset >> 4) * 4
            seen.append((sport, dport, seq, ack, flags, length, stamp))


# -- clients ---------------------------------------------------------------------------------------


def connect(port: int, timeout: float = TIMEOUT) -> socket.socket:
    return socket.create_connection((PYSTACK, port), timeout=timeout)


def read_exactly(connection: socket.socket | ssl.SSLSocket, size: int) -> bytes:
    data = bytearray()
    while len(data) < size:
        chunk = connection.recv(min(size - len(data), 1 << 16))
        if not chunk:
            raise AssertionError(f"closed after {len(data)} of {size} bytes")
        data += chunk
    return bytes(data)


def echo_exact(data: bytes, timeout: float = TIMEOUT) -> None:
    """Send ``data`` to echo (port 7) while reading it back; it must come back byte for byte."""
    with connect(7, timeout) as connection:
        sender = threading.Thread(target=connection.sendall, args=(data,), daemon=True)
        sender.start()
        received = read_exactly(connection, len(data))
        sender.join(timeout)
    if received != data:
        first = next(i for i, (a, b) in enumerate(zip(received, data, strict=True)) if a != b)
        raise AssertionError(f"echo mismatch at byte {first} of {len(data)}")


def http_get(path: str = "/json", port: int = 80, timeout: float = TIMEOUT) -> tuple[int, bytes]:
    """``GET path`` with ``Connection: close``: (status, body)."""
    request = f"GET {path} HTTP/1.1\r\nHost: peer.sim\r\nConnection: close\r\n\r\n".encode()
    with connect(port, timeout) as connection:
        if port == 8443:
            wrapped = tls_context().wrap_socket(connection, server_hostname="peer.sim")
            return _http_exchange(wrapped, request)
        return _http_exchange(connection, request)


def _http_exchange(connection: socket.socket | ssl.SSLSocket, request: bytes) -> tuple[int, bytes]:
    connection.sendall(request)
    data = bytearray()
    while chunk := connection.recv(1 << 16):
        data += chunk
    head, _, body = bytes(data).partition(b"\r\n\r\n")
    if not head:
        return 0, b""
    return int(head.split(b" ", 2)[1]), body


def get_json(port: int = 80, timeout: float = TIMEOUT) -> None:
    status, body = http_get("/json", port, timeout)
    assert status == 200, f"GET /json on {port}: status {status}"
    json.loads(body)


def tls_context() -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(CA))


def tls_echo(payload: bytes, timeout: float = TIMEOUT) -> None:
    raw = connect(443, timeout)
    with raw, tls_context().wrap_socket(raw, server_hostname="peer.sim") as tls:
        tls.sendall(payload)
        assert read_exactly(tls, len(payload)) == payload, "TLS echo mismatch"


def mqtt_string(text: bytes) -> bytes:
    return len(text).to_bytes(2, "big") + text


def mqtt_packet(kind: int, body: bytes) -> bytes:
    return bytes([kind, len(body)]) + body


def mqtt_connect(client_id: bytes, keepalive: int, timeout: float = TIMEOUT) -> socket.socket:
    connection = connect(1883, timeout)
    header = mqtt_string(b"MQTT") + bytes([4, 2]) + keepalive.to_bytes(2, "big")
    connection.sendall(mqtt_packet(0x10, header + mqtt_string(client_id)))
    assert read_exactly(connection, 4) == b"\x20\x02\x00\x00", "CONNACK"
    return connection


def chargen_lines(size: int) -> bytes:
    printable = bytes(range(32, 127)) * 2
    cycle = b"".join(printable[i : i + 72] + b"\r\n" for i in range(95))
    return (cycle * (size // len(cycle) + 1))[:size]


def every_service(round_number: int, timeout: float) -> dict[str, str]:
    """One legitimate exchange on each of the eight service ports, each socket operation within
    ``timeout`` seconds; what each gave."""
    results: dict[str, str] = {}

    def attempt(name: str, operation: Callable[[], None]) -> None:
        try:
            operation()
            results[name] = "ok"
        except (OSError, AssertionError, ValueError) as error:
            results[name] = f"{type(error).__name__}: {error}"

    def discard() -> None:
        with connect(9, timeout) as connection:
            connection.sendall(b"x" * 65536)

    def daytime() -> None:
        with connect(13, timeout) as connection:
            assert connection.recv(200).endswith(b"\n"), "daytime line"

    def chargen() -> None:
        with connect(19, timeout) as connection:
            assert read_exactly(connection, 8192) == chargen_lines(8192), "chargen pattern"

    def curl() -> None:
        result = subprocess.run(
            ["curl", "--silent", "--show-error", "--max-time", str(timeout), "--output",
             "/dev/null", "--write-out", "%{http_code}", f"http://{PYSTACK}/json"],
            capture_output=True, text=True, timeout=timeout + 5, check=False,
        )  # fmt: skip
        assert result.stdout == "200", f"curl: {result.stdout!r} {result.stderr.strip()}"

    def mqtt() -> None:
        mqtt_connect(b"legit-%d" % round_number, 60, timeout).close()

    attempt("echo:7", lambda: echo_exact(random.Random(round_number).randbytes(65536), timeout))
    attempt("discard:9", discard)
    attempt("daytime:13", daytime)
    attempt("chargen:19", chargen)
    attempt("http:80", curl)
    attempt("tlsecho:443", lambda: tls_echo(b"through the flood\n", timeout))
    attempt("mqtt:1883", mqtt)
    attempt("https:8443", lambda: get_json(8443, timeout))
    return results


# -- commands --------------------------------------------------------------------------------------


def health(params: Params) -> Params:
    """A 1 MB echo compared byte for byte, then ``GET /json`` on port 80 answered 200."""
    data = random.Random(params.get("seed", 1)).randbytes(1 << 20)
    echo_exact(data)
    get_json()
    return {"echo": len(data), "http": 200}


def _option_soup(rng: random.Random) -> bytes:
    """TCP options: known kinds with right and wrong lengths, unknown kinds, stray ends."""
    soup = bytearray()
    for _ in range(rng.randrange(8)):
        kind = rng.choice((0, 1, 2, 3, 4, 5, 8, 19, 28, 30, 34, 253, rng.randrange(256)))
        if kind in (0, 1):
            soup.append(kind)
            continue
        right = {2: 4, 3: 3, 4: 2, 8: 10, 5: 2 + 8 * rng.randrange(1, 5)}.get(kind, 4)
        length = rng.choice((right, right, 0, 1, rng.randrange(256)))
        soup += bytes([kind, length]) + rng.randbytes(max(0, min(length, 40) - 2))
    return bytes(soup[:40])


def _mutant(rng: random.Random, live_port: int) -> tuple[str, bytes]:
    """One structure-aware mutated frame aimed at pystack, and what kind it is."""
    source = rng.choice((KERNEL, KERNEL, KERNEL, f"10.0.0.{rng.randrange(3, 255)}", PYSTACK))
    src = address(source) if rng.random() < 0.95 else rng.randbytes(4)
    dst = address(PYSTACK) if rng.random() < 0.95 else rng.randbytes(4)
    roll = rng.random()
    if roll < 0.65:
        kind, protocol = "tcp", 6
        live = rng.random() < 0.3
        sport = live_port if live else rng.randrange(65536)
        dport = 7 if live else rng.choice((*SERVICE_PORTS, CLOSED_PORT, rng.randrange(65536)))
        flags = rng.choice((SYN, ACK, RST, FIN | ACK, PSH | ACK, SYN | ACK, RST | ACK, 0))
        if rng.random() < 0.3:
            flags = rng.randrange(256)
        payload = rng.randbytes(rng.choice((0, 0, 1, rng.randrange(1500))))
        options = _option_soup(rng) if rng.random() < 0.6 else b""
        segment = bytearray(
            tcp_segment(
                src, dst, sport, dport, rng.getrandbits(32), rng.getrandbits(32), flags,
                window=rng.randrange(65536), options=options, payload=payload,
                urgent=rng.randrange(65536) if rng.random() < 0.1 else 0,
            )
        )  # fmt: skip
        if rng.random() < 0.1:  # a data offset that does not fit
            segment[12] = (rng.randrange(16) << 4) | (segment[12] & 15)
            kind = "tcp-offset"
        if rng.random() < 0.1:
            segment[16:18] = rng.randbytes(2)
            kind = "tcp-checksum"
        body = bytes(segment)
    elif roll < 0.75:
        kind, protocol = "udp", 17
        payload = rng.randbytes(rng.randrange(600))
        dport = rng.choice((7, 9, 13, 53, 67, 68, rng.randrange(65536)))
        length = 8 + len(payload) if rng.random() < 0.8 else rng.randrange(65536)
        header = struct.pack("!HHHH", rng.randrange(65536), dport, length, 0)
        value = transport_checksum(src, dst, 17, header + payload)
        if rng.random() < 0.1:
            value = rng.randrange(65536)
        body = header[:6] + struct.pack("!H", value) + payload
    elif roll < 0.9:
        kind, protocol = "icmp", 1
        icmp_type = rng.choice((0, 3, 4, 5, 8, 8, 11, 12, 13, rng.randrange(256)))
        code = rng.choice((0, 1, 3, 4, rng.randrange(256)))
        if icmp_type in (3, 4, 5, 11, 12):  # an error quoting a TCP header of ours, or junk
            quoted_tcp = struct.pack(
                "!HHI", 7 if rng.random() < 0.5 else rng.randrange(65536),
                live_port, rng.getrandbits(32),
            )  # fmt: skip
            quoted = ip_packet(dst, src, 6, quoted_tcp)[:28]
            rest = struct.pack("!HH", 0, rng.choice((0, 68, 296, 576, rng.randrange(65536))))
            message = rest + (quoted if rng.random() < 0.8 else rng.randbytes(rng.randrange(40)))
        else:
            message = rng.randbytes(rng.randrange(200))
        header = struct.pack("!BBH", icmp_type, code, 0) + message
        value = checksum(header) if rng.random() < 0.9 else rng.randrange(65536)
        body = header[:2] + struct.pack("!H", value) + header[4:]
    else:
        kind, protocol = "ip-junk", rng.choice((0, 2, 4, 17, 41, 47, 50, rng.randrange(256)))
        body = rng.randbytes(rng.randrange(100))
    fragment = 0x4000
    if rng.random() < 0.1:  # a fragment: MF and/or an offset
        fragment = rng.choice((0x2000, 0)) | rng.randrange(1 << 13)
        kind += "-fragment"
    options = rng.randbytes(rng.choice((4, 8, 40))) if rng.random() < 0.05 else b""
    packet = bytearray(
        ip_packet(
            src, dst, protocol, body, identification=rng.randrange(65536), fragment=fragment,
            ttl=rng.choice((64, 1, 0, 255)), tos=rng.randrange(256) if rng.random() < 0.1 else 0,
            options=options,
        )
    )  # fmt: skip
    mutation = rng.random()
    if mutation < 0.05:
        packet[0] = rng.randrange(256)  # version and header length
        kind += "-version"
    elif mutation < 0.1:
        packet[2:4] = rng.randbytes(2)  # total length
        kind += "-length"
    elif mutation < 0.15:
        packet[10:12] = rng.randbytes(2)
        kind += "-ipchecksum"
    elif mutation < 0.25:
        packet = packet[: rng.randrange(len(packet) + 1)]
        kind += "-truncated"
    elif mutation < 0.28:
        packet += rng.randbytes(rng.randrange(1, 64))
        kind += "-trailer"
    elif mutation < 0.32:
        position = rng.randrange(len(packet))
        packet[position] ^= 1 << rng.randrange(8)
        kind += "-bitflip"
    return kind, bytes(packet[:MTU])


def fuzz(params: Params) -> Params:
    """``count`` mutated frames while a live echo connection is open; it must still echo."""
    rng = random.Random(params["seed"])
    injector = Injector(params["device"])
    live = connect(7)
    live.sendall(b"before")
    assert read_exactly(live, 6) == b"before"
    live_port = live.getsockname()[1]
    kinds: Counter[str] = Counter()
    for number in range(params["count"]):
        kind, packet = _mutant(rng, live_port)
        kinds[kind.split("-")[0]] += 1
        if packet:
            injector.send(packet)
        if number % 25 == 24:
            time.sleep(0.002)  # the device's queue (500 frames) never overflows
    live.sendall(b"after the fuzz")
    assert read_exactly(live, 14) == b"after the fuzz"
    live.close()
    return {"sent": injector.sent, "kinds": dict(kinds)}


def synflood(params: Params) -> Params:
    """``per_port`` spoofed SYNs to each service port as fast as the device takes them, then more
    at a steady rate while every service is used twice; what each legitimate exchange gave."""
    rng = random.Random(params["seed"])
    injector = Injector(params["device"])

    def spoofed(port: int) -> bytes:
        source = f"10.0.0.{rng.randrange(3, 255)}"
        options = struct.pack("!BBH", 2, 4, 1460)
        return tcp_packet(
            source, rng.randrange(1024, 65536), port, rng.getrandbits(32), 0, SYN,
            window=29200, options=options,
        )  # fmt: skip

    for number in range(params["per_port"]):
        for port in SERVICE_PORTS:
            injector.send(spoofed(port))
        if number % 8 == 7:
            time.sleep(0.001)
    flooding = threading.Event()
    flooding.set()

    def keep_flooding() -> None:  # about 800 SYNs a second over all ports while clients work
        while flooding.is_set() and injector.sent < 4 * params["per_port"] * len(SERVICE_PORTS):
            for port in SERVICE_PORTS:
                injector.send(spoofed(port))
            time.sleep(0.01)

    flood = threading.Thread(target=keep_flooding, daemon=True)
    flood.start()
    try:
        during = [every_service(number, params["operation_timeout"]) for number in range(2)]
    finally:
        flooding.clear()
        flood.join(TIMEOUT)
    return {"spoofed": injector.sent, "during": during}


def blind(params: Params) -> Params:
    """A ``size``-byte echo transfer while ``injections`` forged RST, SYN, data and ACK segments
    with random sequence and acknowledgement numbers arrive on its four-tuple, spread over the
    transfer; every byte must come back as sent."""
    size, injections, seed = params["size"], params["injections"], params["seed"]
    chunk = 1 << 16
    chunks = (size + chunk - 1) // chunk

    def piece(number: int) -> bytes:
        return random.Random(seed * 1_000_003 + number).randbytes(chunk)

    connection = connect(7)
    kernel_port = connection.getsockname()[1]
    injector = Injector(params["device"])
    rng = random.Random(seed)
    progress = [0]
    done = threading.Event()
    kinds: Counter[str] = Counter()

    def inject() -> None:
        while not done.is_set() and injector.sent < injections:
            target = injections * min(1.0, 1.2 * progress[0] / (chunks * chunk)) + 20
            while injector.sent < min(target, injections):
                kind = rng.choice(("rst", "syn", "data", "ack"))
                flags = {"rst": RST, "syn": SYN, "data": PSH | ACK, "ack": ACK}[kind]
                if kind == "rst" and rng.random() < 0.5:
                    flags |= ACK
                payload = rng.randbytes(rng.randrange(1, 1400)) if kind == "data" else b""
                injector.send(
                    tcp_packet(
                        KERNEL, kernel_port, 7, rng.getrandbits(32), rng.getrandbits(32), flags,
                        payload=payload,
                    )
                )  # fmt: skip
                kinds[kind] += 1
            time.sleep(0.002)

    def send() -> None:
        for number in range(chunks):
            connection.sendall(piece(number))

    sender = threading.Thread(target=send, daemon=True)
    injecting = threading.Thread(target=inject, daemon=True)
    sender.start()
    injecting.start()
    try:
        for number in range(chunks):
            if number == chunks - 1:
                # The last chunk is read only once every injection has gone out: a transfer
                # faster than the injector must not end before all of them hit it (bounded).
                deadline = time.monotonic() + TIMEOUT
                while injector.sent < injections and time.monotonic() < deadline:
                    time.sleep(0.01)
            received = read_exactly(connection, chunk)
            if received != piece(number):
                raise AssertionError(f"data changed in chunk {number} of {chunks}")
            progress[0] += chunk
    finally:
        done.set()
        injecting.join(TIMEOUT)
        sender.join(TIMEOUT)
        connection.close()
    return {"bytes": chunks * chunk, "injected": injector.sent, "kinds": dict(kinds)}


def storms(params: Params) -> Params:
    """Storms of ``count`` forged segments each, on one live echo connection (whose sequence
    numbers the capture tells) and to closed ports; for each, pystack's segments meanwhile and
    for ``tail`` seconds after, and how long that was."""
    count, tail = params["count"], params["tail"]
    capture = Capture(params["device"])
    injector = Injector(params["device"])
    connection = connect(7)
    kernel_port = connection.getsockname()[1]
    connection.sendall(b"ping")
    assert read_exactly(connection, 4) == b"ping"
    time.sleep(0.3)  # pystack's last ACK is out before the storms
    ours = [s for s in capture.drain() if s[0] == 7 and s[1] == kernel_port]
    pystack_next = max(s[2] + s[5] for s in ours)  # pystack's SND.NXT
    kernel_next = ours[-1][3]  # pystack's RCV.NXT: our SND.NXT
    rng = random.Random(params["seed"])

    def on_connection(seq: int, ack: int, flags: int, payload: bytes = b"") -> Callable[[], bytes]:
        return lambda: tcp_packet(KERNEL, kernel_port, 7, seq, ack, flags, payload=payload)

    storm_kinds: dict[str, Callable[[], bytes]] = {
        # ACKs of data pystack never sent: an ACK in reply (RFC 9293 3.10.7.4), rate limited
        "unsent": on_connection(kernel_next, pystack_next + 100_000, ACK),
        # ACKs older than pystack's send window (RFC 5961 5.2): a challenge ACK, rate limited
        "old": on_connection(kernel_next, pystack_next - (1 << 30), ACK),
        # an RST inside the window but not at RCV.NXT (RFC 5961 3.2): a challenge ACK
        "rst": lambda: tcp_packet(
            KERNEL, kernel_port, 7, kernel_next + rng.randrange(1, 30000), 0, RST
        ),
        # a SYN on the established connection (RFC 5961 4.2): a challenge ACK
        "syn": lambda: tcp_packet(KERNEL, kernel_port, 7, rng.getrandbits(32), 0, SYN),
        # data far outside the receive window: an ACK in reply (RFC 9293 3.10.7.4), rate limited
        "outside": on_connection(kernel_next + (1 << 30), pystack_next, PSH | ACK, b"x" * 100),
    }
    results = []
    for name, build in storm_kinds.items():
        started = time.monotonic()
        for number in range(count):
            injector.send(build())
            if number % 25 == 24:
                time.sleep(0.002)
        time.sleep(tail)
        replies = [s for s in capture.drain() if s[0] == 7 and s[1] == kernel_port]
        results.append(
            {"name": name, "duration": time.monotonic() - started, "replies": len(replies),
             "data": sum(1 for s in replies if s[5]), "resets": sum(1 for s in replies if s[4] & RST)}
        )  # fmt: skip
    # segments for no connection: SYNs to a closed port, ACKs to a listener: RSTs, one bucket
    started = time.monotonic()
    for number in range(count):
        if number % 2:
            packet = tcp_packet(KERNEL, rng.randrange(1024, 65536), CLOSED_PORT, 1, 0, SYN)
        else:
            sport = rng.randrange(1024, 65536)
            packet = tcp_packet(KERNEL, sport, 80, rng.getrandbits(32), rng.getrandbits(32), ACK)
        injector.send(packet)
        if number % 25 == 24:
            time.sleep(0.002)
    time.sleep(tail)
    resets = [s for s in capture.drain() if s[0] in (CLOSED_PORT, 80) and s[4] & RST]
    span = resets[-1][6] - resets[0][6] if resets else 0.0  # first to last RST, as received
    results.append(
        {"name": "no-connection", "duration": time.monotonic() - started, "replies": len(resets),
         "data": 0, "resets": len(resets), "span": span}
    )  # fmt: skip
    connection.sendall(b"still there")
    assert read_exactly(connection, 11) == b"still there"
    connection.close()
    return {"storms": results, "injected": injector.sent}


def slowloris(params: Params) -> Params:
    """``count`` slow clients sending one header byte each per second to port 80 (reconnecting
    when dropped) while ``GET /json`` is tried ``rounds`` times; the statuses it got."""
    head = b"GET /json HTTP/1.1\r\nHost: peer.sim\r\nX-Padding: " + b"a" * 4000

    def slow() -> list[Any]:
        try:
            client = connect(80, 5)
        except OSError:
            return [None, 0]
        client.setblocking(False)
        return [client, 0]

    clients = [slow() for _ in range(params["count"])]
    statuses = []
    for _ in range(params["rounds"]):
        for _ in range(2):
            for entry in clients:
                client, sent = entry
                try:
                    if client is None or client.recv(65536) == b"":
                        raise ConnectionError
                except BlockingIOError:
                    pass
                except OSError:
                    if client is not None:
                        client.close()
                    entry[:] = slow()
                    continue
                try:
                    client.send(head[sent % len(head) : sent % len(head) + 1])
                    entry[1] = sent + 1
                except OSError:
                    client.close()
                    entry[:] = slow()
            time.sleep(1.0)
        try:
            statuses.append(http_get("/json", 80, 5)[0])
        except OSError as error:
            statuses.append(f"{type(error).__name__}")
    held = sum(1 for client, _ in clients if client is not None)
    for client, _ in clients:
        if client is not None:
            client.close()
    return {"statuses": statuses, "held": held}


def handshakes(params: Params) -> Params:
    """``count`` TLS handshakes abandoned after the ClientHello on each of 443 and 8443, held
    open while a TLS echo on 443 and ``GET /json`` on 8443 are served."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    try:
        tls_context().wrap_bio(incoming, outgoing, server_hostname="peer.sim").do_handshake()
    except ssl.SSLWantReadError:
        hello = outgoing.read()
    abandoned = []
    for port in (443, 8443):
        for _ in range(params["count"]):
            client = connect(port, 5)
            client.sendall(hello)
            abandoned.append(client)
    tls_echo(b"still served\n")
    get_json(8443)
    for client in abandoned:
        client.close()
    return {"abandoned": len(abandoned), "tlsecho": "ok", "https": 200}


def mqtt_idle(params: Params) -> Params:
    """``count`` MQTT clients that CONNECT with keepalive 0 and then say nothing, while a
    subscriber (connected before) receives what a publisher (connected after) sends."""
    subscriber = mqtt_connect(b"legit-subscriber", 60)
    subscriber.sendall(mqtt_packet(0x82, b"\x00\x01" + mqtt_string(b"legit/#") + b"\x00"))
    assert read_exactly(subscriber, 5)[:1] == b"\x90", "SUBACK"
    flood = [mqtt_connect(b"idle-%d" % number, 0, 5) for number in range(params["count"])]
    publisher = mqtt_connect(b"legit-publisher", 60)
    publisher.sendall(mqtt_packet(0x30, mqtt_string(b"legit/t") + b"through the flood"))
    fixed = read_exactly(subscriber, 2)
    body = read_exactly(subscriber, fixed[1])
    assert fixed[0] & 0xF0 == 0x30 and body.endswith(b"through the flood"), (fixed, body)
    for client in (*flood, publisher, subscriber):
        client.close()
    return {"idle": len(flood), "delivered": "through the flood"}


def mixed(params: Params) -> Params:
    """Echo exchanges of random sizes (compared byte for byte) and ``GET /json`` requests, on
    new connections, until ``operations`` are done or ``seconds`` have passed (whichever comes
    first; ``operations`` 0: only the time)."""
    rng = random.Random(params["seed"])
    operations, deadline = params["operations"], time.monotonic() + params["seconds"]
    done: Counter[str] = Counter()
    mismatches = 0
    while time.monotonic() < deadline and (not operations or sum(done.values()) < operations):
        if rng.random() < 0.5:
            data = rng.randbytes(rng.choice((1, 100, 1460, 10_000, rng.randrange(1, 300_000))))
            try:
                echo_exact(data, 60)
            except AssertionError:
                mismatches += 1
            done["echo"] += 1
        else:
            status, body = http_get("/json", 80, 60)
            try:
                json.loads(body)
            except ValueError:
                status = -status
            if status != 200:
                mismatches += 1
            done["http"] += 1
    return {"operations": dict(done), "mismatches": mismatches}


COMMANDS: dict[str, Callable[[Params], Params]] = {
    "health": health,
    "fuzz": fuzz,
    "synflood": synflood,
    "blind": blind,
    "storms": storms,
    "slowloris": slowloris,
    "handshakes": handshakes,
    "mqtt_idle": mqtt_idle,
    "mixed": mixed,
}


if __name__ == "__main__":
    command, arguments = sys.argv[1], json.loads(sys.argv[2])
    print(json.dumps(COMMANDS[command](arguments)), flush=True)
