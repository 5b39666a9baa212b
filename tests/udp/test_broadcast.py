"""Broadcast (limited and directed) between two stacks, and who receives it."""

from __future__ import annotations

import pytest

from pystack.link.base import LinkKind
from pystack.stats import DropReason
from pystack.wire.addresses import BROADCAST_MAC
from pystack.wire.ethernet import EthernetFrame
from tests.helpers.frames import PEER_IP, STACK_IP, SUBNET_BROADCAST
from tests.ip.peer import Peer
from tests.sim.topology import A_IP, B_IP
from tests.udp.helpers import KINDS, hosts, udp_packet

LIMITED = 0xFFFFFFFF
DIRECTED = 0x0A0000FF  # 10.0.0.255


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("destination", [LIMITED, DIRECTED])
def test_broadcast_reaches_the_other_stack(kind: LinkKind, destination: int) -> None:
    net = hosts(kind)
    server = net.b.udp.open(0, 6000)
    client = net.a.udp.open()
    assert not client.broadcast  # SO_BROADCAST off: sending is allowed anyway, as lwIP
    assert client.send_to(b"all of you", (destination, 6000), net.now) == 10
    net.sim.run_for(0.1)
    assert server.receive() == (b"all of you", (A_IP, client.port))
    # the reply is unicast
    server.send_to(b"me", (A_IP, client.port), net.now)
    net.sim.run_for(0.1)
    assert client.receive() == (b"me", (B_IP, 6000))


def test_broadcast_leaves_in_a_broadcast_frame_without_arp() -> None:
    peer = Peer(LinkKind.ETHERNET)
    peer.stack.udp.open().send_to(b"x", (LIMITED, 67), peer.now)
    peer.poll()
    [frame] = peer.sent_frames()
    assert EthernetFrame.parse(frame).dst == BROADCAST_MAC


def test_broadcast_goes_to_every_endpoint_on_the_port() -> None:
    peer = Peer()
    udp = peer.stack.udp
    first = udp.open(0, 6000, reuse=True)
    second = udp.open(0, 6000, reuse=True)
    bound_to_broadcast = udp.open(SUBNET_BROADCAST, 6000, reuse=True)
    unicast_bound = udp.open(STACK_IP, 6000, reuse=True)
    other_port = udp.open(0, 6001)
    peer.peer_sends_packet(udp_packet(PEER_IP, SUBNET_BROADCAST, 1, 6000, b"directed"))
    peer.peer_sends_packet(udp_packet(PEER_IP, LIMITED, 1, 6000, b"limited"))
    assert [first.pending, second.pending, bound_to_broadcast.pending] == [2, 2, 1]
    # Linux: an endpoint bound to a unicast address takes no broadcast
    assert (unicast_bound.pending, other_port.pending) == (0, 0)
    assert bound_to_broadcast.receive() == (b"directed", (PEER_IP, 1))


def test_unicast_goes_to_one_endpoint_of_the_shared_port() -> None:
    peer = Peer()
    endpoints = [peer.stack.udp.open(0, 6000, reuse=True) for _ in range(3)]
    peer.peer_sends_packet(udp_packet(PEER_IP, STACK_IP, 1, 6000, b"one"))
    assert [e.pending for e in endpoints] == [0, 0, 1]  # the newest, as lwIP's list order


def test_a_full_endpoint_does_not_starve_the_others() -> None:
    peer = Peer()
    full = peer.stack.udp.open(0, 6000, reuse=True)
    full.set_queue_limit(1)
    roomy = peer.stack.udp.open(0, 6000, reuse=True)
    for number in range(3):
        peer.peer_sends_packet(udp_packet(PEER_IP, LIMITED, 1, 6000, bytes([number])))
    assert (full.pending, roomy.pending) == (1, 3)
    assert peer.dropped() == {DropReason.UDP_QUEUE_FULL: 2}
