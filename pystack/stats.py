"""Counters, and a named reason for every dropped packet.

Every place that discards a packet calls ``Statistics.drop(DropReason.X)``, the one place that
both counts a drop and, when ``--trace`` is on (``on_drop`` set), reports it: with the packet
when the caller passes it, else the trace shows the packet being processed. Malformed packets are
also counted by their codec reason (``"ipv4.bad_checksum"``...), so a fuzzer can see exactly which
check fired. ``Statistics.snapshot()`` is what ``Stack.statistics()`` returns.

Counter names and codec reasons are declared in ``pystack/counters.py`` (``DECLARED``), which the
code that builds a stack passes to ``Statistics``: the tables here refuse any other name
(``KeyError``), whether it is counted or read. (This module sits at the bottom of the layering, so
it is handed the declaration rather than importing it: the declaration names TCP states, ICMP
types and DHCP messages, which live above it.)
"""

from __future__ import annotations

import enum
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar, overload

_T = TypeVar("_T")


class DropReason(enum.Enum):
    # link and Ethernet
    ETHERNET_MALFORMED = "malformed Ethernet frame"
    ETHERNET_NOT_FOR_US = "Ethernet destination is not ours"
    ETHERNET_OWN_SOURCE = "frame carries our own MAC as source"
    ETHERTYPE_UNSUPPORTED = "EtherType not handled (IPv6, VLAN, ...)"
    FRAME_TOO_LARGE = "frame larger than the link MTU"
    # the impairment link (--impair): traced, counted in its own ImpairmentStatistics
    IMPAIRMENT_LOSS = "lost by the impairment (loss=)"
    IMPAIRMENT_MTU = "longer than the impairment's MTU clamp (mtu=)"
    IMPAIRMENT_QUEUE_FULL = "impairment queue full (queue=): tail drop"
    IMPAIRMENT_RULE = "dropped by an impairment rule (drop=)"
    # ARP
    ARP_MALFORMED = "malformed ARP packet"
    ARP_PENDING_OVERFLOW = "too many packets waiting for one ARP resolution"
    ARP_RESOLUTION_FAILED = "no ARP reply after all retries"
    ARP_CACHE_FULL = "ARP cache full of pending entries"
    ARP_BAD_SENDER = "ARP sender address is broadcast, multicast or ours"
    # IPv4
    IPV4_MALFORMED = "malformed IPv4 header"
    IPV4_BAD_CHECKSUM = "IPv4 header checksum mismatch"
    IPV4_NOT_FOR_US = "IPv4 destination is not one of our addresses"
    IPV4_MARTIAN_SOURCE = "IPv4 source is impossible (multicast, broadcast, loopback or ours)"
    IPV4_MARTIAN_DESTINATION = "loopback destination arrived on an external link"
    IPV4_NO_ROUTE = "no route to the destination"
    IPV4_FRAGMENTATION_NEEDED = "packet exceeds the MTU and has DF set"
    IPV4_LOOPBACK_OVERFLOW = "loopback queue full"
    PROTOCOL_UNREACHABLE = "no handler for the IP protocol"
    # reassembly
    FRAGMENT_TIMEOUT = "reassembly timed out"
    FRAGMENT_OVERLAP = "overlapping fragments (the whole datagram is discarded)"
    FRAGMENT_DUPLICATE = "exact duplicate fragment"
    FRAGMENT_INCONSISTENT = "fragment beyond or contradicting the datagram's end"
    FRAGMENT_MEMORY_LIMIT = "reassembly memory bound reached"
    FRAGMENT_TOO_MANY = "too many fragments for one datagram"
    FRAGMENT_TOO_MANY_DATAGRAMS = "too many datagrams in reassembly (the oldest is discarded)"
    FRAGMENT_TOO_LARGE = "reassembled datagram exceeds 65535 bytes"
    # ICMP
    ICMP_MALFORMED = "malformed ICMP message"
    ICMP_BAD_CHECKSUM = "ICMP checksum mismatch"
    ICMP_BROADCAST_ECHO = "echo request to a broadcast or multicast address (ignored)"
    ICMP_UNHANDLED = "ICMP type pystack does not act on"
    ICMP_ERROR_RATE_LIMITED = "ICMP error not sent: rate limit"
    ICMP_ECHO_REPLY_UNCLAIMED = "echo reply nobody waits for (queue full)"
    # TCP: parsing and demultiplexing
    TCP_MALFORMED = "malformed TCP segment"
    TCP_BAD_CHECKSUM = "TCP checksum mismatch"
    TCP_BROADCAST = "TCP segment to a broadcast or multicast address"
    TCP_NO_LISTENER = "TCP segment for a closed port (answered with RST)"
    TCP_CONNECTION_LIMIT = "connection table full, no TIME-WAIT entry to recycle"
    TCP_MEMORY_LIMIT = "buffer memory of all connections at memory_limit"
    # TCP: LISTEN (RFC 9293 3.10.7.2) and the queues
    TCP_LISTEN_RST = "RST to a listener (ignored)"
    TCP_LISTEN_NO_SYN = "segment to a listener without SYN or ACK"
    TCP_SYN_QUEUE_FULL = "SYN queue full and SYN cookies off"
    TCP_ACCEPT_QUEUE_FULL = "accept queue full (listen backlog)"
    TCP_BAD_COOKIE = "ACK to a listener with an invalid or stale SYN cookie"
    # TCP: segment arrival (RFC 9293 3.10.7.3-4, RFC 5961, RFC 7323)
    TCP_BAD_ACK = "ACK outside what we sent (answered with RST)"
    TCP_RST_IGNORED = "RST without an acceptable ACK in SYN-SENT"
    TCP_NO_SYN = "segment without SYN or RST in SYN-SENT"
    TCP_PAWS = "timestamp older than TS.Recent (PAWS)"
    TCP_OUT_OF_WINDOW = "sequence number outside the receive window"
    TCP_RST_NOT_EXACT = "in-window RST not at RCV.NXT (challenge ACK, RFC 5961 3)"
    TCP_RST_IN_TIME_WAIT = "RST in TIME-WAIT (ignored, RFC 1337)"
    TCP_SYN_IN_WINDOW = "SYN in a synchronized state (challenge ACK, RFC 5961 4)"
    TCP_NO_ACK = "segment without ACK in a synchronized state"
    TCP_ACK_UNSENT = "ACK for data not yet sent"
    TCP_ACK_TOO_OLD = "ACK older than SND.UNA - MAX.SND.WND (challenge ACK, RFC 5961 5)"
    TCP_DATA_AFTER_CLOSE = "data arrived after the application closed (answered with RST)"
    TCP_BEYOND_WINDOW = "data beyond the receive buffer (trimmed)"
    TCP_OUT_OF_ORDER_LIMIT = "out-of-order data over the per-connection bound"
    TCP_ICMP_NO_CONNECTION = "ICMP error about no known connection"
    TCP_ICMP_BAD_SEQUENCE = "ICMP error quoting a sequence number we did not send (RFC 5927)"
    # UDP
    UDP_MALFORMED = "malformed UDP datagram"
    UDP_BAD_CHECKSUM = "UDP checksum mismatch"
    UDP_NO_LISTENER = "UDP datagram for a port no endpoint is bound to (ICMP port unreachable)"
    UDP_PEER_MISMATCH = "UDP datagram from a peer other than the connected endpoint's"
    UDP_QUEUE_FULL = "UDP receive queue full (tail drop: the newest datagram is lost)"
    UDP_ICMP_NO_ENDPOINT = "ICMP error about no connected UDP endpoint (ignored)"
    # IGMP
    IGMP_MALFORMED = "malformed IGMP message"
    IGMP_BAD_CHECKSUM = "IGMP checksum mismatch"
    IGMP_UNHANDLED = "IGMP message type a host ignores (RFC 2236 2.1)"
    # DNS (the resolver and the server core)
    DNS_MALFORMED = "malformed DNS message"
    # DHCP (the client and the server)
    DHCP_MALFORMED = "malformed DHCP message"
    DHCP_NOT_OURS = "DHCP reply for another client or transaction (xid, chaddr)"
    DHCP_UNEXPECTED = "DHCP message not expected in this state or missing what it must carry"
    DHCP_POOL_EXHAUSTED = "DHCP request while no address of the pool is free"
    ARP_UNCONFIGURED = "ARP packet while the interface has no address yet (DHCP pending)"


# on_drop(reason, detail, packet, ethernet): ``detail`` is the codec reason of a malformed
# packet ("" otherwise); ``packet`` an ``IPv4Packet``, raw bytes (a link frame when ``ethernet``,
# else an IPv4 packet) or None (the packet being processed).
DropHook = Callable[[DropReason, str, object, bool], None]


_MALFORMED_BY_LAYER = {
    "ethernet": DropReason.ETHERNET_MALFORMED,
    "arp": DropReason.ARP_MALFORMED,
    "ipv4": DropReason.IPV4_MALFORMED,
    "icmp": DropReason.ICMP_MALFORMED,
    "tcp": DropReason.TCP_MALFORMED,
    "udp": DropReason.UDP_MALFORMED,
    "igmp": DropReason.IGMP_MALFORMED,
    "dns": DropReason.DNS_MALFORMED,
    "dhcp": DropReason.DHCP_MALFORMED,
}
_SPECIFIC = {
    "ipv4.bad_checksum": DropReason.IPV4_BAD_CHECKSUM,
    "icmp.bad_checksum": DropReason.ICMP_BAD_CHECKSUM,
    "tcp.bad_checksum": DropReason.TCP_BAD_CHECKSUM,
    "udp.bad_checksum": DropReason.UDP_BAD_CHECKSUM,
    "igmp.bad_checksum": DropReason.IGMP_BAD_CHECKSUM,
}


def drop_reason_for(malformed_reason: str) -> DropReason:
    """The drop reason for a codec's ``MalformedPacket.reason``."""
    specific = _SPECIFIC.get(malformed_reason)
    if specific is not None:
        return specific
    return _MALFORMED_BY_LAYER.get(malformed_reason.split(".", 1)[0], DropReason.IPV4_MALFORMED)


@dataclass(frozen=True)
class DeclaredNames:
    """What a ``Statistics`` may count: counter names and codec reasons, each with its meaning."""

    counters: Mapping[str, str]
    malformed: Mapping[str, str]


class NamedCounts(dict[str, int]):
    """Counts by declared name. A name missing from the table reads as 0 if declared; an
    undeclared name raises ``KeyError`` on write, on read, in ``get`` and in ``in``.

    ``table[name] += 1`` stays one C-level dict update: ``__missing__`` runs only on a name's
    first count.
    """

    __slots__ = ("declared", "kind")

    def __init__(
        self,
        declared: Mapping[str, str],
        kind: str = "counter",
        counts: Mapping[str, int] | None = None,
    ) -> None:
        super().__init__(counts or {})
        self.declared = declared
        self.kind = kind

    def __missing__(self, name: str) -> int:
        self.check(name)
        return 0

    def check(self, name: object) -> None:
        """Raise ``KeyError`` unless ``name`` is declared."""
        if name not in self.declared:
            raise KeyError(f"unknown {self.kind} {name!r}: declare it in pystack/counters.py")

    def __contains__(self, name: object) -> bool:
        self.check(name)
        return dict.__contains__(self, name)

    @overload
    def get(self, name: str, default: None = None, /) -> int | None: ...
    @overload
    def get(self, name: str, default: int, /) -> int: ...
    @overload
    def get(self, name: str, default: _T, /) -> int | _T: ...
    def get(self, name: str, default: object = None, /) -> object:
        self.check(name)
        return dict.get(self, name, default)

    def snapshot(self) -> NamedCountsSnapshot:
        """A sorted copy holding only the names counted so far."""
        return NamedCountsSnapshot(self.declared, self.kind, dict(sorted(self.items())))


class NamedCountsSnapshot(NamedCounts):
    """A copy for ``snapshot()``: only counted names are keys, as in a plain dict (a declared but
    uncounted name raises ``KeyError`` like any absent key), and undeclared names are refused."""

    __slots__ = ()

    def __missing__(self, name: str) -> int:
        self.check(name)
        raise KeyError(name)


class Statistics:
    """All counters of one stack. Plain dicts: incrementing is the hot path."""

    __slots__ = ("counters", "drops", "malformed", "on_drop")

    def __init__(self, declared: DeclaredNames) -> None:
        self.counters = NamedCounts(declared.counters)
        self.drops: defaultdict[DropReason, int] = defaultdict(int)
        self.malformed = NamedCounts(declared.malformed, "malformed-packet reason")
        self.on_drop: DropHook | None = None  # the tracer, while --trace is on

    def count(self, name: str, amount: int = 1) -> None:
        self.counters[name] += amount

    def drop(self, reason: DropReason, packet: object = None, ethernet: bool = False) -> None:
        """Count a dropped packet; ``packet`` (see ``DropHook``) only matters to the trace."""
        self.drops[reason] += 1
        if self.on_drop is not None:
            self.on_drop(reason, "", packet, ethernet)

    def drop_malformed(
        self, reason: str, packet: object = None, ethernet: bool = False
    ) -> DropReason:
        self.malformed[reason] += 1
        drop = drop_reason_for(reason)
        self.drops[drop] += 1
        if self.on_drop is not None:
            self.on_drop(drop, reason, packet, ethernet)
        return drop

    def snapshot(self) -> dict[str, dict[str, int]]:
        return {
            "counters": self.counters.snapshot(),
            "drops": {
                reason.name: n for reason, n in sorted(self.drops.items(), key=lambda i: i[0].name)
            },
            "malformed": self.malformed.snapshot(),
        }
