"""Ethernet II frames (IEEE 802.3 with an EtherType; no 802.1Q, no LLC).

``EthernetFrame.parse`` accepts any frame of at least 14 bytes whose type field is an EtherType
(>= 0x0600); the payload keeps any padding (the layer above trims by its own length field).
``build`` writes the header back exactly; it does not pad to the 60-byte minimum (TAP devices and
the kernel do not need it, and padding would break ``parse(build(x)) == x``).
"""

from __future__ import annotations

import struct
from typing import NamedTuple

from pystack.wire.addresses import mac_to_str
from pystack.wire.errors import MalformedPacket

ETHERTYPE_IPV4 = 0x0800
ETHERTYPE_ARP = 0x0806
ETHERTYPE_IPV6 = 0x86DD
ETHERTYPE_VLAN = 0x8100
HEADER_LENGTH = 14

_header = struct.Struct("!6s6sH")

_TYPE_NAMES = {
    ETHERTYPE_IPV4: "IPv4",
    ETHERTYPE_ARP: "ARP",
    ETHERTYPE_IPV6: "IPv6",
    ETHERTYPE_VLAN: "802.1Q",
}


class EthernetFrame(NamedTuple):
    dst: bytes
    src: bytes
    ethertype: int
    payload: bytes

    @classmethod
    def parse(cls, data: bytes | bytearray | memoryview) -> EthernetFrame:
        if len(data) < HEADER_LENGTH:
            raise MalformedPacket("ethernet.truncated", f"{len(data)} bytes, need 14")
        dst, src, ethertype = _header.unpack_from(data)
        if ethertype < 0x0600:
            raise MalformedPacket("ethernet.not_ethertype", f"802.3 length field {ethertype}")
        return cls(dst, src, ethertype, bytes(data[HEADER_LENGTH:]))

    def build(self) -> bytes:
        if len(self.dst) != 6 or len(self.src) != 6:
            raise ValueError("MAC addresses are 6 bytes")
        return _header.pack(self.dst, self.src, self.ethertype) + self.payload

    def summary(self) -> str:
        name = _TYPE_NAMES.get(self.ethertype, "unknown")
        return (
            f"{mac_to_str(self.src)} > {mac_to_str(self.dst)}, ethertype {name} "
            f"(0x{self.ethertype:04x}), length {HEADER_LENGTH + len(self.payload)}"
        )
