"""Segment arrival for a connection (RFC 9293 3.10.7), in the RFC's step order.

SYN-SENT has its own handler (3.10.7.3). Every other state goes through ``process_segment``:
first check sequence number (with PAWS, RFC 7323 5), second the RST bit (RFC 5961 3), fourth the
SYN bit (RFC 5961 4), fifth the ACK field (RFC 5961 5), sixth URG, seventh the segment text,
eighth the FIN bit. (The third step, security, does not apply.) LISTEN lives in ``listener.py``
and CLOSED in ``layer.py``.
"""

from __future__ import annotations

import enum
import errno

from pystack.stats import DropReason
from pystack.tcp.output import ConnectionOutput
from pystack.tcp.recovery import RackState, prr_quota
from pystack.tcp.seq import (
    seq_add,
    seq_diff,
    seq_ge,
    seq_gt,
    seq_in_window,
    seq_le,
    seq_lt,
    seq_max,
)
from pystack.tcp.state import TCPState
from pystack.tcp.tcb import CAUSE_FAST_RETRANSMIT
from pystack.wire.tcp import ACK, FIN, RST, SYN, URG, TCPSegment

MAX_WSCALE = 14  # RFC 7323 2.3
PAWS_IDLE_LIMIT = 24 * 86400.0  # RFC 7323 5.5: a TS.Recent idle this long no longer applies


class Acceptability(enum.Enum):
    """The verdict of the first check (RFC 9293 3.10.7.4 "check sequence number")."""

    ACCEPTABLE = "acceptable"
    PAWS = "paws"  # RFC 7323 5.3 R1: its timestamp is older than TS.Recent
    OUT_OF_WINDOW = "out of window"  # RFC 9293's acceptability table says no


class AfterAck(enum.Enum):
    """What the fifth step (the ACK field) leaves for the steps after it."""

    CONTINUE = "continue"  # go on: URG, segment text, FIN
    STOP = "stop"  # the segment was dropped or answered, or the connection closed


def check_sequence(
    segment: TCPSegment, rcv_nxt: int, rcv_wnd: int, paws_recent: int | None
) -> Acceptability:
    """RFC 9293 3.10.7.4 first check, PAWS (RFC 7323 5.3) first. Only answers: it changes nothing.

    ``rcv_wnd`` is the receive window the peer sees (``receive_window_edge``); ``paws_recent``
    is TS.Recent when PAWS applies (timestamps in use and TS.Recent valid), else None. An RST
    is not subject to PAWS (RFC 7323 5.3).
    """
    flags = segment.flags
    if paws_recent is not None and not flags & RST:
        stamp = segment.timestamp
        if stamp is not None and seq_lt(stamp[0], paws_recent):
            return Acceptability.PAWS
    seq = segment.seq
    length = len(segment.payload) + (1 if flags & SYN else 0) + (1 if flags & FIN else 0)
    if length == 0:
        ok = seq == rcv_nxt if rcv_wnd == 0 else seq_in_window(seq, rcv_nxt, rcv_wnd)
    elif rcv_wnd == 0:
        ok = False
    else:
        ok = seq_in_window(seq, rcv_nxt, rcv_wnd) or seq_in_window(
            seq_add(seq, length - 1), rcv_nxt, rcv_wnd
        )
    return Acceptability.ACCEPTABLE if ok else Acceptability.OUT_OF_WINDOW


class ConnectionInput(ConnectionOutput):
    __slots__ = ()  # every variable lives in TransmissionControlBlock

    # ---------------------------------------------------------------------------------------
    def take_syn_options(self, segment: TCPSegment, now: float) -> None:
        """Negotiate from the peer's SYN (RFC 9293 3.7.1, RFC 7323, RFC 2018)."""
        settings = self.settings
        self.peer_mss = segment.mss if segment.mss else settings.default_mss
        wscale = segment.wscale
        if settings.window_scaling and wscale is not None:
            if wscale > MAX_WSCALE:
                self.statistics.count("tcp.wscale_clamped")  # RFC 7323 2.3: log and use 14
            self.snd_wscale = min(wscale, MAX_WSCALE)
        else:
            self.snd_wscale = 0
            self.rcv_wscale = 0
        stamp = segment.timestamp
        self.timestamps = settings.timestamps and stamp is not None
        if stamp is not None and self.timestamps:
            self.ts_recent, self.ts_recent_time = stamp[0], now
        self.sack = settings.sack and segment.sack_permitted
        if self.sack and settings.rack_tlp and self.rack is None:
            self.rack = RackState()  # RFC 8985 needs SACK to learn what was delivered
        self.set_send_mss()
        # The peer's segments are at most what we announced (and usually what it accepts).
        self.receive_mss = min(self.mss_limit, self.peer_mss)

    def note_window(self, segment: TCPSegment) -> None:
        """RFC 9293 3.10.7.4 fifth step: update SND.WND from a newer segment."""
        shift = 0 if segment.flags & SYN else self.snd_wscale
        self.snd_wnd = segment.window << shift
        self.snd_wl1, self.snd_wl2 = segment.seq, segment.ack
        if self.snd_wnd > self.max_snd_wnd:
            self.max_snd_wnd = self.snd_wnd

    # ---------------------------------------------------------------------------------------
    def process_syn_sent(self, segment: TCPSegment, now: float) -> None:
        """RFC 9293 3.10.7.3."""
        flags = segment.flags
        # first: check the ACK bit
        if flags & ACK and not (
            seq_gt(segment.ack, self.iss) and seq_le(segment.ack, self.snd_max)
        ):
            if not flags & RST:
                self.owner_reset(segment, now)
            self.drop(DropReason.TCP_BAD_ACK)
            return
        # second: check the RST bit (RFC 5961 3.2: only with an ACK of our SYN)
        if flags & RST:
            if flags & ACK:
                self.error = errno.ECONNREFUSED
                self.statistics.count("tcp.refused")
                self._set_state(TCPState.CLOSED, now, "RST in SYN-SENT: connection refused")
            else:
                self.drop(DropReason.TCP_RST_IGNORED)
            return
        # fourth: check the SYN bit
        if not flags & SYN:
            self.drop(DropReason.TCP_NO_SYN)
            return
        self.irs = segment.seq
        self.rcv_nxt = seq_add(segment.seq, 1)
        self.take_syn_options(segment, now)
        if flags & ACK:
            self.snd_una = segment.ack
            self._pull_up_snd_nxt(segment.ack)
            self.note_window(segment)
            self._sample_rtt_from_syn(segment, now)
            self.retransmit_deadline = None
            self.retransmissions = 0
            self._set_state(TCPState.ESTABLISHED, now, "SYN-ACK received")
            self.owner.connection_established(self)
            self.ack_now = True
            if segment.payload or flags & FIN:
                self.process_text_and_fin(segment, now)
            return
        # Simultaneous open (RFC 9293 3.5, figure 8): answer with SYN-ACK.
        self._set_state(TCPState.SYN_RECEIVED, now, "SYN received in SYN-SENT (simultaneous open)")
        self.snd_wnd = segment.window
        self.snd_wl1, self.snd_wl2 = segment.seq, segment.ack
        self.send_syn(now, ack_of=segment)

    def _pull_up_snd_nxt(self, ack: int) -> None:
        """SND.NXT is never below SND.UNA: an ACK of our SYN pulls it up, as ``_new_ack`` does
        for data. (A smaller path MSS sets SND.NXT back to SND.UNA to resend the SYN; its ACK
        may come before the resend. Found by ``pystack fuzz --self``.)"""
        if seq_lt(self.snd_nxt, ack):
            self.snd_nxt = ack

    def _sample_rtt_from_syn(self, segment: TCPSegment, now: float) -> None:
        if self.retransmissions == 0:
            self.rtt.sample(now - self.created)  # Karn: only an unretransmitted SYN
            if self.rack is not None:
                self.rack.note_rtt(now - self.created)
            return
        # RFC 6298 5.7: our SYN (or SYN-ACK) timed out: data transmission starts with RTO 3 s,
        # RFC 5681 3.1 (RFC 6928 2): and with an initial window of one segment.
        self.rtt.apply_syn_loss_rule()
        self.congestion.on_syn_loss()

    def owner_reset(self, segment: TCPSegment, now: float) -> None:
        """<SEQ=SEG.ACK><CTL=RST> for an unacceptable ACK (RFC 9293 3.10.7.3 / 3.10.7.4), within
        the stack's budget for such RSTs (``ConnectionOwner.allow_reset``)."""
        if not self.owner.allow_reset(now):
            return
        reset = TCPSegment(self.local_port, self.remote_port, segment.ack, 0, RST, 0)
        self.outbox.append(reset)
        self.statistics.count("tcp.resets_sent")

    # ---------------------------------------------------------------------------------------
    def process_segment(self, segment: TCPSegment, now: float) -> None:
        """RFC 9293 3.10.7.4: SYN-RECEIVED and every synchronized state."""
        flags = segment.flags
        self.last_receive_time = now
        if self.keepalive:
            self.keepalive_probes_sent = 0
            self.keepalive_deadline = now + self.settings.keepalive_idle
        # RFC 9293 figure 8 (simultaneous open): the peer's SYN-ACK repeats its SYN, one below
        # RCV.NXT, with the ACK of ours. Take it as that ACK (Linux does the same).
        crossed = (
            flags & (SYN | ACK) == SYN | ACK
            and self.state is TCPState.SYN_RECEIVED
            and not self.passive
            and seq_add(segment.seq, 1) == self.rcv_nxt
        )
        # first: check sequence number (PAWS first, RFC 7323 5.3)
        if not crossed:
            window = self.receive_window_edge()
            paws_recent = (
                self.ts_recent
                if self.timestamps and now - self.ts_recent_time < PAWS_IDLE_LIMIT
                else None
            )
            verdict = check_sequence(segment, self.rcv_nxt, window, paws_recent)
            if verdict is not Acceptability.ACCEPTABLE:
                self._unacceptable(segment, verdict, window, now)
                return
            stamp = segment.timestamp
            if stamp is not None and self.timestamps and seq_le(segment.seq, self.last_ack_sent):
                # RFC 7323 4.3 (R3): remember the newest timestamp at the left edge.
                if seq_ge(stamp[0], self.ts_recent):
                    self.ts_recent, self.ts_recent_time = stamp[0], now
        # second: check the RST bit (RFC 5961 3.2)
        if flags & RST:
            self._process_reset(segment, now)
            return
        # fourth: check the SYN bit (RFC 5961 4.2)
        if flags & SYN and not crossed:
            if self.state is TCPState.SYN_RECEIVED and self.passive:
                # RFC 9293: a passive SYN-RECEIVED connection returns to LISTEN.
                self.drop(DropReason.TCP_SYN_IN_WINDOW)
                self._set_state(TCPState.CLOSED, now, "SYN in SYN-RECEIVED: back to LISTEN")
                return
            self.drop(DropReason.TCP_SYN_IN_WINDOW)
            self.send_challenge_ack(now)
            return
        # fifth: check the ACK field
        if not flags & ACK:
            self.drop(DropReason.TCP_NO_ACK)
            return
        if self._process_ack(segment, now) is AfterAck.STOP:
            return
        if crossed:  # its text starts after the SYN
            segment = segment._replace(seq=self.rcv_nxt, flags=flags & ~SYN)
        # sixth: check the URG bit (urgent data is delivered inline, RFC 6093)
        if flags & URG:
            self.statistics.count("tcp.urgent_received")
        # seventh and eighth: segment text, FIN
        if segment.payload or flags & FIN:
            self.process_text_and_fin(segment, now)

    def _unacceptable(
        self, segment: TCPSegment, verdict: Acceptability, window: int, now: float
    ) -> None:
        """What follows a first check that failed: the segment is dropped, and on the way a
        reordered duplicate ACK or a zero-window ACK is still taken, a retransmitted FIN
        restarts TIME-WAIT, and the peer is told where we are (rate-limited)."""
        if verdict is Acceptability.PAWS:
            if self._disordered_ack(segment):
                # Linux's tcp_disordered_ack: a reordered duplicate ACK still carries SACK
                # information; take it, but it does not update TS.Recent.
                self.statistics.count("tcp.paws_disordered_acks")
                self._process_ack(segment, now)
                return
            self.drop(DropReason.TCP_PAWS)
            self._answer_unacceptable(segment, now)
            return
        flags = segment.flags
        if flags & RST:
            self.drop(DropReason.TCP_OUT_OF_WINDOW)
            return
        if self.state is TCPState.TIME_WAIT and flags & FIN:
            # RFC 9293 3.10.7.4: a retransmitted FIN restarts the 2 MSL timeout; its ACK is
            # the rate-limited answer below.
            self.time_wait_deadline = now + 2 * self.settings.msl
        if self._duplicate_data(segment):
            # RFC 2883 4: data we already have (a needless retransmission): tell the sender
            # with a D-SACK, at once. Not rate-limited like other unacceptable segments: it
            # lies just below RCV.NXT, where a blind attacker lands no more often than in the
            # window itself, whose segments are taken anyway.
            self.drop(DropReason.TCP_OUT_OF_WINDOW)
            self.dsack_block = (segment.seq, seq_add(segment.seq, len(segment.payload)))
            self.send_ack(now)
            return
        if window == 0 and flags & ACK and not flags & SYN and segment.seq == self.rcv_nxt:
            # RFC 9293: at a zero window "special allowance should be made to accept valid
            # ACKs": a probe at RCV.NXT still moves SND.UNA and SND.WND; its text is dropped.
            after = self._process_ack(segment, now)
            if self.state is TCPState.CLOSED:
                return
            self.drop(DropReason.TCP_OUT_OF_WINDOW)
            if after is AfterAck.CONTINUE:
                # A window probe: it hit RCV.NXT exactly, so its sender is in sync, not blind;
                # it is answered every time (Linux takes it as in sequence), or the prober
                # would count its probes unanswered.
                self.ack_now = True
            return
        self.drop(DropReason.TCP_OUT_OF_WINDOW)
        self._answer_unacceptable(segment, now)

    def _duplicate_data(self, segment: TCPSegment) -> bool:
        """Is this text wholly below RCV.NXT, within one receive buffer of it (a duplicate)?"""
        size = len(segment.payload)
        if not size or not self.sack or not self.settings.dsack:
            return False
        below = seq_diff(self.rcv_nxt, segment.seq)
        return size <= below <= self.receive_buffer.capacity

    def _answer_unacceptable(self, segment: TCPSegment, now: float) -> None:
        """RFC 9293: <SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK>, within ``reply_allowed``'s limits,
        data or not (Linux limits only segments without data: a storm of blind data segments
        would otherwise be answered one for one)."""
        if self.reply_allowed(now):
            self.statistics.count("tcp.invalid_acks_sent")
            self.ack_now = True
        else:
            self.statistics.count("tcp.invalid_acks_suppressed")

    def _disordered_ack(self, segment: TCPSegment) -> bool:
        return (
            segment.flags & (SYN | FIN | RST | ACK) == ACK
            and not segment.payload
            and segment.seq == self.rcv_nxt
            and segment.ack == self.snd_una
            and segment.window << self.snd_wscale == self.snd_wnd
        )

    def receive_window_edge(self) -> int:
        """RCV.WND as the peer sees it: what we advertised, or what room we have now."""
        edge = self.rcv_adv
        advertised = seq_diff(edge, self.rcv_nxt) if edge is not None else 0
        return max(advertised, 0, min(self.receive_buffer.room, 65535 << self.rcv_wscale))

    def _process_reset(self, segment: TCPSegment, now: float) -> None:
        if segment.seq != self.rcv_nxt:
            # RFC 5961 3.2: in the window but not exact: challenge ACK.
            self.drop(DropReason.TCP_RST_NOT_EXACT)
            self.send_challenge_ack(now)
            return
        state = self.state
        if state is TCPState.TIME_WAIT:
            self.drop(DropReason.TCP_RST_IN_TIME_WAIT)  # RFC 1337: ignore it
            return
        self.statistics.count("tcp.resets_received")
        if state is TCPState.SYN_RECEIVED:
            if not self.passive:
                self.error = errno.ECONNREFUSED
            self._set_state(TCPState.CLOSED, now, "RST in SYN-RECEIVED")
            return
        if state in (
            TCPState.ESTABLISHED,
            TCPState.FIN_WAIT_1,
            TCPState.FIN_WAIT_2,
            TCPState.CLOSE_WAIT,
        ):
            self.error = errno.ECONNRESET
        self._set_state(TCPState.CLOSED, now, f"RST in {state.value}")

    # ---------------------------------------------------------------------------------------
    def _process_ack(self, segment: TCPSegment, now: float) -> AfterAck:
        """RFC 9293 3.10.7.4 fifth step with RFC 5961 5.2: whether the later steps still run."""
        ack = segment.ack
        if self.state is TCPState.SYN_RECEIVED:
            if not (seq_gt(ack, self.snd_una) and seq_le(ack, self.snd_max)):
                self.drop(DropReason.TCP_BAD_ACK)
                self.owner_reset(segment, now)
                return AfterAck.STOP
            if not self.owner.admit(self, now):
                return AfterAck.STOP  # accept queue full: the listener's overflow policy applied
            self.snd_una = ack
            self._pull_up_snd_nxt(ack)
            self.note_window(segment)
            self.retransmit_deadline = None
            self._sample_rtt_from_syn(segment, now)
            self.retransmissions = 0
            self._set_state(TCPState.ESTABLISHED, now, "ACK of our SYN-ACK")
            self.owner.connection_established(self)
            return AfterAck.CONTINUE
        # RFC 5961 5.2: acceptable when SND.UNA - MAX.SND.WND <= SEG.ACK <= SND.NXT.
        if seq_gt(ack, self.snd_max):
            # RFC 9293 3.10.7.4: "send an ACK, drop the segment", the ACK rate-limited.
            self.drop(DropReason.TCP_ACK_UNSENT)
            if self.reply_allowed(now):
                self.statistics.count("tcp.unsent_acks_sent")
                self.ack_now = True
            else:
                self.statistics.count("tcp.unsent_acks_suppressed")
            return AfterAck.STOP
        if seq_lt(ack, seq_add(self.snd_una, -max(self.max_snd_wnd, 1))):
            self.drop(DropReason.TCP_ACK_TOO_OLD)
            self.send_challenge_ack(now)
            return AfterAck.STOP
        self.persist_probes = 0  # the peer answers (RFC 1122 4.2.2.17: keep probing)
        if self.timestamps and segment.timestamp is not None:
            self._sample_rtt_from_timestamp(segment.timestamp[1], ack, now)
        newly_sacked = 0
        dsack: tuple[int, int] | None = None
        sacked_before = self.scoreboard.sacked_bytes
        if self.sack and segment.sack_blocks:
            # Blocks below this ACK are D-SACKs (RFC 2883): the scoreboard counts and skips them.
            scoreboard = self.scoreboard
            newly_sacked = scoreboard.update(
                segment.sack_blocks, seq_max(ack, self.snd_una), self.snd_max
            )
            dsack = scoreboard.last_dsack
        advanced = seq_gt(ack, self.snd_una)
        # RFC 6937 DeliveredData: the change in SND.UNA plus the change in SACKed bytes (which
        # falls when the cumulative ACK covers data SACKed before).
        acked = seq_diff(ack, self.snd_una) if advanced else 0
        rack = self.rack
        if rack is not None:
            # RFC 8985 6.2 steps 2-4: what this ACK delivered, and the reordering window.
            if advanced:
                rack.acknowledged(ack, now)
            if newly_sacked:
                rack.sacked(self.scoreboard.covers, now)
            if dsack is not None:
                rack.note_dsack(self.snd_una, self.snd_max)
        if dsack is not None:
            self._received_dsack(dsack, now)
        if advanced:
            self._new_ack(segment, now)
        else:
            self._old_ack(segment, now)
        delivered = acked + self.scoreboard.sacked_bytes - sacked_before
        if rack is not None:
            self._tail_probe_acked(ack, dsack)
            # RFC 8985 6.2 step 5, when something can be overdue: a segment sent before the
            # newest one delivered is still out only after a SACK, a retransmission (below
            # ``recover``, or a probe) or a loss already found. Otherwise, in order, the
            # cumulative ACK took everything sent earlier: the scan is skipped (it would cost
            # one loop over the whole flight per ACK on the bulk path).
            if rack.segments and (
                len(self.scoreboard)
                or self.in_recovery
                or self.rack_deadline is not None
                or self.tlp_end_seq is not None
                or seq_lt(self.snd_una, self.recover)
            ):
                self.detect_losses(now)
            elif self.rack_deadline is not None:
                self.rack_deadline = None
        if self.in_recovery and self.sack:
            self._proportional_rate_reduction(delivered)
        if advanced and rack is not None:
            self.arm_tail_probe(now)
        # window update (RFC 9293 3.10.7.4: SND.WL1 < SEG.SEQ or (= and SND.WL2 =< SEG.ACK))
        if seq_lt(self.snd_wl1, segment.seq) or (
            self.snd_wl1 == segment.seq and seq_le(self.snd_wl2, ack)
        ):
            old = self.snd_wnd
            self.note_window(segment)
            if self.snd_wnd and not old:
                self.persist_deadline = None
                self.persist_backoff = 0
        self._ack_state_changes(now)
        return AfterAck.STOP if self.state is TCPState.CLOSED else AfterAck.CONTINUE

    def _sample_rtt_from_timestamp(self, echo: int, ack: int, now: float) -> None:
        if echo and seq_gt(ack, self.snd_una):  # RFC 7323 4.3: only ACKs of new data
            sample = seq_diff(self.ts_value(now), echo) / 1000.0
            if 0 <= sample < 3600:
                self.rtt.sample(sample)
                if self.rack is not None:
                    self.rack.note_rtt(sample)

    def _new_ack(self, segment: TCPSegment, now: float) -> None:
        ack = segment.ack
        acked = seq_diff(ack, self.snd_una)
        data_acked = min(acked, len(self.send_buffer))
        self.send_buffer.release(data_acked)
        if self.rtt_seq is not None and seq_gt(ack, self.rtt_seq):
            self.rtt.sample(now - self.rtt_time)
            if self.rack is not None:
                self.rack.note_rtt(now - self.rtt_time)
            self.rtt_seq = None
        self.snd_una = ack
        if seq_lt(self.snd_nxt, ack):
            self.snd_nxt = ack
        self.scoreboard.advance(ack)
        self.retransmissions = 0
        # The RTO's backoff ends with the next RTT sample (``rtt.sample``), not with any ACK:
        # RFC 6298 5 (after 5.7) collapses the RTO "once a new RTT measurement is obtained",
        # and an ACK of retransmitted data gives none (Karn). Linux does the same.
        self.persist_backoff = 0
        self.statistics.count("tcp.bytes_acked", data_acked)
        if self.in_recovery:
            self._recovery_ack(ack, acked, now)
        else:
            self.duplicate_acks = 0
            self.congestion.on_ack(acked, now, self.rtt.srtt)
        # RFC 6298 (5.2, 5.3): stop the timer when all is acknowledged, else restart it.
        if self.snd_una == self.snd_max:
            self.retransmit_deadline = None
        else:
            self.retransmit_deadline = now + self.rtt.rto

    def _recovery_ack(self, ack: int, acked: int, now: float) -> None:
        if seq_ge(ack, self.recover):
            # RFC 6582 3.2 step 3: a full acknowledgement ends recovery.
            self.in_recovery = False
            self.duplicate_acks = 0
            self.congestion.exit_recovery(self.flight_size())
            self.statistics.count("tcp.recoveries_completed")
            if self.rack is not None:
                self.rack.recovery_ended()
            return
        # Partial acknowledgement: the next hole is lost too.
        self.statistics.count("tcp.partial_acks")
        if not self.sack:
            self.retransmit_first(now, CAUSE_FAST_RETRANSMIT)  # RFC 6582 3.2 step 4
            self.congestion.on_partial_ack(acked)

    def _old_ack(self, segment: TCPSegment, now: float) -> None:
        """RFC 5681 section 2 duplicate ACK detection, then fast retransmit (3.2) / NewReno."""
        if segment.payload or segment.flags & (SYN | FIN) or self.snd_una == self.snd_max:
            return
        # RFC 5681 2: the window equals the last one. A zero window is never a duplicate ACK:
        # the receiver has no room, nothing was lost, and a window probe's octet beyond the
        # closed window is not outstanding data (2 (a)); counted, probes would trigger fast
        # retransmit and RTOs (and the RTO retry limit would end a live connection).
        window = segment.window << self.snd_wscale
        if window != self.snd_wnd or not window or segment.ack != self.snd_una:
            return
        self.duplicate_acks += 1
        self.statistics.count("tcp.duplicate_acks")
        threshold = self.settings.duplicate_ack_threshold
        if self.in_recovery:
            self.congestion.on_duplicate_ack_in_recovery()
            return
        if self.rack is not None:
            return  # RACK decides by time what is lost (``detect_losses``), not by counting
        lost_by_sack = self.sack and self.scoreboard.is_lost(self.snd_una, self.mss, threshold)
        # RFC 6582 3.2 step 2: only when the ACK covers more than the last recovery point.
        if (self.duplicate_acks >= threshold or lost_by_sack) and seq_gt(
            self.snd_una, self.recover
        ):
            self._enter_recovery(now)

    def _enter_recovery(self, now: float) -> None:
        self.start_undo_episode()
        self.in_recovery = True
        self.recover = self.snd_max
        self.high_rxt = self.snd_una
        # RFC 5681 3.2 step 2: data sent by limited transmit (RFC 3042, beyond cwnd, which it
        # leaves unchanged) MUST NOT count in the FlightSize that sets ssthresh.
        flight = min(self.flight_size(), self.congestion.cwnd)
        self.congestion.enter_recovery(flight, self.sack)
        # RFC 6937: PRR counts from here; RecoverFS is the FlightSize at the start.
        self.prr_delivered = self.prr_out = 0
        self.recover_fs = self.flight_size()
        self.statistics.count("tcp.fast_retransmits")
        self.tlp_deadline = None
        if self.rack is None:
            self.retransmit_first(now, CAUSE_FAST_RETRANSMIT)
        # (with RACK, ``transmit`` resends what it marked lost, at PRR's pace)
        self.retransmit_deadline = now + self.rtt.rto

    def start_undo_episode(self) -> None:
        """A cwnd reduction begins (recovery or RTO): remember what to restore should every
        retransmission it makes be proven needless (RFC 3708 with D-SACK; Linux's undo)."""
        congestion = self.congestion
        self.undo_marker = self.snd_una
        self.undo_high = self.snd_max
        # A resent tail loss probe still out will draw a D-SACK of its own if the original
        # arrived: count it, or that D-SACK would stand in for a retransmission that was
        # needed (the undo bug Linux fixed in 2024, "incorrect undo caused by DSACK of TLP").
        self.undo_retransmits = 1 if self.tlp_end_seq is not None and self.tlp_retransmitted else 0
        self.undo_cwnd, self.undo_ssthresh = congestion.cwnd, congestion.ssthresh

    def _received_dsack(self, block: tuple[int, int], now: float) -> None:
        """RFC 2883: the peer received [left, right) twice. If it is one of this episode's
        retransmissions and the last one not yet proven needless, undo the reduction."""
        self.statistics.count("tcp.dsacks_received")
        marker = self.undo_marker
        if marker is None or self.undo_retransmits <= 0:
            return
        left, right = block
        if seq_lt(left, marker) or seq_gt(right, self.undo_high):
            return  # not data this episode sent again
        self.undo_retransmits -= 1
        if self.undo_retransmits == 0:
            self._undo(now)

    def _undo(self, now: float) -> None:
        """Every retransmission of the episode was needless: nothing was lost, so the window
        goes back to where it was (RFC 4015's response, as Linux's tcp_undo_cwnd_reduction)."""
        congestion = self.congestion
        before = congestion.cwnd
        congestion.cwnd = max(congestion.cwnd, self.undo_cwnd)
        congestion.ssthresh = max(congestion.ssthresh, self.undo_ssthresh)
        self.undo_marker = None
        if self.in_recovery:
            self.in_recovery = False  # nothing is missing: recovery has nothing left to do
            self.duplicate_acks = 0
        self.statistics.count("tcp.undos")
        self.note_event(
            f"undo: spurious retransmission (D-SACK), cwnd {before} -> {congestion.cwnd}"
        )

    def detect_losses(self, now: float) -> None:
        """RFC 8985 6.2 step 5 (after an ACK, or when the reordering timer fires): mark lost
        what was sent more than RACK.rtt + reo_wnd before something since delivered, start
        recovery for it, and arm the timer for the next segment that could be."""
        rack = self.rack
        assert rack is not None
        srtt = self.rtt.srtt if self.rtt.srtt is not None else rack.rtt
        reo_wnd = rack.reo_wnd(
            self.in_recovery,
            self.scoreboard.sacked_bytes,
            self.settings.duplicate_ack_threshold,
            self.mss,
            srtt,
        )
        lost, timeout = rack.detect_loss(now, reo_wnd)
        if lost:
            self.statistics.count("tcp.rack_lost_segments", lost)
            self.note_event(f"RACK: lost {lost} segment{'s' if lost > 1 else ''}")
            # One reduction per window of data (RFC 6582's recover point): not while a
            # recovery, or the RTO's go-back, still covers data sent before it began.
            if not self.in_recovery and seq_le(self.recover, self.snd_una):
                self._enter_recovery(now)
        self.rack_deadline = now + timeout if timeout > 0 else None

    def _tail_probe_acked(self, ack: int, dsack: tuple[int, int] | None) -> None:
        """RFC 8985 7.4: the ACK of a tail loss probe. A probe of new data needs nothing; a
        resent segment that was needless comes back as a D-SACK; an ACK beyond the probe
        without one shows it repaired a lost tail, a loss event the window must answer (one
        halving, without recovery)."""
        end = self.tlp_end_seq
        if end is None or seq_lt(ack, end):
            return
        self.tlp_end_seq = None
        if not self.tlp_retransmitted:
            return
        if dsack is not None and seq_le(dsack[1], end) and seq_lt(dsack[0], end):
            return  # the original arrived after all: no loss
        if ack == end:
            self.tlp_end_seq = end  # a D-SACK for the probe may still come (Linux waits too)
            return
        self.statistics.count("tcp.tlp_repairs")
        self.note_event("TLP repaired a tail loss")
        if not self.in_recovery:
            congestion = self.congestion
            congestion.enter_recovery(congestion.cwnd, True)
            congestion.exit_recovery(congestion.cwnd)

    def prr_on_timer(self) -> None:
        """The reordering timer marked segments lost: PRR with nothing delivered (which on
        entering recovery still lets the first retransmission go)."""
        self._proportional_rate_reduction(0)

    def _proportional_rate_reduction(self, delivered: int) -> None:
        """RFC 6937 (PRR-SSRB): on each ACK in SACK recovery, cwnd = pipe + sndcnt."""
        self.prr_delivered += delivered
        pipe = self.pipe()
        congestion = self.congestion
        quota = prr_quota(
            self.prr_delivered,
            self.prr_out,
            delivered,
            pipe,
            congestion.ssthresh,
            self.recover_fs,
            self.mss,
        )
        congestion.cwnd = pipe + quota

    def _ack_state_changes(self, now: float) -> None:
        state = self.state
        fin_acked = self.fin_sent and self.snd_una == self.snd_max and len(self.send_buffer) == 0
        if state is TCPState.FIN_WAIT_1 and fin_acked:
            self._set_state(TCPState.FIN_WAIT_2, now, "our FIN acknowledged")
            if self.user_closed:
                self.fin_wait_2_deadline = now + self.settings.fin_wait_2_timeout
        elif state is TCPState.CLOSING and fin_acked:
            self._enter_time_wait(now, "our FIN acknowledged in CLOSING")
        elif state is TCPState.LAST_ACK and fin_acked:
            self._set_state(TCPState.CLOSED, now, "our FIN acknowledged in LAST-ACK")

    # ---------------------------------------------------------------------------------------
    def process_text_and_fin(self, segment: TCPSegment, now: float) -> None:
        """Seventh step (segment text) and eighth step (FIN)."""
        state = self.state
        payload = segment.payload
        seq = segment.seq
        has_fin = bool(segment.flags & FIN)
        if payload and state.may_receive:
            if self.user_closed and not self.read_shutdown:
                # Nobody will read this: RFC 9293 3.10.4 / Linux, abort with RST.
                self.drop(DropReason.TCP_DATA_AFTER_CLOSE)
                self.send_reset(now)
                self._set_state(TCPState.CLOSED, now, "data after close")
                return
            self._receive_data(seq, payload, now)
        if has_fin:
            fin_seq = seq_add(seq, len(payload))
            if fin_seq == self.rcv_nxt:
                self._receive_fin(now)
            elif seq_gt(fin_seq, self.rcv_nxt) and state.may_receive:
                self.peer_fin_seq = fin_seq  # waits for the hole before it to fill
                if not (payload and seq_gt(seq, self.rcv_nxt)):
                    self.ack_now = True  # (out-of-order text was ACKed at once already)
        elif self.peer_fin_seq is not None and self.peer_fin_seq == self.rcv_nxt:
            self._receive_fin(now)

    def _receive_data(self, seq: int, payload: bytes, now: float) -> None:
        rcv_nxt = self.rcv_nxt
        offset = seq_diff(rcv_nxt, seq)
        if offset > 0:  # trim what we already have (RFC 9293 3.10.7.4 seventh step)
            if self.sack and self.settings.dsack:
                self.dsack_block = (seq, rcv_nxt)  # RFC 2883 4: the duplicate part
                self.ack_now = True
            payload = payload[offset:]
            seq = rcv_nxt
        room = self.receive_buffer.room if not self.read_shutdown else len(payload)
        if seq == rcv_nxt:
            if len(payload) > room:
                payload = payload[:room]
                self.drop(DropReason.TCP_BEYOND_WINDOW)
            if not payload:
                self.ack_now = True
                return
            self._deliver(payload)
            filled = len(self.out_of_order) > 0
            if filled:
                more = self.out_of_order.pop_ready(self.rcv_nxt)
                if more:
                    self._deliver(more)
                if self.peer_fin_seq is not None and self.peer_fin_seq == self.rcv_nxt:
                    self._receive_fin(now)
                self.send_ack(now)  # RFC 5681 4.2: ACK a segment that fills a hole at once
                return
            self._schedule_ack(len(payload), now)
            if self.peer_fin_seq is not None and self.peer_fin_seq == self.rcv_nxt:
                self._receive_fin(now)
            return
        # Out of order: hold it (bounded), and ACK at once with SACK blocks (RFC 5681 4.2).
        window = self.receive_window_edge()
        if seq_diff(seq_add(seq, len(payload)), rcv_nxt) > window:
            payload = payload[: max(0, window - seq_diff(seq, rcv_nxt))]
        if payload and self.sack and self.settings.dsack:
            # RFC 2883 4 (4.1.3): data held out of order already, all or part of it: D-SACK
            # the duplicate part; the block holding it comes next (the insert below makes it
            # the most recent).
            duplicate = self._held_part(seq, len(payload))
            if duplicate is not None:
                self.dsack_block = duplicate
        if payload and not self.out_of_order.insert(seq, payload, rcv_nxt):
            self.drop(DropReason.TCP_OUT_OF_ORDER_LIMIT)
        self.statistics.count("tcp.out_of_order_segments")
        self.send_ack(now)  # RFC 5681 4.2: a duplicate ACK (with SACK blocks) at once

    def _held_part(self, seq: int, size: int) -> tuple[int, int] | None:
        """The first part of [seq, seq + size) already held in the out-of-order queue, or None."""
        end = seq_add(seq, size)
        for left, right in self.out_of_order.ranges():
            low = seq if seq_diff(seq, left) >= 0 else left
            high = end if seq_diff(right, end) >= 0 else right
            if seq_diff(high, low) > 0:
                return (low, high)
        return None

    def _deliver(self, data: bytes) -> None:
        self.rcv_nxt = seq_add(self.rcv_nxt, len(data))
        if self.read_shutdown:
            self.statistics.count("tcp.bytes_discarded", len(data))
        else:
            self.receive_buffer.append(data)
        self.statistics.count("tcp.bytes_received", len(data))

    def _schedule_ack(self, size: int, now: float) -> None:
        """RFC 9293 3.8.6.3: ACK every second full-sized segment, else within the delay bound."""
        if size > self.receive_mss:
            # What the peer sends at most; a coalesced (GRO) burst does not raise the estimate.
            self.receive_mss = min(size, self.mss_limit)
        # A burst of several full-sized segments counts as that many; small ones count as one
        # (so an ACK goes at least every second segment, Linux's quick-ack behaviour).
        self.segments_unacked += max(1, size // self.receive_mss)
        if self.segments_unacked >= self.settings.quick_ack_segments:
            self.send_ack(now)  # at once, not at the end of the poll: every second segment
        elif self.delayed_ack_deadline is None:
            self.delayed_ack_deadline = now + self.settings.delayed_ack

    def _receive_fin(self, now: float) -> None:
        self.peer_fin_seq = None
        self.fin_received = True
        self.rcv_nxt = seq_add(self.rcv_nxt, 1)
        self.ack_now = True
        state = self.state
        if state in (TCPState.SYN_RECEIVED, TCPState.ESTABLISHED):
            self._set_state(TCPState.CLOSE_WAIT, now, "FIN received")
        elif state is TCPState.FIN_WAIT_1:
            if self.fin_sent and self.snd_una == self.snd_max:
                self._enter_time_wait(now, "FIN received, ours acknowledged")
            else:
                self._set_state(TCPState.CLOSING, now, "FIN received (simultaneous close)")
        elif state is TCPState.FIN_WAIT_2:
            self._enter_time_wait(now, "FIN received in FIN-WAIT-2")
        elif state is TCPState.TIME_WAIT:
            self._restart_time_wait(now)

    def _enter_time_wait(self, now: float, cause: str) -> None:
        self._set_state(TCPState.TIME_WAIT, now, cause)
        self.retransmit_deadline = self.persist_deadline = self.keepalive_deadline = None
        self.fin_wait_2_deadline = None
        self.time_wait_deadline = now + 2 * self.settings.msl

    def _restart_time_wait(self, now: float) -> None:
        """RFC 9293 3.10.7.4: a retransmitted FIN in TIME-WAIT: ACK it, restart the 2 MSL timeout."""
        self.time_wait_deadline = now + 2 * self.settings.msl
        self.ack_now = True
