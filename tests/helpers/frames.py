"""Frame builders and readers shared by the interface and simulation tests.

Everything here is written from the point of view of the peer on the far end of the link: it
builds what a peer would put on the wire (``echo_request``, ``arp_request``, ``ethernet_ipv4``)
and reads back what the stack sent (``read_ipv4``, ``read_arp``, ``read_icmp``). The standard
addresses are ``STACK_IP``/``STACK_MAC`` (the stack under test) and ``PEER_IP``/``PEER_MAC``.
"""

from __future__ import annotations

import random

from pystack.counters import DECLARED
from pystack.ip.fragments import Reassembler, ReassemblySettings
from pystack.stats import Statistics
from pystack.wire.addresses import BROADCAST_MAC, ZERO_MAC, ip_from_str, mac_from_str
from pystack.wire.arp import OP_REPLY, OP_REQUEST, ARPPacket
from pystack.wire.ethernet import ETHERTYPE_ARP, ETHERTYPE_IPV4, EthernetFrame
from pystack.wire.icmpv4 import ICMPv4Message
from pystack.wire.ipv4 import PROTO_ICMP, IPv4Packet

STACK_IP = ip_from_str("10.0.0.2")
PEER_IP = ip_from_str("10.0.0.1")
OTHER_IP = ip_from_str("10.0.0.3")  # a third host on the subnet
SUBNET_BROADCAST = ip_from_str("10.0.0.255")
STACK_MAC = mac_from_str("02:00:00:00:00:02")
PEER_MAC = mac_from_str("02:00:00:00:00:01")
OTHER_MAC = mac_from_str("02:00:00:00:00:03")
PROTO_UNKNOWN = 99  # unassigned: no handler, so protocol unreachable


# building ---------------------------------------------------------------------------------------
def ipv4(
    src: int,
    dst: int,
    protocol: int,
    payload: bytes,
    **fields: object,
) -> IPv4Packet:
    """An IPv4 packet value; ``fields`` are any other ``IPv4Packet`` fields (ttl, flags...)."""
    return IPv4Packet(src, dst, protocol, payload)._replace(**fields)


def echo_request(
    identifier: int = 0x1234,
    sequence: int = 1,
    data: bytes = b"ping",
    src: int = PEER_IP,
    dst: int = STACK_IP,
    **fields: object,
) -> IPv4Packet:
    message = ICMPv4Message.echo_request(identifier, sequence, data).build()
    return ipv4(src, dst, PROTO_ICMP, message, **fields)


def datagram(size: int = 4000, identification: int = 7, **fields: object) -> IPv4Packet:
    """A whole peer -> stack datagram of an unknown protocol with ``size`` reproducible bytes."""
    payload = random.Random(size).randbytes(size)
    return ipv4(PEER_IP, STACK_IP, PROTO_UNKNOWN, payload, identification=identification, **fields)


def piece(
    start: int, data: bytes, more: bool, identification: int = 7, **fields: object
) -> IPv4Packet:
    """One hand-made fragment: ``data`` at byte offset ``start``, MF set when ``more``."""
    return ipv4(
        PEER_IP,
        STACK_IP,
        PROTO_UNKNOWN,
        data,
        identification=identification,
        fragment_offset=start,
        more_fragments=more,
        **fields,
    )


def ethernet(dst: bytes, src: bytes, ethertype: int, payload: bytes) -> bytes:
    return EthernetFrame(dst, src, ethertype, payload).build()


def ethernet_ipv4(
    packet: IPv4Packet | bytes, dst: bytes = STACK_MAC, src: bytes = PEER_MAC
) -> bytes:
    data = packet if isinstance(packet, bytes) else packet.build()
    return ethernet(dst, src, ETHERTYPE_IPV4, data)


def arp_request(
    target_ip: int = STACK_IP, sender_ip: int = PEER_IP, sender_mac: bytes = PEER_MAC
) -> ARPPacket:
    return ARPPacket(OP_REQUEST, sender_mac, sender_ip, ZERO_MAC, target_ip)


def arp_reply(
    sender_ip: int = PEER_IP,
    sender_mac: bytes = PEER_MAC,
    target_ip: int = STACK_IP,
    target_mac: bytes = STACK_MAC,
) -> ARPPacket:
    return ARPPacket(OP_REPLY, sender_mac, sender_ip, target_mac, target_ip)


def arp_frame(arp: ARPPacket, dst: bytes = BROADCAST_MAC, src: bytes | None = None) -> bytes:
    return ethernet(dst, arp.sender_mac if src is None else src, ETHERTYPE_ARP, arp.build())


# reading ----------------------------------------------------------------------------------------
def read_ethernet(frame: bytes) -> EthernetFrame:
    return EthernetFrame.parse(frame)


def read_ipv4(frame: bytes, is_ethernet: bool) -> IPv4Packet:
    """The IPv4 packet in ``frame`` (unwrapping Ethernet); fails the test if it is not one."""
    if is_ethernet:
        parsed = EthernetFrame.parse(frame)
        assert parsed.ethertype == ETHERTYPE_IPV4, f"not IPv4: ethertype 0x{parsed.ethertype:04x}"
        frame = parsed.payload
    return IPv4Packet.parse(frame)


def read_arp(frame: bytes) -> tuple[EthernetFrame, ARPPacket]:
    parsed = EthernetFrame.parse(frame)
    assert parsed.ethertype == ETHERTYPE_ARP, f"not ARP: ethertype 0x{parsed.ethertype:04x}"
    return parsed, ARPPacket.parse(parsed.payload)


def is_arp(frame: bytes) -> bool:
    return EthernetFrame.parse(frame).ethertype == ETHERTYPE_ARP


def read_icmp(packet: IPv4Packet) -> ICMPv4Message:
    assert packet.protocol == PROTO_ICMP, f"not ICMP: protocol {packet.protocol}"
    assert not packet.is_fragment, "an ICMP fragment: reassemble first"
    return ICMPv4Message.parse(packet.payload)


def reassemble(fragments: list[IPv4Packet]) -> list[IPv4Packet]:
    """The whole datagrams that ``fragments`` make up (unfragmented packets pass through)."""
    reassembler = Reassembler(ReassemblySettings(), Statistics(DECLARED))
    whole: list[IPv4Packet] = []
    for packet in fragments:
        if not packet.is_fragment:
            whole.append(packet)
            continue
        done = reassembler.add(packet, 0.0)
        if done is not None:
            whole.append(done)
    assert len(reassembler) == 0, "fragments left over: a datagram is incomplete"
    return whole
