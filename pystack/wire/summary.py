"""tcpdump-like one-line summaries of whole frames, layer by layer.

``summarize_ipv4`` and ``summarize_ethernet`` never raise: what does not parse is shown as
``malformed (reason)``. They are for traces and people, not for the hot path.
"""

from __future__ import annotations

from pystack.wire.addresses import ip_to_str
from pystack.wire.arp import ARPPacket
from pystack.wire.dns import DNSMessage
from pystack.wire.errors import MalformedPacket
from pystack.wire.ethernet import ETHERTYPE_ARP, ETHERTYPE_IPV4, EthernetFrame
from pystack.wire.icmpv4 import ICMPv4Message
from pystack.wire.igmp import IGMPMessage
from pystack.wire.ipv4 import PROTO_ICMP, PROTO_IGMP, PROTO_TCP, PROTO_UDP, IPv4Packet
from pystack.wire.tcp import TCPSegment
from pystack.wire.udp import UDPDatagram


def summarize_ipv4(data: bytes | bytearray | memoryview, verify: bool = True) -> str:
    """``verify=False`` for packets whose transport checksum was left to compute (offloads)."""
    try:
        packet = IPv4Packet.parse(data)
    except MalformedPacket as error:
        return f"IP malformed ({error.reason}), length {len(data)}"
    return summarize_packet(packet, verify)


def summarize_packet(packet: IPv4Packet, verify: bool = True) -> str:
    """One line for a parsed packet: transport details when it is a first (or only) fragment."""
    src, dst = ip_to_str(packet.src), ip_to_str(packet.dst)
    head = f"IP {src} > {dst}: "
    frag = ""
    if packet.is_fragment:
        frag = f" (frag id {packet.identification} offset {packet.fragment_offset}" + (
            "+)" if packet.more_fragments else ")"
        )
        if packet.fragment_offset:
            return f"{head}proto {packet.protocol}{frag}, length {len(packet.payload)}"
    # A first fragment carries the transport header but not all the bytes its checksum covers.
    whole = not packet.more_fragments
    try:
        if packet.protocol == PROTO_ICMP:
            return (
                head
                + ICMPv4Message.parse(packet.payload, verify_checksum=whole and verify).summary()
                + frag
            )
        if packet.protocol == PROTO_IGMP and whole:
            return head + IGMPMessage.parse(packet.payload).summary() + frag
        if packet.protocol == PROTO_UDP and whole:
            udp = UDPDatagram.parse(packet.payload, packet.src, packet.dst, verify_checksum=verify)
            head = f"IP {src}.{udp.src_port} > {dst}.{udp.dst_port}: "
            if 53 in (udp.src_port, udp.dst_port):
                try:
                    return head + DNSMessage.parse(udp.payload).summary() + frag
                except MalformedPacket:
                    pass
            return f"{head}UDP, length {len(udp.payload)}{frag}"
        if packet.protocol == PROTO_TCP:
            tcp = TCPSegment.parse(
                packet.payload, packet.src, packet.dst, verify_checksum=whole and verify
            )
            line = tcp.summary().split(": ", 1)[1]
            return f"IP {src}.{tcp.src_port} > {dst}.{tcp.dst_port}: {line}{frag}"
    except MalformedPacket as error:
        if whole:
            return f"{head}malformed ({error.reason}), length {packet.total_length}"
    return packet.summary() + frag


def summarize_ethernet(data: bytes | bytearray | memoryview) -> str:
    try:
        frame = EthernetFrame.parse(data)
    except MalformedPacket as error:
        return f"Ethernet malformed ({error.reason}), length {len(data)}"
    if frame.ethertype == ETHERTYPE_ARP:
        try:
            return ARPPacket.parse(frame.payload).summary()
        except MalformedPacket as error:
            return f"ARP malformed ({error.reason})"
    if frame.ethertype == ETHERTYPE_IPV4:
        return summarize_ipv4(frame.payload)
    return frame.summary()
