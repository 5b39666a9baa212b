"""TLS over usocket stream sockets on the simulated network: a tls client and a tls server inside
one stack, over its own 127.0.0.1 loopback (USOCKET.md decision 7), blocking (the server in a
bounded background thread) and non-blocking (one thread, select.poll), plus the WiPy form."""

from __future__ import annotations

import types
from typing import Any

import pytest

from pystack.services.certs import CA_PEM, read_cert
from tests.helpers.tls_fixtures import Background
from tests.usocket.conftest import Simulation
from usocket.ssl_module import ssl_module
from usocket.tls import tls_module

POLLIN, POLLOUT = 1, 4
PORT = 4433
STEPS = 5000  # bound on the poll loop (each poll waits at most 1 s)


@pytest.fixture(scope="module")
def tls() -> types.ModuleType:
    return tls_module()


def listener(sim: Simulation) -> Any:
    module = sim.socket
    server = module.socket(module.AF_INET, module.SOCK_STREAM)
    server.setsockopt(module.SOL_SOCKET, module.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", PORT))
    server.listen(1)
    sim._sockets.append(server)
    return server


def server_context(tls: Any) -> Any:
    context = tls.SSLContext(tls.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(read_cert("server.pem"), read_cert("server.key"))
    return context


def client_context(tls: Any) -> Any:
    context = tls.SSLContext(tls.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(read_cert("ca.der"))
    return context


def test_blocking_tls_over_the_stacks_loopback(sim: Simulation, tls: types.ModuleType) -> None:
    server_socket = listener(sim)
    payload = bytes(range(256)) * 200  # 50 KB: many TCP segments, several TLS records

    def serve() -> bytes:
        conn, _ = server_socket.accept()
        conn.settimeout(5)
        tls_conn = server_context(tls).wrap_socket(conn, server_side=True)
        data = tls_conn.read(len(payload))
        tls_conn.write(data)
        tls_conn.close()
        return bytes(data)

    server = Background(serve)
    client_socket = sim.new_socket(sim.socket.SOCK_STREAM)
    client_socket.settimeout(5)
    client_socket.connect(("127.0.0.1", PORT))
    client = client_context(tls).wrap_socket(client_socket, server_hostname="localhost")
    assert client.cipher()[1] == "TLSv1.2"
    assert client.write(payload) == len(payload)
    assert client.read(len(payload)) == payload
    assert client.read(1) == b""  # the server's close_notify
    assert server.result() == payload
    client.close()
    assert client_socket.ioctl(3, POLLIN) == 32  # the TCP socket was closed too


def test_nonblocking_tls_over_the_loopback_with_poll(
    sim: Simulation, tls: types.ModuleType
) -> None:
    server_socket = listener(sim)
    client_socket = sim.new_socket(sim.socket.SOCK_STREAM)
    client_socket.setblocking(False)
    with pytest.raises(OSError) as raised:
        client_socket.connect(("127.0.0.1", PORT))
    assert raised.value.args == (115,)  # EINPROGRESS (decision 2)
    server_socket.settimeout(5)
    conn, _ = server_socket.accept()
    conn.setblocking(False)
    server = server_context(tls).wrap_socket(conn, server_side=True, do_handshake_on_connect=False)
    client = client_context(tls).wrap_socket(
        client_socket, server_hostname="127.0.0.1", do_handshake_on_connect=False
    )
    poller = sim.select.poll()
    poller.register(client, POLLOUT | POLLIN)
    poller.register(server, POLLIN)
    request = b"GET / over TLS\n" * 2000  # 30 KB
    sent, pending, echoed = 0, b"", bytearray()
    for _ in range(STEPS):
        if len(echoed) == len(request):
            break
        for obj, events in poller.poll(1000):
            if obj is client and events & POLLOUT and sent < len(request):
                sent += client.write(request[sent : sent + 4000]) or 0
                if sent == len(request):
                    poller.modify(client, POLLIN)
            if obj is client and events & POLLIN:
                echoed += client.read(4096) or b""
            if obj is server and events & POLLIN and not pending:
                pending = server.read(4096) or b""
                if pending:
                    poller.modify(server, POLLOUT)
            if obj is server and events & POLLOUT and pending:
                pending = pending[server.write(pending) or 0 :]
                if not pending:
                    poller.modify(server, POLLIN)
    assert bytes(echoed) == request
    assert client.getpeercert(True) is not None
    client.close()  # close_notify, then the TCP close
    poller.modify(server, POLLIN)
    assert [events for obj, events in poller.poll(1000) if obj is server] == [POLLIN]
    assert server.read(10) == b""
    server.close()
    assert poller.poll(0) == [(client, 32), (server, 32)]  # closed: POLLNVAL


def test_wipy_form_on_the_loopback(sim: Simulation, tls: types.ModuleType) -> None:
    ssl = ssl_module(tls)
    server_socket = listener(sim)

    def serve() -> bytes:
        conn, _ = server_socket.accept()
        conn.settimeout(5)
        tls_conn = server_context(tls).wrap_socket(conn, server_side=True)
        line = tls_conn.readline()
        tls_conn.write(b"echo " + line)
        tls_conn.close()
        return bytes(line)

    server = Background(serve)
    module = sim.socket
    s = module.socket(module.AF_INET, module.SOCK_STREAM, module.IPPROTO_SEC)
    sim._sockets.append(s)
    s.settimeout(5)
    secure = ssl.wrap_socket(s, cert_reqs=ssl.CERT_REQUIRED, ca_certs=str(CA_PEM))
    secure.connect(("127.0.0.1", PORT))  # connects, then the handshake
    secure.write(b"wipy\n")
    assert secure.readline() == b"echo wipy\n"
    assert server.result() == b"wipy\n"
    secure.close()


def test_a_reset_during_the_handshake_passes_the_errno_through(
    sim: Simulation, tls: types.ModuleType
) -> None:
    server_socket = listener(sim)
    client_socket = sim.new_socket(sim.socket.SOCK_STREAM)
    client_socket.settimeout(5)
    client_socket.connect(("127.0.0.1", PORT))
    conn, _ = server_socket.accept()
    conn.close()  # the server hangs up before a byte of TLS
    with pytest.raises(OSError) as raised:
        client_context(tls).wrap_socket(client_socket, server_hostname="localhost")
    # The peer's FIN (EOF: CONN_EOF) or its RST for our ClientHello (ECONNRESET, passed through).
    assert raised.value.args in ((-29312, "MBEDTLS_ERR_SSL_CONN_EOF"), (104,))


def test_client_against_the_peers_tls_echo_service(sim: Simulation, tls: types.ModuleType) -> None:
    """The simulated peer's TLS echo (port 443, CPython's ssl over the peer's own TCP stack)."""
    s = sim.new_socket(sim.socket.SOCK_STREAM)
    s.settimeout(5)
    try:
        s.connect(("10.0.0.1", 443))
    except OSError as error:
        pytest.skip(f"no TLS echo service on the simulated peer ({error})")
    client = client_context(tls).wrap_socket(s, server_hostname="peer.sim")
    assert client.cipher()[1] == "TLSv1.2"  # the peer speaks 1.2 and up; we speak 1.2
    for number in range(3):
        line = b"line %d\n" % number
        assert client.write(line) == len(line)
        assert client.readline() == line
    client.close()
