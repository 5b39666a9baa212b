"""Shared pieces for the UDP tests, from the point of view of whoever is on the far end.

``udp_packet`` builds what a peer would send (``checksum`` forces a field value: 0 for "none",
anything else for a wrong one); ``read_udp`` parses what a stack sent; ``udp_from`` lists the
UDP datagrams among parsed packets. ``hosts`` makes the two-stack topology of ``tests.sim``.
"""

from __future__ import annotations

from pystack.link.base import LinkKind
from pystack.wire.ipv4 import PROTO_UDP, IPv4Packet
from pystack.wire.udp import UDPDatagram
from tests.sim.topology import TwoHosts

KINDS = [LinkKind.IP, LinkKind.ETHERNET]


def udp_packet(
    src: int,
    dst: int,
    sport: int,
    dport: int,
    payload: bytes,
    checksum: int | None = None,
    **fields: object,
) -> IPv4Packet:
    data = UDPDatagram(sport, dport, payload).build(src, dst, checksum=checksum)
    return IPv4Packet(src, dst, PROTO_UDP, data)._replace(**fields)


def read_udp(packet: IPv4Packet) -> UDPDatagram:
    assert packet.protocol == PROTO_UDP, f"not UDP: protocol {packet.protocol}"
    return UDPDatagram.parse(packet.payload, packet.src, packet.dst)


def udp_from(packets: list[IPv4Packet]) -> list[UDPDatagram]:
    return [read_udp(p) for p in packets if p.protocol == PROTO_UDP and not p.is_fragment]


def hosts(kind: LinkKind = LinkKind.IP, impairment: str | None = None, mtu: int = 1500) -> TwoHosts:
    return TwoHosts(kind, impairment, mtu)
