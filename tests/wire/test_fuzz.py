"""Fuzzing: no input makes a parser raise anything but ``MalformedPacket``.

Three kinds of input: random bytes, every truncation of valid packets, and every single-bit flip
of valid packets. For the checksummed codecs a single-bit flip must also be caught: the Internet
checksum detects every single-bit error in what it covers, so the flipped bytes must raise or
(where the flip lands outside the checksum, or changes a length) parse to a different value.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pystack.wire.addresses import ip_from_bytes
from pystack.wire.arp import ARPPacket
from pystack.wire.errors import MalformedPacket
from pystack.wire.ethernet import EthernetFrame
from pystack.wire.icmpv4 import ICMPv4Message
from pystack.wire.ipv4 import PROTO_ICMP, PROTO_TCP, PROTO_UDP, IPv4Packet
from pystack.wire.summary import summarize_ethernet, summarize_ipv4, summarize_packet
from pystack.wire.tcp import TCPSegment, parse_options
from pystack.wire.udp import UDPDatagram
from tests.wire import strategies as ws
from tests.wire.reference import DST, SRC, flip_bit, ipv4_raw, tcp_raw
from tests.wire.test_golden import (
    ARP_REPLY,
    ARP_REQUEST_FRAME,
    NEED_FRAG,
    PARAMETER_POINTER_20,
    PING_PACKET,
    TCP_DATA,
    TCP_SACK_ACK,
    TCP_SYN,
    UDP_HELLO,
    UDP_ZERO_SUM,
    WINDOWS_PING,
)

RANDOM = settings(max_examples=1000, deadline=None)
MUTATIONS = settings(max_examples=60, deadline=None)

Parser = Callable[[bytes], object]


def _icmp_deep(data: bytes) -> object:
    """Parse, then read everything a caller might read, quote included."""
    message = ICMPv4Message.parse(data, verify_checksum=False)
    message.summary()
    if message.is_error:
        message.quoted_packet().summary()
    return message


def _summarized(parse: Parser) -> Parser:
    def run(data: bytes) -> object:
        value = parse(data)
        value.summary()  # type: ignore[attr-defined]
        return value

    return run


PARSERS: dict[str, Parser] = {
    "ethernet": _summarized(EthernetFrame.parse),
    "arp": _summarized(ARPPacket.parse),
    "ipv4": _summarized(IPv4Packet.parse),
    "ipv4_unchecked": _summarized(lambda b: IPv4Packet.parse(b, verify_checksum=False)),
    "icmp": _summarized(ICMPv4Message.parse),
    "icmp_unchecked": _icmp_deep,
    "udp": _summarized(lambda b: UDPDatagram.parse(b, SRC, DST)),
    "udp_unchecked": _summarized(lambda b: UDPDatagram.parse(b, SRC, DST, verify_checksum=False)),
    "tcp": _summarized(lambda b: TCPSegment.parse(b, SRC, DST)),
    "tcp_unchecked": _summarized(lambda b: TCPSegment.parse(b, SRC, DST, verify_checksum=False)),
    "tcp_options": parse_options,
    "address": ip_from_bytes,
}


def parse_or_reason(parse: Parser, data: bytes) -> object:
    """The parsed value, or the MalformedPacket reason; any other exception fails the test."""
    try:
        return parse(data)
    except MalformedPacket as error:
        assert isinstance(error.reason, str) and "." in error.reason
        return MalformedPacket


# --------------------------------------------------------------------------------------------
# random bytes
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(PARSERS))
@RANDOM
@given(data=st.binary(max_size=120))
def test_random_bytes_raise_only_malformed_packet(name: str, data: bytes):
    parse_or_reason(PARSERS[name], data)


@RANDOM
@given(
    payload=st.binary(max_size=80),
    protocol=st.sampled_from([PROTO_ICMP, PROTO_TCP, PROTO_UDP, 2, 255]),
    flags_fragment=st.sampled_from([0, 0x4000, 0x2000, 0x2000 | 100, 100]),
)
def test_valid_ipv4_header_with_random_payload_raises_only_malformed_packet(
    payload, protocol, flags_fragment
):
    raw = ipv4_raw(payload, protocol=protocol, flags_fragment=flags_fragment)
    packet = IPv4Packet.parse(raw)
    for name in ("icmp_unchecked", "udp_unchecked", "tcp_unchecked"):
        parse_or_reason(PARSERS[name], packet.payload)
    assert summarize_packet(packet).startswith("IP ")
    assert summarize_ipv4(raw).startswith("IP ")


@RANDOM
@given(options=st.binary(max_size=40), flags=ws.tcp_flags, payload=st.binary(max_size=8))
def test_random_tcp_option_bytes_with_valid_checksum_raise_only_malformed_packet(
    options, flags, payload
):
    options += bytes(-len(options) % 4)
    raw = tcp_raw(options=options, flags=flags, payload=payload)
    result = parse_or_reason(PARSERS["tcp"], raw)
    if result is not MalformedPacket:
        assert isinstance(result, TCPSegment) and result.build(SRC, DST) == raw
    assert summarize_ipv4(ipv4_raw(raw, protocol=PROTO_TCP)).startswith("IP ")


@RANDOM
@given(data=st.binary(max_size=120))
def test_summaries_never_raise_on_random_bytes(data: bytes):
    assert summarize_ipv4(data).startswith("IP ")
    assert isinstance(summarize_ethernet(data), str)
    assert summarize_ethernet(bytes(12) + b"\x08\x00" + data)
    assert summarize_ethernet(bytes(12) + b"\x08\x06" + data)
    assert summarize_ipv4(b"\x45" + data)


# --------------------------------------------------------------------------------------------
# valid packets to mutate: the golden ones plus hypothesis-built ones
# --------------------------------------------------------------------------------------------

GOLDEN: list[tuple[str, bytes]] = [
    ("ethernet", ARP_REQUEST_FRAME),
    ("arp", ARP_REPLY),
    ("ipv4", PING_PACKET),
    ("icmp", WINDOWS_PING),
    ("icmp", NEED_FRAG),
    ("icmp", PARAMETER_POINTER_20),
    ("udp", UDP_HELLO),
    ("udp", UDP_ZERO_SUM),
    ("tcp", TCP_SYN),
    ("tcp", TCP_DATA),
    ("tcp", TCP_SACK_ACK),
]

BUILT: dict[str, st.SearchStrategy[bytes]] = {
    "ethernet": ws.ethernet_frames(max_payload=40).map(lambda f: f.build()),
    "arp": ws.arp_packets.map(lambda p: p.build()),
    "ipv4": ws.ipv4_packets(max_payload=24).map(lambda p: p.build()),
    "icmp": ws.icmp_messages(max_payload=24).map(lambda m: m.build()),
    "udp": ws.udp_datagrams(max_payload=24).map(lambda d: d.build(SRC, DST)),
    "tcp": ws.tcp_segments(max_payload=16).map(lambda s: s.build(SRC, DST)),
}


def _check_truncations(name: str, raw: bytes) -> None:
    whole = PARSERS[name](raw)
    for length in range(len(raw)):
        result = parse_or_reason(PARSERS[name], raw[:length])
        result_unchecked = parse_or_reason(
            PARSERS.get(f"{name}_unchecked", PARSERS[name]), raw[:length]
        )
        if name == "ipv4" or name == "udp":
            # Both carry a length field that no longer fits: always rejected.
            assert result is MalformedPacket and result_unchecked is MalformedPacket
        elif (name == "arp" and length < 28) or (name == "ethernet" and length < 14):
            assert result is MalformedPacket
        else:
            # TCP and ICMP may (rarely) still sum right, e.g. when zero bytes are cut off; the
            # value is then a different one.
            assert result != whole


@pytest.mark.parametrize(
    ("name", "raw"), GOLDEN, ids=[f"{n}-{i}" for i, (n, _) in enumerate(GOLDEN)]
)
def test_truncated_golden_packets_raise_only_malformed_packet(name: str, raw: bytes):
    _check_truncations(name, raw)


@pytest.mark.parametrize("name", sorted(BUILT))
@MUTATIONS
@given(data=st.data())
def test_truncated_built_packets_raise_only_malformed_packet(name: str, data: st.DataObject):
    _check_truncations(name, data.draw(BUILT[name]))


# --------------------------------------------------------------------------------------------
# single-bit flips
# --------------------------------------------------------------------------------------------


def _udp_checksum_cleared(raw: bytes, bit: int) -> bool:
    """Flipping the only set bit of the UDP checksum turns it into 0: "no checksum"."""
    return bit // 8 in (6, 7) and flip_bit(raw, bit)[6:8] == b"\x00\x00"


def _check_bit_flips(name: str, raw: bytes) -> None:
    parse = PARSERS[name]
    unchecked = PARSERS.get(f"{name}_unchecked", parse)
    original = parse(raw)
    header_bits = ((raw[0] & 15) * 4 if name == "ipv4" else len(raw)) * 8
    for bit in range(len(raw) * 8):
        flipped = flip_bit(raw, bit)
        result = parse_or_reason(parse, flipped)
        parse_or_reason(unchecked, flipped)
        if name in ("icmp", "tcp"):
            # The checksum covers every bit and the length is unchanged: always caught.
            assert result is MalformedPacket, f"bit {bit} flip not detected"
        elif (name == "ipv4" and bit < header_bits) or name == "udp":
            if name == "udp" and _udp_checksum_cleared(raw, bit):
                assert result == original  # RFC 768: checksum 0 = not computed
                continue
            assert result is MalformedPacket or result != original, f"bit {bit} flip not detected"
        else:
            # Not covered by a checksum (Ethernet, ARP, IPv4 payload): only a different value.
            assert result is MalformedPacket or result != original


@pytest.mark.parametrize(
    ("name", "raw"), GOLDEN, ids=[f"{n}-{i}" for i, (n, _) in enumerate(GOLDEN)]
)
def test_bit_flipped_golden_packets_are_detected(name: str, raw: bytes):
    _check_bit_flips(name, raw)


@pytest.mark.parametrize("name", sorted(BUILT))
@MUTATIONS
@given(data=st.data())
def test_bit_flipped_built_packets_are_detected(name: str, data: st.DataObject):
    _check_bit_flips(name, data.draw(BUILT[name]))


def test_ipv4_header_bit_flips_are_all_rejected_for_the_ping():
    # Stronger than "raise or differ" for a plain 20-byte header: every flip raises.
    for bit in range(160):
        with pytest.raises(MalformedPacket):
            IPv4Packet.parse(flip_bit(PING_PACKET, bit))
