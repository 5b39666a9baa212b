"""What a connection sends: SYNs, ACKs, data under the windows, FINs, retransmissions, probes.

Decisions here: the options each segment carries (RFC 7323, RFC 2018), the advertised window
(receiver SWS avoidance), Nagle (RFC 896) with ``TCP_NODELAY``, sender SWS avoidance (RFC 9293
3.8.6.2.1), limited transmit (RFC 3042), SACK-based retransmission (RFC 6675 NextSeg) and the
starting of the retransmission and persist timers. Segments are appended to ``outbox``.
"""

from __future__ import annotations

from pystack.tcp.seq import seq_add, seq_diff, seq_gt, seq_lt
from pystack.tcp.state import TCPState
from pystack.tcp.tcb import (
    CAUSE_FAST_RETRANSMIT,
    CAUSE_PERSIST_PROBE,
    CAUSE_RTO,
    CAUSE_SACK_RECOVERY,
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
        if self.sack and len(self.out_of_order):
            room = 3 if self.timestamps else 4  # 40 option bytes: 12 for TS leaves 3 blocks
            if payload_length:
                # RFC 6691: data plus options must fit the MSS; a full-sized segment has room
                # for no SACK blocks (NOP NOP, kind and length: 4 bytes, then 8 per block).
                spare = min(self.peer_mss, self.mss_limit) - payload_length
                spare -= TIMESTAMP_SPACE if self.timestamps else 0
                room = min(room, (spare - 4) // 8)
            blocks = tuple(self.out_of_order.sack_blocks(room))
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
            if self.in_recovery and self.sack:
                self._retransmit_holes(now)
            self._send_new_data(now)
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
            outstanding = self.scoreboard.pipe(self.snd_una, self.snd_max, self.high_rxt, self.mss)
        else:
            outstanding = seq_diff(self.snd_nxt, self.snd_una)
        return window - outstanding

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

    def _count_retransmit(self, seq: int, cause: int) -> None:
        if self.trace_notes is not None:
            self.note_send(cause)
        self.total_retransmits += 1
        self.statistics.count("tcp.retransmits")
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
            if self.retransmit_deadline is None:
                self.retransmit_deadline = now + self.rtt.rto
