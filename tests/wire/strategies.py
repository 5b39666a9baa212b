"""Hypothesis strategies for every value type in ``pystack.wire``.

Each strategy draws only values that ``parse`` can produce (valid field ranges), so that
``parse(build(x)) == x`` must hold for all of them: TCP option lists without EOL and at most 40
bytes encoded, SACK with 1-4 blocks, SYN never with FIN or RST, IPv4 options a multiple of 4 bytes
up to 40, fragment offsets a multiple of 8 that keep the packet below 64 KiB, ICMP error messages
that quote an IPv4 header.
"""

from __future__ import annotations

from hypothesis import strategies as st

from pystack.wire.arp import ARPPacket
from pystack.wire.ethernet import EthernetFrame
from pystack.wire.icmpv4 import ERROR_TYPES, ICMPv4Message
from pystack.wire.ipv4 import IPv4Packet
from pystack.wire.tcp import (
    FIN,
    NOP,
    OPT_EOL,
    OPT_MSS,
    OPT_NOP,
    OPT_SACK,
    OPT_SACK_PERMITTED,
    OPT_TIMESTAMP,
    OPT_WSCALE,
    RST,
    SYN,
    TCPOption,
    TCPSegment,
    mss_option,
    sack_option,
    sack_permitted_option,
    timestamp_option,
    wscale_option,
)
from pystack.wire.udp import UDPDatagram

u8 = st.integers(0, 0xFF)
u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFFFFFF)
addresses = u32
macs = st.binary(min_size=6, max_size=6)
ethertypes = st.integers(0x0600, 0xFFFF)

KNOWN_OPTION_KINDS = frozenset(
    {OPT_EOL, OPT_NOP, OPT_MSS, OPT_WSCALE, OPT_SACK_PERMITTED, OPT_SACK, OPT_TIMESTAMP}
)


def payloads(max_size: int = 300, min_size: int = 0) -> st.SearchStrategy[bytes]:
    return st.binary(min_size=min_size, max_size=max_size)


def ethernet_frames(max_payload: int = 300) -> st.SearchStrategy[EthernetFrame]:
    return st.builds(EthernetFrame, macs, macs, ethertypes, payloads(max_payload))


arp_packets = st.builds(ARPPacket, st.sampled_from([1, 2]), macs, addresses, macs, addresses)

ipv4_options = st.integers(0, 10).flatmap(
    lambda words: st.binary(min_size=4 * words, max_size=4 * words)
)


@st.composite
def ipv4_packets(
    draw: st.DrawFn, max_payload: int = 300, protocol: int | None = None, min_payload: int = 0
) -> IPv4Packet:
    payload = draw(payloads(max_payload, min_payload))
    # parse rejects offset + payload beyond 65535; the offset field holds at most 0x1FFF * 8.
    offset_units = draw(st.one_of(st.just(0), st.integers(0, (65535 - len(payload)) // 8)))
    return IPv4Packet(
        src=draw(addresses),
        dst=draw(addresses),
        protocol=draw(u8) if protocol is None else protocol,
        payload=payload,
        ttl=draw(u8),
        tos=draw(u8),
        identification=draw(u16),
        dont_fragment=draw(st.booleans()),
        more_fragments=draw(st.booleans()),
        fragment_offset=offset_units * 8,
        options=draw(ipv4_options),
    )


@st.composite
def icmp_quotes(draw: st.DrawFn) -> bytes:
    """What an ICMP error quotes: an IPv4 header and at least 8 bytes of what followed (the
    codec, like Linux, needs those 8 bytes to find the transport ports)."""
    packet = draw(ipv4_packets(max_payload=64, min_payload=8))
    raw = packet.build_header(payload_length=draw(st.integers(len(packet.payload), 1400)))
    raw += packet.payload
    return raw[: draw(st.integers(min(len(raw), packet.header_length + 8), len(raw)))]


@st.composite
def icmp_messages(draw: st.DrawFn, max_payload: int = 300) -> ICMPv4Message:
    kind = draw(st.one_of(st.sampled_from([0, 3, 8, 11, 12]), u8))
    if kind in ERROR_TYPES:
        quote = draw(
            st.one_of(
                icmp_quotes(),
                st.tuples(st.integers(0, 15), st.binary(min_size=27, max_size=80)).map(
                    lambda t: bytes((0x40 | t[0],)) + t[1]
                ),
            )
        )
        return ICMPv4Message(kind, draw(u8), draw(u32), quote)
    return ICMPv4Message(kind, draw(u8), draw(u32), draw(payloads(max_payload)))


def udp_datagrams(max_payload: int = 300) -> st.SearchStrategy[UDPDatagram]:
    return st.builds(UDPDatagram, u16, u16, payloads(max_payload))


unknown_option_kinds = st.integers(0, 255).filter(lambda kind: kind not in KNOWN_OPTION_KINDS)

tcp_options_one = st.one_of(
    st.builds(mss_option, u16),
    st.builds(wscale_option, u8),
    st.just(sack_permitted_option()),
    st.lists(st.tuples(u32, u32), min_size=1, max_size=4).map(lambda b: sack_option(tuple(b))),
    st.builds(timestamp_option, u32, u32),
    st.just(NOP),
    st.builds(TCPOption, unknown_option_kinds, st.binary(max_size=12)),
)


@st.composite
def tcp_option_lists(draw: st.DrawFn) -> tuple[TCPOption, ...]:
    """Options in wire order, no EOL, at most 40 bytes encoded (longer draws are cut short)."""
    chosen: list[TCPOption] = []
    size = 0
    for option in draw(st.lists(tcp_options_one, max_size=12)):
        length = len(option.encode())
        if size + length > 40:
            break
        chosen.append(option)
        size += length
    return tuple(chosen)


tcp_flags = st.integers(0, 0xFFF).map(lambda f: f & ~(FIN | RST) if f & SYN else f)


@st.composite
def tcp_segments(draw: st.DrawFn, max_payload: int = 300) -> TCPSegment:
    return TCPSegment(
        src_port=draw(u16),
        dst_port=draw(u16),
        seq=draw(u32),
        ack=draw(u32),
        flags=draw(tcp_flags),
        window=draw(u16),
        payload=draw(payloads(max_payload)),
        options=draw(tcp_option_lists()),
        urgent=draw(u16),
    )


@st.composite
def tcp_option_areas(draw: st.DrawFn) -> bytes:
    """Raw option bytes a peer might send, canonical or not: options, NOPs, EOL and what
    follows it (anything), zero padding; a multiple of 4 bytes, at most 40."""
    area = b"".join(option.encode() for option in draw(tcp_option_lists()))
    if len(area) < 40 and draw(st.booleans()):
        area += b"\x00" + draw(st.binary(max_size=min(8, 39 - len(area))))
    if len(area) % 4:
        area += draw(st.sampled_from([b"\x00", b"\x01"])) * (4 - len(area) % 4)
    return area
