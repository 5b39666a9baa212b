"""``--trace``: one line per packet, drop, state change and (``--trace=events``) TCP decision.

A ``Tracer`` serves one stack (``Stack.set_trace`` installs it). Each line starts with an arrow:

- ``>`` a packet queued for the link, ``<`` one received (``[loopback]``, ``[checksum
  offloaded]`` and ``[TSO burst of N segments, checksum offloaded]`` say how it travelled);
  a segment sent again carries its cause: ``[retransmit: RTO]``, ``[retransmit: fast
  retransmit]``, ``[retransmit: SACK recovery]``, ``[retransmit: SYN timeout]``, ``[persist
  probe]``, ``[keepalive probe]``;
- ``x`` a drop, with its ``DropReason`` name: every ``Statistics.drop`` (with the packet the
  caller names, else the packet being processed) and the impairment link's own drops;
- ``~`` what the impairment did to a frame that still goes on (corrupted, duplicated, a rule's
  delay);
- ``=`` a TCP state change and its cause;
- ``*`` (``events`` and ``all``) a connection's cwnd, ssthresh, RTO, SRTT, recovery entry and
  exit, and its timers armed, fired and stopped (``all`` adds the delayed-ACK timer and timers
  re-armed to a new deadline).

``TraceOptions.record`` (``--record``) receives the same events as structured records (plain
dicts, ``docs/record-format.md``) with the packets' bytes and the time of the stack's clock; a
tracer with a record and no sink (``--record`` without ``--trace``) prints nothing.

TCP sequence numbers are relative by default, as tcpdump prints them: per direction of a
connection, from its SYN (or the first segment seen), and acknowledgements and SACK blocks
relative to the other direction's (``absolute_seq`` turns this off). The lines hold nothing that
depends on the wall clock: the sink adds the time.

Off, none of this runs: the stack's hooks are None and each hook site costs one attribute test.
Entry points: ``TraceLevel``, ``TraceOptions``, ``Tracer``, ``colour_wanted``.
"""

from __future__ import annotations

import enum
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TextIO

from pystack.clock import Clock
from pystack.link import impair
from pystack.link.base import OffloadedFrame, SegmentedFrame
from pystack.stats import DropReason
from pystack.tcp.connection import TCPConnection
from pystack.tcp.state import TCPState
from pystack.tcp.tcb import Transition
from pystack.wire.addresses import ip_to_str
from pystack.wire.errors import MalformedPacket
from pystack.wire.ethernet import ETHERTYPE_IPV4, EthernetFrame
from pystack.wire.ipv4 import PROTO_TCP, IPv4Packet
from pystack.wire.summary import summarize_ethernet, summarize_ipv4, summarize_packet
from pystack.wire.tcp import ACK, FIN, OPT_SACK, SYN, URG, TCPSegment

MASK = 0xFFFFFFFF
FLOWS_KEPT = 4096  # sequence bases remembered (the oldest is forgotten first)
WATCHED_KEPT = 4096  # connections whose variables --trace=events remembers

_IMPAIRMENT_DROPS = {
    impair.LOSS: DropReason.IMPAIRMENT_LOSS,
    impair.MTU: DropReason.IMPAIRMENT_MTU,
    impair.QUEUE: DropReason.IMPAIRMENT_QUEUE_FULL,
    impair.RULE: DropReason.IMPAIRMENT_RULE,
}
_COLOURS = {">": "32", "<": "36", "x": "1;31", "~": "35", "=": "33", "*": "34"}
_TIMERS = (
    ("retransmit", "retransmit_deadline"),
    ("persist", "persist_deadline"),
    ("keepalive", "keepalive_deadline"),
    ("TIME-WAIT", "time_wait_deadline"),
    ("FIN-WAIT-2", "fin_wait_2_deadline"),
    ("delayed-ACK", "delayed_ack_deadline"),
)


class TraceLevel(enum.Enum):
    PACKETS = "packets"  # packets, drops, state changes (plain --trace)
    EVENTS = "events"  # and cwnd, ssthresh, RTO, SRTT, recovery, timers
    ALL = "all"  # and the delayed-ACK timer and every re-armed timer


@dataclass(frozen=True)
class TraceOptions:
    """What ``--trace`` and ``--record`` asked for; ``Stack.set_trace`` takes these or a bare
    sink. A None sink prints nothing (``--record`` alone)."""

    sink: Callable[[str], None] | None
    level: TraceLevel = TraceLevel.PACKETS
    absolute_seq: bool = False
    colour: bool = False
    peer: bool = False  # pystack run on the simulator: trace the peer too
    record: Callable[[Record], None] | None = None  # --record: every event as a dict


Record = dict[str, Any]  # one --record line (docs/record-format.md), before the writer adds "t"


def colour_wanted(stream: TextIO) -> bool:
    """Colours on a terminal, none in a pipe or a file, none when ``NO_COLOR`` is set."""
    if os.environ.get("NO_COLOR"):
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty is not None and isatty())


class Tracer:
    """Formats one stack's trace lines; its methods are the hooks ``Stack.set_trace`` installs."""

    def __init__(
        self,
        options: TraceOptions,
        ethernet: bool,
        label: str = "",
        clock: Clock | None = None,
        address: Callable[[], int] | None = None,
    ) -> None:
        self.options = options
        self.ethernet = ethernet
        self.prefix = f"{label} " if label else ""
        self.current: tuple[bytes | SegmentedFrame, bool] | None = None  # frame being processed
        self._sink = options.sink
        # --record: records say whose they are ("host" or "peer") and when (the stack's clock)
        self._record = options.record
        self._role = label.strip() or "host"
        self._clock = clock
        self._address = address
        self._recorded: dict[int, tuple[object, ...]] = {}
        self._colour = options.colour
        self._relative = not options.absolute_seq
        self._all = options.level is TraceLevel.ALL
        self._events = options.level is not TraceLevel.PACKETS
        self._bases: dict[tuple[int, int, int, int], int] = {}
        self._pending_note = ""
        self._watched: dict[int, tuple[object, ...]] = {}

    # -- output ------------------------------------------------------------------------------
    def emit(self, arrow: str, text: str) -> None:
        if self._sink is None:
            return
        line = f"{self.prefix}{arrow} {text}"
        if self._colour:
            line = f"\x1b[{_COLOURS.get(arrow, '0')}m{line}\x1b[0m"
        self._sink(line)

    # -- hooks -------------------------------------------------------------------------------
    def packet(
        self, direction: str, data: bytes | SegmentedFrame, ethernet: bool, note: str
    ) -> None:
        """``IPv4Layer.trace``: a frame in or out."""
        if direction == "in":
            self.current = (data, ethernet)
        if self._record is not None:
            notes = [note] if note else []
            if direction == "out" and self._pending_note:
                notes.append(self._pending_note)
            self._record_packet("packet", direction, data, ethernet, "; ".join(notes))
        if self._sink is None:
            return
        text = self.describe(data, ethernet)
        if note:
            text += f"  [{note}]"
        if direction == "out" and self._pending_note:
            text += f"  [{self._pending_note}]"
        self.emit("<" if direction == "in" else ">", text)

    def send_note(self, note: str) -> None:
        """``TCPLayer.send_note``: the cause of the segment about to be sent ("" after it)."""
        self._pending_note = note

    def drop(self, reason: DropReason, detail: str, packet: object, ethernet: bool) -> None:
        """``Statistics.on_drop``: every counted drop."""
        if self._record is not None:
            self._record_drop(reason.name, detail, packet, ethernet)
        if self._sink is None:
            return
        if isinstance(packet, IPv4Packet):
            text = self._describe_packet(packet, True)
        elif isinstance(packet, (bytes, bytearray)):
            text = self.describe(bytes(packet), ethernet)
        elif self.current is not None:
            text = self.describe(*self.current)
        else:
            text = "(no packet)"
        why = f"{reason.name} ({detail})" if detail else reason.name
        self.emit("x", f"{text}  [{why}]")

    def impairment(self, direction: str, frame: bytes, drop: str, note: str) -> None:
        """``ImpairmentLink.set_trace``: what the impairment did to a frame."""
        side = "inbound" if direction == "in" else "outbound"
        reason = _IMPAIRMENT_DROPS.get(drop)
        if self._record is not None:
            kind = "drop" if reason is not None else "impairment"
            record = self._packet_record(kind, direction, frame, self.ethernet, f"{note}, {side}")
            if reason is not None:
                record["reason"] = reason.name
            self._write(record)
        if self._sink is None:
            return
        text = self.describe(frame, self.ethernet)
        if reason is not None:
            self.emit("x", f"{text}  [{reason.name}: {note}, {side}]")
        else:
            self.emit("~", f"{text}  [impairment {side}: {note}]")

    def state(self, connection: TCPConnection, transition: Transition) -> None:
        """``TCPLayer.trace``: a state change."""
        if self._record is not None:
            self._write(
                {
                    "kind": "state",
                    "connection": _endpoints(connection),
                    "old": transition.old.value,
                    "new": transition.new.value,
                    "cause": transition.cause,
                }
            )
        self.emit(
            "=",
            f"{connection.describe_endpoints()} {transition.old.value} -> "
            f"{transition.new.value} ({transition.cause})",
        )

    def watch(self, connection: TCPConnection, now: float, timer_due: bool) -> None:
        """``TCPLayer.event_hook`` (``--trace=events``): report what changed since last time."""
        if self._record is not None:
            self._record_variables(connection)
            if self._sink is None or not self._events:
                return  # installed for the record only
        key = id(connection)
        if connection.state is TCPState.CLOSED:
            self._watched.pop(key, None)
            return
        congestion, rtt = connection.congestion, connection.rtt
        deadlines = tuple(getattr(connection, field) for _, field in _TIMERS)
        now_values = (
            congestion.cwnd,
            congestion.ssthresh,
            rtt.rto,
            rtt.srtt,
            connection.in_recovery,
        )
        before = self._watched.get(key)
        changes: list[str] = []
        if before is None:
            if len(self._watched) >= WATCHED_KEPT:
                del self._watched[next(iter(self._watched))]
            changes.append(
                f"cwnd {congestion.cwnd}, ssthresh {congestion.ssthresh}, rto {rtt.rto:.3f} s"
            )
            old_deadlines: tuple[float | None, ...] = (None,) * len(_TIMERS)
        else:
            changes += self._variable_changes(before[:5], now_values)
            old_deadlines = before[5:]  # type: ignore[assignment]
        if timer_due:
            fired: list[float | None] = []
            for (name, _), deadline in zip(_TIMERS, deadlines, strict=True):
                if deadline is not None and deadline <= now:
                    fired.append(None)
                    changes.append(f"{name} timer fired")
                else:
                    fired.append(deadline)
            deadlines = tuple(fired)
        else:
            changes += self._timer_changes(old_deadlines, deadlines, now)
        self._watched[key] = (*now_values, *deadlines)
        if changes:
            self.emit("*", f"{connection.describe_endpoints()}: " + ", ".join(changes))

    # -- records (--record) -------------------------------------------------------------------
    def _write(self, record: Record) -> None:
        assert self._record is not None
        record["host"] = self._role
        if self._address is not None:
            record["addr"] = ip_to_str(self._address())
        if self._clock is not None:
            record["now"] = self._clock.now()
        self._record(record)

    def _packet_record(
        self, kind: str, direction: str, data: bytes | SegmentedFrame, ethernet: bool, note: str
    ) -> Record:
        record: Record = {"kind": kind, "dir": direction}
        if isinstance(data, SegmentedFrame):  # a TSO burst: the IP packet before the cutting
            payload = len(data.frame) - data.header_length
            pieces = -(-payload // data.segment_size) if data.segment_size > 0 else 1
            note = f"{note}; TSO burst of {pieces} segments" if note else f"TSO burst of {pieces}"
            record["link"], record["bytes"] = "ip", bytes(data.frame).hex()
        else:
            record["link"] = "ethernet" if ethernet else "ip"
            record["bytes"] = bytes(data).hex()
        if note:
            record["note"] = note
        return record

    def _record_packet(
        self, kind: str, direction: str, data: bytes | SegmentedFrame, ethernet: bool, note: str
    ) -> None:
        self._write(self._packet_record(kind, direction, data, ethernet, note))

    def _record_drop(self, reason: str, detail: str, packet: object, ethernet: bool) -> None:
        record: Record
        if isinstance(packet, IPv4Packet):
            record = {"kind": "drop", "dir": "in", "link": "ip", "bytes": packet.build().hex()}
        elif isinstance(packet, (bytes, bytearray)):
            record = self._packet_record("drop", "in", bytes(packet), ethernet, "")
        elif self.current is not None:
            record = self._packet_record("drop", "in", *self.current, "")
        else:
            record = {"kind": "drop"}
        record["reason"] = reason
        if detail:
            record["note"] = detail
        self._write(record)

    def _record_variables(self, connection: TCPConnection) -> None:
        """A ``tcp`` record whenever one of the connection's plotted variables changed."""
        key = id(connection)
        if connection.state is TCPState.CLOSED:
            self._recorded.pop(key, None)
            return
        congestion, rtt = connection.congestion, connection.rtt
        edge = connection.rcv_adv
        values = (
            congestion.cwnd,
            congestion.ssthresh,
            connection.flight_size(),
            connection.snd_wnd,
            (edge - connection.rcv_nxt) & MASK if edge is not None else 0,
            rtt.srtt,
            rtt.rto,
            connection.in_recovery,
        )
        if self._recorded.get(key) == values:
            return
        if key not in self._recorded and len(self._recorded) >= WATCHED_KEPT:
            del self._recorded[next(iter(self._recorded))]
        self._recorded[key] = values
        cwnd, ssthresh, flight, snd_wnd, rcv_wnd, srtt, rto, recovery = values
        self._write(
            {
                "kind": "tcp",
                "connection": _endpoints(connection),
                "state": connection.state.value,
                "cwnd": cwnd,
                "ssthresh": ssthresh,
                "flight": flight,
                "snd_wnd": snd_wnd,
                "rcv_wnd": rcv_wnd,
                "srtt": srtt,
                "rto": rto,
                "recovery": recovery,
            }
        )

    # -- formatting --------------------------------------------------------------------------
    @staticmethod
    def _variable_changes(before: tuple[object, ...], after: tuple[object, ...]) -> list[str]:
        changes = []
        cwnd, ssthresh, rto, srtt, recovery = after
        if before[0] != cwnd:
            changes.append(f"cwnd {before[0]} -> {cwnd}")
        if before[1] != ssthresh:
            changes.append(f"ssthresh {before[1]} -> {ssthresh}")
        if before[4] != recovery:
            changes.append("recovery entered" if recovery else "recovery exited")
        if before[3] != srtt and isinstance(srtt, float):
            old = before[3]
            was = f"{old * 1000:.1f} ms" if isinstance(old, float) else "none"
            changes.append(f"srtt {was} -> {srtt * 1000:.1f} ms")
        if before[2] != rto and isinstance(rto, float) and isinstance(before[2], float):
            changes.append(f"rto {before[2]:.3f} -> {rto:.3f} s")
        return changes

    def _timer_changes(
        self,
        before: tuple[float | None, ...],
        after: tuple[float | None, ...],
        now: float,
    ) -> list[str]:
        changes = []
        for (name, _), old, new in zip(_TIMERS, before, after, strict=True):
            if old == new or (name == "delayed-ACK" and not self._all):
                continue
            if new is None:
                changes.append(f"{name} timer stopped")
            elif old is None:
                changes.append(f"{name} timer armed ({new - now:.3f} s)")
            elif self._all:
                changes.append(f"{name} timer re-armed ({new - now:.3f} s)")
        return changes

    def describe(self, data: bytes | SegmentedFrame, ethernet: bool) -> str:
        """One line for a frame (an Ethernet frame when ``ethernet``, else an IPv4 packet)."""
        if isinstance(data, SegmentedFrame):
            # A TSO burst: the device cuts it and fills in each piece's checksum.
            payload = len(data.frame) - data.header_length
            pieces = -(-payload // data.segment_size) if data.segment_size > 0 else 1
            return (
                self._describe_ip(data.frame, verify=False)
                + f"  [TSO burst of {pieces} segments, checksum offloaded]"
            )
        if data.__class__ is OffloadedFrame:
            return self._describe_link(data, ethernet, False) + "  [checksum offloaded]"
        return self._describe_link(data, ethernet, True)

    def _describe_link(self, data: bytes, ethernet: bool, verify: bool) -> str:
        if not ethernet:
            return self._describe_ip(data, verify)
        try:
            frame = EthernetFrame.parse(data)
        except MalformedPacket:
            return summarize_ethernet(data)
        if frame.ethertype != ETHERTYPE_IPV4:
            return summarize_ethernet(data)
        return self._describe_ip(frame.payload, verify)

    def _describe_ip(self, data: bytes, verify: bool) -> str:
        try:
            packet = IPv4Packet.parse(data)
        except MalformedPacket:
            return summarize_ipv4(data, verify)
        return self._describe_packet(packet, verify)

    def _describe_packet(self, packet: IPv4Packet, verify: bool) -> str:
        if packet.protocol != PROTO_TCP or packet.is_fragment:
            return summarize_packet(packet, verify)
        try:
            segment = TCPSegment.parse(
                packet.payload, packet.src, packet.dst, verify_checksum=verify
            )
        except MalformedPacket:
            return summarize_packet(packet, verify)
        return self._tcp_line(packet, segment)

    def _tcp_line(self, packet: IPv4Packet, segment: TCPSegment) -> str:
        flags, seq, ack, payload = segment.flags, segment.seq, segment.ack, segment.payload
        seq_base = ack_base = 0
        if self._relative:
            bases = self._bases
            key = (packet.src, segment.src_port, packet.dst, segment.dst_port)
            if flags & SYN or key not in bases:
                if key not in bases and len(bases) >= FLOWS_KEPT:
                    del bases[next(iter(bases))]
                bases[key] = seq
            seq_base = bases[key]
            other = bases.get((packet.dst, segment.dst_port, packet.src, segment.src_port))
            ack_base = other if other is not None else 0
        parts = [
            f"IP {ip_to_str(packet.src)}.{segment.src_port} > "
            f"{ip_to_str(packet.dst)}.{segment.dst_port}: Flags [{segment.flag_string()}]"
        ]
        if payload or flags & (SYN | FIN) or not flags & ACK:
            start = (seq - seq_base) & MASK
            parts.append(
                f"seq {start}:{(start + len(payload)) & MASK}" if payload else f"seq {start}"
            )
        if flags & ACK:
            parts.append(f"ack {(ack - ack_base) & MASK}")
        parts.append(f"win {segment.window}")
        if flags & URG:
            parts.append(f"urg {segment.urgent}")
        if segment.options:
            shown = []
            for option in segment.options:
                if option.kind == OPT_SACK and isinstance(option.value, tuple) and ack_base:
                    blocks = " ".join(
                        f"{{{(left - ack_base) & MASK}:{(right - ack_base) & MASK}}}"
                        for left, right in option.value
                    )
                    shown.append(f"sack {blocks}")
                else:
                    shown.append(option.summary())
            parts.append("options [" + ",".join(shown) + "]")
        parts.append(f"length {len(payload)}")
        return ", ".join(parts)


def _endpoints(connection: TCPConnection) -> list[object]:
    """A connection in a record: [local address, local port, remote address, remote port]."""
    return [
        ip_to_str(connection.local_address),
        connection.local_port,
        ip_to_str(connection.remote_address),
        connection.remote_port,
    ]
