"""Impairments: a link wrapper that loses, duplicates, reorders, delays, rate-limits, corrupts and
MTU-clamps frames, each direction on its own, reproducibly from a seed.

Job: ``ImpairmentLink(inner, config)`` sits between a stack and another link. Outbound frames
(stack -> inner) and inbound frames (inner -> stack) each pass their own direction's
``ImpairmentSpec``, in this order: MTU clamp, the rules (``drop=``/``dup=``/``delay=`` on the
Nth matching packet; each rule counts every frame it matches, even one another rule drops), loss,
corruption (one random bit flipped), duplication, then scheduling (rate serialisation, delay, jitter, reorder). Held frames are
released at their due time: inbound ones by ``receive(now)``, outbound ones are written to the
inner link on the next ``send``, ``receive`` or ``poll(now)``; ``next_deadline()`` says when.
Jitter never reorders (a frame is never due before its predecessor); reordering is its own knob:
a selected frame gets ``reorder_delay`` extra so the following frames overtake it.
Each direction draws from its own ``random.Random`` derived from the seed, so the same seed and
the same inputs at the same times give the same outputs at the same times.

``set_trace(hook)`` reports what the impairment does to a frame (drops with why: ``LOSS``,
``MTU``, ``QUEUE``, ``RULE``; corruption, duplication and rule actions) for ``--trace``; off, it costs one
attribute test per decision that happens, none per frame passed untouched.

Must not: decode frames with the codecs (only their length is looked at, and for rules a few
header bytes: EtherType, IP protocol, TCP flags and lengths), use the global ``random`` or the
clock.

Entry points: ``ImpairmentConfig.parse(text)`` (also ``ImpairmentSpec.parse``),
``ImpairmentSpec``, ``ImpairmentLink``, ``ImpairmentStatistics``.
"""

from __future__ import annotations

import heapq
import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from pystack.link.base import Link, LinkKind, LinkWrapper
from pystack.link.impairspec import ImpairmentConfig, ImpairmentRule, ImpairmentSpec

__all__ = [
    "ImpairmentConfig",
    "ImpairmentLink",
    "ImpairmentRule",
    "ImpairmentSpec",
    "ImpairmentStatistics",
    "ImpairmentStatisticsByDirection",
]

ETHERNET_HEADER_LENGTH = 14
_IP_PROTOCOLS = {"tcp": 6, "udp": 17, "icmp": 1}
_TCP_FLAG_BITS = {"fin": 0x01, "syn": 0x02, "rst": 0x04, "psh": 0x08, "ack": 0x10}

# Why the impairment dropped a frame, as its trace hook says it (``DropReason.IMPAIRMENT_*``
# above the link layer, which does not import ``pystack.stats``).
LOSS, MTU, QUEUE, RULE = "loss", "mtu", "queue", "rule"
# hook(frame, drop, note): ``drop`` is LOSS, MTU, QUEUE or RULE when the frame is dropped, else
# "" (the note says what was done: corrupted, duplicated, delayed by a rule).
DirectionTrace = Callable[[bytes, str, str], None]
# hook(direction, frame, drop, note), direction "in" or "out": ``ImpairmentLink.set_trace``.
ImpairmentTrace = Callable[[str, bytes, str, str], None]


@dataclass(slots=True)
class ImpairmentStatistics:
    """What one direction did to its frames."""

    lost: int = 0
    duplicated: int = 0
    reordered: int = 0
    corrupted: int = 0
    delayed: int = 0  # frames held for later (delay, jitter, rate or reorder)
    mtu_dropped: int = 0
    queue_dropped: int = 0  # tail drops: the direction already held ``queue`` frames
    rule_dropped: int = 0  # dropped by a drop= rule
    rule_duplicated: int = 0  # duplicated by a dup= rule (also counted in ``duplicated``)
    rule_delayed: int = 0  # held by a delay= rule (also counted in ``delayed``)

    def total_dropped(self) -> int:
        return self.lost + self.mtu_dropped + self.queue_dropped + self.rule_dropped


@dataclass(slots=True)
class ImpairmentStatisticsByDirection:
    inbound: ImpairmentStatistics = field(default_factory=ImpairmentStatistics)
    outbound: ImpairmentStatistics = field(default_factory=ImpairmentStatistics)


class _RuleCounter:
    """One rule's matcher, precomputed, and how many packets it has matched so far."""

    __slots__ = ("data", "flag_bits", "protocol", "rule", "seen")

    def __init__(self, rule: ImpairmentRule) -> None:
        self.rule = rule
        self.protocol = rule.protocol
        self.flag_bits = sum(_TCP_FLAG_BITS.get(flag, 0) for flag in rule.flags)
        self.data: bool | None = (
            True if "data" in rule.flags else False if "nodata" in rule.flags else None
        )
        self.seen = 0

    def matches(self, frame: bytes, header: int) -> bool:
        """Whether ``frame`` (``header`` bytes of Ethernet header first, or none) matches."""
        protocol = self.protocol
        if protocol == "any":
            return True
        if header:
            if len(frame) < header:
                return False
            ethertype = frame[12:14]
            if protocol == "arp":
                return ethertype == b"\x08\x06"
            if ethertype != b"\x08\x00":
                return False
        elif protocol == "arp":
            return False
        if len(frame) < header + 20 or frame[header] >> 4 != 4:
            return False
        if protocol == "ip":
            return True
        if frame[header + 9] != _IP_PROTOCOLS[protocol]:
            return False
        if not self.flag_bits and self.data is None:
            return True
        if int.from_bytes(frame[header + 6 : header + 8], "big") & 0x1FFF:
            return False  # a later fragment: no TCP header to look at
        ip_header = (frame[header] & 0x0F) * 4
        tcp = header + ip_header
        if len(frame) < tcp + 20:
            return False
        if frame[tcp + 13] & self.flag_bits != self.flag_bits:
            return False
        if self.data is not None:
            total = int.from_bytes(frame[header + 2 : header + 4], "big")
            payload = total - ip_header - (frame[tcp + 12] >> 4) * 4
            return (payload > 0) is self.data
        return True


class _Direction:
    """The impairment pipeline of one direction: admit frames, release them when due."""

    __slots__ = (
        "_free_at",
        "_header",
        "_held",
        "_holds",
        "_last_due",
        "_ready_at",
        "_rng",
        "_rules",
        "_sequence",
        "ready",
        "spec",
        "statistics",
        "trace",
    )

    def __init__(
        self,
        spec: ImpairmentSpec,
        rng: random.Random,
        header: int,
        rules: tuple[ImpairmentRule, ...] = (),
    ) -> None:
        self.spec = spec
        self.statistics = ImpairmentStatistics()
        self._rules = tuple(_RuleCounter(rule) for rule in rules)
        self.trace: DirectionTrace | None = None
        self.ready: deque[bytes] = deque()  # frames that may leave now, in order
        self._rng = rng
        self._header = header
        self._holds = spec.holds_frames()
        self._held: list[tuple[float, int, bytes]] = []  # heap of (due, sequence, frame)
        self._sequence = 0
        self._last_due = float("-inf")
        self._free_at = float("-inf")  # when the rate-limited "wire" finishes its backlog
        self._ready_at = 0.0  # the time at which frames last became ready

    def admit(self, frame: bytes, now: float) -> None:
        """Pass one frame through the impairments: dropped, held, or appended to ``ready``."""
        spec = self.spec
        statistics = self.statistics
        rng = self._rng
        if spec.mtu is not None and len(frame) - self._header > spec.mtu:
            statistics.mtu_dropped += 1
            if self.trace is not None:
                self.trace(frame, MTU, f"mtu={spec.mtu}")
            return
        copies = 1
        extra = 0.0
        if self._rules:
            # Every rule counts the frame before any acts on it, so a frame one rule drops is
            # still the Nth for the others (drop=...:1,drop=...:2 loses the first two).
            hits = [
                counter
                for counter in self._rules
                if counter.seen < counter.rule.nth and counter.matches(frame, self._header)
            ]
            for counter in hits:
                counter.seen += 1
            for counter in hits:
                if counter.seen == counter.rule.nth:
                    action = counter.rule.action
                    if self.trace is not None:
                        reason = RULE if action == "drop" else ""
                        self.trace(frame, reason, f"rule {counter.rule.format()}")
                    if action == "drop":
                        statistics.rule_dropped += 1
                        return
                    if action == "dup":
                        copies = 2
                        statistics.duplicated += 1
                        statistics.rule_duplicated += 1
                    else:
                        extra += counter.rule.delay
                        statistics.rule_delayed += 1
        if spec.loss and rng.random() < spec.loss:
            statistics.lost += 1
            if self.trace is not None:
                self.trace(frame, LOSS, f"loss={spec.loss:g}")
            return
        if spec.corrupt and frame and rng.random() < spec.corrupt:
            if self.trace is not None:
                self.trace(frame, "", "corrupted: one bit flipped")
            frame = _flip_bit(frame, rng)
            statistics.corrupted += 1
        if copies == 1 and spec.duplicate and rng.random() < spec.duplicate:
            copies = 2
            statistics.duplicated += 1
            if self.trace is not None:
                self.trace(frame, "", "duplicated")
        for _ in range(copies):
            if self._holds or extra:
                self._schedule(frame, now, extra)
            else:
                self.ready.append(frame)
                self._ready_at = now

    def _schedule(self, frame: bytes, now: float, extra: float = 0.0) -> None:
        spec = self.spec
        statistics = self.statistics
        if len(self._held) >= spec.queue:
            statistics.queue_dropped += 1
            if self.trace is not None:
                self.trace(frame, QUEUE, f"queue={spec.queue}")
            return
        departure = now
        if spec.rate is not None:
            # Serialisation: the frame starts when the wire is free and takes len*8/rate.
            departure = max(now, self._free_at) + len(frame) * 8 / spec.rate
            self._free_at = departure
        due = departure + spec.delay
        if spec.jitter:
            due += self._rng.uniform(-spec.jitter, spec.jitter)
        due = max(due, now, self._last_due)  # jitter never reorders
        self._last_due = due
        if spec.reorder and self._rng.random() < spec.reorder:
            due += spec.reorder_delay
            statistics.reordered += 1
        due += extra  # a delay= rule: after the order is kept, so later frames overtake it
        if due > now:
            statistics.delayed += 1
        heapq.heappush(self._held, (due, self._sequence, frame))
        self._sequence += 1

    def release(self, now: float) -> None:
        """Move every held frame due at ``now`` to ``ready``."""
        held = self._held
        if held and held[0][0] <= now:
            append = self.ready.append
            while held and held[0][0] <= now:
                append(heapq.heappop(held)[2])
            self._ready_at = now

    def next_deadline(self) -> float | None:
        if self.ready:
            return self._ready_at  # already due (a time not later than the caller's now)
        return self._held[0][0] if self._held else None

    def held(self) -> int:
        return len(self._held) + len(self.ready)


def _flip_bit(frame: bytes, rng: random.Random) -> bytes:
    corrupted = bytearray(frame)
    corrupted[rng.randrange(len(corrupted))] ^= 1 << rng.randrange(8)
    return bytes(corrupted)


def _direction_rngs(
    config: ImpairmentConfig, rng: random.Random | None
) -> tuple[random.Random, ...]:
    if rng is not None:
        return random.Random(rng.getrandbits(64)), random.Random(rng.getrandbits(64))
    # str seeds are hashed with SHA-512: stable across runs and Python versions.
    return (
        random.Random(f"pystack-impair/{config.seed}/inbound"),
        random.Random(f"pystack-impair/{config.seed}/outbound"),
    )


class ImpairmentLink(LinkWrapper):
    """A ``Link`` that impairs the frames passing between the stack and ``inner``.

    ``mtu`` is the inner link's (an MTU clamp is a path property the stack must discover);
    ``statistics`` are the inner link's; ``impairment_statistics`` count what was done.
    With ``rng``, the two direction generators are seeded from it instead of ``config.seed``.
    """

    __slots__ = ("_inbound", "_outbound", "config")

    def __init__(
        self,
        inner: Link,
        config: ImpairmentConfig | str,
        rng: random.Random | None = None,
    ) -> None:
        if isinstance(config, str):
            config = ImpairmentConfig.parse(config)
        super().__init__(inner)
        self.config = config
        header = ETHERNET_HEADER_LENGTH if inner.kind is LinkKind.ETHERNET else 0
        inbound_rng, outbound_rng = _direction_rngs(config, rng)
        rules = config.rules
        self._inbound = _Direction(
            config.inbound, inbound_rng, header, tuple(r for r in rules if r.direction == "inbound")
        )
        self._outbound = _Direction(
            config.outbound,
            outbound_rng,
            header,
            tuple(r for r in rules if r.direction == "outbound"),
        )

    def set_trace(self, hook: ImpairmentTrace | None) -> None:
        """Report what is done to frames to ``hook(direction, frame, reason, note)``; None: off."""
        if hook is None:
            self._inbound.trace = self._outbound.trace = None
            return

        def inbound(frame: bytes, drop: str, note: str) -> None:
            hook("in", frame, drop, note)

        def outbound(frame: bytes, drop: str, note: str) -> None:
            hook("out", frame, drop, note)

        self._inbound.trace, self._outbound.trace = inbound, outbound

    @property
    def impairment_statistics(self) -> ImpairmentStatisticsByDirection:
        return ImpairmentStatisticsByDirection(
            inbound=self._inbound.statistics, outbound=self._outbound.statistics
        )

    def held_frames(self) -> tuple[int, int]:
        """Frames currently held (inbound, outbound)."""
        return self._inbound.held(), self._outbound.held()

    def send(self, frame: bytes, now: float) -> None:
        outbound = self._outbound
        outbound.release(now)
        outbound.admit(frame, now)
        outbound.release(now)
        self._flush_outbound(now)

    def poll(self, now: float) -> None:
        """Write the outbound frames that are due at ``now`` to the inner link."""
        self._outbound.release(now)
        self._flush_outbound(now)

    def _flush_outbound(self, now: float) -> None:
        ready = self._outbound.ready
        if ready:
            send = self._inner.send
            while ready:
                send(ready.popleft(), now)

    def receive(self, now: float, limit: int = 64) -> list[bytes]:
        """Frames from the inner link that are due at ``now`` (also flushes due outbound ones)."""
        self.poll(now)
        inbound = self._inbound
        ready = inbound.ready
        inbound.release(now)
        room = limit - len(ready)
        if room > 0:
            for frame in self._inner.receive(now, room):
                inbound.admit(frame, now)
            inbound.release(now)
        if not ready:
            return []
        count = min(limit, len(ready))
        popleft = ready.popleft
        return [popleft() for _ in range(count)]

    def next_deadline(self) -> float | None:
        deadlines = [
            deadline
            for deadline in (
                self._inbound.next_deadline(),
                self._outbound.next_deadline(),
                self._inner.next_deadline(),
            )
            if deadline is not None
        ]
        return min(deadlines) if deadlines else None

    def close(self) -> None:
        self._inner.close()
