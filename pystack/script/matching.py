"""What the numbers on a line mean on the wire, and how a segment pystack sent is compared.

The numbers are relative, as in packetdrill:

- the peer's sequence numbers (``seq`` on ``<`` lines; ``ack`` and SACK blocks on ``>`` lines)
  are the peer's own, shifted on the wire by ``peer_offset`` (``2**32 - 100`` exercises the wrap);
- pystack's sequence numbers (``seq`` on ``>`` lines; ``ack`` and SACK blocks on ``<`` lines)
  count from pystack's ISN, learned from each SYN it sends. Before its first SYN the ISN is 0
  (absolute numbers: what a RST answering a stray segment carries);
- ports, windows (as on the wire, unscaled), MSS, window scale and TS values are absolute.

The payload of a ``<`` segment with ``seq S`` and length N is ``pattern(S, N)``: byte i is
``(S + i) & 0xff`` in script numbers, so what pystack delivers to the application can be checked.
UDP datagrams and ICMP echoes have no sequence numbers: their ``(N)`` is ``pattern(0, N)``, and
their ports, identifiers and sequence numbers are absolute.
A ``< icmp`` error quotes pystack's last TCP or UDP packet (up to 548 bytes, as RFC 1812 allows).
Entry points: ``Numbering``, ``inbound_segment``, ``icmp_error``, ``describe``, ``mismatches``,
``pattern``; for UDP and ICMP: ``payload_bytes``, ``inbound_udp``, ``inbound_echo``,
``describe_udp``, ``describe_icmp``, ``udp_mismatches``, ``icmp_mismatches``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from pystack.script.events import (
    ICMP,
    OUTBOUND,
    UDP,
    Echo,
    Field,
    OptionSpec,
    Packet,
    Payload,
    Wildcard,
)
from pystack.script.formatting import format_flags, format_option, format_payload
from pystack.wire import icmpv4, tcp
from pystack.wire.icmpv4 import ICMPv4Message
from pystack.wire.tcp import TCPOption, TCPSegment
from pystack.wire.udp import UDPDatagram

MASK = (1 << 32) - 1
DEFAULT_WINDOW = 65535
_CYCLE = bytes(range(256))
QUOTE_LIMIT = 548  # bytes of pystack's packet an ICMP error quotes (576 - IP and ICMP headers)
_ICMP_CODES = {
    "net": icmpv4.NET_UNREACHABLE,
    "host": icmpv4.HOST_UNREACHABLE,
    "protocol": icmpv4.PROTOCOL_UNREACHABLE,
    "port": icmpv4.PORT_UNREACHABLE,
    "need-frag": icmpv4.FRAGMENTATION_NEEDED,
    "admin-prohibited": icmpv4.ADMIN_PROHIBITED,
    "ttl": icmpv4.TTL_EXCEEDED,
    "reassembly": icmpv4.REASSEMBLY_TIME_EXCEEDED,
}


def pattern(seq: int, length: int) -> bytes:
    """``length`` bytes whose byte i is ``(seq + i) & 0xff``."""
    start = seq & 0xFF
    return (_CYCLE * (length // 256 + 2))[start : start + length]


class Numbering:
    """Translation between script numbers and wire numbers for one script run."""

    __slots__ = ("local_isn", "peer_offset")

    def __init__(self, peer_offset: int = 0, local_isn: int = 0) -> None:
        self.peer_offset = peer_offset & MASK
        self.local_isn = local_isn & MASK

    def peer_to_wire(self, number: int) -> int:
        return (number + self.peer_offset) & MASK

    def wire_to_peer(self, number: int) -> int:
        return (number - self.peer_offset) & MASK

    def local_to_wire(self, number: int) -> int:
        return (number + self.local_isn) & MASK

    def wire_to_local(self, number: int) -> int:
        return (number - self.local_isn) & MASK


def _int(field: Field | None, default: int) -> int:
    if field is None:
        return default
    if isinstance(field, Wildcard):
        raise ValueError(f"{field.value!r} has no value on a '<' line")
    return field


def inbound_segment(
    packet: Packet, numbering: Numbering, ports: tuple[int, int], latest_tsval: int | None
) -> TCPSegment:
    """The segment a ``<`` line puts on the wire; ``latest_tsval`` is pystack's (for ``ecr *``)."""
    seq, length = _int(packet.seq, 0), _int(packet.length, 0)
    ack = numbering.local_to_wire(_int(packet.ack, 0)) if packet.ack is not None else 0
    options = packet.options if isinstance(packet.options, tuple) else ()
    return TCPSegment(
        src_port=ports[0],
        dst_port=ports[1],
        seq=numbering.peer_to_wire(seq),
        ack=ack,
        flags=packet.flags,
        window=_int(packet.window, DEFAULT_WINDOW),
        payload=pattern(seq, length),
        options=tuple(_wire_option(option, numbering, latest_tsval) for option in options),
        urgent=_int(packet.urgent, 0),
    )


def _wire_option(option: OptionSpec, numbering: Numbering, latest_tsval: int | None) -> TCPOption:
    kind, values = option.kind, option.values
    if kind in (tcp.OPT_MSS, tcp.OPT_WSCALE):
        return TCPOption(kind, _int(values[0], 0))
    if kind == tcp.OPT_TIMESTAMP:
        ecr = values[1]
        if isinstance(ecr, Wildcard):
            if latest_tsval is None:
                raise ValueError("'ecr *' but pystack has sent no TS val yet")
            ecr = latest_tsval
        return tcp.timestamp_option(_int(values[0], 0), ecr)
    if kind == tcp.OPT_SACK:
        edges = [numbering.local_to_wire(_int(value, 0)) for value in values]
        return tcp.sack_option(tuple(zip(edges[0::2], edges[1::2], strict=True)))
    if kind in (tcp.OPT_NOP, tcp.OPT_SACK_PERMITTED):
        return TCPOption(kind)
    return TCPOption(kind, option.raw)


_ICMP_NAMES = {  # (type, code) -> (kind, code name), for showing what pystack sent
    **{(icmpv4.DESTINATION_UNREACHABLE, _ICMP_CODES[name]): ("unreachable", name) for name in (
        "net", "host", "protocol", "port", "need-frag", "admin-prohibited")},
    **{(icmpv4.TIME_EXCEEDED, _ICMP_CODES[name]): ("time-exceeded", name) for name in (
        "ttl", "reassembly")},
}  # fmt: skip
DISPLAY_LIMIT = 64  # payload bytes shown as a string or hex; longer ones only by length


def icmp_error(message: ICMP, packet: bytes) -> ICMPv4Message:
    """The ICMP error of a ``< icmp`` line, quoting ``packet`` (pystack's, as IP bytes)."""
    code, quote = _ICMP_CODES[message.code], packet[:QUOTE_LIMIT]
    if message.kind == "unreachable":
        return ICMPv4Message.destination_unreachable(code, quote, message.mtu or 0)
    return ICMPv4Message.time_exceeded(code, quote)


def describe(
    segment: TCPSegment, numbering: Numbering, direction: str, brief: bool = False
) -> Packet:
    """``segment`` in script numbers, every field filled (for comparing).

    ``brief`` leaves out what a reader does not need: an ack or urgent field of 0 without its
    flag, and an empty option list.
    """
    outbound = direction == OUTBOUND
    to_self = numbering.wire_to_local if outbound else numbering.wire_to_peer
    to_other = numbering.wire_to_peer if outbound else numbering.wire_to_local
    seq, length = to_self(segment.seq), len(segment.payload)
    flags = segment.flags
    quiet_ack = brief and not flags & tcp.ACK and segment.ack == 0
    quiet_urgent = brief and not flags & tcp.URG and segment.urgent == 0
    options = tuple(_script_option(option, to_other) for option in segment.options)
    return Packet(
        direction,
        flags,
        seq,
        (seq + length) & MASK,
        length,
        None if quiet_ack else to_other(segment.ack),
        segment.window,
        None if quiet_urgent else segment.urgent,
        None if brief and not options else options,
    )


def _script_option(option: TCPOption, to_other: Callable[[int], int]) -> OptionSpec:
    kind, value = option.kind, option.value
    if kind in (tcp.OPT_MSS, tcp.OPT_WSCALE) and isinstance(value, int):
        return OptionSpec(kind, (value,))
    if kind == tcp.OPT_TIMESTAMP and isinstance(value, tuple):
        return OptionSpec(kind, (int(value[0]), int(value[1])))
    if kind == tcp.OPT_SACK and isinstance(value, tuple):
        return OptionSpec(kind, tuple(to_other(int(edge)) for block in value for edge in block))
    if kind in (tcp.OPT_NOP, tcp.OPT_SACK_PERMITTED, tcp.OPT_EOL):
        return OptionSpec(kind)
    return OptionSpec(kind, (), value if isinstance(value, bytes) else b"")


_FIELDS = (
    ("seq", "seq"),
    ("end", "end"),
    ("length", "length"),
    ("ack", "ack"),
    ("window", "win"),
    ("urgent", "urg"),
)


def mismatches(
    expected: Packet,
    actual: Packet,
    latest_peer_tsval: int | None,
    *,
    exact_layout: bool = True,
    exact_windows: bool | None = None,
) -> list[str]:
    """How ``actual`` (from ``describe``) differs from the ``>`` line ``expected``; [] if it fits.

    ``*`` and fields the line leaves out match anything; ``ecr $`` must be the peer's latest TS val.
    With ``exact_layout`` False (the kernel target) what another stack sets by its own
    configuration is compared by meaning only: a window is open or closed (a nonzero ``win``
    matches any nonzero window, ``win 0`` only 0), options are compared without their order
    and padding (NOP, EOL), and a window scale option's shift is not compared.
    ``exact_windows`` (default: ``exact_layout``) compares window numbers as written all the same.
    """
    if exact_windows is None:
        exact_windows = exact_layout
    problems = []
    if expected.flags != actual.flags:
        wanted, got = format_flags(expected.flags), format_flags(actual.flags)
        problems.append(f"flags: expected {wanted}, got {got}")
    for attribute, name in _FIELDS:
        wanted_field, got_field = getattr(expected, attribute), getattr(actual, attribute)
        if not isinstance(wanted_field, int) or wanted_field == got_field:
            continue
        if not exact_windows and attribute == "window" and wanted_field and got_field:
            continue  # both open: the size is the receiver's configuration
        problems.append(f"{name}: expected {wanted_field}, got {got_field}")
    if isinstance(expected.options, tuple) and isinstance(actual.options, tuple):
        wanted_options, got_options = expected.options, actual.options
        if not exact_layout:
            wanted_options, got_options = _by_kind(wanted_options, True), _by_kind(got_options)
        if not _options_match(wanted_options, got_options, latest_peer_tsval):
            wanted_text = ",".join(format_option(o) for o in wanted_options)
            got_text = ",".join(format_option(o) for o in got_options)
            latest = (
                f" (the peer's latest TS val is {latest_peer_tsval})" if "$" in wanted_text else ""
            )
            how = "" if exact_layout else " (compared by kind, without padding)"
            problems.append(f"options: expected <{wanted_text}>, got <{got_text}>{latest}{how}")
    return problems


_PADDING = (tcp.OPT_NOP, tcp.OPT_EOL)


def _by_kind(options: tuple[OptionSpec, ...], expected: bool = False) -> tuple[OptionSpec, ...]:
    """The options without padding, in order of kind (a stable sort: repeated kinds keep theirs).

    In ``expected`` options a window scale's shift becomes ``*``: the shift a host offers
    follows from its buffer sizes (RFC 7323 2.3), so only whether it offers one is compared.
    """
    kept = sorted((o for o in options if o.kind not in _PADDING), key=lambda o: o.kind)
    if expected:
        kept = [replace(o, values=(Wildcard.ANY,)) if o.kind == tcp.OPT_WSCALE else o for o in kept]
    return tuple(kept)


def _options_match(
    expected: tuple[OptionSpec, ...], actual: tuple[OptionSpec, ...], latest: int | None
) -> bool:
    if len(expected) != len(actual):
        return False
    for wanted, got in zip(expected, actual, strict=True):
        if wanted.kind != got.kind or wanted.raw != got.raw:
            return False
        if len(wanted.values) != len(got.values):
            return False
        for wanted_value, got_value in zip(wanted.values, got.values, strict=True):
            if wanted_value is Wildcard.ANY:
                continue
            target = latest if wanted_value is Wildcard.LATEST else wanted_value
            if target != got_value:
                return False
    return True


# UDP and ICMP ---------------------------------------------------------------------------------
def payload_bytes(payload: Payload) -> bytes:
    """The bytes a payload stands for: ``pattern(0, N)`` for ``(N)``, else its data."""
    if payload.data is not None:
        return payload.data
    return pattern(0, _int(payload.length, 0))


def inbound_udp(line: UDP) -> UDPDatagram:
    """The datagram a ``< udp`` line puts on the wire."""
    source, destination = _int(line.source_port, 0), _int(line.destination_port, 0)
    return UDPDatagram(source, destination, payload_bytes(line.payload))


def inbound_echo(line: Echo) -> ICMPv4Message:
    """The echo request or reply of a ``< icmp echo`` line."""
    identifier, sequence = _int(line.identifier, 0), _int(line.sequence, 0)
    make = ICMPv4Message.echo_reply if line.reply else ICMPv4Message.echo_request
    return make(identifier, sequence, payload_bytes(line.payload))


def describe_payload(data: bytes) -> Payload:
    """``data`` as a line would write it: ``(N)`` if it is the pattern, else text or hex."""
    if data == pattern(0, len(data)):
        return Payload(len(data))
    if len(data) <= DISPLAY_LIMIT:
        try:
            text = data.decode()
        except UnicodeDecodeError:
            text = None
        if text is not None and text.isprintable():
            return Payload(len(data), data, text=True)
        return Payload(len(data), data)
    return Payload(len(data))  # too long to show: its length (payload_problem says more)


def describe_udp(datagram: UDPDatagram, direction: str) -> UDP:
    payload = describe_payload(datagram.payload)
    return UDP(direction, datagram.src_port, datagram.dst_port, payload)


def describe_icmp(message: ICMPv4Message, direction: str) -> ICMP | Echo | None:
    """An ICMP message as a line, None for a type or code the notation has no name for."""
    if message.type in (icmpv4.ECHO_REQUEST, icmpv4.ECHO_REPLY):
        reply = message.type == icmpv4.ECHO_REPLY
        payload = describe_payload(message.payload)
        return Echo(direction, reply, message.identifier, message.sequence, payload)
    names = _ICMP_NAMES.get((message.type, message.code))
    if names is None:
        return None
    kind, code = names
    mtu = message.next_hop_mtu if code == "need-frag" else None
    return ICMP(kind, code, mtu, direction)


def payload_problem(expected: Payload, actual: bytes) -> str | None:
    """How ``actual`` differs from the payload a line expects, or None."""
    if expected.length is Wildcard.ANY:
        return None
    wanted = payload_bytes(expected)
    if actual == wanted:
        return None
    if len(actual) != len(wanted):
        return f"payload: {len(actual)} bytes, expected {len(wanted)}"
    index = next(i for i, (a, b) in enumerate(zip(actual, wanted, strict=True)) if a != b)
    shown = format_payload(expected, True)
    return f"payload: byte {index} is {actual[index]}, expected {wanted[index]} (of {shown})"


def udp_mismatches(expected: UDP, actual: UDPDatagram) -> list[str]:
    """How a datagram pystack sent differs from a ``> udp`` line; [] if it fits."""
    problems = []
    for name, wanted, got in (
        ("source port", expected.source_port, actual.src_port),
        ("destination port", expected.destination_port, actual.dst_port),
    ):
        if isinstance(wanted, int) and wanted != got:
            problems.append(f"{name}: expected {wanted}, got {got}")
    problem = payload_problem(expected.payload, actual.payload)
    return [*problems, problem] if problem else problems


def icmp_mismatches(expected: ICMP | Echo, actual: ICMPv4Message) -> list[str]:
    """How an ICMP message pystack sent differs from a ``> icmp`` line; [] if it fits."""
    shown = describe_icmp(actual, OUTBOUND)
    if isinstance(expected, Echo):
        if not isinstance(shown, Echo) or shown.reply != expected.reply:
            kind = "echo-reply" if expected.reply else "echo"
            return [f"type: expected an {kind}, got ICMP type {actual.type} code {actual.code}"]
        problems = [
            f"{name}: expected {wanted}, got {got}"
            for name, wanted, got in (
                ("id", expected.identifier, actual.identifier),
                ("seq", expected.sequence, actual.sequence),
            )
            if isinstance(wanted, int) and wanted != got
        ]
        problem = payload_problem(expected.payload, actual.payload)
        return [*problems, problem] if problem else problems
    if not isinstance(shown, ICMP) or (shown.kind, shown.code) != (expected.kind, expected.code):
        got = f"{shown.kind} {shown.code}" if isinstance(shown, ICMP) else f"type {actual.type}"
        return [f"type: expected {expected.kind} {expected.code}, got {got}"]
    if expected.mtu is not None and expected.mtu != shown.mtu:
        return [f"mtu: expected {expected.mtu}, got {shown.mtu}"]
    return []
