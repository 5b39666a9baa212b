"""Fragments through the stack: reassembly of what the peer sends, fragmented replies, timeouts."""

from __future__ import annotations

import dataclasses
import random

from pystack.ip.fragments import FRAGMENT_OVERHEAD, ReassemblySettings, fragment
from pystack.stack import StackConfig
from pystack.stats import DropReason
from pystack.wire import icmpv4
from pystack.wire.icmpv4 import ICMPv4Message
from pystack.wire.ipv4 import PROTO_ICMP, IPv4Packet
from tests.helpers.frames import (
    PEER_IP,
    STACK_IP,
    datagram,
    echo_request,
    piece,
    read_icmp,
    reassemble,
)
from tests.ip.peer import STACK_CONFIG, Peer


def big_echo_fragments(data: bytes, identification: int = 500, mtu: int = 1500) -> list[IPv4Packet]:
    return fragment(echo_request(0x77, 1, data, identification=identification), mtu)


def test_fragmented_echo_request_gets_fragmented_reply() -> None:
    peer = Peer()
    data = bytes(random.Random(1).randrange(256) for _ in range(10_000))
    fragments = big_echo_fragments(data)
    random.Random(2).shuffle(fragments)
    for part in fragments:
        peer.peer_sends_packet(part)
    sent = peer.sent_packets()
    assert len(sent) == len(fragments)
    assert all(p.total_length <= 1500 for p in sent)
    assert len({p.identification for p in sent}) == 1
    [reply] = reassemble(sent)
    message = read_icmp(reply)
    assert (message.type, message.identifier, message.payload) == (icmpv4.ECHO_REPLY, 0x77, data)
    assert peer.counters["ipv4.fragments_sent"] == len(sent)
    assert peer.stack.ip.reassembler.memory == 0


def test_stack_reply_to_duplicated_fragments_is_sent_once() -> None:
    peer = Peer()
    fragments = big_echo_fragments(bytes(5000))
    for part in fragments[:-1]:
        peer.peer_sends_packet(part)
        peer.peer_sends_packet(part)
    peer.peer_sends_packet(fragments[-1])
    assert len(reassemble(peer.sent_packets())) == 1
    assert peer.drops[DropReason.FRAGMENT_DUPLICATE] == len(fragments) - 1


def test_stack_overlapping_fragments_get_no_reply() -> None:
    peer = Peer()
    fragments = big_echo_fragments(bytes(5000))
    overlapping = fragments[1]._replace(fragment_offset=fragments[1].fragment_offset - 8)
    for part in [fragments[0], overlapping, *fragments[1:]]:
        peer.peer_sends_packet(part)
    peer.expect_nothing()
    assert peer.drops[DropReason.FRAGMENT_OVERLAP] == 1


def test_stack_ping_of_death_is_dropped() -> None:
    peer = Peer()
    # Parses (offset + data <= 65535) but the datagram with its header would be 65548 bytes.
    last = piece(65_512, bytes(16), False)
    peer.peer_sends_packet(last)
    assert peer.dropped() == {DropReason.FRAGMENT_TOO_LARGE: 1}
    # Past 65535 even without the header, the codec refuses it already.
    peer.peer_sends_packet(piece(65_528, bytes(16), False))
    assert peer.malformed == {"ipv4.fragment_too_large": 1}
    peer.expect_nothing()


def test_stack_reassembly_timeout_sends_time_exceeded_when_first_fragment_arrived() -> None:
    peer = Peer(
        config=dataclasses.replace(STACK_CONFIG, reassembly=ReassemblySettings(timeout=30.0))
    )
    fragments = big_echo_fragments(bytes(3000))
    peer.at(1.0)
    peer.peer_sends_packet(fragments[0])
    peer.peer_sends_packet(fragments[1])
    assert peer.stack.next_deadline() == 31.0
    peer.at(30.9)
    peer.expect_nothing()
    peer.at(31.0)
    [error] = peer.sent_packets()
    assert (error.src, error.dst) == (STACK_IP, PEER_IP)
    message = read_icmp(error)
    assert (message.type, message.code) == (icmpv4.TIME_EXCEEDED, icmpv4.REASSEMBLY_TIME_EXCEEDED)
    first_bytes = fragments[0].build()
    assert message.payload == first_bytes[: len(message.payload)]
    assert len(message.payload) >= 28  # the first fragment's header plus 8 bytes
    assert peer.drops[DropReason.FRAGMENT_TIMEOUT] == 1
    assert peer.stack.ip.reassembler.memory == 0
    assert peer.stack.next_deadline() is None


def test_stack_reassembly_timeout_without_first_fragment_sends_nothing() -> None:
    peer = Peer()
    fragments = big_echo_fragments(bytes(3000))
    peer.peer_sends_packet(fragments[1])
    peer.peer_sends_packet(fragments[2])
    peer.at(30.0)
    peer.expect_nothing()
    assert peer.dropped() == {DropReason.FRAGMENT_TIMEOUT: 1}


def test_stack_no_time_exceeded_for_broadcast_fragments() -> None:
    peer = Peer()
    first = fragment(echo_request(dst=0xFFFFFFFF, data=bytes(3000)), 1500)[0]
    peer.peer_sends_packet(first)
    peer.at(30.0)
    peer.expect_nothing()
    assert peer.dropped() == {DropReason.FRAGMENT_TIMEOUT: 1}


def test_stack_fragmented_unknown_protocol_gets_protocol_unreachable_once() -> None:
    peer = Peer()
    original = datagram(4000)
    for part in fragment(original, 1500):
        peer.peer_sends_packet(part)
    [error] = peer.sent_packets()
    message = read_icmp(error)
    assert (message.type, message.code) == (3, 2)
    assert message.quoted_packet().identification == original.identification


def test_stack_reassembles_interleaved_datagrams_from_two_sources() -> None:
    peer = Peer()
    other = 0x0A000005  # 10.0.0.5
    a = big_echo_fragments(b"a" * 3000, identification=9)
    b = [p._replace(src=other) for p in big_echo_fragments(b"b" * 3000, identification=9)]
    for pair in zip(a, b, strict=True):
        for part in pair:
            peer.peer_sends_packet(part)
    replies = reassemble(peer.sent_packets())
    assert sorted((r.dst, read_icmp(r).payload[:1]) for r in replies) == [
        (PEER_IP, b"a"),
        (other, b"b"),
    ]


def test_stack_memory_limit_from_config() -> None:
    config = StackConfig(
        address="10.0.0.2/24",
        reassembly=ReassemblySettings(memory_limit=2 * (1480 + FRAGMENT_OVERHEAD)),
    )
    peer = Peer(config=config)
    for identification in range(3):
        peer.peer_sends_packet(big_echo_fragments(bytes(3000), identification)[0])
    assert peer.dropped() == {DropReason.FRAGMENT_MEMORY_LIMIT: 1}
    assert peer.stack.ip.reassembler.memory == 2 * (1480 + FRAGMENT_OVERHEAD)


def test_stack_answers_icmp_echo_assembled_from_tiny_fragments() -> None:
    peer = Peer()
    request = echo_request(1, 2, b"x" * 64)
    fragments = fragment(request, 28)  # 8 bytes per fragment
    assert len(fragments) == 9
    for part in fragments:
        peer.peer_sends_packet(part)
    [reply] = peer.sent_packets()
    assert ICMPv4Message.parse(reply.payload).payload == b"x" * 64
    assert reply.protocol == PROTO_ICMP


def test_stack_survives_first_fragment_options_pushing_the_datagram_over_65535() -> None:
    peer = Peer(mtu=65_535)  # so the big middle fragment fits the link
    for part in (
        piece(65_512, bytes(3), False),
        piece(8, bytes(65_504), True),
        piece(0, bytes(8), True, options=bytes([0x94, 4, 0, 0])),
    ):
        peer.peer_sends_packet(part)
    peer.expect_nothing()
    assert peer.dropped() == {DropReason.FRAGMENT_TOO_LARGE: 1}
