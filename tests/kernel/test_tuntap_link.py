"""TunLink and TapLink against the real Linux stack, inside a private network namespace.

Each test makes a device here with a unique name, moves it into a fresh namespace (fixture
``netns``), gives the kernel side 10.0.0.1/24 there and talks to it as 10.0.0.2 with hand-built
packets. Afterwards neither the namespace nor the device may remain.
"""

from __future__ import annotations

import contextlib
import os
import select
import socket
import struct
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from pystack.link.base import LinkKind
from pystack.link.tuntap import LinkUnavailable, TapLink, TunLink
from pystack.netns import Namespace, configure_peer, move_device

KERNEL_ADDRESS = "10.0.0.1"
OUR_ADDRESS = "10.0.0.2"
OUR_MAC = bytes.fromhex("020000000002")
BROADCAST_MAC = b"\xff" * 6
ETHERTYPE_IPV4 = 0x0800
ETHERTYPE_ARP = 0x0806
WAIT_SECONDS = 5.0
REPOSITORY = Path(__file__).resolve().parents[2]
LinkType = TypeVar("LinkType", TunLink, TapLink)


# --- hand-built packets (independent of pystack.wire) -----------------------------------------


def checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\x00"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def ipv4(source: str, destination: str, protocol: int, payload: bytes) -> bytes:
    fields = [0x45, 0, 20 + len(payload), 0x1234, 0x4000, 64, protocol, 0]
    addresses = socket.inet_aton(source) + socket.inet_aton(destination)
    header = struct.pack("!BBHHHBBH", *fields) + addresses
    fields[7] = checksum(header)
    return struct.pack("!BBHHHBBH", *fields) + addresses + payload


def echo_request(identifier: int, sequence: int, data: bytes) -> bytes:
    body = struct.pack("!BBHHH", 8, 0, 0, identifier, sequence) + data
    icmp = body[:2] + struct.pack("!H", checksum(body)) + body[4:]
    return ipv4(OUR_ADDRESS, KERNEL_ADDRESS, 1, icmp)


def is_echo_reply(packet: bytes, identifier: int, sequence: int, data: bytes) -> bool:
    if len(packet) < 28 or packet[0] != 0x45 or packet[9] != 1:
        return False
    if packet[12:16] != socket.inet_aton(KERNEL_ADDRESS):
        return False
    if packet[16:20] != socket.inet_aton(OUR_ADDRESS):
        return False
    kind, _, _, reply_identifier, reply_sequence = struct.unpack_from("!BBHHH", packet, 20)
    return (kind, reply_identifier, reply_sequence) == (0, identifier, sequence) and (
        packet[28:] == data
    )


def ethernet(destination: bytes, ethertype: int, payload: bytes) -> bytes:
    return destination + OUR_MAC + struct.pack("!H", ethertype) + payload


def arp(operation: int, target_mac: bytes, target_address: str) -> bytes:
    return struct.pack(
        "!HHBBH6s4s6s4s",
        1,
        ETHERTYPE_IPV4,
        6,
        4,
        operation,
        OUR_MAC,
        socket.inet_aton(OUR_ADDRESS),
        target_mac,
        socket.inet_aton(target_address),
    )


# --- waiting and cleanup ---------------------------------------------------------------------


def wait_for(
    link: TunLink | TapLink,
    matches: Callable[[bytes], bool],
    on_frame: Callable[[bytes], None] | None = None,
) -> bytes:
    """Receive (select on fileno, bounded in time) until a frame ``matches``; fail otherwise."""
    fd = link.fileno()
    assert fd is not None
    deadline = time.monotonic() + WAIT_SECONDS
    while (remaining := deadline - time.monotonic()) > 0:
        select.select([fd], [], [], remaining)
        for frame in link.receive(time.monotonic()):
            if on_frame is not None:
                on_frame(frame)
            if matches(frame):
                return frame
    pytest.fail(f"no matching frame on {link.name} within {WAIT_SECONDS} s")


def device_name_pattern() -> str:
    return f"pst{os.getpid() % 1000000}x%d"


def devices_in(namespace: Namespace) -> str:
    return namespace.ip("-o", "link", "show").stdout


def root_has_device(name: str) -> bool:
    try:
        socket.if_nametoindex(name)
    except OSError:
        return False
    return True


@contextlib.contextmanager
def peer_link(
    link_type: type[LinkType], namespace: Namespace, mtu: int = 1500
) -> Iterator[LinkType]:
    link = link_type(device_name_pattern(), mtu=mtu)
    try:
        move_device(namespace, link.name)
        assert not root_has_device(link.name)
        configure_peer(namespace, link.name, f"{KERNEL_ADDRESS}/24", link.mtu)
        yield link
    finally:
        link.close()
    assert link.name not in devices_in(namespace), "device survived close()"
    assert not root_has_device(link.name), "device came back to the root namespace"


@pytest.fixture
def tun(netns: Namespace) -> Iterator[TunLink]:
    with peer_link(TunLink, netns) as link:
        yield link


@pytest.fixture
def tap(netns: Namespace) -> Iterator[TapLink]:
    with peer_link(TapLink, netns) as link:
        yield link


# --- tests -----------------------------------------------------------------------------------


def test_tun_echo_request_gets_kernel_echo_reply(tun: TunLink) -> None:
    assert tun.kind is LinkKind.IP
    data = b"pystack tun link test"
    tun.send(echo_request(0x4242, 1, data), time.monotonic())
    wait_for(tun, lambda packet: is_echo_reply(packet, 0x4242, 1, data))
    assert tun.statistics.frames_sent == 1
    assert tun.statistics.send_errors == 0
    assert tun.statistics.frames_received >= 1


def test_tun_receive_drains_many_replies(tun: TunLink) -> None:
    count = 200
    for sequence in range(count):
        tun.send(echo_request(7, sequence, b"x" * 64), time.monotonic())
    seen: set[int] = set()

    def record(packet: bytes) -> None:
        if is_echo_reply(packet, 7, struct.unpack_from("!H", packet, 26)[0], b"x" * 64):
            seen.add(struct.unpack_from("!H", packet, 26)[0])

    wait_for(tun, lambda _: len(seen) == count, on_frame=record)
    assert seen == set(range(count))


def test_tun_refused_write_is_counted_not_raised(tun: TunLink) -> None:
    tun.send(b"\x00" * 20, time.monotonic())  # not IPv4 or IPv6: the tun driver says EINVAL
    assert tun.statistics.send_errors == 1
    assert tun.statistics.frames_sent == 0


def test_tun_mtu_65535_settable_and_carries_64k_packet(netns: Namespace) -> None:
    with peer_link(TunLink, netns, mtu=65535) as link:
        assert link.mtu == 65535
        assert "mtu 65535" in netns.ip("link", "show", "dev", link.name).stdout
        data = bytes(range(256)) * 255 + bytes(range(227))  # 65507: IPv4 total length 65535
        request = echo_request(9, 9, data)
        assert len(request) == 65535
        link.send(request, time.monotonic())
        reply = wait_for(link, lambda packet: is_echo_reply(packet, 9, 9, data))
        assert len(reply) == 65535


def test_tap_arp_then_echo_gets_kernel_echo_reply(tap: TapLink) -> None:
    assert tap.kind is LinkKind.ETHERNET
    kernel_mac = tap.hwaddr
    assert len(kernel_mac) == 6 and kernel_mac != OUR_MAC

    def is_arp_reply(frame: bytes) -> bool:
        return (
            frame[:6] == OUR_MAC
            and frame[12:14] == b"\x08\x06"
            and frame[20:22] == b"\x00\x02"
            and frame[22:28] == kernel_mac
            and frame[28:32] == socket.inet_aton(KERNEL_ADDRESS)
        )

    def answer_arp_for_us(frame: bytes) -> None:
        # The kernel may ask for 10.0.0.2 before it replies: answer like a host would.
        is_arp_request = frame[12:14] == b"\x08\x06" and frame[20:22] == b"\x00\x01"
        if is_arp_request and frame[38:42] == socket.inet_aton(OUR_ADDRESS):
            reply = arp(2, frame[22:28], KERNEL_ADDRESS)
            tap.send(ethernet(frame[6:12], ETHERTYPE_ARP, reply), time.monotonic())

    request = arp(1, bytes(6), KERNEL_ADDRESS)
    tap.send(ethernet(BROADCAST_MAC, ETHERTYPE_ARP, request), time.monotonic())
    wait_for(tap, is_arp_reply, on_frame=answer_arp_for_us)

    data = b"pystack tap link test"
    tap.send(ethernet(kernel_mac, ETHERTYPE_IPV4, echo_request(0x5151, 3, data)), time.monotonic())
    reply = wait_for(
        tap,
        lambda frame: (
            frame[:6] == OUR_MAC
            and frame[12:14] == b"\x08\x00"
            and is_echo_reply(frame[14:], 0x5151, 3, data)
        ),
        on_frame=answer_arp_for_us,
    )
    assert reply[6:12] == kernel_mac


def test_attach_existing_device_made_by_ip_tuntap(netns: Namespace) -> None:
    # The persistent device is made inside the namespace, and attached to from a process
    # running there, so nothing is created in the root namespace.
    name = "pstattach0"
    netns.ip("tuntap", "add", "mode", "tun", "name", name)
    code = (
        f"import sys; sys.path.insert(0, {str(REPOSITORY)!r})\n"
        "from pystack.link.tuntap import TunLink\n"
        f"link = TunLink({name!r}, attach_existing=True)\n"
        "print(link.name, link.mtu, link.fileno() is not None)\n"
        "link.close(); link.close()\n"
    )
    result = netns.run([sys.executable, "-c", code])
    assert result.stdout.split() == [name, "1500", "True"]
    assert name in devices_in(netns)  # persistent: still there; goes with the namespace


def test_unprivileged_process_gets_link_unavailable_with_explanation(kernel: None) -> None:
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: drop root, try to create a device, report, exit without cleanup
        result = b"no error"
        try:
            os.close(read_end)
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
            try:
                TunLink(device_name_pattern()).close()
            except LinkUnavailable as error:
                result = str(error).encode()
        except BaseException as error:  # anything at all goes back to the parent
            result = repr(error).encode()
        finally:
            os.write(write_end, result)
            os._exit(0)
    os.close(write_end)
    try:
        with os.fdopen(read_end, "rb") as reader:
            message = reader.read().decode()
    finally:
        os.waitpid(pid, 0)
    assert message == "creating a TUN device needs root (CAP_NET_ADMIN)"


def test_link_close_is_idempotent_and_fileno_none_after(netns: Namespace) -> None:
    with peer_link(TunLink, netns) as link:
        link.close()
        link.close()
        assert link.fileno() is None
        assert link.receive(0.0) == []
        link.send(echo_request(1, 1, b""), 0.0)
        assert link.statistics.send_errors == 1


def test_require_kernel_skips_or_fails_as_the_environment_says(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from tests.helpers import kernel as gate

    monkeypatch.setattr(gate, "kernel_unavailable_reason", lambda: "no kernel here")
    monkeypatch.delenv(gate.REQUIRE_KERNEL_VARIABLE, raising=False)
    with pytest.raises(pytest.skip.Exception, match="no kernel here"):
        gate.require_kernel()
    monkeypatch.setenv(gate.REQUIRE_KERNEL_VARIABLE, "1")
    with pytest.raises(pytest.fail.Exception, match=r"PYSTACK_REQUIRE_KERNEL=1.*no kernel here"):
        gate.require_kernel()
    monkeypatch.setattr(gate, "kernel_unavailable_reason", lambda: None)
    gate.require_kernel()  # usable kernel: neither skip nor fail
