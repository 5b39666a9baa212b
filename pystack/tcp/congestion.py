"""Congestion window arithmetic: RFC 5681 with RFC 3465 byte counting (in slow start and, as
RFC 5681 3.1 recommends, in congestion avoidance) and RFC 6582 NewReno.

Job: keep ``cwnd`` and ``ssthresh`` (in bytes) and change them on the events the connection
reports. It must not keep the loss-recovery state machine: the connection decides when recovery
starts and ends, owns the ``recover`` point (RFC 6582 3.2), the duplicate-ACK counter, the SACK
scoreboard and the timers, and calls in here only for the window arithmetic. No clock is read.
Entry points: ``create`` (by name, so CUBIC can plug in later), ``NewReno``, the
``CongestionControl`` protocol the connection codes against.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Protocol

from pystack.tcp.settings import CongestionControlName

# RFC 5681 3.1: ssthresh starts "arbitrarily high".
INITIAL_SSTHRESH = 1 << 31
# RFC 3465 2.2: during slow start, one ACK may grow cwnd by at most L = 2*SMSS.
ABC_LIMIT_SEGMENTS = 2


class CongestionControl(Protocol):
    """What the connection needs from a congestion control algorithm (sizes in bytes)."""

    name: str
    cwnd: int
    ssthresh: int
    mss: int

    def set_mss(self, mss: int) -> None: ...
    def on_ack(self, acked: int) -> None: ...
    def enter_recovery(self, flight_size: int, sack: bool) -> None: ...
    def on_duplicate_ack_in_recovery(self) -> None: ...
    def on_partial_ack(self, acked: int) -> None: ...
    def exit_recovery(self, flight_size: int) -> None: ...
    def on_timeout(self, flight_size: int, repeated: bool = False) -> None: ...
    def on_idle_restart(self, idle: float, rto: float) -> None: ...
    def on_syn_loss(self) -> None: ...
    def initial_window(self) -> int: ...


def initial_window(mss: int, segments: int = 10) -> int:
    """The initial window in bytes for ``segments`` segments of ``mss`` bytes.

    RFC 6928 2: IW = min(10*MSS, max(2*MSS, 14600)), generalised to N segments of 1460 bytes.
    For N <= 4 the RFC 3390 bound min(4*MSS, max(2*MSS, 4380)) applies, and never more than
    N*MSS (both RFCs give upper bounds).
    """
    if segments <= 4:
        return min(segments * mss, 4 * mss, max(2 * mss, 4380))
    return min(segments * mss, max(2 * mss, segments * 1460))


class NewReno:
    """RFC 5681 slow start / congestion avoidance and the RFC 6582 recovery window."""

    __slots__ = (
        "_bytes_acked",
        "_sack_recovery",
        "_window_changed",
        "cwnd",
        "initial_window_segments",
        "mss",
        "ssthresh",
    )

    name = "newreno"

    def __init__(self, mss: int, initial_window_segments: int = 10) -> None:
        if mss <= 0 or initial_window_segments <= 0:
            raise ValueError(f"need mss > 0 and segments > 0, got {mss}, {initial_window_segments}")
        self.mss = mss
        self.initial_window_segments = initial_window_segments
        self.ssthresh = INITIAL_SSTHRESH
        # RFC 5681 3.1 / RFC 6928: cwnd starts at IW.
        self.cwnd = self.initial_window()
        self._sack_recovery = False
        self._window_changed = False  # nothing has changed cwnd since the start
        self._bytes_acked = 0  # RFC 3465 2.1: bytes acknowledged in congestion avoidance

    def set_mss(self, mss: int) -> None:
        """A new SMSS (MSS option, PMTU change). Before any window change, IW is recomputed."""
        if mss <= 0:
            raise ValueError(f"mss must be positive, got {mss}")
        self.mss = mss
        if not self._window_changed:
            self.cwnd = self.initial_window()
        else:
            self.cwnd = max(self.cwnd, mss)

    def initial_window(self) -> int:
        return initial_window(self.mss, self.initial_window_segments)

    def on_ack(self, acked: int) -> None:
        """An ACK outside recovery acknowledged ``acked`` new bytes."""
        if acked <= 0:
            return
        self._window_changed = True
        mss = self.mss
        if self.cwnd < self.ssthresh:
            # RFC 5681 3.1 (2) with RFC 3465 2.2 byte counting: cwnd += min(N, L), L = 2*SMSS.
            self.cwnd += min(acked, ABC_LIMIT_SEGMENTS * mss)
        else:
            # RFC 5681 3.1 (3) with RFC 3465 2.1 byte counting: cwnd += SMSS once cwnd bytes
            # are acknowledged. (The per-ACK SMSS*SMSS/cwnd rule grows half as fast against
            # a receiver that ACKs every second segment, as RFC 5681 3.1 itself notes.)
            self._bytes_acked += acked
            if self._bytes_acked >= self.cwnd:
                self._bytes_acked -= self.cwnd
                self.cwnd += mss

    def enter_recovery(self, flight_size: int, sack: bool) -> None:
        """Fast retransmit: RFC 5681 3.2 steps 2-3, RFC 6582 3.2 step 2, RFC 6675 5 (4.2)."""
        self._window_changed = True
        self._sack_recovery = sack
        self._bytes_acked = 0
        # RFC 5681 3.2 (4): ssthresh = max(FlightSize / 2, 2*SMSS).
        self.ssthresh = max(flight_size // 2, 2 * self.mss)
        if sack:
            # RFC 6675 5 (4.2): cwnd = ssthresh; the pipe estimate replaces inflation.
            self.cwnd = self.ssthresh
        else:
            # RFC 5681 3.2 step 3: cwnd = ssthresh + 3*SMSS for the three segments that left.
            self.cwnd = self.ssthresh + 3 * self.mss

    def on_duplicate_ack_in_recovery(self) -> None:
        """RFC 5681 3.2 step 4 / RFC 6582 3.2 step 3: inflate by SMSS (not with SACK)."""
        if not self._sack_recovery:
            self.cwnd += self.mss

    def on_partial_ack(self, acked: int) -> None:
        """RFC 6582 3.2 step 5: deflate by the bytes acked, add SMSS back if >= SMSS was acked.

        With SACK-based recovery (RFC 6675) cwnd stays at ssthresh, so this does nothing.
        """
        if self._sack_recovery or acked <= 0:
            return
        cwnd = self.cwnd - acked
        if acked >= self.mss:
            cwnd += self.mss
        # Keep at least one segment so the retransmission the partial ACK triggers can go.
        self.cwnd = max(cwnd, self.mss)

    def exit_recovery(self, flight_size: int) -> None:
        """RFC 6582 3.2 step 4 (full ACK), option 1: cwnd = min(ssthresh, max(FlightSize, SMSS) + SMSS)."""
        self._sack_recovery = False
        self.cwnd = min(self.ssthresh, max(flight_size, self.mss) + self.mss)

    def on_timeout(self, flight_size: int, repeated: bool = False) -> None:
        """The retransmission timer expired (RFC 5681 3.1).

        ``repeated``: the segment had already been retransmitted by the timer, so ssthresh is
        held (RFC 5681 3.1 sets it only when "the given segment has not yet been resent by way
        of the retransmission timer").
        """
        self._window_changed = True
        self._sack_recovery = False
        self._bytes_acked = 0  # RFC 3465 2.1: reset on a retransmission timeout
        if not repeated:
            # RFC 5681 3.1 (4): ssthresh = max(FlightSize / 2, 2*SMSS).
            self.ssthresh = max(flight_size // 2, 2 * self.mss)
        # RFC 5681 3.1: cwnd = LW, one full-sized segment.
        self.cwnd = self.mss

    def on_idle_restart(self, idle: float, rto: float) -> None:
        """RFC 5681 4.1: after an idle period longer than RTO, cwnd = RW = min(IW, cwnd)."""
        if idle > rto:
            self.cwnd = min(self.initial_window(), self.cwnd)

    def on_syn_loss(self) -> None:
        """RFC 5681 3.1 / RFC 6928 2: after a lost SYN or SYN-ACK, IW is one segment."""
        self._window_changed = True
        self.cwnd = self.mss

    def __repr__(self) -> str:
        return f"NewReno(cwnd={self.cwnd}, ssthresh={self.ssthresh}, mss={self.mss})"


Factory = Callable[[int, int], CongestionControl]


def algorithms() -> Mapping[str, Factory]:
    """The known algorithms by name (a fresh mapping: add CUBIC here)."""
    return {NewReno.name: NewReno}


def create(
    name: CongestionControlName | str, mss: int, initial_window_segments: int = 10
) -> CongestionControl:
    """A new congestion controller by algorithm, e.g. ``create(CongestionControlName.NEWRENO,
    1460)`` or by its name, ``create("newreno", 1460)``."""
    key = name.value if isinstance(name, CongestionControlName) else name.lower()
    factory = algorithms().get(key)
    if factory is None:
        known = ", ".join(sorted(algorithms()))
        raise ValueError(f"unknown congestion control {name!r} (known: {known})")
    return factory(mss, initial_window_segments)
