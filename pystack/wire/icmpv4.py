"""ICMPv4 messages (RFC 792, RFC 1191 for fragmentation-needed).

One value type, ``ICMPv4Message(type, code, rest, payload)``, where ``rest`` is the 32-bit word
after the checksum; properties read it per type (echo identifier and sequence, next-hop MTU,
parameter-problem pointer). Error messages (destination unreachable, time exceeded, parameter
problem) must quote at least an IPv4 header plus 8 bytes; ``quoted_packet`` parses that quote.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

from pystack.wire.checksum import internet_checksum, verify
from pystack.wire.errors import MalformedPacket
from pystack.wire.ipv4 import IPv4Packet

ECHO_REPLY = 0
DESTINATION_UNREACHABLE = 3
SOURCE_QUENCH = 4
REDIRECT = 5
ECHO_REQUEST = 8
TIME_EXCEEDED = 11
PARAMETER_PROBLEM = 12
LAST_KNOWN_TYPE = 18  # address mask reply; RFC 792/950 query types end here

# destination-unreachable codes
NET_UNREACHABLE = 0
HOST_UNREACHABLE = 1
PROTOCOL_UNREACHABLE = 2
PORT_UNREACHABLE = 3
FRAGMENTATION_NEEDED = 4
ADMIN_PROHIBITED = 13
# time-exceeded codes
TTL_EXCEEDED = 0
REASSEMBLY_TIME_EXCEEDED = 1

ERROR_TYPES = frozenset({DESTINATION_UNREACHABLE, TIME_EXCEEDED, PARAMETER_PROBLEM})
HEADER_LENGTH = 8
QUOTE_MINIMUM = 28  # RFC 792: the original IP header plus the first 64 bits of its data

_header = struct.Struct("!BBHI")

_UNREACHABLE_NAMES = {
    NET_UNREACHABLE: "net",
    HOST_UNREACHABLE: "host",
    PROTOCOL_UNREACHABLE: "protocol",
    PORT_UNREACHABLE: "port",
    FRAGMENTATION_NEEDED: "need-frag",
    ADMIN_PROHIBITED: "admin-prohibited",
}


class ICMPv4Message(NamedTuple):
    type: int
    code: int
    rest: int
    payload: bytes

    @classmethod
    def parse(
        cls, data: bytes | bytearray | memoryview, verify_checksum: bool = True
    ) -> ICMPv4Message:
        if len(data) < HEADER_LENGTH:
            raise MalformedPacket("icmp.truncated", f"{len(data)} bytes, need 8")
        if verify_checksum and not verify(data):
            raise MalformedPacket("icmp.bad_checksum")
        kind, code, _csum, rest = _header.unpack_from(data)
        payload = bytes(data[HEADER_LENGTH:])
        if kind in ERROR_TYPES and (len(payload) < QUOTE_MINIMUM or payload[0] >> 4 != 4):
            raise MalformedPacket("icmp.bad_quote", f"type {kind} quotes {len(payload)} bytes")
        return cls(kind, code, rest, payload)

    def build(self, checksum: int | None = None) -> bytes:
        data = _header.pack(self.type, self.code, 0, self.rest) + self.payload
        if checksum is None:
            checksum = internet_checksum(data)
        return data[:2] + checksum.to_bytes(2, "big") + data[4:]

    # constructors ---------------------------------------------------------------------------
    @classmethod
    def echo_request(cls, identifier: int, sequence: int, data: bytes = b"") -> ICMPv4Message:
        return cls(ECHO_REQUEST, 0, identifier << 16 | sequence, data)

    @classmethod
    def echo_reply(cls, identifier: int, sequence: int, data: bytes = b"") -> ICMPv4Message:
        return cls(ECHO_REPLY, 0, identifier << 16 | sequence, data)

    @classmethod
    def destination_unreachable(
        cls, code: int, quote: bytes, next_hop_mtu: int = 0
    ) -> ICMPv4Message:
        return cls(DESTINATION_UNREACHABLE, code, next_hop_mtu & 0xFFFF, quote)

    @classmethod
    def time_exceeded(cls, code: int, quote: bytes) -> ICMPv4Message:
        return cls(TIME_EXCEEDED, code, 0, quote)

    @classmethod
    def parameter_problem(cls, pointer: int, quote: bytes) -> ICMPv4Message:
        return cls(PARAMETER_PROBLEM, 0, (pointer & 0xFF) << 24, quote)

    # readers --------------------------------------------------------------------------------
    @property
    def identifier(self) -> int:
        return self.rest >> 16

    @property
    def sequence(self) -> int:
        return self.rest & 0xFFFF

    @property
    def next_hop_mtu(self) -> int:
        return self.rest & 0xFFFF

    @property
    def pointer(self) -> int:
        return self.rest >> 24

    @property
    def is_error(self) -> bool:
        return self.type in ERROR_TYPES

    def quoted_packet(self) -> IPv4Packet:
        """The quoted original datagram: its header and however much payload was quoted."""
        quote = self.payload
        hlen = (quote[0] & 15) * 4 if quote else 0
        if not self.is_error or hlen < 20 or len(quote) < hlen:
            raise MalformedPacket("icmp.bad_quote", "no quoted IPv4 header")
        # The quoted packet is truncated: parse a copy whose total length fits what is there.
        fixed = quote[:2] + len(quote).to_bytes(2, "big") + quote[4:]
        try:
            return IPv4Packet.parse(fixed, verify_checksum=False)
        except MalformedPacket as error:
            raise MalformedPacket("icmp.bad_quote", error.reason) from None

    def summary(self) -> str:
        size = HEADER_LENGTH + len(self.payload)
        if self.type in (ECHO_REQUEST, ECHO_REPLY):
            what = "echo request" if self.type == ECHO_REQUEST else "echo reply"
            return f"ICMP {what}, id {self.identifier}, seq {self.sequence}, length {size}"
        if self.type == DESTINATION_UNREACHABLE:
            name = _UNREACHABLE_NAMES.get(self.code, f"code-{self.code}")
            mtu = f" (mtu {self.next_hop_mtu})" if self.code == FRAGMENTATION_NEEDED else ""
            return f"ICMP {name} unreachable{mtu}, length {size}"
        if self.type == TIME_EXCEEDED:
            what = (
                "ttl"
                if self.code == TTL_EXCEEDED
                else "ip reassembly"
                if self.code == 1
                else f"code-{self.code}"
            )
            return f"ICMP time exceeded in-transit ({what}), length {size}"
        if self.type == PARAMETER_PROBLEM:
            return f"ICMP parameter problem - octet {self.pointer}, length {size}"
        return f"ICMP type-#{self.type} code {self.code}, length {size}"
