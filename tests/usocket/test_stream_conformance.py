"""The stream (SOCK_STREAM) socket API, one suite run against CPython on loopback and usocket on
the simulator (docs/usocket.md).

The first part asserts, once for both implementations, what MicroPython's modlwip and Linux
share: the errno of each path (an ``OSError`` subclass on CPython has the same ``errno``), the
poll bits, EOF as ``b''``, the tcp_client_rst sequence. Constants are always taken from the
module under test. The second part (``test_difference_*``) takes every documented difference
(USOCKET.md 7 table, 9 quick index, decisions) and asserts it explicitly for each side.

Peers (tests/usocket/conftest.py): ``env.connect(service)`` reaches the peer's echo, discard,
daytime, chargen or half-close server; ``env.stream_pair()`` gives a listening socket of the
module under test on 127.0.0.1, a client of the same module and the accepted socket.
"""

from __future__ import annotations

import errno
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from pystack.services.stream import chargen_pattern
from tests.usocket.conftest import (
    CHARGEN_SIZE,
    HALF_CLOSE_GREETING,
    LOOPBACK,
    WAIT,
    Environment,
)

POLLNVAL = 32  # returned, not exported (USOCKET.md 4)
REQUEST = b"GET / HTTP/1.0\r\n\r\n"  # what tcp_client_rst.py sends before the RST


# -- helpers ---------------------------------------------------------------------------------------
def errno_of(call: Callable[[], Any]) -> int | None:
    """The errno ``call`` raised as OSError (AssertionError if it returned)."""
    try:
        result = call()
    except OSError as error:
        return error.errno
    raise AssertionError(f"no OSError; it returned {result!r}")


def poll_events(env: Environment, s: Any, mask: int, timeout_ms: int = 0) -> list[int]:
    """What one ``poll(timeout_ms)`` reports for ``s`` registered with ``mask`` (events only,
    as tcp_client_rst.py's convert_poll_list does)."""
    poller = env.select_module.poll()
    poller.register(s, mask)
    return [events for _, events in poller.poll(timeout_ms)]


def wait_events(env: Environment, s: Any, mask: int, want: int, timeout: float = WAIT) -> int:
    """Poll ``s`` until every bit of ``want`` is reported; return the events then."""
    poller = env.select_module.poll()
    poller.register(s, mask)
    deadline = time.monotonic() + timeout
    while True:
        for _, events in poller.poll(20):
            if events & want == want:
                return int(events)
        assert time.monotonic() < deadline, f"no {want:#x} within {timeout} s"


def wait_peek(env: Environment, s: Any, size: int, timeout: float = WAIT) -> None:
    """Wait until ``size`` bytes are queued on ``s`` (MSG_PEEK leaves them there)."""
    deadline = time.monotonic() + timeout
    while True:
        wait_events(env, s, env.select_module.POLLIN, env.select_module.POLLIN, timeout)
        if len(s.recv(size, env.socket_module.MSG_PEEK)) >= size:
            return
        assert time.monotonic() < deadline, f"{size} bytes did not arrive within {timeout} s"


def receive_exactly(s: Any, size: int) -> bytes:
    data = bytearray()
    for _ in range(size):  # at least one byte per call: bounded
        if len(data) >= size:
            break
        chunk = s.recv(size - len(data))
        assert chunk, f"EOF after {len(data)} of {size} bytes"
        data += chunk
    return bytes(data)


def receive_to_eof(s: Any, limit: int) -> bytes:
    data = bytearray()
    while True:
        chunk = s.recv(65536)
        if not chunk:
            return bytes(data)
        data += chunk
        assert len(data) <= limit, "more data than expected"


def reset_by_client(env: Environment) -> tuple[Any, Any]:
    """tcp_client_rst.py's situation: the client sent REQUEST, then its close sent RST (it had
    unread data, so lwIP and Linux both reset). Returns (accepted, listener); the RST has arrived."""
    select = env.select_module
    listener, client, accepted, _ = env.stream_pair()
    accepted.send(b"unread")
    wait_peek(env, client, 6)  # the client has data it never reads
    client.send(REQUEST)
    wait_peek(env, accepted, len(REQUEST))
    client.close()
    wait_events(env, accepted, select.POLLIN, select.POLLERR)
    return accepted, listener


def chargen_expected(size: int) -> bytes:
    pattern = chargen_pattern()
    return (pattern * (size // len(pattern) + 1))[:size]


# -- connect, send, recv ---------------------------------------------------------------------------
def test_connect_send_recv_round_trip_with_the_echo_peer(env: Environment) -> None:
    s = env.connect("echo")
    assert s.send(b"hello, stream") == 13
    assert receive_exactly(s, 13) == b"hello, stream"


def test_many_round_trips_on_one_connection_keep_order(env: Environment) -> None:
    s = env.connect("echo")
    for n in range(30):
        message = b"round trip %d " % n + bytes([n]) * n
        s.sendall(message)
        assert receive_exactly(s, len(message)) == message


def test_sendto_on_a_stream_socket_ignores_the_address(env: Environment) -> None:
    """USOCKET.md 3 sendto: on TCP the address is ignored and it behaves like send()."""
    s = env.connect("echo")
    assert s.sendto(b"where to?", (env.peer_ip, 9)) == 9
    assert receive_exactly(s, 9) == b"where to?"


def test_4_mb_through_echo_arrive_complete_and_in_order(env: Environment) -> None:
    """sendall loops over send() (USOCKET.md 3 sendall); recv returns data in order."""
    payload = bytes(range(256)) * (4 * 4096)
    s = env.connect("echo")
    failures: list[BaseException] = []

    def send_all() -> None:
        try:
            s.sendall(payload)
        except BaseException as error:  # handed to the test
            failures.append(error)

    sender = threading.Thread(target=send_all, daemon=True)
    sender.start()
    try:
        received = receive_exactly(s, len(payload))
    finally:
        sender.join(4 * WAIT)
    assert not failures and not sender.is_alive()
    assert received == payload


def test_chargen_sends_exactly_its_bytes_then_eof(env: Environment) -> None:
    """Data sent before a FIN is all read before b'' (USOCKET.md 3 recv: EOF is b'')."""
    s = env.connect("chargen")
    data = receive_to_eof(s, CHARGEN_SIZE)
    assert len(data) == CHARGEN_SIZE
    assert data == chargen_expected(CHARGEN_SIZE)
    assert s.recv(100) == b""


def test_daytime_line_then_eof_every_time_it_is_asked_for(env: Environment) -> None:
    s = env.connect("daytime")
    line = receive_to_eof(s, 200)
    assert line.endswith(b"-UTC\r\n")
    assert [s.recv(10) for _ in range(3)] == [b"", b"", b""]


def test_all_data_a_client_sent_before_closing_is_read_before_eof(env: Environment) -> None:
    payload = bytes(reversed(range(256))) * 800  # 204800 bytes: fits the buffers of both
    _, client, accepted, _ = env.stream_pair()
    client.sendall(payload)
    client.close()  # FIN after the data (nothing unread on the client: no RST)
    assert receive_to_eof(accepted, len(payload)) == payload
    assert accepted.recv(10) == b""


def test_half_close_recv_gives_eof_repeatedly_and_send_still_works(env: Environment) -> None:
    """USOCKET.md 3 send: after a peer FIN (PEER_CLOSED) send still works (half-close)."""
    s = env.stream()
    s.connect((env.peer_ip, env.stream_port("halfclose")))
    assert receive_to_eof(s, 100) == HALF_CLOSE_GREETING
    assert [s.recv(10) for _ in range(3)] == [b"", b"", b""]
    assert s.send(b"still ") == 6
    s.sendall(b"talking")
    s.close()
    assert env.half_close_received() == b"still talking"


def test_msg_peek_does_not_consume_stream_data(env: Environment) -> None:
    """tcp_recv_peek.py: a TCP peek does not consume the data; two peeks return the same."""
    module = env.socket_module
    _, client, accepted, _ = env.stream_pair()
    client.send(b"peek at me")
    wait_peek(env, accepted, 10)
    assert accepted.recv(10, module.MSG_PEEK) == b"peek at me"
    assert accepted.recv(4, module.MSG_PEEK) == b"peek"
    assert accepted.recv(10) == b"peek at me"


def test_msg_dontwait_raises_eagain_on_a_blocking_connected_socket(env: Environment) -> None:
    s = env.connect("discard")
    s.settimeout(None)  # blocking: only the flag keeps it from waiting
    started = time.monotonic()
    assert errno_of(lambda: s.recv(10, env.socket_module.MSG_DONTWAIT)) == errno.EAGAIN
    assert time.monotonic() - started < 0.5


def test_nonblocking_recv_with_nothing_queued_raises_eagain(env: Environment) -> None:
    s = env.connect("discard")
    s.setblocking(False)
    assert errno_of(lambda: s.recv(10)) == errno.EAGAIN
    assert errno_of(lambda: s.recvfrom(10)) == errno.EAGAIN


def test_recv_timeout_raises_a_timeout_after_about_that_long(env: Environment) -> None:
    s = env.connect("discard")
    s.settimeout(0.1)
    started = time.monotonic()
    with pytest.raises(OSError) as caught:
        s.recv(10)
    assert env.is_timeout(caught.value), repr(caught.value)
    assert 0.09 <= time.monotonic() - started < 0.1 + WAIT


def test_recv_on_a_fresh_blocking_socket_raises_enotconn(env: Environment) -> None:
    """socket_tcp_basic.py: recv on a never-connected blocking socket raises 107."""
    s = env.stream(None)
    assert errno_of(lambda: s.recv(10)) == errno.ENOTCONN


def test_nonblocking_connect_raises_einprogress_even_on_loopback(env: Environment) -> None:
    """Decision 2 (connect_nonblock.py): EINPROGRESS, even when it could complete at once;
    the connection carries on and POLLOUT says when it is up."""
    select = env.select_module
    listener = env.stream()
    port = env.free_tcp_port()
    listener.bind((LOOPBACK, port))
    listener.listen(1)
    s = env.stream(0)
    assert errno_of(lambda: s.connect((LOOPBACK, port))) == errno.EINPROGRESS
    assert wait_events(env, s, select.POLLOUT, select.POLLOUT) == select.POLLOUT
    accepted, _ = listener.accept()
    env.track(accepted)
    assert s.send(b"up") == 2
    accepted.settimeout(WAIT)
    assert receive_exactly(accepted, 2) == b"up"


def test_connect_on_a_connected_socket_raises_eisconn(env: Environment) -> None:
    s = env.connect("echo", None)  # (Linux reports a connect finished in timeout mode once)
    assert errno_of(lambda: s.connect((env.peer_ip, env.stream_port("echo")))) == errno.EISCONN


def test_tcp_nodelay_is_accepted_and_data_still_flows(env: Environment) -> None:
    module = env.socket_module
    s = env.connect("echo")
    assert s.setsockopt(module.IPPROTO_TCP, module.TCP_NODELAY, 1) is None
    for n in range(10):
        s.send(b"%d" % n)
        assert receive_exactly(s, 1) == b"%d" % n
    assert s.setsockopt(module.IPPROTO_TCP, module.TCP_NODELAY, 0) is None


# -- listen, accept --------------------------------------------------------------------------------
def test_accept_returns_a_connected_socket_and_the_clients_address(env: Environment) -> None:
    _, client, accepted, (address, port) = env.stream_pair()
    assert address == LOOPBACK and 1024 <= port <= 65535
    client.send(b"to the server")
    assert receive_exactly(accepted, 13) == b"to the server"
    accepted.send(b"to the client")
    assert receive_exactly(client, 13) == b"to the client"


def test_a_bound_client_connects_from_that_port(env: Environment) -> None:
    port, client_port = env.free_tcp_port(), env.free_tcp_port()
    listener = env.stream()
    listener.bind((LOOPBACK, port))
    listener.listen(1)
    client = env.stream()
    client.bind((LOOPBACK, client_port))
    client.connect((LOOPBACK, port))
    accepted, address = listener.accept()
    env.track(accepted)
    assert address == (LOOPBACK, client_port)


def test_data_sent_before_accept_is_delivered_after_accept(env: Environment) -> None:
    """USOCKET.md 3 listen: data that arrives before accept() stays in the stack."""
    select = env.select_module
    port = env.free_tcp_port()
    listener = env.stream()
    listener.bind((LOOPBACK, port))
    listener.listen(2)
    client = env.stream()
    client.connect((LOOPBACK, port))
    client.send(b"early bird")
    wait_events(env, listener, select.POLLIN, select.POLLIN)
    accepted, _ = listener.accept()
    env.track(accepted)
    accepted.settimeout(WAIT)
    assert receive_exactly(accepted, 10) == b"early bird"


def test_nonblocking_accept_with_nothing_queued_raises_eagain(env: Environment) -> None:
    listener = env.stream(0)
    listener.bind((LOOPBACK, env.free_tcp_port()))
    listener.listen(1)
    assert errno_of(listener.accept) == errno.EAGAIN


def test_accept_timeout_raises_a_timeout(env: Environment) -> None:
    listener = env.stream(0.1)
    listener.bind((LOOPBACK, env.free_tcp_port()))
    listener.listen(1)
    started = time.monotonic()
    with pytest.raises(OSError) as caught:
        listener.accept()
    assert env.is_timeout(caught.value), repr(caught.value)
    assert 0.09 <= time.monotonic() - started < 0.1 + WAIT


def test_accept_on_a_socket_that_is_not_listening_raises_einval(env: Environment) -> None:
    """USOCKET.md 3 accept: not listening raises EINVAL (a fresh socket, a bound one)."""
    s = env.stream()
    assert errno_of(s.accept) == errno.EINVAL
    s.bind((LOOPBACK, env.free_tcp_port()))
    assert errno_of(s.accept) == errno.EINVAL


def test_accept_and_listen_on_a_datagram_socket_raise_eopnotsupp(env: Environment) -> None:
    s = env.socket()
    s.bind(("", 0))
    assert errno_of(s.accept) == errno.EOPNOTSUPP
    assert errno_of(lambda: s.listen(1)) == errno.EOPNOTSUPP


def test_recv_on_a_listener_after_accept_raises_enotconn(env: Environment) -> None:
    """tcp_accept_recv.py (all backlogs and modes: test_stream_errno)."""
    listener, client, _, _ = env.stream_pair()
    client.send(REQUEST)
    listener.setblocking(True)
    assert errno_of(lambda: listener.recv(10)) == errno.ENOTCONN
    listener.setblocking(False)
    assert errno_of(lambda: listener.recv(10)) == errno.ENOTCONN


def test_listener_reports_pollin_for_a_waiting_connection_and_never_pollout(
    env: Environment,
) -> None:
    """USOCKET.md 4 (LISTENING row) and decision 4: a listener never reports POLLOUT."""
    select = env.select_module
    port = env.free_tcp_port()
    listener = env.stream()
    listener.bind((LOOPBACK, port))
    listener.listen(2)
    both = select.POLLIN | select.POLLOUT
    assert poll_events(env, listener, both) == []
    client = env.stream()
    client.connect((LOOPBACK, port))
    assert wait_events(env, listener, both, select.POLLIN) == select.POLLIN
    assert poll_events(env, listener, select.POLLOUT) == []
    env.track(listener.accept()[0])
    assert poll_events(env, listener, both) == []


# -- poll on connections (USOCKET.md 4) --------------------------------------------------------------
def test_connect_poll_new_socket_gives_pollout_and_pollhup_then_pollout(env: Environment) -> None:
    """connect_poll.py: a NEW socket polls 20 (OUT + HUP; HUP whatever the mask), a connected
    one 4."""
    select = env.select_module
    s = env.stream()
    assert poll_events(env, s, select.POLLIN | select.POLLOUT) == [select.POLLOUT | select.POLLHUP]
    assert poll_events(env, s, select.POLLIN) == [select.POLLHUP]
    s.connect((env.peer_ip, env.stream_port("discard")))
    assert poll_events(env, s, select.POLLIN | select.POLLOUT) == [select.POLLOUT]


def test_connected_socket_polls_pollin_only_while_data_is_queued(env: Environment) -> None:
    select = env.select_module
    _, client, accepted, _ = env.stream_pair()
    assert poll_events(env, accepted, select.POLLIN) == []
    client.send(b"x")
    assert wait_events(env, accepted, select.POLLIN, select.POLLIN) == select.POLLIN
    both = select.POLLIN | select.POLLOUT
    assert poll_events(env, accepted, both) == [both]
    accepted.recv(1)
    assert poll_events(env, accepted, both) == [select.POLLOUT]


@pytest.mark.parametrize("mask_names", [("POLLIN",), ("POLLOUT",), ("POLLIN", "POLLOUT")])
def test_peer_closed_socket_polls_the_requested_in_and_out_bits(
    env: Environment, mask_names: tuple[str, ...]
) -> None:
    """USOCKET.md 4: PEER_CLOSED (FIN received) gives req & (POLLIN|POLLOUT), always."""
    select = env.select_module
    mask = 0
    for name in mask_names:
        mask |= getattr(select, name)
    _, client, accepted, _ = env.stream_pair()
    client.close()
    wait_events(env, accepted, select.POLLIN, select.POLLIN)
    assert accepted.recv(10) == b""
    assert poll_events(env, accepted, mask) == [mask]


def test_poll_on_a_closed_stream_socket_reports_pollnval(env: Environment) -> None:
    """select_poll_basic.py: a closed socket polls as NVAL (32), whatever the mask. (Only this
    thread opens sockets meanwhile, so CPython's descriptors are not reused under the poll.)"""
    select = env.select_module
    _, client, _, _ = env.stream_pair()
    fresh = env.stream()
    poller = select.poll()
    keys = []
    for s in (client, fresh):
        keys.append(env.poll_key(s))
        poller.register(s, select.POLLIN)
        s.close()
    got = sorted(poller.poll(0), key=lambda item: keys.index(item[0]))
    assert got == [(key, POLLNVAL) for key in keys]


def test_select_on_stream_sockets(env: Environment) -> None:
    select = env.select_module
    port = env.free_tcp_port()
    listener = env.stream()
    listener.bind((LOOPBACK, port))
    listener.listen(1)
    assert select.select([listener], [listener], [], 0) == ([], [], [])
    client = env.stream()
    client.connect((LOOPBACK, port))
    assert select.select([listener], [], [], WAIT) == ([listener], [], [])
    accepted, _ = listener.accept()
    env.track(accepted)
    assert select.select([accepted], [client], [], 0) == ([], [client], [])
    client.send(b"readable")
    assert select.select([accepted], [], [], WAIT) == ([accepted], [], [])
    receive_exactly(accepted, 8)
    assert select.select([accepted], [], [], 0.05) == ([], [], [])


# -- reset (tcp_client_rst.py) -----------------------------------------------------------------------
def test_tcp_client_rst_sequence_on_the_server_side(env: Environment) -> None:
    """USOCKET.md 9 tcp_client_rst: [25] -> data -> data -> ECONNRESET -> [17], then b'', [17];
    after close [32] and recv EBADF. Buffered data survives the RST (3 recv, rule 2)."""
    select = env.select_module
    accepted, _ = reset_by_client(env)
    accepted.setblocking(False)
    poller = select.poll()
    poller.register(accepted, select.POLLIN)

    def events() -> list[int]:
        return [e for _, e in poller.poll(1000)]

    assert events() == [25]  # POLLIN | POLLERR | POLLHUP
    assert accepted.recv(10) == b"GET / HTTP"
    assert events() == [25]
    assert accepted.recv(10) == b"/1.0\r\n\r\n"
    assert events() == [25]
    assert errno_of(lambda: accepted.recv(10)) == errno.ECONNRESET
    assert events() == [17]  # POLLIN | POLLHUP: the RST was reported
    assert accepted.recv(10) == b""
    assert events() == [17]
    accepted.close()
    assert events() == [POLLNVAL]
    assert errno_of(lambda: accepted.recv(10)) == errno.EBADF


def test_rst_in_blocking_mode_data_then_econnreset_then_eof(env: Environment) -> None:
    """USOCKET.md 3 recv: buffered data, then one ECONNRESET, then b'' forever."""
    accepted, _ = reset_by_client(env)
    assert receive_exactly(accepted, len(REQUEST)) == REQUEST
    assert errno_of(lambda: accepted.recv(10)) == errno.ECONNRESET
    assert [accepted.recv(10) for _ in range(3)] == [b"", b"", b""]


def test_first_send_after_an_unreported_rst_raises_econnreset(env: Environment) -> None:
    """USOCKET.md 3 send: the first send after a peer RST raises ECONNRESET (later ones:
    test_difference_send_after_rst_*)."""
    accepted, _ = reset_by_client(env)
    assert errno_of(lambda: accepted.send(b"too late")) == errno.ECONNRESET


# -- bind (USOCKET.md 3 bind) ------------------------------------------------------------------------
def test_bind_to_a_listeners_port_without_so_reuseaddr_raises_eaddrinuse(env: Environment) -> None:
    port = env.free_tcp_port()
    listener = env.stream()
    listener.bind((LOOPBACK, port))
    listener.listen(1)
    other = env.stream()
    assert errno_of(lambda: other.bind((LOOPBACK, port))) == errno.EADDRINUSE


def test_so_reuseaddr_on_both_binds_succeed_and_the_second_listen_raises_eaddrinuse(
    env: Environment,
) -> None:
    """Both bound before either listens: both binds succeed; listen() reports the clash."""
    module = env.socket_module
    port = env.free_tcp_port()
    first, second = env.stream(), env.stream()
    for s in (first, second):
        s.setsockopt(module.SOL_SOCKET, module.SO_REUSEADDR, 1)
        s.bind((LOOPBACK, port))
    first.listen(1)
    assert errno_of(lambda: second.listen(1)) == errno.EADDRINUSE


# -- close (USOCKET.md 3 close) ----------------------------------------------------------------------
def test_close_twice_is_fine_for_every_kind_of_stream_socket(env: Environment) -> None:
    listener, client, accepted, _ = env.stream_pair()
    fresh = env.stream()
    for s in (listener, client, accepted, fresh):
        s.close()
        s.close()


CLOSED_CALLS: dict[str, Callable[[Any, Environment], Any]] = {
    "recv": lambda s, env: s.recv(10),
    "recvfrom": lambda s, env: s.recvfrom(10),
    "send": lambda s, env: s.send(b"x"),
    "sendall": lambda s, env: s.sendall(b"x"),
    "sendto": lambda s, env: s.sendto(b"x", (env.peer_ip, 9)),
    "accept": lambda s, env: s.accept(),
    "connect": lambda s, env: s.connect((env.peer_ip, env.stream_port("echo"))),
    "listen": lambda s, env: s.listen(1),
    "bind": lambda s, env: s.bind((LOOPBACK, 0)),
}


@pytest.mark.parametrize("operation", sorted(CLOSED_CALLS))
def test_every_method_of_a_closed_stream_socket_raises_ebadf(
    env: Environment, operation: str
) -> None:
    s = env.connect("echo")
    s.close()
    assert errno_of(lambda: CLOSED_CALLS[operation](s, env)) == errno.EBADF


def test_methods_of_a_closed_listener_raise_ebadf(env: Environment) -> None:
    listener, _, _, _ = env.stream_pair()
    listener.close()
    assert errno_of(listener.accept) == errno.EBADF
    assert errno_of(lambda: listener.listen(1)) == errno.EBADF


# ==================================================================================================
# Differences (USOCKET.md 7 and 9): each asserted for both sides, named for the difference.
# ==================================================================================================
def test_difference_connect_to_a_closed_port_econnreset_vs_econnrefused(env: Environment) -> None:
    """USOCKET.md 7: ECONNRESET 104 on lwIP, ECONNREFUSED 111 on Linux; and a failed lwIP
    socket cannot connect again (EBADF), where Linux simply tries again."""
    s = env.stream(None)  # blocking: the RST answers at once (Linux: timeout mode differs)
    address = (env.peer_ip, env.closed_tcp_port())
    with pytest.raises(OSError) as caught:
        s.connect(address)
    if env.micropython:
        assert caught.value.args == (errno.ECONNRESET,)
        assert type(caught.value).__name__ == "OSError"
        assert not isinstance(caught.value, ConnectionError)
        assert errno_of(lambda: s.connect(address)) == errno.EBADF
        assert errno_of(lambda: s.connect((env.peer_ip, env.stream_port("echo")))) == errno.EBADF
    else:
        assert isinstance(caught.value, ConnectionRefusedError)
        assert caught.value.errno == errno.ECONNREFUSED
        assert errno_of(lambda: s.connect(address)) == errno.ECONNREFUSED


def test_difference_timeout_is_oserror_etimedout_vs_timeouterror(env: Environment) -> None:
    """USOCKET.md 7 timeout row, on a stream recv."""
    s = env.connect("discard")
    s.settimeout(0.05)
    with pytest.raises(OSError) as caught:
        s.recv(1)
    if env.micropython:
        assert caught.value.args == (errno.ETIMEDOUT,) and caught.value.errno == errno.ETIMEDOUT
        assert not isinstance(caught.value, TimeoutError)
    else:
        assert isinstance(caught.value, TimeoutError) and caught.value.errno is None


def test_difference_exception_types_plain_oserror_vs_subclasses(env: Environment) -> None:
    """USOCKET.md notation / 7: MicroPython has no BlockingIOError, ConnectionResetError..."""
    listener = env.stream(0)
    listener.bind((LOOPBACK, env.free_tcp_port()))
    listener.listen(1)
    with pytest.raises(OSError) as caught:
        listener.accept()
    accepted, _ = reset_by_client(env)
    with pytest.raises(OSError) as reset:
        accepted.send(b"x")
    if env.micropython:
        assert type(caught.value).__name__ == "OSError" and caught.value.args == (errno.EAGAIN,)
        assert not isinstance(caught.value, BlockingIOError)
        assert type(reset.value).__name__ == "OSError" and reset.value.args == (errno.ECONNRESET,)
        assert not isinstance(reset.value, ConnectionError)
        assert str(reset.value) == "[Errno 104] ECONNRESET"
    else:
        assert isinstance(caught.value, BlockingIOError)
        assert isinstance(reset.value, ConnectionResetError)


def test_difference_accepted_socket_inherits_the_listeners_timeout_vs_always_blocking(
    env: Environment,
) -> None:
    """USOCKET.md 3 accept: sock2 inherits the listener's timeout and blocking mode."""
    select = env.select_module
    port = env.free_tcp_port()
    listener = env.stream(0)
    listener.bind((LOOPBACK, port))
    listener.listen(2)
    first, second = env.stream(), env.stream()
    first.connect((LOOPBACK, port))
    second.connect((LOOPBACK, port))
    wait_events(env, listener, select.POLLIN, select.POLLIN)
    nonblocking, _ = listener.accept()
    env.track(nonblocking)
    listener.settimeout(0.1)
    timed, _ = listener.accept()
    env.track(timed)
    if env.micropython:
        started = time.monotonic()
        assert errno_of(lambda: nonblocking.recv(1)) == errno.EAGAIN  # at once
        assert time.monotonic() - started < 0.05
        started = time.monotonic()
        assert errno_of(lambda: timed.recv(1)) == errno.ETIMEDOUT
        assert time.monotonic() - started >= 0.09
    else:
        assert nonblocking.gettimeout() is None and timed.gettimeout() is None  # blocking


def test_difference_makefile_returns_the_socket_itself_vs_a_separate_file(
    env: Environment,
) -> None:
    """USOCKET.md 3 makefile / 7: closing the "file" closes the lwIP socket."""
    s = env.connect("echo")
    f = s.makefile("rwb", 0)
    if env.micropython:
        assert f is s and s.makefile() is s
        f.close()
        assert errno_of(lambda: s.send(b"x")) == errno.EBADF
    else:
        assert f is not s
        f.close()
        assert s.send(b"open") == 4  # the socket outlives its file
        assert receive_exactly(s, 4) == b"open"


def test_difference_stream_methods_exist_and_return_none_on_eagain_vs_absent(
    env: Environment,
) -> None:
    """USOCKET.md 3 stream methods / 7: read/readinto/readline/write on lwIP sockets; a
    non-blocking one that has nothing gives None. CPython sockets have no such methods."""
    names = ("read", "readinto", "readline", "write", "readall")
    s = env.connect("echo")
    if not env.micropython:
        assert not any(hasattr(s, name) for name in names)
        return
    s.setblocking(False)
    assert s.read(10) is None
    assert s.readline() is None
    assert s.readinto(bytearray(4)) is None
    assert s.readall() is None
    assert s.write(b"ab\ncd") == 5
    s.settimeout(WAIT)
    assert s.readline() == b"ab\n"
    assert s.read(2) == b"cd"


def test_difference_nonblocking_recv_on_a_fresh_socket_eagain_vs_enotconn(
    env: Environment,
) -> None:
    """USOCKET.md 3 recv rule 4: non-blocking covers NEW too (EAGAIN); Linux says ENOTCONN."""
    s = env.stream(0)
    expected = errno.EAGAIN if env.micropython else errno.ENOTCONN
    assert errno_of(lambda: s.recv(10)) == expected
    assert errno_of(lambda: s.recv(10, env.socket_module.MSG_DONTWAIT)) == expected


def test_difference_send_on_an_unconnected_socket_enotconn_vs_epipe(env: Environment) -> None:
    """USOCKET.md 7: lwIP tcp_write gives ERR_CONN (ENOTCONN 107); Linux EPIPE 32."""
    s = env.stream()
    if env.micropython:
        assert errno_of(lambda: s.send(b"x")) == errno.ENOTCONN
        assert errno_of(lambda: s.write(b"x")) == errno.ENOTCONN  # not EAGAIN: not None
    else:
        assert errno_of(lambda: s.send(b"x")) == errno.EPIPE


def test_difference_constants_msg_peek_msg_dontwait_so_reuseaddr_tcp_nodelay(
    env: Environment,
) -> None:
    """USOCKET.md 1: MSG_PEEK=1, MSG_DONTWAIT=2, SO_REUSEADDR=4, TCP_NODELAY=64 on lwIP."""
    module = env.socket_module
    values = (module.MSG_PEEK, module.MSG_DONTWAIT, module.SO_REUSEADDR, module.TCP_NODELAY)
    assert values == ((1, 2, 4, 64) if env.micropython else (2, 64, 2, 1))


def test_difference_recvfrom_on_stream_sockets(env: Environment) -> None:
    """USOCKET.md 3 accept: recvfrom on an accepted socket reports ('0.0.0.0', 0) (the peer is
    only stored by connect()); a connected one reports the peer. Linux gives no address."""
    _, client, accepted, _ = env.stream_pair()
    client.send(b"to server")
    wait_peek(env, accepted, 9)
    accepted.send(b"to client")
    wait_peek(env, client, 9)
    from_client = accepted.recvfrom(100)
    from_server = client.recvfrom(100)
    if env.micropython:
        assert from_client == (b"to server", ("0.0.0.0", 0))
        assert from_server[0] == b"to client" and from_server[1][0] == LOOPBACK
    else:
        assert from_client == (b"to server", None) and from_server == (b"to client", None)


@pytest.mark.parametrize(
    "name", ["shutdown", "fileno", "getsockname", "getpeername", "__enter__", "__exit__"]
)
def test_difference_stream_socket_lacks_bsd_methods(env: Environment, name: str) -> None:
    """USOCKET.md 3 "Not present on lwIP sockets": no shutdown, fileno, getsockname,
    getpeername, and no context manager (decision 1 keeps the extensions off)."""
    s = env.connect("echo")
    assert hasattr(s, name) is (not env.micropython)


def test_difference_full_accept_queue_rst_vs_client_waits(env: Environment) -> None:
    """USOCKET.md 3 listen / 7: with listen(1) and two handshakes completed before accept,
    lwIP aborts the second (its connect succeeded, then ECONNRESET); Linux drops the SYN of the
    client that does not fit and that client's connect waits (here: times out)."""
    port = env.free_tcp_port()
    listener = env.stream()
    listener.bind((LOOPBACK, port))
    listener.listen(1)
    if env.micropython:
        first, second = env.stream(), env.stream()
        first.connect((LOOPBACK, port))
        try:
            second.connect((LOOPBACK, port))  # succeeds: the RST comes after the handshake
        except OSError as error:
            # ... unless the listener's RST was processed before the connecting thread looked:
            # modlwip's connect then finds the state no longer CONNECTED and raises the pending
            # error (lwip_tcp_connect). Over loopback both happen within one stack poll.
            assert error.errno == errno.ECONNRESET
        else:
            assert errno_of(lambda: second.recv(10)) == errno.ECONNRESET
        statistics = env.sim.host.statistics()  # type: ignore[attr-defined]
        assert statistics["counters"]["usocket.accept_queue_full"] == 1
        first.send(b"1")
        accepted, _ = listener.accept()
        env.track(accepted)
        assert receive_exactly(accepted, 1) == b"1"
        return
    outcomes: list[str] = []
    for _ in range(4):
        client = env.stream(0.3)
        try:
            client.connect((LOOPBACK, port))
        except TimeoutError:
            outcomes.append("waited")
            break
        outcomes.append("connected")
    assert outcomes[:2] == ["connected", "connected"] and outcomes[-1] == "waited"


def test_difference_reuseaddr_bind_onto_a_listener_succeeds_and_listen_fails_vs_bind_fails(
    env: Environment,
) -> None:
    """USOCKET.md 3 bind: with SO_REUSEADDR on both, lwIP lets bind through even onto a
    listening PCB and listen() raises EADDRINUSE; Linux raises it at bind()."""
    module = env.socket_module
    port = env.free_tcp_port()
    first, second = env.stream(), env.stream()
    for s in (first, second):
        s.setsockopt(module.SOL_SOCKET, module.SO_REUSEADDR, 1)
    first.bind((LOOPBACK, port))
    first.listen(1)
    if env.micropython:
        assert second.bind((LOOPBACK, port)) is None
        assert errno_of(lambda: second.listen(1)) == errno.EADDRINUSE
    else:
        assert errno_of(lambda: second.bind((LOOPBACK, port))) == errno.EADDRINUSE


def test_difference_unknown_setsockopt_prints_a_warning_vs_raises(
    env: Environment, capsys: Any
) -> None:
    """USOCKET.md 3 setsockopt: any other optname prints the warning on stdout and returns."""
    module = env.socket_module
    s = env.stream()
    if env.micropython:
        assert s.setsockopt(module.SOL_SOCKET, 0x1234, 1) is None
        assert capsys.readouterr().out == "Warning: lwip.setsockopt() not implemented\n"
    else:
        assert errno_of(lambda: s.setsockopt(module.SOL_SOCKET, 0x1234, 1)) == errno.ENOPROTOOPT


def test_difference_nonblocking_sendall_too_big_eagain_nothing_sent_vs_partial(
    env: Environment,
) -> None:
    """USOCKET.md 3 sendall: non-blocking and longer than the free send buffer raises EAGAIN
    without sending anything. CPython sends what fits, then raises BlockingIOError."""
    select = env.select_module
    _, client, accepted, _ = env.stream_pair()
    client.setblocking(False)
    # more than the free send buffer: pystack's whole buffer plus one; more than Linux buffers
    size = env.sim.host.tcp.settings.send_buffer + 1 if env.micropython else 16 << 20  # type: ignore[attr-defined]
    assert errno_of(lambda: client.sendall(bytes(size))) == errno.EAGAIN
    arrived = poll_events(env, accepted, select.POLLIN, 100)
    if env.micropython:
        assert arrived == []  # nothing was sent
        client.sendall(b"fits")
        assert receive_exactly(accepted, 4) == b"fits"
    else:
        assert arrived == [select.POLLIN]


def test_difference_send_after_rst_was_reported_econnreset_vs_epipe(env: Environment) -> None:
    """Decision 3: send after recv reported the RST raises ECONNRESET (Linux: EPIPE)."""
    accepted, _ = reset_by_client(env)
    receive_exactly(accepted, len(REQUEST))
    assert errno_of(lambda: accepted.recv(10)) == errno.ECONNRESET
    expected = errno.ECONNRESET if env.micropython else errno.EPIPE
    assert errno_of(lambda: accepted.send(b"x")) == expected


def test_difference_second_send_after_rst_ebadf_vs_epipe(env: Environment) -> None:
    """USOCKET.md 3 send: the first send after a peer RST raises ECONNRESET and marks the
    socket BADF, so any later one raises EBADF (Linux: EPIPE)."""
    accepted, _ = reset_by_client(env)
    assert errno_of(lambda: accepted.send(b"x")) == errno.ECONNRESET
    expected = errno.EBADF if env.micropython else errno.EPIPE
    assert errno_of(lambda: accepted.send(b"x")) == expected


def test_difference_connect_after_a_nonblocking_handshake_eisconn_vs_success_once(
    env: Environment,
) -> None:
    """USOCKET.md 3 connect: state CONNECTED raises EISCONN. Linux reports the finished
    connection once (connect returns None), and only then EISCONN."""
    select = env.select_module
    listener = env.stream()
    port = env.free_tcp_port()
    listener.bind((LOOPBACK, port))
    listener.listen(1)
    s = env.stream(0)
    assert errno_of(lambda: s.connect((LOOPBACK, port))) == errno.EINPROGRESS
    wait_events(env, s, select.POLLOUT, select.POLLOUT)
    if env.micropython:
        assert errno_of(lambda: s.connect((LOOPBACK, port))) == errno.EISCONN
    else:
        assert s.connect((LOOPBACK, port)) is None
        assert errno_of(lambda: s.connect((LOOPBACK, port))) == errno.EISCONN


def test_difference_settimeout_on_a_closed_stream_socket_works_vs_ebadf(env: Environment) -> None:
    """USOCKET.md 3 settimeout: works (does nothing) on closed sockets; CPython raises EBADF."""
    s = env.stream()
    s.close()
    if env.micropython:
        assert s.settimeout(1) is None and s.setblocking(False) is None
    else:
        assert errno_of(lambda: s.settimeout(1)) == errno.EBADF


# -- edges of sizes and buffers (issue 15 item 5): each asserted for both sides -----------------
def test_recv_of_an_int_beyond_a_machine_word_is_an_overflowerror_not_a_wait(
    env: Environment,
) -> None:
    """mp_obj_get_int in lwip_socket_recv: "overflow converting long int to machine word";
    CPython: "Python int too large to convert to C ssize_t". The echo peer sends nothing, so
    a socket that waited would time out instead."""
    s = env.connect("echo")
    with pytest.raises(OverflowError) as caught:
        s.recv(2**64)
    if env.micropython:
        assert str(caught.value) == "overflow converting long int to machine word"
        with pytest.raises(OverflowError):
            s.read(2**64)  # stream_read_generic reads its size the same way
        with pytest.raises(OverflowError):
            s.readinto(bytearray(4), 2**64)
    s.send(b"still fine")
    assert receive_exactly(s, 10) == b"still fine"


def test_difference_recv_of_negative_sizes(env: Environment) -> None:
    """lwip_socket_recv: vstr_init_len(-1) allocates one byte and lwIP copies the rest of the
    first segment into it (on a board over the heap): the data comes back, and pystack returns
    it without a limit. Below -1 the allocation fails: MemoryError, nothing consumed.
    ``read(-1)`` reads to EOF; ``read(-2)`` is MemoryError too (py/stream.c's comment: "we
    silently let negatives through, and they will cause a MemoryError"). CPython: ValueError."""
    s = env.connect("echo")
    s.send(b"negative")
    wait_peek(env, s, 8)
    if env.micropython:
        for call in (lambda: s.recv(-2), lambda: s.recvfrom(-5), lambda: s.read(-2)):
            with pytest.raises(MemoryError, match=r"^memory allocation failed, allocating"):
                call()
        assert s.recv(-1) == b"negative"
    else:
        with pytest.raises(ValueError, match="negative buffersize in recv"):
            s.recv(-1)
        assert s.recv(100) == b"negative"


def test_read_minus_one_reads_to_eof(env: Environment) -> None:
    """py/stream.c stream_read_generic: a size of -1 is readall; so is CPython's file read."""
    s = env.connect("daytime")
    stream = s if env.micropython else s.makefile("rb")
    line = stream.read(-1)
    assert line.endswith(b"\n") and stream.read(-1) == b""
    if stream is not s:
        stream.close()


def test_difference_readinto_an_immutable_buffer_is_a_typeerror_at_once(
    env: Environment,
) -> None:
    """py/stream.c stream_readinto: mp_get_buffer_raise(buf, MP_BUFFER_WRITE), before any
    read: bytes and str have no writable buffer ("object with buffer protocol required").
    CPython's recv_into refuses bytes the same way (its own message). The echo peer sends
    nothing, so a call that waited would time out instead."""
    s = env.connect("echo")
    if env.micropython:
        for target in (b"immutable", "text", 5):
            with pytest.raises(TypeError) as caught:
                s.readinto(target)
            assert str(caught.value) == "object with buffer protocol required"
    else:
        with pytest.raises(TypeError, match="read-write bytes-like object"):
            s.recv_into(b"immutable")


def test_difference_readinto_with_a_negative_length_fills_the_buffer_vs_valueerror(
    env: Environment,
) -> None:
    """stream_readinto takes nbytes with mp_obj_get_int into an unsigned length and cuts it to
    the buffer's: -1 means the whole buffer. CPython's recv_into: ValueError."""
    s = env.connect("echo")
    s.send(b"0123456789")
    target = bytearray(4)
    if env.micropython:
        assert s.readinto(target, -1) == 4 and target == b"0123"
        assert s.readinto(target, -7) == 4 and target == b"4567"
        assert s.readinto(target, 2) == 2 and target == b"8967"
    else:
        with pytest.raises(ValueError, match="negative buffersize in recv_into"):
            s.recv_into(target, -1)
