"""Closed ports and ICMP: port unreachable for unicast only, the connected-endpoint filter, and
ICMP errors turned into a pending errno on a connected endpoint (ECONNREFUSED and others)."""

from __future__ import annotations

import errno

import pytest

from pystack.link.base import LinkKind
from pystack.stats import DropReason
from pystack.wire import icmpv4
from pystack.wire.icmpv4 import ICMPv4Message
from pystack.wire.ipv4 import PROTO_ICMP, IPv4Packet
from tests.helpers.frames import PEER_IP, STACK_IP, SUBNET_BROADCAST, read_icmp
from tests.ip.peer import Peer
from tests.sim.topology import B_IP
from tests.udp.helpers import KINDS, hosts, udp_packet

GROUP = 0xEF010203


def test_closed_port_is_answered_with_icmp_port_unreachable() -> None:
    peer = Peer()
    probe = udp_packet(PEER_IP, STACK_IP, 1234, 4000, b"anyone?", identification=77)
    peer.peer_sends_packet(probe)
    [reply] = peer.sent_packets()
    message = read_icmp(reply)
    assert (message.type, message.code) == (icmpv4.DESTINATION_UNREACHABLE, icmpv4.PORT_UNREACHABLE)
    quoted = message.quoted_packet()
    assert (quoted.src, quoted.dst, quoted.identification) == (PEER_IP, STACK_IP, 77)
    assert quoted.payload == probe.payload  # the whole small datagram is quoted
    assert peer.dropped() == {DropReason.UDP_NO_LISTENER: 1}


@pytest.mark.parametrize("destination", [0xFFFFFFFF, SUBNET_BROADCAST])
def test_broadcast_to_a_closed_port_gets_no_icmp(destination: int) -> None:
    peer = Peer()
    peer.peer_sends_packet(udp_packet(PEER_IP, destination, 1234, 4000, b"hello?"))
    peer.expect_nothing()
    assert peer.dropped() == {DropReason.UDP_NO_LISTENER: 1}


def test_multicast_to_a_closed_port_gets_no_icmp() -> None:
    peer = Peer()
    joined = peer.stack.udp.open(0, 5000)
    joined.join(GROUP, 0, peer.now)
    peer.poll()
    peer.sent_frames()  # the report
    peer.peer_sends_packet(udp_packet(PEER_IP, GROUP, 1234, 4000, b"hello?"))
    peer.expect_nothing()
    assert peer.dropped() == {DropReason.UDP_NO_LISTENER: 1}


def test_connected_endpoint_filters_other_peers() -> None:
    peer = Peer()
    endpoint = peer.stack.udp.open(0, 4000)
    endpoint.connect((PEER_IP, 1234))
    peer.peer_sends_packet(udp_packet(PEER_IP, STACK_IP, 9999, 4000, b"wrong port"))
    peer.peer_sends_packet(udp_packet(0x0A000003, STACK_IP, 1234, 4000, b"wrong host"))
    peer.peer_sends_packet(udp_packet(PEER_IP, STACK_IP, 1234, 4000, b"right"))
    assert endpoint.receive() == (b"right", (PEER_IP, 1234))
    assert endpoint.pending == 0
    assert peer.dropped() == {DropReason.UDP_PEER_MISMATCH: 2}
    # as lwIP and Linux: nobody took them, so the senders hear port unreachable
    replies = [read_icmp(p) for p in peer.sent_packets()]
    assert [m.code for m in replies] == [icmpv4.PORT_UNREACHABLE] * 2


def test_connected_endpoint_still_takes_broadcast_from_its_peer_only() -> None:
    peer = Peer()
    endpoint = peer.stack.udp.open(0, 4000)
    endpoint.connect((PEER_IP, 1234))
    peer.peer_sends_packet(udp_packet(PEER_IP, 0xFFFFFFFF, 1234, 4000, b"peer"))
    peer.peer_sends_packet(udp_packet(PEER_IP, 0xFFFFFFFF, 4321, 4000, b"other"))
    assert endpoint.receive() == (b"peer", (PEER_IP, 1234))
    assert endpoint.receive() is None
    assert peer.dropped() == {DropReason.UDP_NO_LISTENER: 1}


@pytest.mark.parametrize("kind", KINDS)
def test_connected_endpoint_gets_econnrefused_once_from_port_unreachable(kind: LinkKind) -> None:
    net = hosts(kind)
    client = net.a.udp.open()
    client.connect((B_IP, 4000))  # nothing listens there on b
    client.send(b"knock", net.now)
    net.sim.run_for(0.1)
    assert net.b.counters.drops[DropReason.UDP_NO_LISTENER] == 1
    assert client.error == errno.ECONNREFUSED
    assert client.take_error() == errno.ECONNREFUSED
    assert client.take_error() == 0
    assert net.a.counters.counters["udp.icmp_errors"] == 1


def test_unconnected_endpoint_ignores_icmp_errors() -> None:
    net = hosts()
    client = net.a.udp.open()
    client.send_to(b"knock", (B_IP, 4000), net.now)
    net.sim.run_for(0.1)
    assert client.error == 0
    assert net.a.counters.drops[DropReason.UDP_ICMP_NO_ENDPOINT] == 1


def _error_about(
    endpoint_port: int, code: int, kind: int = icmpv4.DESTINATION_UNREACHABLE
) -> IPv4Packet:
    original = udp_packet(STACK_IP, PEER_IP, endpoint_port, 53, b"query")
    quote = original.build()[:28]
    message = ICMPv4Message(kind, code, 0, quote)
    return IPv4Packet(PEER_IP, STACK_IP, PROTO_ICMP, message.build())


@pytest.mark.parametrize(
    ("kind", "code", "expected"),
    [
        (icmpv4.DESTINATION_UNREACHABLE, icmpv4.PORT_UNREACHABLE, errno.ECONNREFUSED),
        (icmpv4.DESTINATION_UNREACHABLE, icmpv4.PROTOCOL_UNREACHABLE, errno.ECONNREFUSED),
        (icmpv4.DESTINATION_UNREACHABLE, icmpv4.HOST_UNREACHABLE, errno.EHOSTUNREACH),
        (icmpv4.DESTINATION_UNREACHABLE, icmpv4.NET_UNREACHABLE, errno.ENETUNREACH),
        (icmpv4.TIME_EXCEEDED, icmpv4.TTL_EXCEEDED, errno.EHOSTUNREACH),
        (icmpv4.DESTINATION_UNREACHABLE, icmpv4.FRAGMENTATION_NEEDED, 0),
    ],
)
def test_icmp_errors_map_to_errno_on_a_connected_endpoint(
    kind: int, code: int, expected: int
) -> None:
    peer = Peer()
    endpoint = peer.stack.udp.open(0, 4000)
    endpoint.connect((PEER_IP, 53))
    peer.peer_sends_packet(_error_about(4000, code, kind))
    assert endpoint.error == expected


def test_icmp_error_about_another_peer_is_not_ours() -> None:
    peer = Peer()
    endpoint = peer.stack.udp.open(0, 4000)
    endpoint.connect((PEER_IP, 5353))  # the quoted datagram went to port 53
    peer.peer_sends_packet(_error_about(4000, icmpv4.PORT_UNREACHABLE))
    assert endpoint.error == 0
    assert peer.dropped() == {DropReason.UDP_ICMP_NO_ENDPOINT: 1}


def test_reconnecting_clears_a_pending_error() -> None:
    peer = Peer()
    endpoint = peer.stack.udp.open(0, 4000)
    endpoint.connect((PEER_IP, 53))
    peer.peer_sends_packet(_error_about(4000, icmpv4.PORT_UNREACHABLE))
    assert endpoint.error == errno.ECONNREFUSED
    endpoint.connect((PEER_IP, 54))
    assert endpoint.error == 0
