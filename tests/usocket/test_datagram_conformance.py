"""The datagram socket API, one suite run against CPython on loopback and usocket on the simulator.

Each test uses only what both implementations share; constants are taken from the module under
test (MSG_PEEK, MSG_DONTWAIT, SO_REUSEADDR and SO_BROADCAST differ between them), and the two
places they differ on purpose go through the environment: what poll() names a socket by, and what
a timeout looks like (CPython's TimeoutError, MicroPython's OSError(ETIMEDOUT)).
"""

from __future__ import annotations

import errno
import time
from collections.abc import Callable
from typing import Any

import pytest

from tests.usocket.conftest import WAIT, Environment


def test_socket_datagram_and_stream_can_be_created(env: Environment) -> None:
    module = env.socket_module
    datagram = module.socket(module.AF_INET, module.SOCK_DGRAM)
    stream = module.socket(module.AF_INET, module.SOCK_STREAM)
    datagram.close()
    stream.close()


def test_bind_port_zero_gives_an_ephemeral_port_the_peer_can_answer(env: Environment) -> None:
    s = env.socket()
    s.settimeout(WAIT)
    s.bind(("", 0))
    s.sendto(b"who am i", (env.peer_ip, env.peer_port))
    data, (address, port) = env.peer_receive()
    assert data == b"who am i"
    assert address == env.local_ip
    assert 1024 <= port <= 65535
    env.peer_send(b"you are", port)
    assert s.recvfrom(100) == (b"you are", (env.peer_ip, env.peer_port))


def test_unbound_sendto_binds_an_ephemeral_port(env: Environment) -> None:
    s = env.socket()
    s.settimeout(WAIT)
    s.sendto(b"first", (env.peer_ip, env.peer_port))
    _, (_, port) = env.peer_receive()
    s.sendto(b"second", (env.peer_ip, env.peer_port))
    assert env.peer_receive()[1][1] == port  # the same port for the socket's whole life
    env.peer_send(b"back", port)
    assert s.recv(100) == b"back"


def test_bind_fixed_port_receives_there_and_sends_from_there(env: Environment) -> None:
    port = env.free_port()
    s = env.socket()
    s.settimeout(WAIT)
    s.bind((env.local_ip, port))
    env.peer_send(b"to the fixed port", port)
    assert s.recvfrom(100) == (b"to the fixed port", (env.peer_ip, env.peer_port))
    s.sendto(b"from it", (env.peer_ip, env.peer_port))
    assert env.peer_receive() == (b"from it", (env.local_ip, port))


def test_bind_port_in_use_raises_eaddrinuse(env: Environment) -> None:
    port = env.free_port()
    first = env.socket()
    first.bind(("", port))
    second = env.socket()
    with pytest.raises(OSError) as caught:
        second.bind(("", port))
    assert caught.value.errno == errno.EADDRINUSE


def test_so_reuseaddr_on_both_sockets_shares_the_port(env: Environment) -> None:
    module = env.socket_module
    port = env.free_port()
    first, second = env.socket(), env.socket()
    for s in (first, second):
        s.setsockopt(module.SOL_SOCKET, module.SO_REUSEADDR, 1)
        s.bind(("", port))


def test_sendto_recvfrom_round_trip_with_the_echo_peer(env: Environment) -> None:
    s = env.socket()
    s.settimeout(WAIT)
    assert s.sendto(b"hello, echo", (env.peer_ip, env.echo_port)) == 11
    assert s.recvfrom(100) == (b"hello, echo", (env.peer_ip, env.echo_port))


def test_connect_then_send_and_recv(env: Environment) -> None:
    s = env.socket()
    s.settimeout(WAIT)
    s.connect((env.peer_ip, env.echo_port))
    assert s.send(b"connected") == 9
    assert s.recv(100) == b"connected"
    assert s.sendto(b"sendto still works", (env.peer_ip, env.echo_port)) == 18
    assert s.recvfrom(100) == (b"sendto still works", (env.peer_ip, env.echo_port))


def test_connected_socket_ignores_datagrams_from_other_sources(env: Environment) -> None:
    port = env.free_port()
    s = env.socket()
    s.settimeout(WAIT)
    s.bind(("", port))
    s.connect((env.peer_ip, env.echo_port))
    env.peer_send(b"from a stranger", port)  # sent first, so it would arrive first
    s.send(b"from the echo")
    assert s.recv(100) == b"from the echo"
    s.settimeout(None)  # CPython waits out a timeout even with MSG_DONTWAIT
    with pytest.raises(OSError) as caught:
        s.recv(100, env.socket_module.MSG_DONTWAIT)
    assert caught.value.errno == errno.EAGAIN


def test_empty_datagram(env: Environment) -> None:
    port = env.free_port()
    s = env.socket()
    s.settimeout(WAIT)
    s.bind(("", port))
    env.peer_send(b"", port)
    assert s.recvfrom(100) == (b"", (env.peer_ip, env.peer_port))
    assert s.sendto(b"", (env.peer_ip, env.peer_port)) == 0
    assert env.peer_receive() == (b"", (env.local_ip, port))


def test_recv_truncates_and_discards_the_rest_of_the_datagram(env: Environment) -> None:
    port = env.free_port()
    s = env.socket()
    s.settimeout(WAIT)
    s.bind(("", port))
    env.peer_send(b"0123456789", port)
    env.peer_send(b"second", port)
    assert s.recv(4) == b"0123"
    assert s.recv(100) == b"second"  # not "456789": that was discarded


def test_recvfrom_truncates_and_reports_the_source(env: Environment) -> None:
    port = env.free_port()
    s = env.socket()
    s.settimeout(WAIT)
    s.bind(("", port))
    env.peer_send(b"abcdefgh", port)
    env.peer_send(b"next", port)
    assert s.recvfrom(3) == (b"abc", (env.peer_ip, env.peer_port))
    assert s.recvfrom(100) == (b"next", (env.peer_ip, env.peer_port))


def test_msg_peek_returns_the_same_data_and_source_twice(env: Environment) -> None:
    module = env.socket_module
    port = env.free_port()
    s = env.socket()
    s.settimeout(WAIT)
    s.bind(("", port))
    env.peer_send(b"peek at me", port)
    env.peer_send(b"after", port)
    first = s.recvfrom(100, module.MSG_PEEK)
    second = s.recvfrom(100, module.MSG_PEEK)
    assert first == second == (b"peek at me", (env.peer_ip, env.peer_port))
    assert s.recv(100) == b"peek at me"
    assert s.recv(100) == b"after"


def test_short_peek_leaves_the_whole_datagram_queued(env: Environment) -> None:
    module = env.socket_module
    port = env.free_port()
    s = env.socket()
    s.settimeout(WAIT)
    s.bind(("", port))
    env.peer_send(b"0123456789", port)
    assert s.recv(3, module.MSG_PEEK) == b"012"
    assert s.recv(100) == b"0123456789"


def test_msg_dontwait_raises_eagain_fast_on_a_blocking_socket(env: Environment) -> None:
    s = env.socket()
    s.bind(("", 0))  # blocking: only the flag makes it not wait
    started = time.monotonic()
    calls: list[Callable[[], Any]] = [
        lambda: s.recv(10, env.socket_module.MSG_DONTWAIT),
        lambda: s.recvfrom(10, env.socket_module.MSG_DONTWAIT),
    ]
    for call in calls:
        with pytest.raises(OSError) as caught:
            call()
        assert caught.value.errno == errno.EAGAIN
    assert time.monotonic() - started < 0.1  # udp_recv_dontwait.py allows 50 ms in total


def test_msg_dontwait_returns_a_queued_datagram(env: Environment) -> None:
    port = env.free_port()
    s = env.socket()
    s.bind(("", port))
    env.peer_send(b"ready", port)
    s.settimeout(WAIT)
    assert s.recv(10, env.socket_module.MSG_PEEK) == b"ready"  # wait until it is there
    s.settimeout(None)
    assert s.recv(10, env.socket_module.MSG_DONTWAIT) == b"ready"


def test_setblocking_false_raises_eagain_then_true_waits_again(env: Environment) -> None:
    port = env.free_port()
    s = env.socket()
    s.bind(("", port))
    s.setblocking(False)
    calls: list[Callable[[], Any]] = [lambda: s.recv(10), lambda: s.recvfrom(10)]
    for call in calls:
        with pytest.raises(OSError) as caught:
            call()
        assert caught.value.errno == errno.EAGAIN
    s.setblocking(True)
    env.peer_send(b"blocking again", port)
    assert s.recv(100) == b"blocking again"


def test_settimeout_zero_is_non_blocking(env: Environment) -> None:
    s = env.socket()
    s.bind(("", 0))
    s.settimeout(0)
    with pytest.raises(OSError) as caught:
        s.recv(10)
    assert caught.value.errno == errno.EAGAIN


def test_settimeout_raises_a_timeout_after_about_that_long(env: Environment) -> None:
    s = env.socket()
    s.bind(("", 0))
    s.settimeout(0.2)
    started = time.monotonic()
    with pytest.raises(OSError) as caught:
        s.recvfrom(10)
    elapsed = time.monotonic() - started
    assert env.is_timeout(caught.value), repr(caught.value)
    assert 0.19 <= elapsed < 0.2 + WAIT


def test_settimeout_none_is_blocking_and_a_timeout_still_receives(env: Environment) -> None:
    s = env.socket()
    s.settimeout(0.2)
    s.settimeout(None)
    s.settimeout(WAIT)
    s.sendto(b"in time", (env.peer_ip, env.echo_port))
    assert s.recv(100) == b"in time"


def test_close_twice_is_fine(env: Environment) -> None:
    s = env.socket()
    s.bind(("", 0))
    s.close()
    s.close()


@pytest.mark.parametrize(
    "operation",
    ["recv", "recvfrom", "sendto", "send", "bind", "connect"],
)
def test_use_after_close_raises_ebadf(env: Environment, operation: str) -> None:
    s = env.socket()
    s.bind(("", 0))
    s.close()
    calls = {
        "recv": lambda: s.recv(10),
        "recvfrom": lambda: s.recvfrom(10),
        "sendto": lambda: s.sendto(b"x", (env.peer_ip, env.echo_port)),
        "send": lambda: s.send(b"x"),
        "bind": lambda: s.bind(("", 0)),
        "connect": lambda: s.connect((env.peer_ip, env.echo_port)),
    }
    with pytest.raises(OSError) as caught:
        calls[operation]()
    assert caught.value.errno == errno.EBADF


def test_poll_reports_pollin_only_when_a_datagram_is_queued(env: Environment) -> None:
    select = env.select_module
    port = env.free_port()
    s = env.socket()
    s.bind(("", port))
    poller = select.poll()
    poller.register(s, select.POLLIN)
    assert poller.poll(0) == []
    env.peer_send(b"wake up", port)
    assert poller.poll(int(WAIT * 1000)) == [(env.poll_key(s), select.POLLIN)]
    assert poller.poll(0) == [(env.poll_key(s), select.POLLIN)]  # still queued
    s.recv(100)
    assert poller.poll(0) == []


def test_poll_reports_pollout_always_while_open(env: Environment) -> None:
    select = env.select_module
    s = env.socket()
    poller = select.poll()
    poller.register(s, select.POLLIN | select.POLLOUT)
    assert poller.poll(0) == [(env.poll_key(s), select.POLLOUT)]  # fresh, unbound
    s.bind(("", 0))
    assert poller.poll(0) == [(env.poll_key(s), select.POLLOUT)]
    poller.modify(s, select.POLLIN)
    assert poller.poll(0) == []


def test_poll_both_bits_when_readable(env: Environment) -> None:
    select = env.select_module
    port = env.free_port()
    s = env.socket()
    s.bind(("", port))
    poller = select.poll()
    poller.register(s)  # default mask: POLLIN | POLLOUT
    env.peer_send(b"x", port)
    s.settimeout(WAIT)
    s.recv(1, env.socket_module.MSG_PEEK)
    assert poller.poll(0) == [(env.poll_key(s), select.POLLIN | select.POLLOUT)]


def test_poll_timeout_is_in_milliseconds(env: Environment) -> None:
    select = env.select_module
    s = env.socket()
    s.bind(("", 0))
    poller = select.poll()
    poller.register(s, select.POLLIN)
    started = time.monotonic()
    assert poller.poll(150) == []
    assert 0.14 <= time.monotonic() - started < 0.15 + WAIT


def test_poll_unregister_stops_reporting(env: Environment) -> None:
    select = env.select_module
    s = env.socket()
    poller = select.poll()
    poller.register(s, select.POLLOUT)
    poller.unregister(s)
    assert poller.poll(0) == []


def test_poll_on_a_closed_socket_reports_pollnval(env: Environment) -> None:
    select = env.select_module
    s = env.socket()
    key = env.poll_key(s)  # CPython: the descriptor, which nothing reopens meanwhile
    poller = select.poll()
    poller.register(s, select.POLLIN)
    s.close()
    assert poller.poll(0) == [(key, 32)]  # POLLNVAL, reported whatever the mask (not exported)


def test_select_readable_and_writable(env: Environment) -> None:
    select = env.select_module
    port = env.free_port()
    s = env.socket()
    s.bind(("", port))
    assert select.select([s], [], [], 0) == ([], [], [])
    assert select.select([], [s], [], 0) == ([], [s], [])
    env.peer_send(b"readable", port)
    assert select.select([s], [], [], WAIT) == ([s], [], [])
    assert select.select([s], [s], [], 0) == ([s], [s], [])
    s.recv(100)
    assert select.select([s], [], [], 0.05) == ([], [], [])


def test_several_datagrams_in_a_row_arrive_in_order(env: Environment) -> None:
    port = env.free_port()
    s = env.socket()
    s.settimeout(WAIT)
    s.bind(("", port))
    messages = [b"one", b"two", b"three", b"four"]
    for message in messages:
        env.peer_send(message, port)
    assert [s.recvfrom(100) for _ in messages] == [
        (m, (env.peer_ip, env.peer_port)) for m in messages
    ]


def test_several_echo_round_trips_one_after_another(env: Environment) -> None:
    s = env.socket()
    s.settimeout(WAIT)
    s.connect((env.peer_ip, env.echo_port))
    for n in range(20):
        message = b"round trip %d" % n
        s.send(message)
        assert s.recv(100) == message


def test_20000_byte_datagram_round_trip(env: Environment) -> None:
    payload = bytes(range(256)) * 78 + b"tail" * 8  # 20000 bytes (fragmented on the simulator)
    assert len(payload) == 20000
    s = env.socket()
    s.settimeout(WAIT)
    assert s.sendto(payload, (env.peer_ip, env.echo_port)) == 20000
    assert s.recvfrom(65535) == (payload, (env.peer_ip, env.echo_port))


def test_20000_byte_datagram_from_the_peer(env: Environment) -> None:
    payload = bytes(reversed(range(256))) * 78 + b"TAIL" * 8
    port = env.free_port()
    s = env.socket()
    s.settimeout(WAIT)
    s.bind(("", port))
    env.peer_send(payload, port)
    assert s.recv(65535) == payload
    s.sendto(payload, (env.peer_ip, env.peer_port))
    assert env.peer_receive()[0] == payload


def test_broadcast_with_so_broadcast(env: Environment) -> None:
    module = env.socket_module
    port, receive = env.broadcast_receiver()
    s = env.socket()
    s.setsockopt(module.SOL_SOCKET, module.SO_BROADCAST, 1)
    try:
        s.sendto(b"to everyone", (env.broadcast_ip, port))
    except OSError as error:  # pragma: no cover - depends on the host's network
        pytest.skip(f"broadcast not permitted here: {error}")
    data, (address, _) = receive()
    assert (data, address) == (b"to everyone", env.local_ip)


def test_getaddrinfo_of_a_numeric_address(env: Environment) -> None:
    module = env.socket_module
    results = module.getaddrinfo(env.peer_ip, env.echo_port)
    assert results
    for family, _, _, _, address in results:
        assert family == module.AF_INET
        assert address == (env.peer_ip, env.echo_port)
    s = env.socket()
    s.settimeout(WAIT)
    s.sendto(b"resolved", results[0][-1])
    assert s.recv(100) == b"resolved"


# -- edges of sizes (issue 15 item 5): each asserted for both sides ----------------------------
def test_the_largest_datagram_one_ipv4_packet_carries_goes_whole(env: Environment) -> None:
    payload = bytes(range(256)) * 255 + bytes(227)  # 65507 bytes: 65535 - 20 (IP) - 8 (UDP)
    assert len(payload) == 65507
    s = env.socket()
    s.settimeout(WAIT)
    assert s.sendto(payload, (env.peer_ip, env.peer_port)) == 65507
    assert env.peer_receive()[0] == payload


@pytest.mark.parametrize("size", [65508, 65527, 65535, 70000])
def test_difference_a_datagram_too_large_for_ipv4_enomem_vs_emsgsize(
    env: Environment, size: int
) -> None:
    """modlwip's lwip_raw_udp_send cuts the data to 65535 bytes, then lwIP's pbuf_alloc fails
    (its 16-bit size check, or a heap of at most 64 KiB on every port): ENOMEM, nothing sent,
    no length reported (pystack once reported 65535 or the full length and sent 65507).
    Linux refuses with EMSGSIZE."""
    s = env.socket()
    s.settimeout(WAIT)
    with pytest.raises(OSError) as caught:
        s.sendto(bytes(size), (env.peer_ip, env.peer_port))
    if env.micropython:
        assert caught.value.args == (errno.ENOMEM,)
    else:
        assert caught.value.errno == errno.EMSGSIZE
    s.sendto(b"next", (env.peer_ip, env.peer_port))
    assert env.peer_receive()[0] == b"next"  # nothing of the refused datagram went out


def test_recv_of_an_int_beyond_a_machine_word_is_an_overflowerror_at_once(
    env: Environment,
) -> None:
    """MicroPython's mp_obj_get_int: "overflow converting long int to machine word"; CPython:
    "Python int too large to convert to C ssize_t". Both before any wait (blocking socket)."""
    s = env.socket()
    s.bind(("", env.free_port()))
    for call in (lambda: s.recv(2**64), lambda: s.recvfrom(2**64), lambda: s.recv(-(2**64))):
        with pytest.raises(OverflowError) as caught:
            call()
        if env.micropython:
            assert str(caught.value) == "overflow converting long int to machine word"


def test_difference_recv_of_minus_one_whole_datagram_vs_valueerror(env: Environment) -> None:
    """lwip_socket_recv: vstr_init_len(-1) allocates one byte and lwIP copies the whole
    datagram (on a board over the heap); pystack returns that datagram. CPython: ValueError.
    Below -1 the allocation itself fails on MicroPython: MemoryError, the datagram kept."""
    port = env.free_port()
    s = env.socket()
    s.settimeout(WAIT)
    s.bind(("", port))
    env.peer_send(b"whole datagram", port)
    if env.micropython:
        with pytest.raises(MemoryError) as caught:
            s.recv(-2)
        assert str(caught.value) == "memory allocation failed, allocating 4294967295 bytes"
        assert s.recv(-1) == b"whole datagram"
    else:
        with pytest.raises(ValueError, match="negative buffersize in recv"):
            s.recv(-1)
        assert s.recv(100) == b"whole datagram"
