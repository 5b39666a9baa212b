"""TCP settings: every timer, limit and feature switch in one frozen value.

Defaults follow the RFCs and, where an RFC leaves a choice, Linux (named in the comment).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class CongestionControlName(enum.Enum):
    """The congestion control algorithms ``TCPSettings.congestion_control`` chooses from."""

    NEWRENO = "newreno"  # RFC 5681 with RFC 6582 (``congestion.NewReno``)
    CUBIC = "cubic"  # RFC 9438 (``congestion.Cubic``)


def congestion_control_name(value: CongestionControlName | str) -> CongestionControlName:
    """``value`` as a ``CongestionControlName``: a member, or its name in any case ("cubic",
    "CUBIC"). ValueError naming the known algorithms for anything else."""
    if isinstance(value, CongestionControlName):
        return value
    if isinstance(value, str):
        for member in CongestionControlName:
            if member.value == value.lower():
                return member
    known = ", ".join(member.value for member in CongestionControlName)
    raise ValueError(f"unknown congestion control {value!r} (known: {known})")


class AcceptOverflow(enum.Enum):
    """What a handshake-completing ACK gets when the listener's accept queue is full."""

    DROP = "drop"  # ignored: the peer retransmits and retries (Linux tcp_abort_on_overflow=0)
    RESET = "reset"  # the half-open connection is aborted with RST (tcp_abort_on_overflow=1)


@dataclass(frozen=True, slots=True)
class TCPSettings:
    # segment size and buffers
    default_mss: int = 536  # RFC 9293 3.7.1: assumed when the peer sends no MSS option
    send_buffer: int = 256 * 1024
    receive_buffer: int = 256 * 1024  # also the largest window we advertise
    out_of_order_limit: int = 256 * 1024  # bytes held out of order per connection
    window_scaling: bool = True  # RFC 7323
    timestamps: bool = True  # RFC 7323
    sack: bool = True  # RFC 2018
    # retransmission (RFC 6298)
    initial_rto: float = 1.0
    min_rto: float = 1.0  # RFC 6298 (2.4); Linux uses 0.2
    max_rto: float = 60.0
    syn_retries: int = 7  # RFC 1122 4.2.3.5: a SYN is retried for >= 3 min (183 s); Linux: 6, 127 s
    synack_retries: int = 5  # Linux tcp_synack_retries
    data_retries: int = 15  # Linux tcp_retries2 (RFC 1122 R2: at least 100 s)
    # connection life
    msl: float = 30.0  # TIME-WAIT lasts 2*MSL (Linux: 60 s)
    fin_wait_2_timeout: float = 60.0  # Linux tcp_fin_timeout, for connections the user closed
    # acknowledgements (RFC 9293 3.8.6.3)
    delayed_ack: float = 0.04  # Linux's minimum delayed-ACK timeout; RFC limit is 0.5 s
    quick_ack_segments: int = 2  # ACK at least every second full-sized segment
    # keepalive (RFC 1122 4.2.3.6 defaults)
    keepalive_idle: float = 7200.0
    keepalive_interval: float = 75.0
    keepalive_probes: int = 9
    # persist timer (zero-window probes, RFC 9293 3.8.6.1, RFC 1122 4.2.2.17): the first probe
    # after max(RTO, persist_min), then doubling (RFC 6298 5.5) up to max_rto. Probes the peer
    # answers go on for ever; after data_retries unanswered ones in a row the connection is
    # given up (Linux counts its probes against tcp_retries2 the same way).
    persist_min: float = 0.2
    # congestion control
    congestion_control: CongestionControlName = CongestionControlName.NEWRENO
    initial_window_segments: int = 10  # RFC 6928 (Linux); 4 gives RFC 3390's window
    duplicate_ack_threshold: int = 3  # RFC 5681 DupThresh
    limited_transmit: bool = True  # RFC 3042
    # Loss recovery (docs/loss-recovery.md). With rack_tlp (and SACK agreed) losses are found
    # by time, RACK (RFC 8985): a segment is lost once one sent after it was delivered and a
    # round trip plus the reordering window has passed, and a tail loss probe (TLP) goes out
    # after about two round trips of silence, so a lost last segment is repaired without an
    # RTO. Off (or without SACK), losses are found by counting duplicate ACKs (RFC 5681,
    # RFC 6675 IsLost, RFC 6582 NewReno). Either way the recovery sends at PRR's rate
    # (RFC 6937) and a reduction proven needless by D-SACKs is undone (RFC 2883, RFC 3708).
    rack_tlp: bool = True
    tlp_max_ack_delay: float = 0.2  # RFC 8985 7.2 WCDelAckT: added to a one-segment PTO
    dsack: bool = True  # RFC 2883: report duplicate segments to the sender (and use its reports)
    # Hardening (RFC 5961) and bounded replies. Every ACK that answers an unacceptable segment
    # (a challenge ACK, an ACK for a segment out of window or failing PAWS, an ACK for an ACK of
    # unsent data) passes two limits: one per connection, at most one per invalid_ack_interval
    # (Linux tcp_invalid_ratelimit; it also stops two ends ACKing each other for ever), and one
    # per stack, at most about challenge_ack_limit per second over all connections (Linux
    # tcp_challenge_ack_limit). With challenge_ack_jitter each second's budget is drawn from
    # [limit/2, 3*limit/2) as Linux does, so the shared count cannot be used to learn whether
    # another connection answered (CVE-2016-5696). 0 turns the per-connection limit off.
    challenge_ack_limit: int = 1000
    challenge_ack_jitter: bool = True
    invalid_ack_interval: float = 0.5
    # RSTs answering segments for no connection (closed port, no listener, a bad ACK to a
    # listener or to a half-open connection): a token bucket per stack, reset_rate per second
    # with bursts of reset_burst (Linux's ICMP budget: icmp_msgs_per_sec, icmp_msgs_burst).
    reset_rate: float = 1000.0
    reset_burst: int = 50
    # Limits (docs/policies.md "TCP limits"). The table holds at most max_connections entries
    # of any state; a full table recycles its oldest TIME-WAIT entry, else refuses with RST.
    max_connections: int = 10_000
    # The bytes all connections' buffers really hold (send + receive + out-of-order; storage
    # grows with use) stay within this; at it, new connections are refused with RST and
    # buffers take no more. An idle connection holds no buffer bytes.
    memory_limit: int = 1 << 30
    syn_queue: int = 256  # half-open connections per listener
    # Half-open (SYN-RECEIVED) entries over all listeners. At this many, or with the table
    # above its high-water mark (7/8 of max_connections), SYNs get cookies, not entries.
    max_half_open: int = 1024
    syn_cookies: bool = True  # answer with a SYN cookie when the SYN queues or table are full
    accept_overflow: AcceptOverflow = AcceptOverflow.DROP  # Linux: DROP (see AcceptOverflow)
    max_backlog: int = 4096  # listen(backlog) is clamped to this (Linux somaxconn)
    ephemeral_ports: tuple[int, int] = (32768, 60999)  # Linux ip_local_port_range
    # ICMP (RFC 5461, RFC 1191)
    icmp_aborts_syn_sent: bool = True  # a hard ICMP error aborts a connection still in SYN-SENT
    min_path_mss: int = 88  # never lower the MSS below this on a fragmentation-needed (RFC 1191)
    transitions_kept: int = 64  # state transitions recorded per connection

    def __post_init__(self) -> None:
        _require_member("congestion_control", self.congestion_control, CongestionControlName)
        _require_member("accept_overflow", self.accept_overflow, AcceptOverflow)
        if not 0 <= self.delayed_ack < 0.5:
            raise ValueError("delayed_ack must be below 0.5 s (RFC 9293 3.8.6.3)")
        if not 0 < self.min_rto <= self.initial_rto <= self.max_rto:
            raise ValueError("need 0 < min_rto <= initial_rto <= max_rto")
        if not 0 <= self.tlp_max_ack_delay <= 1.0:
            raise ValueError("tlp_max_ack_delay must be within [0, 1] s")
        if self.challenge_ack_limit < 0 or self.invalid_ack_interval < 0:
            raise ValueError("challenge_ack_limit and invalid_ack_interval must not be negative")
        if self.reset_rate < 0 or self.reset_burst < 0:
            raise ValueError("reset_rate and reset_burst must not be negative")
        if self.send_buffer < 1 or self.receive_buffer < 1:
            raise ValueError("buffers must hold at least one byte")
        if self.max_connections < 1 or self.memory_limit < 0 or self.max_half_open < 0:
            raise ValueError("need max_connections >= 1, memory_limit and max_half_open >= 0")
        low, high = self.ephemeral_ports
        if not 1 <= low <= high <= 65535:
            raise ValueError("bad ephemeral port range")


def _require_member(field: str, value: object, kind: type[enum.Enum]) -> None:
    """Refuse a choice that is not a member of its enum (a plain string included)."""
    if not isinstance(value, kind):
        choices = ", ".join(f"{kind.__name__}.{member.name}" for member in kind)
        raise ValueError(f"{field} must be one of {choices}, not {value!r}")
