"""A TCP connection: the user calls of RFC 9293 3.10 (SEND, RECEIVE, CLOSE, ABORT, STATUS), the
timers, and ``tcp_info``. Segment arrival is in ``input.py``, sending in ``output.py``.

Every method takes ``now``; nothing here blocks. User calls return at once: ``send`` accepts what
fits in the send buffer, ``receive`` returns what is buffered. The layer pulls segments with
``segments_to_send(now)`` and fires timers with ``on_timer(now)``.
The listener and the layer change a connection only through the operations here
(``open_passive``, ``open_from_cookie``, ``icmp_error``, ``lower_path_mss``, ...): which code may
change ``snd_nxt`` or any other variable is listed at the top of ``tcb.py``.
Entry points: ``TCPConnection`` (built by ``TCPLayer.connect`` or a listener).
"""

from __future__ import annotations

import errno

from pystack.tcp.congestion import switch
from pystack.tcp.input import ConnectionInput
from pystack.tcp.seq import seq_add, seq_diff
from pystack.tcp.settings import CongestionControlName
from pystack.tcp.state import TCPState
from pystack.tcp.tcb import CAUSE_KEEPALIVE_PROBE, CAUSE_SYN_RETRANSMIT, IP_TCP_HEADERS
from pystack.wire.tcp import ACK, TCPSegment


class TCPConnection(ConnectionInput):
    __slots__ = ()  # every variable lives in TransmissionControlBlock

    # -- opening -------------------------------------------------------------------------------
    def open_active(self, now: float) -> None:
        """RFC 9293 3.10.1 OPEN (active): send SYN, enter SYN-SENT."""
        self.rcv_wscale = self._choose_wscale()
        self._set_state(TCPState.SYN_SENT, now, "active open")
        self.send_syn(now)

    def open_passive(self, syn: TCPSegment, listener: object, now: float) -> None:
        """RFC 9293 3.10.7.2: a listener's SYN opens this connection; SYN-RECEIVED, SYN-ACK queued.

        ``listener`` is told when the handshake completes (``ConnectionOwner.admit`` and
        ``connection_established`` find it here) until ``detach_listener``.
        """
        self.passive = True
        self.listener = listener
        self.irs = syn.seq
        self.rcv_nxt = seq_add(syn.seq, 1)
        self.take_syn_options(syn, now)
        if syn.wscale is not None and self.settings.window_scaling:
            self.rcv_wscale = self._choose_wscale()
        self.note_window(syn)
        self._set_state(TCPState.SYN_RECEIVED, now, "SYN received by listener")
        self.send_syn(now, ack_of=syn)

    def open_from_cookie(self, ack: TCPSegment, mss: int, listener: object, now: float) -> None:
        """A handshake completed by a valid SYN cookie: ESTABLISHED at once.

        The connection was made with the cookie as its ISS, so ``ack`` acknowledges ISS + 1; the
        peer's SYN (forgotten, stateless) was SEG.SEQ - 1. ``mss`` is the one the cookie encoded.
        Nothing else of the SYN survives: no window scale, SACK or timestamps. Any text or flags
        besides ACK on ``ack`` are for ``process_segment`` afterwards.
        """
        if ack.ack != seq_add(self.iss, 1):
            raise ValueError(f"ACK {ack.ack} does not acknowledge the cookie ISS {self.iss}")
        self.passive = True
        self.listener = listener
        self.irs = seq_add(ack.seq, -1)
        self.rcv_nxt = ack.seq
        self.snd_una = self.snd_nxt = self.snd_max = ack.ack
        self.peer_mss = mss
        self.set_send_mss()
        self.note_window(ack)
        self._set_state(TCPState.ESTABLISHED, now, "valid SYN cookie")

    def detach_listener(self) -> None:
        """The listener lets go: the connection was accepted, or the listener closed."""
        self.listener = None

    def _choose_wscale(self) -> int:
        if not self.settings.window_scaling:
            return 0
        shift = 0
        while shift < 14 and (65535 << shift) < self.settings.receive_buffer:
            shift += 1
        return shift

    # -- user calls ----------------------------------------------------------------------------
    @property
    def readable(self) -> int:
        return len(self.receive_buffer)

    @property
    def at_eof(self) -> bool:
        """The peer's FIN has arrived and every byte before it was read."""
        return self.fin_received and len(self.receive_buffer) == 0

    @property
    def send_room(self) -> int:
        """Bytes ``send`` would accept now (0 once sending is no longer allowed)."""
        return self.send_buffer.room if self.state.may_send and not self.fin_queued else 0

    @property
    def may_send(self) -> bool:
        return self.state in (TCPState.SYN_SENT, TCPState.SYN_RECEIVED) or (
            self.state.may_send and not self.fin_queued
        )

    def send(self, data: bytes | bytearray | memoryview, now: float) -> int:
        """RFC 9293 3.10.2 SEND: queue what fits; the layer transmits at its next flush."""
        if self.error is not None and self.state is TCPState.CLOSED:
            raise ConnectionError(self.error, errno.errorcode.get(self.error, "error"))
        if not self.may_send:
            raise ConnectionError(errno.EPIPE, "connection closing")
        accepted = self.send_buffer.write(data)
        if accepted:
            self.owner.connection_changed(self)
        return accepted

    def receive(self, size: int) -> bytes:
        """RFC 9293 3.10.3 RECEIVE: up to ``size`` buffered bytes (b"" when none)."""
        before = self.receive_window()
        data = self.receive_buffer.read(size)
        if data and self.state.synchronized and not self.fin_received:
            # A window update is due if reading opened the window by at least an MSS or half
            # the buffer (RFC 9293 3.8.6.2.2), or it was closed (zero) before. Not after the
            # peer's FIN: it sends no more data, and it may be gone already (Linux does the same).
            after = self.receive_window()
            if (
                after - before >= min(self.receive_buffer.capacity // 2, self.receive_mss)
                or before == 0 < after  # (an ACK that still shows a zero window updates nothing)
            ):
                self.ack_now = True
                self.owner.connection_changed(self)
        return data

    def peek(self, size: int) -> bytes:
        return self.receive_buffer.peek(size)

    def shutdown(self, now: float, read: bool = False, write: bool = True) -> None:
        """Half-close: ``write`` queues our FIN after the data; ``read`` discards further input."""
        if read:
            self.read_shutdown = True
            self.receive_buffer.read_all()
        if write:
            self._queue_fin(now, "shutdown")

    def close(self, now: float) -> None:
        """RFC 9293 3.10.4 CLOSE. Unread data makes it an abort (RST), as RFC 2525 2.17 advises."""
        self.user_closed = True
        if len(self.receive_buffer) and self.state.synchronized:
            self.statistics.count("tcp.closed_with_unread_data")
            self.abort(now)
            return
        self._queue_fin(now, "close")
        if self.state is TCPState.FIN_WAIT_2:
            self.fin_wait_2_deadline = now + self.settings.fin_wait_2_timeout

    def _queue_fin(self, now: float, cause: str) -> None:
        state = self.state
        if state in (TCPState.CLOSED, TCPState.LISTEN, TCPState.SYN_SENT):
            if state is not TCPState.CLOSED:
                self._set_state(TCPState.CLOSED, now, f"{cause} before the handshake")
            return
        if self.fin_queued:
            return
        self.fin_queued = True
        if state in (TCPState.SYN_RECEIVED, TCPState.ESTABLISHED):
            self._set_state(TCPState.FIN_WAIT_1, now, cause)
        elif state is TCPState.CLOSE_WAIT:
            self._set_state(TCPState.LAST_ACK, now, cause)
        self.owner.connection_changed(self)

    def abort(self, now: float) -> None:
        """RFC 9293 3.10.5 ABORT: RST in synchronized states, then CLOSED at once."""
        state = self.state
        if state is TCPState.CLOSED:
            return
        if state in (
            TCPState.SYN_RECEIVED,
            TCPState.ESTABLISHED,
            TCPState.FIN_WAIT_1,
            TCPState.FIN_WAIT_2,
            TCPState.CLOSE_WAIT,
        ):
            self.send_reset(now)
        self.send_buffer.release(len(self.send_buffer))
        self._set_state(TCPState.CLOSED, now, "abort")

    def set_nodelay(self, enabled: bool) -> None:
        """TCP_NODELAY: turn Nagle's algorithm (RFC 896) off or back on."""
        self.nodelay = enabled

    def set_congestion_control(self, name: CongestionControlName | str) -> None:
        """TCP_CONGESTION: run algorithm ``name`` from now on; cwnd and ssthresh carry over
        (``congestion.switch``). ValueError for an unknown name, and the old one stays."""
        self.congestion = switch(self.congestion, name, self.settings.initial_window_segments)

    def set_keepalive(self, enabled: bool, now: float) -> None:
        self.keepalive = enabled
        self.keepalive_probes_sent = 0
        self.keepalive_deadline = now + self.settings.keepalive_idle if enabled else None
        self.owner.connection_changed(self)

    # -- events from the layer ---------------------------------------------------------------------
    def end_time_wait_for_new_syn(self, now: float) -> None:
        """RFC 6191: a newer SYN for this 4-tuple ends TIME-WAIT (the layer checked it is newer)."""
        self._set_state(TCPState.CLOSED, now, "new SYN reuses the TIME-WAIT 4-tuple")

    def recycle_time_wait(self, now: float) -> None:
        """The table is full and this is its oldest TIME-WAIT entry: end it now (lwIP's
        ``tcp_kill_timewait``). Only the 2*MSL guard against old duplicates is lost."""
        self._set_state(TCPState.CLOSED, now, "TIME-WAIT recycled: connection table full")

    def icmp_error(self, code: int, hard: bool, description: str, now: float) -> None:
        """An ICMP error about this connection (RFC 5461): ``code`` is the errno it means.

        Every error is recorded as the soft error; a hard one (port or protocol unreachable)
        aborts a connection still in SYN-SENT when ``icmp_aborts_syn_sent`` is set.
        """
        self.soft_error = code
        if self.state is TCPState.SYN_SENT and self.settings.icmp_aborts_syn_sent and hard:
            self.error = code
            self._set_state(TCPState.CLOSED, now, f"ICMP {description} in SYN-SENT")

    def lower_path_mss(self, mtu: int) -> bool:
        """RFC 1191 fragmentation needed with next-hop ``mtu`` (0: not given): lower the MSS
        (never below ``min_path_mss``) and go back to SND.UNA to resend at once with the smaller
        size (not a congestion signal, RFC 1191 6.5). False when the MSS was no larger."""
        settings = self.settings
        limit = max(mtu - IP_TCP_HEADERS, settings.min_path_mss) if mtu else settings.min_path_mss
        if limit >= self.mss_limit:
            return False
        self.mss_limit = limit
        self.set_send_mss()
        self.statistics.count("tcp.path_mtu_lowered")
        self.snd_nxt = self.snd_una
        return True

    # -- output --------------------------------------------------------------------------------
    def segments_to_send(self, now: float) -> list[TCPSegment]:
        self.transmit(now)
        out = self.outbox
        self.outbox = []
        return out

    def keep_send_notes(self, keep: bool) -> None:
        """While tracing: note why segments are sent again (``SEND_CAUSES``) and the recovery
        decisions (``note_event``)."""
        self.trace_notes = {} if keep else None
        self.trace_events = [] if keep else None

    def take_send_notes(self) -> dict[int, int]:
        """The notes on the segments ``segments_to_send`` last returned, by their index."""
        notes = self.trace_notes or {}
        if self.trace_notes is not None:
            self.trace_notes = {}
        return notes

    # -- timers --------------------------------------------------------------------------------
    def on_timer(self, now: float) -> None:
        """Fire every timer that is due at ``now``."""
        if self.time_wait_deadline is not None and now >= self.time_wait_deadline:
            self._set_state(TCPState.CLOSED, now, "TIME-WAIT expired (2*MSL)")
            return
        if self.fin_wait_2_deadline is not None and now >= self.fin_wait_2_deadline:
            self.statistics.count("tcp.fin_wait_2_timeouts")
            self._set_state(TCPState.CLOSED, now, "FIN-WAIT-2 timeout")
            return
        if self.retransmit_deadline is not None and now >= self.retransmit_deadline:
            self.retransmit_deadline = None
            self._retransmission_timeout(now)
            if self.state is TCPState.CLOSED:
                return
        if self.tlp_deadline is not None and now >= self.tlp_deadline:
            self.send_tail_probe(now)  # RFC 8985 7.3
        if self.rack_deadline is not None and now >= self.rack_deadline:
            self.rack_deadline = None
            if self.rack is not None:
                self.detect_losses(now)  # RFC 8985 6.3: the reordering timer
                if self.in_recovery:
                    self.prr_on_timer()
        if self.persist_deadline is not None and now >= self.persist_deadline:
            self._persist_timeout(now)
        if self.delayed_ack_deadline is not None and now >= self.delayed_ack_deadline:
            self.delayed_ack_deadline = None
            self.ack_now = True
        if self.keepalive_deadline is not None and now >= self.keepalive_deadline:
            self._keepalive_timeout(now)

    def _persist_timeout(self, now: float) -> None:
        """The persist timer: the next zero-window probe. A peer that answers is probed for as
        long as it keeps its window closed (RFC 1122 4.2.2.17); ``data_retries`` probes in a
        row without any acceptable ACK give up, as RTOs do (Linux: tcp_retries2 probes)."""
        limit = self.settings.data_retries
        if self.persist_probes >= limit and len(self.send_buffer):
            self.error = errno.ETIMEDOUT
            self.statistics.count("tcp.persist_timeouts")
            self.send_reset(now)
            self._set_state(TCPState.CLOSED, now, f"window probes unanswered ({limit})")
            return
        self.send_window_probe(now)

    def _retransmission_timeout(self, now: float) -> None:
        """RFC 6298 (5.4)-(5.7) with RFC 5681 (4) and the retry limits."""
        state = self.state
        if (
            not self.snd_wnd
            and state.synchronized
            and len(self.send_buffer)
            and self.snd_una != self.snd_max
        ):
            self._zero_window_timeout(now)
            return
        self.retransmissions += 1
        self.statistics.count("tcp.timeouts")
        limit = {
            TCPState.SYN_SENT: self.settings.syn_retries,
            TCPState.SYN_RECEIVED: self.settings.synack_retries,
        }.get(state, self.settings.data_retries)
        if self.retransmissions > limit:
            self.error = (
                errno.ETIMEDOUT
                if self.soft_error is None or state is not TCPState.SYN_SENT
                else self.soft_error
            )
            if state.synchronized:
                self.send_reset(now)
            self._set_state(TCPState.CLOSED, now, f"retransmission limit ({limit}) reached")
            return
        self.rtt.backoff()
        self.rtt_seq = None  # Karn
        if state in (TCPState.SYN_SENT, TCPState.SYN_RECEIVED):
            self.statistics.count("tcp.syn_retransmits")
            self.total_retransmits += 1
            self.send_syn(now)
            self.note_send(CAUSE_SYN_RETRANSMIT)
            self.retransmit_deadline = now + self.rtt.rto
            return
        if self.snd_una == self.snd_max:
            return
        if self.retransmissions == 1 and not self.in_recovery:
            self.start_undo_episode()  # (a recovery's own episode goes on through its RTO)
        # RFC 8985 6.3, 7.4: everything in flight is deemed lost; no tail probe is out.
        self.tlp_end_seq = None
        self.tlp_deadline = self.rack_deadline = None
        if self.rack is not None:
            self.rack.mark_all_lost()
        # RFC 5681 3.1: ssthresh is lowered only by the first timeout of a segment.
        self.congestion.on_timeout(self.flight_size(), repeated=self.retransmissions > 1)
        self.in_recovery = False
        self.duplicate_acks = 0
        self.recover = self.snd_max  # RFC 6582 3.2 step 1 after a timeout
        self.scoreboard.clear()  # RFC 2018 8: forget SACKed marks after a timeout
        self.high_rxt = self.snd_una
        self.snd_nxt = self.snd_una  # go back: resend from the first unacknowledged byte
        self.snd_nxt = self.retransmit_first(now)
        self.retransmit_deadline = now + self.rtt.rto

    def _zero_window_timeout(self, now: float) -> None:
        """An RTO while the peer's window is closed: it shrank the window under data in flight
        (RFC 9293 3.8.6.2.2 discourages it; RFC 1122 4.2.2.16 tolerates it). What is in flight
        lies beyond the window, so going on with retransmissions would only count live
        answers against the retry limit: go back to SND.UNA and let the persist timer probe,
        the one timer that drives probes (as Linux turns these RTOs into zero-window probes)."""
        self.statistics.count("tcp.timeouts")
        self.tlp_end_seq = None
        self.tlp_deadline = self.rack_deadline = None
        self.congestion.on_timeout(self.flight_size(), repeated=self.retransmissions > 0)
        self.in_recovery = False
        self.duplicate_acks = 0
        self.recover = self.snd_max
        self.scoreboard.clear()
        self.high_rxt = self.snd_una
        self.rtt_seq = None  # Karn
        self.snd_nxt = self.snd_una
        self.send_window_probe(now)

    def _keepalive_timeout(self, now: float) -> None:
        """RFC 1122 4.2.3.6: a probe with SEG.SEQ = SND.NXT - 1 and no data."""
        settings = self.settings
        if (
            self.state not in (TCPState.ESTABLISHED, TCPState.CLOSE_WAIT)
            or self.snd_una != self.snd_max
        ):
            self.keepalive_deadline = now + settings.keepalive_interval
            return
        if self.keepalive_probes_sent >= settings.keepalive_probes:
            self.error = errno.ETIMEDOUT
            self.statistics.count("tcp.keepalive_timeouts")
            self.send_reset(now)
            self._set_state(TCPState.CLOSED, now, "keepalive: peer silent")
            return
        self.keepalive_probes_sent += 1
        self.statistics.count("tcp.keepalive_probes")
        self.emit(seq_add(self.snd_nxt, -1), ACK, now)
        self.note_send(CAUSE_KEEPALIVE_PROBE)
        self.keepalive_deadline = now + settings.keepalive_interval

    # -- introspection -------------------------------------------------------------------------
    def tcp_info(self) -> dict[str, object]:
        """Everything a student (or ``ss -ti``) would want to see about this connection."""
        congestion = self.congestion
        return {
            "state": self.state.value,
            "local": (self.local_address, self.local_port),
            "remote": (self.remote_address, self.remote_port),
            "iss": self.iss,
            "irs": self.irs,
            "snd_una": self.snd_una,
            "snd_nxt": self.snd_nxt,
            "snd_max": self.snd_max,
            "snd_wnd": self.snd_wnd,
            "snd_wscale": self.snd_wscale,
            "rcv_nxt": self.rcv_nxt,
            "rcv_wnd": self.receive_window(),
            "rcv_wscale": self.rcv_wscale,
            "mss": self.mss,
            "peer_mss": self.peer_mss,
            "cwnd": congestion.cwnd,
            "ssthresh": congestion.ssthresh,
            "congestion_control": congestion.name,
            "congestion_state": congestion.state(),  # the algorithm's own, e.g. CUBIC's W_max, K
            "in_recovery": self.in_recovery,
            "duplicate_acks": self.duplicate_acks,
            "srtt": self.rtt.srtt,
            "rttvar": self.rtt.rttvar,
            "rto": self.rtt.rto,
            "retransmits": self.total_retransmits,
            "consecutive_timeouts": self.retransmissions,
            "timestamps": self.timestamps,
            "sack": self.sack,
            "sack_scoreboard": self.scoreboard.blocks(),
            "out_of_order": self.out_of_order.ranges(),
            "send_buffered": len(self.send_buffer),
            "receive_buffered": len(self.receive_buffer),
            "unacked": seq_diff(self.snd_max, self.snd_una),
            "timers": {
                "retransmit": self.retransmit_deadline,
                "persist": self.persist_deadline,
                "delayed_ack": self.delayed_ack_deadline,
                "keepalive": self.keepalive_deadline,
                "time_wait": self.time_wait_deadline,
                "fin_wait_2": self.fin_wait_2_deadline,
                "rack_reordering": self.rack_deadline,
                "tail_loss_probe": self.tlp_deadline,
            },
            "error": self.error,
            "soft_error": self.soft_error,
            "transitions": [repr(t) for t in self.transitions],
        }
