"""Impairments: a link wrapper that loses, duplicates, reorders, delays, rate-limits, corrupts and
MTU-clamps frames, each direction on its own, reproducibly from a seed.

Job: ``ImpairmentLink(inner, config)`` sits between a stack and another link. Outbound frames
(stack -> inner) and inbound frames (inner -> stack) each pass their own direction's
``ImpairmentSpec``, in this order: MTU clamp, loss, corruption (one random bit flipped),
duplication, then scheduling (rate serialisation, delay, jitter, reorder). Held frames are
released at their due time: inbound ones by ``receive(now)``, outbound ones are written to the
inner link on the next ``send``, ``receive`` or ``poll(now)``; ``next_deadline()`` says when.
Jitter never reorders (a frame is never due before its predecessor); reordering is its own knob:
a selected frame gets ``reorder_delay`` extra so the following frames overtake it.
Each direction draws from its own ``random.Random`` derived from the seed, so the same seed and
the same inputs at the same times give the same outputs at the same times.

Must not: parse frames (only their length is looked at), use the global ``random`` or the clock.

Entry points: ``ImpairmentConfig.parse(text)`` (also ``ImpairmentSpec.parse``),
``ImpairmentSpec``, ``ImpairmentLink``, ``ImpairmentStatistics``.
"""

from __future__ import annotations

import heapq
import random
from collections import deque
from dataclasses import dataclass, field

from pystack.link.base import Link, LinkKind, LinkWrapper
from pystack.link.impairspec import ImpairmentConfig, ImpairmentSpec

__all__ = [
    "ImpairmentConfig",
    "ImpairmentLink",
    "ImpairmentSpec",
    "ImpairmentStatistics",
    "ImpairmentStatisticsByDirection",
]

ETHERNET_HEADER_LENGTH = 14


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

    def total_dropped(self) -> int:
        return self.lost + self.mtu_dropped + self.queue_dropped


@dataclass(slots=True)
class ImpairmentStatisticsByDirection:
    inbound: ImpairmentStatistics = field(default_factory=ImpairmentStatistics)
    outbound: ImpairmentStatistics = field(default_factory=ImpairmentStatistics)


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
        "_sequence",
        "ready",
        "spec",
        "statistics",
    )

    def __init__(self, spec: ImpairmentSpec, rng: random.Random, header: int) -> None:
        self.spec = spec
        self.statistics = ImpairmentStatistics()
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
            return
        if spec.loss and rng.random() < spec.loss:
            statistics.lost += 1
            return
        if spec.corrupt and frame and rng.random() < spec.corrupt:
            frame = _flip_bit(frame, rng)
            statistics.corrupted += 1
        copies = 1
        if spec.duplicate and rng.random() < spec.duplicate:
            copies = 2
            statistics.duplicated += 1
        for _ in range(copies):
            if self._holds:
                self._schedule(frame, now)
            else:
                self.ready.append(frame)
                self._ready_at = now

    def _schedule(self, frame: bytes, now: float) -> None:
        spec = self.spec
        statistics = self.statistics
        if len(self._held) >= spec.queue:
            statistics.queue_dropped += 1
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
        self._inbound = _Direction(config.inbound, inbound_rng, header)
        self._outbound = _Direction(config.outbound, outbound_rng, header)

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
