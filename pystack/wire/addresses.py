"""IPv4 and MAC address conversions between the wire forms and text.

Inside the stack an IPv4 address is an ``int`` (fast to compare, mask and hash) and a MAC address
is 6 ``bytes``. These helpers convert at the edges (configuration, traces, the socket API).
"""

from __future__ import annotations

import string
import struct

from pystack.wire.errors import MalformedPacket

BROADCAST_MAC = b"\xff" * 6
ZERO_MAC = b"\x00" * 6
LIMITED_BROADCAST = 0xFFFFFFFF

_ip_struct = struct.Struct("!I")
_DECIMAL = frozenset(string.digits)
_HEXADECIMAL = frozenset(string.hexdigits)


def _is_decimal(text: str) -> bool:
    """ASCII digits only (``str.isdigit`` also accepts other scripts' digits and superscripts)."""
    return bool(text) and _DECIMAL.issuperset(text)


def ip_from_str(text: str) -> int:
    """Dotted quad (four decimal parts 0-255) to int; ``ValueError`` on anything else."""
    parts = text.split(".") if isinstance(text, str) else []
    if len(parts) != 4 or not all(_is_decimal(p) and len(p) <= 3 and int(p) <= 255 for p in parts):
        raise ValueError(f"not an IPv4 address: {text!r}")
    a, b, c, d = (int(p) for p in parts)
    return a << 24 | b << 16 | c << 8 | d


def ip_to_str(address: int) -> str:
    """Int to dotted quad."""
    return f"{address >> 24 & 255}.{address >> 16 & 255}.{address >> 8 & 255}.{address & 255}"


def ip_to_bytes(address: int) -> bytes:
    return _ip_struct.pack(address)


def ip_from_bytes(data: bytes) -> int:
    if len(data) != 4:
        raise MalformedPacket("address.bad_length", f"IPv4 address of {len(data)} bytes")
    return int(_ip_struct.unpack(data)[0])


def parse_cidr(text: str) -> tuple[int, int]:
    """``"10.0.0.2/24"`` to ``(address, prefix_length)``; ``ValueError`` on bad input."""
    address, slash, prefix = text.partition("/")
    length = 32 if not slash else int(prefix) if _is_decimal(prefix) else -1
    if not 0 <= length <= 32:
        raise ValueError(f"bad prefix length in {text!r}")
    return ip_from_str(address), length


def prefix_mask(length: int) -> int:
    return (0xFFFFFFFF << (32 - length)) & 0xFFFFFFFF


def mac_to_str(mac: bytes) -> str:
    return ":".join(f"{b:02x}" for b in mac)


def mac_from_str(text: str) -> bytes:
    parts = text.split(":")
    # int(p, 16) alone would also accept " f", "+f" and "-0".
    if len(parts) != 6 or not all(len(p) == 2 and _HEXADECIMAL.issuperset(p) for p in parts):
        raise ValueError(f"not a MAC address: {text!r}")
    return bytes(int(p, 16) for p in parts)


def is_multicast(address: int) -> bool:
    return address >> 28 == 0xE


def is_loopback(address: int) -> bool:
    return address >> 24 == 127
