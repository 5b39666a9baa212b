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
A ``< icmp`` line quotes pystack's last TCP packet (up to 548 bytes, as RFC 1812 allows).
Entry points: ``Numbering``, ``inbound_segment``, ``icmp_error``, ``describe``, ``mismatches``,
``pattern``.
"""

from __future__ import annotations

from collections.abc import Callable

from pystack.script.events import ICMP, OUTBOUND, Field, OptionSpec, Packet, Wildcard
from pystack.script.formatting import format_flags, format_option
from pystack.wire import icmpv4, tcp
from pystack.wire.icmpv4 import ICMPv4Message
from pystack.wire.tcp import TCPOption, TCPSegment

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


def mismatches(expected: Packet, actual: Packet, latest_peer_tsval: int | None) -> list[str]:
    """How ``actual`` (from ``describe``) differs from the ``>`` line ``expected``; [] if it fits.

    ``*`` and fields the line leaves out match anything; ``ecr $`` must be the peer's latest TS val.
    """
    problems = []
    if expected.flags != actual.flags:
        wanted, got = format_flags(expected.flags), format_flags(actual.flags)
        problems.append(f"flags: expected {wanted}, got {got}")
    for attribute, name in _FIELDS:
        wanted_field, got_field = getattr(expected, attribute), getattr(actual, attribute)
        if isinstance(wanted_field, int) and wanted_field != got_field:
            problems.append(f"{name}: expected {wanted_field}, got {got_field}")
    if isinstance(expected.options, tuple) and isinstance(actual.options, tuple):
        if not _options_match(expected.options, actual.options, latest_peer_tsval):
            wanted_text = ",".join(format_option(o) for o in expected.options)
            got_text = ",".join(format_option(o) for o in actual.options)
            latest = (
                f" (the peer's latest TS val is {latest_peer_tsval})" if "$" in wanted_text else ""
            )
            problems.append(f"options: expected <{wanted_text}>, got <{got_text}>{latest}")
    return problems


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
