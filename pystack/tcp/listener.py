"""Listening sockets (RFC 9293 3.10.7.2): the SYN queue, the accept queue and SYN cookies.

A SYN creates a SYN-RECEIVED connection counted in the SYN queue (bounded by
``TCPSettings.syn_queue``); when its handshake completes it moves to the accept queue (bounded by
the listen backlog). Overflow policy, explicit, in this order:
- a SYN that finds the accept queue full is dropped (``TCP_ACCEPT_QUEUE_FULL``, as Linux does,
  so the client retries);
- a SYN that finds the connection table full (no TIME-WAIT entry to recycle) or the buffer
  memory at its limit is refused with RST (``TCPLayer.refuse``): the client gets ECONNREFUSED
  at once instead of timing out;
- a SYN that finds this SYN queue full, or the stack under pressure (``TCPLayer.under_pressure``:
  the table above its high-water mark, or ``max_half_open`` half-open entries over all
  listeners), is answered with a stateless SYN cookie when cookies are on, else dropped
  (``TCP_SYN_QUEUE_FULL``);
- a cookie's ACK that finds the table full is refused with RST, so no client believes in a
  connection that does not exist;
- a handshake-completing ACK that finds the accept queue full is ignored
  (``AcceptOverflow.DROP``, the client's retransmission retries) or reset
  (``AcceptOverflow.RESET``).
Cookie connections carry no window scale, SACK or timestamps (nothing remembers them).
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING

from pystack.stats import DropReason
from pystack.tcp.seq import seq_add
from pystack.tcp.settings import AcceptOverflow, CongestionControlName
from pystack.tcp.state import TCPState
from pystack.wire.tcp import ACK, RST, SYN, TCPSegment, mss_option

if TYPE_CHECKING:
    from pystack.tcp.connection import TCPConnection
    from pystack.tcp.layer import TCPLayer


class TCPListener:
    def __init__(self, layer: TCPLayer, address: int, port: int, backlog: int) -> None:
        self.layer = layer
        self.address = address
        self.port = port
        self.backlog = max(1, min(backlog, layer.settings.max_backlog))
        self.syn_queue: set[TCPConnection] = set()
        self.accept_queue: deque[TCPConnection] = deque()
        self.closed = False
        self.cookies_sent = 0
        # The algorithm of the connections this listener creates (TCP_CONGESTION on a listening
        # socket, inherited as on Linux); None: the stack's ``congestion_control`` setting.
        self.congestion_control: CongestionControlName | None = None

    def __repr__(self) -> str:
        return f"<TCPListener port {self.port} backlog {self.backlog} pending {len(self.accept_queue)}>"

    @property
    def pending(self) -> int:
        return len(self.accept_queue)

    def accept(self) -> TCPConnection | None:
        """The oldest completed connection, or None. Connections reset while queued are skipped."""
        while self.accept_queue:
            connection = self.accept_queue.popleft()
            if (
                connection.state is not TCPState.CLOSED
                or len(connection.receive_buffer)
                or connection.error
            ):
                connection.detach_listener()
                return connection
        return None

    def close(self, now: float) -> None:
        """Stop listening; connections nobody accepted are reset (RFC 9293 3.10.4)."""
        if self.closed:
            return
        self.closed = True
        for connection in list(self.syn_queue) + list(self.accept_queue):
            connection.detach_listener()
            connection.abort(now)
            self.layer.connection_changed(connection)
        self.syn_queue.clear()
        self.accept_queue.clear()
        self.layer.remove_listener(self)

    # -- LISTEN state ---------------------------------------------------------------------------
    def process_segment(self, segment: TCPSegment, local: int, remote: int, now: float) -> None:
        layer = self.layer
        flags = segment.flags
        # first: check for an RST
        if flags & RST:
            layer.statistics.drop(DropReason.TCP_LISTEN_RST)
            return
        # second: check for an ACK (it may complete a SYN-cookie handshake)
        if flags & ACK:
            if not flags & SYN and self._try_cookie(segment, local, remote, now):
                return
            layer.statistics.drop(
                DropReason.TCP_BAD_COOKIE if layer.settings.syn_cookies else DropReason.TCP_BAD_ACK
            )
            layer.send_reset_for(segment, local, remote, now)
            return
        # third: check for a SYN
        if not flags & SYN:
            layer.statistics.drop(DropReason.TCP_LISTEN_NO_SYN)
            return
        if len(self.accept_queue) >= self.backlog:
            layer.statistics.drop(DropReason.TCP_ACCEPT_QUEUE_FULL)
            return
        full = layer.refusal_reason()
        if full is not None:
            layer.statistics.drop(full)
            layer.refuse(segment, local, remote, now)
            return
        if len(self.syn_queue) >= layer.settings.syn_queue or layer.under_pressure():
            if layer.settings.syn_cookies:
                self._send_cookie(segment, local, remote, now)
            else:
                layer.statistics.drop(DropReason.TCP_SYN_QUEUE_FULL)
            return
        connection = layer.new_connection((local, self.port), (remote, segment.src_port), now)
        if connection is None:
            layer.refuse(segment, local, remote, now)  # (the reason was counted)
            return
        connection.open_passive(segment, self, now)
        if self.congestion_control is not None:
            connection.set_congestion_control(self.congestion_control)
        self.syn_queue.add(connection)
        layer.statistics.count("tcp.passive_opens")
        layer.connection_changed(connection)

    def _send_cookie(self, segment: TCPSegment, local: int, remote: int, now: float) -> None:
        layer = self.layer
        mss = min(segment.mss or layer.settings.default_mss, layer.mss_limit(remote))
        cookie = layer.sequence.cookie(
            local, self.port, remote, segment.src_port, segment.seq, mss, now
        )
        reply = TCPSegment(
            self.port,
            segment.src_port,
            cookie,
            seq_add(segment.seq, 1),
            SYN | ACK,
            min(layer.settings.receive_buffer, 65535),
            b"",
            (mss_option(max(layer.mss_limit(remote), 64)),),  # our own MSS (RFC 9293 3.7.1)
        )
        layer.send_segment(reply, local, remote, now)
        self.cookies_sent += 1
        layer.statistics.count("tcp.syn_cookies_sent")

    def _try_cookie(self, segment: TCPSegment, local: int, remote: int, now: float) -> bool:
        """True when ``segment`` carried a valid cookie and was dealt with: a connection made,
        the ACK dropped for a full accept queue, or refused with RST for a full table."""
        layer = self.layer
        if not layer.settings.syn_cookies or not self.cookies_sent:
            return False
        iss = seq_add(segment.ack, -1)
        irs = seq_add(segment.seq, -1)
        mss = layer.sequence.check_cookie(iss, local, self.port, remote, segment.src_port, irs, now)
        if mss is None:
            return False
        if len(self.accept_queue) >= self.backlog:
            layer.statistics.drop(DropReason.TCP_ACCEPT_QUEUE_FULL)
            return True
        connection = layer.new_connection(
            (local, self.port), (remote, segment.src_port), now, iss=iss
        )
        if connection is None:
            layer.refuse(segment, local, remote, now)  # no phantom: the client hears of it
            return True
        connection.open_from_cookie(segment, mss, self, now)
        if self.congestion_control is not None:
            connection.set_congestion_control(self.congestion_control)
        self.accept_queue.append(connection)
        layer.statistics.count("tcp.syn_cookies_accepted")
        if segment.payload or segment.flags & ~ACK:
            connection.process_segment(segment, now)
        layer.connection_changed(connection)
        return True

    # -- the handshake completing ----------------------------------------------------------------
    def admit(self, connection: TCPConnection, now: float) -> bool:
        if len(self.accept_queue) < self.backlog:
            return True
        self.layer.statistics.drop(DropReason.TCP_ACCEPT_QUEUE_FULL)
        if self.layer.settings.accept_overflow is AcceptOverflow.RESET:
            connection.abort(now)
        return False

    def established(self, connection: TCPConnection) -> None:
        self.syn_queue.discard(connection)
        self.accept_queue.append(connection)

    def forget(self, connection: TCPConnection) -> None:
        """A queued connection closed (reset by the peer or timed out) before accept."""
        self.syn_queue.discard(connection)
        if (
            connection.error is None
            and connection in self.accept_queue
            and not len(connection.receive_buffer)
        ):
            self.accept_queue.remove(connection)
