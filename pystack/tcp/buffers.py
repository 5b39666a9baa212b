"""TCP data buffers: the send buffer, the receive buffer, out-of-order reassembly, SACK scoreboard.

Job: hold stream bytes between the application and the wire, and the per-connection SACK state
(RFC 2018 receiver side, RFC 6675 sender side). It must not know connection state, timers or
windows beyond what is passed in: the connection decides what to send, what to accept and what to
advertise. Sequence numbers are absolute and compared only through ``pystack.tcp.seq``.
Per-segment paths (``SendBuffer.read``/``release``, ``ReceiveBuffer.append``/``read``,
``OutOfOrderQueue.insert``) copy each payload at most once and never loop per byte.

Memory by use: a buffer's storage grows as bytes arrive and shrinks as they leave (an empty
buffer holds no storage at all), and every byte held is counted in the stack's ``BufferPool``
(one integer update per call). ``capacity`` and ``limit`` bound one connection; the pool bounds
them all together: ``room`` is the smaller of the two, so the sum held stays within the pool's
limit except for bytes arriving into a window already advertised (a window never shrinks).
Entry points: ``BufferPool``, ``SendBuffer``, ``ReceiveBuffer``, ``OutOfOrderQueue``,
``SACKScoreboard`` (the latter in ``pystack.tcp.scoreboard``, re-exported here).
"""

from __future__ import annotations

from bisect import bisect_right

from pystack.tcp.scoreboard import SACKScoreboard
from pystack.tcp.seq import seq_add, seq_diff

__all__ = ["BufferPool", "OutOfOrderQueue", "ReceiveBuffer", "SACKScoreboard", "SendBuffer"]

Bytes = bytes | bytearray | memoryview

# Compact (drop consumed bytes from the front) once at least this much is consumed and the
# consumed part is at least half the storage: amortised O(1) per byte, no move per release.
COMPACT_MINIMUM = 1 << 16
# OutOfOrderQueue: how many recently received segments to remember for SACK ordering.
RECENT_SEGMENTS = 16


class BufferPool:
    """The bytes every connection's buffers of one stack hold, against ``limit``.

    Buffers add what they take in and subtract what leaves (``held``); a closed connection's
    buffers ``detach`` and give back what they still hold. ``room`` is what may still come in.
    """

    __slots__ = ("held", "limit")

    def __init__(self, limit: int) -> None:
        if limit < 0:
            raise ValueError(f"limit must be >= 0, got {limit}")
        self.limit = limit
        self.held = 0

    def __repr__(self) -> str:
        return f"<BufferPool {self.held} of {self.limit} bytes>"

    @property
    def room(self) -> int:
        return max(0, self.limit - self.held)

    @property
    def full(self) -> bool:
        return self.held >= self.limit


def _private_pool() -> BufferPool:
    """A pool of its own for a buffer that no longer counts against its stack."""
    return BufferPool(1 << 62)


class _ByteQueue:
    """A bytearray with a head index: appends at the back, consumes from the front."""

    __slots__ = ("_data", "_head", "capacity", "pool")

    def __init__(self, capacity: int, pool: BufferPool | None = None) -> None:
        if capacity < 0:
            raise ValueError(f"capacity must be >= 0, got {capacity}")
        self.capacity = capacity
        self.pool = pool if pool is not None else _private_pool()
        self._data = bytearray()
        self._head = 0

    def __len__(self) -> int:
        return len(self._data) - self._head

    @property
    def room(self) -> int:
        """Free space below ``capacity`` and the pool's limit (0 when over either)."""
        pool = self.pool
        room = self.capacity - (len(self._data) - self._head)
        shared = pool.limit - pool.held
        if shared < room:
            room = shared
        return room if room > 0 else 0

    def detach(self) -> None:
        """Stop counting against the stack's pool (the connection closed); the bytes stay
        readable, and what they held is given back to the pool at once."""
        self.pool.held -= len(self._data) - self._head
        self.pool = _private_pool()
        self.pool.held = len(self._data) - self._head

    def _consume(self, count: int) -> None:
        self.pool.held -= count
        data = self._data
        head = self._head + count
        if head >= len(data):
            # Empty: restart at the front (keeps the storage small and the head at zero).
            del data[:]
            head = 0
        elif head >= COMPACT_MINIMUM and head + head >= len(data):
            del data[:head]
            head = 0
        self._head = head

    def _slice(self, start: int, stop: int) -> bytes:
        # One copy out of the storage; the view is released before the storage can change.
        with memoryview(self._data)[start:stop] as view:
            return bytes(view)


class SendBuffer(_ByteQueue):
    """Bytes the application wrote, from snd_una on: unacknowledged, then unsent.

    Offsets count from the front (the byte at snd_una, or at ISS+1 before the SYN is acked).
    """

    __slots__ = ()

    def write(self, data: Bytes) -> int:
        """Copy in as much of ``data`` as fits in ``room``; return the number of bytes taken."""
        pool = self.pool
        room = self.capacity - (len(self._data) - self._head)
        shared = pool.limit - pool.held
        if shared < room:
            room = shared
        size = len(data) if not isinstance(data, memoryview) else data.nbytes
        if size <= room:
            self._data += data
            pool.held += size
            return size
        if room <= 0:
            return 0
        with memoryview(data) as view, view.cast("B")[:room] as part:
            self._data += part
        pool.held += room
        return room

    def read(self, offset: int, length: int) -> bytes:
        """``length`` bytes starting ``offset`` bytes after the front (fewer at the end)."""
        if offset < 0 or length < 0:
            raise ValueError(f"negative offset or length: {offset}, {length}")
        start = self._head + offset
        return self._slice(start, min(start + length, len(self._data)))

    def release(self, count: int) -> None:
        """Drop ``count`` acknowledged bytes from the front."""
        if count < 0 or count > len(self._data) - self._head:
            raise ValueError(f"cannot release {count} of {len(self)} bytes")
        if count:
            self._consume(count)


class ReceiveBuffer(_ByteQueue):
    """In-order data ready for the application.

    ``capacity`` and the pool only size ``room`` (what the connection advertises as its
    window); ``append`` never drops bytes, since the connection has acknowledged them.
    """

    __slots__ = ()

    def append(self, data: Bytes) -> None:
        self._data += data
        self.pool.held += len(data)

    def read(self, n: int) -> bytes:
        """Remove and return up to ``n`` bytes from the front."""
        head = self._head
        stop = min(head + max(n, 0), len(self._data))
        if stop == head:
            return b""
        result = self._slice(head, stop)
        self._consume(stop - head)
        return result

    def peek(self, n: int) -> bytes:
        """The first ``n`` bytes (fewer if not there), leaving them in the buffer."""
        head = self._head
        return self._slice(head, min(head + max(n, 0), len(self._data)))

    def read_all(self) -> bytes:
        return self.read(len(self._data) - self._head)

    def read_into(self, target: bytearray | memoryview) -> int:
        """Move bytes into ``target`` (for ``recv_into``); return how many."""
        head = self._head
        with memoryview(target) as out, out.cast("B") as flat:
            count = min(flat.nbytes, len(self._data) - head)
            with memoryview(self._data)[head : head + count] as source:
                flat[:count] = source
        if count:
            self._consume(count)  # after the views are released: the storage may shrink
        return count

    def find(self, needle: bytes, limit: int | None = None) -> int:
        """Offset of ``needle`` within the first ``limit`` bytes (all if None), or -1."""
        head = self._head
        stop = len(self._data) if limit is None else min(len(self._data), head + limit)
        index = self._data.find(needle, head, stop)
        return -1 if index < 0 else index - head


class _Range:
    """One contiguous run of held out-of-order bytes, kept as received chunks."""

    __slots__ = ("chunks", "length", "start")

    def __init__(self, start: int, chunks: list[bytes], length: int) -> None:
        self.start = start
        self.chunks = chunks
        self.length = length

    def join(self) -> bytes:
        chunks = self.chunks
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)


class OutOfOrderQueue:
    """Segments received above rcv_nxt, merged into disjoint, non-adjacent ranges.

    Overlaps keep the bytes received first (RFC 9293 3.10.7.4 leaves the choice open; this is
    what Linux does and it cannot be used to rewrite data already held). At most ``limit``
    bytes are held, and no more than the pool has room for; all held data must lie within
    2**31 above rcv_nxt (the window ensures it).
    """

    __slots__ = ("_held", "_ranges", "_recent", "limit", "pool")

    def __init__(self, limit: int, pool: BufferPool | None = None) -> None:
        self.limit = limit
        self.pool = pool if pool is not None else _private_pool()
        self._ranges: list[_Range] = []
        self._held = 0
        self._recent: list[int] = []  # one sequence number per accepted segment, oldest first

    def __len__(self) -> int:
        return len(self._ranges)

    @property
    def bytes_held(self) -> int:
        return self._held

    def clear(self) -> None:
        self.pool.held -= self._held
        self._ranges.clear()
        self._recent.clear()
        self._held = 0

    def _over(self, added: int) -> bool:
        """Would holding ``added`` more bytes pass the queue's limit or the pool's?"""
        pool = self.pool
        return self._held + added > self.limit or pool.held + added > pool.limit

    def ranges(self) -> list[tuple[int, int]]:
        """Held ranges [left, right) in sequence order."""
        return [(r.start, seq_add(r.start, r.length)) for r in self._ranges]

    def insert(self, seq: int, data: bytes, rcv_nxt: int) -> bool:
        """Hold ``data`` received at ``seq``; False (nothing stored) if over ``limit``."""
        size = len(data)
        offset = seq_diff(seq, rcv_nxt)
        end = offset + size
        if end <= 0 or size == 0:
            return True  # empty, or entirely old: nothing to hold
        if offset < 0:
            data = data[-offset:]  # RFC 9293 3.10.7.4: trim what is before RCV.NXT
            offset = 0
        seq = seq_add(rcv_nxt, offset)
        if isinstance(data, memoryview | bytearray):
            data = bytes(data)  # never keep a view of the caller's buffer
        ranges = self._ranges
        if ranges:
            last = ranges[-1]
            last_end = seq_diff(last.start, rcv_nxt) + last.length
            if offset == last_end:
                # Fast path: the segment continues the highest range (the usual case).
                if self._over(end - offset):
                    return False
                last.chunks.append(data)
                last.length += end - offset
                self._held += end - offset
                self.pool.held += end - offset
                self._remember(seq)
                return True
            if offset < last_end:
                return self._insert_overlapping(offset, end, data, rcv_nxt)
        if self._over(end - offset):
            return False
        ranges.append(_Range(seq, [data], end - offset))
        self._held += end - offset
        self.pool.held += end - offset
        self._remember(seq)
        return True

    def _insert_overlapping(self, offset: int, end: int, data: bytes, rcv_nxt: int) -> bool:
        """General case: ``[offset, end)`` (relative to rcv_nxt) touches or precedes held ranges."""
        ranges = self._ranges

        def relative_start(item: _Range) -> int:
            return seq_diff(item.start, rcv_nxt)

        first = bisect_right(ranges, offset, key=relative_start) - 1
        if first < 0 or relative_start(ranges[first]) + ranges[first].length < offset:
            first += 1  # the range before does not reach the new data
        stop = bisect_right(ranges, end, key=relative_start)  # ranges[first:stop] touch it
        # Carve out the gaps the touched ranges leave in the new data; those are the new bytes.
        chunks: list[bytes] = []
        position = offset
        added = 0
        for item in ranges[first:stop]:
            item_start = relative_start(item)
            if item_start > position:
                chunks.append(data[position - offset : item_start - offset])
                added += item_start - position
            chunks.extend(item.chunks)
            position = max(position, item_start + item.length)
        if position < end:
            chunks.append(data[position - offset :])
            added += end - position
        if added == 0:
            self._remember(seq_add(rcv_nxt, offset))  # a duplicate still counts for SACK order
            return True
        if self._over(added):
            return False
        start = min(offset, relative_start(ranges[first])) if first < stop else offset
        length = max(end, position) - start
        ranges[first:stop] = [_Range(seq_add(rcv_nxt, start), chunks, length)]
        self._held += added
        self.pool.held += added
        self._remember(seq_add(rcv_nxt, offset))
        return True

    def _remember(self, seq: int) -> None:
        recent = self._recent
        recent.append(seq)
        if len(recent) > 2 * RECENT_SEGMENTS:
            del recent[:-RECENT_SEGMENTS]

    def pop_ready(self, rcv_nxt: int) -> bytes:
        """Remove and return the bytes that continue the stream at rcv_nxt (maybe b"")."""
        ranges = self._ranges
        while ranges:
            item = ranges[0]
            start = seq_diff(item.start, rcv_nxt)
            if start > 0:
                return b""
            del ranges[0]
            self._held -= item.length
            self.pool.held -= item.length
            self._forget_recent_before(rcv_nxt)
            if start + item.length <= 0:
                continue  # wholly before rcv_nxt: already delivered some other way
            data = item.join()
            return data[-start:] if start else data
        return b""

    def _forget_recent_before(self, rcv_nxt: int) -> None:
        self._recent = [seq for seq in self._recent if seq_diff(seq, rcv_nxt) > 0]

    def sack_blocks(self, limit: int = 4) -> list[tuple[int, int]]:
        """SACK blocks per RFC 2018 4: the most recent segment's block first, then recent ones.

        Blocks that no recent segment maps to follow, highest first, up to ``limit``.
        """
        ranges = self._ranges
        if not ranges or limit <= 0:
            return []
        base = ranges[0].start

        def relative_start(item: _Range) -> int:
            return seq_diff(item.start, base)

        chosen: list[int] = []
        for seq in reversed(self._recent):
            index = bisect_right(ranges, seq_diff(seq, base), key=relative_start) - 1
            if index < 0 or index in chosen:
                continue
            if seq_diff(seq, ranges[index].start) >= ranges[index].length:
                continue  # no longer held (delivered or dropped)
            chosen.append(index)
            if len(chosen) == limit:
                break
        for index in range(len(ranges) - 1, -1, -1):
            if len(chosen) >= limit:
                break
            if index not in chosen:
                chosen.append(index)
        return [(ranges[i].start, seq_add(ranges[i].start, ranges[i].length)) for i in chosen]
