"""TLS sockets over an in-memory MicroPython stream pair (tests/helpers/tls_fixtures.py): usocket's
tls client and server against each other and against CPython's own SSLObject, blocking (peer in
a bounded background thread) and non-blocking (one thread, driven by poll). USOCKET.md 5."""

from __future__ import annotations

import ssl as cpython_ssl
import types
from collections.abc import Callable
from typing import Any

import pytest

from pystack.services.certs import CA_PEM, SERVER_CERT, SERVER_KEY, read_cert
from tests.helpers.tls_fixtures import (
    PKI,
    Background,
    CPythonTLS,
    FakeStream,
    make_pki,
    stream_pair,
    unconnected_pair,
)
from usocket.ssl_module import ssl_module
from usocket.tls import tls_module

POLLIN, POLLOUT, POLLNVAL = 1, 4, 32
FATAL_ALERT = (-30592, "MBEDTLS_ERR_SSL_FATAL_ALERT_MESSAGE")
CONN_EOF = (-29312, "MBEDTLS_ERR_SSL_CONN_EOF")
NOT_TRUSTED = "\nThe certificate is not correctly signed by the trusted CA\n"
STEPS = 20000  # the bound on every non-blocking drive loop


@pytest.fixture(scope="module")
def tls() -> types.ModuleType:
    return tls_module()


@pytest.fixture(scope="module")
def ssl(tls: types.ModuleType) -> types.ModuleType:
    return ssl_module(tls)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PKI:
    return make_pki(tmp_path_factory.mktemp("pki"))


def server_context(tls: Any, cert: bytes | None = None, key: bytes | None = None) -> Any:
    context = tls.SSLContext(tls.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert or read_cert("server.pem"), key or read_cert("server.key"))
    return context


def client_context(tls: Any, ca: bytes | None = None, mode: int | None = None) -> Any:
    context = tls.SSLContext(tls.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(ca or read_cert("ca.der"))
    if mode is not None:
        context.verify_mode = mode
    return context


def serve(context: Any, stream: FakeStream, work: Callable[[Any], Any] | None = None) -> Background:
    """A blocking tls server on ``stream`` in the background; ``work(sslsock)`` then close."""

    def run() -> Any:
        server = context.wrap_socket(stream, server_side=True)
        result = work(server) if work is not None else None
        server.close()
        return result

    return Background(run)


def echo_line(server: Any) -> bytes:
    line = server.readline()
    server.write(b"echo " + line)
    return bytes(line)


def connected(tls: Any, work: Callable[[Any], Any] = echo_line) -> tuple[Any, Background]:
    client_stream, server_stream = stream_pair()
    server = serve(server_context(tls), server_stream, work)
    client = client_context(tls).wrap_socket(client_stream, server_hostname="peer.sim")
    return client, server


def expect_error(run: Callable[[], Any], expected: Any) -> BaseException:
    with pytest.raises((OSError, ValueError)) as raised:
        run()
    if isinstance(expected, str):
        assert type(raised.value) is ValueError and str(raised.value) == expected
    else:
        assert raised.value.args == expected
    return raised.value


# -- blocking: tls against tls ---------------------------------------------------------------------
def test_blocking_client_and_server_exchange_lines(tls: types.ModuleType) -> None:
    client, server = connected(tls)
    assert client.write(b"hello\n") == 6
    assert client.read(11) == b"echo hello\n"
    assert server.result() == b"hello\n"
    assert client.read(10) == b""  # the server closed: close_notify reads as EOF
    assert client.read() == b""
    client.close()


def test_cipher_and_peer_certificate(tls: types.ModuleType) -> None:
    client, server = connected(tls, lambda s: (s.cipher(), s.getpeercert(True)))
    suite, version = client.cipher()
    assert version == "TLSv1.2" and suite in tls.SSLContext(0).get_ciphers()
    assert client.getpeercert(True) == cpython_ssl.PEM_cert_to_DER_cert(SERVER_CERT.read_text())
    with pytest.raises(NotImplementedError):
        client.getpeercert(False)
    server_cipher, client_cert = server.result()
    assert server_cipher == (suite, version)
    assert client_cert is None  # the server did not ask for one
    client.close()


def test_read_loops_to_n_and_readinto_and_readline_limit(tls: types.ModuleType) -> None:
    def work(server: Any) -> None:
        for piece in (b"ab", b"cd", b"ef\nrest of it"):
            server.write(piece)

    client, server = connected(tls, work)
    assert client.read(3) == b"abc"  # three records, one read
    buffer = bytearray(2)
    assert client.readinto(buffer) == 2 and buffer == b"de"
    assert client.readline(10) == b"f\n"
    assert client.readline(4) == b"rest"
    assert client.readline() == b" of it"
    assert client.readline() == b""
    server.result()
    client.close()


def test_write_forms_and_large_transfers_through_a_small_pipe(tls: types.ModuleType) -> None:
    payload = bytes(range(256)) * 1200  # 300 KB through 2 KB of pipe: writes wait for reads
    client_stream, server_stream = stream_pair(capacity=2048)

    def work(server: Any) -> bytes:
        data = server.read(len(payload))
        server.write(data)
        return bytes(data)

    server = serve(server_context(tls), server_stream, work)
    client = client_context(tls).wrap_socket(client_stream, server_hostname="peer.sim")
    assert client.write(payload) == len(payload)  # the server reads it all before it answers
    assert client.read(len(payload)) == payload
    assert server.result() == payload
    client.close()
    other, server = connected(tls)
    assert other.write(b"xxhi\nyy", 2, 4) == 4  # write(buf, off, len)
    assert other.readline() == b"echo hi\n"
    assert server.result() == b"hi\n"
    other.close()


def test_close_is_idempotent_sends_close_notify_and_closes_the_stream(
    tls: types.ModuleType,
) -> None:
    client, server = connected(tls, lambda s: (s.read(1), s.read(1)))
    client.close()
    client.close()
    assert server.result() == (b"", b"")  # EOF, every time it is asked
    assert client.ioctl(3, POLLIN) == POLLNVAL
    for operation in (lambda: client.read(1), lambda: client.write(b"x")):
        with pytest.raises(OSError) as raised:
            operation()
        assert raised.value.args == (9,)  # EBADF
    assert client.getpeercert(True) is None and client.cipher() is None


def test_close_does_not_wait_for_a_peer_that_reads_nothing(tls: types.ModuleType) -> None:
    client_stream, server_stream = stream_pair(capacity=4096)
    server = serve(server_context(tls), server_stream, lambda s: None)
    client = client_context(tls).wrap_socket(client_stream, server_hostname="peer.sim")
    server.result()  # the server is gone quiet (it closed: its close_notify waits unread)
    client.setblocking(False)
    while client.write(b"x" * 1000) is not None:  # fill the pipe (bounded by its capacity)
        pass
    client.setblocking(True)
    client.close()  # a blocking write of close_notify would wait for MAX_BLOCK and fail
    assert client_stream.closed


def test_ioctl_close_and_unknown_requests(tls: types.ModuleType) -> None:
    client, server = connected(tls, lambda s: s.read(1))
    with pytest.raises(OSError) as raised:
        client.ioctl(10)
    assert raised.value.args == (22,)  # EINVAL, as modtls_mbedtls answers what it does not know
    assert client.ioctl(4) == 0
    assert client.ioctl(3, POLLIN | POLLOUT) == POLLNVAL
    assert server.result() == b""


def test_ragged_eof_after_the_handshake_reads_as_eof(tls: types.ModuleType) -> None:
    client_stream, server_stream = stream_pair()
    server = serve(server_context(tls), server_stream, lambda s: s._sock.close())
    client = client_context(tls).wrap_socket(client_stream, server_hostname="peer.sim")
    server.result()
    assert client.read(5) == b""  # mbedtls_ssl_read returns 0 when the transport ends
    client.close()


def test_eof_during_the_handshake_is_conn_eof(tls: types.ModuleType) -> None:
    # sslcontext_check_hostname_error.py: the client gives up before its handshake and closes.
    client_stream, server_stream = stream_pair()
    server = serve(server_context(tls), server_stream)
    with pytest.raises(ValueError):
        tls.SSLContext(tls.PROTOCOL_TLS_CLIENT).wrap_socket(client_stream)
    client_stream.close()
    assert server.error() is not None
    expect_error(server.result, CONN_EOF)


def test_data_that_is_not_tls_is_an_invalid_record(tls: types.ModuleType) -> None:
    client_stream, server_stream = stream_pair()
    client_stream.write(b"GET / HTTP/1.0\r\n\r\n")
    context = server_context(tls)
    invalid = (-0x7200, "MBEDTLS_ERR_SSL_INVALID_RECORD")
    expect_error(lambda: context.wrap_socket(server_stream, server_side=True), invalid)
    sock = context.wrap_socket(stream_pair()[1], server_side=True, do_handshake_on_connect=False)
    sock._sock.inject(b"\x16\x03\x01\xff\xffxxxx")  # a handshake record longer than TLS allows
    expect_error(lambda: sock.read(1), invalid)
    expect_error(lambda: sock.read(1), invalid)  # kept, as mbedTLS's last_error
    assert sock.ioctl(3, POLLIN) == POLLNVAL


def test_a_timeout_of_the_wrapped_stream_passes_through_and_is_kept(tls: types.ModuleType) -> None:
    client, server = connected(tls, lambda s: s.read(1))
    client._sock.settimeout(0.05)
    for _ in range(2):
        with pytest.raises(OSError) as raised:
            client.read(1)
        assert raised.value.args == (110,)  # ETIMEDOUT, the stream's own error
    assert client.ioctl(3, POLLIN) == POLLNVAL
    client.close()
    assert server.result() == b""


# -- certificate verification ----------------------------------------------------------------------
def failing_handshake(
    tls: Any, server_ctx: Any, client_ctx: Any, hostname: str = "localhost"
) -> tuple[BaseException, BaseException | None]:
    client_stream, server_stream = stream_pair()
    server = serve(server_ctx, server_stream)
    with pytest.raises((OSError, ValueError)) as raised:
        client_ctx.wrap_socket(client_stream, server_hostname=hostname)
    client_stream.close()  # as the scripts do after the failed wrap
    return raised.value, server.error()


def test_untrusted_server_certificate(tls: types.ModuleType, pki: PKI) -> None:
    server_ctx = server_context(tls, pki.other_server_pem, pki.other_server_key)
    client_error, server_error = failing_handshake(tls, server_ctx, client_context(tls))
    assert type(client_error) is ValueError and str(client_error) == NOT_TRUSTED
    assert server_error is not None and server_error.args == FATAL_ALERT  # our alert reached it


def test_certificate_for_another_name(tls: types.ModuleType) -> None:
    client_error, server_error = failing_handshake(
        tls, server_context(tls), client_context(tls), hostname="foobar.local"
    )
    assert str(client_error) == (
        "\nThe certificate Common Name (CN) does not match with the expected CN\n"
    )
    assert server_error is not None and server_error.args == FATAL_ALERT


def test_expired_certificate(tls: types.ModuleType, pki: PKI) -> None:
    server_ctx = server_context(tls, pki.expired_pem, pki.other_server_key)
    client_error, _ = failing_handshake(tls, server_ctx, client_context(tls, pki.other_ca_pem))
    assert str(client_error) == "\nThe certificate validity has expired\n"


def test_cert_required_without_a_ca_is_ca_chain_required(tls: types.ModuleType) -> None:
    client_ctx = tls.SSLContext(tls.PROTOCOL_TLS_CLIENT)
    client_error, _ = failing_handshake(tls, server_context(tls), client_ctx, "peer.sim")
    assert client_error.args == (-0x7680, "MBEDTLS_ERR_SSL_CA_CHAIN_REQUIRED")


def test_cert_optional_and_cert_none_clients_go_on(tls: types.ModuleType, pki: PKI) -> None:
    for mode in (tls.CERT_OPTIONAL, tls.CERT_NONE):
        client_stream, server_stream = stream_pair()
        server_ctx = server_context(tls, pki.other_server_pem, pki.other_server_key)
        server = serve(server_ctx, server_stream, echo_line)
        client = client_context(tls, mode=mode).wrap_socket(client_stream)  # no hostname needed
        client.write(b"ok\n")
        assert client.readline() == b"echo ok\n"
        server.result()
        client.close()


def test_a_later_call_after_a_verify_failure_raises_x509_verify_failed(
    tls: types.ModuleType, pki: PKI
) -> None:
    client_stream, server_stream = stream_pair()
    serve(server_context(tls, pki.other_server_pem, pki.other_server_key), server_stream)
    client = client_context(tls).wrap_socket(
        client_stream, server_hostname="localhost", do_handshake_on_connect=False
    )
    expect_error(lambda: client.write(b"x"), NOT_TRUSTED)  # the handshake runs inside write
    expect_error(lambda: client.read(1), (-0x2700, "MBEDTLS_ERR_X509_CERT_VERIFY_FAILED"))
    assert client.ioctl(3, POLLIN) == POLLNVAL and client.getpeercert(True) is None
    client.close()
    assert client_stream.closed


def test_server_requiring_a_client_certificate(tls: types.ModuleType, pki: PKI) -> None:
    server_ctx = server_context(tls)
    server_ctx.verify_mode = tls.CERT_REQUIRED
    server_ctx.load_verify_locations(pki.other_ca_pem)
    client_error, server_error = failing_handshake(tls, server_ctx, client_context(tls), "peer.sim")
    assert server_error is not None
    assert server_error.args == (-29824, "MBEDTLS_ERR_SSL_NO_CLIENT_CERTIFICATE")
    assert client_error.args == FATAL_ALERT
    client_stream, server_stream = stream_pair()
    server = serve(server_ctx, server_stream, lambda s: s.getpeercert(True))
    client_ctx = client_context(tls)
    client_ctx.load_cert_chain(pki.client_pem, pki.client_key)
    client = client_ctx.wrap_socket(client_stream, server_hostname="peer.sim")
    assert server.result() == cpython_ssl.PEM_cert_to_DER_cert(pki.client_pem.decode())
    client.close()


def test_verify_callback_sees_the_peer_certificate(tls: types.ModuleType) -> None:
    seen: list[tuple[bytes, int]] = []

    def callback(cert: Any, depth: int) -> int:
        assert isinstance(cert, memoryview)
        seen.append((bytes(cert), depth))
        return 0

    client_stream, server_stream = stream_pair()
    server = serve(server_context(tls), server_stream, echo_line)
    client_ctx = client_context(tls)
    client_ctx.verify_callback = callback
    client = client_ctx.wrap_socket(client_stream, server_hostname="peer.sim")
    assert seen == [(client.getpeercert(True), 0)]
    client.write(b"x\n")
    assert client.readline() == b"echo x\n"
    server.result()
    client.close()
    client_ctx.verify_callback = lambda cert, depth: -0x2700
    client_error, _ = failing_handshake(tls, server_context(tls), client_ctx, "peer.sim")
    assert client_error.args == (-0x2700, "MBEDTLS_ERR_X509_CERT_VERIFY_FAILED")


def test_chosen_suites_are_negotiated(tls: types.ModuleType, pki: PKI) -> None:
    # sslcontext_server_client_ciphers.py: an RSA certificate and RSA key exchange.
    for suite, cert, key in (
        ("TLS-RSA-WITH-AES-256-CBC-SHA256", pki.rsa_pem, pki.rsa_key_der),
        ("TLS-ECDHE-ECDSA-WITH-AES-128-GCM-SHA256", None, None),
    ):
        client_stream, server_stream = stream_pair()
        server = serve(server_context(tls, cert, key), server_stream, lambda s: s.cipher())
        client_ctx = client_context(tls, cert or read_cert("ca.pem"))
        client_ctx.set_ciphers([suite])
        client = client_ctx.wrap_socket(
            client_stream, server_hostname="localhost" if cert else "peer.sim"
        )
        assert client.cipher() == (suite, "TLSv1.2")
        assert server.result() == (suite, "TLSv1.2")
        client.close()


# -- against CPython's ssl -------------------------------------------------------------------------
def test_client_against_a_cpython_server(tls: types.ModuleType) -> None:
    client_stream, server_stream = stream_pair()
    context = cpython_ssl.SSLContext(cpython_ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(SERVER_CERT, SERVER_KEY)
    peer = CPythonTLS(server_stream, context, server_side=True)

    def run() -> bytes:
        peer.handshake()
        data = peer.read_exactly(6)
        peer.write(data.upper())
        peer.close()
        return data

    server = Background(run)
    client = client_context(tls).wrap_socket(client_stream, server_hostname="example.com")
    client.write(b"hello\n")
    assert client.read(6) == b"HELLO\n"
    assert client.read(1) == b""
    assert server.result() == b"hello\n"
    client.close()


def test_server_against_a_cpython_client(tls: types.ModuleType) -> None:
    client_stream, server_stream = stream_pair()
    server = serve(server_context(tls), server_stream, echo_line)
    context = cpython_ssl.create_default_context(cafile=str(CA_PEM))
    peer = CPythonTLS(client_stream, context, server_side=False, server_hostname="localhost")
    peer.handshake()
    peer.write(b"from cpython\n")
    assert peer.read_exactly(18) == b"echo from cpython\n"
    assert peer.read(1) == b""  # our close_notify
    assert server.result() == b"from cpython\n"
    assert peer.tls.version() == "TLSv1.2"
    peer.close()


# -- non-blocking, driven by poll ------------------------------------------------------------------
def nonblocking_pair(tls: Any, capacity: int = 1 << 16) -> tuple[Any, Any]:
    client_stream, server_stream = stream_pair(capacity)
    client_stream.setblocking(False)
    server_stream.setblocking(False)
    server = server_context(tls).wrap_socket(
        server_stream, server_side=True, do_handshake_on_connect=False
    )
    client = client_context(tls).wrap_socket(
        client_stream, server_hostname="peer.sim", do_handshake_on_connect=False
    )
    return client, server


def test_nonblocking_read_and_write_give_none_and_poll_fakes_the_needed_direction(
    tls: types.ModuleType,
) -> None:
    client, server = nonblocking_pair(tls)
    assert client.read(5) is None  # ClientHello sent, the ServerHello is not there yet
    assert client.readline() is None and client.readinto(bytearray(2)) is None
    assert client.ioctl(3, POLLIN) == 0
    assert client.write(b"hi") is None  # the handshake inside write needs to read
    # The stream is writable, but the handshake needs to read: POLLOUT waits for POLLIN.
    assert client.ioctl(3, POLLOUT) == 0
    assert server.read(1) is None  # the server answers the ClientHello
    # Faked: the stream is readable now. As socket_ioctl, the result also holds the POLLIN
    # it asked the stream about (select.poll masks it off again).
    assert client.ioctl(3, POLLOUT) == POLLIN | POLLOUT
    for _ in range(STEPS):
        if client.write(b"hi") is not None:
            break
        server.read(1)
    else:
        raise AssertionError("the handshake did not finish")
    assert drive_read(server, 2) == b"hi"


def drive_read(sock: Any, size: int) -> bytes:
    """Read ``size`` bytes from a non-blocking TLS socket whose peer already sent them."""
    data = b""
    for _ in range(STEPS):
        if len(data) >= size:
            return data
        data += sock.read(size - len(data)) or b""
    raise AssertionError(f"read {len(data)} of {size} bytes")


def test_nonblocking_transfer_driven_by_poll_both_ways(tls: types.ModuleType) -> None:
    # Every call is made only when poll says so; a poll that missed an event would stall this.
    client, server = nonblocking_pair(tls, capacity=1500)
    payload = bytes(range(256)) * 400  # 100 KB through 1500-byte pipes: writes block often
    sent, pending, echoed = 0, b"", bytearray()
    nones = 0
    for _ in range(STEPS):
        if len(echoed) == len(payload):
            break
        if sent < len(payload) and client.ioctl(3, POLLOUT) & POLLOUT:
            count = client.write(payload[sent : sent + 5000])  # the same data again after None
            nones += count is None
            sent += count or 0
        if not pending and server.ioctl(3, POLLIN) & POLLIN:
            pending = server.read(4096) or b""
        if pending and server.ioctl(3, POLLOUT) & POLLOUT:
            count = server.write(pending)
            pending = pending[count or 0 :]
        if client.ioctl(3, POLLIN) & POLLIN:
            echoed += client.read(4096) or b""
    assert bytes(echoed) == payload
    assert nones > 0  # the pipe did fill up


def test_pollin_when_decrypted_data_is_buffered(tls: types.ModuleType) -> None:
    client, server = connected(tls, lambda s: (s.write(b"x" * 100), s.read(1)))
    assert client.read(10) == b"x" * 10
    assert client._sock.ioctl(3, POLLIN) == 0  # the stream has nothing more
    assert client.ioctl(3, POLLIN) == POLLIN  # but 90 decrypted bytes wait
    assert client.ioctl(3, POLLIN | POLLOUT) == POLLIN | POLLOUT
    assert client.read(90) == b"x" * 90
    client.close()
    assert server.result() == (100, b"")


def test_handshake_on_connect_spins_on_a_nonblocking_stream(tls: types.ModuleType) -> None:
    client_stream, server_stream = stream_pair()
    server = serve(server_context(tls), server_stream, echo_line)
    client_stream.setblocking(False)
    client = client_context(tls).wrap_socket(client_stream, server_hostname="peer.sim")
    assert client.cipher() is not None  # the handshake finished inside wrap_socket
    client.setblocking(True)  # forwarded to the stream
    client.write(b"spun\n")
    assert client.readline() == b"echo spun\n"
    server.result()
    client.close()


def test_a_nonblocking_handshake_on_connect_gives_up_after_its_bound() -> None:
    tls = tls_module(spin_limit=0.05)
    client_stream, _ = stream_pair()
    client_stream.setblocking(False)
    context = client_context(tls)
    expect_error(
        lambda: context.wrap_socket(client_stream, server_hostname="peer.sim"),
        (-0x6800, "MBEDTLS_ERR_SSL_TIMEOUT"),
    )


# -- the ssl module: wrap_socket, old keyword names, the WiPy form ---------------------------------
def test_ssl_wrap_socket_with_data_and_with_the_old_path_keywords(ssl: types.ModuleType) -> None:
    client_stream, server_stream = stream_pair()

    def run() -> bytes:
        server = ssl.wrap_socket(
            server_stream, server_side=True, keyfile=str(SERVER_KEY), certfile=str(SERVER_CERT)
        )
        line = echo_line(server)
        server.close()
        return line

    server = Background(run)
    client = ssl.wrap_socket(
        client_stream,
        cert_reqs=ssl.CERT_REQUIRED,
        cadata=read_cert("ca.der"),
        server_hostname="peer.sim",
    )
    client.write(b"old\n")
    assert client.readline() == b"echo old\n"
    assert server.result() == b"old\n"
    client.close()
    client_stream, server_stream = stream_pair()
    server = Background(
        lambda: ssl.wrap_socket(
            server_stream, True, read_cert("server.key"), read_cert("server.pem")
        ).close()
    )
    client = ssl.wrap_socket(client_stream)  # CERT_NONE: no CA, no hostname
    assert client.read(1) == b""
    server.result()
    client.close()


def test_wipy_form_connects_then_handshakes(ssl: types.ModuleType) -> None:
    client_stream, server_stream = unconnected_pair()
    wrapped = ssl.wrap_socket(client_stream, cert_reqs=ssl.CERT_REQUIRED, ca_certs=str(CA_PEM))
    assert hasattr(wrapped, "connect") and client_stream.writes == []  # nothing sent yet
    server = serve(server_context(ssl.tls), server_stream, echo_line)
    wrapped.connect(("10.0.0.1", 443))
    assert client_stream.connected_to == ("10.0.0.1", 443)
    wrapped.write(b"wipy\n")
    assert wrapped.readline() == b"echo wipy\n"
    assert server.result() == b"wipy\n"
    wrapped.close()
    plain, _ = stream_pair()
    assert not hasattr(ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).wrap_socket(plain, False, False),
                       "connect")  # fmt: skip


def test_surface_of_the_ssl_socket(tls: types.ModuleType) -> None:
    client, server = connected(tls, lambda s: None)
    for name in ("read", "readinto", "readline", "write", "setblocking", "close", "getpeercert",
                 "cipher", "ioctl"):  # fmt: skip
        assert callable(getattr(client, name)), name
    for name in ("connect", "accept", "bind", "settimeout", "fileno", "recv", "send", "readall"):
        assert not hasattr(client, name), name
    server.result()
    client.close()
