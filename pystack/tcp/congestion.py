"""Congestion window arithmetic: RFC 5681 with RFC 3465 byte counting (in slow start and, as
RFC 5681 3.1 recommends, in congestion avoidance) and RFC 6582 NewReno, and CUBIC (RFC 9438).

Job: keep ``cwnd`` and ``ssthresh`` (in bytes) and change them on the events the connection
reports. It must not keep the loss-recovery state machine: the connection decides when recovery
starts and ends, owns the ``recover`` point (RFC 6582 3.2), the duplicate-ACK counter, the SACK
scoreboard and the timers, and calls in here only for the window arithmetic. No clock is read:
CUBIC's window is a function of time, so ``on_ack`` gets the connection's ``now`` and its
smoothed RTT (NewReno ignores both).
Entry points: ``create`` (by name), ``switch`` (a connection changes algorithm),
``NewReno``, ``Cubic``, the ``CongestionControl`` protocol the connection codes against.
"""

from __future__ import annotations

import math
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
    def on_ack(self, acked: int, now: float, srtt: float | None) -> None: ...
    def enter_recovery(self, flight_size: int, sack: bool) -> None: ...
    def on_duplicate_ack_in_recovery(self) -> None: ...
    def on_partial_ack(self, acked: int) -> None: ...
    def exit_recovery(self, flight_size: int) -> None: ...
    def on_timeout(self, flight_size: int, repeated: bool = False) -> None: ...
    def on_idle_restart(self, idle: float, rto: float) -> None: ...
    def on_syn_loss(self) -> None: ...
    def initial_window(self) -> int: ...
    def state(self) -> dict[str, object]: ...
    def summary(self) -> str: ...


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

    def on_ack(self, acked: int, now: float, srtt: float | None) -> None:
        """An ACK outside recovery acknowledged ``acked`` new bytes (``now`` and ``srtt``, the
        smoothed RTT in seconds or None before the first sample, are not used by NewReno)."""
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

    def state(self) -> dict[str, object]:
        """The algorithm's own variables beyond cwnd and ssthresh (``tcp_info``): none."""
        return {}

    def summary(self) -> str:
        """One line for ``--stats`` and ``--trace``: the algorithm and its own variables."""
        return self.name

    def __repr__(self) -> str:
        return f"NewReno(cwnd={self.cwnd}, ssthresh={self.ssthresh}, mss={self.mss})"


# RFC 9438 constants. 4.2 / 5: C SHOULD be 0.4 (with t in seconds and windows in segments);
# 4.6: beta_cubic SHOULD be 0.7 (the window keeps 70% on loss, where Reno keeps 50%);
# 4.3: alpha_cubic = 3 * (1 - beta_cubic) / (1 + beta_cubic) gives the same average window as
# Reno's AIMD(1, 0.5) under the same loss rate (about 0.53 segments per RTT).
C_CUBIC = 0.4
BETA_CUBIC = 0.7
ALPHA_CUBIC = 3 * (1 - BETA_CUBIC) / (1 + BETA_CUBIC)
# 4.2: the target after one RTT is at most 1.5 * cwnd, so CUBIC never grows faster than slow start.
MAX_GROWTH = 1.5


def cubic_window(t: float, k: float, w_max: float) -> float:
    """RFC 9438 4.2 Figure 1: W_cubic(t) = C * (t - K)**3 + W_max (segments, t in seconds)."""
    return C_CUBIC * (t - k) ** 3 + w_max


def cubic_k(w_max: float, cwnd_epoch: float) -> float:
    """RFC 9438 4.2 Figure 2: K = cbrt((W_max - cwnd_epoch) / C), the seconds the curve takes
    from ``cwnd_epoch`` back up to ``W_max``; 0 when the window starts at or above W_max."""
    return math.cbrt(max(w_max - cwnd_epoch, 0.0) / C_CUBIC)


class Cubic(NewReno):
    """CUBIC (RFC 9438): NewReno's slow start and recovery, a gentler decrease (beta 0.7) and a
    window that grows in congestion avoidance as a cubic function of the time since the last
    congestion event: fast while far below the window where the loss happened (W_max), flat near
    it (concave region), then faster again past it (convex region, probing for more bandwidth);
    never slower than Reno would grow (the Reno-friendly region).

    What CUBIC keeps, in segments (floats; cwnd itself stays in bytes):
    ``w_max`` the window just before the last reduction (after fast convergence), ``k`` the
    seconds from the start of the epoch until W_cubic reaches W_max again, ``epoch_start`` the
    time the current congestion-avoidance stage began (None: not in one), ``cwnd_epoch`` cwnd
    then, ``w_est`` the window Reno would have now (4.3), ``cwnd_prior`` cwnd before the last
    reduction, ``alpha`` W_est's growth per RTT (alpha_cubic, then 1), ``region`` which rule
    set cwnd last (slow start, recovery, reno-friendly, concave, convex).

    Not implemented: HyStart++ (RFC 9406, optional in RFC 9438 4.10; slow start is RFC 5681's,
    exactly as NewReno's) and the undo of 4.9 (spurious congestion events).
    """

    __slots__ = (
        "_after_timeout",
        "_carry",
        "_in_recovery",
        "alpha",
        "cwnd_epoch",
        "cwnd_prior",
        "epoch_start",
        "fast_convergence",
        "k",
        "region",
        "w_est",
        "w_max",
    )

    name = "cubic"

    def __init__(
        self, mss: int, initial_window_segments: int = 10, fast_convergence: bool = True
    ) -> None:
        super().__init__(mss, initial_window_segments)
        self.fast_convergence = fast_convergence  # RFC 9438 4.7 (SHOULD be on)
        self.w_max = 0.0  # no congestion event yet
        self.k = 0.0
        self.epoch_start: float | None = None
        self.cwnd_epoch = 0.0
        self.w_est = 0.0
        self.cwnd_prior = 0.0
        self.region = "slow start"
        self.alpha = ALPHA_CUBIC
        self._carry = 0.0  # the fraction of a byte the last increase could not add to cwnd
        self._after_timeout = False
        self._in_recovery = False  # between enter_recovery and exit_recovery

    # -- growth ----------------------------------------------------------------------------------
    def on_ack(self, acked: int, now: float, srtt: float | None) -> None:
        """An ACK outside recovery: slow start below ssthresh (RFC 9438 4.10: RFC 5681's, with
        byte counting), else the congestion-avoidance rules of RFC 9438 4.2-4.5."""
        if acked <= 0:
            return
        self._window_changed = True
        mss = self.mss
        if self.cwnd < self.ssthresh:
            self.cwnd += min(acked, ABC_LIMIT_SEGMENTS * mss)
            self.region = "slow start"
            return
        cwnd = self.cwnd / mss  # segments
        if self.epoch_start is None:
            self._start_epoch(now, cwnd)
            assert self.epoch_start is not None
        t = now - self.epoch_start
        # 4.3 Figure 4: W_est grows by alpha_cubic segments per window of ACKed segments.
        self.w_est += self.alpha * (acked / mss) / cwnd
        if self.w_est >= self.cwnd_prior:
            # 4.3: once W_est reaches the window of the last reduction, grow it as Reno does.
            self.alpha = 1.0
        if cubic_window(t, self.k, self.w_max) < self.w_est:
            # 4.3: the Reno-friendly region: cwnd follows W_est (never lowered by an ACK).
            self.region = "reno-friendly"
            self.cwnd = max(self.cwnd, int(self.w_est * mss))
            self._carry = 0.0
            return
        # 4.2: aim at the curve one smoothed RTT ahead, kept within [cwnd, 1.5 * cwnd].
        rtt = srtt if srtt is not None else 0.0
        target = min(max(cubic_window(t + rtt, self.k, self.w_max), cwnd), MAX_GROWTH * cwnd)
        # 4.4 / 4.5: cwnd grows by (target - cwnd) / cwnd per segment ACKed; in bytes that is
        # (target - cwnd) / cwnd * acked. The fraction of a byte is carried to the next ACK so
        # that many small increases are not rounded away.
        self.region = "concave" if cwnd < self.w_max else "convex"
        increase = (target - cwnd) / cwnd * acked + self._carry
        whole = int(increase)
        self._carry = increase - whole
        self.cwnd += whole

    def _start_epoch(self, now: float, cwnd: float) -> None:
        """The first ACK of a congestion-avoidance stage: t starts at 0 (RFC 9438 4.2)."""
        self.epoch_start = now
        self.cwnd_epoch = cwnd
        self.w_est = cwnd  # 4.3: W_est starts at cwnd_epoch
        self._carry = 0.0
        if self._after_timeout or cwnd >= self.w_max:
            # 4.8 (first stage after a timeout) and 4.10 (no loss yet): K = 0 and W_max is the
            # window at the start of the stage, so the curve only probes upwards (convex).
            self.w_max = cwnd
            self.k = 0.0
        else:
            self.k = cubic_k(self.w_max, cwnd)
        self._after_timeout = False

    # -- decrease --------------------------------------------------------------------------------
    def _reduce(self, flight_size: int) -> None:
        """RFC 9438 4.6 and 4.7: remember W_max, set ssthresh = flight_size * beta_cubic."""
        mss = self.mss
        cwnd = self.cwnd / mss
        if self.fast_convergence and cwnd < self.w_max:
            # 4.7: a second loss below the last W_max means the share shrank (a new flow came):
            # release bandwidth sooner by aiming lower, at the midpoint of cwnd and beta*cwnd.
            self.w_max = cwnd * (1 + BETA_CUBIC) / 2
        else:
            self.w_max = cwnd
        self.cwnd_prior = cwnd
        # 4.6: ssthresh = flight_size * beta_cubic, at least 2 segments.
        self.ssthresh = max(round(flight_size * BETA_CUBIC), 2 * mss)
        self.epoch_start = None  # the next congestion-avoidance ACK starts a new epoch
        self.alpha = ALPHA_CUBIC
        self._carry = 0.0

    def enter_recovery(self, flight_size: int, sack: bool) -> None:
        """Fast retransmit: the CUBIC decrease (4.6), then NewReno's recovery window: cwnd =
        ssthresh with SACK (RFC 6675), ssthresh + 3 SMSS to inflate without it (RFC 6582)."""
        self._window_changed = True
        self._sack_recovery = sack
        self._in_recovery = True
        self._reduce(flight_size)
        self.region = "recovery"
        self.cwnd = self.ssthresh if sack else self.ssthresh + 3 * self.mss

    def exit_recovery(self, flight_size: int) -> None:
        """NewReno's (RFC 6582 3.2 step 4); the next congestion-avoidance ACK starts the epoch."""
        self._in_recovery = False
        super().exit_recovery(flight_size)

    def on_timeout(self, flight_size: int, repeated: bool = False) -> None:
        """RFC 9438 4.8: cwnd goes to one segment as in RFC 5681, ssthresh by beta_cubic (only on
        the first timeout of a segment, as NewReno); the next stage starts with K = 0.

        A timeout during fast recovery keeps the ssthresh and W_max that recovery set: it is
        the same congestion event, reduced once already (RFC 5681 3.1 asks for an ssthresh of
        "no more than" FlightSize * beta; Linux's tcp_enter_loss does not lower it again in
        recovery). FlightSize then still counts SACKed data above the hole, often several
        windows, and would raise ssthresh far above the window that just lost packets."""
        self._window_changed = True
        self._sack_recovery = False
        if not repeated and not self._in_recovery:
            self._reduce(flight_size)
        self._in_recovery = False
        self.epoch_start = None
        self._after_timeout = True
        self.region = "slow start"
        self.cwnd = self.mss

    def on_idle_restart(self, idle: float, rto: float) -> None:
        """RFC 9438 4.2: t must not count time the sender had nothing to send, so the epoch
        moves forward by the idle period; then RFC 5681 4.1's restart window."""
        if self.epoch_start is not None:
            self.epoch_start += idle
        super().on_idle_restart(idle, rto)

    # -- reporting -------------------------------------------------------------------------------
    def state(self) -> dict[str, object]:
        """CUBIC's variables for ``tcp_info`` (windows in bytes, times in seconds)."""
        mss = self.mss
        return {
            "region": self.region,
            "w_max": int(self.w_max * mss),
            "k": self.k,
            "w_est": int(self.w_est * mss),
            "epoch_start": self.epoch_start,
            "cwnd_epoch": int(self.cwnd_epoch * mss),
        }

    def summary(self) -> str:
        if not self.w_max:
            return f"cubic ({self.region})"
        return f"cubic ({self.region}, W_max {int(self.w_max * self.mss)}, K {self.k:.3f} s)"

    def __repr__(self) -> str:
        return (
            f"Cubic(cwnd={self.cwnd}, ssthresh={self.ssthresh}, mss={self.mss}, "
            f"w_max={self.w_max:.2f}, k={self.k:.3f})"
        )


Factory = Callable[[int, int], CongestionControl]


def algorithms() -> Mapping[str, Factory]:
    """The known algorithms by name (a fresh mapping)."""
    return {NewReno.name: NewReno, Cubic.name: Cubic}


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


def switch(
    old: CongestionControl, name: CongestionControlName | str, initial_window_segments: int = 10
) -> CongestionControl:
    """A controller of algorithm ``name`` that takes over from ``old`` (a socket option set on
    a live connection, as Linux's TCP_CONGESTION allows): cwnd and ssthresh carry over, the new
    algorithm's own history starts empty. ``old`` itself when it already runs ``name``."""
    new = create(name, old.mss, initial_window_segments)
    if new.name == old.name:
        return old
    new.cwnd, new.ssthresh = old.cwnd, old.ssthresh
    if isinstance(old, NewReno) and isinstance(new, NewReno):
        # Both keep NewReno's recovery bookkeeping: go on inflating (or not) as before.
        new._window_changed = old._window_changed
        new._sack_recovery = old._sack_recovery
    return new
