"""Helpers for the TLS tests: an in-memory MicroPython stream pair, a CPython TLS peer over one
end of it, a bounded background runner, and throwaway certificates made with the openssl CLI.

``stream_pair()`` gives two ``FakeStream`` ends with usocket's stream semantics
(docs/usocket.md 3 "Stream methods"): blocking by default, ``setblocking(False)`` makes
``read``/``write`` return None instead of waiting, ``settimeout(t)`` raises OSError(ETIMEDOUT),
``read(n)`` loops until n bytes or EOF, ``b''`` at EOF, ``ioctl(3, mask)`` polls and a closed
end polls POLLNVAL. Each direction holds at most ``capacity`` bytes, so writers block (or get a
partial count) as on a real socket. A "blocking" wait still gives up after ``MAX_BLOCK`` seconds
with an AssertionError, so no test can hang.
"""

from __future__ import annotations

import ssl
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from usocket.errors import EBADF, ENOTCONN, ETIMEDOUT, error

MAX_BLOCK = 10.0
POLLIN, POLLOUT, POLLHUP, POLLNVAL = 1, 4, 16, 32


class _Direction:
    def __init__(self, capacity: int) -> None:
        self.data = bytearray()
        self.eof = False  # the writer closed
        self.capacity = capacity
        self.total = 0  # bytes ever written


class FakeStream:
    """One end of an in-memory stream pair (see the module docstring)."""

    def __init__(self, inbound: _Direction, outbound: _Direction, changed: threading.Condition):
        self._in, self._out, self._changed = inbound, outbound, changed
        self._timeout: float | None = None
        self.closed = False
        self.connected = True
        self.connected_to: Any = None
        self._proto = 0
        self.writes: list[bytes] = []  # every chunk the stream took, in order

    # -- modes -----------------------------------------------------------------------------------
    def setblocking(self, flag: object) -> None:
        self._timeout = None if flag else 0.0

    def settimeout(self, value: float | None) -> None:
        self._timeout = value

    def connect(self, address: Any) -> None:
        """Only for unconnected ends (``unconnected_pair``): the pipe exists, now it may flow."""
        self.connected, self.connected_to = True, address

    def _wait(self, ready: Callable[[], bool]) -> bool:
        """Wait (lock held) for ``ready``; False when non-blocking or the timeout ran out."""
        if ready():
            return True
        if self._timeout == 0:
            return False
        limit = MAX_BLOCK if self._timeout is None else min(self._timeout, MAX_BLOCK)
        got = self._changed.wait_for(ready, limit)
        if not got and self._timeout is None:
            raise AssertionError("a blocking fake-stream call waited too long")
        if not got:
            raise error(ETIMEDOUT)
        return True

    def _check(self) -> None:
        if self.closed:
            raise error(EBADF)
        if not self.connected:
            raise error(ENOTCONN)

    # -- one recv / one send --------------------------------------------------------------------
    def recv(self, size: int) -> bytes | None:
        """At most ``size`` bytes once some are there; b'' at EOF; None if it would block."""
        with self._changed:
            self._check()
            if not self._wait(lambda: bool(self._in.data) or self._in.eof or self.closed):
                return None
            self._check()
            data = bytes(self._in.data[:size])
            del self._in.data[:size]
            self._changed.notify_all()
            return data

    def send(self, data: bytes) -> int | None:
        with self._changed:
            self._check()
            out = self._out
            if out.eof:
                raise error(EBADF)  # the other end is gone
            if not self._wait(lambda: len(out.data) < out.capacity or self.closed):
                return None
            self._check()
            room = out.capacity - len(out.data)
            taken = bytes(data[:room])
            out.data += taken
            out.total += len(taken)
            self.writes.append(taken)
            self._changed.notify_all()
            return len(taken)

    # -- the stream methods (py/stream.c) ---------------------------------------------------------
    def read(self, size: int | None = None) -> bytes | None:
        if size is None or size < 0:
            size = 1 << 30
        chunks: list[bytes] = []
        got = 0
        while got < size:
            data = self.recv(size - got)
            if data is None:
                return b"".join(chunks) if chunks else None
            if not data:
                break
            chunks.append(data)
            got += len(data)
        return b"".join(chunks)

    def readinto(self, buffer: Any) -> int | None:
        data = self.read(len(buffer))
        if data is None:
            return None
        buffer[: len(data)] = data
        return len(data)

    def write(self, buffer: Any) -> int | None:
        data = bytes(buffer)
        done = 0
        while done < len(data):
            sent = self.send(data[done:])
            if sent is None:
                return done if done else None
            done += sent
        return done

    def ioctl(self, request: int, argument: int = 0) -> int:
        if request == 4:
            self.close()
            return 0
        assert request == 3, request
        with self._changed:
            if self.closed:
                return POLLNVAL
            if not self.connected:
                return POLLHUP | (argument & POLLOUT)
            events = 0
            if argument & POLLIN and (self._in.data or self._in.eof):
                events |= POLLIN
            if argument & POLLOUT and len(self._out.data) < self._out.capacity:
                events |= POLLOUT
            return events

    def close(self) -> None:
        with self._changed:
            if not self.closed:
                self.closed = True
                self._out.eof = True
                self._changed.notify_all()

    # -- for tests ---------------------------------------------------------------------------------
    def inject(self, data: bytes) -> None:
        """Bytes that arrive at this end as if the peer had sent them."""
        with self._changed:
            self._in.data += data
            self._changed.notify_all()

    def peer_closed(self) -> bool:
        return self._in.eof


def stream_pair(capacity: int = 1 << 16) -> tuple[FakeStream, FakeStream]:
    changed = threading.Condition()
    forward, backward = _Direction(capacity), _Direction(capacity)
    return FakeStream(backward, forward, changed), FakeStream(forward, backward, changed)


def unconnected_pair(proto: int = 100) -> tuple[FakeStream, FakeStream]:
    """A WiPy-style socket (``_proto`` IPPROTO_SEC, not connected yet) and its future peer."""
    client, server = stream_pair()
    client.connected = False
    client._proto = proto
    return client, server


def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.001)
    return predicate()


class Background:
    """Run ``function`` in a thread; ``result()`` joins (bounded) and re-raises its error."""

    def __init__(self, function: Callable[[], Any]) -> None:
        self._function = function
        self._result: Any = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self._result = self._function()
        except BaseException as failure:
            self._error = failure

    def result(self, timeout: float = MAX_BLOCK) -> Any:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "the background task did not finish"
        if self._error is not None:
            raise self._error
        return self._result

    def error(self, timeout: float = MAX_BLOCK) -> BaseException | None:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "the background task did not finish"
        return self._error


class CPythonTLS:
    """CPython's own SSLObject over a FakeStream end (blocking), as an independent peer."""

    def __init__(
        self,
        stream: FakeStream,
        context: ssl.SSLContext,
        server_side: bool,
        server_hostname: str | None = None,
    ) -> None:
        self.stream = stream
        self.incoming, self.outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.tls = context.wrap_bio(
            self.incoming, self.outgoing, server_side=server_side, server_hostname=server_hostname
        )

    def _run(self, operation: Callable[[], Any]) -> Any:
        while True:
            try:
                result = operation()
            except ssl.SSLWantReadError:
                self._flush()
                data = self.stream.recv(1 << 16)
                if data:
                    self.incoming.write(data)
                else:
                    self.incoming.write_eof()
                continue
            self._flush()
            return result

    def _flush(self) -> None:
        data = self.outgoing.read()
        if data:
            self.stream.write(data)

    def handshake(self) -> None:
        self._run(self.tls.do_handshake)

    def read(self, size: int) -> bytes:
        try:
            return bytes(self._run(lambda: self.tls.read(size)))
        except ssl.SSLZeroReturnError:
            return b""

    def read_exactly(self, size: int) -> bytes:
        data = b""
        while len(data) < size:
            chunk = self.read(size - len(data))
            if not chunk:
                break
            data += chunk
        return data

    def write(self, data: bytes) -> None:
        self._run(lambda: self.tls.write(data))

    def close(self) -> None:
        try:
            self.tls.unwrap()
        except ssl.SSLError:
            pass
        self._flush()
        self.stream.close()


# -- throwaway certificates -------------------------------------------------------------------------
def _openssl(*arguments: str | Path, cwd: Path) -> None:
    subprocess.run(["openssl", *map(str, arguments)], cwd=cwd, check=True, capture_output=True)


@dataclass
class PKI:
    """Certificates for the failure tests, all signed by ``other_ca`` (not pystack's test CA)."""

    directory: Path
    other_ca_pem: bytes
    other_server_pem: bytes  # CN/SAN localhost, signed by other_ca
    other_server_key: bytes
    expired_pem: bytes  # localhost, signed by other_ca, expired in 2021
    client_pem: bytes  # a client certificate (clientAuth), signed by other_ca
    client_key: bytes
    rsa_pem: bytes  # self-signed RSA certificate for localhost
    rsa_key_der: bytes  # its key, PKCS#1 DER
    ec_key_der_sec1: bytes  # other_server_key as SEC1 DER
    ec_key_der_pkcs8: bytes  # ... and as PKCS#8 DER

    def path(self, name: str) -> str:
        return str(self.directory / name)


_CA_CONFIG = """[ca]
default_ca = test
[test]
database = index.txt
new_certs_dir = .
serial = serial
default_md = sha256
policy = anything
[anything]
commonName = supplied
"""


def make_pki(directory: Path) -> PKI:
    def run(*arguments: str) -> None:
        _openssl(*arguments, cwd=directory)

    (directory / "server.ext").write_text(
        "basicConstraints=CA:FALSE\nsubjectAltName=DNS:localhost\nextendedKeyUsage=serverAuth\n"
    )
    (directory / "client.ext").write_text(
        "basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n"
    )
    run("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "ca.key")
    run("req", "-x509", "-new", "-key", "ca.key", "-sha256", "-days", "3650",
        "-subj", "/CN=throwaway CA", "-addext", "basicConstraints=critical,CA:TRUE",
        "-out", "ca.pem")  # fmt: skip
    for name in ("server", "client"):
        run("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", f"{name}.ec")
        run("pkcs8", "-topk8", "-nocrypt", "-in", f"{name}.ec", "-out", f"{name}.key")
        subject = "/CN=localhost" if name == "server" else "/CN=test client"
        run("req", "-new", "-key", f"{name}.key", "-subj", subject, "-out", f"{name}.csr")
        run("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-days", "3650", "-sha256", "-extfile", f"{name}.ext",
            "-out", f"{name}.pem")  # fmt: skip
    (directory / "ca.cnf").write_text(_CA_CONFIG)
    (directory / "index.txt").write_text("")
    (directory / "serial").write_text("1000\n")
    run("ca", "-batch", "-config", "ca.cnf", "-cert", "ca.pem", "-keyfile", "ca.key",
        "-in", "server.csr", "-out", "expired.pem", "-startdate", "20200101000000Z",
        "-enddate", "20210101000000Z", "-extfile", "server.ext", "-notext")  # fmt: skip
    run("ec", "-in", "server.ec", "-outform", "DER", "-out", "server.sec1.der")
    run(
        "pkcs8",
        "-topk8",
        "-nocrypt",
        "-in",
        "server.ec",
        "-outform",
        "DER",
        "-out",
        "server.p8.der",
    )
    run("genrsa", "-traditional", "-out", "rsa.key", "2048")
    run("req", "-x509", "-new", "-key", "rsa.key", "-sha256", "-days", "3650",
        "-subj", "/CN=localhost", "-out", "rsa.pem")  # fmt: skip
    run("rsa", "-in", "rsa.key", "-outform", "DER", "-out", "rsa.der", "-traditional")

    def read(name: str) -> bytes:
        return (directory / name).read_bytes()

    return PKI(
        directory=directory,
        other_ca_pem=read("ca.pem"),
        other_server_pem=read("server.pem"),
        other_server_key=read("server.key"),
        expired_pem=read("expired.pem"),
        client_pem=read("client.pem"),
        client_key=read("client.key"),
        rsa_pem=read("rsa.pem"),
        rsa_key_der=read("rsa.der"),
        ec_key_der_sec1=read("server.sec1.der"),
        ec_key_der_pkcs8=read("server.p8.der"),
    )
