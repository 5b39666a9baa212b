"""usocket datagram sockets on the simulated network, against shared/USOCKET.md.

The script side is a usocket socket on 10.0.0.2; the peer 10.0.0.1 runs the UDP echo (7),
discard (9) and daytime (13) services. Each test names the spec rule it checks.
"""

from __future__ import annotations

import threading
import types
from collections.abc import Iterator

import pytest

from pystack.sim.world import SimulatedNetwork
from pystack.stats import DropReason
from usocket.context import NetworkContext, resolver_function
from usocket.modules import select_module, socket_module

PEER = "10.0.0.1"


class World:
    def __init__(self, network: SimulatedNetwork) -> None:
        self.network = network
        context = NetworkContext(
            network.thread,
            network.host,
            resolver_function(network.thread, network.host, network.resolver),
        )
        self.socket: types.ModuleType = socket_module(context)
        self.select: types.ModuleType = select_module(context)

    def udp(self, timeout: float | None = 2.0) -> object:
        s = self.socket.socket(self.socket.AF_INET, self.socket.SOCK_DGRAM)
        s.settimeout(timeout)
        return s

    def peer_endpoint(self, port: int) -> object:
        return self.network.thread.call(lambda: self.network.peer.udp.open(0, port))

    def peer_send(self, endpoint: object, data: bytes, to: tuple[str, int]) -> None:
        from pystack.wire.addresses import ip_from_str

        target = (ip_from_str(to[0]), to[1])
        net = self.network
        net.thread.call(lambda: endpoint.send_to(data, target, net.peer.clock.now()))  # type: ignore[attr-defined]


@pytest.fixture
def world() -> Iterator[World]:
    with SimulatedNetwork(seed=7) as network:
        yield World(network)


def test_sendto_recvfrom_round_trip_with_the_echo_service(world: World) -> None:
    s = world.udp()
    assert s.sendto(b"hello", (PEER, 7)) == 5
    assert s.recvfrom(100) == (b"hello", (PEER, 7))
    s.close()


def test_connect_then_send_and_recv(world: World) -> None:
    s = world.udp()
    s.connect((PEER, 7))
    s.send(b"abc")
    assert s.recv(10) == b"abc"


def test_recv_truncates_and_discards_the_rest_of_the_datagram(world: World) -> None:
    # USOCKET.md 3 recv (UDP): min(bufsize, length) is copied, the rest is lost.
    s = world.udp()
    s.sendto(b"0123456789", (PEER, 7))
    s.sendto(b"next", (PEER, 7))
    assert s.recv(4) == b"0123"
    assert s.recv(100) == b"next"


def test_msg_peek_keeps_the_datagram_and_its_source(world: World) -> None:
    s = world.udp()
    s.sendto(b"peeked", (PEER, 7))
    assert s.recvfrom(100, world.socket.MSG_PEEK) == (b"peeked", (PEER, 7))
    assert s.recvfrom(100, world.socket.MSG_PEEK) == (b"peeked", (PEER, 7))
    assert s.recvfrom(100) == (b"peeked", (PEER, 7))


def test_msg_dontwait_and_nonblocking_raise_eagain(world: World) -> None:
    s = world.udp()
    with pytest.raises(OSError) as raised:
        s.recv(10, world.socket.MSG_DONTWAIT)
    assert raised.value.args == (11,) and raised.value.errno == 11
    s.setblocking(False)
    with pytest.raises(OSError) as raised:
        s.recv(10)
    assert raised.value.args == (11,)


def test_timeout_raises_plain_oserror_etimedout(world: World) -> None:
    # USOCKET.md 2: OSError(ETIMEDOUT=110), not CPython's TimeoutError.
    s = world.udp(timeout=0.05)
    with pytest.raises(OSError) as raised:
        s.recv(10)
    assert type(raised.value).__name__ == "OSError" and not isinstance(raised.value, TimeoutError)
    assert raised.value.args == (110,)
    assert str(raised.value) == "[Errno 110] ETIMEDOUT"


def test_settimeout_below_a_millisecond_is_nonblocking(world: World) -> None:
    s = world.udp(timeout=0.0004)
    with pytest.raises(OSError) as raised:
        s.recv(1)
    assert raised.value.args == (11,)


def test_close_twice_is_fine_and_use_after_close_is_ebadf(world: World) -> None:
    s = world.udp()
    s.close()
    s.close()
    for call in (lambda: s.recv(1), lambda: s.sendto(b"x", (PEER, 7)), lambda: s.bind(("", 0))):
        with pytest.raises(OSError) as raised:
            call()
        assert raised.value.args == (9,)


def test_poll_reports_pollin_pollout_and_nval(world: World) -> None:
    socket, select = world.socket, world.select
    s = world.udp()
    poller = select.poll()
    poller.register(s, select.POLLIN | select.POLLOUT)
    assert poller.poll(0) == [(s, select.POLLOUT)]  # USOCKET.md 4: UDP always writable
    s.sendto(b"x", (PEER, 7))
    poller.modify(s, select.POLLIN)
    assert poller.poll(2000) == [(s, select.POLLIN)]  # the echo arrived
    poller.modify(s, select.POLLIN | select.POLLOUT)
    assert poller.poll(0) == [(s, select.POLLIN | select.POLLOUT)]
    s.close()
    assert poller.poll(0) == [(s, 32)]  # POLLNVAL
    assert socket.MSG_PEEK == 1


def test_ipoll_yields_one_reused_tuple(world: World) -> None:
    select = world.select
    first, second = world.udp(), world.udp()
    poller = select.poll()
    poller.register(first, select.POLLOUT)
    poller.register(second, select.POLLOUT)
    results = list(poller.ipoll(0))
    assert len(results) == 2 and results[0] is results[1]


def test_modify_unregistered_is_enoent_and_register_needs_ioctl(world: World) -> None:
    select = world.select
    poller = select.poll()
    with pytest.raises(OSError) as raised:
        poller.modify(world.udp(), select.POLLIN)
    assert raised.value.args == (2,)
    with pytest.raises(OSError):
        poller.register(object())


def test_select_select_sees_a_readable_socket(world: World) -> None:
    s = world.udp()
    s.sendto(b"x", (PEER, 7))
    readable, writable, _ = world.select.select([s], [], [], 2.0)
    assert readable == [s] and writable == []


def test_receive_queue_holds_four_datagrams_and_drops_the_newest(world: World) -> None:
    # USOCKET.md 3: LWIP_INCOMING_PACKET_QUEUE_LEN = 4, tail drop.
    s = world.udp()
    s.bind(("", 4000))
    peer = world.peer_endpoint(5000)
    for i in range(6):
        world.peer_send(peer, b"%d" % i, ("10.0.0.2", 4000))
    assert world.network.thread.wait_for(
        lambda: world.network.host.counters.drops[DropReason.UDP_QUEUE_FULL] == 2, 5.0
    )
    assert [s.recv(10) for _ in range(4)] == [b"0", b"1", b"2", b"3"]
    s.setblocking(False)
    with pytest.raises(OSError):
        s.recv(10)


def test_large_datagram_is_fragmented_and_reassembled(world: World) -> None:
    s = world.udp()
    data = bytes(range(256)) * 80  # 20,480 bytes
    s.sendto(data, (PEER, 7))
    assert s.recv(65535) == data
    counters = world.network.host.statistics()["counters"]
    assert counters["ipv4.fragments_sent"] >= 14 and counters["ipv4.reassembled"] >= 1


def test_send_without_connect_is_einval_and_sendall_is_not_implemented(world: World) -> None:
    s = world.udp()
    with pytest.raises(OSError) as raised:
        s.send(b"x")
    assert raised.value.args == (22,)
    with pytest.raises(NotImplementedError):
        s.sendall(b"x")


def test_bind_with_a_hostname_is_valueerror(world: World) -> None:
    s = world.udp()
    with pytest.raises(ValueError):
        s.bind(("peer.sim", 80))
    with pytest.raises(ValueError):
        s.sendto(b"x", ("10.0.0.1",))


def test_unknown_setsockopt_prints_the_lwip_warning(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    s = world.udp()
    s.setsockopt(world.socket.SOL_SOCKET, 12345, 1)
    assert capsys.readouterr().out == "Warning: lwip.setsockopt() not implemented\n"


def test_ip_add_membership_needs_an_8_byte_mreq(world: World) -> None:
    socket = world.socket
    s = world.udp()
    s.bind(("", 5353))
    with pytest.raises(ValueError):
        s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, b"\xef\x01\x02\x03")
    s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, bytes([239, 1, 2, 3, 0, 0, 0, 0]))
    assert world.network.thread.call(lambda: 0xEF010203 in world.network.host.ip.multicast_groups)
    s.setsockopt(socket.IPPROTO_IP, socket.IP_DROP_MEMBERSHIP, bytes([239, 1, 2, 3, 0, 0, 0, 0]))
    assert world.network.thread.call(
        lambda: 0xEF010203 not in world.network.host.ip.multicast_groups
    )


def test_socket_constructor_checks_its_arguments(world: World) -> None:
    socket = world.socket
    with pytest.raises(TypeError):
        socket.socket(socket.AF_INET, None)
    with pytest.raises(TypeError):
        socket.socket(af=socket.AF_INET)
    with pytest.raises(OSError) as raised:
        socket.socket(socket.AF_INET, 99)
    assert raised.value.args == (22,)
    socket.socket(socket.AF_INET, socket.SOCK_DGRAM, 0, 1234).close()  # the 4th is ignored


def test_module_surface_is_exactly_modlwip(world: World) -> None:
    socket = world.socket
    assert (socket.MSG_PEEK, socket.MSG_DONTWAIT, socket.SO_REUSEADDR, socket.TCP_NODELAY) == (
        1,
        2,
        4,
        64,
    )
    assert (socket.SO_BROADCAST, socket.IP_ADD_MEMBERSHIP, socket.IPPROTO_SEC) == (0x20, 0x400, 100)
    for absent in (
        "IPPROTO_UDP",
        "SO_LINGER",
        "inet_pton",
        "timeout",
        "error",
        "gaierror",
        "has_ipv6",
    ):
        assert not hasattr(socket, absent), absent
    s = world.udp()
    for absent in ("fileno", "getsockname", "shutdown", "gettimeout", "__enter__"):
        assert not hasattr(s, absent), absent
    assert s.makefile("rb") is s


def test_getaddrinfo_returns_one_stream_tuple(
    world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    socket = world.socket
    assert socket.getaddrinfo("10.0.0.1", 7) == [(2, 1, 0, "", ("10.0.0.1", 7))]
    assert socket.getaddrinfo("peer.sim", 7, 0, socket.SOCK_DGRAM) == [
        (2, 1, 0, "", ("10.0.0.1", 7))
    ]
    assert "unsupported getaddrinfo constraints" in capsys.readouterr().err
    with pytest.raises(TypeError):
        socket.getaddrinfo("10.0.0.1", "7")
    with pytest.raises(OSError) as raised:
        socket.getaddrinfo("", 7)
    assert raised.value.args == (-16,)
    with pytest.raises(OSError) as raised:
        socket.getaddrinfo("no.such.name", 7)
    assert raised.value.args == (-2,)


def test_sockets_work_from_several_threads_at_once(world: World) -> None:
    errors: list[BaseException] = []

    def client(index: int) -> None:
        try:
            s = world.udp()
            for n in range(30):
                message = b"%d-%d" % (index, n)
                s.sendto(message, (PEER, 7))
                assert s.recv(100) == message
            s.close()
        except BaseException as error:  # reported below
            errors.append(error)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not errors


def test_impaired_network_never_corrupts_a_datagram() -> None:
    with SimulatedNetwork(seed=3, impair="loss=20%,dup=10%,seed=3") as network:
        world = World(network)
        s = world.udp(timeout=0.2)
        received = []
        for n in range(60):
            s.sendto(b"datagram %d" % n, (PEER, 7))
            try:
                while True:
                    received.append(s.recv(100))
            except OSError:
                pass
        assert received and all(r.startswith(b"datagram ") for r in received)
        assert set(received) <= {b"datagram %d" % n for n in range(60)}
        assert len(set(received)) < 60  # some were lost
