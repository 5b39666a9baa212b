"""ICMP through the stack: echo, broadcast echo, the error rate limit, RFC 1122 suppression, loopback."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from pystack.ip.icmp import ICMPSettings
from pystack.link.base import LinkKind
from pystack.stats import DropReason
from pystack.wire import icmpv4
from pystack.wire.addresses import ip_from_str
from pystack.wire.icmpv4 import ICMPv4Message
from pystack.wire.ipv4 import PROTO_ICMP
from tests.helpers.frames import (
    PEER_IP,
    PROTO_UNKNOWN,
    STACK_IP,
    STACK_MAC,
    arp_frame,
    arp_reply,
    echo_request,
    ipv4,
    read_icmp,
)
from tests.ip.peer import STACK_CONFIG, Peer

BOTH_KINDS = pytest.mark.parametrize("kind", [LinkKind.IP, LinkKind.ETHERNET])


def resolved_peer(kind: LinkKind, **config: Any) -> Peer:
    """A peer whose MAC the stack already knows (so replies go out at once)."""
    peer = Peer(kind, dataclasses.replace(STACK_CONFIG, **config))
    if kind is LinkKind.ETHERNET:
        peer.peer_sends(arp_frame(arp_reply(), dst=STACK_MAC))
    return peer


def unreachable_trigger(sequence: int = 0) -> bytes:
    return ipv4(PEER_IP, STACK_IP, PROTO_UNKNOWN, sequence.to_bytes(8, "big")).build()


# echo -------------------------------------------------------------------------------------------
@BOTH_KINDS
def test_echo_request_gets_reply_with_same_identifier_sequence_and_data(kind: LinkKind) -> None:
    peer = resolved_peer(kind)
    data = bytes(range(256))
    peer.peer_sends_packet(echo_request(0xBEEF, 0x0102, data, identification=77))
    [reply] = peer.sent_packets()
    assert (reply.src, reply.dst, reply.protocol) == (STACK_IP, PEER_IP, PROTO_ICMP)
    assert reply.ttl == 64
    message = read_icmp(reply)
    assert (message.type, message.code) == (icmpv4.ECHO_REPLY, 0)
    assert (message.identifier, message.sequence, message.payload) == (0xBEEF, 0x0102, data)
    assert peer.counters["icmp.echo_replies_sent"] == 1
    assert peer.dropped() == {}


def test_echo_request_with_bad_icmp_checksum_is_dropped() -> None:
    peer = Peer()
    message = ICMPv4Message.echo_request(1, 1, b"data").build(checksum=0x1234)
    peer.peer_sends_packet(ipv4(PEER_IP, STACK_IP, PROTO_ICMP, message))
    peer.expect_nothing()
    assert peer.dropped() == {DropReason.ICMP_BAD_CHECKSUM: 1}
    assert peer.malformed == {"icmp.bad_checksum": 1}


def test_truncated_icmp_is_malformed() -> None:
    peer = Peer()
    peer.peer_sends_packet(ipv4(PEER_IP, STACK_IP, PROTO_ICMP, b"\x08\x00\xf7"))
    peer.expect_nothing()
    assert peer.dropped() == {DropReason.ICMP_MALFORMED: 1}


def test_unhandled_icmp_type_is_counted() -> None:
    peer = Peer()
    timestamp = ICMPv4Message(13, 0, 0, bytes(12)).build()
    peer.peer_sends_packet(ipv4(PEER_IP, STACK_IP, PROTO_ICMP, timestamp))
    peer.expect_nothing()
    assert peer.dropped() == {DropReason.ICMP_UNHANDLED: 1}


def test_echo_reply_is_queued_for_the_pinger() -> None:
    peer = Peer()
    peer.at(2.5)
    reply = ICMPv4Message.echo_reply(7, 9, b"pong").build()
    peer.peer_sends_packet(ipv4(PEER_IP, STACK_IP, PROTO_ICMP, reply))
    [got] = peer.stack.take_echo_replies()
    assert (got.time, got.source, got.identifier, got.sequence, got.data) == (
        2.5,
        PEER_IP,
        7,
        9,
        b"pong",
    )
    assert peer.stack.echo_replies == []


def test_echo_reply_queue_is_bounded() -> None:
    peer = Peer(config=dataclasses.replace(STACK_CONFIG, icmp=ICMPSettings(echo_reply_queue=2)))
    for sequence in range(3):
        reply = ICMPv4Message.echo_reply(1, sequence, b"").build()
        peer.peer_sends_packet(ipv4(PEER_IP, STACK_IP, PROTO_ICMP, reply))
    assert [r.sequence for r in peer.stack.echo_replies] == [1, 2]
    assert peer.dropped() == {DropReason.ICMP_ECHO_REPLY_UNCLAIMED: 1}


@pytest.mark.parametrize("destination", ["10.0.0.255", "255.255.255.255", "224.0.0.1"])
def test_broadcast_echo_is_ignored(destination: str) -> None:
    peer = Peer()
    peer.peer_sends_packet(echo_request(dst=ip_from_str(destination)))
    peer.expect_nothing()
    assert peer.dropped() == {DropReason.ICMP_BROADCAST_ECHO: 1}


def test_directed_broadcast_echo_is_answered_when_not_ignored() -> None:
    peer = Peer(
        config=dataclasses.replace(STACK_CONFIG, icmp=ICMPSettings(echo_ignore_broadcasts=False))
    )
    peer.peer_sends_packet(echo_request(3, 4, b"all", dst=ip_from_str("10.0.0.255")))
    [reply] = peer.sent_packets()
    assert (reply.src, reply.dst) == (STACK_IP, PEER_IP)  # from our unicast address
    message = read_icmp(reply)
    assert (message.type, message.identifier, message.sequence, message.payload) == (
        0,
        3,
        4,
        b"all",
    )


# errors we receive ------------------------------------------------------------------------------
def test_received_error_goes_to_the_listener_of_the_quoted_protocol() -> None:
    peer = Peer()
    heard: list[tuple[int, int, int]] = []
    peer.stack.ip.icmp.error_listeners[17] = lambda message, quoted, now: heard.append(
        (message.type, message.code, quoted.dst)
    )
    ours = ipv4(STACK_IP, PEER_IP, 17, bytes(8)).build()
    error = ICMPv4Message.destination_unreachable(icmpv4.PORT_UNREACHABLE, ours).build()
    peer.peer_sends_packet(ipv4(PEER_IP, STACK_IP, PROTO_ICMP, error))
    assert heard == [(3, 3, PEER_IP)]
    peer.expect_nothing()  # and no error about the error


def test_received_error_without_listener_is_counted_unclaimed() -> None:
    peer = Peer()
    ours = ipv4(STACK_IP, PEER_IP, 132, bytes(8)).build()  # SCTP: nothing here listens for it
    error = ICMPv4Message.time_exceeded(0, ours).build()
    peer.peer_sends_packet(ipv4(PEER_IP, STACK_IP, PROTO_ICMP, error))
    assert peer.counters["icmp.errors_unclaimed"] == 1
    peer.expect_nothing()


# errors we send ---------------------------------------------------------------------------------
def test_icmp_error_rate_limit_burst_then_refill() -> None:
    peer = Peer(
        config=dataclasses.replace(STACK_CONFIG, icmp=ICMPSettings(error_rate=10.0, error_burst=5))
    )
    for sequence in range(8):
        peer.peer_sends(unreachable_trigger(sequence))
    errors = peer.sent_packets()
    assert len(errors) == 5
    quoted = [read_icmp(e).quoted_packet().payload for e in errors]
    assert quoted == [i.to_bytes(8, "big") for i in range(5)]  # the first five, in order
    assert peer.drops[DropReason.ICMP_ERROR_RATE_LIMITED] == 3
    assert peer.drops[DropReason.PROTOCOL_UNREACHABLE] == 8
    # 0.1 s at 10/s refills one token.
    peer.at(0.1)
    peer.peer_sends(unreachable_trigger(8))
    peer.peer_sends(unreachable_trigger(9))
    assert len(peer.sent_packets()) == 1
    assert peer.drops[DropReason.ICMP_ERROR_RATE_LIMITED] == 4
    # A long pause refills up to the burst, not beyond.
    peer.at(100.0)
    for sequence in range(10):
        peer.peer_sends(unreachable_trigger(sequence))
    assert len(peer.sent_packets()) == 5
    assert peer.drops[DropReason.ICMP_ERROR_RATE_LIMITED] == 9


def test_rate_limit_does_not_apply_to_echo_replies() -> None:
    peer = Peer(
        config=dataclasses.replace(STACK_CONFIG, icmp=ICMPSettings(error_rate=1.0, error_burst=1))
    )
    for sequence in range(20):
        peer.peer_sends_packet(echo_request(sequence=sequence))
    assert len(peer.sent_packets()) == 20


@pytest.mark.parametrize(
    "kind", [icmpv4.DESTINATION_UNREACHABLE, icmpv4.TIME_EXCEEDED, icmpv4.PARAMETER_PROBLEM]
)
def test_icmp_error_never_sent_about_an_icmp_error(kind: int) -> None:
    peer = Peer()
    quote = ipv4(STACK_IP, PEER_IP, 17, bytes(8)).build()
    error_packet = ipv4(PEER_IP, STACK_IP, PROTO_ICMP, ICMPv4Message(kind, 0, 0, quote).build())
    sent = peer.stack.ip.icmp.send_error(
        error_packet, icmpv4.DESTINATION_UNREACHABLE, icmpv4.PROTOCOL_UNREACHABLE, 0.0, False
    )
    assert sent is False
    peer.poll()
    peer.expect_nothing()
    assert peer.counters["icmp.errors_suppressed"] == 1
    # An echo request is not an error: errors about it are allowed.
    assert peer.stack.ip.icmp.send_error(
        echo_request(), icmpv4.DESTINATION_UNREACHABLE, icmpv4.PROTOCOL_UNREACHABLE, 0.0, False
    )


@pytest.mark.parametrize(
    ("kind", "allowed"), [(13, True), (17, True), (4, False), (5, False), (40, False)]
)
def test_icmp_errors_about_queries_are_allowed_but_not_about_unknown_types(
    kind: int, allowed: bool
) -> None:
    peer = Peer()
    original = ipv4(PEER_IP, STACK_IP, PROTO_ICMP, ICMPv4Message(kind, 0, 0, bytes(12)).build())
    sent = peer.stack.ip.icmp.send_error(original, icmpv4.TIME_EXCEEDED, 1, 0.0, False)
    assert sent is allowed
    assert peer.counters.get("icmp.errors_suppressed", 0) == (0 if allowed else 1)


def test_icmp_error_never_sent_about_a_non_first_fragment_or_multicast_source() -> None:
    peer = Peer()
    icmp = peer.stack.ip.icmp
    later = ipv4(PEER_IP, STACK_IP, PROTO_UNKNOWN, bytes(8), fragment_offset=8)
    multicast = ipv4(ip_from_str("224.0.0.9"), STACK_IP, PROTO_UNKNOWN, bytes(8))
    zero = ipv4(0, STACK_IP, PROTO_UNKNOWN, bytes(8))
    for original in (later, multicast, zero):
        assert not icmp.send_error(original, 3, 2, 0.0, False)
    peer.poll()
    peer.expect_nothing()
    assert peer.counters["icmp.errors_suppressed"] == 3


def test_fragmented_icmp_error_timing_out_gets_no_time_exceeded() -> None:
    peer = Peer()
    quote = ipv4(STACK_IP, PEER_IP, 17, bytes(1000)).build()
    error = ICMPv4Message.destination_unreachable(3, quote).build()
    first = ipv4(PEER_IP, STACK_IP, PROTO_ICMP, error[:512], more_fragments=True, identification=5)
    peer.peer_sends_packet(first)
    peer.at(30.0)
    peer.expect_nothing()
    assert peer.drops[DropReason.FRAGMENT_TIMEOUT] == 1
    assert peer.counters["icmp.errors_suppressed"] == 1


# loopback ---------------------------------------------------------------------------------------
@BOTH_KINDS
@pytest.mark.parametrize("destination", ["127.0.0.1", "127.1.2.3", "10.0.0.2"])
def test_ping_loopback_and_own_address_never_touches_the_link(
    kind: LinkKind, destination: str
) -> None:
    peer = Peer(kind)
    sent_before = peer.link.statistics.frames_sent
    data = b"self" * 100
    assert peer.stack.ping(destination, 5, 6, data, now=0.0)
    peer.poll()
    [reply] = peer.stack.take_echo_replies()
    assert (reply.source, reply.identifier, reply.sequence, reply.data) == (
        ip_from_str(destination),
        5,
        6,
        data,
    )
    peer.expect_nothing()
    assert peer.link.statistics.frames_sent == sent_before
    assert peer.stack.statistics()["link"]["frames_sent"] == sent_before
    assert peer.dropped() == {}


def test_big_loopback_ping_is_not_fragmented() -> None:
    peer = Peer()
    data = bytes(60_000)
    peer.stack.ping("127.0.0.1", 1, 1, data, now=0.0)
    peer.poll()
    [reply] = peer.stack.take_echo_replies()
    assert reply.data == data
    assert peer.counters["ipv4.fragments_sent"] == 0
    peer.expect_nothing()


def test_loopback_queue_overflow_is_counted() -> None:
    peer = Peer()
    limit = peer.stack.ip.settings.loopback_queue
    for sequence in range(limit + 3):
        peer.stack.ping("127.0.0.1", 1, sequence, now=0.0)
    assert peer.dropped() == {DropReason.IPV4_LOOPBACK_OVERFLOW: 3}
