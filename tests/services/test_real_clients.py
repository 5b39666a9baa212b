"""The services as real client code sees them: CPython's ``http.client`` and the request loop
of MicroPython's ``urequests`` and ``umqtt.simple``, over pystack's MicroPython sockets on the
running simulated network (``SimulatedNetwork``: real clock, the stack thread; the peer
10.0.0.1 runs ``PEER_SERVICES``). Every socket has a timeout, so every wait is bounded.

``http.client`` wants ``sock.makefile("rb")`` to be a buffered file whose ``close`` leaves the
socket open (a keep-alive connection serves the next request); MicroPython's ``makefile``
returns the socket itself, so ``_SocketFile`` gives it CPython's shape: a raw reader over
``readinto`` under ``io.BufferedReader``.
"""

from __future__ import annotations

import http.client
import io
import json
import struct
from collections.abc import Iterator
from typing import Any

import pytest

from pystack.sim.world import SimulatedNetwork
from usocket.context import NetworkContext
from usocket.modules import socket_module

PEER = "10.0.0.1"
TIMEOUT = 5.0


class _RawSocket(io.RawIOBase):
    def __init__(self, sock: Any) -> None:
        self.sock = sock

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self.sock.recv(len(buffer))
        buffer[: len(data)] = data
        return len(data)


class _SocketFile:
    """What ``http.client`` takes for a socket: ``sendall`` and a closable ``makefile``."""

    def __init__(self, sock: Any) -> None:
        self.sock = sock

    def sendall(self, data: bytes) -> None:
        self.sock.sendall(data)

    def makefile(self, mode: str) -> io.BufferedReader:
        return io.BufferedReader(_RawSocket(self.sock))

    def close(self) -> None:
        self.sock.close()


class Simulation:
    """The running simulated network and MicroPython's ``socket`` bound to its host."""

    def __init__(self) -> None:
        self.net = SimulatedNetwork(seed=7).start()
        self.peer = self.net.peer
        self.socket = socket_module(NetworkContext(self.net.thread, self.net.host))


@pytest.fixture
def sim() -> Iterator[Simulation]:
    simulation = Simulation()
    try:
        yield simulation
    finally:
        simulation.net.close()


def _connect(sim: Simulation, port: int) -> Any:
    socket: Any = sim.socket
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.settimeout(TIMEOUT)
    sock.connect(socket.getaddrinfo(PEER, port)[0][-1])
    return sock


def test_cpython_http_client_on_one_keep_alive_connection(sim: Simulation) -> None:
    class Connection(http.client.HTTPConnection):
        def connect(self) -> None:
            self.sock = _SocketFile(_connect(sim, 80))

    connection = Connection(PEER, 80, timeout=TIMEOUT)
    try:
        connection.request("GET", "/json")
        response = connection.getresponse()
        assert response.status == 200 and json.loads(response.read())["server"] == "pystack"
        connection.request("GET", "/chunked/100000")
        response = connection.getresponse()
        assert response.getheader("Transfer-Encoding") == "chunked"
        assert response.read() == bytes(i % 251 for i in range(100_000))
        connection.request("POST", "/echo", body=b"from http.client", headers={"X-A": "1"})
        assert connection.getresponse().read() == b"from http.client"
        connection.request("HEAD", "/bytes/5000")
        response = connection.getresponse()
        assert response.getheader("Content-Length") == "5000" and response.read() == b""
        connection.request("GET", "/redirect")
        response = connection.getresponse()
        assert response.status == 302 and response.getheader("Location") == "http://10.0.0.1/json"
        response.read()
        assert sim.peer.statistics()["counters"]["http.requests"] == 5  # (one connection)
    finally:
        connection.close()


def test_the_urequests_loop_http_1_0_read_to_eof(sim: Simulation) -> None:
    # MicroPython's urequests: HTTP/1.0, Host and Connection: close, the status line and the
    # headers by readline, then the body by reading until the server closes.
    sock = _connect(sim, 80)
    try:
        sock.write(b"POST /echo HTTP/1.0\r\nHost: 10.0.0.1\r\nConnection: close\r\n")
        sock.write(b"Content-Length: 11\r\n\r\nhello board")
        status = sock.readline().split(None, 2)
        assert status[0] == b"HTTP/1.1" and int(status[1]) == 200
        headers = []
        while (line := sock.readline()) not in (b"\r\n", b""):
            headers.append(line)
        assert b"Content-Length: 11\r\n" in headers and b"Connection: close\r\n" in headers
        assert sock.read() == b"hello board"  # read() returns at the server's FIN
    finally:
        sock.close()


def _mqtt(first: int, body: bytes) -> bytes:
    assert len(body) < 128
    return bytes([first, len(body)]) + body


def _string(text: bytes) -> bytes:
    return struct.pack("!H", len(text)) + text


def _read_packet(sock: Any) -> tuple[int, bytes]:
    """One packet as umqtt.simple's wait_msg reads it: type byte, length byte(s), body."""
    first = sock.read(1)[0]
    length, shift = 0, 0
    while True:
        byte = sock.read(1)[0]
        length |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            break
    return first, sock.read(length)


def test_the_umqtt_simple_loop_subscribe_then_publish(sim: Simulation) -> None:
    # umqtt.simple: CONNECT (clean, keepalive 60), read the 4-byte CONNACK; SUBSCRIBE and read
    # the SUBACK; PUBLISH at QoS 1 and read the PUBACK; wait_msg() reads the delivery.
    sock = _connect(sim, 1883)
    try:
        sock.write(_mqtt(0x10, _string(b"MQTT") + b"\x04\x02\x00\x3c" + _string(b"umqtt")))
        assert sock.read(4) == b"\x20\x02\x00\x00"
        sock.write(_mqtt(0x82, b"\x00\x01" + _string(b"board/#") + b"\x01"))
        assert _read_packet(sock) == (0x90, b"\x00\x01\x01")
        sock.write(_mqtt(0x32, _string(b"board/led") + b"\x00\x07" + b"on"))
        assert _read_packet(sock) == (0x40, b"\x00\x07")  # PUBACK (control packets go first)
        first, body = _read_packet(sock)
        assert first == 0x32 and body[:11] == _string(b"board/led") and body[13:] == b"on"
        sock.write(_mqtt(0x40, body[11:13]))  # our PUBACK for it
        sock.write(b"\xe0\x00")  # DISCONNECT
        assert sock.read(1) == b""  # the broker closes
    finally:
        sock.close()
