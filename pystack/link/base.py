"""The link contract: how frames enter and leave a stack.

A link moves opaque frames and knows no protocol. ``kind`` says what a frame is: a raw IPv4
packet (TUN, ``LinkKind.IP``) or an Ethernet II frame (TAP, ``LinkKind.ETHERNET``). Links never
block: ``receive`` returns what is waiting now (possibly nothing). Links that hold frames for
later (delay, rate limits) report when via ``next_deadline``; links backed by a file descriptor
report it via ``fileno`` so the stack thread can wait on it with ``select``.

Entry points: ``Link`` (the protocol every link implements), ``LinkKind``, ``LinkStatistics``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Protocol, runtime_checkable


class LinkKind(enum.Enum):
    """What a frame on this link is."""

    IP = "ip"  # raw IPv4 packets (TUN, no packet-info header)
    ETHERNET = "ethernet"  # Ethernet II frames (TAP)


@dataclass(slots=True)
class LinkStatistics:
    """Counters every link keeps (impairment links add their own on top)."""

    frames_sent: int = 0
    bytes_sent: int = 0
    frames_received: int = 0
    bytes_received: int = 0
    send_errors: int = 0  # frames the device refused (e.g. queue full); never raised to the stack
    receive_overflows: int = 0  # frames dropped because a bounded queue was full


@runtime_checkable
class Link(Protocol):
    """A non-blocking frame pipe between a stack and something else."""

    @property
    def kind(self) -> LinkKind: ...

    @property
    def mtu(self) -> int:
        """Largest frame payload the link carries (the IP MTU; Ethernet header not counted)."""
        ...

    @property
    def statistics(self) -> LinkStatistics: ...

    def send(self, frame: bytes, now: float) -> None:
        """Queue or write one frame. Never raises for a full device: counts a send error."""
        ...

    def receive(self, now: float, limit: int = 64) -> list[bytes]:
        """Return up to ``limit`` frames that are ready at ``now`` (empty list when none)."""
        ...

    def next_deadline(self) -> float | None:
        """Earliest time at which a held frame becomes ready, or None."""
        ...

    def fileno(self) -> int | None:
        """A descriptor that is readable when ``receive`` may return frames, or None."""
        ...

    def close(self) -> None: ...
