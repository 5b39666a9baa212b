"""The ladder: a recording or a capture turned into columns, arrows, state labels and series.

``from_recording`` matches each packet sent (``out``) with its arrival (``in``) on the other
host when both hosts were recorded, so a segment is one arrow; an impairment drop or a drop by
the link marks it lost (the arrow stops midway), a drop by the receiver after arrival marks it
dropped there. A copy the impairment duplicated is an arrow of its own; a frame it corrupted is
matched with its corrupted arrival. ``from_capture`` makes one arrow per captured packet and
infers the TCP states from the flags (there are no internal events in a pcap), and marks a TCP
segment whose data or SYN/FIN was seen before as a retransmission.

Sequence numbers are relative, as tcpdump shows them: per direction from its SYN (or first
segment), acknowledgements relative to the other direction's. Rows past ``MAX_ARROWS`` arrows
are left out of the drawing (counted in ``Ladder.omitted``, said in a note).

Entry points: ``Ladder``, ``from_recording``, ``from_capture``, ``text_ladder``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from pystack.show.pcapread import Captured
from pystack.show.recording import Recording
from pystack.wire.addresses import ip_to_str
from pystack.wire.arp import OP_REQUEST, ARPPacket
from pystack.wire.errors import MalformedPacket
from pystack.wire.ethernet import ETHERTYPE_ARP, ETHERTYPE_IPV4, EthernetFrame
from pystack.wire.ipv4 import PROTO_TCP, IPv4Packet
from pystack.wire.summary import summarize_packet
from pystack.wire.tcp import ACK, FIN, PSH, RST, SYN, URG, TCPSegment

MAX_ARROWS = 3000  # arrows drawn; the rest of a long recording is counted, not drawn
MASK = 0xFFFFFFFF
PENDING_KEPT = 20000  # packets sent and not yet seen arriving, remembered for matching
_FLAG_NAMES = ((SYN, "SYN"), (FIN, "FIN"), (RST, "RST"), (PSH, "PSH"), (URG, "URG"), (ACK, "ACK"))


@dataclass
class Arrow:
    """One packet on the wire, from column ``src`` to column ``dst``."""

    time: float
    src: str
    dst: str
    label: str
    kind: str = "segment"  # "segment", "retransmit" or "lost"
    note: str = ""  # why it was sent again, a probe, a TSO burst, what the impairment did
    dropped: str = ""  # the receiver's (or the link's) drop reason
    arrival: float | None = None


@dataclass
class StateLabel:
    """A TCP state change written down the side of column ``column``."""

    time: float
    column: str
    state: str
    cause: str
    connection: str


@dataclass
class Series:
    """A connection's TCP variables over time (a recording's ``tcp`` records)."""

    name: str
    points: list[tuple[float, dict[str, Any]]] = field(default_factory=list)


@dataclass
class Ladder:
    title: str
    columns: list[str] = field(default_factory=list)
    rows: list[Arrow | StateLabel] = field(default_factory=list)
    series: dict[str, Series] = field(default_factory=dict)
    counters: dict[str, dict[str, int]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    facts: list[tuple[str, str]] = field(default_factory=list)  # header facts shown on top
    omitted: int = 0  # arrows past MAX_ARROWS
    inferred_states: bool = False
    arrows: list[Arrow] = field(default_factory=list)  # the arrows among the rows

    def column(self, name: str) -> str:
        if name not in self.columns:
            self.columns.append(name)
        return name

    def add(self, row: Arrow | StateLabel) -> bool:
        """Adds a row unless the arrow cap is reached (then counts it); True if added."""
        if isinstance(row, Arrow) and len(self.arrows) >= MAX_ARROWS:
            self.omitted += 1
            return False
        if isinstance(row, StateLabel) and self.omitted:
            return False
        self.rows.append(row)
        if isinstance(row, Arrow):
            self.arrows.append(row)
        return True


# -- decoding one packet --------------------------------------------------------------------------
@dataclass
class Decoded:
    key: bytes  # what matching compares: the IP packet (or the whole frame for non-IP)
    src: str  # addresses, "" when unknown
    dst: str
    packet: IPv4Packet | None
    segment: TCPSegment | None
    text: str  # label for anything but TCP


def decode(data: bytes, link: str) -> Decoded:
    if link == "ethernet":
        try:
            frame = EthernetFrame.parse(data)
        except MalformedPacket as error:
            return Decoded(data, "", "", None, None, f"malformed Ethernet ({error.reason})")
        if frame.ethertype == ETHERTYPE_ARP:
            try:
                arp = ARPPacket.parse(frame.payload)
            except MalformedPacket as error:
                return Decoded(data, "", "", None, None, f"malformed ARP ({error.reason})")
            text = (
                f"ARP who-has {ip_to_str(arp.target_ip)}"
                if arp.operation == OP_REQUEST
                else f"ARP reply: {ip_to_str(arp.sender_ip)} is here"
            )
            return Decoded(
                data, ip_to_str(arp.sender_ip), ip_to_str(arp.target_ip), None, None, text
            )
        if frame.ethertype != ETHERTYPE_IPV4:
            return Decoded(data, "", "", None, None, f"ethertype 0x{frame.ethertype:04x}")
        data = bytes(frame.payload)
    try:
        packet = IPv4Packet.parse(data)
    except MalformedPacket as error:
        return Decoded(data, "", "", None, None, f"malformed IP ({error.reason})")
    src, dst = ip_to_str(packet.src), ip_to_str(packet.dst)
    if packet.protocol == PROTO_TCP and not packet.is_fragment:
        try:
            segment = TCPSegment.parse(
                packet.payload, packet.src, packet.dst, verify_checksum=False
            )
        except MalformedPacket as error:
            return Decoded(data, src, dst, packet, None, f"malformed TCP ({error.reason})")
        return Decoded(data, src, dst, packet, segment, "")
    text = summarize_packet(packet, verify=False)
    if text.startswith("IP ") and ": " in text:
        text = text.split(": ", 1)[1]
    return Decoded(data, src, dst, packet, None, text)


class SequenceBases:
    """Relative sequence numbers per direction, as tcpdump (bounded)."""

    def __init__(self) -> None:
        self.bases: dict[tuple[int, int, int, int], int] = {}

    def label(self, packet: IPv4Packet, segment: TCPSegment) -> str:
        key = (packet.src, segment.src_port, packet.dst, segment.dst_port)
        if segment.flags & SYN or key not in self.bases:
            if key not in self.bases and len(self.bases) >= 4096:
                del self.bases[next(iter(self.bases))]
            self.bases[key] = segment.seq
        seq_base = self.bases[key]
        ack_base = self.bases.get((packet.dst, segment.dst_port, packet.src, segment.src_port), 0)
        flags = " ".join(name for bit, name in _FLAG_NAMES if segment.flags & bit) or "none"
        start = (segment.seq - seq_base) & MASK
        length = len(segment.payload)
        parts = [flags, f"seq {start}"]
        if segment.flags & ACK:
            parts.append(f"ack {(segment.ack - ack_base) & MASK}")
        parts += [f"len {length}", f"win {segment.window}"]
        if segment.sack_blocks:  # relative, like seq and ack: what the receiver holds past ack
            blocks = " ".join(
                f"{(left - ack_base) & MASK}-{(right - ack_base) & MASK}"
                for left, right in segment.sack_blocks
            )
            parts.append(f"sack {blocks}")
        return "  ".join(parts)


def _label(decoded: Decoded, bases: SequenceBases) -> str:
    if decoded.segment is not None and decoded.packet is not None:
        ports = f"{decoded.segment.src_port}>{decoded.segment.dst_port}"
        return f"{bases.label(decoded.packet, decoded.segment)}  ({ports})"
    return decoded.text


def _connection_name(connection: Any) -> str:
    if isinstance(connection, list) and len(connection) == 4:
        return f"{connection[0]}:{connection[1]} - {connection[2]}:{connection[3]}"
    return str(connection)


# -- from a recording -----------------------------------------------------------------------------
def from_recording(recording: Recording, title: str) -> Ladder:
    ladder = Ladder(title)
    header = recording.header
    ladder.facts = [
        ("source", title),
        ("pystack", str(header.get("pystack", "?"))),
        ("command", " ".join(str(part) for part in header.get("command", []))),
        ("seed", "none" if header.get("seed") is None else str(header.get("seed"))),
    ]
    addresses: dict[str, str] = {}  # role -> its address
    for record in recording.records:
        role, address = record.get("host"), record.get("addr")
        if isinstance(role, str) and isinstance(address, str) and address != "0.0.0.0":
            addresses[role] = address
    roles = sorted({str(r["host"]) for r in recording.records if isinstance(r.get("host"), str)})
    names = {role: f"{role} {addresses.get(role, '')}".strip() for role in roles}
    by_address = {address: names[role] for role, address in addresses.items()}
    for role in roles:
        ladder.column(names[role])

    def column_of(address: str, this: str) -> str:
        """The column at the other end of a packet ``this`` host sent or received: the host
        with that address, else (a broadcast, a gratuitous ARP, an address not yet known) the
        one other host recorded, else a column of its own for the address."""
        if address in by_address and by_address[address] != names[this]:
            return ladder.column(by_address[address])
        others = [names[r] for r in roles if r != this]
        if len(others) == 1:
            return others[0]
        return ladder.column(address or "?")

    bases = SequenceBases()
    pending: dict[bytes, deque[Arrow]] = {}  # sent, not yet arrived nor dropped
    pending_count = 0
    corrupted: list[tuple[bytes, Arrow]] = []  # sent and corrupted on the way
    duplicated: dict[bytes, Arrow] = {}
    last_in: dict[str, tuple[bytes, Arrow]] = {}  # per host: the packet being processed
    for record in recording.records:
        kind, t, role = record.get("kind"), float(record["t"]), record.get("host")
        if not isinstance(role, str):
            role = "host"
            if kind in ("header", "end", "truncated") and role not in names:
                role = next(iter(names), role)  # a line of no host: it needs no column
        if role not in names:
            names[role] = ladder.column(role)
        if kind in ("packet", "drop", "impairment") and isinstance(record.get("bytes"), str):
            try:
                data = bytes.fromhex(record["bytes"])
            except ValueError:
                ladder.notes.append(f"a record at t={t} has bytes that are not hex")
                continue
            decoded = decode(data, str(record.get("link", "ip")))
            note = str(record.get("note", ""))
            direction = record.get("dir")
            queue = pending.get(decoded.key)
            if kind == "packet" and direction == "out":
                arrow = Arrow(
                    t,
                    names[role],
                    column_of(decoded.dst, role),
                    _label(decoded, bases),
                    "retransmit" if note.startswith("retransmit") else "segment",
                    note,
                )
                if ladder.add(arrow) and pending_count < PENDING_KEPT:
                    pending.setdefault(decoded.key, deque()).append(arrow)
                    pending_count += 1
            elif kind == "packet":  # arrival
                arrow_in: Arrow | None = None
                if queue:
                    arrow_in = queue.popleft()
                    pending_count -= 1
                elif decoded.key in duplicated:
                    first = duplicated.pop(decoded.key)
                    arrow_in = Arrow(t, first.src, first.dst, first.label, first.kind, "duplicate")
                    ladder.add(arrow_in)
                else:
                    arrow_in = _corrupted_match(corrupted, decoded.key)
                    if arrow_in is None:
                        arrow_in = Arrow(
                            t, column_of(decoded.src, role), names[role], _label(decoded, bases)
                        )
                        arrow_in.note = note
                        ladder.add(arrow_in)
                arrow_in.arrival = t
                last_in[role] = (decoded.key, arrow_in)
            elif kind == "drop":
                reason = str(record.get("reason", "drop"))
                if queue:  # dropped before it arrived: the impairment or the link
                    lost = queue.popleft()
                    pending_count -= 1
                    lost.kind, lost.dropped = "lost", reason
                    lost.note = "; ".join(n for n in (lost.note, note) if n)
                elif role in last_in and last_in[role][0] == decoded.key:
                    last_in[role][1].dropped = reason
                else:
                    arrow = Arrow(
                        t,
                        column_of(decoded.src, role) if direction == "in" else names[role],
                        names[role] if direction == "in" else column_of(decoded.dst, role),
                        _label(decoded, bases),
                        "lost",
                        note,
                        reason,
                    )
                    ladder.add(arrow)
            elif queue:  # the impairment changed a frame that goes on
                target = queue[0]
                target.note = "; ".join(n for n in (target.note, note) if n)
                if note.startswith("corrupted"):
                    queue.popleft()
                    pending_count -= 1
                    if len(corrupted) < 1000:
                        corrupted.append((decoded.key, target))
                elif note.startswith("duplicated"):
                    duplicated[decoded.key] = target
        elif kind == "state":
            connection = record.get("connection")
            ladder.add(
                StateLabel(
                    t,
                    names[role],
                    str(record.get("new", "?")),
                    str(record.get("cause", "")),
                    _connection_name(connection),
                )
            )
        elif kind == "tcp":
            name = f"{role}: {_connection_name(record.get('connection'))}"
            series = ladder.series.setdefault(name, Series(name))
            series.points.append((t, record))
        elif kind == "counters":
            counters = record.get("counters")
            if isinstance(counters, dict):
                ladder.counters[names[role]] = {str(k): int(v) for k, v in counters.items()}
        elif kind == "truncated":
            ladder.notes.append(str(record.get("note", "the recording stopped at its limit")))
    if recording.unread:
        ladder.notes.append(f"{recording.unread} records past the first ones were not read")
    _note_cap(ladder)
    return ladder


def _corrupted_match(corrupted: list[tuple[bytes, Arrow]], key: bytes) -> Arrow | None:
    """The corrupted frame ``key`` arrives: the sent one it differs from by a bit or so."""
    for index, (original, arrow) in enumerate(corrupted):
        if len(original) == len(key):
            differing = sum(1 for a, b in zip(original, key, strict=True) if a != b)
            if differing <= 2:
                del corrupted[index]
                return arrow
    return None


def _note_cap(ladder: Ladder) -> None:
    if ladder.omitted:
        ladder.notes.append(
            f"the ladder shows the first {MAX_ARROWS} packets; {ladder.omitted} more are not drawn"
        )


# -- from a capture -------------------------------------------------------------------------------
class _Inference:
    """TCP states from the flags a capture shows, per connection end."""

    def __init__(self, ladder: Ladder) -> None:
        self.ladder = ladder
        self.states: dict[tuple[str, int, str, int], str] = {}
        self.fin_seq: dict[tuple[str, int, str, int], int] = {}
        self.sent_end: dict[tuple[str, int, str, int], int] = {}  # highest seq sent (retransmits)

    def set(self, end: tuple[str, int, str, int], state: str, t: float, cause: str) -> None:
        if self.states.get(end) == state:
            return
        if len(self.states) > 20000:
            self.states.clear()
        self.states[end] = state
        name = f"{end[0]}:{end[1]} - {end[2]}:{end[3]}"
        self.ladder.add(StateLabel(t, end[0], state, cause, name))

    def segment(self, t: float, src: str, dst: str, segment: TCPSegment) -> bool:
        """Updates both ends' states; True if the segment repeats data or a SYN/FIN."""
        sender = (src, segment.src_port, dst, segment.dst_port)
        receiver = (dst, segment.dst_port, src, segment.src_port)
        flags = segment.flags
        length = len(segment.payload) + (1 if flags & SYN else 0) + (1 if flags & FIN else 0)
        end = (segment.seq + length) & MASK
        seen = self.sent_end.get(sender)
        repeat = bool(length and seen is not None and ((seen - end) & MASK) < 0x80000000)
        if seen is None or ((end - seen) & MASK) < 0x80000000:
            self.sent_end[sender] = end
        ours, theirs = self.states.get(sender), self.states.get(receiver)
        if flags & RST:
            if ours not in (None, "CLOSED"):
                self.set(sender, "CLOSED", t, "sent RST")
            if theirs not in (None, "CLOSED"):
                self.set(receiver, "CLOSED", t, "RST received")
            return repeat
        if flags & SYN and not flags & ACK:
            self.set(sender, "SYN-SENT", t, "sent SYN")
            self.set(receiver, "SYN-RECEIVED", t, "SYN received")
        elif flags & SYN:
            self.set(sender, "SYN-RECEIVED", t, "sent SYN-ACK")
            self.set(receiver, "ESTABLISHED", t, "SYN-ACK received")
        elif flags & ACK:
            fin = self.fin_seq.get(receiver)
            if theirs == "SYN-RECEIVED":
                self.set(receiver, "ESTABLISHED", t, "its SYN acknowledged")
            elif fin is not None and segment.ack == fin:
                after = {"FIN-WAIT-1": "FIN-WAIT-2", "CLOSING": "TIME-WAIT", "LAST-ACK": "CLOSED"}
                if theirs in after:
                    self.set(receiver, after[theirs], t, "its FIN acknowledged")
        if flags & FIN:
            self.fin_seq[sender] = end
            ours = self.states.get(sender)
            if ours == "CLOSE-WAIT":
                self.set(sender, "LAST-ACK", t, "sent FIN")
            elif ours not in ("FIN-WAIT-1", "LAST-ACK", "CLOSING", "TIME-WAIT"):
                self.set(sender, "FIN-WAIT-1", t, "sent FIN")
            theirs = self.states.get(receiver)
            if theirs == "FIN-WAIT-1":
                self.set(receiver, "CLOSING", t, "FIN received")
            elif theirs == "FIN-WAIT-2":
                self.set(receiver, "TIME-WAIT", t, "FIN received")
            elif theirs not in ("CLOSING", "TIME-WAIT", "LAST-ACK", "CLOSE-WAIT"):
                self.set(receiver, "CLOSE-WAIT", t, "FIN received")
        return repeat


def from_capture(packets: Iterable[Captured], skipped: int, title: str) -> Ladder:
    ladder = Ladder(title, inferred_states=True)
    ladder.facts = [("source", title), ("kind", "packet capture (states inferred from flags)")]
    bases = SequenceBases()
    inference = _Inference(ladder)
    origin: float | None = None
    count = 0
    for captured in packets:
        count += 1
        if origin is None:
            origin = captured.time
        t = captured.time - origin
        decoded = decode(captured.data, captured.link)
        src = ladder.column(decoded.src or "?")
        dst = ladder.column(decoded.dst or "?")
        kind, note = "segment", ""
        if decoded.segment is not None and inference.segment(t, src, dst, decoded.segment):
            kind, note = "retransmit", "retransmission (its data was seen before)"
        ladder.add(Arrow(t, src, dst, _label(decoded, bases), kind, note, arrival=t))
    ladder.facts.append(("packets", str(count)))
    if skipped:
        ladder.notes.append(f"{skipped} packets that are neither IPv4 nor ARP are not shown")
    _note_cap(ladder)
    return ladder


# -- text -----------------------------------------------------------------------------------------
TEXT_GAP = 76  # characters between two columns


def text_ladder(ladder: Ladder) -> str:
    """The plain ladder ``pystack show --text`` prints: a column per host, ``------>`` and
    ``<------`` arrows with their labels, ``--X`` for a lost one, ``= STATE`` at the side."""
    columns = ladder.columns or ["?"]
    position = {name: 10 + index * TEXT_GAP for index, name in enumerate(columns)}
    width = 10 + (len(columns) - 1) * TEXT_GAP + 1
    last = columns[-1]
    starts = {
        (
            position[name] + 1 - len(name) if name == last and len(columns) > 1 else position[name]
        ): name
        for name in columns
    }
    out = [_text_line(starts, width)]
    for row in ladder.rows:
        line = [" "] * (width + 2)
        for x in position.values():
            line[x] = "|"
        stamp = f"{row.time:9.6f}"
        line[: len(stamp)] = stamp
        if isinstance(row, StateLabel):
            x = position[row.column]
            text = f" = {row.state} ({row.cause})" if row.cause else f" = {row.state}"
            if x == max(position.values()) and len(columns) > 1:
                text = f"{row.state} ({row.cause}) = " if row.cause else f"{row.state} = "
                start = x - len(text)
            else:
                start = x + 1
            out.append(_place(line, start, text).rstrip())
            continue
        a, b = position[row.src], position[row.dst]
        if a == b:
            out.append(_place(line, a + 1, f" (to itself) {row.label}").rstrip())
            continue
        left, right = min(a, b), max(a, b)
        inner = right - left - 1
        label = f" {row.label} "
        fits = len(label) <= inner - 8 and row.kind != "lost"
        if row.kind == "lost":  # stops midway with an X
            half = inner // 2
            body = "-" * (half - 1) + "X"
            shaft = list(
                body + " " * (inner - half) if a < b else " " * (inner - half) + body[::-1]
            )
        else:
            shaft = ["-"] * inner
            if fits:
                begin = 3 if a < b else inner - 3 - len(label)
                shaft[begin : begin + len(label)] = label
            if a < b:
                shaft[-1] = ">"
            else:
                shaft[0] = "<"
        line[left + 1 : right] = shaft
        tail = []
        if row.kind == "retransmit" or row.note:
            tail.append(row.note or "retransmit")
        if row.dropped:
            tail.append(f"{'lost' if row.kind == 'lost' else 'dropped'}: {row.dropped}")
        text = "".join(line).rstrip()
        if not fits:
            tail.insert(0, row.label)
        if tail:
            text += "   " + "; ".join(tail)
        out.append(text)
    out += [f"note: {note}" for note in ladder.notes]
    return "\n".join(out) + "\n"


def _text_line(texts: dict[int, str], width: int) -> str:
    line = [" "] * (width + 40)
    line[:4] = "time"
    for x, text in texts.items():
        _place(line, max(5, x), text)
    return "".join(line).rstrip()


def _place(line: list[str], start: int, text: str) -> str:
    start = max(0, start)
    if start + len(text) > len(line):
        line.extend(" " * (start + len(text) - len(line)))
    line[start : start + len(text)] = text
    return "".join(line)
