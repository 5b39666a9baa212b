"""What a connection sends: SYNs, ACKs, data under the windows, FINs, retransmissions, probes.

Decisions here: the options each segment carries (RFC 7323, RFC 2018), the advertised window
(receiver SWS avoidance), Nagle (RFC 896) with ``TCP_NODELAY``, sender SWS avoidance (RFC 9293
3.8.6.2.1), limited transmit (RFC 3042), SACK-based retransmission (RFC 6675 NextSeg) and the
starting of the retransmission and persist timers. Segments are appended to ``outbox``.
"""

from __future__ import annotations

from pystack.tcp.seq import seq_add, seq_diff, seq_gt, seq_lt, seq_max
from pystack.tcp.state import TCPState
from pystack.tcp.tcb import (
    CAUSE_FAST_RETRANSMIT,
    CAUSE_PERSIST_PROBE,
    CAUSE_RACK_LOST,
    CAUSE_RTO,
    CAUSE_SACK_RECOVERY,
    CAUSE_TLP_PROBE,
    TIMESTAMP_SPACE,
    TransmissionControlBlock,
)
from pystack.wire.tcp import (
    ACK,
    FIN,
    NOP,
    PSH,
    RST,
    SYN,
    TCPOption,
    TCPSegment,
    mss_option,
    sack_option,
    sack_permitted_option,
    timestamp_option,
    wscale_option,
)

# RFC 8985 7.2 leaves the PTO's floor open; Linux never arms it below 10 ms (TCP_TIMEOUT_MIN).
MIN_PTO = 0.01
# The PTO before any RTT sample (RFC 8985 7.2: "PTO = 1 sec").
INITIAL_PTO = 1.0

# States in which data (and a FIN) may be (re)transmitted.
_SENDING = frozenset(
    {
        TCPState.ESTABLISHED,
        TCPState.CLOSE_WAIT,
        TCPState.FIN_WAIT_1,
        TCPState.CLOSING,
        TCPState.LAST_ACK,
    }
)


class ConnectionOutput(TransmissionControlBlock):
    __slots__ = ()  # every variable lives in TransmissionControlBlock

    # -- segment construction ----------------------------------------------------------------
    def segment_options(self, now: float, payload_length: int = 0) -> tuple[TCPOption, ...]:
        options: tuple[TCPOption, ...] = ()
        if self.timestamps:
            options = (NOP, NOP, timestamp_option(self.ts_value(now), self.ts_recent))
        dsack = self.dsack_block
        if self.sack and (dsack is not None or len(self.out_of_order)):
            room = 3 if self.timestamps else 4  # 40 option bytes: 12 for TS leaves 3 blocks
            if payload_length:
                # RFC 6691: data plus options must fit the MSS; a full-sized segment has room
                # for no SACK blocks (NOP NOP, kind and length: 4 bytes, then 8 per block).
                spare = min(self.peer_mss, self.mss_limit) - payload_length
                spare -= TIMESTAMP_SPACE if self.timestamps else 0
                room = min(room, (spare - 4) // 8)
            blocks = tuple(self.out_of_order.sack_blocks(room))
            if dsack is not None and room > 0:
                # RFC 2883 4: the duplicate's range goes first (the receiver of it knows a
                # first block below the ACK, or inside a later block, is a D-SACK), once.
                blocks = (dsack, *blocks[: room - 1])
                self.dsack_block = None
                self.statistics.count("tcp.dsacks_sent")
            if blocks:
                options += (NOP, NOP, sack_option(blocks))
        return options

    def syn_options(self, now: float, ack_of: TCPSegment | None) -> tuple[TCPOption, ...]:
        """Options on our SYN or SYN-ACK; on a SYN-ACK only what the peer's SYN offered."""
        settings = self.settings
        options: list[TCPOption] = [mss_option(max(self.mss_limit, 64))]
        offer_sack = settings.sack and (ack_of is None or ack_of.sack_permitted)
        offer_ts = settings.timestamps and (ack_of is None or ack_of.timestamp is not None)
        offer_ws = settings.window_scaling and (ack_of is None or ack_of.wscale is not None)
        if offer_sack:
            options.append(sack_permitted_option())
        if offer_ts:
            echo = self.ts_recent if ack_of is not None else 0
            options.append(timestamp_option(self.ts_value(now), echo))
        elif offer_sack:
            options += [NOP, NOP]
        if offer_ws:
            options += [NOP, wscale_option(self.rcv_wscale)]
        return tuple(options)

    def advertised_window(self, syn: bool = False) -> int:
        window = self.receive_window()
        if syn:
            return min(window, 65535)  # RFC 7323 2.2: the window in a SYN is never scaled
        field = min(window >> self.rcv_wscale, 65535)
        return field

    def emit(
        self,
        seq: int,
        flags: int,
        now: float,
        payload: bytes = b"",
        options: tuple[TCPOption, ...] | None = None,
    ) -> TCPSegment:
        """Queue one segment; any segment with ACK set also settles a pending acknowledgement."""
        syn = bool(flags & SYN)
        window = self.advertised_window(syn) if not flags & RST else 0
        ack = self.rcv_nxt if flags & ACK else 0
        if options is None:
            options = self.segment_options(now, len(payload)) if not flags & RST else ()
        segment = TCPSegment(
            self.local_port, self.remote_port, seq, ack, flags, window, payload, options
        )
        self.outbox.append(segment)
        if flags & ACK:
            self.last_ack_sent = ack
            self.rcv_adv = seq_add(self.rcv_nxt, window if syn else window << self.rcv_wscale)
            self.ack_now = False
            self.delayed_ack_deadline = None
            self.segments_unacked = 0
        self.last_send_time = now
        return segment

    # -- control segments --------------------------------------------------------------------
    def send_syn(self, now: float, ack_of: TCPSegment | None = None) -> None:
        """Our SYN (active open) or SYN-ACK (``ack_of`` is the peer's SYN)."""
        flags = SYN | ACK if self.state is TCPState.SYN_RECEIVED else SYN
        if ack_of is not None:
            self.peer_syn = ack_of._replace(payload=b"")
        elif flags & ACK:
            ack_of = self.peer_syn  # RFC 7323, RFC 2018: a retransmitted SYN-ACK offers the same
        self.emit(self.iss, flags, now, options=self.syn_options(now, ack_of))
        self.snd_nxt = seq_add(self.iss, 1)
        if seq_gt(self.snd_nxt, self.snd_max) or self.snd_max == self.iss:
            self.snd_max = self.snd_nxt
        if self.retransmit_deadline is None:
            self.retransmit_deadline = now + self.rtt.rto

    def send_ack(self, now: float) -> None:
        self.emit(self.snd_nxt, ACK, now)

    def send_reset(self, now: float) -> None:
        """RST for an abort from a synchronized state (RFC 9293 3.10.5). Its sequence number must
        be inside the peer's window or the peer drops it (RFC 5961 3.2): after a zero-window probe
        SND.NXT is one past the window, so the window's right edge is used (as Linux does)."""
        window_end = seq_add(self.snd_una, self.snd_wnd)
        self.emit(window_end if seq_gt(self.snd_nxt, window_end) else self.snd_nxt, RST | ACK, now)
        self.statistics.count("tcp.resets_sent")

    def send_challenge_ack(self, now: float) -> None:
        """RFC 5961 3.2/4.2/5.2: an ACK that proves we are in sync, rate-limited (RFC 5961 7)."""
        if not self.reply_allowed(now):
            self.statistics.count("tcp.challenge_acks_suppressed")
            return
        self.challenge_acks_sent += 1
        self.statistics.count("tcp.challenge_acks_sent")
        self.send_ack(now)

    def reply_allowed(self, now: float) -> bool:
        """May an ACK answer an unacceptable segment now? (The caller counts its kind.)

        At most one such reply per ``invalid_ack_interval`` on this connection, whatever its
        kind (Linux's tcp_oow_rate_limited, also on challenge ACKs), and then only within the
        stack's budget (``ConnectionOwner.allow_reply``). A blind attacker's storm of bad
        segments so gets a handful of replies, not one each; the first is never held back.
        """
        interval = self.settings.invalid_ack_interval
        last = self.last_invalid_ack_time
        if interval > 0 and last is not None and now - last < interval:
            return False
        self.last_invalid_ack_time = now
        return self.owner.allow_reply(now)

    # -- data ----------------------------------------------------------------------------------
    def fin_seq(self) -> int:
        """The sequence number the FIN takes: right after the last byte written."""
        return seq_add(self.snd_una, len(self.send_buffer))

    def transmit(self, now: float) -> None:
        """Send what the windows, Nagle and SWS avoidance allow; then any pending ACK."""
        if self.state in _SENDING:
            sent_up_to = self.snd_max
            if self.in_recovery and self.sack:
                if self.rack is not None:
                    self._retransmit_lost(now)
                else:
                    self._retransmit_holes(now)
            self._send_new_data(now)
            if self.rack is not None and self.snd_max != sent_up_to:
                # RFC 8985 7.2: new data (re)starts the PTO; once per burst, not per segment
                self.arm_tail_probe(now)
        if (
            self.ack_now
            and self.state is not TCPState.SYN_SENT
            and self.state is not TCPState.CLOSED
        ):
            self.send_ack(now)

    def _usable_window(self) -> int:
        window = min(self.snd_wnd, self.congestion.cwnd)
        if self.settings.limited_transmit and not self.in_recovery and 0 < self.duplicate_acks < 3:
            # RFC 3042: one new segment per first and second duplicate ACK.
            window = min(self.snd_wnd, self.congestion.cwnd + self.duplicate_acks * self.mss)
        if self.in_recovery and self.sack:
            outstanding = self.pipe()
        else:
            outstanding = seq_diff(self.snd_nxt, self.snd_una)
        return window - outstanding

    def pipe(self) -> int:
        """Bytes in flight during SACK recovery: RACK's record (not SACKed, not deemed lost)
        with RACK-TLP, else RFC 6675 SetPipe."""
        if self.rack is not None:
            return self.rack.pipe()
        return self.scoreboard.pipe(self.snd_una, self.snd_max, self.high_rxt, self.mss)

    def _send_new_data(self, now: float) -> None:
        buffer = self.send_buffer
        mss = self.mss
        while True:
            offset = seq_diff(self.snd_nxt, self.snd_una)
            unsent = len(buffer) - offset
            if unsent <= 0:
                self._maybe_send_fin(now, offset)
                return
            usable = self._usable_window()
            size = min(self.send_burst, unsent, usable)
            if size <= 0:
                self._maybe_start_persist(now)
                return
            if size < mss and not self._small_segment_allowed(size, unsent, offset):
                self._maybe_start_persist(now)
                return
            if self.sack and self.scoreboard.is_sacked(self.snd_nxt):
                self.snd_nxt = seq_add(self.snd_nxt, self._skip_sacked(size))
                continue
            self._send_data(now, offset, size)

    def _small_segment_allowed(self, size: int, unsent: int, offset: int) -> bool:
        if size < unsent:
            # RFC 9293 3.8.6.2.1: a window-limited piece only if it is at least half the largest
            # window the peer has offered (otherwise wait for the window to open).
            return size >= self.max_snd_wnd // 2
        # Everything left fits: Nagle (RFC 896) holds it while data is unacknowledged.
        return self.nodelay or offset == 0 or self.fin_queued

    def _skip_sacked(self, limit: int) -> int:
        return max(1, min(limit, self.scoreboard.sacked_run(self.snd_nxt)))

    def _send_data(self, now: float, offset: int, size: int) -> None:
        payload = self.send_buffer.read(offset, size)
        seq = self.snd_nxt
        flags = ACK
        if offset + size == len(self.send_buffer):
            flags |= PSH
            if self.fin_queued and self.state in _SENDING:
                flags |= FIN
        self.emit(seq, flags, now, payload)
        end = seq_add(seq, size + (1 if flags & FIN else 0))
        retransmission = seq_lt(seq, self.snd_max)
        self.snd_nxt = end
        if seq_gt(end, self.snd_max):
            self.snd_max = end
        if flags & FIN:
            self.fin_sent = True
        if retransmission:
            self._count_retransmit(seq, CAUSE_FAST_RETRANSMIT if self.in_recovery else CAUSE_RTO)
        elif self.rtt_seq is None and not self.timestamps:
            self.rtt_seq, self.rtt_time = seq, now  # RFC 6298 (Karn): time only new data
        if self.retransmit_deadline is None:
            self.retransmit_deadline = now + self.rtt.rto
        self.persist_deadline = None
        if self.in_recovery:
            self.prr_out += size
        rack = self.rack
        if rack is not None:
            rack.sent(seq, end, now, retransmission)

    def _count_retransmit(self, seq: int, cause: int) -> None:
        if self.trace_notes is not None:
            self.note_send(cause)
        self.total_retransmits += 1
        self.statistics.count("tcp.retransmits")
        if self.undo_marker is not None:
            self.undo_retransmits += 1  # one more a D-SACK must prove needless before an undo
        if self.rtt_seq is not None and not seq_lt(seq, self.rtt_seq):
            self.rtt_seq = None  # Karn: a retransmitted segment gives no RTT sample

    def _maybe_send_fin(self, now: float, offset: int) -> None:
        if not self.fin_queued or offset != len(self.send_buffer) or self.state not in _SENDING:
            return
        fin = self.fin_seq()
        if self.snd_nxt != fin:
            return  # the FIN is already out (snd_nxt is past it)
        if self._usable_window() < 0 and self.snd_wnd:
            return
        retransmission = seq_lt(fin, self.snd_max)
        self.emit(fin, FIN | ACK, now)
        self.snd_nxt = seq_add(fin, 1)
        if seq_gt(self.snd_nxt, self.snd_max):
            self.snd_max = self.snd_nxt
        self.fin_sent = True
        if retransmission:
            self._count_retransmit(fin, CAUSE_FAST_RETRANSMIT if self.in_recovery else CAUSE_RTO)
        if self.retransmit_deadline is None:
            self.retransmit_deadline = now + self.rtt.rto
        if self.rack is not None:
            self.rack.sent(fin, self.snd_nxt, now, retransmission)

    def _maybe_start_persist(self, now: float) -> None:
        """RFC 9293 3.8.6.1: a zero window with data waiting and nothing in flight: probe.

        Also a window too small to use (sender SWS avoidance holds the data): the update that
        opens it may be lost, and nothing else would ask for it (Linux arms its probe timer
        whenever data waits with nothing in flight).
        """
        if self.snd_nxt == self.snd_una and self.persist_deadline is None:
            self.retransmit_deadline = None
            self.persist_deadline = now + self._persist_interval()

    def _persist_interval(self) -> float:
        """RFC 6298 5.5 backoff from the base RTO, capped at the maximum RTO (RFC 1122
        4.2.2.17: "increase exponentially the interval between successive probes")."""
        base = max(self.rtt.base_rto, self.settings.persist_min)
        return min(base * (1 << min(self.persist_backoff, 16)), self.settings.max_rto)

    def send_window_probe(self, now: float) -> None:
        """One octet at the left window edge (RFC 9293 3.8.6.1), new data if none is out."""
        if len(self.send_buffer) == 0:
            self.persist_deadline = None
            return
        offset = seq_diff(self.snd_nxt, self.snd_una)
        fits = min(self._usable_window(), self.mss, len(self.send_buffer) - offset)
        if self.snd_wnd > 0 and fits > 0:
            # RFC 9293 3.8.6.2.1 (the override timeout): a window sender SWS avoidance found
            # too small is used after all, rather than trickling single-octet probes into it.
            self.statistics.count("tcp.window_probes")  # a probe that carries what fits
            self.statistics.count("tcp.sws_override_sends")
            self._send_data(now, offset, fits)
            self.note_send(CAUSE_PERSIST_PROBE)
            return
        payload = self.send_buffer.read(0, 1)
        self.emit(self.snd_una, ACK, now, payload)
        self.note_send(CAUSE_PERSIST_PROBE)
        # The octet may be refused: snd_max covers it (its ACK is acceptable) but snd_nxt stays,
        # so sending resumes at the left edge when the window opens, not one octet past it.
        if seq_gt(seq_add(self.snd_una, 1), self.snd_max):
            self.snd_max = seq_add(self.snd_una, 1)
        self.statistics.count("tcp.window_probes")
        self.persist_backoff += 1
        self.persist_probes += 1  # any acceptable ACK sets it back to 0 (the peer is alive)
        self.persist_deadline = now + self._persist_interval()

    # -- retransmission ------------------------------------------------------------------------
    def retransmit_first(self, now: float, cause: int = CAUSE_RTO) -> int:
        """Resend the segment at snd_una (RTO, or fast retransmit RFC 5681 3.2 step 2).

        Returns the sequence number after what was sent. ``cause`` is for the trace.
        """
        buffered = len(self.send_buffer)
        if buffered == 0:
            if self.fin_sent:
                self.emit(self.snd_una, FIN | ACK, now)
                self._count_retransmit(self.snd_una, cause)
                if self.rack is not None:
                    self.rack.sent(self.snd_una, seq_add(self.snd_una, 1), now, True)
                return seq_add(self.snd_una, 1)
            return self.snd_una
        # What was sent before (up to snd_max), or what the window allows, at least one byte.
        outstanding = seq_diff(self.snd_max, self.snd_una)
        size = min(self.mss, buffered, max(outstanding, self.snd_wnd, 1))
        flags = ACK
        if size == buffered and self.fin_sent:
            flags |= FIN
        self.emit(self.snd_una, flags, now, self.send_buffer.read(0, size))
        self._count_retransmit(self.snd_una, cause)
        end = seq_add(self.snd_una, size + (1 if flags & FIN else 0))
        if seq_gt(end, self.high_rxt):
            self.high_rxt = end
        if seq_gt(end, self.snd_max):
            self.snd_max = end
        if self.in_recovery:
            self.prr_out += size
        if self.rack is not None:
            self.rack.sent(self.snd_una, end, now, True)
        return end

    def _retransmit_holes(self, now: float) -> None:
        """RFC 6675 5 (C): while pipe allows, retransmit the next lost un-SACKed segment."""
        for _ in range(64):  # bounded per call
            if (
                self.congestion.cwnd
                - self.scoreboard.pipe(self.snd_una, self.snd_max, self.high_rxt, self.mss)
                < self.mss
            ):
                return
            hole = self.scoreboard.next_retransmit(
                self.snd_una, self.snd_max, self.high_rxt, self.mss
            )
            if hole is None:
                return
            seq, length = hole
            offset = seq_diff(seq, self.snd_una)
            length = min(length, len(self.send_buffer) - offset)
            if length <= 0:
                return
            self.emit(seq, ACK, now, self.send_buffer.read(offset, length))
            self._count_retransmit(seq, CAUSE_SACK_RECOVERY)
            self.high_rxt = seq_add(seq, length)
            self.prr_out += length
            if self.retransmit_deadline is None:
                self.retransmit_deadline = now + self.rtt.rto

    def _retransmit_lost(self, now: float) -> None:
        """RACK recovery: resend what RACK deemed lost, lowest first, while cwnd - pipe allows
        a segment (PRR sets cwnd on each ACK, RFC 6937). New data follows in
        ``_send_new_data`` under the same limit (RFC 6675 NextSeg rule 2)."""
        rack = self.rack
        assert rack is not None
        mss = self.mss
        for _ in range(64):  # bounded per call
            if self.congestion.cwnd - rack.pipe() < mss:
                return
            lost = rack.first_lost()
            if lost is None:
                return
            start, end = lost
            start = seq_max(start, self.snd_una)
            run = self.scoreboard.sacked_run(start)  # a partly SACKed segment: skip that part
            if run:
                start = seq_add(start, run)
            if not seq_lt(start, end):
                # SACKed after all (a record is dropped only when one range covers it)
                rack.sacked(self.scoreboard.covers, now)
                continue
            piece = self.scoreboard.piece_at(start, end, mss)
            if self.resend(start, piece, now, CAUSE_RACK_LOST) == start:
                return

    def resend(self, start: int, end: int, now: float, cause: int) -> int:
        """Send [start, end) again (at most one MSS of it, the FIN too if it lies inside):
        a RACK retransmission or a tail loss probe. Returns where what was sent ends."""
        data_end = seq_add(self.snd_una, len(self.send_buffer))
        size = min(seq_diff(end, start), self.mss)
        data = max(0, min(size, seq_diff(data_end, start)))
        stop = seq_add(start, data)
        flags = ACK
        if self.fin_sent and stop == data_end and seq_gt(end, data_end):
            flags |= FIN
        if data == 0 and not flags & FIN:
            return start
        payload = self.send_buffer.read(seq_diff(start, self.snd_una), data) if data else b""
        self.emit(start, flags | (PSH if stop == data_end else 0), now, payload)
        self._count_retransmit(start, cause)
        sent_end = seq_add(stop, 1) if flags & FIN else stop
        if seq_gt(sent_end, self.high_rxt):
            self.high_rxt = sent_end
        if self.in_recovery:
            self.prr_out += seq_diff(sent_end, start)
        if self.rack is not None:
            self.rack.sent(start, sent_end, now, True)
        if self.retransmit_deadline is None:
            self.retransmit_deadline = now + self.rtt.rto
        return sent_end

    # -- tail loss probe (RFC 8985 7) ----------------------------------------------------------
    def arm_tail_probe(self, now: float) -> None:
        """RFC 8985 7.2: (re)start the PTO while data is in flight, no probe is out and the
        connection is not recovering (nor going back after an RTO). PTO = 2*SRTT, plus the
        worst-case delayed ACK when one segment is in flight; no later than the RTO."""
        if (
            self.in_recovery
            or self.tlp_end_seq is not None
            or self.snd_una == self.snd_max
            or self.snd_nxt != self.snd_max
        ):
            self.tlp_deadline = None
            return
        srtt = self.rtt.srtt
        if srtt is None:
            pto = INITIAL_PTO
        else:
            pto = 2.0 * srtt
            if seq_diff(self.snd_max, self.snd_una) <= self.mss:
                pto += self.settings.tlp_max_ack_delay
            pto = max(pto, MIN_PTO)
        deadline = now + pto
        rto = self.retransmit_deadline
        # No probe when the RTO would come first: it does the probe's job (Linux likewise).
        self.tlp_deadline = deadline if rto is None or deadline < rto else None

    def send_tail_probe(self, now: float) -> None:
        """RFC 8985 7.3: the PTO expired: send one new segment if the peer's window allows,
        else the last segment sent again. Then only the RTO is armed until its ACK."""
        self.tlp_deadline = None
        if (
            self.rack is None
            or self.state not in _SENDING
            or self.in_recovery
            or self.tlp_end_seq is not None
            or self.snd_una == self.snd_max
        ):
            return
        offset = seq_diff(self.snd_nxt, self.snd_una)
        unsent = len(self.send_buffer) - offset
        size = min(self.mss, unsent)
        self.tlp_end_seq = self.snd_max  # a probe is out: nothing re-arms the PTO meanwhile
        if unsent > 0 and self.snd_wnd - offset >= size:
            self._send_data(now, offset, size)  # new data: not limited by cwnd (RFC 8985 7.3)
            self.note_send(CAUSE_TLP_PROBE)
            self.tlp_retransmitted = False
        else:
            last = self.rack.last_range()
            end = last[1] if last is not None else self.snd_max
            start = seq_max(self.snd_una, seq_add(end, -self.mss))
            if last is not None:
                start = seq_max(start, last[0])
            if self.resend(start, end, now, CAUSE_TLP_PROBE) == start:
                self.tlp_end_seq = None
                return
            self.tlp_retransmitted = True
        self.tlp_end_seq = self.snd_max
        self.statistics.count("tcp.tlp_probes")
        self.note_event("TLP probe" + (" (last segment again)" if self.tlp_retransmitted else ""))
        self.retransmit_deadline = now + self.rtt.rto  # RFC 8985 7.3: re-arm the RTO
