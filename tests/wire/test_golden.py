"""Golden bytes for every codec in ``pystack.wire``, written out by hand from the RFC layouts.

Each golden packet is parsed to the expected field values and built back to the same bytes.
Then every ``MalformedPacket`` reason a codec can raise is triggered with a crafted input (the
last test checks that the table below covers every reason literal in the source), followed by
the edge cases: checksum folding, Ethernet padding, TCP option padding, ICMP quotes, address
helpers and tcpdump-like summaries.
"""

from __future__ import annotations

import ast
import struct
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pystack.wire import checksum
from pystack.wire.addresses import (
    BROADCAST_MAC,
    ip_from_bytes,
    ip_from_str,
    ip_to_bytes,
    ip_to_str,
    is_loopback,
    is_multicast,
    mac_from_str,
    mac_to_str,
    parse_cidr,
    prefix_mask,
)
from pystack.wire.arp import OP_REPLY, OP_REQUEST, ARPPacket
from pystack.wire.errors import MalformedPacket
from pystack.wire.ethernet import ETHERTYPE_ARP, ETHERTYPE_IPV4, EthernetFrame
from pystack.wire.icmpv4 import (
    DESTINATION_UNREACHABLE,
    ECHO_REPLY,
    ECHO_REQUEST,
    FRAGMENTATION_NEEDED,
    PARAMETER_PROBLEM,
    PORT_UNREACHABLE,
    TIME_EXCEEDED,
    ICMPv4Message,
)
from pystack.wire.ipv4 import PROTO_ICMP, PROTO_TCP, PROTO_UDP, IPv4Packet
from pystack.wire.summary import summarize_ethernet, summarize_ipv4, summarize_packet
from pystack.wire.tcp import (
    ACK,
    FIN,
    NOP,
    OPT_EOL,
    OPT_MSS,
    OPT_NOP,
    OPT_SACK,
    OPT_SACK_PERMITTED,
    OPT_TIMESTAMP,
    OPT_WSCALE,
    PSH,
    RST,
    SYN,
    URG,
    TCPOption,
    TCPSegment,
    encode_options,
    mss_option,
    parse_options,
    sack_option,
    sack_permitted_option,
    timestamp_option,
    wscale_option,
)
from pystack.wire.udp import UDPDatagram
from tests.wire.reference import (
    DST,
    MAC_A,
    MAC_B,
    SRC,
    arp_raw,
    ethernet_raw,
    icmp_raw,
    ipv4_header,
    ipv4_raw,
    rfc1071_checksum,
    rfc1071_sum,
    tcp_raw,
    udp_raw,
    with_checksum,
)
from tests.wire.test_dhcp import DHCP_MALFORMED_CASES
from tests.wire.test_dns import DNS_MALFORMED_CASES
from tests.wire.test_igmp import IGMP_MALFORMED_CASES

WIRE = Path(__file__).resolve().parents[2] / "pystack" / "wire"


def h(text: str) -> bytes:
    """Hex with spaces and line breaks allowed, as written from an RFC figure."""
    return bytes.fromhex("".join(text.split()))


def reason_of(parse: Callable[[], object]) -> str:
    with pytest.raises(MalformedPacket) as caught:
        parse()
    return caught.value.reason


# --------------------------------------------------------------------------------------------
# golden packets
# --------------------------------------------------------------------------------------------

# An ARP request for 10.0.0.2 from 02:00:00:00:00:01 / 10.0.0.1, padded to 60 bytes as on a wire.
ARP_REQUEST_FRAME = h(
    """
    ffffffffffff 020000000001 0806
    0001 0800 06 04 0001 020000000001 0a000001 000000000000 0a000002
    000000000000000000000000000000000000
    """
)
ARP_REPLY = h("0001 0800 06 04 0002 020000000002 0a000002 020000000001 0a000001")

# The header-checksum example known from Wikipedia: 192.168.0.1 > 192.168.0.199, UDP, DF.
IPV4_WORKED_HEADER = h("4500 0073 0000 4000 4011 b861 c0a8 0001 c0a8 00c7")

# A Linux `ping` echo request (id 0x1c46, seq 1): 16-byte timeval then bytes 0x10..0x37.
PING_PACKET = h(
    """
    4500 0054 4c2a 4000 4001 da7c 0a00 0001 0a00 0002
    0800 197e 1c46 0001
    d2f3a16500000000 8c0e030000000000
    101112131415161718191a1b1c1d1e1f 202122232425262728292a2b2c2d2e2f 3031323334353637
    """
)
# The classic Windows `ping` echo request (id 1, seq 1, "abcdefghijklmnopqrstuvwabcdefghi").
WINDOWS_PING = h("0800 4d5a 0001 0001") + b"abcdefghijklmnopqrstuvwabcdefghi"
WINDOWS_PONG = h("0000 555a 0001 0001") + b"abcdefghijklmnopqrstuvwabcdefghi"

# Linux SYN 10.0.0.1:40000 > 10.0.0.2:80: mss 1460, sackOK, TS val 123456 ecr 0, nop, wscale 7.
TCP_SYN = h(
    """
    9c40 0050 12345678 00000000 a002 faf0 518e 0000
    020405b4 0402 080a 0001e240 00000000 01 030307
    """
)
# 10.0.0.2:80 > 10.0.0.1:40000 [P.] with nop,nop,TS and 13 bytes (an odd-length payload).
TCP_DATA = (
    h(
        """
    0050 9c40 000003e8 12345679 8018 01f6 315a 0000
    0101 080a 0001e2a0 0001e240
    """
    )
    + b"hello, world!"
)
# 10.0.0.1:40000 > 10.0.0.2:80 [.] with nop,nop,SACK {2000:3000}{4000:5000}.
TCP_SACK_ACK = h(
    """
    9c40 0050 12345679 000003e8 a010 01f5 03e0 0000
    0101 0512 000007d0 00000bb8 00000fa0 00001388
    """
)
# 10.0.0.1:5000 > 10.0.0.2:53 "hello", checksum 0x9442.
UDP_HELLO = h("1388 0035 000d 9442") + b"hello"
# 10.0.0.1:1000 > 10.0.0.2:2000, payload chosen so the sum folds to 0xFFFF: computed checksum 0.
UDP_ZERO_SUM = h("03e8 07d0 000a ffff e01f")

# What a router sends back for a 1500-byte DF UDP packet: need-frag, next-hop MTU 1400, quoting
# the original header (total length 1500) and the first 8 bytes of its UDP header.
QUOTED_HEADER = h("4500 05dc 1234 4000 4011 0e7a 0a00 0001 0a00 0063")
QUOTE = QUOTED_HEADER + h("1388 0035 05c8 abcd")
NEED_FRAG = h("0304 3231 0000 0578") + QUOTE
PARAMETER_POINTER_20 = h("0c00 1aad 1400 0000") + QUOTE


def test_arp_request_golden_frame_parses_to_fields():
    frame = EthernetFrame.parse(ARP_REQUEST_FRAME)
    assert frame.dst == BROADCAST_MAC
    assert frame.src == MAC_A
    assert frame.ethertype == ETHERTYPE_ARP
    assert len(frame.payload) == 46  # the padding stays with the payload
    arp = ARPPacket.parse(frame.payload)
    assert arp == ARPPacket(OP_REQUEST, MAC_A, SRC, b"\x00" * 6, DST)


def test_arp_request_golden_builds_same_bytes():
    arp = ARPPacket(OP_REQUEST, MAC_A, SRC, b"\x00" * 6, DST)
    assert arp.build() == ARP_REQUEST_FRAME[14:42]
    frame = EthernetFrame(BROADCAST_MAC, MAC_A, ETHERTYPE_ARP, ARP_REQUEST_FRAME[14:])
    assert frame.build() == ARP_REQUEST_FRAME


def test_arp_reply_golden_round_trips():
    arp = ARPPacket.parse(ARP_REPLY)
    assert arp == ARPPacket(OP_REPLY, MAC_B, DST, MAC_A, SRC)
    assert arp.build() == ARP_REPLY


def test_ipv4_worked_checksum_example_parses_and_builds():
    packet_bytes = IPV4_WORKED_HEADER + bytes(95)
    packet = IPv4Packet.parse(packet_bytes)
    assert packet == IPv4Packet(
        src=0xC0A80001,
        dst=0xC0A800C7,
        protocol=PROTO_UDP,
        payload=bytes(95),
        ttl=64,
        tos=0,
        identification=0,
        dont_fragment=True,
        more_fragments=False,
        fragment_offset=0,
        options=b"",
    )
    assert packet.header_length == 20
    assert packet.total_length == 0x73
    assert packet.build() == packet_bytes
    assert packet.build_header() == IPV4_WORKED_HEADER
    assert checksum.internet_checksum(with_checksum(IPV4_WORKED_HEADER, 10, 0)) == 0xB861


def test_ipv4_and_icmp_linux_ping_golden_parses_to_fields():
    packet = IPv4Packet.parse(PING_PACKET)
    assert (packet.src, packet.dst, packet.protocol) == (SRC, DST, PROTO_ICMP)
    assert (packet.ttl, packet.identification, packet.dont_fragment) == (64, 0x4C2A, True)
    assert not packet.is_fragment
    icmp = ICMPv4Message.parse(packet.payload)
    assert (icmp.type, icmp.code) == (ECHO_REQUEST, 0)
    assert (icmp.identifier, icmp.sequence) == (0x1C46, 1)
    assert len(icmp.payload) == 56
    assert icmp.payload[16:] == bytes(range(0x10, 0x38))
    assert not icmp.is_error


def test_ipv4_and_icmp_linux_ping_golden_builds_same_bytes():
    icmp = ICMPv4Message.echo_request(0x1C46, 1, PING_PACKET[28:])
    packet = IPv4Packet(SRC, DST, PROTO_ICMP, icmp.build(), 64, 0, 0x4C2A, True)
    assert packet.build() == PING_PACKET


def test_icmp_windows_ping_and_its_reply_golden():
    request = ICMPv4Message.parse(WINDOWS_PING)
    assert request == ICMPv4Message.echo_request(1, 1, b"abcdefghijklmnopqrstuvwabcdefghi")
    assert request.build() == WINDOWS_PING
    reply = ICMPv4Message.echo_reply(1, 1, request.payload)
    assert reply.type == ECHO_REPLY
    assert reply.build() == WINDOWS_PONG
    assert ICMPv4Message.parse(WINDOWS_PONG) == reply


def test_tcp_linux_syn_golden_parses_every_option():
    segment = TCPSegment.parse(TCP_SYN, SRC, DST)
    assert (segment.src_port, segment.dst_port) == (40000, 80)
    assert (segment.seq, segment.ack, segment.flags) == (0x12345678, 0, SYN)
    assert (segment.window, segment.urgent, segment.payload) == (64240, 0, b"")
    assert segment.options == (
        TCPOption(OPT_MSS, 1460),
        TCPOption(OPT_SACK_PERMITTED),
        TCPOption(OPT_TIMESTAMP, (123456, 0)),
        TCPOption(OPT_NOP),
        TCPOption(OPT_WSCALE, 7),
    )
    assert segment.mss == 1460
    assert segment.wscale == 7
    assert segment.sack_permitted
    assert segment.timestamp == (123456, 0)
    assert segment.sack_blocks == ()


def test_tcp_linux_syn_golden_builds_same_bytes():
    options = (
        mss_option(1460),
        sack_permitted_option(),
        timestamp_option(123456, 0),
        NOP,
        wscale_option(7),
    )
    segment = TCPSegment(40000, 80, 0x12345678, 0, SYN, 64240, b"", options)
    assert segment.build(SRC, DST) == TCP_SYN


def test_tcp_data_segment_with_odd_payload_golden():
    segment = TCPSegment.parse(TCP_DATA, DST, SRC)
    assert segment == TCPSegment(
        80,
        40000,
        1000,
        0x12345679,
        PSH | ACK,
        502,
        b"hello, world!",
        (NOP, NOP, timestamp_option(0x1E2A0, 0x1E240)),
    )
    assert segment.build(DST, SRC) == TCP_DATA


def test_tcp_sack_golden_round_trips():
    segment = TCPSegment.parse(TCP_SACK_ACK, SRC, DST)
    assert segment.flags == ACK
    assert segment.options == (NOP, NOP, sack_option(((2000, 3000), (4000, 5000))))
    assert segment.sack_blocks == ((2000, 3000), (4000, 5000))
    assert not segment.sack_permitted
    assert segment.mss is None and segment.wscale is None and segment.timestamp is None
    assert segment.build(SRC, DST) == TCP_SACK_ACK


def test_tcp_parse_needs_the_right_pseudo_header():
    assert reason_of(lambda: TCPSegment.parse(TCP_SYN, DST, SRC + 1)) == "tcp.bad_checksum"
    assert TCPSegment.parse(TCP_SYN, 0, 0, verify_checksum=False).seq == 0x12345678


def test_udp_golden_with_known_checksum():
    datagram = UDPDatagram.parse(UDP_HELLO, SRC, DST)
    assert datagram == UDPDatagram(5000, 53, b"hello")
    assert datagram.build(SRC, DST) == UDP_HELLO
    assert udp_raw(5000, 53, b"hello") == UDP_HELLO


def test_udp_computed_checksum_zero_is_sent_as_ffff():
    datagram = UDPDatagram(1000, 2000, h("e01f"))
    assert datagram.build(SRC, DST) == UDP_ZERO_SUM
    assert UDPDatagram.parse(UDP_ZERO_SUM, SRC, DST) == datagram
    # 0x0000 in the field would mean "no checksum", so it parses as well.
    assert UDPDatagram.parse(with_checksum(UDP_ZERO_SUM, 6, 0), SRC, DST) == datagram


def test_udp_checksum_zero_means_not_checked():
    unchecked = with_checksum(UDP_HELLO, 6, 0)
    corrupted = unchecked[:-1] + b"O"
    assert UDPDatagram.parse(corrupted, SRC, DST).payload == b"hellO"
    assert UDPDatagram.parse(unchecked, 1, 2) == UDPDatagram(5000, 53, b"hello")


def test_udp_and_ipv4_and_icmp_build_can_force_a_checksum():
    assert UDPDatagram(5000, 53, b"hello").build(SRC, DST, checksum=0)[6:8] == b"\x00\x00"
    assert UDPDatagram(5000, 53, b"hello").build(SRC, DST, checksum=0x1234)[6:8] == h("1234")
    bad = IPv4Packet(SRC, DST, PROTO_UDP, b"").build(checksum=0xBEEF)
    assert reason_of(lambda: IPv4Packet.parse(bad)) == "ipv4.bad_checksum"
    assert IPv4Packet.parse(bad, verify_checksum=False).payload == b""
    icmp = ICMPv4Message.echo_request(1, 1).build(checksum=0)
    assert reason_of(lambda: ICMPv4Message.parse(icmp)) == "icmp.bad_checksum"
    assert ICMPv4Message.parse(icmp, verify_checksum=False).sequence == 1
    tcp = TCPSegment(1, 2, 3, 4, ACK, 5).build(SRC, DST, checksum=0)
    assert reason_of(lambda: TCPSegment.parse(tcp, SRC, DST)) == "tcp.bad_checksum"


def test_icmp_need_frag_golden_reads_next_hop_mtu():
    message = ICMPv4Message.parse(NEED_FRAG)
    assert (message.type, message.code) == (DESTINATION_UNREACHABLE, FRAGMENTATION_NEEDED)
    assert message.next_hop_mtu == 1400
    assert message.is_error
    assert ICMPv4Message.destination_unreachable(FRAGMENTATION_NEEDED, QUOTE, 1400) == message
    assert message.build() == NEED_FRAG


def test_icmp_quoted_packet_on_truncated_quote():
    quoted = ICMPv4Message.parse(NEED_FRAG).quoted_packet()
    assert (quoted.src, quoted.dst, quoted.protocol) == (SRC, 0x0A000063, PROTO_UDP)
    assert (quoted.identification, quoted.dont_fragment) == (0x1234, True)
    # Only 8 bytes of the 1480-byte UDP datagram came back: the UDP header, ports readable.
    assert quoted.payload == h("1388 0035 05c8 abcd")
    assert struct.unpack("!HH", quoted.payload[:4]) == (5000, 53)


def test_icmp_quoted_packet_with_ip_options_and_longer_quote():
    header = ipv4_header(protocol=PROTO_TCP, payload_length=1000, options=h("01010100"))
    quote = header + tcp_raw()[:12]
    message = ICMPv4Message.parse(icmp_raw(DESTINATION_UNREACHABLE, PORT_UNREACHABLE, 0, quote))
    quoted = message.quoted_packet()
    assert quoted.options == h("01010100")
    assert quoted.protocol == PROTO_TCP
    assert quoted.payload == tcp_raw()[:12]


def test_icmp_parameter_problem_golden_reads_pointer():
    message = ICMPv4Message.parse(PARAMETER_POINTER_20)
    assert message.type == PARAMETER_PROBLEM
    assert message.pointer == 20
    assert ICMPv4Message.parameter_problem(20, QUOTE) == message
    assert message.build() == PARAMETER_POINTER_20
    assert message.quoted_packet().dst == 0x0A000063


def test_icmp_time_exceeded_constructor_round_trips():
    message = ICMPv4Message.time_exceeded(0, QUOTE)
    raw = message.build()
    assert raw == icmp_raw(TIME_EXCEEDED, 0, 0, QUOTE)
    assert ICMPv4Message.parse(raw) == message
    assert message.type == TIME_EXCEEDED


# --------------------------------------------------------------------------------------------
# every MalformedPacket reason, triggered with a crafted input
# --------------------------------------------------------------------------------------------


def _tcp(options: bytes = b"", **fields: Any) -> Callable[[], object]:
    raw = tcp_raw(options=options, **fields)
    return lambda: TCPSegment.parse(raw, SRC, DST)


def _ipv4(raw: bytes) -> Callable[[], object]:
    return lambda: IPv4Packet.parse(raw)


def _icmp(raw: bytes) -> Callable[[], object]:
    return lambda: ICMPv4Message.parse(raw)


def _udp(raw: bytes) -> Callable[[], object]:
    return lambda: UDPDatagram.parse(raw, SRC, DST)


def _quoted(quote: bytes, kind: int = DESTINATION_UNREACHABLE) -> Callable[[], object]:
    message = ICMPv4Message(kind, 0, 0, quote)
    return message.quoted_packet


_IPV4_OK = ipv4_raw(b"12345678")

MALFORMED_CASES: list[tuple[str, str, Callable[[], object]]] = [
    # name, expected reason, what raises it
    ("ethernet_13_bytes", "ethernet.truncated", lambda: EthernetFrame.parse(bytes(13))),
    ("ethernet_empty", "ethernet.truncated", lambda: EthernetFrame.parse(b"")),
    (
        "ethernet_802_3_length_1500",
        "ethernet.not_ethertype",
        lambda: EthernetFrame.parse(ethernet_raw(MAC_A, MAC_B, 1500, bytes(46))),
    ),
    (
        "ethernet_type_0x05ff",
        "ethernet.not_ethertype",
        lambda: EthernetFrame.parse(ethernet_raw(MAC_A, MAC_B, 0x05FF)),
    ),
    ("arp_27_bytes", "arp.truncated", lambda: ARPPacket.parse(arp_raw()[:27])),
    ("arp_htype_6", "arp.unsupported", lambda: ARPPacket.parse(arp_raw(htype=6))),
    ("arp_ptype_ipv6", "arp.unsupported", lambda: ARPPacket.parse(arp_raw(ptype=0x86DD))),
    ("arp_hlen_8", "arp.unsupported", lambda: ARPPacket.parse(arp_raw(hlen=8))),
    ("arp_plen_16", "arp.unsupported", lambda: ARPPacket.parse(arp_raw(plen=16))),
    ("arp_operation_0", "arp.bad_operation", lambda: ARPPacket.parse(arp_raw(0))),
    ("arp_operation_rarp_3", "arp.bad_operation", lambda: ARPPacket.parse(arp_raw(3))),
    ("ipv4_19_bytes", "ipv4.truncated", _ipv4(_IPV4_OK[:19])),
    ("ipv4_version_6", "ipv4.bad_version", _ipv4(ipv4_raw(b"", version=6))),
    ("ipv4_version_0", "ipv4.bad_version", _ipv4(bytes(20))),
    ("ipv4_ihl_4", "ipv4.bad_header_length", _ipv4(ipv4_raw(bytes(8), ihl=4))),
    ("ipv4_ihl_0", "ipv4.bad_header_length", _ipv4(ipv4_raw(bytes(8), ihl=0))),
    ("ipv4_ihl_beyond_data", "ipv4.truncated", _ipv4(ipv4_raw(bytes(8), ihl=15))),
    (
        "ipv4_total_length_below_header",
        "ipv4.bad_total_length",
        _ipv4(ipv4_raw(bytes(8), total_length=19)),
    ),
    (
        "ipv4_total_length_below_header_with_options",
        "ipv4.bad_total_length",
        _ipv4(ipv4_raw(bytes(8), options=bytes(4), total_length=20)),
    ),
    ("ipv4_total_length_beyond_data", "ipv4.truncated", _ipv4(_IPV4_OK[:-1])),
    ("ipv4_bad_header_checksum", "ipv4.bad_checksum", _ipv4(ipv4_raw(b"", checksum=0x1234))),
    ("ipv4_reserved_flag", "ipv4.reserved_flag", _ipv4(ipv4_raw(b"", flags_fragment=0x8000))),
    (
        "ipv4_fragment_too_large",
        "ipv4.fragment_too_large",
        _ipv4(ipv4_raw(bytes(8), flags_fragment=0x1FFF)),
    ),
    ("icmp_7_bytes", "icmp.truncated", _icmp(icmp_raw(ECHO_REQUEST)[:7])),
    ("icmp_bad_checksum", "icmp.bad_checksum", _icmp(icmp_raw(ECHO_REQUEST, checksum=0))),
    (
        "icmp_unreachable_quote_27_bytes",
        "icmp.bad_quote",
        _icmp(icmp_raw(DESTINATION_UNREACHABLE, 1, 0, QUOTE[:27])),
    ),
    (
        "icmp_unreachable_quote_not_ipv4",
        "icmp.bad_quote",
        _icmp(icmp_raw(DESTINATION_UNREACHABLE, 1, 0, b"\x60" + QUOTE[1:])),
    ),
    ("icmp_time_exceeded_no_quote", "icmp.bad_quote", _icmp(icmp_raw(TIME_EXCEEDED))),
    (
        "icmp_parameter_problem_short_quote",
        "icmp.bad_quote",
        _icmp(icmp_raw(PARAMETER_PROBLEM, 0, 0, QUOTED_HEADER)),
    ),
    ("icmp_quoted_packet_of_echo", "icmp.bad_quote", _quoted(QUOTE, ECHO_REQUEST)),
    ("icmp_quoted_packet_ihl_4", "icmp.bad_quote", _quoted(b"\x44" + QUOTE[1:])),
    ("icmp_quoted_packet_ihl_beyond_quote", "icmp.bad_quote", _quoted(b"\x4f" + QUOTE[1:])),
    ("icmp_quoted_packet_empty", "icmp.bad_quote", _quoted(b"")),
    (
        "icmp_quoted_packet_reserved_flag",
        "icmp.bad_quote",
        _quoted(QUOTE[:6] + b"\x80\x00" + QUOTE[8:]),
    ),
    ("udp_7_bytes", "udp.truncated", _udp(UDP_HELLO[:7])),
    ("udp_length_7", "udp.bad_length", _udp(udp_raw(1, 2, b"", length=7))),
    ("udp_length_beyond_data", "udp.bad_length", _udp(udp_raw(1, 2, b"abc", length=12))),
    ("udp_bad_checksum", "udp.bad_checksum", _udp(with_checksum(UDP_HELLO, 6, 0x9443))),
    ("tcp_19_bytes", "tcp.truncated", lambda: TCPSegment.parse(TCP_SYN[:19], SRC, DST)),
    ("tcp_data_offset_4", "tcp.bad_data_offset", _tcp(data_offset=4, payload=bytes(8))),
    ("tcp_data_offset_0", "tcp.bad_data_offset", _tcp(data_offset=0)),
    ("tcp_data_offset_beyond_data", "tcp.bad_data_offset", _tcp(data_offset=6)),
    ("tcp_data_offset_15_short", "tcp.bad_data_offset", _tcp(h("01010101"), data_offset=15)),
    ("tcp_bad_checksum", "tcp.bad_checksum", _tcp(checksum=0)),
    ("tcp_mss_length_3", "tcp.bad_option", _tcp(h("020305 00"))),
    ("tcp_mss_length_5", "tcp.bad_option", _tcp(h("020505b400 000000"))),
    ("tcp_wscale_length_2", "tcp.bad_option", _tcp(h("0302 0000"))),
    ("tcp_wscale_length_4", "tcp.bad_option", _tcp(h("0304 0700"))),
    ("tcp_sack_permitted_length_3", "tcp.bad_option", _tcp(h("040300 00"))),
    ("tcp_sack_permitted_length_4", "tcp.bad_option", _tcp(h("04040000"))),
    ("tcp_timestamp_length_8", "tcp.bad_option", _tcp(h("0808 00000001 0000"))),
    ("tcp_timestamp_length_12", "tcp.bad_option", _tcp(h("080c 00000001 00000002 0000"))),
    ("tcp_sack_length_2", "tcp.bad_option", _tcp(h("0502 0000"))),
    ("tcp_sack_length_9", "tcp.bad_option", _tcp(h("0509 00000001 00000002 0000"))),
    ("tcp_sack_length_11", "tcp.bad_option", _tcp(h("050b 00000001 00000002 0000"))),
    ("tcp_sack_length_18_in_12_bytes", "tcp.bad_option", _tcp(h("0512 00000001 00000002 0000"))),
    ("tcp_unknown_option_length_0", "tcp.bad_option", _tcp(h("1e00 0000"))),
    ("tcp_unknown_option_length_1", "tcp.bad_option", _tcp(h("1e01 0000"))),
    ("tcp_unknown_option_overruns", "tcp.bad_option", _tcp(h("1e05 0000"))),
    ("tcp_option_without_length_byte", "tcp.bad_option", _tcp(h("01010102"))),
    ("tcp_nop_then_lone_kind", "tcp.bad_option", _tcp(h("020405b4 0101011e"))),
    ("address_3_bytes", "address.bad_length", lambda: ip_from_bytes(b"\x01\x02\x03")),
    ("address_5_bytes", "address.bad_length", lambda: ip_from_bytes(bytes(5))),
]


@pytest.mark.parametrize(
    ("reason", "parse"),
    [pytest.param(reason, parse, id=name) for name, reason, parse in MALFORMED_CASES],
)
def test_parse_rejects_crafted_input_with_reason(reason: str, parse: Callable[[], object]):
    assert reason_of(parse) == reason


def test_malformed_cases_cover_every_reason_in_the_source():
    raised: set[str] = set()
    for path in WIRE.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id == "MalformedPacket"
                and node.args
                and isinstance(node.args[0], ast.Constant)
            ):
                raised.add(node.args[0].value)
    cases = MALFORMED_CASES + IGMP_MALFORMED_CASES + DNS_MALFORMED_CASES + DHCP_MALFORMED_CASES
    covered = {reason for _name, reason, _parse in cases}
    assert raised, "found no MalformedPacket(...) calls: did the source move?"
    assert raised - covered == set(), "reasons without a crafted input in MALFORMED_CASES"


def test_malformed_packet_carries_reason_detail_and_layer():
    error = MalformedPacket("ipv4.bad_checksum", "header sums to 0x1234")
    assert error.reason == "ipv4.bad_checksum"
    assert error.detail == "header sums to 0x1234"
    assert error.layer == "ipv4"
    assert str(error) == "ipv4.bad_checksum: header sums to 0x1234"
    assert str(MalformedPacket("tcp.bad_flags")) == "tcp.bad_flags"
    assert isinstance(error, ValueError)


def test_ipv4_parse_rejects_bad_header_checksum_but_not_bad_payload():
    # The header checksum covers the header only.
    packet = ipv4_raw(b"payload")
    assert IPv4Packet.parse(packet[:-1] + b"!").payload == b"payloa!"
    assert reason_of(_ipv4(with_checksum(packet, 10, 0xFFFF - 1))) == "ipv4.bad_checksum"


def test_ipv4_fragment_at_the_largest_offset_that_fits_parses():
    packet = IPv4Packet.parse(ipv4_raw(bytes(7), flags_fragment=0x1FFF))
    assert packet.fragment_offset == 65528 and packet.is_fragment
    assert packet.build() == ipv4_raw(bytes(7), flags_fragment=0x1FFF)


def test_ipv4_more_fragments_and_offset_round_trip():
    raw = ipv4_raw(bytes(16), identification=7, flags_fragment=0x2000 | 185)
    packet = IPv4Packet.parse(raw)
    assert packet.more_fragments and not packet.dont_fragment
    assert packet.fragment_offset == 1480
    assert packet.build() == raw


def test_ipv4_options_kept_verbatim():
    options = h("07 07 04 00000000 00")  # record route with one empty slot, then EOL
    raw = ipv4_raw(b"data", options=options)
    packet = IPv4Packet.parse(raw)
    assert packet.options == options
    assert packet.header_length == 28
    assert packet.build() == raw


def test_ipv4_build_rejects_what_cannot_be_encoded():
    with pytest.raises(ValueError):
        IPv4Packet(SRC, DST, PROTO_UDP, b"", options=b"\x01").build()
    with pytest.raises(ValueError):
        IPv4Packet(SRC, DST, PROTO_UDP, b"", options=bytes(44)).build()
    with pytest.raises(ValueError):
        IPv4Packet(SRC, DST, PROTO_UDP, b"", fragment_offset=12).build()
    with pytest.raises(ValueError):
        IPv4Packet(SRC, DST, PROTO_UDP, bytes(65516)).build()


def test_ipv4_build_header_for_a_payload_length():
    header = IPv4Packet(SRC, DST, PROTO_UDP, b"").build_header(payload_length=1480)
    assert header == ipv4_header(payload_length=1480)


def test_udp_and_tcp_build_reject_oversize():
    with pytest.raises(ValueError):
        UDPDatagram(1, 2, bytes(65528)).build(SRC, DST)
    with pytest.raises(ValueError):
        TCPSegment(1, 2, 0, 0, ACK, 0, options=(TCPOption(30, bytes(39)),)).build(SRC, DST)


def test_ethernet_build_rejects_bad_mac_length():
    with pytest.raises(ValueError):
        EthernetFrame(b"\x01" * 5, MAC_A, ETHERTYPE_IPV4, b"").build()


def test_arp_build_rejects_bad_mac_length():
    with pytest.raises(ValueError):
        ARPPacket(OP_REQUEST, MAC_A[:5], SRC, bytes(6), DST).build()
    with pytest.raises(ValueError):
        ARPPacket(OP_REQUEST, MAC_A, SRC, bytes(7), DST).build()


# --------------------------------------------------------------------------------------------
# checksum edge cases
# --------------------------------------------------------------------------------------------


def test_checksum_rfc1071_numerical_example():
    # RFC 1071 section 3: the words 0001 f203 f4f5 f6f7 sum to ddf2.
    assert checksum.ones_complement_sum(h("0001 f203 f4f5 f6f7")) == 0xDDF2
    assert checksum.internet_checksum(h("0001 f203 f4f5 f6f7")) == 0x220D


def test_checksum_odd_length_pads_with_a_zero_byte():
    assert checksum.ones_complement_sum(b"\x01") == 0x0100
    assert checksum.ones_complement_sum(h("0001 f203 f4f5 f6")) == 0xDCFB
    assert checksum.internet_checksum(h("0001 f2")) == ~0xF201 & 0xFFFF
    data = b"odd length!"
    assert checksum.internet_checksum(data) == rfc1071_checksum(data)


def test_checksum_all_zeros():
    assert checksum.ones_complement_sum(b"") == 0
    assert checksum.ones_complement_sum(bytes(20)) == 0
    assert checksum.internet_checksum(b"") == 0xFFFF
    assert checksum.internet_checksum(bytes(21)) == 0xFFFF
    # All-zero data with a zero checksum field does not verify (it should be 0xFFFF).
    assert not checksum.verify(bytes(20))
    assert checksum.verify(h("ffff") + bytes(18))


def test_checksum_sum_that_folds_to_ffff():
    assert checksum.ones_complement_sum(h("ffff")) == 0xFFFF
    assert checksum.ones_complement_sum(h("ffff ffff ffff")) == 0xFFFF
    assert checksum.ones_complement_sum(h("8000 7fff")) == 0xFFFF
    assert checksum.internet_checksum(h("8000 7fff")) == 0x0000
    assert checksum.verify(h("8000 7fff 0000"))
    assert checksum.verify(h("8000 7fff ffff"))  # one's complement has two zeros
    assert checksum.fold(0xFFFF * 12345) == 0xFFFF
    assert checksum.fold(0) == 0


def test_checksum_end_around_carry():
    assert checksum.ones_complement_sum(h("ffff 0001")) == 0x0001
    assert checksum.ones_complement_sum(h("ffff ffff 0002")) == 0x0002
    assert checksum.ones_complement_sum(b"\xff" * 1001) == rfc1071_sum(b"\xff" * 1001)


def test_checksum_initial_and_pseudo_header():
    assert checksum.pseudo_header_sum(SRC, DST, 17, 13) == SRC + DST + 17 + 13
    pseudo = checksum.pseudo_header_sum(SRC, DST, 17, 13)
    assert checksum.verify(UDP_HELLO, pseudo)
    assert not checksum.verify(UDP_HELLO, pseudo + 1)
    assert checksum.internet_checksum(with_checksum(UDP_HELLO, 6, 0), pseudo) == 0x9442


def test_checksum_accepts_bytearray_and_memoryview():
    data = h("0001 f203 f4f5 f6f7")
    assert checksum.ones_complement_sum(bytearray(data)) == 0xDDF2
    assert checksum.ones_complement_sum(memoryview(data)[:7]) == 0xDCFB


def test_checksum_module_has_no_python_loops():
    tree = ast.parse((WIRE / "checksum.py").read_text())
    loops = (ast.For, ast.While, ast.ListComp, ast.GeneratorExp, ast.SetComp, ast.DictComp)
    assert [type(node).__name__ for node in ast.walk(tree) if isinstance(node, loops)] == []


def test_checksum_of_a_megabyte_is_fast():
    data = bytes(range(256)) * 4096
    started = time.perf_counter()
    for _ in range(10):
        checksum.internet_checksum(data)
    # ~1.5 GB/s expected; a per-byte loop would take seconds. The bound is deliberately loose.
    assert time.perf_counter() - started < 1.0


def test_parsers_accept_bytearray_and_memoryview():
    for view in (bytearray(PING_PACKET), memoryview(PING_PACKET)):
        packet = IPv4Packet.parse(view)
        assert packet == IPv4Packet.parse(PING_PACKET)
        assert type(packet.payload) is bytes
        assert ICMPv4Message.parse(memoryview(packet.payload)).sequence == 1
    for view in (bytearray(TCP_SYN), memoryview(TCP_SYN)):
        assert TCPSegment.parse(view, SRC, DST) == TCPSegment.parse(TCP_SYN, SRC, DST)
    for view in (bytearray(UDP_HELLO), memoryview(UDP_HELLO)):
        assert UDPDatagram.parse(view, SRC, DST) == UDPDatagram(5000, 53, b"hello")
    frame = EthernetFrame.parse(memoryview(ARP_REQUEST_FRAME))
    assert type(frame.dst) is bytes and type(frame.payload) is bytes
    arp = ARPPacket.parse(bytearray(ARP_REPLY))
    assert type(arp.sender_mac) is bytes


# --------------------------------------------------------------------------------------------
# trailing Ethernet padding
# --------------------------------------------------------------------------------------------


def test_ipv4_trims_padding_by_total_length():
    padded = PING_PACKET + bytes(6)
    packet = IPv4Packet.parse(padded)
    assert packet == IPv4Packet.parse(PING_PACKET)
    assert packet.build() == PING_PACKET


def test_udp_trims_bytes_beyond_its_length():
    datagram = UDPDatagram.parse(UDP_HELLO + b"\x00\x00\xff", SRC, DST)
    assert datagram == UDPDatagram(5000, 53, b"hello")
    assert datagram.build(SRC, DST) == UDP_HELLO


def test_arp_ignores_padding():
    assert ARPPacket.parse(ARP_REPLY + bytes(18)) == ARPPacket.parse(ARP_REPLY)


def test_minimum_size_frame_with_small_udp_parses_down_every_layer():
    datagram = udp_raw(5000, 53, b"hi")
    frame_bytes = ethernet_raw(MAC_B, MAC_A, ETHERTYPE_IPV4, ipv4_raw(datagram))
    frame_bytes += bytes(60 - len(frame_bytes))
    frame = EthernetFrame.parse(frame_bytes)
    assert len(frame.payload) == 46
    packet = IPv4Packet.parse(frame.payload)
    assert packet.total_length == 30
    assert UDPDatagram.parse(packet.payload, packet.src, packet.dst).payload == b"hi"
    assert summarize_ethernet(frame_bytes) == "IP 10.0.0.1.5000 > 10.0.0.2.53: UDP, length 2"


# --------------------------------------------------------------------------------------------
# TCP option edge cases (EOL padding rules from the tcp module docstring)
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "wire"),
    [
        ((wscale_option(7),), "030307 00"),
        ((NOP, wscale_option(7)), "01 030307"),
        ((sack_permitted_option(),), "0402 0000"),
        ((mss_option(536), sack_permitted_option()), "02040218 0402 0000"),
        ((timestamp_option(1, 2),), "080a 00000001 00000002 0000"),
        ((NOP,), "01 000000"),
        ((TCPOption(30, b"\xab\xcd"),), "1e04abcd"),
    ],
)
def test_tcp_build_pads_options_with_zeros_and_parse_drops_the_padding(options, wire):
    assert encode_options(options) == h(wire)
    assert parse_options(h(wire)) == options
    segment = TCPSegment(1, 2, 3, 4, ACK, 5, b"x", options)
    assert TCPSegment.parse(segment.build(SRC, DST), SRC, DST) == segment


def test_tcp_parse_keeps_eol_followed_by_three_zero_bytes():
    # EOL plus three zeros is a whole word: build would never add it as padding, so it stays.
    assert parse_options(h("020405b4 00000000")) == (mss_option(1460), TCPOption(OPT_EOL, bytes(3)))
    assert parse_options(h("00000000")) == (TCPOption(OPT_EOL, bytes(3)),)
    raw = tcp_raw(options=h("020405b4 00000000"))
    assert TCPSegment.parse(raw, SRC, DST).build(SRC, DST) == raw


def test_tcp_parse_keeps_eol_followed_by_nonzero_bytes():
    assert parse_options(h("0101 00 05")) == (NOP, NOP, TCPOption(OPT_EOL, b"\x05"))
    assert parse_options(h("00 010203")) == (TCPOption(OPT_EOL, h("010203")),)
    assert parse_options(h("030307 00 01000000")) == (
        wscale_option(7),
        TCPOption(OPT_EOL, h("01000000")),
    )
    for wire in ("0101 00 05", "00 010203", "030307 00 01000000"):
        options = parse_options(h(wire))
        assert encode_options(options) == h(wire)


def test_tcp_parse_ignores_option_bytes_after_eol():
    # Anything after EOL is not parsed as options (it may be garbage), only carried along.
    assert parse_options(h("00 ff0102")) == (TCPOption(OPT_EOL, h("ff0102")),)


def test_tcp_parse_drops_short_zero_padding_after_eol():
    assert parse_options(h("01 000000")) == (NOP,)
    assert parse_options(h("0101 0000")) == (NOP, NOP)
    assert parse_options(h("010101 00")) == (NOP, NOP, NOP)


def test_tcp_unknown_options_preserved():
    wire = h("1e04 abcd fe02 0101 2206 01020304 0000")
    options = parse_options(wire)
    assert options == (
        TCPOption(30, h("abcd")),
        TCPOption(254, b""),
        NOP,
        NOP,
        TCPOption(34, h("01020304")),
    )
    assert encode_options(options) == wire
    raw = tcp_raw(options=wire, flags=ACK)
    assert TCPSegment.parse(raw, SRC, DST).build(SRC, DST) == raw


def test_tcp_nops_preserved_in_order():
    wire = h("01 01 080a 00000005 00000006 01 01 01 030300 0000")
    options = parse_options(wire)
    assert [option.kind for option in options] == [1, 1, 8, 1, 1, 1, 3]
    assert encode_options(options) == wire


def test_tcp_sack_with_one_to_four_blocks():
    for count in range(1, 5):
        blocks = tuple((i * 100, i * 100 + 50) for i in range(1, count + 1))
        wire = bytes((5, 2 + 8 * count)) + b"".join(struct.pack("!II", *b) for b in blocks)
        wire += bytes(-len(wire) % 4)
        assert parse_options(wire) == (sack_option(blocks),)
        assert encode_options((sack_option(blocks),)) == wire


def test_tcp_forty_bytes_of_options_is_the_limit():
    options = (NOP, NOP, sack_option(((1, 2), (3, 4), (5, 6), (7, 8))), NOP, NOP, NOP, NOP)
    assert len(encode_options(options)) == 40
    with pytest.raises(ValueError):
        encode_options((*options, NOP))
    segment = TCPSegment(1, 2, 3, 4, ACK, 5, b"", options)
    raw = segment.build(SRC, DST)
    assert raw[12] >> 4 == 15
    assert TCPSegment.parse(raw, SRC, DST) == segment


def test_tcp_reserved_flag_bits_round_trip():
    raw = tcp_raw(flags=0xF00 | ACK)
    segment = TCPSegment.parse(raw, SRC, DST)
    assert segment.flags == 0xF00 | ACK
    assert segment.build(SRC, DST) == raw


def test_tcp_urgent_pointer_and_flags_round_trip():
    raw = tcp_raw(flags=URG | ACK | PSH, urgent=3, payload=b"abc")
    segment = TCPSegment.parse(raw, SRC, DST)
    assert (segment.urgent, segment.payload) == (3, b"abc")
    assert segment.build(SRC, DST) == raw


def test_tcp_option_readers_on_absent_options():
    segment = TCPSegment(1, 2, 3, 4, ACK, 5)
    assert segment.mss is None
    assert segment.wscale is None
    assert not segment.sack_permitted
    assert segment.timestamp is None
    assert segment.sack_blocks == ()
    assert segment.option(OPT_SACK) is None


# --------------------------------------------------------------------------------------------
# addresses
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("10.0.0.1", 0x0A000001),
        ("0.0.0.0", 0),
        ("255.255.255.255", 0xFFFFFFFF),
        ("192.168.0.199", 0xC0A800C7),
    ],
)
def test_ip_from_str_and_back(text, value):
    assert ip_from_str(text) == value
    assert ip_to_str(value) == text


@pytest.mark.parametrize(
    "text",
    [
        "1.2.3",
        "256.0.0.1",
        " 1.2.3.4",
        "1.2.3.4 ",
        "a.b.c.d",
        "1.2.3.4.5",
        "",
        "1..2.3",
        "-1.2.3.4",
        "1.2.3.+4",
        "0x1.2.3.4",
        "1.2.3.1000",
        "1.2.3.٤",  # an Arabic-Indic digit is a Unicode digit but not a dotted-quad one
        "1.2.3.²",
    ],
)
def test_ip_from_str_rejects(text):
    with pytest.raises(ValueError):
        ip_from_str(text)


def test_ip_from_str_rejects_non_strings():
    with pytest.raises(ValueError):
        ip_from_str(b"1.2.3.4")  # type: ignore[arg-type]


def test_ip_bytes_round_trip():
    assert ip_to_bytes(0x0A000001) == h("0a000001")
    assert ip_from_bytes(h("c0a800c7")) == 0xC0A800C7


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("10.0.0.2/24", (0x0A000002, 24)),
        ("10.0.0.2", (0x0A000002, 32)),
        ("0.0.0.0/0", (0, 0)),
        ("192.168.1.1/32", (0xC0A80101, 32)),
    ],
)
def test_parse_cidr(text, expected):
    assert parse_cidr(text) == expected


@pytest.mark.parametrize(
    "text",
    ["10.0.0.2/33", "10.0.0.2/-1", "10.0.0.2/a", "10.0.0.2/", "10.0.0/24", "/24", "10.0.0.2/2/4"],
)
def test_parse_cidr_rejects(text):
    with pytest.raises(ValueError):
        parse_cidr(text)


def test_prefix_mask():
    assert prefix_mask(0) == 0
    assert prefix_mask(8) == 0xFF000000
    assert prefix_mask(24) == 0xFFFFFF00
    assert prefix_mask(32) == 0xFFFFFFFF


def test_mac_round_trip():
    assert mac_to_str(h("0200 00ab cdef")) == "02:00:00:ab:cd:ef"
    assert mac_from_str("02:00:00:ab:cd:ef") == h("0200 00ab cdef")
    assert mac_from_str("02:00:00:AB:CD:EF") == h("0200 00ab cdef")
    assert mac_from_str(mac_to_str(BROADCAST_MAC)) == BROADCAST_MAC


@pytest.mark.parametrize(
    "text",
    [
        "02:00:00:ab:cd",
        "02:00:00:ab:cd:ef:01",
        "02-00-00-ab-cd-ef",
        "0g:00:00:ab:cd:ef",
        "2:00:00:ab:cd:ef",
        "+2:00:00:ab:cd:ef",
        " 2:00:00:ab:cd:ef",
        "02:00:00:ab:cd:e ",
        "",
    ],
)
def test_mac_from_str_rejects(text):
    with pytest.raises(ValueError):
        mac_from_str(text)


def test_multicast_and_loopback():
    assert is_multicast(ip_from_str("224.0.0.1"))
    assert is_multicast(ip_from_str("239.255.255.255"))
    assert not is_multicast(ip_from_str("240.0.0.1"))
    assert is_loopback(ip_from_str("127.0.0.1"))
    assert not is_loopback(ip_from_str("128.0.0.1"))


# --------------------------------------------------------------------------------------------
# summaries (tcpdump-like)
# --------------------------------------------------------------------------------------------


def test_summary_of_a_linux_ping():
    assert summarize_ipv4(PING_PACKET) == (
        "IP 10.0.0.1 > 10.0.0.2: ICMP echo request, id 7238, seq 1, length 64"
    )
    packet = IPv4Packet.parse(PING_PACKET)
    assert packet.summary() == "IP 10.0.0.1 > 10.0.0.2: ICMP, ttl 64, id 19498 [DF], length 84"
    assert ICMPv4Message.parse(WINDOWS_PONG).summary() == "ICMP echo reply, id 1, seq 1, length 40"


def test_summary_of_a_tcp_syn():
    packet = ipv4_raw(TCP_SYN, protocol=PROTO_TCP)
    assert summarize_ipv4(packet) == (
        "IP 10.0.0.1.40000 > 10.0.0.2.80: Flags [S], seq 305419896, win 64240, "
        "options [mss 1460,sackOK,TS val 123456 ecr 0,nop,wscale 7], length 0"
    )


def test_summary_of_tcp_data_and_sack():
    data = TCPSegment.parse(TCP_DATA, DST, SRC)
    assert data.summary() == (
        "TCP 80 > 40000: Flags [P.], seq 1000:1013, ack 305419897, win 502, "
        "options [nop,nop,TS val 123552 ecr 123456], length 13"
    )
    sack = TCPSegment.parse(TCP_SACK_ACK, SRC, DST)
    assert sack.summary() == (
        "TCP 40000 > 80: Flags [.], ack 1000, win 501, "
        "options [nop,nop,sack {2000:3000} {4000:5000}], length 0"
    )


def test_summary_of_tcp_flags_and_urgent():
    rst = TCPSegment(1, 2, 7, 0, RST, 0)
    assert rst.summary() == "TCP 1 > 2: Flags [R], seq 7, win 0, length 0"
    fin = TCPSegment(1, 2, 7, 9, FIN | ACK, 10)
    assert fin.summary() == "TCP 1 > 2: Flags [F.], seq 7, ack 9, win 10, length 0"
    urgent = TCPSegment(1, 2, 0xFFFFFFFF, 9, URG | ACK, 10, b"ab", urgent=1)
    assert (
        urgent.summary()
        == "TCP 1 > 2: Flags [U.], seq 4294967295:1, ack 9, win 10, urg 1, length 2"
    )
    assert TCPSegment(1, 2, 0, 0, 0, 0).flag_string() == "none"
    assert TCPOption(30, h("abcd")).summary() == "unknown-30 abcd"
    assert TCPOption(OPT_EOL, b"").summary() == "eol"


def test_summary_of_udp():
    assert UDPDatagram(5000, 53, b"hello").summary() == "UDP 5000 > 53, length 5"
    assert summarize_ipv4(ipv4_raw(UDP_HELLO)) == "IP 10.0.0.1.5000 > 10.0.0.2.53: UDP, length 5"


def test_summary_of_arp_frames():
    assert summarize_ethernet(ARP_REQUEST_FRAME) == (
        "ARP, Request who-has 10.0.0.2 tell 10.0.0.1, length 28"
    )
    assert ARPPacket.parse(ARP_REPLY).summary() == (
        "ARP, Reply 10.0.0.2 is-at 02:00:00:00:00:02, length 28"
    )
    assert EthernetFrame.parse(ARP_REQUEST_FRAME).summary() == (
        "02:00:00:00:00:01 > ff:ff:ff:ff:ff:ff, ethertype ARP (0x0806), length 60"
    )


def test_summary_of_icmp_errors():
    assert ICMPv4Message.parse(NEED_FRAG).summary() == (
        "ICMP need-frag unreachable (mtu 1400), length 36"
    )
    port = ICMPv4Message.destination_unreachable(PORT_UNREACHABLE, QUOTE)
    assert port.summary() == "ICMP port unreachable, length 36"
    assert ICMPv4Message.parse(PARAMETER_POINTER_20).summary() == (
        "ICMP parameter problem - octet 20, length 36"
    )
    assert ICMPv4Message.time_exceeded(0, QUOTE).summary() == (
        "ICMP time exceeded in-transit (ttl), length 36"
    )
    assert ICMPv4Message.time_exceeded(1, QUOTE).summary() == (
        "ICMP time exceeded in-transit (ip reassembly), length 36"
    )
    assert ICMPv4Message(13, 0, 0, bytes(12)).summary() == "ICMP type-#13 code 0, length 20"


def test_summary_of_fragments():
    first = IPv4Packet(SRC, DST, PROTO_UDP, UDP_HELLO[:8], identification=9, more_fragments=True)
    # A first fragment is not parsed further: the transport checksum covers the whole datagram.
    assert summarize_packet(first) == (
        "IP 10.0.0.1 > 10.0.0.2: UDP, ttl 64, id 9, frag offset 0, MF, length 28 "
        "(frag id 9 offset 0+)"
    )
    later = IPv4Packet(SRC, DST, PROTO_UDP, b"x" * 8, identification=9, fragment_offset=1480)
    assert (
        summarize_packet(later)
        == "IP 10.0.0.1 > 10.0.0.2: proto 17 (frag id 9 offset 1480), length 8"
    )
    assert later.summary() == (
        "IP 10.0.0.1 > 10.0.0.2: UDP, ttl 64, id 9, frag offset 1480, length 28"
    )


def test_summary_of_unparsable_transport_names_the_reason():
    bad_udp = ipv4_raw(with_checksum(UDP_HELLO, 6, 1))
    assert (
        summarize_ipv4(bad_udp) == "IP 10.0.0.1 > 10.0.0.2: malformed (udp.bad_checksum), length 33"
    )
    short_igmp = ipv4_raw(b"igmp", protocol=2)
    assert (
        summarize_ipv4(short_igmp)
        == "IP 10.0.0.1 > 10.0.0.2: malformed (igmp.truncated), length 24"
    )
    other = ipv4_raw(b"what", protocol=99)
    assert summarize_ipv4(other) == "IP 10.0.0.1 > 10.0.0.2: proto-99, ttl 64, id 0, length 24"


@pytest.mark.parametrize(
    "garbage",
    [b"", b"\x45", bytes(20), b"\xff" * 60, PING_PACKET[:30], ARP_REQUEST_FRAME[:20]],
)
def test_summaries_never_raise_on_garbage(garbage):
    assert summarize_ipv4(garbage).startswith("IP")
    assert summarize_ethernet(garbage)


def test_summaries_of_malformed_input_name_the_reason():
    assert summarize_ipv4(b"\x45") == "IP malformed (ipv4.truncated), length 1"
    assert summarize_ethernet(b"") == "Ethernet malformed (ethernet.truncated), length 0"
    frame = ethernet_raw(BROADCAST_MAC, MAC_A, ETHERTYPE_ARP, arp_raw(9))
    assert summarize_ethernet(frame) == "ARP malformed (arp.bad_operation)"
    ipv6 = ethernet_raw(BROADCAST_MAC, MAC_A, 0x86DD, bytes(40))
    assert summarize_ethernet(ipv6) == (
        "02:00:00:00:00:01 > ff:ff:ff:ff:ff:ff, ethertype IPv6 (0x86dd), length 54"
    )


@pytest.mark.parametrize("flags", [SYN | FIN, SYN | RST, SYN | FIN | RST | ACK])
def test_syn_with_fin_or_rst_parses_and_keeps_its_flags(flags: int) -> None:
    # The parser judges bytes, not flag combinations: what a SYN+FIN or SYN+RST means depends on
    # the connection's state, so the TCP layer decides (a challenge ACK or a counted drop).
    segment = _tcp(flags=flags)()
    assert isinstance(segment, TCPSegment) and segment.flags == flags
