"""An in-memory link: two connected ends that pass frames to each other, in order.

Job: connect two stacks (or a stack and a test) in one process without the kernel. A frame sent on
one end is received on the other, in order, through a bounded queue; a full queue drops the frame
and counts it in the receiving end's ``statistics.receive_overflows``. Each end owns a non-blocking
``os.pipe()`` whose read end (``fileno()``) is readable exactly while frames wait, so a stack thread
can ``select`` on it. Both ends are thread-safe: one end may be driven from another thread.

Must not: parse frames (a link knows no protocol), block, or raise for a full queue.

Entry points: ``MemoryLink.pair(kind, mtu, capacity)``; then the ``Link`` methods on each end.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections import deque

from pystack.link.base import LinkKind, LinkStatistics

ETHERNET_HEADER_LENGTH = 14
_WAKE_BYTE = b"\x01"


class MemoryLink:
    """One end of an in-memory link (make both ends with ``MemoryLink.pair``).

    Frames must be immutable ``bytes``: they are handed to the peer without copying.
    """

    __slots__ = (
        "_capacity",
        "_closed",
        "_inbox",
        "_kind",
        "_lock",
        "_max_frame",
        "_mtu",
        "_peer",
        "_read_fd",
        "_statistics",
        "_write_fd",
    )

    def __init__(self, kind: LinkKind, mtu: int, capacity: int) -> None:
        if mtu < 1:
            raise ValueError(f"mtu must be positive, got {mtu}")
        if capacity < 1:
            raise ValueError(f"capacity must be positive, got {capacity}")
        self._kind = kind
        self._mtu = mtu
        self._max_frame = mtu + (ETHERNET_HEADER_LENGTH if kind is LinkKind.ETHERNET else 0)
        self._capacity = capacity
        self._statistics = LinkStatistics()
        self._inbox: deque[bytes] = deque()
        self._lock = threading.Lock()
        self._closed = False
        self._peer: MemoryLink | None = None
        # The wake-up pipe is made on the first fileno() call: simulations and scripted tests,
        # which never wait on a descriptor, then hold no descriptors at all.
        self._read_fd = self._write_fd = -1

    @classmethod
    def pair(
        cls, kind: LinkKind = LinkKind.IP, mtu: int = 1500, capacity: int = 1024
    ) -> tuple[MemoryLink, MemoryLink]:
        """Two connected ends; each has its own receive queue of ``capacity`` frames."""
        first = cls(kind, mtu, capacity)
        try:
            second = cls(kind, mtu, capacity)
        except BaseException:
            first.close()
            raise
        first._peer = second
        second._peer = first
        return first, second

    @property
    def kind(self) -> LinkKind:
        return self._kind

    @property
    def mtu(self) -> int:
        return self._mtu

    @property
    def statistics(self) -> LinkStatistics:
        return self._statistics

    @property
    def capacity(self) -> int:
        return self._capacity

    def send(self, frame: bytes, now: float) -> None:
        """Hand ``frame`` to the peer's queue; oversized frames or a closed link count a send error."""
        statistics = self._statistics
        peer = self._peer
        if len(frame) > self._max_frame or peer is None or self._closed:
            statistics.send_errors += 1
            return
        statistics.frames_sent += 1
        statistics.bytes_sent += len(frame)
        peer._deliver(frame)

    def _deliver(self, frame: bytes) -> None:
        # Called from the sender's thread. The pipe holds one byte exactly while the inbox is
        # non-empty: it is written on the empty -> non-empty transition, under the lock.
        with self._lock:
            inbox = self._inbox
            if self._closed or len(inbox) >= self._capacity:
                self._statistics.receive_overflows += 1
                return
            inbox.append(frame)
            if len(inbox) == 1 and self._write_fd >= 0:
                os.write(self._write_fd, _WAKE_BYTE)

    def receive(self, now: float, limit: int = 64) -> list[bytes]:
        """Take up to ``limit`` waiting frames, oldest first."""
        with self._lock:
            inbox = self._inbox
            if not inbox:
                return []
            if len(inbox) <= limit:
                frames = list(inbox)
                inbox.clear()
            else:
                popleft = inbox.popleft
                frames = [popleft() for _ in range(limit)]
            if not inbox:
                self._drain_pipe()
            statistics = self._statistics
            statistics.frames_received += len(frames)
            statistics.bytes_received += sum(map(len, frames))
        return frames

    def _drain_pipe(self) -> None:
        if self._read_fd >= 0:
            with contextlib.suppress(BlockingIOError):
                os.read(self._read_fd, 64)

    def pending(self) -> int:
        """Frames waiting in this end's receive queue."""
        with self._lock:
            return len(self._inbox)

    def next_deadline(self) -> float | None:
        return None

    def fileno(self) -> int | None:
        """The pipe's read end: readable while frames wait; None once closed."""
        with self._lock:
            if self._closed:
                return None
            if self._read_fd < 0:
                self._read_fd, self._write_fd = os.pipe()
                os.set_blocking(self._read_fd, False)
                os.set_blocking(self._write_fd, False)
                if self._inbox:
                    os.write(self._write_fd, _WAKE_BYTE)
            return self._read_fd

    def close(self) -> None:
        """Drop waiting frames and close both pipe descriptors (idempotent)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._inbox.clear()
            if self._read_fd >= 0:
                os.close(self._read_fd)
                os.close(self._write_fd)
                self._read_fd = self._write_fd = -1

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"MemoryLink(kind={self._kind.value}, mtu={self._mtu}, {state})"
