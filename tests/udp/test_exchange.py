"""Datagrams between two stacks and between a stack and a scripted peer: addresses, checksums,
the receive queue (depth 4, tail drop, peek), the 65535 cut, fragmentation, connect and send."""

from __future__ import annotations

import errno
import random

import pytest

from pystack.link.base import LinkKind
from pystack.stats import DropReason
from pystack.udp.layer import MAX_PAYLOAD
from pystack.wire.ipv4 import PROTO_UDP
from tests.helpers.frames import PEER_IP, STACK_IP
from tests.ip.peer import Peer
from tests.sim.topology import A_IP, B_IP
from tests.udp.helpers import KINDS, hosts, read_udp, udp_packet


@pytest.mark.parametrize("kind", KINDS)
def test_datagram_and_reply_between_two_stacks(kind: LinkKind) -> None:
    net = hosts(kind)
    server = net.b.udp.open(0, 5000)
    client = net.a.udp.open()
    assert client.send_to(b"hello", (B_IP, 5000), net.now) == 5
    net.sim.run_for(0.1)
    assert server.receive() == (b"hello", (A_IP, client.port))
    server.send_to(b"world", (A_IP, client.port), net.now)
    net.sim.run_for(0.1)
    assert client.receive() == (b"world", (B_IP, 5000))
    assert client.receive() is None
    assert net.a.counters.counters["udp.delivered"] == 1
    assert not net.a.counters.drops and not net.b.counters.drops


def test_sent_datagram_carries_a_correct_checksum_and_our_addresses() -> None:
    peer = Peer()
    endpoint = peer.stack.udp.open(0, 4000)
    endpoint.send_to(b"checked", (PEER_IP, 53), peer.now)
    peer.poll()  # frames leave at the next poll
    [packet] = peer.sent_packets()
    assert (packet.src, packet.dst, packet.protocol, packet.ttl) == (STACK_IP, PEER_IP, 17, 64)
    datagram = read_udp(packet)  # parse verifies the checksum
    assert (datagram.src_port, datagram.dst_port, datagram.payload) == (4000, 53, b"checked")
    assert packet.payload[6:8] != b"\x00\x00"


def test_sending_from_a_bound_address_uses_it_and_ttl_can_be_set() -> None:
    peer = Peer()
    endpoint = peer.stack.udp.open(STACK_IP, 4000)
    endpoint.ttl = 9
    endpoint.send_to(b"x", (PEER_IP, 53), peer.now)
    peer.poll()
    [packet] = peer.sent_packets()
    assert (packet.src, packet.ttl) == (STACK_IP, 9)


def test_bound_to_an_address_the_interface_does_not_own_cannot_send_out() -> None:
    peer = Peer()
    endpoint = peer.stack.udp.open(0x0A000063, 4000)  # accepted at bind, as lwIP
    with pytest.raises(OSError) as caught:
        endpoint.send_to(b"x", (PEER_IP, 53), peer.now)
    assert caught.value.errno == errno.EHOSTUNREACH
    peer.expect_nothing()


def test_bad_checksum_is_dropped_and_counted() -> None:
    peer = Peer()
    endpoint = peer.stack.udp.open(0, 4000)
    good = udp_packet(PEER_IP, STACK_IP, 1234, 4000, b"data")
    checksum = int.from_bytes(good.payload[6:8], "big")
    peer.peer_sends_packet(udp_packet(PEER_IP, STACK_IP, 1234, 4000, b"data", checksum ^ 1))
    assert endpoint.pending == 0
    assert peer.dropped() == {DropReason.UDP_BAD_CHECKSUM: 1}
    assert peer.malformed["udp.bad_checksum"] == 1
    peer.expect_nothing()  # no ICMP error about a damaged datagram


def test_zero_checksum_means_none_and_is_accepted() -> None:
    peer = Peer()
    endpoint = peer.stack.udp.open(0, 4000)
    peer.peer_sends_packet(udp_packet(PEER_IP, STACK_IP, 1234, 4000, b"unchecked", checksum=0))
    assert endpoint.receive() == (b"unchecked", (PEER_IP, 1234))


def test_truncated_datagram_is_malformed() -> None:
    peer = Peer()
    peer.stack.udp.open(0, 4000)
    packet = udp_packet(PEER_IP, STACK_IP, 1234, 4000, b"data")
    peer.peer_sends_packet(packet._replace(payload=packet.payload[:6]))
    assert peer.dropped() == {DropReason.UDP_MALFORMED: 1}
    assert peer.malformed["udp.truncated"] == 1


def test_queue_holds_four_and_drops_the_newest() -> None:
    peer = Peer()
    endpoint = peer.stack.udp.open(0, 4000)
    for number in range(6):
        peer.peer_sends_packet(udp_packet(PEER_IP, STACK_IP, 1234, 4000, bytes([number])))
    assert endpoint.pending == 4
    assert peer.drops[DropReason.UDP_QUEUE_FULL] == 2
    assert [endpoint.receive() for _ in range(5)] == [
        (bytes([n]), (PEER_IP, 1234)) for n in range(4)
    ] + [None]


def test_queue_limit_can_be_raised_and_lowered() -> None:
    peer = Peer()
    endpoint = peer.stack.udp.open(0, 4000)
    endpoint.set_queue_limit(10)
    for number in range(10):
        peer.peer_sends_packet(udp_packet(PEER_IP, STACK_IP, 1234, 4000, bytes([number])))
    assert endpoint.pending == 10
    endpoint.set_queue_limit(2)  # what is queued stays; newcomers wait for room
    peer.peer_sends_packet(udp_packet(PEER_IP, STACK_IP, 1234, 4000, b"late"))
    assert endpoint.pending == 10 and peer.drops[DropReason.UDP_QUEUE_FULL] == 1


def test_peek_keeps_the_datagram_and_its_source() -> None:
    peer = Peer()
    endpoint = peer.stack.udp.open(0, 4000)
    peer.peer_sends_packet(udp_packet(PEER_IP, STACK_IP, 1111, 4000, b"first"))
    peer.peer_sends_packet(udp_packet(PEER_IP, STACK_IP, 2222, 4000, b"second"))
    assert endpoint.receive(peek=True) == (b"first", (PEER_IP, 1111))
    assert endpoint.receive(peek=True) == (b"first", (PEER_IP, 1111))
    assert endpoint.pending == 2
    assert endpoint.receive() == (b"first", (PEER_IP, 1111))
    assert endpoint.receive(peek=True) == (b"second", (PEER_IP, 2222))


def test_empty_datagram_is_delivered() -> None:
    net = hosts()
    server = net.b.udp.open(0, 5000)
    client = net.a.udp.open()
    client.send_to(b"", (B_IP, 5000), net.now)
    net.sim.run_for(0.1)
    assert server.receive() == (b"", (A_IP, client.port))


@pytest.mark.parametrize("kind", KINDS)
def test_20000_byte_datagram_is_fragmented_and_reassembled(kind: LinkKind) -> None:
    net = hosts(kind)
    server = net.b.udp.open(0, 5000)
    data = random.Random(20000).randbytes(20000)
    net.a.udp.open().send_to(data, (B_IP, 5000), net.now)
    net.sim.run_for(0.1)
    received = server.receive()
    assert received is not None and received[0] == data
    assert net.a.counters.counters["ipv4.fragments_sent"] == 14  # 20008 bytes in 1480-byte pieces


@pytest.mark.parametrize("size", [MAX_PAYLOAD + 1, 65535, 70000])
def test_data_one_ipv4_packet_cannot_carry_is_refused_with_enomem_and_nothing_sent(
    size: int,
) -> None:
    """lwIP's pbuf_alloc fails for such a datagram (modlwip: ENOMEM); nothing may leave, and
    no length is reported for data that was not sent."""
    net = hosts()
    server = net.b.udp.open(0, 5000)
    data = random.Random(7).randbytes(size)
    with pytest.raises(OSError) as caught:
        net.a.udp.open().send_to(data, (B_IP, 5000), net.now)
    assert caught.value.errno == errno.ENOMEM
    net.sim.run_for(0.1)
    assert server.receive() is None
    assert net.a.counters.counters["udp.send_too_large"] == 1
    assert net.a.counters.counters["udp.sent"] == 0


def test_largest_datagram_goes_whole() -> None:
    net = hosts()
    server = net.b.udp.open(0, 5000)
    data = random.Random(8).randbytes(MAX_PAYLOAD)
    client = net.a.udp.open()
    assert client.send_to(data, (B_IP, 5000), net.now) == MAX_PAYLOAD
    net.sim.run_for(0.1)
    assert server.receive() == (data, (A_IP, client.port))
    assert net.a.counters.counters["udp.send_too_large"] == 0


def test_send_needs_connect_and_connect_sets_the_default_destination() -> None:
    net = hosts()
    server = net.b.udp.open(0, 5000)
    client = net.a.udp.open()
    with pytest.raises(OSError) as caught:
        client.send(b"x", net.now)
    assert caught.value.errno == errno.EINVAL
    client.connect((B_IP, 5000))
    assert client.remote == (B_IP, 5000)
    assert client.send(b"via connect", net.now) == 11
    net.sim.run_for(0.1)
    assert server.receive() == (b"via connect", (A_IP, client.port))
    client.connect((0, 0))
    assert client.remote is None
    with pytest.raises(OSError):
        client.send(b"x", net.now)


def test_no_route_raises_ehostunreach() -> None:
    net = hosts()  # no gateway: only 10.0.0.0/24, loopback, broadcast and multicast
    endpoint = net.a.udp.open()
    with pytest.raises(OSError) as caught:
        endpoint.send_to(b"x", (0x08080808, 53), net.now)
    assert caught.value.errno == errno.EHOSTUNREACH
    assert net.a.counters.counters["udp.send_no_route"] == 1


def test_destination_port_zero_is_invalid() -> None:
    net = hosts()
    with pytest.raises(OSError) as caught:
        net.a.udp.open().send_to(b"x", (B_IP, 0), net.now)
    assert caught.value.errno == errno.EINVAL


def test_source_port_zero_is_accepted() -> None:
    peer = Peer()
    endpoint = peer.stack.udp.open(0, 4000)
    peer.peer_sends_packet(udp_packet(PEER_IP, STACK_IP, 0, 4000, b"anonymous"))
    assert endpoint.receive() == (b"anonymous", (PEER_IP, 0))


def test_unicast_prefers_the_specific_address_then_the_newest() -> None:
    peer = Peer()
    udp = peer.stack.udp
    wildcard = udp.open(0, 4000, reuse=True)
    specific = udp.open(STACK_IP, 4000, reuse=True)
    newer_wildcard = udp.open(0, 4000, reuse=True)
    peer.peer_sends_packet(udp_packet(PEER_IP, STACK_IP, 1, 4000, b"one"))
    assert (wildcard.pending, specific.pending, newer_wildcard.pending) == (0, 1, 0)
    specific.close()
    peer.peer_sends_packet(udp_packet(PEER_IP, STACK_IP, 1, 4000, b"two"))
    assert (wildcard.pending, newer_wildcard.pending) == (0, 1)


def test_a_connected_endpoint_wins_for_its_peer() -> None:
    peer = Peer()
    udp = peer.stack.udp
    specific = udp.open(STACK_IP, 4000, reuse=True)
    connected = udp.open(0, 4000, reuse=True)
    connected.connect((PEER_IP, 1234))
    peer.peer_sends_packet(udp_packet(PEER_IP, STACK_IP, 1234, 4000, b"mine"))
    peer.peer_sends_packet(udp_packet(PEER_IP, STACK_IP, 9999, 4000, b"other"))
    assert connected.receive() == (b"mine", (PEER_IP, 1234))
    assert specific.receive() == (b"other", (PEER_IP, 9999))


def test_ip_datagram_counters() -> None:
    peer = Peer()
    endpoint = peer.stack.udp.open(0, 4000)
    endpoint.send_to(b"x", (PEER_IP, 53), peer.now)
    assert peer.counters["udp.sent"] == 1
    peer.poll()
    [packet] = peer.sent_packets()
    assert packet.protocol == PROTO_UDP
