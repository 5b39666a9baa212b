"""The transmission control block (RFC 9293 3.3.1): a connection's variables and who changes them.

One TCP connection is one object, ``TCPConnection``, written in four files that each add one
part to the block, in this order (each class extends the one before)::

    tcb.py         TransmissionControlBlock  the variables, ``_set_state``, MSS and window sums
    output.py      ConnectionOutput          what to send: SYN, data, FIN, ACK, RST, probes
    input.py       ConnectionInput           segment arrival, RFC 9293 3.10.7, in its step order
    connection.py  TCPConnection             user calls, timers, and the operations below

(One object rather than four: per-segment input and output read a score of these variables,
and one attribute lookup each keeps that path short.)

Ownership. Only the code in these four files changes a variable of the block or its state.
Everything else (``layer.py``, ``listener.py``, usocket, services) reads them and calls these
operations of ``TCPConnection``: ``open_active``, ``open_passive`` and ``open_from_cookie``
(listener), ``detach_listener``, ``process_segment``/``process_syn_sent`` (arrival),
``segments_to_send`` and ``on_timer`` (layer), ``send``, ``receive``, ``peek``, ``shutdown``,
``close``, ``abort``, ``set_nodelay``, ``set_keepalive``, ``set_congestion_control`` (user;
the listener too, for a listener's own choice), ``icmp_error``,
``lower_path_mss``, ``end_time_wait_for_new_syn`` and ``recycle_time_wait`` (layer); the layer
also calls ``abort`` on a closed connection still finishing when its table is full. Two fields
are written by other modules, each kept here to save a dict per connection: ``scheduled``, the
layer's own timer-heap bookkeeping, and ``ready_set``, which the application holding the
connection sets to its readiness set (an insertion-ordered dict used as a set): the layer adds
the connection to it whenever segment arrival, a timer, an ICMP error or the end of the
connection may have changed what the application sees, so a service steps only those
connections instead of all of them on every poll.

Which code may change what:

- ``state``: only ``_set_state`` here; it records the transition, tells the owner and, on
  CLOSED, stops every timer.
- ``snd_una``: the ACK step (input ``_process_ack`` in SYN-RECEIVED, ``_new_ack``), the
  SYN-ACK in ``process_syn_sent``, and ``open_from_cookie``.
- ``snd_nxt``: output as it sends (``send_syn``, ``_send_data``, ``_maybe_send_fin``, and
  ``_send_new_data`` stepping over SACKed data); input ``_new_ack`` (pulled up to an ACK beyond
  it), and the ACK of our SYN (``_pull_up_snd_nxt``, in SYN-SENT and SYN-RECEIVED);
  connection's going back to SND.UNA: after an RTO (``_retransmission_timeout``) and after
  a smaller path MSS (``lower_path_mss``); and ``open_from_cookie``.
- ``snd_max``: output as it sends (also ``retransmit_first``, ``send_window_probe``) and
  ``open_from_cookie``.
- ``snd_wnd``, ``snd_wl1``, ``snd_wl2``, ``max_snd_wnd``: input ``note_window`` (and the
  simultaneous open in ``process_syn_sent``).
- ``irs``: the opening (``process_syn_sent``, ``open_passive``, ``open_from_cookie``);
  ``rcv_nxt``: the opening, then only input ``_deliver`` (text) and ``_receive_fin``.
- ``rcv_adv``, ``last_ack_sent``, ``segments_unacked``: output ``emit``, on every ACK sent.
- negotiated options (``snd_wscale``, ``rcv_wscale``, ``timestamps``, ``sack``, ``peer_mss``,
  ``receive_mss``): input ``take_syn_options`` and the openings; ``rcv_wscale`` also
  ``open_active``/``open_passive``; ``receive_mss`` also ``_schedule_ack``.
- ``mss``, ``send_burst``: only ``set_send_mss`` here; ``mss_limit``: only ``lower_path_mss``.
- ``ts_recent``, ``ts_recent_time``: ``take_syn_options`` and input's first step (RFC 7323 R3).
- loss recovery (``duplicate_acks``, ``in_recovery``, ``recover``, ``high_rxt``, PRR's
  ``prr_delivered``, ``prr_out``, ``recover_fs``, the undo fields ``undo_*``, TLP's
  ``tlp_end_seq``, ``tlp_retransmitted``), RTT timing (``rtt_seq``, ``rtt_time``),
  ``retransmissions``: input's ACK step, output's (re)transmission, connection's RTO and TLP
  handlers. ``rack`` (``recovery.RackState``, made by ``take_syn_options``) is changed through
  its methods by the same code: output records each transmission, input each delivery and
  loss, the timers their verdicts. ``dsack_block``: input sets it for a duplicate segment,
  output's ``segment_options`` reports and clears it.
- ``persist_backoff``, ``persist_probes``: output's window probe counts them up; input's ACK
  step sets them back (any acceptable ACK: the peer is alive); connection's RTO handler when it
  turns a retransmission into a probe.
- ``last_invalid_ack_time``: output's ``reply_allowed`` (the per-connection reply limit).
- timers (``*_deadline``): the code that starts or ends what they time; ``stop_timers`` ends all.
- ``error``, ``soft_error``: input (RST, refusal), connection's timeouts and ``icmp_error``.
- ``passive``, ``listener``: ``open_passive``/``open_from_cookie``; ``detach_listener``.
- user options ``nodelay``, ``keepalive``, ``user_closed``, ``read_shutdown``, ``fin_queued``:
  the user calls in connection.py.
- ``send_buffer``, ``receive_buffer``, ``out_of_order``: their contents change through the
  user calls and segment arrival; ``release_memory`` (on CLOSED, from ``_set_state``) detaches
  them from the stack's ``BufferPool``.
- ``outbox``: output appends segments; ``segments_to_send`` hands them to the layer.
- ``trace_events``: None unless ``--trace`` is on; ``note_event`` appends, the tracer drains.
- ``trace_notes``: None unless ``--trace`` is on (``keep_send_notes``); output notes why a
  segment is sent again (``SEND_CAUSES``), ``take_send_notes`` hands the notes to the layer.

Sans-IO: the block never sends; it queues ``TCPSegment`` values that the layer pulls.
"""

from __future__ import annotations

from typing import Any, Protocol

from pystack.stats import DropReason, Statistics
from pystack.tcp.buffers import BufferPool, OutOfOrderQueue, ReceiveBuffer, SendBuffer
from pystack.tcp.congestion import CongestionControl, create
from pystack.tcp.recovery import RackState
from pystack.tcp.rtt import RTTEstimator
from pystack.tcp.scoreboard import SACKScoreboard
from pystack.tcp.settings import TCPSettings
from pystack.tcp.state import TCPState
from pystack.wire.tcp import TCPSegment

IP_TCP_HEADERS = 40  # IPv4 + TCP headers without options

# Why a segment is sent (again), for --trace: ``trace_notes`` maps an outbox index to one of
# these numbers, and the trace prints the text.
CAUSE_RTO = 1
CAUSE_FAST_RETRANSMIT = 2
CAUSE_SACK_RECOVERY = 3
CAUSE_PERSIST_PROBE = 4
CAUSE_KEEPALIVE_PROBE = 5
CAUSE_SYN_RETRANSMIT = 6
CAUSE_TLP_PROBE = 7
CAUSE_RACK_LOST = 8
SEND_CAUSES = (
    "",
    "retransmit: RTO",
    "retransmit: fast retransmit",
    "retransmit: SACK recovery",
    "persist probe",
    "keepalive probe",
    "retransmit: SYN timeout",
    "TLP probe",
    "retransmit: RACK lost",
)
RECOVERY_EVENTS_KEPT = 16  # trace_events holds at most this many undelivered notes
# The counter of each state, named once here rather than formatted on every transition.
_STATE_COUNTERS = {state: f"tcp.state.{state.name.lower()}" for state in TCPState}
TIMESTAMP_SPACE = 12  # NOP NOP TS: the options every segment carries once timestamps are on


class ConnectionOwner(Protocol):
    """What a connection needs from the layer that owns it (``tcp/layer.py``)."""

    statistics: Statistics
    settings: TCPSettings
    memory: BufferPool  # every connection's buffers count what they hold here

    def connection_changed(self, connection: TransmissionControlBlock) -> None: ...

    def connection_closed(self, connection: TransmissionControlBlock) -> None: ...

    def connection_transition(
        self, connection: TransmissionControlBlock, transition: Transition
    ) -> None: ...

    def connection_established(self, connection: TransmissionControlBlock) -> None: ...

    def admit(self, connection: TransmissionControlBlock, now: float) -> bool:
        """May this passive connection complete its handshake (is there accept-queue room)?"""
        ...

    def allow_reply(self, now: float) -> bool:
        """The per-stack limit on ACKs answering unacceptable segments (counts one if True)."""
        ...

    def allow_reset(self, now: float) -> bool:
        """The per-stack limit on RSTs answering unacceptable segments (counts one if True)."""
        ...


class Transition:
    __slots__ = ("cause", "new", "old", "time")

    def __init__(self, time: float, old: TCPState, new: TCPState, cause: str) -> None:
        self.time, self.old, self.new, self.cause = time, old, new, cause

    def __repr__(self) -> str:
        return f"{self.time:.6f} {self.old.value} -> {self.new.value} ({self.cause})"


class TransmissionControlBlock:
    # Slots, not a dict: about a third less memory per connection, and a misspelt field fails.
    __slots__ = (
        "ack_now",
        "challenge_acks_sent",
        "congestion",
        "created",
        "delayed_ack_deadline",
        "dsack_block",
        "duplicate_acks",
        "error",
        "fin_queued",
        "fin_received",
        "fin_sent",
        "fin_wait_2_deadline",
        "high_rxt",
        "in_recovery",
        "irs",
        "iss",
        "keepalive",
        "keepalive_deadline",
        "keepalive_probes_sent",
        "last_ack_sent",
        "last_invalid_ack_time",
        "last_receive_time",
        "last_send_time",
        "listener",
        "local_address",
        "local_port",
        "max_snd_wnd",
        "mss",
        "mss_limit",
        "nodelay",
        "out_of_order",
        "outbox",
        "owner",
        "passive",
        "peer_fin_seq",
        "peer_mss",
        "peer_syn",
        "persist_backoff",
        "persist_deadline",
        "persist_probes",
        "prr_delivered",
        "prr_out",
        "rack",
        "rack_deadline",
        "rcv_adv",
        "rcv_nxt",
        "rcv_wscale",
        "read_shutdown",
        "ready_set",
        "receive_buffer",
        "receive_mss",
        "recover",
        "recover_fs",
        "remote_address",
        "remote_port",
        "retransmissions",
        "retransmit_deadline",
        "rtt",
        "rtt_seq",
        "rtt_time",
        "sack",
        "scheduled",
        "scoreboard",
        "segmentation_limit",
        "segments_unacked",
        "send_buffer",
        "send_burst",
        "settings",
        "snd_max",
        "snd_nxt",
        "snd_una",
        "snd_wl1",
        "snd_wl2",
        "snd_wnd",
        "snd_wscale",
        "soft_error",
        "state",
        "statistics",
        "time_wait_deadline",
        "timestamps",
        "tlp_deadline",
        "tlp_end_seq",
        "tlp_retransmitted",
        "total_retransmits",
        "trace_events",
        "trace_notes",
        "transitions",
        "ts_offset",
        "ts_recent",
        "ts_recent_time",
        "undo_cwnd",
        "undo_high",
        "undo_marker",
        "undo_retransmits",
        "undo_ssthresh",
        "user_closed",
    )

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
        # The last ``transitions_kept`` transitions, oldest first (a list: a deque's first block
        # alone would cost more than the rest of an idle connection's memory).
        self.transitions: list[Transition] = []
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
        # buffers: storage grows with use; what they hold counts in the owner's pool
        memory = owner.memory
        self.send_buffer = SendBuffer(settings.send_buffer, memory)
        self.receive_buffer = ReceiveBuffer(settings.receive_buffer, memory)
        self.out_of_order = OutOfOrderQueue(settings.out_of_order_limit, memory)
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
        # RACK-TLP (RFC 8985): the record of what is in flight, once SACK is agreed and
        # TCPSettings.rack_tlp is on (None: RFC 6675 / NewReno duplicate-ACK counting only).
        self.rack: RackState | None = None
        self.rack_deadline: float | None = None  # the RACK reordering timer
        self.tlp_deadline: float | None = None  # the tail loss probe timer (PTO)
        self.tlp_end_seq: int | None = None  # TLP.end_seq: a probe is out (at most one)
        self.tlp_retransmitted = False  # TLP.is_retrans: the probe resent old data
        # PRR (RFC 6937): bytes delivered and sent since recovery began, FlightSize then.
        self.prr_delivered = 0
        self.prr_out = 0
        self.recover_fs = 0
        # Undo (RFC 2883 / RFC 3708 detection, Linux's undo): the episode that reduced cwnd
        # began at snd_una = undo_marker and reached undo_high; undo_retransmits of its
        # retransmissions are not yet proven needless by a D-SACK; cwnd and ssthresh before.
        self.undo_marker: int | None = None
        self.undo_high = iss
        self.undo_retransmits = 0
        self.undo_cwnd = 0
        self.undo_ssthresh = 0
        # A duplicate segment arrived: the next ACK reports it first (RFC 2883 4), once.
        self.dsack_block: tuple[int, int] | None = None
        self.total_retransmits = 0
        self.last_send_time = now
        self.last_receive_time = now
        # timers (deadlines, None = stopped)
        self.retransmit_deadline: float | None = None
        self.persist_deadline: float | None = None
        self.persist_backoff = 0
        self.persist_probes = 0  # window probes sent since the peer last acknowledged anything
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
        # The last reply to an unacceptable segment (any kind): TCPSettings.invalid_ack_interval.
        self.last_invalid_ack_time: float | None = None
        # output queue, pulled by the layer
        self.outbox: list[TCPSegment] = []
        self.scheduled: float | None = None  # the layer's timer heap bookkeeping
        # The holding application's readiness set (see the top of this module); None: nobody
        # asked to be told.
        self.ready_set: dict[Any, None] | None = None
        self.trace_notes: dict[int, int] | None = None  # outbox index -> cause, when tracing
        self.trace_events: list[str] | None = None  # "RACK: lost ...", "undo ...", when tracing

    # ---------------------------------------------------------------------------------------
    def _set_state(self, new: TCPState, now: float, cause: str) -> None:
        """The one place a connection changes state; records the transition for the trace.
        Called only from the connection's own four files (see the top of this module)."""
        old = self.state
        if old is new:
            return
        self.state = new
        transition = Transition(now, old, new, cause)
        transitions = self.transitions
        transitions.append(transition)
        if len(transitions) > self.settings.transitions_kept:
            del transitions[0]
        self.owner.connection_transition(self, transition)
        self.statistics.counters[_STATE_COUNTERS[new]] += 1
        if new is TCPState.CLOSED:
            self.stop_timers()
            self.release_memory()
            self.owner.connection_closed(self)

    def release_memory(self) -> None:
        """CLOSED: the buffers stop counting against the stack's pool (the connection has left
        the table). Out-of-order bytes are dropped; unread and unsent bytes stay where they
        are for the application to read or count, held by the connection object alone."""
        self.send_buffer.detach()
        self.receive_buffer.detach()
        self.out_of_order.clear()

    def stop_timers(self) -> None:
        self.retransmit_deadline = self.persist_deadline = self.delayed_ack_deadline = None
        self.keepalive_deadline = self.time_wait_deadline = self.fin_wait_2_deadline = None
        self.rack_deadline = self.tlp_deadline = None

    def next_deadline(self) -> float | None:
        best: float | None = None
        for deadline in (
            self.retransmit_deadline,
            self.persist_deadline,
            self.delayed_ack_deadline,
            self.keepalive_deadline,
            self.time_wait_deadline,
            self.fin_wait_2_deadline,
            self.rack_deadline,
            self.tlp_deadline,
        ):
            if deadline is not None and (best is None or deadline < best):
                best = deadline
        return best

    def note_send(self, cause: int) -> None:
        """Say why the segment just queued was sent (only kept while tracing)."""
        notes = self.trace_notes
        if notes is not None and self.outbox:
            notes[len(self.outbox) - 1] = cause

    def note_event(self, text: str) -> None:
        """A recovery decision for ``--trace=events`` (only kept while tracing, bounded)."""
        events = self.trace_events
        if events is not None:
            events.append(text)
            if len(events) > RECOVERY_EVENTS_KEPT:
                del events[0]

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
