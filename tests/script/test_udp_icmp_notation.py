"""The UDP, ICMP echo, outbound ICMP and ``set`` lines of the notation: parse, format, errors."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pystack.script import events as ev
from pystack.script.events import INBOUND, OUTBOUND, Payload, Wildcard
from pystack.script.formatting import format_event
from pystack.script.matching import (
    DISPLAY_LIMIT,
    describe_icmp,
    describe_udp,
    pattern,
    payload_bytes,
)
from pystack.script.notation import ScriptSyntaxError, format_line, parse_line
from pystack.wire.icmpv4 import ICMPv4Message
from pystack.wire.udp import UDPDatagram


@pytest.mark.parametrize(
    "text",
    [
        "+0 < udp 9000>8080 (10)",
        "0.5 > udp 8080>9000 (*)",
        "+0 > udp *>9000 (3)",
        '+0 < udp 9000>53 "hello # not a comment"',
        "+0 < udp 9000>53 hex 00ff10",
        "+0 < udp 9000>53 (0)",
        "+0 < icmp echo id 7 seq 1 (56)",
        "+0 > icmp echo-reply id * seq * (*)",
        '+0 > icmp echo-reply id 7 seq 1 "ping"',
        "+0 > icmp unreachable port",
        "+0 > icmp unreachable need-frag mtu 1200",
        "+0 < icmp unreachable port of udp",
        "+0 < icmp time-exceeded ttl of tcp",
        "+0 < icmp unreachable need-frag mtu 576 of tcp",
        "set sack off",
        "set initial_rto 0.5",
        "+0 udp bind 8080",
        "+0 udp bind 0",
        "+0 udp connect 10.0.0.1:9000",
        "+0 udp sendto 10.0.0.1:9000 10",
        '+0 udp sendto 10.0.0.1:9000 "hi"',
        "+0 udp send hex 0102",
        "+0 udp recvfrom 10 from 10.0.0.1:9000",
        "+0 udp recvfrom * = EAGAIN",
        "+0 udp close",
    ],
)
def test_canonical_lines_format_back_to_themselves(text: str) -> None:
    line = parse_line(text)
    assert line is not None
    assert format_line(line.time, line.event) == text


def test_udp_line_values() -> None:
    line = parse_line('< udp 9000>8080 "hi"')
    assert line is not None
    assert line.event == ev.UDP(INBOUND, 9000, 8080, Payload(2, b"hi", text=True))
    line = parse_line("> udp *>9000 (*)")
    assert line is not None
    assert line.event == ev.UDP(OUTBOUND, Wildcard.ANY, 9000, Payload(Wildcard.ANY))


def test_echo_and_error_values() -> None:
    echo = parse_line("< icmp echo id 1 seq 2 hex 0a0b")
    assert echo is not None
    assert echo.event == ev.Echo(INBOUND, False, 1, 2, Payload(2, b"\n\x0b"))
    error = parse_line("< icmp unreachable port of udp")
    assert error is not None
    assert error.event == ev.ICMP("unreachable", "port", None, INBOUND, "udp")
    sent = parse_line("> icmp unreachable port")
    assert sent is not None and sent.event == ev.ICMP("unreachable", "port", None, OUTBOUND)


def test_udp_call_values() -> None:
    send = parse_line("udp send 4")
    assert send is not None and send.event == ev.UDPSendTo(None, None, Payload(4))
    receive = parse_line('udp recvfrom "x" from 10.0.0.1:53 = ECONNREFUSED')
    assert receive is not None
    assert receive.event == ev.UDPRecvFrom(
        Payload(1, b"x", text=True), ("10.0.0.1", 53), error="ECONNREFUSED"
    )


def test_a_setting_has_no_time() -> None:
    line = parse_line("set mss 1000")
    assert line is not None and line.time is None and line.event == ev.Setting("mss", "1000")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("< udp 9000 (10)", "a UDP line is udp SPORT>DPORT"),
        ("< udp 9000>8080", "a UDP line is udp SPORT>DPORT"),
        ("< udp *>8080 (10)", "'*' is only allowed on '>' lines"),
        ("< udp 9000>8080 (*)", "'*' is only allowed on '>' lines"),
        ("< udp 9000>70000 (1)", "too large"),
        ("< udp 9000>8080 (70000)", "too large"),
        ("< udp 9000>8080 10", "expected a payload: (LEN)"),
        ("< udp 9000>8080 hex zz", "bad hex 'zz'"),
        ("< icmp echo seq 1 id 1 (1)", "usage: icmp echo|echo-reply"),
        ("< icmp echo id 1 seq 70000 (1)", "too large"),
        ("> icmp unreachable port of udp", "'of tcp|udp' picks the packet"),
        ("< icmp unreachable port of dccp", "unexpected 'of dccp'"),
        ("set sack", "usage: set NAME VALUE"),
        ("set Sack off", "bad setting name 'Sack'"),
        ("udp bind", "bad call 'udp bind'"),
        ("udp sendto nowhere:1 3", "udp sendto ADDRESS:PORT"),
        ("udp sendto 10.0.0.1:9000 *", "'*' (any bytes) is only for 'udp recvfrom'"),
        ("udp recvfrom (3)", "written without parentheses: 3"),
        ("udp dance", "bad call 'udp dance'"),
        ('udp send "\\ud800"', "not encodable as UTF-8"),
        ('write "\\udfff"', "not encodable as UTF-8"),
        ("udp close = EBOGUS", "unknown errno name 'EBOGUS'"),
        ("+1~+2 < udp 1>2 (1)", "only '>' lines may have '*' or a range"),
    ],
)
def test_bad_lines_say_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(ScriptSyntaxError) as error:
        parse_line(text, 3)
    assert message in error.value.message
    assert str(error.value).startswith("line 3: ")


def test_a_range_time_is_fine_on_outbound_udp_and_icmp() -> None:
    for text in ("0.1~0.2 > udp 1>2 (1)", "* > icmp echo-reply id 1 seq 1 (0)"):
        line = parse_line(text)
        assert line is not None and line.time is not None


@given(
    st.integers(0, 65535),
    st.integers(0, 65535),
    st.one_of(st.binary(max_size=80), st.text(max_size=30).map(str.encode)),
    st.sampled_from("<>"),
)
def test_any_datagram_described_formats_and_parses_back(
    source: int, destination: int, data: bytes, direction: str
) -> None:
    """What a failure report shows of a datagram reads back as a line standing for its bytes
    (up to DISPLAY_LIMIT bytes; longer ones by length, unless they are the pattern)."""
    described = describe_udp(UDPDatagram(source, destination, data), direction)
    line = parse_line(format_event(described))
    assert line is not None and line.event == described
    if len(data) <= DISPLAY_LIMIT or data == pattern(0, len(data)):
        assert payload_bytes(described.payload) == data


@given(st.integers(0, 65535), st.integers(0, 65535), st.binary(max_size=80), st.booleans())
def test_any_echo_described_formats_and_parses_back(
    identifier: int, sequence: int, data: bytes, reply: bool
) -> None:
    make = ICMPv4Message.echo_reply if reply else ICMPv4Message.echo_request
    described = describe_icmp(make(identifier, sequence, data), OUTBOUND)
    assert isinstance(described, ev.Echo)
    line = parse_line(format_event(described))
    assert line is not None and line.event == described
