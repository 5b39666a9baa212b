"""Round-trip time estimation and the retransmission timeout (RFC 6298).

Job: turn RTT samples into SRTT, RTTVAR and RTO, and apply the exponential backoff of the
retransmission timer. It must not decide which segments to time: Karn's algorithm (RFC 6298 3,
never sample a retransmitted segment) and timestamp-based sampling (RFC 7323 4) belong to the
connection, which also owns the timer deadline itself. No clock is read here.
Entry points: ``RTTEstimator.sample``, ``RTTEstimator.backoff``, ``RTTEstimator.reset_backoff``.
"""

from __future__ import annotations

import math

# RFC 6298 (2.3): alpha = 1/8, beta = 1/4, K = 4.
ALPHA = 0.125
BETA = 0.25
K = 4.0
# RFC 6298 5.7: after a lost SYN, data transmission starts with an RTO of at least 3 s.
SYN_LOSS_RTO = 3.0


class RTTEstimator:
    """SRTT/RTTVAR/RTO per RFC 6298; ``rto`` includes the current backoff."""

    __slots__ = (
        "_base_rto",
        "backoffs",
        "granularity",
        "initial_rto",
        "max_rto",
        "min_rto",
        "rto",
        "rttvar",
        "srtt",
    )

    def __init__(
        self,
        initial_rto: float = 1.0,
        min_rto: float = 1.0,
        max_rto: float = 60.0,
        granularity: float = 0.001,
    ) -> None:
        if not 0 < min_rto <= max_rto:
            raise ValueError(f"need 0 < min_rto <= max_rto, got {min_rto}, {max_rto}")
        self.initial_rto = initial_rto
        self.min_rto = min_rto
        self.max_rto = max_rto
        self.granularity = granularity
        self.srtt: float | None = None
        self.rttvar = 0.0
        self.backoffs = 0
        # RFC 6298 (2.1): until a measurement is made, RTO = initial RTO (1 s in the RFC).
        self._base_rto = self._clamp(initial_rto)
        self.rto = self._base_rto

    @property
    def base_rto(self) -> float:
        """The RTO computed from the samples, without the backoff."""
        return self._base_rto

    def sample(self, rtt: float) -> None:
        """Take one RTT measurement R (seconds). Negative, NaN and infinite samples are ignored."""
        if not (rtt >= 0.0 and math.isfinite(rtt)):
            return
        srtt = self.srtt
        if srtt is None:
            # RFC 6298 (2.2): first measurement: SRTT <- R, RTTVAR <- R/2.
            srtt = rtt
            self.rttvar = rtt / 2.0
        else:
            # RFC 6298 (2.3): RTTVAR uses the old SRTT, so it is updated first.
            self.rttvar = (1.0 - BETA) * self.rttvar + BETA * abs(srtt - rtt)
            srtt = (1.0 - ALPHA) * srtt + ALPHA * rtt
        self.srtt = srtt
        # RFC 6298 (2.2)/(2.3): RTO <- SRTT + max(G, K*RTTVAR); (2.4)/(2.5) clamp.
        self._base_rto = self._clamp(srtt + max(self.granularity, K * self.rttvar))
        # RFC 6298 5 (note after 5.7): a new sample computes a fresh RTO, ending the backoff.
        self.backoffs = 0
        self.rto = self._base_rto

    def backoff(self) -> float:
        """The retransmission timer expired: RFC 6298 (5.5) RTO <- RTO * 2, at most ``max_rto``."""
        self.backoffs += 1
        self.rto = min(self.rto * 2.0, self.max_rto)
        return self.rto

    def reset_backoff(self) -> None:
        """Drop the backoff (e.g. new data acknowledged without a usable sample)."""
        self.backoffs = 0
        self.rto = self._base_rto

    def forget_samples(self) -> None:
        """RFC 6298 5 (note after 5.7): after many backoffs SRTT/RTTVAR MAY be cleared.

        The next sample is then taken as a first measurement (2.2). The backoff stays.
        """
        self.srtt = None
        self.rttvar = 0.0
        self._base_rto = self._clamp(self.initial_rto)

    def apply_syn_loss_rule(self) -> None:
        """RFC 6298 5.7: the SYN timed out and RTO < 3 s, so data transmission starts at 3 s.

        Call when the handshake completes after a retransmitted SYN; the next sample overrides it.
        """
        if self._base_rto < SYN_LOSS_RTO:
            self._base_rto = self._clamp(SYN_LOSS_RTO)
        self.reset_backoff()

    def _clamp(self, rto: float) -> float:
        # RFC 6298 (2.4): a lower bound (1 s in the RFC); (2.5): an upper bound of at least 60 s.
        return min(max(rto, self.min_rto), self.max_rto)

    def __repr__(self) -> str:
        return (
            f"RTTEstimator(srtt={self.srtt}, rttvar={self.rttvar}, rto={self.rto}, "
            f"backoffs={self.backoffs})"
        )
