"""The TCP layer of a stack: demultiplexing, listeners, the CLOSED state, ICMP, timers, output.

``TCPLayer`` registers itself with the IPv4 layer for protocol 6 and for ICMP errors about TCP.
Connections are found by their 4-tuple in a dict; segments for no connection go to a listener
or, in the CLOSED state, are answered with RST (RFC 9293 3.10.7.1) within a per-stack token
bucket (``allow_reset``); ``allow_reply`` is the per-stack budget of the ACKs connections send
to unacceptable segments.

Limits (docs/policies.md, "TCP limits"): the table holds at most ``max_connections`` entries
of any state; when it is full the oldest TIME-WAIT entry is recycled (as lwIP's ``tcp_alloc``
does), then the oldest connection the application closed that is still finishing, and only
when none is left is a new connection refused (``refusal_reason``). Entries are recycled only
for a connection really being made, never for a SYN answered with a cookie. Buffer
memory is counted by use in ``memory`` (a ``BufferPool``: bytes really held, not capacities);
at ``memory_limit`` new connections are refused too. ``under_pressure`` says when listeners
answer SYNs with cookies instead of table entries. Connections that have
something to send are marked dirty and drained by ``flush(now)``; their timers live in one heap
(``run_timers``/``next_deadline``), with stale entries skipped lazily, so a poll looks only at
due entries however many idle connections there are (``timer_inspections`` counts the looks).
A connection whose ``ready_set`` an application set is added to that set whenever input, a
timer, an ICMP error or its end may have changed what the application sees (readiness, not
scanning: docs/architecture.md).
Entry points: ``TCPLayer.listen``, ``TCPLayer.connect``, ``flush``, ``run_timers``.
"""

from __future__ import annotations

import errno
import heapq
import itertools
import random
from collections.abc import Callable
from typing import TYPE_CHECKING

from pystack.stats import DropReason, Statistics
from pystack.tcp.buffers import BufferPool
from pystack.tcp.connection import TCPConnection
from pystack.tcp.isn import SequenceGenerator
from pystack.tcp.listener import TCPListener
from pystack.tcp.seq import seq_add, seq_ge, seq_gt, seq_lt
from pystack.tcp.settings import TCPSettings
from pystack.tcp.state import TCPState
from pystack.tcp.tcb import IP_TCP_HEADERS, SEND_CAUSES, Transition, TransmissionControlBlock
from pystack.wire import icmpv4
from pystack.wire.checksum import fold, pseudo_header_sum
from pystack.wire.errors import MalformedPacket
from pystack.wire.icmpv4 import ICMPv4Message
from pystack.wire.ipv4 import PROTO_TCP, IPv4Packet
from pystack.wire.tcp import ACK, FIN, HEADER_LENGTH, RST, SYN, TCPSegment, encode_options

if TYPE_CHECKING:
    from pystack.ip.interface import IPv4Layer

Key = tuple[int, int, int, int]  # local address, local port, remote address, remote port
# event_hook(connection, now, timer_due): called after input, timers and output while
# ``--trace=events`` is on (``timer_due`` True just before ``on_timer`` runs).
EventHook = Callable[[TCPConnection, float, bool], None]
# state hook(connection, transition): every state change (``--trace``'s ``=`` lines, ``--record``)
StateHook = Callable[[TCPConnection, Transition], None]

# States of a connection the application closed that is still exchanging FINs: recyclable
# (after every TIME-WAIT entry) when the table is full.
_FINISHING = frozenset(
    (TCPState.FIN_WAIT_1, TCPState.FIN_WAIT_2, TCPState.CLOSING, TCPState.LAST_ACK)
)
_HARD_UNREACHABLE = {
    icmpv4.PROTOCOL_UNREACHABLE: errno.ECONNREFUSED,
    icmpv4.PORT_UNREACHABLE: errno.ECONNREFUSED,
}
_SOFT_UNREACHABLE = {
    icmpv4.NET_UNREACHABLE: errno.ENETUNREACH,
    icmpv4.HOST_UNREACHABLE: errno.EHOSTUNREACH,
    icmpv4.ADMIN_PROHIBITED: errno.EHOSTUNREACH,
}


class TCPLayer:
    def __init__(
        self, ip: IPv4Layer, statistics: Statistics, settings: TCPSettings, rng: random.Random
    ) -> None:
        self.ip = ip
        self.statistics = statistics
        self.settings = settings
        self.rng = rng
        self.sequence = SequenceGenerator(rng)
        self.connections: dict[Key, TCPConnection] = {}
        self.listeners: dict[tuple[int, int], TCPListener] = {}
        self.memory = BufferPool(settings.memory_limit)  # bytes every buffer holds
        # TIME-WAIT entries, oldest first (an insertion-ordered set): the first to recycle;
        # then connections the application closed that are still finishing (``orphans``).
        self.time_wait: dict[TCPConnection, None] = {}
        self.orphans: dict[TCPConnection, None] = {}
        self._local_ports: dict[int, int] = {}  # local port -> connections using it
        self._dirty: dict[TCPConnection, None] = {}  # insertion-ordered set
        self._timers: list[tuple[float, int, TCPConnection]] = []
        self._timer_order = itertools.count()
        # Heap entries looked at by run_timers and next_deadline, ever (a plain int, not a
        # counter: the tests check with it that timer work does not grow with idle connections).
        self.timer_inspections = 0
        self.trace: StateHook | None = None  # state transitions, for --trace and --record
        self.send_note: Callable[[str], None] | None = None  # "retransmit: RTO" before a send
        self.event_hook: EventHook | None = None  # --trace=events
        # Replies to unacceptable segments: this second's number and what is left of its budget.
        self._reply_second = -1
        self._reply_budget = 0
        # RSTs for segments to no connection: a token bucket, full at the start.
        self._reset_tokens = float(settings.reset_burst)
        self._reset_time: float | None = None
        ip.handlers[PROTO_TCP] = self.process_packet
        ip.icmp.error_listeners[PROTO_TCP] = self.process_icmp_error

    # -- user entry points -----------------------------------------------------------------------
    def listen(self, port: int, backlog: int = 5, address: int = 0) -> TCPListener:
        if not 0 < port < 65536:
            raise ValueError(f"bad port {port}")
        if (address, port) in self.listeners:
            raise OSError(errno.EADDRINUSE, "address in use")
        listener = TCPListener(self, address, port, backlog)
        self.listeners[(address, port)] = listener
        return listener

    def remove_listener(self, listener: TCPListener) -> None:
        if self.listeners.get((listener.address, listener.port)) is listener:
            del self.listeners[(listener.address, listener.port)]

    def connect(
        self,
        address: int,
        port: int,
        now: float,
        local_port: int | None = None,
        local_address: int | None = None,
    ) -> TCPConnection:
        """Active open (RFC 9293 3.10.1); the SYN leaves at the next flush."""
        if not 0 < port < 65536:
            raise ValueError(f"bad port {port}")
        local = self.ip.source_for(address) if local_address in (None, 0) else local_address
        assert local is not None
        if local_port is None:
            local_port = self.ephemeral_port(local, address, port)
        elif (local, local_port, address, port) in self.connections:
            raise OSError(errno.EADDRINUSE, "address in use")
        connection = self.new_connection((local, local_port), (address, port), now)
        if connection is None:
            raise OSError(errno.ENOBUFS, "connection table full")
        connection.open_active(now)
        self.statistics.count("tcp.active_opens")
        self.connection_changed(connection)
        return connection

    def ephemeral_port(self, local: int, remote: int, remote_port: int) -> int:
        low, high = self.settings.ephemeral_ports
        span = high - low + 1
        start = self.rng.randrange(span)
        in_use = self._local_ports
        listening = {port for _, port in self.listeners}
        for step in range(span):
            candidate = low + (start + step) % span
            if candidate not in in_use and candidate not in listening:
                return candidate
        for step in range(span):  # every port busy: share one with a different 4-tuple
            candidate = low + (start + step) % span
            if (local, candidate, remote, remote_port) not in self.connections:
                return candidate
        raise OSError(errno.EADDRNOTAVAIL, "no free ephemeral port")

    def mss_limit(self, remote: int) -> int:
        return self.ip.path_mtu(remote) - IP_TCP_HEADERS

    # -- limits --------------------------------------------------------------------------------
    def refusal_reason(self) -> DropReason | None:
        """Why no new connection can be made now, even by recycling an entry; None if one can."""
        if (
            len(self.connections) >= self.settings.max_connections
            and not self.time_wait
            and not self.orphans
        ):
            return DropReason.TCP_CONNECTION_LIMIT
        if self.memory.full:
            return DropReason.TCP_MEMORY_LIMIT
        return None

    def _recycle(self, now: float) -> None:
        """Make room in a full table: end its oldest TIME-WAIT entry (lwIP ``tcp_alloc``:
        ``tcp_kill_timewait``), counted as ``tcp.time_wait_recycled``; with none, reset the
        oldest connection the application has closed that is still finishing its FIN exchange
        (lwIP kills its LAST-ACK and CLOSING pcbs next), counted as ``tcp.closing_recycled``.
        Connections an application still holds are never taken."""
        if self.time_wait:
            oldest = next(iter(self.time_wait))
            oldest.recycle_time_wait(now)  # leaves the table (and ``time_wait``) at once
            self.statistics.count("tcp.time_wait_recycled")
        elif self.orphans:
            oldest = next(iter(self.orphans))
            oldest.abort(now)  # RST to the peer; leaves the table and ``orphans`` at once
            self.statistics.count("tcp.closing_recycled")

    def half_open(self) -> int:
        """SYN-RECEIVED entries over every listener (their SYN queues)."""
        return sum(len(listener.syn_queue) for listener in self.listeners.values())

    def under_pressure(self) -> bool:
        """Should a SYN get a cookie rather than a table entry? Yes when the table is above its
        high-water mark (``max_connections`` less an eighth) or the stack's half-open entries
        reached ``max_half_open``: a flood of SYNs then costs no entries at all."""
        settings = self.settings
        high_water = settings.max_connections - settings.max_connections // 8
        return len(self.connections) >= high_water or self.half_open() >= settings.max_half_open

    def refuse(self, segment: TCPSegment, local: int, remote: int, now: float) -> None:
        """A SYN (or a cookie's ACK) that no connection can be made for: RST, counted as
        ``tcp.connections_refused`` (the RST itself within ``allow_reset``)."""
        self.statistics.count("tcp.connections_refused")
        self.send_reset_for(segment, local, remote, now)

    def new_connection(
        self, local: tuple[int, int], remote: tuple[int, int], now: float, iss: int | None = None
    ) -> TCPConnection | None:
        """A new entry in the table (recycling one when it is full), or None (the reason
        counted as a drop) when there is no room (``refusal_reason``)."""
        reason = self.refusal_reason()
        if reason is not None:
            self.statistics.drop(reason)
            return None
        if len(self.connections) >= self.settings.max_connections:
            self._recycle(now)
        if iss is None:
            iss = self.sequence.isn(local[0], local[1], remote[0], remote[1], now)
        ts_offset = self.rng.getrandbits(32)
        path_mtu = self.ip.path_mtu(remote[0])
        connection = TCPConnection(
            self,
            local,
            remote,
            iss,
            now,
            mss_limit=path_mtu - IP_TCP_HEADERS,
            ts_offset=ts_offset,
            # segmentation offload only on the link, not via our loopback
            segmentation_limit=self.ip.segmentation_limit if path_mtu == self.ip.mtu else 0,
        )
        self.connections[(local[0], local[1], remote[0], remote[1])] = connection
        ports = self._local_ports
        ports[local[1]] = ports.get(local[1], 0) + 1
        if self.send_note is not None:
            connection.keep_send_notes(True)
        return connection

    def set_trace_hooks(
        self,
        state: StateHook | None,
        send_note: Callable[[str], None] | None,
        event_hook: EventHook | None,
    ) -> None:
        """--trace: state transitions, why segments are sent again, and (``--trace=events``)
        the connection's variables and timers. None for all: tracing off."""
        self.trace, self.send_note, self.event_hook = state, send_note, event_hook
        for connection in self.connections.values():
            connection.keep_send_notes(send_note is not None)

    # -- callbacks from connections (ConnectionOwner) --------------------------------------------
    def connection_changed(self, connection: TransmissionControlBlock) -> None:
        assert isinstance(connection, TCPConnection)
        self._dirty[connection] = None

    def connection_closed(self, connection: TransmissionControlBlock) -> None:
        assert isinstance(connection, TCPConnection)
        key = (
            connection.local_address,
            connection.local_port,
            connection.remote_address,
            connection.remote_port,
        )
        if self.connections.get(key) is connection:
            del self.connections[key]
            ports = self._local_ports
            left = ports[connection.local_port] - 1
            if left:
                ports[connection.local_port] = left
            else:
                del ports[connection.local_port]
        self.time_wait.pop(connection, None)
        self.orphans.pop(connection, None)
        listener = connection.listener
        if isinstance(listener, TCPListener):
            listener.forget(connection)
        self._dirty[connection] = None  # a final RST may still be queued
        ready = connection.ready_set
        if ready is not None:  # the application sees the end (and forgets the connection)
            ready[connection] = None

    def connection_transition(
        self, connection: TransmissionControlBlock, transition: Transition
    ) -> None:
        assert isinstance(connection, TCPConnection)
        new = transition.new
        if new is TCPState.TIME_WAIT:
            self.time_wait[connection] = None
        elif transition.old is TCPState.TIME_WAIT:
            self.time_wait.pop(connection, None)
        if new in _FINISHING and connection.user_closed:
            if connection not in self.orphans:
                self.orphans[connection] = None
        else:
            self.orphans.pop(connection, None)
        if self.trace is not None:
            assert isinstance(connection, TCPConnection)
            self.trace(connection, transition)

    def connection_established(self, connection: TransmissionControlBlock) -> None:
        listener = connection.listener
        if isinstance(listener, TCPListener) and isinstance(connection, TCPConnection):
            listener.established(connection)

    def admit(self, connection: TransmissionControlBlock, now: float) -> bool:
        listener = connection.listener
        if isinstance(listener, TCPListener) and isinstance(connection, TCPConnection):
            return listener.admit(connection, now)
        return True

    def allow_reply(self, now: float) -> bool:
        """May a connection answer an unacceptable segment now? The per-stack limit (RFC 5961 7,
        Linux tcp_challenge_ack_limit): each second has a budget of ``challenge_ack_limit``
        replies over every connection, with ``challenge_ack_jitter`` drawn from
        [limit/2, 3*limit/2) (Linux's ``half + random(limit)``) by a keyed hash of the second."""
        second = int(now)
        if second != self._reply_second:
            limit = self.settings.challenge_ack_limit
            if self.settings.challenge_ack_jitter and limit > 0:
                jitter = self.sequence.keyed_value(b"replies", second & 0xFFFFFFFFFFFFFFFF)
                budget = (limit + 1) // 2 + jitter % limit
            else:
                budget = limit
            self._reply_second, self._reply_budget = second, budget
        if self._reply_budget <= 0:
            return False
        self._reply_budget -= 1
        return True

    def allow_reset(self, now: float) -> bool:
        """May a RST answer a segment for no connection (or a bad ACK to a half-open one) now?
        A token bucket per stack: ``reset_rate`` tokens a second, at most ``reset_burst`` saved
        (like Linux's ICMP budget). Counted either way (``tcp.reply_resets_sent``,
        ``tcp.reply_resets_suppressed``)."""
        settings = self.settings
        last = self._reset_time
        tokens = self._reset_tokens
        if last is None or now > last:
            if last is not None:
                elapsed = (now - last) * settings.reset_rate
                tokens = min(float(settings.reset_burst), tokens + elapsed)
            self._reset_time = now
        if tokens < 1.0:
            self._reset_tokens = tokens
            self.statistics.count("tcp.reply_resets_suppressed")
            return False
        self._reset_tokens = tokens - 1.0
        self.statistics.count("tcp.reply_resets_sent")
        return True

    # -- input -----------------------------------------------------------------------------------
    def process_packet(self, packet: IPv4Packet, now: float, broadcast: bool) -> None:
        try:
            segment = TCPSegment.parse(
                packet.payload, packet.src, packet.dst, verify_checksum=not self.ip.trusted_frame
            )
        except MalformedPacket as error:
            self.statistics.drop_malformed(error.reason)
            return
        if broadcast:
            self.statistics.drop(DropReason.TCP_BROADCAST)
            return
        # The counter table itself, not Statistics.count: 145 -> 100 ns a segment.
        self.statistics.counters["tcp.segments_received"] += 1
        key = (packet.dst, segment.dst_port, packet.src, segment.src_port)
        connection = self.connections.get(key)
        if segment.flags & SYN and segment.flags & (FIN | RST):
            # SYN with FIN or RST: a synchronized connection answers it as RFC 5961 4.2 and
            # RFC 9293 3.10.7.4 order the checks (RST bit, then SYN: a challenge ACK); a
            # listener, SYN-SENT or no connection drops it (policy, as Linux does in LISTEN).
            if connection is None or connection.state is TCPState.SYN_SENT:
                self.statistics.drop_malformed("tcp.bad_flags")
                return
        if (
            connection is not None
            and connection.state is TCPState.TIME_WAIT
            and segment.flags & (SYN | ACK | FIN | RST) == SYN
            and self._may_reuse(connection, segment)
            # Only for a listener that takes the new SYN: without one, TIME-WAIT stays and the
            # SYN is answered as any SYN in a synchronized state (RFC 5961 4: a challenge ACK).
            and self._listener_for(packet.dst, segment.dst_port) is not None
        ):
            connection.end_time_wait_for_new_syn(now)
            connection = None
        if connection is not None:
            if connection.state is TCPState.SYN_SENT:
                connection.process_syn_sent(segment, now)
            else:
                connection.process_segment(segment, now)
            self._dirty[connection] = None
            ready = connection.ready_set
            if ready is not None:  # tell the holding application (its readiness set)
                ready[connection] = None
            if self.event_hook is not None:
                self.event_hook(connection, now, False)
            return
        listener = self._listener_for(packet.dst, segment.dst_port)
        if listener is not None:
            listener.process_segment(segment, packet.dst, packet.src, now)
            return
        self.statistics.drop(DropReason.TCP_NO_LISTENER)
        if not segment.flags & RST:
            self.send_reset_for(segment, packet.dst, packet.src, now)

    def _listener_for(self, address: int, port: int) -> TCPListener | None:
        """The listener on ``address``:``port``, or on the wildcard address and ``port``."""
        return self.listeners.get((address, port)) or self.listeners.get((0, port))

    @staticmethod
    def _may_reuse(connection: TCPConnection, segment: TCPSegment) -> bool:
        """RFC 6191 / RFC 9293 3.10.7.4 note: a new SYN may end TIME-WAIT if it is newer."""
        stamp = segment.timestamp
        if connection.timestamps and stamp is not None:
            return seq_gt(stamp[0], connection.ts_recent)
        return seq_gt(segment.seq, connection.rcv_nxt)

    def send_reset_for(self, segment: TCPSegment, local: int, remote: int, now: float) -> None:
        """RFC 9293 3.10.7.1: the RST a segment to no connection gets, within ``allow_reset``."""
        if not self.allow_reset(now):
            return
        if segment.flags & ACK:
            reset = TCPSegment(segment.dst_port, segment.src_port, segment.ack, 0, RST, 0)
        else:
            length = (
                len(segment.payload)
                + (1 if segment.flags & SYN else 0)
                + (1 if segment.flags & FIN else 0)
            )
            reset = TCPSegment(
                segment.dst_port, segment.src_port, 0, seq_add(segment.seq, length), RST | ACK, 0
            )
        self.statistics.count("tcp.resets_sent")
        self.send_segment(reset, local, remote, now)

    def process_icmp_error(self, message: ICMPv4Message, quoted: IPv4Packet, now: float) -> None:
        """RFC 5927 checks, then RFC 1191 (need-frag) or RFC 5461 soft/hard error handling."""
        header = quoted.payload
        if len(header) < 8:
            self.statistics.drop(DropReason.TCP_ICMP_NO_CONNECTION)
            return
        sport = int.from_bytes(header[0:2], "big")
        dport = int.from_bytes(header[2:4], "big")
        seq = int.from_bytes(header[4:8], "big")
        connection = self.connections.get((quoted.src, sport, quoted.dst, dport))
        if connection is None:
            self.statistics.drop(DropReason.TCP_ICMP_NO_CONNECTION)
            return
        if not (seq_ge(seq, connection.snd_una) and seq_lt(seq, connection.snd_max)):
            self.statistics.drop(DropReason.TCP_ICMP_BAD_SEQUENCE)
            return
        self.statistics.count("tcp.icmp_errors")
        if (
            message.type == icmpv4.DESTINATION_UNREACHABLE
            and message.code == icmpv4.FRAGMENTATION_NEEDED
        ):
            if connection.lower_path_mss(message.next_hop_mtu):
                self._dirty[connection] = None
            return
        if message.type == icmpv4.DESTINATION_UNREACHABLE:
            hard = _HARD_UNREACHABLE.get(message.code)
            code = (
                hard
                if hard is not None
                else _SOFT_UNREACHABLE.get(message.code, errno.EHOSTUNREACH)
            )
        else:
            hard, code = None, errno.EHOSTUNREACH
        connection.icmp_error(code, hard is not None, message.summary(), now)
        self._dirty[connection] = None
        ready = connection.ready_set
        if ready is not None:
            ready[connection] = None

    # -- output and timers -----------------------------------------------------------------------
    def send_segment(
        self, segment: TCPSegment, local: int, remote: int, now: float, mss: int = 0
    ) -> None:
        self.statistics.counters["tcp.segments_sent"] += 1  # (the table, as on arrival)
        if mss and len(segment.payload) > mss:
            # A TSO burst: the link cuts it into MSS pieces and completes each checksum, so the
            # checksum field holds only the pseudo-header sum (Linux's CHECKSUM_PARTIAL).
            length = HEADER_LENGTH + len(encode_options(segment.options)) + len(segment.payload)
            partial = fold(pseudo_header_sum(local, remote, PROTO_TCP, length))
            data = segment.build(local, remote, checksum=partial)
            self.ip.send(
                remote,
                PROTO_TCP,
                data,
                now,
                source=local,
                dont_fragment=True,
                segmentation=(mss, length - len(segment.payload)),
            )
            return
        self.ip.send(
            remote, PROTO_TCP, segment.build(local, remote), now, source=local, dont_fragment=True
        )

    def flush(self, now: float) -> None:
        """Let every connection that changed send what it may, and reschedule its timers."""
        for _ in range(4):  # sending can dirty a connection again (a loopback peer); bounded
            if not self._dirty:
                return
            dirty, self._dirty = self._dirty, {}
            for connection in dirty:
                segments = connection.segments_to_send(now)
                if connection.trace_notes is not None:
                    self._send_noted(connection, segments, now)
                else:
                    for segment in segments:
                        self.send_segment(
                            segment,
                            connection.local_address,
                            connection.remote_address,
                            now,
                            connection.mss,
                        )
                self._schedule(connection)

    def _send_noted(
        self, connection: TCPConnection, segments: list[TCPSegment], now: float
    ) -> None:
        """``flush`` while tracing: each segment's cause goes to the trace before it is sent."""
        notes = connection.take_send_notes()
        note = self.send_note
        for index, segment in enumerate(segments):
            cause = notes.get(index, 0)
            if note is not None and cause:
                note(SEND_CAUSES[cause])
            self.send_segment(
                segment, connection.local_address, connection.remote_address, now, connection.mss
            )
            if note is not None and cause:
                note("")
        if self.event_hook is not None:
            self.event_hook(connection, now, False)

    def _schedule(self, connection: TCPConnection) -> None:
        deadline = connection.next_deadline() if connection.state is not TCPState.CLOSED else None
        if deadline is not None and deadline != connection.scheduled:
            heapq.heappush(self._timers, (deadline, next(self._timer_order), connection))
        connection.scheduled = deadline
        if len(self._timers) > 4 * len(self.connections) + 64:
            self._timers = [e for e in self._timers if e[2].scheduled == e[0]]
            heapq.heapify(self._timers)

    def run_timers(self, now: float) -> None:
        """Fire the due timers. Only heap entries due at ``now`` are looked at (plus the first
        one not due), so the cost does not grow with connections whose timers are not due or
        that have none (idle ones without keepalive): ``timer_inspections`` counts the look."""
        timers = self._timers
        inspected = 1  # the look at the top of the heap that ends the loop
        while timers and timers[0][0] <= now:
            inspected += 1
            deadline, _, connection = heapq.heappop(timers)
            if connection.scheduled != deadline or connection.state is TCPState.CLOSED:
                continue  # stale entry: the connection's timers changed since
            connection.scheduled = None
            if self.event_hook is not None:
                self.event_hook(connection, now, True)
            connection.on_timer(now)
            self._dirty[connection] = None
            ready = connection.ready_set
            if ready is not None:  # a timeout may have changed what the application sees
                ready[connection] = None
        self.timer_inspections += inspected

    def next_deadline(self) -> float | None:
        """The earliest timer, O(1) but for stale entries on top of the heap, each popped once
        (lazy invalidation: a rescheduled timer leaves its old entry behind)."""
        if self._dirty:
            return float("-inf")
        timers = self._timers
        inspected = 1
        while timers and (
            timers[0][2].scheduled != timers[0][0] or timers[0][2].state is TCPState.CLOSED
        ):
            inspected += 1
            heapq.heappop(timers)
        self.timer_inspections += inspected
        return timers[0][0] if timers else None
