"""UDP datagrams (RFC 768) with the IPv4 pseudo-header checksum.

``parse`` needs the IPv4 source and destination for the checksum. A zero checksum means "none"
(allowed over IPv4); a computed zero is sent as 0xFFFF. The length field must fit the IP payload;
bytes beyond it are trimmed (as Linux does).
"""

from __future__ import annotations

import struct
from typing import NamedTuple

from pystack.wire.checksum import fold, pseudo_header_sum, raw_total, verify
from pystack.wire.errors import MalformedPacket

HEADER_LENGTH = 8
PROTO_UDP = 17
_header = struct.Struct("!HHHH")


class UDPDatagram(NamedTuple):
    src_port: int
    dst_port: int
    payload: bytes

    @classmethod
    def parse(
        cls, data: bytes | bytearray | memoryview, src: int, dst: int, verify_checksum: bool = True
    ) -> UDPDatagram:
        size = len(data)
        if size < HEADER_LENGTH:
            raise MalformedPacket("udp.truncated", f"{size} bytes, need 8")
        sport, dport, length, csum = _header.unpack_from(data)
        if length < HEADER_LENGTH or length > size:
            raise MalformedPacket("udp.bad_length", f"length field {length}, have {size}")
        if (
            csum
            and verify_checksum
            and not verify(data[:length], pseudo_header_sum(src, dst, PROTO_UDP, length))
        ):
            raise MalformedPacket("udp.bad_checksum")
        return cls(sport, dport, bytes(data[HEADER_LENGTH:length]))

    def build(self, src: int, dst: int, checksum: int | None = None) -> bytes:
        length = HEADER_LENGTH + len(self.payload)
        if length > 65535:
            raise ValueError(f"UDP datagram of {length} bytes exceeds 65535")
        if checksum is None:
            # The header's own words are summed directly: no copy of the payload is made.
            total = self.src_port + self.dst_port + length + raw_total(self.payload)
            checksum = (
                ~fold(total + pseudo_header_sum(src, dst, PROTO_UDP, length)) & 0xFFFF or 0xFFFF
            )
        return _header.pack(self.src_port, self.dst_port, length, checksum) + self.payload

    def summary(self) -> str:
        return f"UDP {self.src_port} > {self.dst_port}, length {len(self.payload)}"
