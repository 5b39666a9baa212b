"""ARP through the stack: replies, learning, the pending queue, retries, the neighbour life cycle."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from pystack.ip.arp import ARPSettings, NeighbourState
from pystack.link.base import LinkKind
from pystack.stats import DropReason
from pystack.wire.addresses import BROADCAST_MAC, ZERO_MAC, ip_from_str
from pystack.wire.arp import OP_REPLY, OP_REQUEST
from pystack.wire.ethernet import ETHERTYPE_ARP
from tests.helpers.frames import (
    OTHER_IP,
    OTHER_MAC,
    PEER_IP,
    PEER_MAC,
    STACK_IP,
    STACK_MAC,
    arp_frame,
    arp_reply,
    arp_request,
    is_arp,
    read_arp,
    read_icmp,
    read_ipv4,
    reassemble,
)
from tests.ip.peer import STACK_CONFIG, Peer


def ethernet_peer(arp: ARPSettings | None = None, **fields: Any) -> Peer:
    if arp is not None:
        fields["arp"] = arp
    return Peer(LinkKind.ETHERNET, dataclasses.replace(STACK_CONFIG, **fields))


def resolve(peer: Peer, sender_ip: int = PEER_IP, sender_mac: bytes = PEER_MAC) -> None:
    """The neighbour answers for itself (a reply addressed to the stack)."""
    peer.peer_sends(arp_frame(arp_reply(sender_ip, sender_mac), dst=STACK_MAC))


def state_of(peer: Peer, address: int) -> NeighbourState | None:
    entry = peer.stack.ip.arp.entry(address)
    return None if entry is None else entry.state


# requests and replies ---------------------------------------------------------------------------
def test_arp_request_for_our_address_gets_reply_with_our_mac() -> None:
    peer = ethernet_peer()
    peer.peer_sends(arp_frame(arp_request(STACK_IP)))
    [(frame, arp)] = peer.sent_arp()
    assert (frame.dst, frame.src, frame.ethertype) == (PEER_MAC, STACK_MAC, ETHERTYPE_ARP)
    assert arp.operation == OP_REPLY
    assert (arp.sender_mac, arp.sender_ip) == (STACK_MAC, STACK_IP)
    assert (arp.target_mac, arp.target_ip) == (PEER_MAC, PEER_IP)
    assert peer.counters["arp.replies_sent"] == 1
    # RFC 826 merge: the requester is learned, so answering it needs no request of our own.
    assert state_of(peer, PEER_IP) is NeighbourState.REACHABLE


def test_arp_request_padded_to_60_bytes_gets_reply() -> None:
    peer = ethernet_peer()
    frame = arp_frame(arp_request(STACK_IP))
    peer.peer_sends(frame + bytes(60 - len(frame)))
    [(_, arp)] = peer.sent_arp()
    assert arp.operation == OP_REPLY


def test_arp_probe_for_our_address_is_answered_without_learning() -> None:
    # RFC 5227 2.1.1: a probe has sender IP 0.0.0.0; we defend our address with a reply.
    peer = ethernet_peer()
    peer.peer_sends(arp_frame(arp_request(STACK_IP, sender_ip=0)))
    [(frame, arp)] = peer.sent_arp()
    assert frame.dst == PEER_MAC
    assert (arp.operation, arp.sender_ip, arp.target_mac, arp.target_ip) == (
        OP_REPLY,
        STACK_IP,
        PEER_MAC,
        0,
    )
    assert peer.stack.ip.arp.entries() == []


def test_arp_request_for_another_address_gets_no_reply() -> None:
    peer = ethernet_peer()
    peer.peer_sends(arp_frame(arp_request(OTHER_IP)))
    peer.expect_nothing()
    assert peer.counters["arp.not_for_us"] == 1
    assert peer.counters["arp.replies_sent"] == 0
    assert state_of(peer, PEER_IP) is None  # not for us and unknown: not learned


def test_arp_request_for_another_address_refreshes_a_known_sender() -> None:
    peer = ethernet_peer()
    resolve(peer)
    peer.at(10.0)
    peer.peer_sends(arp_frame(arp_request(OTHER_IP, sender_mac=OTHER_MAC)))
    entry = peer.stack.ip.arp.entry(PEER_IP)
    assert entry is not None and entry.mac == OTHER_MAC
    assert peer.counters["arp.address_changed"] == 1


def test_ping_before_resolution_sends_broadcast_request() -> None:
    peer = ethernet_peer()
    peer.stack.ping(PEER_IP, 1, 1, b"x", now=0.0)
    peer.poll()
    [(frame, arp)] = peer.sent_arp()
    assert frame.dst == BROADCAST_MAC
    assert arp.operation == OP_REQUEST
    assert (arp.sender_mac, arp.sender_ip, arp.target_mac, arp.target_ip) == (
        STACK_MAC,
        STACK_IP,
        ZERO_MAC,
        PEER_IP,
    )
    assert state_of(peer, PEER_IP) is NeighbourState.INCOMPLETE


def test_arp_reply_learns_and_releases_queued_packets_in_order() -> None:
    peer = ethernet_peer()
    for sequence in range(3):
        peer.stack.ping(PEER_IP, 1, sequence, b"data%d" % sequence, now=0.0)
    peer.poll()
    assert [is_arp(f) for f in peer.sent_frames()] == [True]
    peer.at(0.5)
    resolve(peer)
    packets = peer.sent_packets(dst=PEER_MAC)
    assert [read_icmp(p).sequence for p in packets] == [0, 1, 2]
    assert [read_icmp(p).payload for p in packets] == [b"data0", b"data1", b"data2"]
    assert state_of(peer, PEER_IP) is NeighbourState.REACHABLE
    assert peer.counters["arp.pending_released"] == 3
    # Resolved: the next packet goes at once.
    peer.stack.ping(PEER_IP, 1, 3, b"", now=0.5)
    peer.poll()
    [packet] = peer.sent_packets()
    assert read_icmp(packet).sequence == 3


def test_big_datagram_waits_whole_and_is_fragmented_after_resolution() -> None:
    peer = ethernet_peer()
    data = bytes(range(256)) * 16  # 4096 bytes: three fragments at MTU 1500
    peer.stack.ping(PEER_IP, 9, 1, data, now=0.0)
    peer.poll()
    [(_, request)] = peer.sent_arp()
    assert request.target_ip == PEER_IP
    entry = peer.stack.ip.arp.entry(PEER_IP)
    assert entry is not None and len(entry.pending) == 1  # queued as one datagram
    assert entry.pending_bytes == 20 + 8 + len(data)
    resolve(peer)
    fragments = peer.sent_packets(dst=PEER_MAC)
    assert len(fragments) == 3
    assert all(f.total_length <= 1500 for f in fragments)
    assert [f.more_fragments for f in fragments] == [True, True, False]
    [whole] = reassemble(fragments)
    message = read_icmp(whole)
    assert (message.identifier, message.sequence, message.payload) == (9, 1, data)


# retries and giving up --------------------------------------------------------------------------
def test_arp_request_retries_at_retry_interval_then_gives_up() -> None:
    settings = ARPSettings(retry_interval=1.0, max_retries=3)
    peer = ethernet_peer(settings)
    peer.stack.ping(PEER_IP, 1, 1, b"a", now=0.0)
    peer.stack.ping(PEER_IP, 1, 2, b"b", now=0.0)
    peer.poll()
    assert len(peer.sent_arp()) == 1
    assert peer.stack.next_deadline() == 1.0
    peer.at(0.99)
    peer.expect_nothing()
    sent_at = []
    for when in (1.0, 1.5, 2.0, 2.5):
        peer.at(when)
        for _, arp in peer.sent_arp():
            assert arp.target_ip == PEER_IP and arp.operation == OP_REQUEST
            sent_at.append(when)
    assert sent_at == [1.0, 2.0]  # three requests in all: t=0, 1, 2
    assert peer.counters["arp.requests_sent"] == 3
    assert peer.drops[DropReason.ARP_RESOLUTION_FAILED] == 0
    peer.at(3.0)
    peer.expect_nothing()  # no fourth request: max_retries reached
    assert peer.drops[DropReason.ARP_RESOLUTION_FAILED] == 2  # one per queued packet
    assert state_of(peer, PEER_IP) is None
    assert peer.stack.next_deadline() is None


def test_after_giving_up_a_new_packet_starts_a_new_resolution() -> None:
    peer = ethernet_peer(ARPSettings(max_retries=1))
    peer.stack.ping(PEER_IP, 1, 1, now=0.0)
    peer.poll()
    peer.at(1.0)
    assert peer.drops[DropReason.ARP_RESOLUTION_FAILED] == 1
    peer.sent_frames()
    peer.stack.ping(PEER_IP, 1, 2, now=1.0)
    peer.poll()
    [(frame, arp)] = peer.sent_arp()
    assert frame.dst == BROADCAST_MAC and arp.target_ip == PEER_IP
    resolve(peer)
    [packet] = peer.sent_packets()
    assert read_icmp(packet).sequence == 2


# the pending queue ------------------------------------------------------------------------------
def test_pending_queue_over_count_drops_oldest() -> None:
    peer = ethernet_peer(ARPSettings(pending_limit=8))
    for sequence in range(11):
        peer.stack.ping(PEER_IP, 1, sequence, now=0.0)
    peer.poll()
    assert peer.drops[DropReason.ARP_PENDING_OVERFLOW] == 3
    peer.sent_frames()
    resolve(peer)
    assert [read_icmp(p).sequence for p in peer.sent_packets()] == list(range(3, 11))


def test_pending_queue_over_bytes_drops_oldest() -> None:
    peer = ethernet_peer(ARPSettings(pending_limit=100, pending_bytes=3000))
    for sequence in range(4):  # 1028 bytes each: three exceed 3000
        peer.stack.ping(PEER_IP, 1, sequence, bytes(1000), now=0.0)
    peer.poll()
    assert peer.drops[DropReason.ARP_PENDING_OVERFLOW] == 2
    entry = peer.stack.ip.arp.entry(PEER_IP)
    assert entry is not None and entry.pending_bytes == 2 * 1028
    peer.sent_frames()
    resolve(peer)
    assert [read_icmp(p).sequence for p in peer.sent_packets()] == [2, 3]


# the neighbour life cycle -----------------------------------------------------------------------
def test_reachable_becomes_stale_after_reachable_time() -> None:
    peer = ethernet_peer(ARPSettings(reachable_time=30.0))
    resolve(peer)
    assert peer.stack.next_deadline() == 30.0
    peer.at(29.9)
    assert state_of(peer, PEER_IP) is NeighbourState.REACHABLE
    peer.at(30.0)
    assert state_of(peer, PEER_IP) is NeighbourState.STALE
    peer.expect_nothing()  # going stale sends nothing


def test_stale_entry_use_sends_unicast_probe_and_keeps_sending() -> None:
    peer = ethernet_peer(ARPSettings(reachable_time=30.0))
    resolve(peer)
    peer.at(40.0)
    assert state_of(peer, PEER_IP) is NeighbourState.STALE
    peer.stack.ping(PEER_IP, 1, 1, b"still", now=40.0)
    peer.poll()
    frames = peer.sent_frames()
    probes = [read_arp(f) for f in frames if is_arp(f)]
    packets = [read_ipv4(f, True) for f in frames if not is_arp(f)]
    [(frame, probe)] = probes
    assert frame.dst == PEER_MAC  # RFC 1122 2.3.2.1: unicast to the cached address
    assert probe.operation == OP_REQUEST and probe.target_ip == PEER_IP
    [packet] = packets
    assert read_icmp(packet).payload == b"still"
    assert all(read_arp(f)[0].dst == PEER_MAC for f in frames if is_arp(f))
    assert state_of(peer, PEER_IP) is NeighbourState.PROBE
    # While probing, packets still go to the cached MAC at once.
    peer.stack.ping(PEER_IP, 1, 2, now=40.0)
    peer.poll()
    [packet] = peer.sent_packets(dst=PEER_MAC)
    assert read_icmp(packet).sequence == 2
    # The neighbour answers the probe: REACHABLE again.
    peer.at(40.2)
    resolve(peer)
    assert state_of(peer, PEER_IP) is NeighbourState.REACHABLE


def test_probe_without_reply_removes_entry() -> None:
    peer = ethernet_peer(ARPSettings(reachable_time=30.0, retry_interval=1.0, max_retries=3))
    resolve(peer)
    peer.at(30.0)
    peer.stack.ping(PEER_IP, 1, 1, now=30.0)
    peer.poll()
    peer.sent_frames()
    probes = 1
    for when in (31.0, 32.0):
        peer.at(when)
        [(frame, arp)] = peer.sent_arp()
        assert frame.dst == PEER_MAC and arp.target_ip == PEER_IP
        probes += 1
    assert probes == 3
    peer.at(33.0)
    peer.expect_nothing()
    assert state_of(peer, PEER_IP) is None
    assert peer.drops[DropReason.ARP_RESOLUTION_FAILED] == 0  # nothing was waiting
    # The next packet resolves from scratch, with a broadcast.
    peer.stack.ping(PEER_IP, 1, 2, now=33.0)
    peer.poll()
    [(frame, _)] = peer.sent_arp()
    assert frame.dst == BROADCAST_MAC


def test_unused_stale_entry_is_forgotten_after_stale_time() -> None:
    peer = ethernet_peer(ARPSettings(reachable_time=30.0, stale_time=60.0))
    resolve(peer)
    peer.at(30.0)
    peer.at(89.9)
    assert state_of(peer, PEER_IP) is NeighbourState.STALE
    peer.at(90.0)
    assert state_of(peer, PEER_IP) is None
    assert peer.counters["arp.expired"] == 1
    peer.expect_nothing()


def test_static_entry_never_changes() -> None:
    peer = ethernet_peer(static_arp=(("10.0.0.1", "02:00:00:00:00:01"),))
    assert state_of(peer, PEER_IP) is NeighbourState.STATIC
    assert peer.stack.next_deadline() is None
    # A reply and a request claiming another MAC for the static address change nothing.
    resolve(peer, PEER_IP, OTHER_MAC)
    peer.peer_sends(arp_frame(arp_request(STACK_IP, PEER_IP, OTHER_MAC)))
    peer.sent_frames()
    peer.at(10_000.0)
    entry = peer.stack.ip.arp.entry(PEER_IP)
    assert entry is not None
    assert (entry.state, entry.mac) == (NeighbourState.STATIC, PEER_MAC)
    # Packets go straight to the static MAC, no ARP request.
    peer.stack.ping(PEER_IP, 1, 1, now=10_000.0)
    peer.poll()
    [packet] = peer.sent_packets(dst=PEER_MAC)
    assert read_icmp(packet).sequence == 1


def test_gratuitous_arp_on_start() -> None:
    peer = Peer(LinkKind.ETHERNET, STACK_CONFIG, start=False)
    peer.poll()
    [(frame, arp)] = peer.sent_arp()
    assert (frame.dst, frame.src) == (BROADCAST_MAC, STACK_MAC)
    assert arp.operation == OP_REQUEST
    assert (arp.sender_mac, arp.sender_ip, arp.target_ip) == (STACK_MAC, STACK_IP, STACK_IP)
    assert peer.counters["arp.gratuitous_sent"] == 1
    peer.at(1.0)
    peer.expect_nothing()  # only once


def test_no_gratuitous_arp_when_disabled_or_on_ip_link() -> None:
    quiet = Peer(
        LinkKind.ETHERNET, dataclasses.replace(STACK_CONFIG, gratuitous_arp=False), start=False
    )
    quiet.poll()
    quiet.expect_nothing()
    tun = Peer(LinkKind.IP, STACK_CONFIG, start=False)
    tun.poll()
    tun.expect_nothing()


def test_our_own_gratuitous_arp_reflected_back_is_ignored() -> None:
    peer = Peer(LinkKind.ETHERNET, STACK_CONFIG, start=False)
    peer.poll()
    [announcement] = peer.sent_frames()
    peer.peer_sends(announcement)
    peer.expect_nothing()
    assert peer.counters["arp.address_conflicts"] == 0


@pytest.mark.parametrize("operation", ["request", "reply"])
def test_someone_claiming_our_address_is_counted_as_conflict(operation: str) -> None:
    peer = ethernet_peer()
    if operation == "request":
        claim = arp_request(OTHER_IP, sender_ip=STACK_IP, sender_mac=OTHER_MAC)
    else:
        claim = arp_reply(sender_ip=STACK_IP, sender_mac=OTHER_MAC, target_ip=PEER_IP)
    peer.peer_sends(arp_frame(claim))
    peer.expect_nothing()
    assert peer.counters["arp.address_conflicts"] == 1
    assert peer.drops[DropReason.ARP_BAD_SENDER] == 1
    assert state_of(peer, STACK_IP) is None


def test_arp_from_multicast_sender_mac_is_dropped() -> None:
    peer = ethernet_peer()
    peer.peer_sends(arp_frame(arp_request(STACK_IP, sender_mac=BROADCAST_MAC), src=PEER_MAC))
    peer.expect_nothing()
    assert peer.drops[DropReason.ARP_BAD_SENDER] == 1
    assert state_of(peer, PEER_IP) is None


def test_truncated_arp_is_dropped_as_malformed() -> None:
    peer = ethernet_peer()
    peer.peer_sends(arp_frame(arp_request(STACK_IP))[:30])
    peer.expect_nothing()
    assert peer.drops[DropReason.ARP_MALFORMED] == 1
    assert peer.malformed["arp.truncated"] == 1


# bounds -----------------------------------------------------------------------------------------
def test_full_cache_evicts_the_entry_closest_to_expiry() -> None:
    peer = ethernet_peer(ARPSettings(cache_limit=4))
    neighbours = [ip_from_str(f"10.0.0.{10 + i}") for i in range(5)]
    for i, address in enumerate(neighbours[:4]):
        peer.at(float(i))
        peer.peer_sends(arp_frame(arp_request(STACK_IP, address, bytes([2, 0, 0, 0, 1, i]))))
    peer.sent_frames()
    assert len(peer.stack.ip.arp.entries()) == 4
    peer.at(4.0)
    peer.peer_sends(arp_frame(arp_request(STACK_IP, neighbours[4], bytes([2, 0, 0, 0, 1, 4]))))
    assert len(peer.stack.ip.arp.entries()) == 4
    assert peer.counters["arp.evicted"] == 1
    assert state_of(peer, neighbours[0]) is None  # learned first, so expiring first
    assert all(state_of(peer, a) is NeighbourState.REACHABLE for a in neighbours[1:])
    [(_, reply)] = peer.sent_arp()
    assert reply.target_ip == neighbours[4]  # the newcomer was still answered


def test_static_entries_are_never_evicted() -> None:
    peer = ethernet_peer(
        ARPSettings(cache_limit=2),
        static_arp=(("10.0.0.1", "02:00:00:00:00:01"), ("10.0.0.3", "02:00:00:00:00:03")),
    )
    peer.peer_sends(arp_frame(arp_request(STACK_IP, ip_from_str("10.0.0.9"), OTHER_MAC)))
    assert state_of(peer, PEER_IP) is NeighbourState.STATIC
    assert state_of(peer, OTHER_IP) is NeighbourState.STATIC
    assert state_of(peer, ip_from_str("10.0.0.9")) is None
    # A packet to a new neighbour cannot get an entry either.
    peer.stack.ping("10.0.0.9", 1, 1, now=0.0)
    peer.poll()
    assert peer.drops[DropReason.ARP_CACHE_FULL] == 1


def test_incomplete_limit_drops_with_arp_cache_full() -> None:
    peer = ethernet_peer(ARPSettings(incomplete_limit=2))
    for last in (10, 11, 12):
        peer.stack.ping(f"10.0.0.{last}", 1, last, now=0.0)
    peer.poll()
    requests = [arp.target_ip for _, arp in peer.sent_arp()]
    assert requests == [ip_from_str("10.0.0.10"), ip_from_str("10.0.0.11")]
    assert peer.drops[DropReason.ARP_CACHE_FULL] == 1
    assert state_of(peer, ip_from_str("10.0.0.12")) is None
    # More packets for an address already being resolved still queue.
    peer.stack.ping("10.0.0.10", 1, 99, now=0.0)
    peer.poll()
    assert peer.drops[DropReason.ARP_CACHE_FULL] == 1
