"""The sender's SACK scoreboard (RFC 6675, with RFC 2883 D-SACK detection).

Job: remember which bytes in [snd_una, snd_nxt) the peer has selectively acknowledged and answer
RFC 6675's questions about them: IsLost, SetPipe (``pipe``), NextSeg rule (1)
(``next_retransmit``) and rule (3) (``next_unsacked``). It must not keep recovery state:
HighRxt, RescueRxt, RecoveryPoint and cwnd belong to the connection and come in as arguments.
Conventions: ranges are [left, right) in absolute sequence numbers; ``high_rxt`` is exclusive,
one past the highest byte retransmitted in this recovery (RFC 6675 HighRxt + 1), so it starts
at snd_una. Sizes are counted in bytes, not segments. At most ``max_ranges`` ranges are kept
(the highest are dropped beyond that), so every method is O(ranges), with no per-byte loops.
Entry points: ``SACKScoreboard.update``, ``advance``, ``pipe``, ``next_retransmit``.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable

from pystack.tcp.seq import HALF, MASK, MOD, seq_add, seq_diff, seq_lt, seq_max, seq_min

MAX_RANGES = 64


class SACKScoreboard:
    """Merged SACKed ranges in sequence order, plus a D-SACK counter."""

    __slots__ = ("_ends", "_sacked", "_starts", "dsack_count", "last_dsack", "max_ranges")

    def __init__(self, max_ranges: int = MAX_RANGES) -> None:
        self.max_ranges = max_ranges
        self._starts: list[int] = []  # absolute left edges, in sequence order
        self._ends: list[int] = []  # absolute right edges (exclusive)
        self._sacked = 0
        self.dsack_count = 0
        self.last_dsack: tuple[int, int] | None = None  # the D-SACK block of the last update

    def __len__(self) -> int:
        return len(self._starts)

    @property
    def sacked_bytes(self) -> int:
        return self._sacked

    def clear(self) -> None:
        """Forget everything SACKed (RFC 2018 8: after a retransmission timeout)."""
        self._starts.clear()
        self._ends.clear()
        self._sacked = 0

    def blocks(self) -> list[tuple[int, int]]:
        return list(zip(self._starts, self._ends, strict=True))

    def update(self, blocks: Iterable[tuple[int, int]], snd_una: int, snd_nxt: int) -> int:
        """Merge the SACK blocks of one ACK; return the bytes newly SACKed.

        Pass the segment's cumulative ACK as ``snd_una`` when it advances it, so that a D-SACK
        for the data it acknowledges is recognised. RFC 2883 4: a first block below snd_una,
        or inside another block of the same option, reports a duplicate: it is counted in
        ``dsack_count``, kept in ``last_dsack`` (None when this ACK has none) and not merged. Other blocks outside [snd_una, snd_nxt] are ignored.
        """
        blocks = tuple(blocks)
        self.last_dsack = None
        self.advance(snd_una)
        span = seq_diff(snd_nxt, snd_una)
        offsets: list[tuple[int, int]] = []
        for index, (left, right) in enumerate(blocks):
            low = seq_diff(left, snd_una)
            high = seq_diff(right, snd_una)
            if index == 0 and (low < 0 or _inside_another(left, right, blocks)):
                self.dsack_count += 1
                self.last_dsack = (left, right)
                continue
            if 0 <= low < high <= span and not self._covers(left, right):
                offsets.append((low, high))
        if not offsets:
            return 0
        before = self._sacked
        self._merge(offsets, snd_una)
        return self._sacked - before

    def covers(self, left: int, right: int) -> bool:
        """Is all of [left, right) SACKed? (RACK asks it of each segment in flight.)"""
        return self._covers(left, right)

    def _covers(self, left: int, right: int) -> bool:
        """A held range already contains [left, right) (the common repeat of old blocks)."""
        index = self._index_at(left)
        return index >= 0 and seq_diff(right, self._ends[index]) <= 0

    def _merge(self, offsets: list[tuple[int, int]], base: int) -> None:
        starts, ends = self._starts, self._ends
        intervals = [
            (seq_diff(s, base), seq_diff(e, base)) for s, e in zip(starts, ends, strict=True)
        ]
        intervals.extend(offsets)
        intervals.sort()
        merged_low: list[int] = []
        merged_high: list[int] = []
        for low, high in intervals:
            if merged_high and low <= merged_high[-1]:
                if high > merged_high[-1]:
                    merged_high[-1] = high
            else:
                merged_low.append(low)
                merged_high.append(high)
        # Bounded memory: keep the lowest ranges, which are the ones recovery works on next.
        del merged_low[self.max_ranges :], merged_high[self.max_ranges :]
        self._starts = [seq_add(base, low) for low in merged_low]
        self._ends = [seq_add(base, high) for high in merged_high]
        self._sacked = sum(merged_high) - sum(merged_low)

    def advance(self, snd_una: int) -> None:
        """The cumulative ACK reached ``snd_una``: forget what lies below it."""
        starts, ends = self._starts, self._ends
        if not starts or not seq_lt(starts[0], snd_una):
            return
        count = 0
        while count < len(starts) and seq_diff(ends[count], snd_una) <= 0:
            self._sacked -= seq_diff(ends[count], starts[count])
            count += 1
        if count:
            del starts[:count], ends[:count]
        if starts and seq_lt(starts[0], snd_una):
            self._sacked -= seq_diff(snd_una, starts[0])
            starts[0] = snd_una

    def _index_at(self, seq: int) -> int:
        """Index of the last range starting at or before ``seq`` (-1 if none)."""
        starts = self._starts
        if not starts:
            return -1
        base = starts[0]
        offset = seq_diff(seq, base)
        if offset < 0:
            return -1
        return bisect_right(starts, offset, key=lambda start: seq_diff(start, base)) - 1

    def is_sacked(self, seq: int) -> bool:
        index = self._index_at(seq)
        return index >= 0 and seq_lt(seq, self._ends[index])

    def sacked_run(self, seq: int) -> int:
        """How many bytes from ``seq`` on are SACKed without a gap (0 if ``seq`` is not)."""
        index = self._index_at(seq)
        if index < 0:
            return 0
        return max(0, seq_diff(self._ends[index], seq))

    def highest_sacked(self) -> int | None:
        """One past the highest SACKed byte (the right edge of the top range), or None."""
        return self._ends[-1] if self._ends else None

    def holes(self, snd_una: int, snd_nxt: int) -> list[tuple[int, int]]:
        """Un-SACKed ranges [left, right) from snd_una up to the highest SACKed byte."""
        result: list[tuple[int, int]] = []
        position = snd_una
        for start, end in zip(self._starts, self._ends, strict=True):
            if seq_lt(position, start):
                result.append((position, start if seq_lt(start, snd_nxt) else snd_nxt))
            if seq_lt(position, end):
                position = end
        return result

    def is_lost(self, seq: int, mss: int, dup_threshold: int = 3) -> bool:
        """RFC 6675 4 IsLost(SeqNum): DupThresh discontiguous SACKed ranges above ``seq``, or
        more than (DupThresh - 1) * SMSS bytes SACKed above it."""
        starts, ends = self._starts, self._ends
        above = 0
        for count, index in enumerate(range(len(starts) - 1, -1, -1), start=1):
            high = seq_diff(ends[index], seq) - 1  # bytes of this range with numbers > seq
            if high <= 0:
                break
            above += min(high, seq_diff(ends[index], starts[index]))
            if count >= dup_threshold or above > (dup_threshold - 1) * mss:
                return True
        return False

    def _lost_edge(self, mss: int, dup_threshold: int) -> int | None:
        """For un-SACKed ``seq``: IsLost(seq) holds exactly when ``seq`` is below this edge.

        Both IsLost tests only weaken as ``seq`` grows, and for an un-SACKed ``seq`` they count
        whole ranges starting above it, so the edge is the left edge of a range.
        """
        starts, ends = self._starts, self._ends
        limit = (dup_threshold - 1) * mss
        above = 0
        index = len(starts)
        while index:
            index -= 1
            above += (ends[index] - starts[index]) & MASK
            if len(starts) - index >= dup_threshold or above > limit:
                return starts[index]
        return None

    def pipe(
        self, snd_una: int, snd_nxt: int, high_rxt: int, mss: int, dup_threshold: int = 3
    ) -> int:
        """RFC 6675 4 SetPipe, in bytes: each un-SACKed byte in [snd_una, snd_nxt) counts once
        if not IsLost, and once more if it was retransmitted (below ``high_rxt``)."""
        span = seq_diff(snd_nxt, snd_una)
        if span <= 0:
            return 0
        resent = min(max(seq_diff(high_rxt, snd_una), 0), span)
        starts, ends = self._starts, self._ends
        if not starts:
            return span + resent
        # Offsets from snd_una, clamped to [0, span]: lost below ``edge``, retransmitted below
        # ``resent``. One pass adds up the SACKed bytes below each of the three limits.
        lost_edge = self._lost_edge(mss, dup_threshold)
        edge = 0 if lost_edge is None else min(max(seq_diff(lost_edge, snd_una), 0), span)
        sacked_span = sacked_edge = sacked_resent = 0
        for start, end in zip(starts, ends, strict=True):
            low = (start - snd_una) & MASK  # seq_diff, inlined: this runs per send decision
            if low > HALF:
                low -= MOD
            if low >= span:
                break
            high = low + ((end - start) & MASK)
            if high > span:
                high = span
            if low < 0:
                low = 0
            if high <= low:
                continue
            sacked_span += high - low
            if low < edge:
                sacked_edge += (high if high < edge else edge) - low
            if low < resent:
                sacked_resent += (high if high < resent else resent) - low
        unsacked = span - sacked_span
        lost = edge - sacked_edge
        retransmitted = resent - sacked_resent
        return unsacked - lost + retransmitted

    def _first_unsacked(self, snd_una: int, high_rxt: int) -> int | None:
        """The lowest un-SACKed byte at or above max(snd_una, high_rxt) and below the top range."""
        if not self._starts:
            return None
        seq = seq_max(snd_una, high_rxt)
        index = self._index_at(seq)
        if index >= 0 and seq_lt(seq, self._ends[index]):
            seq = self._ends[index]  # inside a SACKed range: ranges are disjoint, so skip one
        return seq if seq_lt(seq, self._ends[-1]) else None

    def _segment_at(self, seq: int, snd_nxt: int, mss: int) -> tuple[int, int]:
        """(seq, length): up to ``mss`` bytes from ``seq``, stopping at the next SACKed range."""
        limit = seq_min(seq_add(seq, mss), snd_nxt)
        index = self._index_at(seq) + 1
        if index < len(self._starts):
            limit = seq_min(limit, self._starts[index])
        return seq, seq_diff(limit, seq)

    def piece_at(self, seq: int, end: int, mss: int) -> int:
        """Where a resend from un-SACKed ``seq`` stops: at most ``mss`` bytes, before ``end``
        and before the next SACKed range."""
        return seq_add(seq, self._segment_at(seq, end, mss)[1])

    def next_retransmit(
        self, snd_una: int, snd_nxt: int, high_rxt: int, mss: int, dup_threshold: int = 3
    ) -> tuple[int, int] | None:
        """RFC 6675 4 NextSeg() rule (1): the first un-SACKed byte S2 >= ``high_rxt`` below the
        highest SACKed byte with IsLost(S2); one segment of up to ``mss`` bytes from there."""
        seq = self._first_unsacked(snd_una, high_rxt)
        # IsLost only weakens further up, so if S2 is not lost no higher byte is.
        if seq is None or not seq_lt(seq, snd_nxt) or not self.is_lost(seq, mss, dup_threshold):
            return None
        return self._segment_at(seq, snd_nxt, mss)

    def next_unsacked(
        self, snd_una: int, snd_nxt: int, high_rxt: int, mss: int
    ) -> tuple[int, int] | None:
        """RFC 6675 4 NextSeg() rule (3): as rule (1) without the IsLost test."""
        seq = self._first_unsacked(snd_una, high_rxt)
        if seq is None or not seq_lt(seq, snd_nxt):
            return None
        return self._segment_at(seq, snd_nxt, mss)


def _inside_another(left: int, right: int, blocks: Iterable[tuple[int, int]]) -> bool:
    """RFC 2883 4: the first block lies within a later block of the same SACK option."""
    for index, (other_left, other_right) in enumerate(blocks):
        if index and seq_diff(left, other_left) >= 0 and seq_diff(other_right, right) >= 0:
            return True
    return False
