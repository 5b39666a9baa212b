"""ARP for IPv4 over Ethernet (RFC 826).

Only the Ethernet/IPv4 combination (htype 1, ptype 0x0800, hlen 6, plen 4) is valid here; any
other is ``MalformedPacket("arp.unsupported")``. Trailing bytes (Ethernet padding) are ignored.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

from pystack.wire.addresses import ip_to_str, mac_to_str
from pystack.wire.errors import MalformedPacket

OP_REQUEST = 1
OP_REPLY = 2
LENGTH = 28

_packet = struct.Struct("!HHBBH6sI6sI")


class ARPPacket(NamedTuple):
    operation: int
    sender_mac: bytes
    sender_ip: int
    target_mac: bytes
    target_ip: int

    @classmethod
    def parse(cls, data: bytes | bytearray | memoryview) -> ARPPacket:
        if len(data) < LENGTH:
            raise MalformedPacket("arp.truncated", f"{len(data)} bytes, need 28")
        htype, ptype, hlen, plen, op, smac, sip, tmac, tip = _packet.unpack_from(data)
        if htype != 1 or ptype != 0x0800 or hlen != 6 or plen != 4:
            raise MalformedPacket("arp.unsupported", f"htype {htype} ptype 0x{ptype:04x}")
        if op not in (OP_REQUEST, OP_REPLY):
            raise MalformedPacket("arp.bad_operation", f"operation {op}")
        return cls(op, smac, sip, tmac, tip)

    def build(self) -> bytes:
        # struct's "6s" would silently pad or cut a MAC of the wrong length.
        if len(self.sender_mac) != 6 or len(self.target_mac) != 6:
            raise ValueError("MAC addresses are 6 bytes")
        return _packet.pack(
            1,
            0x0800,
            6,
            4,
            self.operation,
            self.sender_mac,
            self.sender_ip,
            self.target_mac,
            self.target_ip,
        )

    def summary(self) -> str:
        if self.operation == OP_REQUEST:
            return f"ARP, Request who-has {ip_to_str(self.target_ip)} tell {ip_to_str(self.sender_ip)}, length 28"
        return (
            f"ARP, Reply {ip_to_str(self.sender_ip)} is-at {mac_to_str(self.sender_mac)}, length 28"
        )
