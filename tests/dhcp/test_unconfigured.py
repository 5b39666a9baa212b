"""The interface's side of DHCP: ``IPv4Layer.configure`` at run time and the unconfigured state.

The test is the peer on the far end of the link (``tests/ip/peer.py``); the stack starts as
10.0.0.2/24 and is unconfigured with ``configure(0, 0, None)`` where a test needs it.
"""

from __future__ import annotations

import errno

import pytest

from pystack.dhcp.client import dhcp_client
from pystack.link.base import LinkKind
from pystack.stack import StackConfig
from pystack.stats import DropReason
from pystack.wire.addresses import BROADCAST_MAC, LIMITED_BROADCAST, ip_from_str
from pystack.wire.ipv4 import PROTO_UDP
from pystack.wire.udp import UDPDatagram
from tests.helpers.frames import (
    OTHER_MAC,
    PEER_IP,
    STACK_IP,
    STACK_MAC,
    arp_frame,
    arp_request,
    echo_request,
    ethernet_ipv4,
    ipv4,
    read_ipv4,
)
from tests.ip.peer import Peer

NEW = ip_from_str("192.0.2.7")
ROUTER = ip_from_str("192.0.2.1")


def udp_packet(dst: int, port: int = 68, src: int = PEER_IP) -> bytes:
    payload = UDPDatagram(67, port, b"offer").build(src, dst)
    return ipv4(src, dst, PROTO_UDP, payload).build()


@pytest.fixture
def peer() -> Peer:
    peer = Peer(LinkKind.ETHERNET)
    peer.stack.ip.configure(0, 0, None)
    return peer


def test_configure_moves_address_routes_broadcast_and_arp() -> None:
    peer = Peer(LinkKind.ETHERNET)
    ip = peer.stack.ip
    ip.routes.add(ip_from_str("198.51.100.0"), 24, PEER_IP)  # the user's: stays
    ip.configure(NEW, 28, ROUTER)
    assert (ip.address, ip.network, ip.directed_broadcast) == (
        NEW,
        ip_from_str("192.0.2.0"),
        ip_from_str("192.0.2.15"),
    )
    assert (ip.settings.address, ip.settings.prefix_length, ip.settings.gateway) == (
        NEW,
        28,
        ROUTER,
    )
    assert ip.arp.address == NEW
    assert ip.routes.lookup(STACK_IP).gateway == ROUTER  # type: ignore[union-attr]  # old subnet gone
    assert ip.routes.lookup(NEW).device == "loopback"  # type: ignore[union-attr]
    assert ip.routes.lookup(ip_from_str("198.51.100.9")).gateway == PEER_IP  # type: ignore[union-attr]
    ip.configure(NEW, 28, None)
    assert ip.routes.lookup(ip_from_str("203.0.113.1")) is None
    assert peer.stack.describe().startswith("192.0.2.7/28 on tap")
    with pytest.raises(ValueError):
        ip.configure(NEW, 33, None)


def test_unconfigured_keeps_only_loopback_broadcast_and_multicast_routes(peer: Peer) -> None:
    ip = peer.stack.ip
    assert not ip.configured and ip.directed_broadcast is None
    assert ip.routes.lookup(PEER_IP) is None
    assert ip.routes.lookup(LIMITED_BROADCAST) is not None
    assert ip.routes.lookup(ip_from_str("224.0.0.251")) is not None
    endpoint = peer.stack.udp.open(0, 68)
    with pytest.raises(OSError) as caught:
        endpoint.send_to(b"x", (PEER_IP, 67), peer.now)
    assert caught.value.errno == errno.EHOSTUNREACH
    endpoint.send_to(b"discover", (LIMITED_BROADCAST, 67), peer.now)
    peer.poll()
    [frame] = peer.sent_frames()
    assert frame[:6] == BROADCAST_MAC
    packet = read_ipv4(frame, True)
    assert (packet.src, packet.dst) == (0, LIMITED_BROADCAST)  # RFC 2131 4.1


def test_unconfigured_takes_udp_unicast_to_our_mac_whatever_the_address(peer: Peer) -> None:
    endpoint = peer.stack.udp.open(0, 68)
    peer.peer_sends(ethernet_ipv4(udp_packet(NEW)))
    assert endpoint.receive() == (b"offer", (PEER_IP, 67))
    assert peer.counters["ipv4.unconfigured_accepted"] == 1
    peer.peer_sends(ethernet_ipv4(udp_packet(NEW, port=5000)))  # nobody there: no ICMP error
    assert peer.drops[DropReason.UDP_NO_LISTENER] == 1
    peer.peer_sends(ethernet_ipv4(udp_packet(NEW), dst=OTHER_MAC))
    assert peer.drops[DropReason.ETHERNET_NOT_FOR_US] == 1
    peer.expect_nothing()


def test_unconfigured_answers_no_ping_and_no_arp(peer: Peer) -> None:
    peer.peer_sends(ethernet_ipv4(echo_request(dst=STACK_IP)))
    peer.peer_sends(ethernet_ipv4(echo_request(dst=0)))
    assert peer.drops[DropReason.IPV4_NOT_FOR_US] == 2
    peer.peer_sends(arp_frame(arp_request(target_ip=0)))
    peer.peer_sends(arp_frame(arp_request(target_ip=STACK_IP)))
    assert peer.drops[DropReason.ARP_UNCONFIGURED] == 2
    peer.expect_nothing()


def test_unconfigured_on_tun_takes_udp_too() -> None:
    peer = Peer(LinkKind.IP)
    peer.stack.ip.configure(0, 0, None)
    endpoint = peer.stack.udp.open(0, 68)
    peer.peer_sends(udp_packet(NEW))
    assert endpoint.receive() == (b"offer", (PEER_IP, 67))


def test_dhcp_stack_starts_unconfigured_without_gratuitous_arp() -> None:
    peer = Peer(
        LinkKind.ETHERNET, StackConfig(address="dhcp", mac="02:00:00:00:00:02"), start=False
    )
    assert peer.stack.address == 0 and dhcp_client(peer.stack) is not None
    assert peer.stack.next_deadline() == 0.0
    peer.poll()
    [frame] = peer.sent_frames()  # the DISCOVER, and no ARP announcing 0.0.0.0
    packet = read_ipv4(frame, True)
    assert (packet.src, packet.dst, frame[6:12]) == (0, LIMITED_BROADCAST, STACK_MAC)
