"""Property tests: ``build`` is the exact inverse of ``parse`` for every codec.

For every value a strategy draws (see ``strategies.py``), ``parse(build(x)) == x`` and the built
bytes are canonical: ``build(parse(b)) == b``. Bytes crafted independently (``reference.py``)
from random fields round-trip too, and the fast checksum agrees with the RFC 1071 word loop.
"""

from __future__ import annotations

import struct

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from pystack.wire import checksum
from pystack.wire.addresses import (
    ip_from_bytes,
    ip_from_str,
    ip_to_bytes,
    ip_to_str,
    mac_from_str,
    mac_to_str,
    parse_cidr,
    prefix_mask,
)
from pystack.wire.arp import ARPPacket
from pystack.wire.errors import MalformedPacket
from pystack.wire.ethernet import EthernetFrame
from pystack.wire.icmpv4 import ICMPv4Message
from pystack.wire.ipv4 import IPv4Packet
from pystack.wire.tcp import (
    OPT_MSS,
    OPT_SACK,
    OPT_TIMESTAMP,
    OPT_WSCALE,
    TCPSegment,
    encode_options,
    parse_options,
)
from pystack.wire.udp import UDPDatagram
from tests.wire import strategies as ws
from tests.wire.reference import (
    arp_raw,
    icmp_raw,
    ipv4_raw,
    pseudo_header,
    rfc1071_checksum,
    rfc1071_sum,
    tcp_raw,
    udp_raw,
)

PROPERTY = settings(max_examples=300, deadline=None)


# --------------------------------------------------------------------------------------------
# parse(build(x)) == x and build(parse(b)) == b
# --------------------------------------------------------------------------------------------


@PROPERTY
@given(ws.ethernet_frames())
def test_ethernet_parse_inverts_build(frame: EthernetFrame):
    raw = frame.build()
    assert EthernetFrame.parse(raw) == frame
    assert EthernetFrame.parse(raw).build() == raw


@PROPERTY
@given(ws.arp_packets)
def test_arp_parse_inverts_build(packet: ARPPacket):
    raw = packet.build()
    assert len(raw) == 28
    assert ARPPacket.parse(raw) == packet
    assert ARPPacket.parse(raw).build() == raw


@PROPERTY
@given(ws.ipv4_packets())
def test_ipv4_parse_inverts_build(packet: IPv4Packet):
    raw = packet.build()
    assert len(raw) == packet.total_length
    assert IPv4Packet.parse(raw) == packet
    assert IPv4Packet.parse(raw).build() == raw
    assert raw[: packet.header_length] == packet.build_header()


@PROPERTY
@given(ws.icmp_messages())
def test_icmp_parse_inverts_build(message: ICMPv4Message):
    raw = message.build()
    assert ICMPv4Message.parse(raw) == message
    assert ICMPv4Message.parse(raw).build() == raw


@PROPERTY
@given(ws.udp_datagrams(), ws.addresses, ws.addresses)
def test_udp_parse_inverts_build(datagram: UDPDatagram, src: int, dst: int):
    raw = datagram.build(src, dst)
    assert raw[6:8] != b"\x00\x00"  # a computed zero is sent as 0xFFFF
    assert UDPDatagram.parse(raw, src, dst) == datagram
    assert UDPDatagram.parse(raw, src, dst).build(src, dst) == raw


@PROPERTY
@given(ws.tcp_segments(), ws.addresses, ws.addresses)
def test_tcp_parse_inverts_build(segment: TCPSegment, src: int, dst: int):
    raw = segment.build(src, dst)
    assert (raw[12] >> 4) * 4 == 20 + len(encode_options(segment.options))
    assert TCPSegment.parse(raw, src, dst) == segment
    assert TCPSegment.parse(raw, src, dst).build(src, dst) == raw


@PROPERTY
@given(ws.tcp_option_lists())
def test_tcp_options_parse_inverts_encode(options):
    encoded = encode_options(options)
    assert len(encoded) % 4 == 0 and len(encoded) <= 40
    assert parse_options(encoded) == options


@PROPERTY
@given(ws.tcp_segments(max_payload=0))
def test_tcp_option_readers_return_the_first_option_of_their_kind(segment: TCPSegment):
    def first(kind: int) -> object:
        return next((o.value for o in segment.options if o.kind == kind), None)

    assert segment.mss == first(OPT_MSS)
    assert segment.wscale == first(OPT_WSCALE)
    assert segment.timestamp == first(OPT_TIMESTAMP)
    assert segment.sack_blocks == (first(OPT_SACK) or ())
    assert segment.sack_permitted == any(o.kind == 4 for o in segment.options)


# --------------------------------------------------------------------------------------------
# independently crafted bytes are canonical: build(parse(b)) == b
# --------------------------------------------------------------------------------------------


@PROPERTY
@given(st.binary(min_size=14, max_size=200))
def test_ethernet_any_frame_with_an_ethertype_is_canonical(raw: bytes):
    assume(int.from_bytes(raw[12:14], "big") >= 0x0600)
    assert EthernetFrame.parse(raw).build() == raw


@PROPERTY
@given(st.sampled_from([1, 2]), ws.macs, ws.addresses, ws.macs, ws.addresses)
def test_arp_crafted_bytes_are_canonical(operation, sender_mac, sender_ip, target_mac, target_ip):
    raw = arp_raw(operation, sender_mac, sender_ip, target_mac, target_ip)
    assert ARPPacket.parse(raw).build() == raw


@PROPERTY
@given(
    payload=ws.payloads(),
    protocol=ws.u8,
    tos=ws.u8,
    ttl=ws.u8,
    identification=ws.u16,
    flags=st.integers(0, 3),
    offset=st.integers(0, 0x1FFF),
    options=ws.ipv4_options,
    src=ws.addresses,
    dst=ws.addresses,
)
def test_ipv4_crafted_bytes_are_canonical(
    payload, protocol, tos, ttl, identification, flags, offset, options, src, dst
):
    assume(offset * 8 + len(payload) <= 65535)
    raw = ipv4_raw(
        payload,
        src=src,
        dst=dst,
        protocol=protocol,
        tos=tos,
        ttl=ttl,
        identification=identification,
        flags_fragment=flags << 13 | offset,
        options=options,
    )
    packet = IPv4Packet.parse(raw)
    assert packet.fragment_offset == offset * 8
    assert (packet.dont_fragment, packet.more_fragments) == (bool(flags & 2), bool(flags & 1))
    assert packet.build() == raw


@PROPERTY
@given(st.integers(0, 255), st.integers(0, 255), ws.u32, ws.payloads())
def test_icmp_crafted_bytes_are_canonical(kind, code, rest, payload):
    assume(kind not in (3, 11, 12))
    raw = icmp_raw(kind, code, rest, payload)
    assert ICMPv4Message.parse(raw).build() == raw


@PROPERTY
@given(ws.u16, ws.u16, ws.payloads(), ws.addresses, ws.addresses)
def test_udp_crafted_bytes_are_canonical(src_port, dst_port, payload, src, dst):
    raw = udp_raw(src_port, dst_port, payload, src=src, dst=dst)
    assert UDPDatagram.parse(raw, src, dst).build(src, dst) == raw


@PROPERTY
@given(
    area=ws.tcp_option_areas(),
    flags=ws.tcp_flags,
    seq=ws.u32,
    ack=ws.u32,
    payload=ws.payloads(64),
    src=ws.addresses,
    dst=ws.addresses,
)
def test_tcp_crafted_option_areas_are_canonical(area, flags, seq, ack, payload, src, dst):
    """NOPs, EOL and what follows it, and zero padding all survive parse then build."""
    assert encode_options(parse_options(area)) == area
    raw = tcp_raw(seq=seq, ack=ack, flags=flags, options=area, payload=payload, src=src, dst=dst)
    assert TCPSegment.parse(raw, src, dst).build(src, dst) == raw


# --------------------------------------------------------------------------------------------
# helpers that read or write fields
# --------------------------------------------------------------------------------------------


@PROPERTY
@given(ws.u16, ws.u16, ws.payloads(64))
def test_icmp_echo_constructors_read_back(identifier, sequence, data):
    for message in (
        ICMPv4Message.echo_request(identifier, sequence, data),
        ICMPv4Message.echo_reply(identifier, sequence, data),
    ):
        parsed = ICMPv4Message.parse(message.build())
        assert (parsed.identifier, parsed.sequence, parsed.payload) == (identifier, sequence, data)


@PROPERTY
@given(ws.icmp_quotes(), ws.u16, ws.u8)
def test_icmp_error_constructors_read_back_and_quote(quote, mtu, pointer):
    unreachable = ICMPv4Message.parse(ICMPv4Message.destination_unreachable(4, quote, mtu).build())
    assert unreachable.next_hop_mtu == mtu
    problem = ICMPv4Message.parse(ICMPv4Message.parameter_problem(pointer, quote).build())
    assert problem.pointer == pointer
    quoted = unreachable.quoted_packet()
    hlen = (quote[0] & 15) * 4
    assert quoted.header_length == hlen
    assert quoted.payload == quote[hlen:]
    assert (quoted.src, quoted.dst) == struct.unpack("!II", quote[12:20])
    assert quoted.protocol == quote[9]


@PROPERTY
@given(ws.ipv4_packets(max_payload=64), st.integers(0, 64))
def test_icmp_quoted_packet_recovers_the_original_header_fields(packet: IPv4Packet, keep: int):
    raw = packet.build()
    quote = raw[
        : max(packet.header_length + min(8, len(packet.payload)), packet.header_length + keep)
    ]
    assume(len(quote) >= 28)
    quoted = ICMPv4Message.destination_unreachable(1, quote).quoted_packet()
    assert quoted._replace(payload=b"") == packet._replace(payload=b"")
    assert quoted.payload == packet.payload[: len(quote) - packet.header_length]


@PROPERTY
@given(ws.addresses)
def test_ip_text_and_bytes_round_trip(address: int):
    assert ip_from_str(ip_to_str(address)) == address
    assert ip_from_bytes(ip_to_bytes(address)) == address


@PROPERTY
@given(ws.addresses, st.integers(0, 32))
def test_cidr_round_trip(address: int, length: int):
    assert parse_cidr(f"{ip_to_str(address)}/{length}") == (address, length)
    mask = prefix_mask(length)
    assert bin(mask).count("1") == length
    assert mask == 0 or mask >> (32 - length) == (1 << length) - 1


@PROPERTY
@given(ws.macs)
def test_mac_text_round_trip(mac: bytes):
    assert mac_from_str(mac_to_str(mac)) == mac
    assert mac_from_str(mac_to_str(mac).upper()) == mac


@PROPERTY
@given(st.binary(max_size=64))
def test_ip_from_bytes_is_total(data: bytes):
    try:
        value = ip_from_bytes(data)
    except MalformedPacket as error:
        assert len(data) != 4 and error.reason == "address.bad_length"
    else:
        assert ip_to_bytes(value) == data


# --------------------------------------------------------------------------------------------
# checksum against the RFC 1071 reference loop
# --------------------------------------------------------------------------------------------


@PROPERTY
@given(st.binary(max_size=2000))
def test_checksum_matches_rfc1071_reference(data: bytes):
    assert checksum.ones_complement_sum(data) == rfc1071_sum(data)
    assert checksum.internet_checksum(data) == rfc1071_checksum(data)


@PROPERTY
@given(st.binary(max_size=600).map(lambda b: b + bytes(len(b) % 2)), ws.addresses, ws.addresses)
def test_checksum_with_pseudo_header_matches_reference(data: bytes, src: int, dst: int):
    initial = checksum.pseudo_header_sum(src, dst, 6, len(data))
    expected = rfc1071_checksum(pseudo_header(src, dst, 6, len(data)) + data)
    assert checksum.internet_checksum(data, initial) == expected
    filled = data + expected.to_bytes(2, "big")
    assert checksum.verify(filled, initial)


@PROPERTY
@given(st.binary(min_size=2, max_size=600))
def test_checksum_inserted_into_data_verifies(data: bytes):
    data = bytes(2) + data[2:]
    filled = checksum.internet_checksum(data).to_bytes(2, "big") + data[2:]
    assert checksum.verify(filled)
    flipped = bytes((filled[0] ^ 0x01,)) + filled[1:]
    assert not checksum.verify(flipped)
