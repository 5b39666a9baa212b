"""IPv4 input and output through the stack: every drop with its named reason, acceptance, routing."""

from __future__ import annotations

import dataclasses
import random

import pytest

from pystack.ip.fragments import fragment
from pystack.ip.interface import ALL_HOSTS
from pystack.ip.routes import LINK, LOOPBACK, RoutingTable
from pystack.link.base import LinkKind
from pystack.stats import DropReason
from pystack.wire import icmpv4
from pystack.wire.addresses import BROADCAST_MAC, LIMITED_BROADCAST, ip_from_str
from pystack.wire.ethernet import ETHERTYPE_IPV4, ETHERTYPE_IPV6
from pystack.wire.ipv4 import PROTO_ICMP, IPv4Packet
from tests.helpers.frames import (
    OTHER_IP,
    OTHER_MAC,
    PEER_IP,
    PEER_MAC,
    PROTO_UNKNOWN,
    STACK_IP,
    STACK_MAC,
    SUBNET_BROADCAST,
    arp_frame,
    arp_reply,
    echo_request,
    ethernet,
    ethernet_ipv4,
    ipv4,
    read_arp,
    read_icmp,
)
from tests.ip.peer import STACK_CONFIG, Peer

BOTH_KINDS = pytest.mark.parametrize("kind", [LinkKind.IP, LinkKind.ETHERNET])


class Recorder:
    """An upper-protocol handler that records what it was given."""

    def __init__(self) -> None:
        self.delivered: list[tuple[IPv4Packet, bool]] = []

    def __call__(self, packet: IPv4Packet, now: float, broadcast: bool) -> None:
        self.delivered.append((packet, broadcast))


def with_recorder(peer: Peer, protocol: int = PROTO_UNKNOWN) -> Recorder:
    recorder = Recorder()
    peer.stack.ip.handlers[protocol] = recorder
    return recorder


# malformed input --------------------------------------------------------------------------------
@BOTH_KINDS
def test_bad_header_checksum_is_dropped_and_counted(kind: LinkKind) -> None:
    peer = Peer(kind)
    good = echo_request().build()
    bad = good[:10] + bytes([good[10] ^ 0xFF]) + good[11:]
    peer.peer_sends_packet(bad)
    peer.expect_nothing()
    assert peer.drops[DropReason.IPV4_BAD_CHECKSUM] == 1
    assert peer.malformed["ipv4.bad_checksum"] == 1
    assert peer.dropped() == {DropReason.IPV4_BAD_CHECKSUM: 1}


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (bytes.fromhex("4500001c00000000"), "ipv4.truncated"),  # shorter than a header
        (echo_request().build()[:-1], "ipv4.truncated"),  # total length beyond the data
        (b"\x65" + echo_request().build()[1:], "ipv4.bad_version"),
        (b"\x44" + echo_request().build()[1:], "ipv4.bad_header_length"),
    ],
    ids=["short", "total-length", "version-6", "ihl-4"],
)
def test_malformed_header_is_dropped_with_its_reason(data: bytes, reason: str) -> None:
    peer = Peer()
    peer.peer_sends_packet(data)
    peer.expect_nothing()
    assert peer.malformed == {reason: 1}
    assert peer.dropped() == {DropReason.IPV4_MALFORMED: 1}


def test_ethernet_padding_after_the_packet_is_ignored() -> None:
    peer = Peer(LinkKind.ETHERNET)
    peer.peer_sends(arp_frame(arp_reply(), dst=STACK_MAC))
    frame = ethernet_ipv4(echo_request(data=b""))
    peer.peer_sends(frame + bytes(60 - len(frame)))
    [reply] = peer.sent_packets()
    assert read_icmp(reply).payload == b""


# acceptance -------------------------------------------------------------------------------------
@BOTH_KINDS
def test_packet_for_another_address_is_dropped(kind: LinkKind) -> None:
    peer = Peer(kind)
    peer.peer_sends_packet(echo_request(dst=OTHER_IP))
    peer.expect_nothing()
    assert peer.dropped() == {DropReason.IPV4_NOT_FOR_US: 1}


@pytest.mark.parametrize(
    "source",
    [
        "224.0.0.5",
        "239.1.2.3",
        "240.0.0.1",
        "127.0.0.1",
        "10.0.0.2",
        "255.255.255.255",
        "10.0.0.255",
    ],
    ids=["multicast", "multicast-239", "class-e", "loopback", "our-own", "broadcast", "directed"],
)
def test_martian_source_is_dropped(source: str) -> None:
    peer = Peer()
    peer.peer_sends_packet(echo_request(src=ip_from_str(source)))
    peer.expect_nothing()
    assert peer.dropped() == {DropReason.IPV4_MARTIAN_SOURCE: 1}


def test_zero_source_is_martian_unless_broadcast() -> None:
    peer = Peer()
    recorder = with_recorder(peer)
    peer.peer_sends_packet(ipv4(0, STACK_IP, PROTO_UNKNOWN, b"x"))
    assert peer.dropped() == {DropReason.IPV4_MARTIAN_SOURCE: 1}
    peer.peer_sends_packet(ipv4(0, LIMITED_BROADCAST, PROTO_UNKNOWN, b"dhcp-like"))
    assert [(p.payload, b) for p, b in recorder.delivered] == [(b"dhcp-like", True)]


@BOTH_KINDS
def test_loopback_destination_from_the_link_is_dropped(kind: LinkKind) -> None:
    peer = Peer(kind)
    peer.peer_sends_packet(echo_request(dst=ip_from_str("127.0.0.1")))
    peer.expect_nothing()
    assert peer.dropped() == {DropReason.IPV4_MARTIAN_DESTINATION: 1}


@pytest.mark.parametrize(
    "destination",
    ["10.0.0.255", "255.255.255.255", "224.0.0.1"],
    ids=["directed", "limited", "all-hosts"],
)
def test_broadcast_and_all_hosts_destinations_are_accepted(destination: str) -> None:
    peer = Peer()
    recorder = with_recorder(peer)
    peer.peer_sends_packet(ipv4(PEER_IP, ip_from_str(destination), PROTO_UNKNOWN, b"hello"))
    assert [(p.payload, b) for p, b in recorder.delivered] == [(b"hello", True)]
    assert peer.dropped() == {}


def test_unicast_to_us_is_delivered_not_as_broadcast() -> None:
    peer = Peer()
    recorder = with_recorder(peer)
    peer.peer_sends_packet(ipv4(PEER_IP, STACK_IP, PROTO_UNKNOWN, b"hello"))
    assert [(p.payload, b) for p, b in recorder.delivered] == [(b"hello", False)]


def test_other_multicast_group_is_not_for_us() -> None:
    peer = Peer()
    with_recorder(peer)
    peer.peer_sends_packet(ipv4(PEER_IP, ip_from_str("224.0.0.251"), PROTO_UNKNOWN, b"mdns"))
    assert peer.dropped() == {DropReason.IPV4_NOT_FOR_US: 1}


def test_ethernet_multicast_and_broadcast_frames_are_accepted() -> None:
    peer = Peer(LinkKind.ETHERNET)
    recorder = with_recorder(peer)
    all_hosts_mac = bytes.fromhex("01005e000001")
    peer.peer_sends_packet(ipv4(PEER_IP, ALL_HOSTS, PROTO_UNKNOWN, b"m"), dst=all_hosts_mac)
    peer.peer_sends_packet(ipv4(PEER_IP, SUBNET_BROADCAST, PROTO_UNKNOWN, b"b"), dst=BROADCAST_MAC)
    assert [p.payload for p, _ in recorder.delivered] == [b"m", b"b"]


# Ethernet ---------------------------------------------------------------------------------------
def test_ethernet_frame_for_another_mac_is_dropped() -> None:
    peer = Peer(LinkKind.ETHERNET)
    peer.peer_sends_packet(echo_request(), dst=OTHER_MAC)
    peer.expect_nothing()
    assert peer.dropped() == {DropReason.ETHERNET_NOT_FOR_US: 1}


def test_ethernet_frame_with_our_own_source_mac_is_dropped() -> None:
    peer = Peer(LinkKind.ETHERNET)
    peer.peer_sends_packet(echo_request(), src=STACK_MAC)
    peer.expect_nothing()
    assert peer.dropped() == {DropReason.ETHERNET_OWN_SOURCE: 1}


def test_ipv6_ethertype_is_dropped_as_unsupported() -> None:
    peer = Peer(LinkKind.ETHERNET)
    peer.peer_sends(ethernet(STACK_MAC, PEER_MAC, ETHERTYPE_IPV6, bytes(40)))
    peer.expect_nothing()
    assert peer.dropped() == {DropReason.ETHERTYPE_UNSUPPORTED: 1}


def test_short_ethernet_frame_is_malformed() -> None:
    peer = Peer(LinkKind.ETHERNET)
    peer.peer_sends(STACK_MAC + PEER_MAC)
    peer.expect_nothing()
    assert peer.dropped() == {DropReason.ETHERNET_MALFORMED: 1}
    assert peer.malformed == {"ethernet.truncated": 1}


def test_802_3_length_field_is_malformed() -> None:
    peer = Peer(LinkKind.ETHERNET)
    peer.peer_sends(STACK_MAC + PEER_MAC + (46).to_bytes(2, "big") + bytes(46))
    assert peer.dropped() == {DropReason.ETHERNET_MALFORMED: 1}
    assert peer.malformed == {"ethernet.not_ethertype": 1}


def test_malformed_ipv4_inside_ethernet_counts_ipv4_reason() -> None:
    peer = Peer(LinkKind.ETHERNET)
    peer.peer_sends(ethernet(STACK_MAC, PEER_MAC, ETHERTYPE_IPV4, b"\x45\x00"))
    assert peer.dropped() == {DropReason.IPV4_MALFORMED: 1}
    assert peer.malformed == {"ipv4.truncated": 1}


# protocol unreachable ---------------------------------------------------------------------------
@BOTH_KINDS
def test_unknown_protocol_gets_protocol_unreachable_quoting_header_and_8_bytes(
    kind: LinkKind,
) -> None:
    peer = Peer(kind)
    original = ipv4(PEER_IP, STACK_IP, PROTO_UNKNOWN, b"12345678", identification=4242)
    if kind is LinkKind.ETHERNET:
        peer.peer_sends(arp_frame(arp_reply(), dst=STACK_MAC))  # so the error need not wait
    peer.peer_sends_packet(original)
    [error] = peer.sent_packets()
    assert (error.src, error.dst, error.protocol) == (STACK_IP, PEER_IP, PROTO_ICMP)
    message = read_icmp(error)
    assert (message.type, message.code) == (
        icmpv4.DESTINATION_UNREACHABLE,
        icmpv4.PROTOCOL_UNREACHABLE,
    )
    assert message.payload == original.build()  # the header plus the first 8 bytes
    quoted = message.quoted_packet()
    assert (quoted.identification, quoted.protocol, quoted.payload) == (4242, 99, b"12345678")
    assert peer.dropped() == {DropReason.PROTOCOL_UNREACHABLE: 1}


def test_protocol_unreachable_quote_is_bounded_to_576_bytes() -> None:
    peer = Peer()
    original = ipv4(PEER_IP, STACK_IP, PROTO_UNKNOWN, bytes(range(256)) * 4)
    peer.peer_sends_packet(original)
    [error] = peer.sent_packets()
    assert error.total_length <= 576
    quote = read_icmp(error).payload
    assert len(quote) >= 28
    assert original.build().startswith(quote)


@pytest.mark.parametrize(
    "destination",
    ["10.0.0.255", "255.255.255.255", "224.0.0.1"],
    ids=["directed", "limited", "all-hosts"],
)
def test_no_icmp_error_for_broadcast_destined_packet(destination: str) -> None:
    peer = Peer()
    peer.peer_sends_packet(ipv4(PEER_IP, ip_from_str(destination), PROTO_UNKNOWN, bytes(8)))
    peer.expect_nothing()
    assert peer.dropped() == {DropReason.PROTOCOL_UNREACHABLE: 1}
    assert peer.counters["icmp.errors_suppressed"] == 1


def test_no_icmp_error_for_broadcast_source_from_zero() -> None:
    peer = Peer()
    peer.peer_sends_packet(ipv4(0, LIMITED_BROADCAST, PROTO_UNKNOWN, bytes(8)))
    peer.expect_nothing()
    assert peer.dropped() == {DropReason.PROTOCOL_UNREACHABLE: 1}


# output: TTL, DF, routes ------------------------------------------------------------------------
def test_replies_carry_default_ttl() -> None:
    peer = Peer(config=dataclasses.replace(STACK_CONFIG, default_ttl=99))
    peer.peer_sends_packet(echo_request(ttl=3))
    peer.peer_sends_packet(ipv4(PEER_IP, STACK_IP, PROTO_UNKNOWN, bytes(8), ttl=1))
    echo, error = peer.sent_packets()
    assert read_icmp(echo).type == icmpv4.ECHO_REPLY
    assert read_icmp(error).type == icmpv4.DESTINATION_UNREACHABLE
    assert (echo.ttl, error.ttl) == (99, 99)


def test_outgoing_identifications_differ() -> None:
    peer = Peer()
    for sequence in range(5):
        peer.stack.ping(PEER_IP, 1, sequence, now=0.0)
    peer.poll()
    identifications = [p.identification for p in peer.sent_packets()]
    assert len(set(identifications)) == 5


@BOTH_KINDS
def test_dont_fragment_packet_bigger_than_mtu_is_dropped(kind: LinkKind) -> None:
    peer = Peer(kind, mtu=1000)
    if kind is LinkKind.ETHERNET:
        peer.peer_sends(arp_frame(arp_reply(), dst=STACK_MAC))
    sent = peer.stack.ip.send(PEER_IP, PROTO_UNKNOWN, bytes(1000), 0.0, dont_fragment=True)
    assert sent is False
    peer.poll()
    peer.expect_nothing()
    assert peer.dropped() == {DropReason.IPV4_FRAGMENTATION_NEEDED: 1}
    # Exactly the MTU still goes, unfragmented, DF kept.
    assert peer.stack.ip.send(PEER_IP, PROTO_UNKNOWN, bytes(980), 0.0, dont_fragment=True)
    peer.poll()
    [packet] = peer.sent_packets()
    assert packet.total_length == 1000 and packet.dont_fragment and not packet.is_fragment


def test_no_route_without_gateway_outside_the_subnet() -> None:
    peer = Peer(config=dataclasses.replace(STACK_CONFIG, gateway=None))
    assert peer.stack.ping("192.168.1.1", 1, 1, now=0.0) is False
    peer.poll()
    peer.expect_nothing()
    assert peer.dropped() == {DropReason.IPV4_NO_ROUTE: 1}


def test_echo_request_from_outside_the_subnet_without_gateway_cannot_be_answered() -> None:
    peer = Peer(config=dataclasses.replace(STACK_CONFIG, gateway=None))
    peer.peer_sends_packet(echo_request(src=ip_from_str("192.168.1.1")))
    peer.expect_nothing()
    assert peer.dropped() == {DropReason.IPV4_NO_ROUTE: 1}


def test_routing_table_longest_prefix_match() -> None:
    table = RoutingTable()
    table.add(0, 0, ip_from_str("10.0.0.1"), LINK)
    table.add(ip_from_str("10.0.0.0"), 8, ip_from_str("10.0.0.8"), LINK)
    table.add(ip_from_str("10.1.0.0"), 16, ip_from_str("10.0.0.16"), LINK)
    table.add(ip_from_str("10.1.2.0"), 24, None, LINK)
    table.add(ip_from_str("10.1.2.3"), 32, None, LOOPBACK)

    def next_hop(destination: str) -> str:
        route = table.lookup(ip_from_str(destination))
        assert route is not None
        hop = route.next_hop(ip_from_str(destination))
        return f"{hop >> 24}.{hop >> 16 & 255}.{hop >> 8 & 255}.{hop & 255} {route.device}"

    assert next_hop("8.8.8.8") == "10.0.0.1 link"
    assert next_hop("10.200.0.1") == "10.0.0.8 link"
    assert next_hop("10.1.200.1") == "10.0.0.16 link"
    assert next_hop("10.1.2.77") == "10.1.2.77 link"
    assert next_hop("10.1.2.3") == "10.1.2.3 loopback"
    # The order of adding does not matter, and re-adding a prefix replaces it.
    table.add(ip_from_str("10.0.0.0"), 8, ip_from_str("10.0.0.9"), LINK)
    assert next_hop("10.200.0.1") == "10.0.0.9 link"
    table.remove(ip_from_str("10.1.0.0"), 16)
    assert next_hop("10.1.200.1") == "10.0.0.9 link"
    empty = RoutingTable()
    assert empty.lookup(ip_from_str("1.2.3.4")) is None


def test_stack_routes_through_the_gateway_of_the_longest_prefix() -> None:
    peer = Peer(LinkKind.ETHERNET, dataclasses.replace(STACK_CONFIG, gateway="10.0.0.1"))
    peer.stack.ip.routes.add(ip_from_str("192.168.0.0"), 16, ip_from_str("10.0.0.254"))
    peer.stack.ping("192.168.5.5", 1, 1, now=0.0)
    peer.stack.ping("8.8.8.8", 1, 2, now=0.0)
    peer.stack.ping("10.0.0.3", 1, 3, now=0.0)
    peer.poll()
    targets = [arp.target_ip for _, arp in peer.sent_arp()]
    assert targets == [ip_from_str("10.0.0.254"), PEER_IP, OTHER_IP]
    # Once the gateway answers, the packet for 8.8.8.8 goes to its MAC, addressed to 8.8.8.8.
    peer.peer_sends(arp_frame(arp_reply(), dst=STACK_MAC))
    [packet] = peer.sent_packets(dst=PEER_MAC)
    assert packet.dst == ip_from_str("8.8.8.8")
    assert read_icmp(packet).sequence == 2


def test_broadcast_and_multicast_output_use_broadcast_and_group_macs() -> None:
    peer = Peer(LinkKind.ETHERNET)
    peer.stack.ip.send(SUBNET_BROADCAST, PROTO_UNKNOWN, b"a", 0.0)
    peer.stack.ip.send(LIMITED_BROADCAST, PROTO_UNKNOWN, b"b", 0.0)
    peer.stack.ip.send(ip_from_str("239.1.2.3"), PROTO_UNKNOWN, b"c", 0.0)
    peer.poll()
    frames = peer.sent_frames()
    assert [f[:6] for f in frames] == [BROADCAST_MAC, BROADCAST_MAC, bytes.fromhex("01005e010203")]
    assert not any(f[12:14] == b"\x08\x06" for f in frames)  # no ARP for these
    with pytest.raises(AssertionError):
        read_arp(frames[0])


# robustness -------------------------------------------------------------------------------------
@BOTH_KINDS
def test_mutated_frames_never_raise(kind: LinkKind) -> None:
    """Random bit flips, truncations and extensions of valid frames: dropped or handled, no crash."""
    peer = Peer(kind)
    if kind is LinkKind.ETHERNET:
        peer.peer_sends(arp_frame(arp_reply(), dst=STACK_MAC))
    seeds = [
        echo_request(data=bytes(40)),
        ipv4(PEER_IP, STACK_IP, PROTO_UNKNOWN, bytes(16), options=bytes([0x94, 4, 0, 0])),
        *fragment(echo_request(data=bytes(3000)), 1500),
    ]
    frames = [ethernet_ipv4(p) if kind is LinkKind.ETHERNET else p.build() for p in seeds]
    if kind is LinkKind.ETHERNET:
        frames.append(arp_frame(arp_reply()))
    rng = random.Random(1234)
    for _ in range(3000):
        frame = bytearray(rng.choice(frames))
        for _ in range(rng.randrange(1, 4)):
            frame[rng.randrange(len(frame))] ^= 1 << rng.randrange(8)
        if rng.random() < 0.2:
            frame = frame[: rng.randrange(len(frame))]
        peer.peer_sends(bytes(frame))
        peer.sent_frames()
    peer.at(100.0)
    assert peer.stack.ip.reassembler.memory == 0
