"""Independent reference pieces for the wire tests.

A slow, obviously-correct RFC 1071 checksum (a word loop with end-around carry) and raw packet
builders written straight from the RFC header layouts with ``struct``. Nothing here imports the
codecs under test, so crafted inputs (bad lengths, bad flags, valid checksums over invalid
headers) do not depend on the code they check.
"""

from __future__ import annotations

import struct
from typing import Any

SRC = 0x0A000001  # 10.0.0.1
DST = 0x0A000002  # 10.0.0.2
MAC_A = bytes.fromhex("020000000001")
MAC_B = bytes.fromhex("020000000002")
BROADCAST = b"\xff" * 6


def rfc1071_sum(data: bytes) -> int:
    """One's complement sum of 16-bit words, folding the carry after every addition."""
    if len(data) % 2:
        data += b"\x00"
    total = 0
    for i in range(0, len(data), 2):
        total += data[i] << 8 | data[i + 1]
        total = (total & 0xFFFF) + (total >> 16)
    return total


def rfc1071_checksum(data: bytes) -> int:
    return ~rfc1071_sum(data) & 0xFFFF


def pseudo_header(src: int, dst: int, protocol: int, length: int) -> bytes:
    return struct.pack("!IIBBH", src, dst, 0, protocol, length)


def with_checksum(data: bytes, at: int, checksum: int) -> bytes:
    return data[:at] + checksum.to_bytes(2, "big") + data[at + 2 :]


def flip_bit(data: bytes, bit: int) -> bytes:
    """``data`` with bit number ``bit`` (0 = most significant bit of byte 0) inverted."""
    index, shift = divmod(bit, 8)
    return data[:index] + bytes((data[index] ^ (0x80 >> shift),)) + data[index + 1 :]


def ethernet_raw(dst: bytes, src: bytes, ethertype: int, payload: bytes = b"") -> bytes:
    return dst + src + struct.pack("!H", ethertype) + payload


def arp_raw(
    operation: int = 1,
    sender_mac: bytes = MAC_A,
    sender_ip: int = SRC,
    target_mac: bytes = b"\x00" * 6,
    target_ip: int = DST,
    *,
    htype: int = 1,
    ptype: int = 0x0800,
    hlen: int = 6,
    plen: int = 4,
) -> bytes:
    return struct.pack(
        "!HHBBH6sI6sI",
        htype,
        ptype,
        hlen,
        plen,
        operation,
        sender_mac,
        sender_ip,
        target_mac,
        target_ip,
    )


def ipv4_header(
    *,
    src: int = SRC,
    dst: int = DST,
    protocol: int = 17,
    payload_length: int = 0,
    total_length: int | None = None,
    version: int = 4,
    ihl: int | None = None,
    tos: int = 0,
    identification: int = 0,
    flags_fragment: int = 0,
    ttl: int = 64,
    options: bytes = b"",
    checksum: int | None = None,
) -> bytes:
    """An IPv4 header (RFC 791 figure 4) with a correct checksum unless one is given."""
    if ihl is None:
        ihl = (20 + len(options)) // 4
    if total_length is None:
        total_length = 20 + len(options) + payload_length
    header = (
        struct.pack(
            "!BBHHHBBHII",
            version << 4 | ihl,
            tos,
            total_length,
            identification,
            flags_fragment,
            ttl,
            protocol,
            0,
            src,
            dst,
        )
        + options
    )
    if checksum is None:
        checksum = rfc1071_checksum(header[: ihl * 4] if ihl * 4 <= len(header) else header)
    return with_checksum(header, 10, checksum)


def ipv4_raw(payload: bytes, **fields: Any) -> bytes:
    return ipv4_header(payload_length=len(payload), **fields) + payload


def icmp_raw(
    kind: int, code: int = 0, rest: int = 0, payload: bytes = b"", checksum: int | None = None
) -> bytes:
    data = struct.pack("!BBHI", kind, code, 0, rest) + payload
    return with_checksum(data, 2, rfc1071_checksum(data) if checksum is None else checksum)


def udp_raw(
    src_port: int,
    dst_port: int,
    payload: bytes = b"",
    *,
    src: int = SRC,
    dst: int = DST,
    length: int | None = None,
    checksum: int | None = None,
) -> bytes:
    """A UDP datagram (RFC 768); the checksum covers ``length`` bytes, 0 is sent as 0xFFFF."""
    if length is None:
        length = 8 + len(payload)
    data = struct.pack("!HHHH", src_port, dst_port, length, 0) + payload
    if checksum is None:
        covered = data[:length]
        checksum = rfc1071_checksum(pseudo_header(src, dst, 17, length) + covered) or 0xFFFF
    return with_checksum(data, 6, checksum)


def tcp_raw(
    *,
    src_port: int = 40000,
    dst_port: int = 80,
    seq: int = 0,
    ack: int = 0,
    flags: int = 0x002,
    window: int = 65535,
    urgent: int = 0,
    options: bytes = b"",
    payload: bytes = b"",
    data_offset: int | None = None,
    src: int = SRC,
    dst: int = DST,
    checksum: int | None = None,
) -> bytes:
    """A TCP segment (RFC 9293 figure 1); ``flags`` holds the 12 bits after the data offset."""
    if data_offset is None:
        data_offset = (20 + len(options)) // 4
    data = (
        struct.pack(
            "!HHIIHHHH", src_port, dst_port, seq, ack, data_offset << 12 | flags, window, 0, urgent
        )
        + options
        + payload
    )
    if checksum is None:
        checksum = rfc1071_checksum(pseudo_header(src, dst, 6, len(data)) + data)
    return with_checksum(data, 16, checksum)
