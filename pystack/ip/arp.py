"""The ARP cache (RFC 826, with RFC 1122 2.3.2 timing and a Linux-like neighbour life cycle).

States: INCOMPLETE (request sent, packets queued), REACHABLE (confirmed recently), STALE
(usable, but the next use revalidates it), PROBE (revalidating), STATIC (configured, never
changes). Packets for an unresolved neighbour wait in a bounded per-neighbour queue (the oldest is
dropped on overflow, as Linux does); a neighbour that stays silent after ``max_retries``
requests is removed and its queue dropped. The cache itself is bounded: when full, the least
recently used non-static entry goes.

Sans-IO: frames to send are handed to the ``emit`` callback given at construction (the interface
queues them); time comes in as ``now``.
Entry points: ``ARPCache.lookup_or_queue``, ``ARPCache.process``, ``ARPCache.run_timers``.
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from pystack.stats import DropReason, Statistics
from pystack.wire.addresses import BROADCAST_MAC, ZERO_MAC, ip_to_str, mac_to_str
from pystack.wire.arp import OP_REPLY, OP_REQUEST, ARPPacket
from pystack.wire.ipv4 import IPv4Packet

INFINITY = float("inf")


class NeighbourState(enum.Enum):
    INCOMPLETE = "incomplete"
    REACHABLE = "reachable"
    STALE = "stale"
    PROBE = "probe"
    STATIC = "static"


@dataclass(frozen=True, slots=True)
class ARPSettings:
    reachable_time: float = 30.0  # REACHABLE -> STALE (Linux base_reachable_time)
    stale_time: float = 60.0  # an unused STALE entry is forgotten after this
    retry_interval: float = 1.0  # RFC 1122 2.3.2.1: at most one request per second per address
    max_retries: int = 3
    pending_limit: int = 101  # datagrams queued per unresolved neighbour (Linux unres_qlen)
    pending_bytes: int = 212992  # and their bytes (Linux unres_qlen_bytes)
    cache_limit: int = 256
    incomplete_limit: int = 64  # unresolved entries at once (each may hold pending_bytes)


@dataclass(slots=True)
class Neighbour:
    address: int
    mac: bytes | None
    state: NeighbourState
    deadline: float
    retries: int = 0
    pending_bytes: int = 0
    pending: deque[IPv4Packet] = field(default_factory=deque)

    def describe(self) -> str:
        mac = mac_to_str(self.mac) if self.mac else "(none)"
        return f"{ip_to_str(self.address)} {mac} {self.state.value} queued={len(self.pending)}"


# (destination MAC, ARP packet) to put on the wire
EmitARP = Callable[[bytes, ARPPacket], None]


class ARPCache:
    def __init__(
        self, settings: ARPSettings, statistics: Statistics, address: int, mac: bytes, emit: EmitARP
    ) -> None:
        self.settings = settings
        self.statistics = statistics
        self.address = address
        self.mac = mac
        self._emit = emit
        self._table: dict[int, Neighbour] = {}
        self._next_deadline = INFINITY

    # queries --------------------------------------------------------------------------------
    def entry(self, address: int) -> Neighbour | None:
        return self._table.get(address)

    def entries(self) -> list[Neighbour]:
        return list(self._table.values())

    def next_deadline(self) -> float | None:
        return None if self._next_deadline == INFINITY else self._next_deadline

    # configuration --------------------------------------------------------------------------
    def add_static(self, address: int, mac: bytes) -> None:
        self._table[address] = Neighbour(address, mac, NeighbourState.STATIC, INFINITY)

    def announce(self, now: float) -> None:
        """Gratuitous ARP (RFC 5227 2.4 announcement): a request for our own address."""
        self.statistics.count("arp.gratuitous_sent")
        self._emit(
            BROADCAST_MAC, ARPPacket(OP_REQUEST, self.mac, self.address, ZERO_MAC, self.address)
        )

    # output path ----------------------------------------------------------------------------
    def lookup_or_queue(self, address: int, packet: IPv4Packet, now: float) -> bytes | None:
        """The MAC to send ``packet`` to now, or None when it was queued for resolution."""
        neighbour = self._table.get(address)
        if neighbour is not None:
            state = neighbour.state
            if (
                state is NeighbourState.REACHABLE
                or state is NeighbourState.STATIC
                or state is NeighbourState.PROBE
            ):
                return neighbour.mac
            if state is NeighbourState.STALE:
                # RFC 1122 2.3.2.1: keep using the old address while revalidating it.
                self._start_probe(neighbour, now)
                return neighbour.mac
            self._queue(neighbour, packet)
            return None
        neighbour = self._new_entry(address, now)
        if neighbour is None:
            self.statistics.drop(DropReason.ARP_CACHE_FULL, packet)
            return None
        self._queue(neighbour, packet)
        self._request(neighbour, BROADCAST_MAC)
        return None

    def _queue(self, neighbour: Neighbour, packet: IPv4Packet) -> None:
        pending = neighbour.pending
        pending.append(packet)
        neighbour.pending_bytes += packet.total_length
        limits = self.settings
        while len(pending) > limits.pending_limit or neighbour.pending_bytes > limits.pending_bytes:
            oldest = pending.popleft()  # oldest first, as Linux
            neighbour.pending_bytes -= oldest.total_length
            self.statistics.drop(DropReason.ARP_PENDING_OVERFLOW, oldest)

    def _new_entry(self, address: int, now: float, incomplete: bool = True) -> Neighbour | None:
        if incomplete and self._incomplete_count() >= self.settings.incomplete_limit:
            return None
        if len(self._table) >= self.settings.cache_limit and not self._evict():
            return None
        neighbour = Neighbour(
            address, None, NeighbourState.INCOMPLETE, now + self.settings.retry_interval
        )
        self._table[address] = neighbour
        if incomplete:  # a learned entry gets its real deadline from _learn
            self._next_deadline = min(self._next_deadline, neighbour.deadline)
        return neighbour

    def _incomplete_count(self) -> int:
        return sum(1 for n in self._table.values() if n.state is NeighbourState.INCOMPLETE)

    def _evict(self) -> bool:
        """Forget the resolved, non-static entry closest to expiry; False if there is none."""
        candidates = [
            n
            for n in self._table.values()
            if n.state in (NeighbourState.REACHABLE, NeighbourState.STALE, NeighbourState.PROBE)
        ]
        if not candidates:
            return False
        victim = min(candidates, key=lambda n: n.deadline)
        del self._table[victim.address]
        self.statistics.count("arp.evicted")
        return True

    def _start_probe(self, neighbour: Neighbour, now: float) -> None:
        neighbour.state = NeighbourState.PROBE
        neighbour.retries = 0
        neighbour.deadline = now + self.settings.retry_interval
        self._next_deadline = min(self._next_deadline, neighbour.deadline)
        # RFC 1122 2.3.2.1: revalidate with a unicast request to the cached address.
        self._request(neighbour, neighbour.mac or BROADCAST_MAC)

    def _request(self, neighbour: Neighbour, dst_mac: bytes) -> None:
        neighbour.retries += 1
        self.statistics.count("arp.requests_sent")
        self._emit(
            dst_mac, ARPPacket(OP_REQUEST, self.mac, self.address, ZERO_MAC, neighbour.address)
        )

    # input path -----------------------------------------------------------------------------
    def process(self, arp: ARPPacket, now: float) -> list[tuple[bytes, IPv4Packet]]:
        """Handle a received ARP packet; returns queued (MAC, packet) pairs now sendable."""
        sender = arp.sender_ip
        if arp.sender_mac == self.mac:
            return []  # our own request or announcement reflected back
        if (
            arp.sender_mac == BROADCAST_MAC
            or arp.sender_mac[0] & 1
            or sender >> 28 == 0xE
            or (sender == self.address and sender != 0)
        ):
            # A multicast sender MAC is impossible; someone else claiming our address is a conflict.
            self.statistics.drop(DropReason.ARP_BAD_SENDER)
            if sender == self.address:
                self.statistics.count("arp.address_conflicts")
            return []
        for_us = arp.target_ip == self.address
        released: list[tuple[bytes, IPv4Packet]] = []
        neighbour = self._table.get(sender)
        if sender != 0 and (neighbour is not None or for_us):
            # RFC 826 merge: update a known sender; add it if the packet was for us.
            released = self._learn(sender, arp.sender_mac, now, neighbour)
        if for_us and arp.operation == OP_REQUEST:
            self.statistics.count("arp.replies_sent")
            self._emit(
                arp.sender_mac, ARPPacket(OP_REPLY, self.mac, self.address, arp.sender_mac, sender)
            )
        elif not for_us:
            self.statistics.count("arp.not_for_us")
        return released

    def _learn(
        self, address: int, mac: bytes, now: float, neighbour: Neighbour | None
    ) -> list[tuple[bytes, IPv4Packet]]:
        if neighbour is not None and neighbour.state is NeighbourState.STATIC:
            return []
        if neighbour is None:
            neighbour = self._new_entry(address, now, incomplete=False)
            if neighbour is None:
                return []
        if neighbour.mac is not None and neighbour.mac != mac:
            self.statistics.count("arp.address_changed")
        neighbour.mac = mac
        neighbour.state = NeighbourState.REACHABLE
        neighbour.retries = 0
        neighbour.deadline = now + self.settings.reachable_time
        self._next_deadline = min(self._next_deadline, neighbour.deadline)
        released = [(mac, packet) for packet in neighbour.pending]
        neighbour.pending.clear()
        neighbour.pending_bytes = 0
        if released:
            self.statistics.count("arp.pending_released", len(released))
        return released

    # timers ---------------------------------------------------------------------------------
    def run_timers(self, now: float) -> None:
        if now < self._next_deadline:
            return
        settings = self.settings
        for neighbour in list(self._table.values()):
            if neighbour.deadline > now:
                continue
            state = neighbour.state
            if state is NeighbourState.REACHABLE:
                neighbour.state = NeighbourState.STALE
                neighbour.deadline = now + settings.stale_time
            elif state is NeighbourState.STALE:
                del self._table[neighbour.address]
                self.statistics.count("arp.expired")
            elif neighbour.retries >= settings.max_retries:  # INCOMPLETE or PROBE gave up
                for lost in neighbour.pending:
                    self.statistics.drop(DropReason.ARP_RESOLUTION_FAILED, lost)
                if not neighbour.pending:
                    self.statistics.count("arp.resolution_failed")
                del self._table[neighbour.address]
            else:
                neighbour.deadline = now + settings.retry_interval
                target = (
                    BROADCAST_MAC
                    if state is NeighbourState.INCOMPLETE
                    else neighbour.mac or BROADCAST_MAC
                )
                self._request(neighbour, target)
        self._next_deadline = min((n.deadline for n in self._table.values()), default=INFINITY)
