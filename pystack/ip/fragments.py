"""IPv4 fragmentation on output and reassembly on input (RFC 791, RFC 815 hole tracking).

Reassembly is keyed by (source, destination, protocol, identification). Policy, chosen to match
Linux since the 2018 FragmentSmack fixes:
- an exact duplicate fragment is dropped on its own (``FRAGMENT_DUPLICATE``);
- any other overlap discards the whole datagram (``FRAGMENT_OVERLAP``, cf. RFC 5722);
- a fragment beyond a known end, or a second "last" fragment with another end, discards it
  (``FRAGMENT_INCONSISTENT``); a datagram longer than 65535 bytes likewise (``FRAGMENT_TOO_LARGE``).
Memory is bounded: each held fragment costs its payload plus ``FRAGMENT_OVERHEAD``; when a new
fragment would exceed ``memory_limit`` the oldest datagrams are evicted first
(``FRAGMENT_MEMORY_LIMIT`` per evicted datagram). At most ``max_datagrams`` are in progress and
each holds at most ``max_fragments``. An incomplete datagram expires after ``timeout``; if its
first fragment had arrived, the caller sends ICMP time exceeded (code 1, RFC 792/1122 3.3.2).
Entry points: ``Reassembler.add``, ``Reassembler.expire``, ``fragment``.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

from pystack.stats import DropReason, Statistics
from pystack.wire.ipv4 import HEADER_LENGTH, MAX_PACKET, IPv4Packet

FRAGMENT_OVERHEAD = 64  # accounted per fragment so tiny-fragment floods cost memory too
INFINITY = float("inf")

Key = tuple[int, int, int, int]


@dataclass(frozen=True, slots=True)
class ReassemblySettings:
    timeout: float = 30.0  # Linux ipfrag_time
    memory_limit: int = 4 * 1024 * 1024  # Linux ipfrag_high_thresh
    max_datagrams: int = 64
    max_fragments: int = 1024


@dataclass(slots=True)
class PartialDatagram:
    key: Key
    deadline: float
    first: IPv4Packet | None = None  # the offset-0 fragment (its header is the datagram's)
    end: int | None = None  # payload length, known once the last fragment arrived
    starts: list[int] = field(default_factory=list)  # sorted fragment offsets
    pieces: dict[int, bytes] = field(default_factory=dict)
    received: int = 0
    cost: int = 0

    def complete(self) -> bool:
        return self.end is not None and self.received == self.end


class Reassembler:
    def __init__(self, settings: ReassemblySettings, statistics: Statistics) -> None:
        self.settings = settings
        self.statistics = statistics
        self._partial: dict[Key, PartialDatagram] = {}  # insertion order = age order
        self.memory = 0

    def __len__(self) -> int:
        return len(self._partial)

    def next_deadline(self) -> float | None:
        # Insertion order is age order and every datagram has the same timeout.
        for partial in self._partial.values():
            return partial.deadline
        return None

    def add(self, packet: IPv4Packet, now: float) -> IPv4Packet | None:
        """Take one fragment; return the whole datagram once it is complete."""
        key = (packet.src, packet.dst, packet.protocol, packet.identification)
        partial = self._partial.get(key)
        if partial is None:
            if len(self._partial) >= self.settings.max_datagrams:
                self._evict_oldest()
            partial = PartialDatagram(key, now + self.settings.timeout)
            self._partial[key] = partial
        verdict = self._insert(partial, packet)
        if verdict is not None:
            self._discard(partial, verdict)
            return None
        if not partial.complete():
            return None
        self._forget(partial)
        return self._join(partial)

    def _insert(self, partial: PartialDatagram, packet: IPv4Packet) -> DropReason | None:
        start = packet.fragment_offset
        data = packet.payload
        stop = start + len(data)
        if packet.more_fragments and len(data) % 8:
            return DropReason.FRAGMENT_INCONSISTENT  # RFC 791: all but the last carry 8n bytes
        if not packet.more_fragments:
            if partial.end is not None and partial.end != stop:
                return DropReason.FRAGMENT_INCONSISTENT
            if self._max_stop(partial) > stop:
                return DropReason.FRAGMENT_INCONSISTENT
        elif partial.end is not None and stop > partial.end:
            return DropReason.FRAGMENT_INCONSISTENT
        # The whole datagram is the first fragment's header plus the furthest data: check it
        # again when the first fragment (with its options) arrives after the end.
        first = packet if start == 0 else partial.first
        header_length = HEADER_LENGTH + (len(first.options) if first is not None else 0)
        if max(stop, self._max_stop(partial)) + header_length > MAX_PACKET:
            return DropReason.FRAGMENT_TOO_LARGE
        position = bisect.bisect_left(partial.starts, start)
        if (
            position < len(partial.starts)
            and partial.starts[position] == start
            and partial.pieces[start] == data
        ):
            # Same place, same bytes (a retransmitted or duplicated fragment) is harmless.
            self.statistics.drop(DropReason.FRAGMENT_DUPLICATE)
            return None
        previous_stop = (
            partial.starts[position - 1] + len(partial.pieces[partial.starts[position - 1]])
            if position
            else 0
        )
        next_start = partial.starts[position] if position < len(partial.starts) else MAX_PACKET + 1
        if previous_stop > start or next_start < stop:
            return DropReason.FRAGMENT_OVERLAP
        if len(partial.starts) >= self.settings.max_fragments:
            return DropReason.FRAGMENT_TOO_MANY
        cost = len(data) + FRAGMENT_OVERHEAD
        if not self._make_room(cost, partial):
            return DropReason.FRAGMENT_MEMORY_LIMIT
        partial.starts.insert(position, start)
        partial.pieces[start] = data
        partial.received += len(data)
        partial.cost += cost
        self.memory += cost
        if start == 0:
            partial.first = packet
        if not packet.more_fragments:
            partial.end = stop
        self.statistics.count("ipv4.fragments_received")
        return None

    @staticmethod
    def _max_stop(partial: PartialDatagram) -> int:
        if not partial.starts:
            return 0
        last = partial.starts[-1]
        return last + len(partial.pieces[last])

    def _make_room(self, cost: int, keep: PartialDatagram) -> bool:
        limit = self.settings.memory_limit
        while self.memory + cost > limit:
            victim = next((p for p in self._partial.values() if p is not keep), None)
            if victim is None:
                return False
            self._discard(victim, DropReason.FRAGMENT_MEMORY_LIMIT)
        return True

    def _evict_oldest(self) -> None:
        for partial in self._partial.values():
            self._discard(partial, DropReason.FRAGMENT_TOO_MANY_DATAGRAMS)
            return

    def _discard(self, partial: PartialDatagram, reason: DropReason) -> None:
        self.statistics.drop(reason)
        self._forget(partial)

    def _forget(self, partial: PartialDatagram) -> None:
        if self._partial.get(partial.key) is partial:
            del self._partial[partial.key]
            self.memory -= partial.cost

    def _join(self, partial: PartialDatagram) -> IPv4Packet:
        first = partial.first
        assert first is not None  # complete() implies offset 0 arrived
        payload = b"".join(partial.pieces[start] for start in partial.starts)
        self.statistics.count("ipv4.reassembled")
        return first._replace(payload=payload, more_fragments=False, fragment_offset=0)

    def expire(self, now: float) -> list[IPv4Packet]:
        """Drop timed-out datagrams; return the first fragments of those that had one."""
        expired: list[IPv4Packet] = []
        while self._partial:
            partial = next(iter(self._partial.values()))
            if partial.deadline > now:
                break
            self._discard(partial, DropReason.FRAGMENT_TIMEOUT)
            if partial.first is not None:
                expired.append(partial.first)
        return expired


def _copied_options(options: bytes) -> bytes:
    """The options with the 'copied' flag (RFC 791), for fragments after the first."""
    kept = bytearray()
    i = 0
    while i < len(options):
        kind = options[i]
        if kind == 0:
            break
        if kind == 1:
            i += 1
            continue
        length = options[i + 1] if i + 1 < len(options) else 0
        if length < 2:
            break
        if kind & 0x80:
            kept += options[i : i + length]
        i += length
    if len(kept) % 4:
        kept += bytes(4 - len(kept) % 4)
    return bytes(kept)


def fragment(packet: IPv4Packet, mtu: int) -> list[IPv4Packet]:
    """Split ``packet`` into fragments that fit ``mtu`` (the caller checked DF)."""
    if packet.total_length <= mtu:
        return [packet]
    later_options = _copied_options(packet.options)
    payload = packet.payload
    fragments: list[IPv4Packet] = []
    offset = 0
    base = packet.fragment_offset  # re-fragmenting a fragment keeps its place
    while offset < len(payload):
        options = packet.options if offset == 0 else later_options
        room = (mtu - HEADER_LENGTH - len(options)) & ~7
        if room <= 0:
            raise ValueError(f"MTU {mtu} too small to fragment")
        chunk = payload[offset : offset + room]
        last = offset + len(chunk) >= len(payload)
        fragments.append(
            packet._replace(
                payload=chunk,
                options=options,
                fragment_offset=base + offset,
                more_fragments=packet.more_fragments or not last,
            )
        )
        offset += len(chunk)
    return fragments
