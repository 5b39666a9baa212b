"""Deterministic impairment rules: the grammar, and exactly the Nth matching packet acted on."""

from __future__ import annotations

import pytest

from pystack.link.base import LinkKind
from pystack.link.impair import (
    LOSS,
    MTU,
    QUEUE,
    RULE,
    ImpairmentConfig,
    ImpairmentLink,
    ImpairmentRule,
)
from pystack.link.memory import MemoryLink
from pystack.wire.ipv4 import PROTO_TCP, PROTO_UDP, IPv4Packet
from pystack.wire.tcp import ACK, FIN, PSH, SYN, TCPSegment
from pystack.wire.udp import UDPDatagram

SRC, DST = 0x0A000002, 0x0A000001


def tcp(number: int, flags: int = ACK, payload: bytes = b"") -> bytes:
    """A TCP packet whose sequence number names it."""
    segment = TCPSegment(1000, 80, number, 0, flags, 100, payload)
    return IPv4Packet(SRC, DST, PROTO_TCP, segment.build(SRC, DST), identification=number).build()


def udp(number: int) -> bytes:
    datagram = UDPDatagram(1000, 53, number.to_bytes(4, "big"))
    return IPv4Packet(SRC, DST, PROTO_UDP, datagram.build(SRC, DST)).build()


def seq_of(frame: bytes) -> int:
    packet = IPv4Packet.parse(frame)
    return TCPSegment.parse(packet.payload, packet.src, packet.dst).seq


# -- grammar ------------------------------------------------------------------------------------
def test_rules_parse_with_the_probabilistic_keys_and_format_back() -> None:
    text = "loss=1%,drop=out:tcp:data:3,dup=in:tcp:syn:1,delay=out:tcp:fin:1:200ms,dup=2%"
    config = ImpairmentConfig.parse(text)
    assert config.rules == (
        ImpairmentRule("drop", "outbound", "tcp", ("data",), 3),
        ImpairmentRule("dup", "inbound", "tcp", ("syn",), 1),
        ImpairmentRule("delay", "outbound", "tcp", ("fin",), 1, 0.2),
    )
    assert config.outbound.loss == 0.01 and config.inbound.duplicate == 0.02
    assert ImpairmentConfig.parse(config.format()) == config


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("drop=5%", "want drop=DIR:PROTO"),
        ("drop=up:tcp:1", "direction 'up'"),
        ("drop=out:sctp:1", "protocol 'sctp'"),
        ("drop=out:tcp:urgent:1", "flag 'urgent'"),
        ("drop=out:udp:syn:1", "flags apply to tcp only"),
        ("drop=out:tcp:0", "packet number '0'"),
        ("drop=out:tcp:x", "packet number 'x'"),
        ("delay=out:tcp:1", "want delay=DIR"),
        ("delay=out:tcp:1:5", "bad time"),
        ("delay=out:tcp:1:0ms", "must be positive"),
        ("in.drop=tcp:1", "names its direction"),
        ("out.dup=out:tcp:1", "names its direction"),
    ],
)
def test_bad_rules_are_one_line_errors(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as caught:
        ImpairmentConfig.parse(text)
    assert "\n" not in str(caught.value)


# -- behaviour on a memory link -------------------------------------------------------------------
class Wire:
    def __init__(self, spec: str, kind: LinkKind = LinkKind.IP) -> None:
        self.inner, self.peer = MemoryLink.pair(kind=kind, capacity=1000)
        self.link = ImpairmentLink(self.inner, ImpairmentConfig.parse(spec))
        self.events: list[tuple[str, str, str]] = []
        self.link.set_trace(lambda d, frame, reason, note: self.events.append((d, reason, note)))

    def close(self) -> None:
        self.link.close()
        self.peer.close()


def test_drop_rule_drops_exactly_the_nth_matching_packet() -> None:
    wire = Wire("drop=out:tcp:data:3")
    sent = [tcp(1, SYN), tcp(2, ACK, b"a"), tcp(3), tcp(4, ACK, b"b"), udp(5)]
    sent += [tcp(6, ACK | PSH, b"c"), tcp(7, ACK, b"d")]
    for frame in sent:
        wire.link.send(frame, 0.0)
    got = wire.peer.receive(0.0, 100)
    assert [f for f in got] == [f for f in sent if f != tcp(6, ACK | PSH, b"c")]
    assert wire.link.impairment_statistics.outbound.rule_dropped == 1
    assert wire.events == [("out", RULE, "rule drop=out:tcp:data:3")]
    wire.close()


def test_every_rule_counts_a_packet_another_rule_drops() -> None:
    # docs/impairment.md: drop=...:1,drop=...:2,drop=...:3 loses the first three, in a row.
    wire = Wire("drop=out:tcp:data:1,drop=out:tcp:data:2,drop=out:tcp:data:3")
    sent = [tcp(n, ACK, b"x") for n in range(1, 6)]
    for frame in sent:
        wire.link.send(frame, 0.0)
    assert wire.peer.receive(0.0, 100) == sent[3:]
    assert wire.link.impairment_statistics.outbound.rule_dropped == 3
    assert [note for _, _, note in wire.events] == [
        f"rule drop=out:tcp:data:{n}" for n in (1, 2, 3)
    ]
    wire.close()


def test_rules_look_only_at_their_direction() -> None:
    wire = Wire("drop=in:tcp:1")
    wire.link.send(tcp(1), 0.0)
    wire.peer.send(tcp(2), 0.0)
    wire.peer.send(tcp(3), 0.0)
    assert [seq_of(f) for f in wire.peer.receive(0.0, 10)] == [1]
    assert [seq_of(f) for f in wire.link.receive(0.0, 10)] == [3]
    wire.close()


def test_dup_rule_duplicates_exactly_the_nth_syn() -> None:
    wire = Wire("dup=in:tcp:syn:2")
    for number, flags in ((1, SYN), (2, ACK), (3, SYN | ACK), (4, SYN)):
        wire.peer.send(tcp(number, flags), 0.0)
    assert [seq_of(f) for f in wire.link.receive(0.0, 10)] == [1, 2, 3, 3, 4]
    statistics = wire.link.impairment_statistics.inbound
    assert statistics.duplicated == statistics.rule_duplicated == 1
    wire.close()


def test_delay_rule_holds_the_nth_fin_and_lets_later_packets_overtake() -> None:
    wire = Wire("delay=out:tcp:fin:1:200ms")
    wire.link.send(tcp(1, ACK, b"x"), 0.0)
    wire.link.send(tcp(2, FIN | ACK), 0.0)
    wire.link.send(tcp(3, ACK), 0.0)
    assert [seq_of(f) for f in wire.peer.receive(0.0, 10)] == [1, 3]
    assert wire.link.next_deadline() == pytest.approx(0.2)
    wire.link.poll(0.1)
    assert wire.peer.receive(0.1, 10) == []
    wire.link.poll(0.2)
    assert [seq_of(f) for f in wire.peer.receive(0.2, 10)] == [2]
    wire.link.send(tcp(4, FIN | ACK), 0.3)  # the rule fired once: the second FIN passes
    assert [seq_of(f) for f in wire.peer.receive(0.3, 10)] == [4]
    assert wire.link.impairment_statistics.outbound.rule_delayed == 1
    wire.close()


def test_rules_on_ethernet_frames_match_arp_and_ip() -> None:
    header = b"\x02" * 6 + b"\x02\x00\x00\x00\x00\x01"
    arp = header + b"\x08\x06" + bytes(28)
    wire = Wire("drop=out:arp:1,drop=out:udp:1", LinkKind.ETHERNET)
    wire.link.send(arp, 0.0)
    wire.link.send(arp, 0.0)
    wire.link.send(header + b"\x08\x00" + tcp(1), 0.0)
    wire.link.send(header + b"\x08\x00" + udp(2), 0.0)
    got = wire.peer.receive(0.0, 10)
    assert got == [arp, header + b"\x08\x00" + tcp(1)]
    wire.close()


def test_loss_and_queue_drops_are_reported_with_their_reason() -> None:
    wire = Wire("loss=100%")
    wire.link.send(tcp(1), 0.0)
    assert wire.events == [("out", LOSS, "loss=1")]
    wire.close()
    wire = Wire("delay=10ms,queue=1,mtu=100")
    wire.link.send(tcp(1), 0.0)
    wire.link.send(tcp(2), 0.0)
    wire.link.send(tcp(3, ACK, bytes(200)), 0.0)
    assert [reason for _, reason, _ in wire.events] == [
        QUEUE,
        MTU,
    ]
    wire.close()
