"""IGMP messages as an IGMPv2 host sees them (RFC 2236, with RFC 1112 and RFC 3376 for versions).

One value type, ``IGMPMessage(type, max_response_time, group, extra)``: the 8-byte message of
RFC 2236 2 plus whatever follows it. RFC 2236 2.5 says to ignore bytes past the eighth, but the
checksum covers them and ``build`` must invert ``parse``, so they are kept verbatim in ``extra``
(an IGMPv3 query's fields). Unknown types parse too (RFC 2236 2.1: the host ignores them).

A query's version follows RFC 3376 7.1: 8 bytes with a zero Max Resp Time is IGMPv1, 8 bytes with
a non-zero one IGMPv2, 12 bytes or more IGMPv3; any other length is malformed. Reports and leaves
must name a multicast group; a query names 0 (general) or a multicast group (group-specific).
"""

from __future__ import annotations

import struct
from typing import NamedTuple

from pystack.wire.addresses import ip_to_str
from pystack.wire.checksum import internet_checksum, verify
from pystack.wire.errors import MalformedPacket

MEMBERSHIP_QUERY = 0x11
V1_MEMBERSHIP_REPORT = 0x12
V2_MEMBERSHIP_REPORT = 0x16
LEAVE_GROUP = 0x17
V3_MEMBERSHIP_REPORT = 0x22  # RFC 3376: only named in summaries
HEADER_LENGTH = 8
V3_QUERY_MINIMUM = 12  # RFC 3376 4.1
ALL_SYSTEMS = 0xE0000001  # 224.0.0.1: general queries; never reported (RFC 2236 6)
ALL_ROUTERS = 0xE0000002  # 224.0.0.2: where leaves go (RFC 2236 3)
V1_MAX_RESPONSE = 100  # tenths of a second: RFC 2236 4, an IGMPv1 query counts as 10 s

_header = struct.Struct("!BBHI")
_GROUP_TYPES = frozenset({V1_MEMBERSHIP_REPORT, V2_MEMBERSHIP_REPORT, LEAVE_GROUP})


def _is_multicast(address: int) -> bool:
    return address >> 28 == 0xE


class IGMPMessage(NamedTuple):
    type: int
    max_response_time: int  # the raw byte: tenths of a second (v2), a coded value (v3 query)
    group: int
    extra: bytes = b""  # bytes after the 8-byte message (IGMPv3 query fields), kept verbatim

    @classmethod
    def parse(
        cls, data: bytes | bytearray | memoryview, verify_checksum: bool = True
    ) -> IGMPMessage:
        size = len(data)
        if size < HEADER_LENGTH:
            raise MalformedPacket("igmp.truncated", f"{size} bytes, need 8")
        if verify_checksum and not verify(data):
            raise MalformedPacket("igmp.bad_checksum")
        kind, max_response, _checksum, group = _header.unpack_from(data)
        if kind == MEMBERSHIP_QUERY:
            if HEADER_LENGTH < size < V3_QUERY_MINIMUM:  # RFC 3376 7.1: silently ignored
                raise MalformedPacket("igmp.bad_query_length", f"query of {size} bytes")
            if group and not _is_multicast(group):
                raise MalformedPacket("igmp.bad_group", f"query for {ip_to_str(group)}")
        elif kind in _GROUP_TYPES and not _is_multicast(group):
            raise MalformedPacket("igmp.bad_group", f"type {kind:#04x} for {ip_to_str(group)}")
        return cls(kind, max_response, group, bytes(data[HEADER_LENGTH:]))

    def build(self, checksum: int | None = None) -> bytes:
        data = _header.pack(self.type, self.max_response_time, 0, self.group) + self.extra
        if checksum is None:
            checksum = internet_checksum(data)
        return data[:2] + checksum.to_bytes(2, "big") + data[4:]

    # constructors ---------------------------------------------------------------------------
    @classmethod
    def query(cls, group: int = 0, max_response_time: int = V1_MAX_RESPONSE) -> IGMPMessage:
        """An IGMPv2 query (general when ``group`` is 0); ``max_response_time`` 0 makes it v1."""
        return cls(MEMBERSHIP_QUERY, max_response_time, group)

    @classmethod
    def v2_report(cls, group: int) -> IGMPMessage:
        return cls(V2_MEMBERSHIP_REPORT, 0, group)

    @classmethod
    def v1_report(cls, group: int) -> IGMPMessage:
        return cls(V1_MEMBERSHIP_REPORT, 0, group)

    @classmethod
    def leave(cls, group: int) -> IGMPMessage:
        return cls(LEAVE_GROUP, 0, group)

    # readers --------------------------------------------------------------------------------
    @property
    def is_query(self) -> bool:
        return self.type == MEMBERSHIP_QUERY

    @property
    def query_version(self) -> int:
        """1, 2 or 3 for a query (RFC 3376 7.1), 0 for anything else."""
        if self.type != MEMBERSHIP_QUERY:
            return 0
        if len(self.extra) >= V3_QUERY_MINIMUM - HEADER_LENGTH:
            return 3
        return 2 if self.max_response_time else 1

    @property
    def max_response_seconds(self) -> float:
        """How long a host may wait before answering this query."""
        code = self.max_response_time
        version = self.query_version
        if version == 1:
            return V1_MAX_RESPONSE / 10
        if version == 3 and code >= 128:  # RFC 3376 4.1.1: floating-point code
            mantissa, exponent = code & 0x0F, (code >> 4) & 0x07
            return ((mantissa | 0x10) << (exponent + 3)) / 10
        return code / 10

    def summary(self) -> str:
        size = HEADER_LENGTH + len(self.extra)
        group = ip_to_str(self.group)
        if self.type == MEMBERSHIP_QUERY:
            version = self.query_version
            target = f" for {group}" if self.group else ""
            wait = f", max resp {self.max_response_seconds:g} s" if version != 1 else ""
            return f"IGMP query v{version}{target}{wait}, length {size}"
        if self.type == V2_MEMBERSHIP_REPORT:
            return f"IGMP v2 report {group}, length {size}"
        if self.type == V1_MEMBERSHIP_REPORT:
            return f"IGMP v1 report {group}, length {size}"
        if self.type == LEAVE_GROUP:
            return f"IGMP leave {group}, length {size}"
        if self.type == V3_MEMBERSHIP_REPORT:
            return f"IGMP v3 report, length {size}"
        return f"IGMP type-{self.type:#04x}, length {size}"
