"""What a DHCP ACK grants: the ``Lease`` value, and how it is read from the message.

Times are absolute (the client's ``now`` base): T1 and T2 default to 0.5 and 0.875 of the lease
(RFC 2131 4.4.5) and fall back to those when the server's are inconsistent; an infinite lease
(0xFFFFFFFF) has infinite times. Without a usable subnet mask the prefix is the address's class
(as lwIP). Entry points: ``Lease``, ``lease_from``, ``prefix_from_mask``.
"""

from __future__ import annotations

from dataclasses import dataclass

from pystack.wire import dhcp
from pystack.wire.dhcp import DHCPMessage

INFINITY = float("inf")


@dataclass(frozen=True, slots=True)
class Lease:
    address: int
    prefix_length: int
    router: int | None
    dns_servers: tuple[int, ...]
    server: int
    lease_time: float  # seconds; inf for an infinite lease
    obtained_at: float  # when the REQUEST that got it was first sent
    renewal_at: float  # T1, absolute
    rebinding_at: float  # T2, absolute
    expires_at: float
    hostname: str | None = None


def prefix_from_mask(mask: int | None, address: int) -> int:
    """The prefix length of a contiguous mask; without a usable one, the address's class."""
    if mask is not None:
        length = bin(mask).count("1")
        if mask == (0xFFFFFFFF << (32 - length)) & 0xFFFFFFFF and 0 < length <= 32:
            return length
    return 8 if address >> 31 == 0 else 16 if address >> 30 == 2 else 24


def lease_from(message: DHCPMessage, server: int, lease_time: int, start: float) -> Lease:
    """The lease an ACK grants; T1 and T2 default to 0.5 and 0.875 of it (RFC 2131 4.4.5)."""
    if lease_time == dhcp.INFINITE_LEASE:
        length = t1 = t2 = INFINITY
    else:
        length = float(lease_time)
        t1 = float(message.renewal_time if message.renewal_time is not None else length / 2)
        t2 = float(message.rebinding_time if message.rebinding_time is not None else length * 0.875)
        if not t1 <= t2 <= length:  # inconsistent times from the server: use the defaults
            t1, t2 = length / 2, length * 0.875
    routers = message.routers
    return Lease(
        message.yiaddr,
        prefix_from_mask(message.subnet_mask, message.yiaddr),
        routers[0] if routers else None,
        message.dns_servers,
        server,
        length,
        start,
        start + t1,
        start + t2,
        start + length,
        message.hostname,
    )
