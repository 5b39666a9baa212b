"""Structure-aware mutations: packets built from values, then bent at one layer at a time.

The generator decides *what* to send (a SYN, data at the right window edge, an ACK of data
pystack sent); this module turns that into IPv4 bytes and, when the case says so, damages them
the way a hostile or broken network would, one layer at a time:

- IPv4: a random header field (checksum fixed or not), a wrong total or header length, TTL 0,
  option garbage, a bad checksum, truncation; tiny fragments (8 data bytes each), overlapping
  ones (the overlap carries the same bytes, or different ones that the TCP checksum then
  rejects), fragments sent out of order;
- TCP: a random flag combination, a bad checksum, a data offset pointing past the segment or
  into the fixed header, option soup (random kinds and lengths, lengths past the end, zero
  lengths, many NOPs);
- ICMP errors quoting a packet pystack sent (whole, cut to the 8 bytes RFC 792 guarantees, or
  with the quoted sequence number moved); UDP garbage; unknown IP protocols.

Payload bytes are never changed under a valid checksum: the fuzzer's own byte stream must stay
the script pattern, so a wrong byte read is pystack's fault. Every function returns a tuple of
IPv4 packets (fragmenting makes several); each is at most 65,535 bytes.
Entry points: ``tcp_packet``, ``mutate``, ``icmp_error_quoting``, ``udp_garbage``, ``other_protocol``.
"""

from __future__ import annotations

import struct

from pystack.fuzz.choices import Choices
from pystack.wire import icmpv4, tcp
from pystack.wire.checksum import internet_checksum, pseudo_header_sum
from pystack.wire.icmpv4 import ICMPv4Message
from pystack.wire.ipv4 import PROTO_ICMP, PROTO_TCP, PROTO_UDP, IPv4Packet
from pystack.wire.tcp import TCPSegment
from pystack.wire.udp import UDPDatagram

IP_HEADER = 20
TCP_HEADER = 20
MAX_FRAGMENTS = 24  # per packet: a case stays bounded in packets
ALL_FLAGS = 0xFF


def tcp_bytes(segment: TCPSegment, src: int, dst: int, raw_options: bytes | None = None) -> bytes:
    """The segment's bytes; ``raw_options`` replaces its options by these bytes as they are
    (padded with zeros to a multiple of 4, at most 40)."""
    if raw_options is None:
        return segment.build(src, dst)
    options = raw_options[:40]
    options += bytes(-len(options) % 4)
    plain = segment._replace(options=()).build(src, dst, checksum=0)
    header = bytearray(plain[:TCP_HEADER] + options)
    header[12] = ((TCP_HEADER + len(options)) // 4) << 4 | (header[12] & 0x0F)
    data = bytes(header) + segment.payload
    checksum = internet_checksum(data, pseudo_header_sum(src, dst, PROTO_TCP, len(data)))
    return data[:16] + checksum.to_bytes(2, "big") + data[18:]


def tcp_packet(src: int, dst: int, segment_bytes: bytes, ttl: int = 64) -> bytes:
    return IPv4Packet(src, dst, PROTO_TCP, segment_bytes, ttl=ttl).build()


def option_soup(choices: Choices) -> bytes:
    """Up to 40 bytes of TCP options, well-formed or not."""
    out = bytearray()
    for _ in range(choices.between(1, 8)):
        how = choices.below(8)
        if how == 0:
            out += b"\x01" * choices.between(1, 12)  # NOPs
        elif how == 1:
            out += bytes([tcp.OPT_MSS, 4]) + choices.below(65536).to_bytes(2, "big")
        elif how == 2:
            out += bytes([tcp.OPT_WSCALE, 3, choices.below(256)])
        elif how == 3:
            out += bytes([tcp.OPT_TIMESTAMP, 10]) + choices.raw(8)
        elif how == 4:
            out += bytes([tcp.OPT_SACK, 2 + 8 * choices.between(0, 4)]) + choices.raw(8)
        elif how == 5:  # a length past the end, 0 or 1 (an option that never ends)
            out += bytes([choices.below(256), choices.pick((0, 1, 2, 40, 255))])
        elif how == 6:
            out += bytes([tcp.OPT_EOL]) + choices.raw(choices.below(4))
        else:
            kind = choices.below(256)
            body = choices.raw(choices.below(6))
            out += bytes([kind, len(body) + 2]) + body
    return bytes(out[:40])


def mutate(packet: bytes, choices: Choices) -> tuple[bytes, ...]:
    """``packet`` (a valid IPv4 packet) damaged at one layer, chosen by ``choices``."""
    how = choices.below(12)
    data = bytearray(packet)
    hlen = (data[0] & 0x0F) * 4
    if how == 0:  # a random byte of the IP header, checksum fixed (or left wrong)
        data[choices.below(hlen)] = choices.below(256)
        if choices.chance(70):
            _fix_ip_checksum(data)
        return (bytes(data),)
    if how == 1:  # a random byte of the transport header or beyond (checksum stays)
        if len(data) > hlen:
            data[hlen + choices.below(len(data) - hlen)] ^= 1 + choices.below(255)
        return (bytes(data),)
    if how == 2:  # truncated, total length unchanged (claims more than there is)
        return (bytes(data[: 1 + choices.below(len(data) - 1)]),)  # one byte at least
    if how == 3:  # total length wrong, checksum fixed
        struct.pack_into("!H", data, 2, choices.pick((0, 19, 20, len(data) + 1, 65535)))
        _fix_ip_checksum(data)
        return (bytes(data),)
    if how == 4:  # header length (IHL) wrong
        data[0] = 0x40 | choices.below(16)
        _fix_ip_checksum(data)
        return (bytes(data),)
    if how == 5:  # bad IP checksum
        data[10] ^= 0xFF
        return (bytes(data),)
    if how == 6 and data[9] == PROTO_TCP and len(data) >= hlen + TCP_HEADER:  # bad TCP checksum
        data[hlen + 16] ^= 1 + choices.below(255)
        return (bytes(data),)
    if how == 7 and data[9] == PROTO_TCP and len(data) >= hlen + TCP_HEADER:  # data offset
        offset = choices.below(16)
        data[hlen + 12] = offset << 4 | (data[hlen + 12] & 0x0F)
        if not 5 <= offset <= (len(data) - hlen) // 4:
            # An impossible offset gets a right checksum, so the length checks are reached.
            # A possible one does not: under a right checksum it would move payload bytes into
            # the options (or back), and the fuzzer's byte stream would no longer be the pattern.
            _fix_transport_checksum(data, hlen)
        return (bytes(data),)
    if how == 8:  # TTL 0 or 1, or IP options garbage
        if choices.chance(50):
            data[8] = choices.below(2)
            _fix_ip_checksum(data)
            return (bytes(data),)
        options = choices.raw(4 * choices.between(1, 10))
        parsed = IPv4Packet.parse(packet, verify_checksum=False)
        return (parsed._replace(options=options).build(),)
    if how in (9, 10):
        return fragments(packet, choices, overlapping=how == 10)
    if data[9] == PROTO_TCP and len(data) >= hlen + TCP_HEADER:  # a random flag combination
        data[hlen + 13] = choices.below(256)
        _fix_transport_checksum(data, hlen)
    return (bytes(data),)


def fragments(packet: bytes, choices: Choices, overlapping: bool) -> tuple[bytes, ...]:
    """``packet`` cut into fragments of 8 or more data bytes (some overlapping), in an order
    the case picks; the reassembled datagram is the original unless an overlap disagrees."""
    parsed = IPv4Packet.parse(packet, verify_checksum=False)
    payload = parsed.payload
    if len(payload) < 16:
        return (packet,)
    size = 8 * choices.between(1, max(1, min(len(payload) // 8 - 1, 64)))
    starts = list(range(0, len(payload), size))
    if len(starts) > MAX_FRAGMENTS:
        size = 8 * -(-len(payload) // (8 * MAX_FRAGMENTS))
        starts = list(range(0, len(payload), size))
    ident = choices.below(65536)
    out: list[bytes] = []
    for start in starts:
        stop = min(start + size, len(payload))
        if overlapping and stop < len(payload):
            stop = min(len(payload), stop + 8 * choices.between(1, 2))  # overlaps the next
        piece = payload[start:stop]
        if overlapping and choices.chance(20):  # the overlap disagrees: checksum catches it
            piece = piece[:-1] + bytes([piece[-1] ^ 0xFF])
        out.append(
            parsed._replace(
                payload=piece,
                identification=ident,
                dont_fragment=False,
                more_fragments=stop < len(payload),
                fragment_offset=start,
            ).build()
        )
    if choices.chance(50):  # out of order: a rotation or the reverse
        shift = choices.below(len(out))
        out = out[shift:] + out[:shift] if choices.chance(50) else out[::-1]
    if choices.chance(15):  # one fragment twice
        out.append(out[choices.below(len(out))])
    return tuple(out)


def icmp_error_quoting(src: int, dst: int, quoted: bytes, choices: Choices) -> bytes:
    """An ICMP error from ``src`` quoting ``quoted`` (a packet pystack sent)."""
    quote = bytearray(quoted[: choices.pick((28, 48, 548, len(quoted)))])
    hlen = (quote[0] & 0x0F) * 4 if quote else 0
    if choices.chance(30) and len(quote) >= hlen + 8 and quote[9] == PROTO_TCP:
        # the quoted sequence number moved: in or out of SND.UNA..SND.NXT (RFC 5927 4.1)
        seq = int.from_bytes(quote[hlen + 4 : hlen + 8], "big")
        seq = (seq + choices.pick((1, -1, 1000, 1 << 31, choices.u32()))) & 0xFFFFFFFF
        quote[hlen + 4 : hlen + 8] = seq.to_bytes(4, "big")
    kind = choices.below(6)
    if kind == 0:
        mtu = choices.pick((0, 1, 68, 296, 576, 1006, 1280, 1500, 9000, 65535))
        message = ICMPv4Message.destination_unreachable(
            icmpv4.FRAGMENTATION_NEEDED, bytes(quote), mtu
        )
    elif kind in (1, 2):
        code = choices.pick((0, 1, 2, 3, 9, 10, 13, 15, choices.below(256)))
        message = ICMPv4Message.destination_unreachable(code, bytes(quote))
    elif kind == 3:
        message = ICMPv4Message.time_exceeded(choices.below(3), bytes(quote))
    elif kind == 4:
        message = ICMPv4Message(icmpv4.PARAMETER_PROBLEM, 0, choices.u32(), bytes(quote))
    else:
        message = ICMPv4Message(choices.pick((4, 5, 12, 40)), choices.below(4), 0, bytes(quote))
    return IPv4Packet(src, dst, PROTO_ICMP, message.build()).build()


def udp_garbage(src: int, dst: int, choices: Choices) -> bytes:
    """A UDP datagram to a port pystack may or may not serve, maybe with a wrong length."""
    port = choices.pick((7, 9, 53, 67, 68, 123, 8080, choices.below(65536)))
    payload = choices.raw(choices.below(600))
    data = bytearray(UDPDatagram(choices.below(65536), port, payload).build(src, dst))
    if choices.chance(30):
        struct.pack_into("!H", data, 4, choices.pick((0, 7, 8, len(data) + 8, 65535)))
    if choices.chance(20):
        data[6:8] = b"\xde\xad"
    return IPv4Packet(src, dst, PROTO_UDP, bytes(data)).build()


def other_protocol(src: int, dst: int, choices: Choices) -> bytes:
    """ICMP queries and junk, or a protocol pystack does not speak."""
    if choices.chance(50):
        message = ICMPv4Message(
            choices.pick((0, 8, 13, 15, 17, 42, choices.below(256))),
            choices.below(256),
            choices.u32(),
            choices.raw(choices.below(100)),
        )
        return IPv4Packet(src, dst, PROTO_ICMP, message.build()).build()
    protocol = choices.pick((0, 2, 4, 41, 47, 50, 132, 255, choices.below(256)))
    return IPv4Packet(src, dst, protocol, choices.raw(choices.below(100))).build()


def _fix_ip_checksum(data: bytearray) -> None:
    hlen = min((data[0] & 0x0F) * 4, len(data))
    if hlen < IP_HEADER:
        return
    data[10:12] = b"\0\0"
    data[10:12] = internet_checksum(bytes(data[:hlen])).to_bytes(2, "big")


def _fix_transport_checksum(data: bytearray, hlen: int) -> None:
    """Recompute the TCP checksum over what is there (after a header change made on purpose)."""
    segment = data[hlen:]
    if len(segment) < TCP_HEADER:
        return
    segment[16:18] = b"\0\0"
    src = int.from_bytes(data[12:16], "big")
    dst = int.from_bytes(data[16:20], "big")
    total = pseudo_header_sum(src, dst, PROTO_TCP, len(segment))
    data[hlen + 16 : hlen + 18] = internet_checksum(bytes(segment), total).to_bytes(2, "big")
