"""The transmission control block (RFC 9293 3.3.1): one connection's variables and state changes.

``TransmissionControlBlock`` holds every variable of one connection under its RFC name, the
buffers, the timers (as deadlines) and the record of state transitions. ``set_state`` is the only
place that changes state. Behaviour lives in the subclasses: ``output.py`` (what to send),
``input.py`` (segment arrival, RFC 9293 3.10.7) and ``connection.py`` (user calls and timers).
Sans-IO: the block never sends; it queues ``TCPSegment`` values that the layer pulls.
"""

from __future__ import annotations

from collections import deque
from typing import Protocol

from pystack.stats import DropReason, Statistics
from pystack.tcp.buffers import OutOfOrderQueue, ReceiveBuffer, SendBuffer
from pystack.tcp.congestion import CongestionControl, create
from pystack.tcp.rtt import RTTEstimator
from pystack.tcp.scoreboard import SACKScoreboard
from pystack.tcp.settings import TCPSettings
from pystack.tcp.state import TCPState
from pystack.wire.tcp import TCPSegment

IP_TCP_HEADERS = 40  # IPv4 + TCP headers without options
TIMESTAMP_SPACE = 12  # NOP NOP TS: the options every segment carries once timestamps are on


class ConnectionOwner(Protocol):
    """What a connection needs from the layer that owns it (``tcp/layer.py``)."""

    statistics: Statistics
    settings: TCPSettings

    def connection_changed(self, connection: TransmissionControlBlock) -> None: ...

    def connection_closed(self, connection: TransmissionControlBlock) -> None: ...

    def connection_transition(
        self, connection: TransmissionControlBlock, transition: Transition
    ) -> None: ...

    def connection_established(self, connection: TransmissionControlBlock) -> None: ...

    def admit(self, connection: TransmissionControlBlock, now: float) -> bool:
        """May this passive connection complete its handshake (is there accept-queue room)?"""
        ...

    def allow_challenge_ack(self, now: float) -> bool: ...


class Transition:
    __slots__ = ("cause", "new", "old", "time")

    def __init__(self, time: float, old: TCPState, new: TCPState, cause: str) -> None:
        self.time, self.old, self.new, self.cause = time, old, new, cause

    def __repr__(self) -> str:
        return f"{self.time:.6f} {self.old.value} -> {self.new.value} ({self.cause})"


class TransmissionControlBlock:
    def __init__(
        self,
        owner: ConnectionOwner,
        local: tuple[int, int],
        remote: tuple[int, int],
        iss: int,
        now: float,
        mss_limit: int,
        ts_offset: int,
        segmentation_limit: int = 0,
    ) -> None:
        settings = owner.settings
        self.owner = owner
        self.settings = settings
        self.statistics = owner.statistics
        self.local_address, self.local_port = local
        self.remote_address, self.remote_port = remote
        self.state = TCPState.CLOSED
        self.transitions: deque[Transition] = deque(maxlen=settings.transitions_kept)
        self.created = now
        # send sequence space (RFC 9293 3.3.1)
        self.iss = iss
        self.snd_una = iss
        self.snd_nxt = iss
        self.snd_max = iss  # highest sequence number sent (snd_nxt is pulled back on RTO)
        self.snd_wnd = 0
        self.snd_wl1 = 0
        self.snd_wl2 = iss
        self.max_snd_wnd = 0  # RFC 5961 5.2: MAX.SND.WND
        self.snd_wscale = 0  # shift applied to windows the peer advertises
        # receive sequence space
        self.irs = 0
        self.rcv_nxt = 0
        self.rcv_wscale = 0  # shift applied to windows we advertise
        # Right edge of the window we last advertised (never moves left); None until a segment
        # has advertised one. Any sequence number, 0 included, is a valid edge (after the wrap).
        self.rcv_adv: int | None = None
        # segment sizes: mss_limit is what the path allows (MTU - 40); peer_mss what it accepts
        self.mss_limit = mss_limit
        self.peer_mss = settings.default_mss
        self.mss = min(settings.default_mss, mss_limit)  # effective send MSS (data bytes)
        self.segmentation_limit = (
            segmentation_limit  # largest frame the link cuts up (TSO); 0: none
        )
        self.send_burst = self.mss  # largest segment handed down (a multiple of mss with TSO)
        self.receive_mss = settings.default_mss  # estimate of the peer's full segment size
        # options negotiated
        self.timestamps = False
        self.sack = False
        self.ts_recent = 0
        self.ts_recent_time = now
        self.ts_offset = ts_offset  # RFC 7323 5.4: a per-connection random TS clock offset
        self.last_ack_sent = 0
        # buffers
        self.send_buffer = SendBuffer(settings.send_buffer)
        self.receive_buffer = ReceiveBuffer(settings.receive_buffer)
        self.out_of_order = OutOfOrderQueue(settings.out_of_order_limit)
        self.scoreboard = SACKScoreboard()
        self.peer_syn: TCPSegment | None = None  # the SYN our SYN-ACK answers (its options)
        self.fin_queued = False  # the user asked for a FIN (close or shutdown)
        self.fin_sent = False
        self.fin_received = False
        self.peer_fin_seq: int | None = None  # a FIN seen out of order, waiting for its data
        self.user_closed = False  # close() (not just shutdown): nobody will read any more
        self.read_shutdown = False
        # loss recovery (RFC 5681, RFC 6582, RFC 6675)
        self.rtt = RTTEstimator(settings.initial_rto, settings.min_rto, settings.max_rto)
        self.congestion: CongestionControl = create(
            settings.congestion_control, self.mss, settings.initial_window_segments
        )
        self.duplicate_acks = 0
        self.in_recovery = False
        self.recover = iss  # RFC 6582 "recover"
        self.high_rxt = iss  # RFC 6675 HighRxt
        self.rtt_seq: int | None = None  # segment being timed (no timestamps), Karn's rule
        self.rtt_time = 0.0
        self.retransmissions = 0  # consecutive RTO expirations
        self.total_retransmits = 0
        self.last_send_time = now
        self.last_receive_time = now
        # timers (deadlines, None = stopped)
        self.retransmit_deadline: float | None = None
        self.persist_deadline: float | None = None
        self.persist_backoff = 0
        self.delayed_ack_deadline: float | None = None
        self.keepalive_deadline: float | None = None
        self.keepalive_probes_sent = 0
        self.time_wait_deadline: float | None = None
        self.fin_wait_2_deadline: float | None = None
        # acknowledgement policy
        self.ack_now = False
        self.segments_unacked = 0  # full-sized segments received since our last ACK
        # user-visible
        self.nodelay = False
        self.keepalive = False
        self.error: int | None = None  # errno the user sees next (ECONNRESET, ...)
        self.soft_error: int | None = None  # last ICMP error (RFC 1122 4.2.3.9)
        self.passive = False  # created by a listener
        self.listener: object | None = None
        self.challenge_acks_sent = 0
        self.last_invalid_ack_time: float | None = None  # see TCPSettings.invalid_ack_interval
        # output queue, pulled by the layer
        self.outbox: list[TCPSegment] = []
        self.scheduled: float | None = None  # the layer's timer heap bookkeeping

    # ---------------------------------------------------------------------------------------
    def set_state(self, new: TCPState, now: float, cause: str) -> None:
        """The one place a connection changes state; records the transition for the trace."""
        old = self.state
        if old is new:
            return
        self.state = new
        transition = Transition(now, old, new, cause)
        self.transitions.append(transition)
        self.owner.connection_transition(self, transition)
        self.statistics.count(f"tcp.state.{new.name.lower()}")
        if new is TCPState.CLOSED:
            self.stop_timers()
            self.owner.connection_closed(self)

    def stop_timers(self) -> None:
        self.retransmit_deadline = self.persist_deadline = self.delayed_ack_deadline = None
        self.keepalive_deadline = self.time_wait_deadline = self.fin_wait_2_deadline = None

    def next_deadline(self) -> float | None:
        best: float | None = None
        for deadline in (
            self.retransmit_deadline,
            self.persist_deadline,
            self.delayed_ack_deadline,
            self.keepalive_deadline,
            self.time_wait_deadline,
            self.fin_wait_2_deadline,
        ):
            if deadline is not None and (best is None or deadline < best):
                best = deadline
        return best

    def drop(self, reason: DropReason) -> None:
        self.statistics.drop(reason)

    def describe_endpoints(self) -> str:
        from pystack.wire.addresses import ip_to_str

        return (
            f"TCP {ip_to_str(self.local_address)}:{self.local_port} <-> "
            f"{ip_to_str(self.remote_address)}:{self.remote_port}"
        )

    # ---------------------------------------------------------------------------------------
    def ts_value(self, now: float) -> int:
        """Our timestamp clock: 1 ms ticks (RFC 7323 5.4), offset per connection."""
        return (int(now * 1000) + self.ts_offset) & 0xFFFFFFFF

    def set_send_mss(self) -> None:
        """Effective MSS: the peer's limit, the path's, minus the options every segment carries."""
        mss = min(self.peer_mss, self.mss_limit)
        if self.timestamps:
            mss -= TIMESTAMP_SPACE
        self.mss = max(mss, 64)
        self.congestion.set_mss(self.mss)
        # With segmentation offload, send up to a 64 KiB burst of whole MSS-sized pieces.
        room = self.segmentation_limit - IP_TCP_HEADERS - 40
        self.send_burst = max(self.mss, room // self.mss * self.mss) if room > 0 else self.mss

    def receive_window(self) -> int:
        """RFC 9293 3.8.6.2.2 receiver SWS avoidance: the window we may offer now."""
        room = self.receive_buffer.room
        if self.read_shutdown:
            room = self.receive_buffer.capacity
        limit = 65535 << self.rcv_wscale
        room = min(room, limit)
        edge = self.rcv_adv
        current = (edge - self.rcv_nxt) & 0xFFFFFFFF if edge is not None else 0
        if current > 0x7FFFFFFF:
            current = 0
        # Only move the right edge when the increase is worth it (min(buffer/2, MSS)).
        threshold = min(self.receive_buffer.capacity // 2, self.receive_mss)
        if room > current and room - current < threshold:
            return current
        return max(room, current)  # never shrink the offered window (RFC 9293 3.8.6.2.2)

    def flight_size(self) -> int:
        return (self.snd_max - self.snd_una) & 0xFFFFFFFF
