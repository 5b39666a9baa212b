"""Where MicroPython's lwIP socket layer differs from CPython: usocket only, on the simulator.

Each test cites the section of docs/usocket.md it checks. The peer 10.0.0.1 runs the UDP echo
service on port 7; ``sim.peer_endpoint`` gives a raw pystack endpoint on the peer.
"""

from __future__ import annotations

import errno
import socket as cpython_socket
import threading
from typing import Any

import pytest

from pystack.stats import DropReason
from tests.usocket.conftest import SIM_HOST, SIM_PEER, WAIT, Simulation

POLLNVAL = 32


def plain_oserror(error: BaseException, code: int) -> bool:
    """MicroPython's form: an OSError, none of CPython's subclasses, args == (code,)."""
    return (
        isinstance(error, OSError)
        and type(error).__name__ == "OSError"
        and not isinstance(error, TimeoutError | BlockingIOError | ConnectionError)
        and not isinstance(error, FileNotFoundError | InterruptedError | PermissionError)
        and error.args == (code,)
        and error.errno == code
    )


# -- errors (USOCKET.md "Notation", 2, 7) ---------------------------------------------------------
def test_eagain_is_a_plain_oserror_with_only_the_errno(sim: Simulation) -> None:
    s = sim.new_socket()
    s.setblocking(False)
    with pytest.raises(OSError) as caught:
        s.recv(10)
    assert plain_oserror(caught.value, errno.EAGAIN)
    assert str(caught.value) == "[Errno 11] EAGAIN"


def test_ebadf_is_a_plain_oserror(sim: Simulation) -> None:
    s = sim.new_socket()
    s.close()
    with pytest.raises(OSError) as caught:
        s.recvfrom(10)
    assert plain_oserror(caught.value, errno.EBADF)


def test_timeout_is_oserror_etimedout_not_timeouterror(sim: Simulation) -> None:
    """USOCKET.md 2 (the EAGAIN / ETIMEDOUT rule) and 7 (timeout row)."""
    s = sim.new_socket()
    s.settimeout(0.1)
    with pytest.raises(OSError) as caught:
        s.recv(10)
    assert plain_oserror(caught.value, 110)


def test_settimeout_truncates_to_milliseconds_so_0_0004_is_non_blocking(sim: Simulation) -> None:
    """USOCKET.md 2: settimeout(x) stores int(1000*x); 0 ms means non-blocking (EAGAIN)."""
    s = sim.new_socket()
    s.settimeout(0.0004)
    with pytest.raises(OSError) as caught:
        s.recv(10)
    assert plain_oserror(caught.value, errno.EAGAIN)


def test_no_gettimeout_and_settimeout_works_on_a_closed_socket(sim: Simulation) -> None:
    """USOCKET.md 3 settimeout: works (does nothing) on closed sockets; 2: no gettimeout()."""
    s = sim.new_socket()
    s.close()
    assert s.settimeout(1) is None
    assert s.setblocking(False) is None
    assert not hasattr(s, "gettimeout")


# -- constants and surface (USOCKET.md 1, decision 1, 3 "Not present", 4) ------------------------
@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("AF_INET", 2),
        ("AF_INET6", 10),
        ("SOCK_STREAM", 1),
        ("SOCK_DGRAM", 2),
        ("SOL_SOCKET", 1),
        ("SO_REUSEADDR", 4),
        ("SO_BROADCAST", 0x20),
        ("IPPROTO_IP", 0),
        ("IPPROTO_TCP", 6),
        ("IP_ADD_MEMBERSHIP", 0x400),
        ("IP_DROP_MEMBERSHIP", 0x401),
        ("TCP_NODELAY", 64),
        ("MSG_PEEK", 1),
        ("MSG_DONTWAIT", 2),
        ("IPPROTO_SEC", 100),
    ],
)
def test_module_constants_have_the_lwip_values(sim: Simulation, name: str, value: int) -> None:
    assert getattr(sim.socket, name) == value


@pytest.mark.parametrize(
    "name",
    [
        "IPPROTO_UDP",
        "SO_LINGER",
        "SO_KEEPALIVE",
        "SO_SNDBUF",
        "SO_RCVBUF",
        "SO_ERROR",
        "MSG_WAITALL",
        "SHUT_RD",
        "SHUT_WR",
        "SHUT_RDWR",
        "inet_pton",
        "inet_ntop",
        "gethostbyname",
        "timeout",
        "error",
        "gaierror",
        "has_ipv6",
        "create_connection",
        "socketpair",
    ],
)
def test_names_lwip_ports_lack_are_absent(sim: Simulation, name: str) -> None:
    assert not hasattr(sim.socket, name)


def test_module_surface_is_exactly_section_1_plus_decision_1(sim: Simulation) -> None:
    public = {name for name in dir(sim.socket) if not name.startswith("_")}
    assert public == {
        "AF_INET",
        "AF_INET6",
        "SOCK_STREAM",
        "SOCK_DGRAM",
        "SOCK_RAW",
        "SOL_SOCKET",
        "SO_REUSEADDR",
        "SO_BROADCAST",
        "IPPROTO_IP",
        "IPPROTO_TCP",
        "IPPROTO_SEC",
        "IP_ADD_MEMBERSHIP",
        "IP_DROP_MEMBERSHIP",
        "TCP_NODELAY",
        "MSG_PEEK",
        "MSG_DONTWAIT",
        "socket",
        "getaddrinfo",
    }


@pytest.mark.parametrize(
    "name",
    [
        "fileno",
        "getsockname",
        "getpeername",
        "shutdown",
        "gettimeout",
        "recv_into",
        "recvfrom_into",
        "detach",
        "dup",
        "family",
        "type",
        "proto",
        "__enter__",
        "__exit__",
        "getsockopt",
    ],
)
def test_socket_methods_lwip_lacks_are_absent(sim: Simulation, name: str) -> None:
    s = sim.new_socket()
    assert not hasattr(s, name)


def test_with_statement_is_not_supported(sim: Simulation) -> None:
    """USOCKET.md 3 (stream methods): no __enter__/__exit__ on lwIP sockets."""
    s = sim.new_socket()
    with pytest.raises((AttributeError, TypeError)), s:
        pass  # pragma: no cover


def test_select_module_surface(sim: Simulation) -> None:
    """USOCKET.md 4: POLLIN=1, POLLOUT=4, POLLERR=8, POLLHUP=16; POLLNVAL is not exported."""
    select = sim.select
    assert (select.POLLIN, select.POLLOUT, select.POLLERR, select.POLLHUP) == (1, 4, 8, 16)
    assert not hasattr(select, "POLLNVAL")
    assert callable(select.poll) and callable(select.select)


# -- socket() arguments (USOCKET.md 2) ------------------------------------------------------------
def test_socket_keyword_arguments_raise_typeerror(sim: Simulation) -> None:
    with pytest.raises(TypeError):
        sim.socket.socket(family=2, type=2)
    with pytest.raises(TypeError):
        sim.socket.socket(2, type=2)


@pytest.mark.parametrize("arguments", [(None,), (2, None)])
def test_socket_none_argument_raises_typeerror(sim: Simulation, arguments: tuple[Any]) -> None:
    """tests/extmod/socket_badconstructor.py."""
    with pytest.raises(TypeError):
        sim.socket.socket(*arguments)


def test_socket_unknown_type_raises_einval(sim: Simulation) -> None:
    with pytest.raises(OSError) as caught:
        sim.socket.socket(sim.socket.AF_INET, 99)
    assert plain_oserror(caught.value, errno.EINVAL)


def test_socket_sock_raw_is_einval_without_raw_support(sim: Simulation) -> None:
    """USOCKET.md 1: SOCK_RAW exists only with MICROPY_PY_LWIP_SOCK_RAW (off on most ports)."""
    with pytest.raises(OSError) as caught:
        sim.socket.socket(sim.socket.AF_INET, sim.socket.SOCK_RAW)
    assert plain_oserror(caught.value, errno.EINVAL)


def test_socket_fourth_argument_is_ignored_and_fifth_is_too_many(sim: Simulation) -> None:
    module = sim.socket
    s = module.socket(module.AF_INET, module.SOCK_DGRAM, 0, 12345)
    s.settimeout(WAIT)
    s.sendto(b"4 args", (SIM_PEER, 7))
    assert s.recv(10) == b"4 args"
    s.close()
    with pytest.raises(TypeError):
        module.socket(module.AF_INET, module.SOCK_DGRAM, 0, 0, 0)


def test_socket_defaults_and_af_is_not_checked(sim: Simulation) -> None:
    """USOCKET.md 2: socket() is AF_INET/SOCK_STREAM; af is stored but never checked."""
    module = sim.socket
    module.socket().close()
    odd = module.socket(12345, module.SOCK_DGRAM)
    odd.settimeout(WAIT)
    odd.sendto(b"any af", (SIM_PEER, 7))
    assert odd.recv(10) == b"any af"
    odd.close()


# -- bind / sendto addresses (USOCKET.md 3 bind, sendto) ------------------------------------------
def test_bind_with_a_hostname_raises_valueerror(sim: Simulation) -> None:
    s = sim.new_socket()
    with pytest.raises(ValueError):
        s.bind(("localhost", 0))
    with pytest.raises(ValueError):
        s.bind(("peer.sim", 0))


def test_sendto_a_hostname_raises_valueerror(sim: Simulation) -> None:
    s = sim.new_socket()
    with pytest.raises(ValueError):
        s.sendto(b"x", ("peer.sim", 7))


def test_bind_accepts_a_list_and_bytes_host(sim: Simulation) -> None:
    s = sim.new_socket()
    s.bind([b"10.0.0.2", 6000])
    peer = sim.peer_endpoint(0)
    sim.peer_send(peer, b"to a list-bound socket", 6000)
    s.settimeout(WAIT)
    assert s.recvfrom(100) == (b"to a list-bound socket", (SIM_PEER, peer.port))


def test_bind_to_an_address_no_interface_owns_is_accepted(sim: Simulation) -> None:
    """USOCKET.md 3 bind: binding 127.0.0.1 (or any other address) is accepted."""
    sim.new_socket().bind(("127.0.0.1", 6001))
    sim.new_socket().bind(("192.0.2.77", 6002))


# -- getaddrinfo (USOCKET.md 3 getaddrinfo) -------------------------------------------------------
def test_getaddrinfo_returns_exactly_one_stream_tuple(sim: Simulation, capsys: Any) -> None:
    assert sim.socket.getaddrinfo(SIM_PEER, 80) == [(2, 1, 0, "", (SIM_PEER, 80))]
    assert sim.socket.getaddrinfo("0.0.0.0", 0) == [(2, 1, 0, "", ("0.0.0.0", 0))]
    assert capsys.readouterr().err == ""


def test_getaddrinfo_with_sock_dgram_still_says_stream_and_warns(
    sim: Simulation, capsys: Any
) -> None:
    module = sim.socket
    result = module.getaddrinfo(SIM_PEER, 7, 0, module.SOCK_DGRAM)
    assert result == [(2, 1, 0, "", (SIM_PEER, 7))]
    captured = capsys.readouterr()
    assert "RuntimeWarning: unsupported getaddrinfo constraints" in captured.err
    assert captured.out == ""


@pytest.mark.parametrize("port", ["80", None, 80.0])
def test_getaddrinfo_port_must_be_an_int(sim: Simulation, port: Any) -> None:
    with pytest.raises(TypeError):
        sim.socket.getaddrinfo(SIM_PEER, port)


def test_getaddrinfo_empty_host_raises_negative_errno(sim: Simulation) -> None:
    with pytest.raises(OSError) as caught:
        sim.socket.getaddrinfo("", 80)
    assert caught.value.args == (-16,)
    assert not isinstance(caught.value, cpython_socket.gaierror)


# -- the UDP receive queue (USOCKET.md 3 recv, "UDP receive queue") ------------------------------
def test_udp_receive_queue_holds_4_and_tail_drops_the_5th(sim: Simulation) -> None:
    s = sim.new_socket()
    s.settimeout(WAIT)
    s.bind(("", 6100))
    peer = sim.peer_endpoint(0)
    sim.peer_send(peer, b"warm up ARP", 6100)
    assert s.recv(100) == b"warm up ARP"
    drops = sim.host.counters.drops
    before = drops[DropReason.UDP_QUEUE_FULL]
    destination = (sim.host.ip.address, 6100)

    def burst() -> None:  # one call under the lock: all five reach the host in one poll
        for n in range(5):
            peer.send_to(b"burst %d" % n, destination, sim.peer.clock.now())

    sim.thread.call(burst)
    assert sim.wait_until(lambda: drops[DropReason.UDP_QUEUE_FULL] > before)
    assert [s.recv(100) for _ in range(4)] == [b"burst %d" % n for n in range(4)]
    with pytest.raises(OSError) as caught:
        s.recv(100, sim.socket.MSG_DONTWAIT)
    assert caught.value.errno == errno.EAGAIN  # the newest, "burst 4", was the one lost
    assert drops[DropReason.UDP_QUEUE_FULL] - before == 1


def test_queue_drains_and_takes_new_datagrams_after_a_drop(sim: Simulation) -> None:
    s = sim.new_socket()
    s.settimeout(WAIT)
    s.bind(("", 6101))
    peer = sim.peer_endpoint(0)
    destination = (sim.host.ip.address, 6101)
    sim.peer_send(peer, b"warm", 6101)
    s.recv(10)
    sim.thread.call(
        lambda: [peer.send_to(b"%d" % n, destination, sim.peer.clock.now()) for n in range(6)]
    )
    assert sim.wait_until(lambda: sim.host.counters.drops[DropReason.UDP_QUEUE_FULL] >= 2)
    assert [s.recv(10) for _ in range(4)] == [b"0", b"1", b"2", b"3"]
    sim.peer_send(peer, b"later", 6101)
    assert s.recv(10) == b"later"


# -- send / sendall / sendto (USOCKET.md 3) -------------------------------------------------------
def test_send_on_an_unconnected_udp_socket_raises_einval(sim: Simulation) -> None:
    s = sim.new_socket()
    with pytest.raises(OSError) as caught:
        s.send(b"nowhere")
    assert plain_oserror(caught.value, errno.EINVAL)
    s.bind(("", 0))
    with pytest.raises(OSError) as caught:
        s.send(b"still nowhere")
    assert plain_oserror(caught.value, errno.EINVAL)


def test_sendall_on_udp_raises_notimplementederror(sim: Simulation) -> None:
    s = sim.new_socket()
    s.connect((SIM_PEER, 7))
    with pytest.raises(NotImplementedError):
        s.sendall(b"x")


def test_sendto_over_65535_bytes_is_enomem_and_counted(sim: Simulation) -> None:
    """USOCKET.md 3 send: modlwip cuts UDP data to 65535 bytes, then pbuf_alloc fails for
    more than one IPv4 packet carries: ENOMEM, nothing sent (never a length not sent)."""
    s = sim.new_socket()
    with pytest.raises(OSError) as caught:
        s.sendto(b"x" * 70000, (SIM_PEER, 9))
    assert caught.value.args == (errno.ENOMEM,)
    assert sim.host.counters.counters["udp.send_too_large"] == 1


def test_sendto_broadcast_without_so_broadcast_is_allowed(sim: Simulation) -> None:
    """USOCKET.md 3 setsockopt: lwIP without IP_SOF_BROADCAST lets it through (Linux: EACCES)."""
    peer = sim.peer_endpoint(6200)
    s = sim.new_socket()
    assert s.sendto(b"no flag needed", ("10.0.0.255", 6200)) == 14
    data, (address, _) = sim.peer_receive(peer)
    assert (data, address) == (b"no flag needed", SIM_HOST)


def test_str_data_is_sent_as_its_utf8_bytes(sim: Simulation) -> None:
    """modlwip takes data through the buffer protocol, which MicroPython's str has (read-only,
    py/objstr.c mp_obj_str_get_buffer): s.sendto("text", addr) sends b"text"."""
    s = sim.new_socket()
    s.settimeout(WAIT)
    assert s.sendto("héllo", (SIM_PEER, 7)) == 6
    assert s.recv(100) == "héllo".encode()


# -- setsockopt (USOCKET.md 3 setsockopt) ---------------------------------------------------------
def test_unknown_setsockopt_prints_a_warning_and_returns_none(sim: Simulation, capsys: Any) -> None:
    s = sim.new_socket()
    assert s.setsockopt(sim.socket.SOL_SOCKET, 0x1234, 1) is None
    captured = capsys.readouterr()
    assert captured.out == "Warning: lwip.setsockopt() not implemented\n"
    assert captured.err == ""


def test_setsockopt_level_is_ignored(sim: Simulation) -> None:
    module = sim.socket
    first, second = sim.new_socket(), sim.new_socket()
    for s in (first, second):
        s.setsockopt(999, module.SO_REUSEADDR, 1)  # a nonsense level still sets the option
        s.bind(("", 6300))


def test_ip_add_membership_needs_exactly_8_bytes(sim: Simulation) -> None:
    module = sim.socket
    s = sim.new_socket()
    for wrong in (b"", bytes(4), bytes(7), bytes(9), bytes(16)):
        with pytest.raises(ValueError):
            s.setsockopt(module.IPPROTO_IP, module.IP_ADD_MEMBERSHIP, wrong)


def test_ip_add_membership_joins_and_the_igmp_report_goes_out(sim: Simulation) -> None:
    module = sim.socket
    counters = sim.host.counters.counters
    s = sim.new_socket()
    s.settimeout(WAIT)
    s.bind(("", 6400))
    group = bytes([224, 1, 2, 3])
    s.setsockopt(module.IPPROTO_IP, module.IP_ADD_MEMBERSHIP, group + bytes(4))
    assert sim.wait_until(lambda: counters["igmp.reports_sent"] >= 1)
    assert counters["igmp.groups_joined"] == 1
    peer = sim.peer_endpoint(0)
    sim.peer_send(peer, b"to the group", 6400, "224.1.2.3")
    assert s.recvfrom(100) == (b"to the group", (SIM_PEER, peer.port))
    s.setsockopt(module.IPPROTO_IP, module.IP_DROP_MEMBERSHIP, bytearray(group + bytes(4)))
    assert counters["igmp.groups_left"] == 1


# -- makefile (USOCKET.md 3 makefile, 7) ----------------------------------------------------------
def test_makefile_returns_the_socket_itself_and_closing_it_closes_the_socket(
    sim: Simulation,
) -> None:
    s = sim.new_socket()
    assert s.makefile() is s
    assert s.makefile("rb") is s
    assert s.makefile("wb", 0) is s
    s.makefile().close()
    with pytest.raises(OSError) as caught:
        s.recv(1)
    assert caught.value.errno == errno.EBADF


# -- poll (USOCKET.md 4) -------------------------------------------------------------------------
def test_ipoll_yields_one_reused_tuple(sim: Simulation) -> None:
    """tests/extmod/select_ipoll.py: two writable sockets give the same pair object twice."""
    select = sim.select
    first, second = sim.new_socket(), sim.new_socket()
    poller = select.poll()
    poller.register(first, select.POLLOUT)
    poller.register(second, select.POLLOUT)
    seen = [(obj, events) for obj, events in poller.ipoll(0)]  # unpacked while iterating
    assert sorted(seen, key=lambda item: item[0] is second) == [
        (first, select.POLLOUT),
        (second, select.POLLOUT),
    ]
    results = list(poller.ipoll(0))
    assert len(results) == 2 and results[0] is results[1]  # callee-owned: the same object
    last = results[0]
    assert tuple(last) in ((first, select.POLLOUT), (second, select.POLLOUT))
    assert last == tuple(last) and len(last) == 2 and last[1] == select.POLLOUT
    assert repr(last) == repr(tuple(last))  # prints like MicroPython's tuple


def test_ipoll_flags_1_is_one_shot_until_modify(sim: Simulation) -> None:
    select = sim.select
    s = sim.new_socket()
    poller = select.poll()
    poller.register(s, select.POLLOUT)
    assert [tuple(r) for r in poller.ipoll(0, 1)] == [(s, select.POLLOUT)]
    assert list(poller.ipoll(0)) == []  # its mask is now 0
    assert poller.poll(0) == []
    poller.modify(s, select.POLLOUT)
    assert [tuple(r) for r in poller.ipoll(0)] == [(s, select.POLLOUT)]
    assert [tuple(r) for r in poller.ipoll(0)] == [(s, select.POLLOUT)]  # no longer one-shot


def test_one_shot_is_reset_by_registering_again(sim: Simulation) -> None:
    select = sim.select
    s = sim.new_socket()
    poller = select.poll()
    poller.register(s)
    list(poller.ipoll(0, 1))
    assert list(poller.ipoll(0)) == []
    poller.register(s)  # select_ipoll.py: "Register both sockets (to reset the first one)"
    assert len(list(poller.ipoll(0))) == 1


def test_poll_modify_of_an_unregistered_socket_raises_enoent(sim: Simulation) -> None:
    select = sim.select
    poller = select.poll()
    with pytest.raises(OSError) as caught:
        poller.modify(sim.new_socket(), select.POLLIN)
    assert caught.value.args == (errno.ENOENT,)


def test_poll_modify_needs_two_arguments(sim: Simulation) -> None:
    poller = sim.select.poll()
    s = sim.new_socket()
    poller.register(s)
    with pytest.raises(TypeError):
        poller.modify(s)


def test_poll_unregister_of_an_unknown_object_does_nothing(sim: Simulation) -> None:
    poller = sim.select.poll()
    poller.unregister(sim.new_socket())
    poller.unregister(object())


def test_register_an_object_without_ioctl_raises_oserror(sim: Simulation) -> None:
    poller = sim.select.poll()
    for thing in (object(), 42, "socket", b"bytes"):
        with pytest.raises(OSError):
            poller.register(thing)


class Pollable:
    """A custom pollable: ``ioctl(3, mask)`` (MP_STREAM_POLL) answers with ``ready``."""

    def __init__(self) -> None:
        self.ready = 0
        self.requests: list[tuple[int, int]] = []

    def ioctl(self, request: int, argument: int) -> int:
        self.requests.append((request, argument))
        return self.ready if request == 3 else -1


def test_custom_pollable_with_ioctl_3_works(sim: Simulation) -> None:
    select = sim.select
    thing = Pollable()
    poller = select.poll()
    poller.register(thing)
    assert poller.poll(0) == []
    assert thing.requests[-1] == (3, select.POLLIN | select.POLLOUT)  # the registered mask
    thing.ready = select.POLLIN
    assert poller.poll(0) == [(thing, select.POLLIN)]
    assert [tuple(r) for r in poller.ipoll(0)] == [(thing, select.POLLIN)]


def test_unrequested_bits_are_masked_but_hup_err_nval_always_reported(sim: Simulation) -> None:
    select = sim.select
    thing = Pollable()
    poller = select.poll()
    poller.register(thing, select.POLLIN)
    thing.ready = select.POLLOUT
    assert poller.poll(0) == []
    thing.ready = select.POLLOUT | select.POLLHUP | select.POLLERR
    assert poller.poll(0) == [(thing, select.POLLHUP | select.POLLERR)]
    thing.ready = POLLNVAL
    assert poller.poll(0) == [(thing, POLLNVAL)]


def test_custom_pollable_becoming_ready_wakes_a_waiting_poll(sim: Simulation) -> None:
    """A blocked poll re-asks its objects each time the stack thread polls (a few ms)."""
    select = sim.select
    thing = Pollable()
    poller = select.poll()
    poller.register(thing, select.POLLIN)
    timer = threading.Timer(0.05, lambda: setattr(thing, "ready", select.POLLIN))
    timer.start()
    try:
        assert poller.poll(int(WAIT * 1000)) == [(thing, select.POLLIN)]
    finally:
        timer.cancel()


def test_select_puts_a_closed_socket_in_the_exceptional_list(sim: Simulation) -> None:
    """USOCKET.md 4: select's x list collects any bit other than RD or WR (NVAL here)."""
    s = sim.new_socket()
    s.close()
    assert sim.select.select([], [], [s], 0) == ([], [], [s])


def test_recvfrom_reports_the_peer_address_as_str_and_int(sim: Simulation) -> None:
    s = sim.new_socket()
    s.settimeout(WAIT)
    s.sendto(b"x", (SIM_PEER, 7))
    _, (address, port) = s.recvfrom(10)
    assert type(address) is str and type(port) is int and (address, port) == (SIM_PEER, 7)
