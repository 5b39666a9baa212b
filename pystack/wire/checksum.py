"""The Internet checksum (RFC 1071), computed without a per-byte Python loop.

The one's complement sum of 16-bit words is congruent to the whole buffer read as one big-endian
integer modulo 0xFFFF (because 2**16 == 1 mod 0xFFFF), so a single ``int.from_bytes`` and one
modulo do the work in C. The only care needed is the 0 / 0xFFFF ambiguity of one's complement
zero: a non-zero sum that is a multiple of 0xFFFF is 0xFFFF.

Entry points: ``ones_complement_sum``, ``internet_checksum``, ``pseudo_header_sum``,
``verify``.
"""

from __future__ import annotations

_from_bytes = int.from_bytes


def raw_total(data: bytes | bytearray | memoryview) -> int:
    """The buffer as a big-endian integer, zero-padded to an even length (not yet folded)."""
    value = _from_bytes(data, "big")
    if len(data) & 1:
        value <<= 8
    return value


def fold(total: int) -> int:
    """Fold an unreduced total into a 16-bit one's complement sum (0 only for an all-zero total)."""
    if total == 0:
        return 0
    folded = total % 0xFFFF
    return folded if folded else 0xFFFF


def ones_complement_sum(data: bytes | bytearray | memoryview, initial: int = 0) -> int:
    """One's complement sum of ``data`` (plus an unreduced ``initial`` total)."""
    return fold(raw_total(data) + initial)


def internet_checksum(data: bytes | bytearray | memoryview, initial: int = 0) -> int:
    """The checksum field value for ``data`` whose checksum field is zero."""
    return ~fold(raw_total(data) + initial) & 0xFFFF


def verify(data: bytes | bytearray | memoryview, initial: int = 0) -> bool:
    """True when ``data`` (checksum field included) sums to 0xFFFF, i.e. the checksum is right."""
    total = raw_total(data) + initial
    return total != 0 and total % 0xFFFF == 0


def pseudo_header_sum(src: int, dst: int, protocol: int, length: int) -> int:
    """Unreduced total of the IPv4 pseudo-header (RFC 793 / RFC 768): addresses, protocol, length."""
    return src + dst + protocol + length
