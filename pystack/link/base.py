"""The link contract: how frames enter and leave a stack.

A link moves opaque frames and knows no protocol. ``kind`` says what a frame is: a raw IPv4
packet (TUN, ``LinkKind.IP``) or an Ethernet II frame (TAP, ``LinkKind.ETHERNET``). Links never
block: ``receive`` returns what is waiting now (possibly nothing). Links that hold frames for
later (delay, rate limits) report when via ``next_deadline``; links backed by a file descriptor
report it via ``fileno`` so the stack thread can wait on it with ``select``.

Links that can segment large TCP frames themselves (a TUN device with offloads) also have
``send_segmented(SegmentedFrame, now)`` and a ``segmentation_limit`` (largest frame); they may
return ``OffloadedFrame`` values from ``receive``.

Entry points: ``Link`` (the protocol every link implements), ``LinkKind``, ``LinkStatistics``,
``SegmentedFrame``, ``OffloadedFrame``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import NamedTuple, Protocol, runtime_checkable


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


class LinkWrapper:
    """What a link stacked on another link (pcap tap, impairments) passes straight through:
    ``inner``, ``kind``, ``mtu``, ``statistics`` (the inner link's) and ``fileno``."""

    __slots__ = ("_inner",)

    def __init__(self, inner: Link) -> None:
        self._inner = inner

    @property
    def inner(self) -> Link:
        return self._inner

    @property
    def kind(self) -> LinkKind:
        return self._inner.kind

    @property
    def mtu(self) -> int:
        return self._inner.mtu

    @property
    def statistics(self) -> LinkStatistics:
        return self._inner.statistics

    def fileno(self) -> int | None:
        return self._inner.fileno()


class SegmentedFrame(NamedTuple):
    """A frame the device cuts into ``segment_size`` pieces itself (TCP segmentation offload).

    The fields are the virtio-net ones, so a link needs no protocol knowledge to use them:
    ``header_length`` bytes of headers are copied onto every piece, and the transport checksum
    (at ``checksum_start + checksum_offset``, holding the pseudo-header sum) is completed by the
    device for each piece.
    """

    frame: bytes
    segment_size: int
    header_length: int
    checksum_start: int
    checksum_offset: int


class OffloadedFrame(bytes):
    """A received frame whose transport checksum the kernel never computed (it came from the
    kernel's own memory, not a wire: virtio ``NEEDS_CSUM``); the stack need not verify it."""

    __slots__ = ()


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
