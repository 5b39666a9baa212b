"""The formatter of the script notation (``notation.py`` tells the grammar and parses).

Every function returns text that ``notation.parse_line`` reads back into the same value, so a
failure message can show what pystack actually sent in the very notation of the script.
Entry points: ``format_line``, ``format_event``, ``format_packet``, ``format_time``.
"""

from __future__ import annotations

import json

from pystack.script import events as ev
from pystack.script.events import Field, OptionSpec, Packet, TimeSpec, Wildcard
from pystack.wire import tcp

FLAG_LETTERS = (
    ("S", tcp.SYN),
    ("F", tcp.FIN),
    ("R", tcp.RST),
    ("P", tcp.PSH),
    ("U", tcp.URG),
    ("E", tcp.ECE),
    ("W", tcp.CWR),
    (".", tcp.ACK),
)


def format_line(time: TimeSpec | None, event: ev.Event) -> str:
    """A line of notation; ``parse_line(format_line(t, e))`` gives back ``t`` and ``e``."""
    text = format_event(event)
    return text if time is None else f"{format_time(time)} {text}"


def format_time(time: TimeSpec) -> str:
    if time.start is None:
        return "*"
    sign = "+" if time.relative else ""
    text = sign + format_seconds(time.start)
    return text if time.end is None else f"{text}~{sign}{format_seconds(time.end)}"


def format_seconds(seconds: float) -> str:
    return f"{seconds:.9f}".rstrip("0").rstrip(".")


def format_event(event: ev.Event) -> str:
    if isinstance(event, Packet):
        return format_packet(event)
    if isinstance(event, ev.ICMP):
        mtu = f" mtu {event.mtu}" if event.mtu is not None else ""
        quote = f" of {event.quote}" if event.quote is not None else ""
        return f"{event.direction} icmp {event.kind} {event.code}{mtu}{quote}"
    if isinstance(event, ev.Echo):
        kind = "echo-reply" if event.reply else "echo"
        numbers = f"id {_value(event.identifier)} seq {_value(event.sequence)}"
        return f"{event.direction} icmp {kind} {numbers} {format_payload(event.payload, True)}"
    if isinstance(event, ev.UDP):
        ports = f"{_value(event.source_port)}>{_value(event.destination_port)}"
        return f"{event.direction} udp {ports} {format_payload(event.payload, True)}"
    if isinstance(event, ev.RawPacket):
        return f"< raw {event.data.hex()}"
    if isinstance(event, ev.Call):
        suffix = f" = {event.error}" if event.error else ""
        return _format_call(event) + suffix
    if isinstance(event, ev.Tolerance):
        return f"tolerance {format_seconds(event.seconds)}"
    if isinstance(event, ev.Ports):
        return f"ports {event.peer} {event.local}"
    if isinstance(event, ev.EndStrict):
        return f"end strict {format_seconds(event.seconds)}"
    if isinstance(event, ev.Setting):
        return f"set {event.name} {event.value}"
    if isinstance(event, ev.IgnoreOutbound):
        return "ignore outbound"
    if isinstance(event, ev.ExactWindows):
        return "exact windows"
    if isinstance(event, ev.Serve):
        return f"serve {event.service} {event.port}"
    return "expect " + _format_expectation(event)


def _format_call(call: ev.Call) -> str:
    if isinstance(call, ev.Listen):
        return f"listen {call.port}" + (
            f" backlog {call.backlog}" if call.backlog is not None else ""
        )
    if isinstance(call, ev.Connect):
        local = f" from {call.local_port}" if call.local_port is not None else ""
        return f"connect {call.address}:{call.port}{local}"
    if isinstance(call, ev.Accept):
        return "accept ?" if call.optional else "accept"
    if isinstance(call, ev.Write):
        return f"write {_string(call.text) if call.text is not None else call.length}"
    if isinstance(call, ev.Read):
        if call.length is not None and not call.exact:
            return f"read upto {call.length}"
        return f"read {'eof' if call.length is None else call.length}"
    if isinstance(call, ev.NoDelay):
        return f"nodelay {'on' if call.on else 'off'}"
    if isinstance(call, ev.UDPBind):
        return f"udp bind {call.port}"
    if isinstance(call, ev.UDPConnect):
        return f"udp connect {call.address}:{call.port}"
    if isinstance(call, ev.UDPSendTo):
        data = format_payload(call.payload, False)
        if call.address is None:
            return f"udp send {data}"
        return f"udp sendto {call.address}:{call.port} {data}"
    if isinstance(call, ev.UDPRecvFrom):
        source = f" from {call.source[0]}:{call.source[1]}" if call.source else ""
        return f"udp recvfrom {format_payload(call.payload, False)}{source}"
    if isinstance(call, ev.UDPClose):
        return "udp close"
    assert isinstance(call, ev.Simple)
    return call.name


def _format_expectation(event: ev.Expectation) -> str:
    if isinstance(event, ev.ExpectState):
        return f"state {event.state.value}"
    if isinstance(event, ev.ExpectError):
        return f"error {event.name or 'none'}"
    if isinstance(event, ev.ExpectCounter):
        return f"counter {event.name} {event.value}"
    if isinstance(event, ev.ExpectDrop):
        return f"drop {event.reason} {event.value}"
    if isinstance(event, ev.ExpectInfo):
        return f"info {event.key} {event.value}"
    if isinstance(event, ev.ExpectInvariants):
        return "invariants"
    return "nothing"


def format_payload(payload: ev.Payload, packet: bool) -> str:
    """``(N)`` on packet lines / ``N`` in calls (pattern bytes or ``*``), a string, or hex."""
    if payload.data is None:
        length = _value(payload.length)
        return f"({length})" if packet else length
    if payload.text:
        return _string(payload.data.decode())
    if not payload.data:
        return "(0)" if packet else "0"
    return f"hex {payload.data.hex()}"


def _string(text: str) -> str:
    """A double-quoted string the parser reads back. Non-ASCII characters stay as they are:
    escaping one beyond the BMP would give a surrogate pair, which reads back as two lone
    surrogates (not UTF-8)."""
    return json.dumps(text, ensure_ascii=False)


def format_flags(flags: int) -> str:
    return "".join(letter for letter, bit in FLAG_LETTERS if flags & bit) or "-"


def _value(field: Field) -> str:
    return field.value if isinstance(field, Wildcard) else str(field)


def format_packet(packet: Packet) -> str:
    parts = [
        packet.direction,
        format_flags(packet.flags),
        f"{_value(packet.seq)}:{_value(packet.end)}({_value(packet.length)})",
    ]
    for keyword, field in (("ack", packet.ack), ("win", packet.window), ("urg", packet.urgent)):
        if field is not None:
            parts.append(f"{keyword} {_value(field)}")
    if isinstance(packet.options, Wildcard):
        parts.append("<...>")
    elif packet.options is not None:
        parts.append("<" + ",".join(format_option(option) for option in packet.options) + ">")
    return " ".join(parts)


def format_option(option: OptionSpec) -> str:
    kind, values = option.kind, [_value(value) for value in option.values]
    if kind in _OPTION_NAMES:
        return _OPTION_NAMES[kind]
    if kind == tcp.OPT_MSS:
        return f"mss {values[0]}"
    if kind == tcp.OPT_WSCALE:
        return f"wscale {values[0]}"
    if kind == tcp.OPT_TIMESTAMP:
        return f"TS val {values[0]} ecr {values[1]}"
    if kind == tcp.OPT_SACK:
        return "sack " + " ".join(
            f"{a}:{b}" for a, b in zip(values[0::2], values[1::2], strict=True)
        )
    return f"opt {kind} {option.raw.hex()}".rstrip()


_OPTION_NAMES = {tcp.OPT_NOP: "nop", tcp.OPT_EOL: "eol", tcp.OPT_SACK_PERMITTED: "sackOK"}
