"""Reading capture files for ``pystack show``: classic pcap and pcapng.

Classic pcap in either byte order, microsecond or nanosecond timestamps; pcapng's section
header, interface description, enhanced and simple packet blocks (other blocks are skipped).
Link types: Ethernet (1), raw IP (101, and 228 for IPv4 only), Linux cooked captures (113 SLL,
276 SLL2, what ``tcpdump -i any`` writes) and BSD loopback (0). Each packet comes back as its
time and its IPv4 packet or Ethernet frame. A truncated or malformed file raises
``CaptureError`` with a one-line message.

Entry points: ``read_capture``, ``is_capture``, ``Captured``, ``CaptureError``.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

PCAP_MAGICS = {
    b"\xd4\xc3\xb2\xa1": ("<", 1e-6),
    b"\xa1\xb2\xc3\xd4": (">", 1e-6),
    b"\x4d\x3c\xb2\xa1": ("<", 1e-9),
    b"\xa1\xb2\x3c\x4d": (">", 1e-9),
}
PCAPNG_SHB = b"\x0a\x0d\x0d\x0a"
LINKTYPE_NULL = 0
LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101
LINKTYPE_LINUX_SLL = 113
LINKTYPE_IPV4 = 228
LINKTYPE_LINUX_SLL2 = 276
SUPPORTED = (
    LINKTYPE_NULL,
    LINKTYPE_ETHERNET,
    LINKTYPE_RAW,
    LINKTYPE_LINUX_SLL,
    LINKTYPE_IPV4,
    LINKTYPE_LINUX_SLL2,
)
MAX_PACKETS = 2_000_000  # packets read from one capture (the rest are counted, not read)


class CaptureError(Exception):
    """Not a readable capture; the message is one line for people."""


@dataclass(frozen=True)
class Captured:
    time: float  # seconds (the capture's own clock)
    link: str  # "ethernet" or "ip"
    data: bytes  # the Ethernet frame or the IP packet


def is_capture(start: bytes) -> bool:
    return start[:4] in PCAP_MAGICS or start[:4] == PCAPNG_SHB


def read_capture(path: str | Path) -> tuple[list[Captured], int]:
    """The packets of a pcap or pcapng file and how many were skipped (not IPv4/ARP framing we
    know, or past ``MAX_PACKETS``)."""
    data = Path(path).read_bytes()
    if data[:4] in PCAP_MAGICS:
        return _read_pcap(data, str(path))
    if data[:4] == PCAPNG_SHB:
        return _read_pcapng(data, str(path))
    raise CaptureError(f"{path}: not a pcap or pcapng file")


def _strip_link(linktype: int, packet: bytes) -> tuple[str, bytes] | None:
    """The packet as an Ethernet frame or an IP packet, None if it is neither."""
    if linktype == LINKTYPE_ETHERNET:
        return "ethernet", packet
    if linktype in (LINKTYPE_RAW, LINKTYPE_IPV4):
        return "ip", packet
    if linktype == LINKTYPE_LINUX_SLL and len(packet) >= 16:
        return _by_protocol(packet[14:16], packet[16:])
    if linktype == LINKTYPE_LINUX_SLL2 and len(packet) >= 20:
        return _by_protocol(packet[0:2], packet[20:])
    if linktype == LINKTYPE_NULL and len(packet) >= 4:
        family = struct.unpack("<I", packet[:4])[0]
        if family == 2 or family == 2 << 24:  # AF_INET, in either byte order
            return "ip", packet[4:]
    return None


def _by_protocol(ethertype: bytes, payload: bytes) -> tuple[str, bytes] | None:
    if ethertype == b"\x08\x00":
        return "ip", payload
    if ethertype == b"\x08\x06":  # ARP: give it an Ethernet header so it reads like one
        return "ethernet", b"\xff" * 6 + b"\x00" * 6 + b"\x08\x06" + payload
    return None


def _read_pcap(data: bytes, name: str) -> tuple[list[Captured], int]:
    order, unit = PCAP_MAGICS[data[:4]]
    if len(data) < 24:
        raise CaptureError(f"{name}: truncated pcap header")
    linktype = struct.unpack(order + "I", data[20:24])[0] & 0x0FFFFFFF
    if linktype not in SUPPORTED:
        raise CaptureError(f"{name}: pcap link type {linktype} is not one pystack show reads")
    record = struct.Struct(order + "IIII")
    packets: list[Captured] = []
    skipped = 0
    offset = 24
    while offset < len(data):
        if offset + 16 > len(data):
            raise CaptureError(f"{name}: truncated (a packet header cut off at byte {offset})")
        seconds, fraction, captured, _length = record.unpack_from(data, offset)
        offset += 16
        if offset + captured > len(data):
            raise CaptureError(f"{name}: truncated (a packet cut off at byte {offset})")
        packet = data[offset : offset + captured]
        offset += captured
        stripped = _strip_link(linktype, packet)
        if stripped is None or len(packets) >= MAX_PACKETS:
            skipped += 1
            continue
        packets.append(Captured(seconds + fraction * unit, *stripped))
    return packets, skipped


def _read_pcapng(data: bytes, name: str) -> tuple[list[Captured], int]:
    packets: list[Captured] = []
    skipped = 0
    interfaces: list[tuple[int, float]] = []  # (link type, seconds per timestamp unit)
    order = "<"
    offset = 0
    while offset < len(data):
        if offset + 12 > len(data):
            raise CaptureError(f"{name}: truncated (a block header cut off at byte {offset})")
        kind_bytes = data[offset : offset + 4]
        if kind_bytes == PCAPNG_SHB:
            magic = data[offset + 8 : offset + 12]
            if magic == b"\x4d\x3c\x2b\x1a":
                order = "<"
            elif magic == b"\x1a\x2b\x3c\x4d":
                order = ">"
            else:
                raise CaptureError(f"{name}: not a pcapng file (bad byte-order magic)")
            interfaces = []
        kind, length = struct.unpack_from(order + "II", data, offset)
        if length < 12 or length % 4 or offset + length > len(data):
            raise CaptureError(f"{name}: truncated or malformed block at byte {offset}")
        body = data[offset + 8 : offset + length - 4]
        offset += length
        if kind == 1:  # interface description
            if len(body) < 8:
                raise CaptureError(f"{name}: malformed interface block")
            linktype = struct.unpack_from(order + "H", body, 0)[0]
            interfaces.append((linktype, _timestamp_unit(body[8:], order)))
        elif kind in (6, 3):  # enhanced packet, simple packet
            if kind == 6:
                if len(body) < 20:
                    raise CaptureError(f"{name}: malformed packet block")
                interface, high, low, captured, _length = struct.unpack_from(order + "IIIII", body)
                packet = body[20 : 20 + captured]
            else:
                interface, high, low = 0, 0, 0
                captured = struct.unpack_from(order + "I", body)[0]
                packet = body[4 : 4 + captured]
            if interface >= len(interfaces) or len(packet) < captured:
                raise CaptureError(f"{name}: malformed packet block (interface or length)")
            linktype, unit = interfaces[interface]
            stripped = _strip_link(linktype, packet)
            if stripped is None or len(packets) >= MAX_PACKETS:
                skipped += 1
                continue
            packets.append(Captured(((high << 32) | low) * unit, *stripped))
    return packets, skipped


def _timestamp_unit(options: bytes, order: str) -> float:
    """The interface's if_tsresol option (default microseconds)."""
    offset = 0
    while offset + 4 <= len(options):
        code, length = struct.unpack_from(order + "HH", options, offset)
        if code == 0:
            break
        if code == 9 and length >= 1:
            value = options[offset + 4]
            return 2.0 ** -(value & 0x7F) if value & 0x80 else 10.0**-value
        offset += 4 + (length + 3) // 4 * 4
    return 1e-6
