"""RACK's record of what is in flight (RFC 8985) and PRR's sending quota (RFC 6937).

Job: ``RackState`` keeps, for each segment sent and not yet delivered, its sequence range, the
time of its latest transmission and whether it was retransmitted or is deemed lost, plus RACK's
own variables (RACK.xmit_ts, RACK.end_seq, RACK.rtt, RACK.min_RTT, the reordering window). It
answers RACK's questions: which segments are lost (``detect_loss``), how long until the next
one would be (the reordering timer), what is in flight (``pipe``), which lost segment to resend
next (``first_lost``). ``prr_quota`` is RFC 6937's arithmetic. Neither sends, reads a clock nor
changes a connection variable: the connection (``input.py``, ``output.py``, ``connection.py``)
calls in with ``now`` and acts on the answers. TLP's variables (TLP.end_seq, the PTO deadline)
are the connection's, like every timer.

Conventions: ranges are [start, end) in absolute sequence numbers (a FIN counts as one number);
the records are kept in sequence order, one small ``Sent`` each, and only while the data is in
flight: an idle connection holds an empty list. A record is dropped once its data is
cumulatively acknowledged or wholly SACKed (the SACK scoreboard remembers the SACKed ranges).
"""

from __future__ import annotations

from collections.abc import Callable

from pystack.tcp.seq import HALF, MASK, MOD

RETRANSMITTED = 1  # the latest transmission is a retransmission (its RTT is ambiguous)
LOST = 2  # RACK (or TLP/RTO) deemed this transmission lost; it waits to be resent

REO_WND_PERSIST = 16  # RFC 8985 6.2 step 4: DSACK-free recoveries before reo_wnd_mult resets


class Sent:
    """One transmission in flight: [start, end), when it was (last) sent, and its flags."""

    __slots__ = ("end", "flags", "start", "time")  # slots: 64 bytes a record, no dict

    def __init__(self, start: int, end: int, time: float, flags: int) -> None:
        self.start, self.end, self.time, self.flags = start, end, time, flags

    def __repr__(self) -> str:
        return f"Sent({self.start}, {self.end}, {self.time}, {self.flags})"


def _diff(a: int, b: int) -> int:
    """seq_diff, inlined for the per-ACK loops: a - b in sequence space."""
    d = (a - b) & MASK
    return d - MOD if d > HALF else d


class RackState:
    """RFC 8985 RACK: per-segment transmit times and the time-based loss detection."""

    __slots__ = (
        "dsack_round",
        "end_seq",
        "fack",
        "min_rtt",
        "reo_wnd_mult",
        "reo_wnd_persist",
        "reordering_seen",
        "rtt",
        "segments",
        "xmit_time",
    )

    def __init__(self) -> None:
        self.segments: list[Sent] = []  # in sequence order
        self.xmit_time: float | None = None  # RACK.xmit_ts: latest send time delivered
        self.end_seq = 0  # RACK.end_seq: its end (breaks ties between equal times)
        self.rtt = 0.0  # RACK.rtt: the RTT of that most recently sent delivered segment
        self.min_rtt: float | None = None  # RACK.min_RTT (the minimum of every sample)
        self.fack: int | None = None  # RACK.fack: the highest end delivered
        self.reordering_seen = False
        self.reo_wnd_mult = 1
        self.reo_wnd_persist = REO_WND_PERSIST
        self.dsack_round: int | None = None

    # -- sending -----------------------------------------------------------------------------
    def sent(self, start: int, end: int, now: float, retransmission: bool) -> None:
        """Record one transmission of [start, end). New data goes at the end (the cheap case);
        a retransmission replaces the overlapped parts of older records."""
        segments = self.segments
        if not retransmission and (not segments or _diff(start, segments[-1].end) >= 0):
            segments.append(Sent(start, end, now, 0))
            return
        kept: list[Sent] = []
        placed = False
        record = Sent(start, end, now, RETRANSMITTED)
        for old in segments:
            old_start, old_end = old.start, old.end
            if _diff(old_end, start) <= 0 or _diff(old_start, end) >= 0:
                if not placed and _diff(old_start, end) >= 0:
                    kept.append(record)
                    placed = True
                kept.append(old)
                continue
            # The overlap is replaced; what sticks out on either side keeps its old time.
            if _diff(old_start, start) < 0:
                kept.append(Sent(old_start, start, old.time, old.flags))
            if not placed:
                kept.append(record)
                placed = True
            if _diff(old_end, end) > 0:
                kept.append(Sent(end, old_end, old.time, old.flags))
        if not placed:
            kept.append(record)
        self.segments = kept

    # -- delivery (RFC 8985 6.2 steps 2-3) ---------------------------------------------------
    def acknowledged(self, ack: int, now: float) -> None:
        """The cumulative ACK reached ``ack``: the records below it are delivered."""
        segments = self.segments
        count = 0
        for record in segments:
            if _diff(record.end, ack) > 0:
                if _diff(record.start, ack) < 0:
                    record.start = ack  # partly acknowledged: the rest stays in flight
                break
            self._delivered(record, now)
            count += 1
        if count:
            del segments[:count]

    def sacked(self, is_covered: Callable[[int, int], bool], now: float) -> None:
        """New SACK blocks arrived: every record they now cover wholly is delivered."""
        kept = []
        for record in self.segments:
            if is_covered(record.start, record.end):
                self._delivered(record, now)
            else:
                kept.append(record)
        self.segments = kept

    def _delivered(self, record: Sent, now: float) -> None:
        rtt = now - record.time
        end = record.end
        if record.flags & RETRANSMITTED and self.min_rtt is not None and rtt < self.min_rtt:
            # RFC 8985 6.2 step 2: delivered sooner than any round trip allows, so this ACK is
            # for the original transmission, not the retransmission: its time tells nothing.
            return
        self.rtt = rtt
        xmit = self.xmit_time
        if (
            xmit is None
            or record.time > xmit
            or (record.time == xmit and _diff(end, self.end_seq) > 0)
        ):
            self.xmit_time, self.end_seq = record.time, end
        # RFC 8985 6.2 step 3: an original transmission delivered below the highest delivered
        # end arrived out of order: the network reorders.
        fack = self.fack
        if fack is None or _diff(end, fack) > 0:
            self.fack = end
        elif not record.flags & RETRANSMITTED:
            self.reordering_seen = True

    def note_rtt(self, sample: float) -> None:
        """An RTT sample from the connection's estimator (RACK.min_RTT is their minimum)."""
        if self.min_rtt is None or sample < self.min_rtt:
            self.min_rtt = sample

    # -- the reordering window (RFC 8985 6.2 step 4) -----------------------------------------
    def note_dsack(self, snd_una: int, snd_nxt: int) -> None:
        """A D-SACK arrived: grow reo_wnd by one min_RTT/4 step, at most once per round trip."""
        if self.dsack_round is not None and _diff(snd_una, self.dsack_round) >= 0:
            self.dsack_round = None
        if self.dsack_round is None:
            self.dsack_round = snd_nxt
            self.reo_wnd_mult += 1
            self.reo_wnd_persist = REO_WND_PERSIST

    def recovery_ended(self) -> None:
        """After 16 recoveries without a D-SACK the reordering window shrinks back."""
        self.reo_wnd_persist -= 1
        if self.reo_wnd_persist <= 0:
            self.reo_wnd_mult = 1
            self.reo_wnd_persist = REO_WND_PERSIST

    def reo_wnd(
        self, in_recovery: bool, sacked_bytes: int, dup_threshold: int, mss: int, srtt: float
    ) -> float:
        """RACK.reo_wnd: min(mult * min_RTT / 4, SRTT); 0 while no reordering was seen and
        loss is already evident (in recovery, or DupThresh segments SACKed), as RFC 6675."""
        if not self.reordering_seen and (in_recovery or sacked_bytes >= dup_threshold * mss):
            return 0.0
        min_rtt = self.min_rtt if self.min_rtt is not None else srtt
        return min(self.reo_wnd_mult * min_rtt / 4.0, srtt)

    # -- loss detection (RFC 8985 6.2 step 5) ------------------------------------------------
    def detect_loss(self, now: float, reo_wnd: float) -> tuple[int, float]:
        """Mark lost every record sent before the most recently delivered one by more than
        RACK.rtt + reo_wnd ago. Returns (segments newly marked lost, seconds until the next
        record would be: the reordering timer, 0 for none)."""
        xmit, end_seq = self.xmit_time, self.end_seq
        if xmit is None:
            return 0, 0.0
        allowance = self.rtt + reo_wnd
        lost = 0
        timeout = 0.0
        for record in self.segments:
            if record.flags & LOST:
                continue
            sent = record.time
            if sent < xmit or (sent == xmit and _diff(end_seq, record.end) > 0):
                remaining = sent + allowance - now
                if remaining <= 0:
                    record.flags = record.flags | LOST
                    lost += 1
                elif remaining > timeout:
                    timeout = remaining
        return lost, timeout

    def mark_all_lost(self) -> None:
        """An RTO: everything in flight is deemed lost (RFC 8985 6.3, as Linux's loss state)."""
        for record in self.segments:
            record.flags = record.flags | LOST

    # -- questions the sender asks -----------------------------------------------------------
    def pipe(self) -> int:
        """Bytes in flight: recorded (neither delivered nor SACKed) and not deemed lost."""
        total = 0
        for record in self.segments:
            if not record.flags & LOST:
                total += _diff(record.end, record.start)
        return total

    def lost_bytes(self) -> int:
        return sum(_diff(r.end, r.start) for r in self.segments if r.flags & LOST)

    def first_lost(self) -> tuple[int, int] | None:
        """The lowest range deemed lost and not yet resent, as (start, end)."""
        for record in self.segments:
            if record.flags & LOST:
                return record.start, record.end
        return None

    def last_range(self) -> tuple[int, int] | None:
        """The highest range in flight (what a tail loss probe resends when no new data waits)."""
        if not self.segments:
            return None
        last = self.segments[-1]
        return int(last.start), int(last.end)

    def clear(self) -> None:
        self.segments = []


def prr_quota(
    prr_delivered: int,
    prr_out: int,
    delivered: int,
    pipe: int,
    ssthresh: int,
    recover_fs: int,
    mss: int,
) -> int:
    """RFC 6937 3 (PRR-SSRB): how many bytes recovery may send after this ACK (``sndcnt``).

    ``prr_delivered``: bytes delivered to the receiver since recovery began (this ACK included);
    ``prr_out``: bytes sent since; ``delivered``: this ACK's DeliveredData; ``recover_fs``: the
    FlightSize when recovery began. While pipe is above ssthresh the sender sends in proportion
    to what is delivered (ssthresh/RecoverFS of it, about one segment per two with a halving);
    below it, slow start reduction bound: at most one segment more than was delivered, up to
    ssthresh. The first ACK of a recovery may always send one segment (the fast retransmit).
    """
    if pipe > ssthresh:
        # ceil(prr_delivered * ssthresh / RecoverFS) - prr_out
        sndcnt = -(-prr_delivered * ssthresh // max(recover_fs, 1)) - prr_out
    else:
        limit = max(prr_delivered - prr_out, delivered) + mss
        sndcnt = min(ssthresh - pipe, limit)
    if prr_out == 0 and sndcnt < mss:
        sndcnt = mss  # the fast retransmit goes at once (RFC 5681 3.2 step 2; Linux does too)
    return max(sndcnt, 0)
