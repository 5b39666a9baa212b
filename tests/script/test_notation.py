"""The script notation on its own: parsing, formatting, round trips and the syntax errors."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pystack.script import events as ev
from pystack.script.events import INBOUND, OUTBOUND, OptionSpec, Packet, TimeSpec, Wildcard
from pystack.script.matching import Numbering, describe
from pystack.script.notation import (
    ScriptSyntaxError,
    format_line,
    format_packet,
    parse_line,
    parse_script,
    parse_time,
)
from pystack.stats import DropReason
from pystack.tcp.state import TCPState
from pystack.wire import tcp
from tests.wire.strategies import tcp_segments


def parse(text: str) -> ev.ScriptLine:
    line = parse_line(text)
    assert line is not None
    return line


def event(text: str) -> ev.Event:
    return parse(text).event


def packet(text: str) -> Packet:
    value = event(text)
    assert isinstance(value, Packet)
    return value


# round trips ------------------------------------------------------------------------------------
CANONICAL = [
    "0 listen 8080",
    "0.1 listen 8080 backlog 3",
    "+0 connect 10.0.0.1:9000",
    "+0 connect 10.0.0.1:9000 from 40000",
    "+0 accept",
    "+0 accept ?",
    "+0 write 1000",
    '+0 write "hello, \\"world\\"\\n # not a comment"',
    "+0 read 1000",
    "+0 read eof",
    "+0 shutdown",
    "+0 close",
    "+0 abort = ENOTCONN",
    "+0 nodelay on",
    "+0 nodelay off",
    "+0 expect state ESTABLISHED",
    "+0 expect state SYN-RECEIVED",
    "+0 expect error ECONNRESET",
    "+0 expect error none",
    "+0 expect counter tcp.challenge_acks_sent 1",
    "+0 expect drop TCP_OUT_OF_WINDOW 1",
    "+0 expect info snd_cwnd 14600",
    "+0 expect info congestion newreno",
    "+0 expect nothing",
    "+0.1 < S 0:0(0) win 65535 <mss 1460,sackOK,TS val 1 ecr 0,nop,wscale 7>",
    "+0 > S. 0:0(0) ack 1 win 65535 <mss 1460,sackOK,TS val * ecr 1,nop,wscale 7>",
    "+0 < . 1:1(0) ack 1 win 257",
    "+0 < P. 1:1001(1000) ack 1 win 257",
    "+0 > . 1:1(0) ack 1001",
    "+0 < R 1:1(0) win 0",
    "+0 < F. 1001:1001(0) ack 1 win 65535",
    "+0 < S. 0:0(0) ack 1 win 65535 <mss 1460>",
    "+0 < SFRPUEW. 5:5(0) ack 0 win 1 urg 9",
    "+0 < - 5:5(0) win 0",
    "+0 > . *:*(*) ack * win * urg * <...>",
    "+0 > . 1:1(0) <nop,nop,TS val * ecr $,sack 1001:2001 3001:4001>",
    "+0 < . 1:1(0) ack 1 win 9 <nop,nop,TS val 7 ecr *,sack 1:2 3:4 5:6 7:8>",
    "+0 < . 1:1(0) ack 1 win 9 <TS val 7 ecr $,eol>",
    "+0 < . 1:1(0) ack 1 win 9 <opt 30 0102ff,opt 254>",
    "+0 > R 0:0(0) <>",
    "0.2~0.3 > . 1:1(0)",
    "+0.2~+0.25 > . 1:1(0)",
    "* > F. 1:1(0) ack 1",
    "+0 < icmp unreachable port",
    "+0 < icmp unreachable need-frag mtu 1200",
    "+0 < icmp time-exceeded ttl",
    "tolerance 0.002",
    "ports 9000 8080",
    "end strict 5",
    "exact windows",
]


@pytest.mark.parametrize("text", CANONICAL)
def test_canonical_line_formats_back_to_itself(text: str) -> None:
    line = parse(text)
    assert format_line(line.time, line.event) == text
    again = parse(format_line(line.time, line.event))
    assert (again.time, again.event) == (line.time, line.event)


def test_line_without_time_is_plus_zero_and_comments_are_ignored() -> None:
    lines = parse_script("# a comment\n\n   < S 0:0(0)   # the SYN\nlisten 80\n")
    assert [line.number for line in lines] == [3, 4]
    assert all(line.time == ev.NOW for line in lines)
    assert format_line(lines[0].time, lines[0].event) == "+0 < S 0:0(0)"
    assert lines[0].text == "< S 0:0(0)   # the SYN"


@given(tcp_segments(max_payload=40), st.integers(0, 2**32 - 1), st.sampled_from("<>"))
def test_any_segment_described_formats_and_parses_back(
    segment: tcp.TCPSegment, isn: int, direction: str
) -> None:
    segment = segment._replace(flags=segment.flags & 0xFF)  # the reserved bits have no letters
    if direction == INBOUND and segment.flags & tcp.ACK == 0:
        segment = segment._replace(flags=segment.flags | tcp.ACK)  # '<' with ack needs '.'
    described = describe(segment, Numbering(peer_offset=isn, local_isn=isn ^ 0xFFFF), direction)
    assert packet(format_packet(described)) == described


# times ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("token", "expected"),
    [
        ("0", TimeSpec(False, 0.0)),
        ("0.100", TimeSpec(False, 0.1)),
        ("+.5", TimeSpec(True, 0.5)),
        ("+1", TimeSpec(True, 1.0)),
        ("*", TimeSpec(True, None)),
        ("1~2.5", TimeSpec(False, 1.0, 2.5)),
        ("+0.2~+0.3", TimeSpec(True, 0.2, 0.3)),
    ],
)
def test_times(token: str, expected: TimeSpec) -> None:
    assert parse_time(token) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("+0.1~0.3 > . 1:1(0)", "both ends absolute or both relative"),
        ("0.3~0.1 > . 1:1(0)", "ends before it starts"),
        ("1~2~3 > . 1:1(0)", "one '~' at most"),
        ("+x < S 0:0(0)", "bad time '+x'"),
        ("* < S 0:0(0)", "only '>' lines may have '*'"),
        ("0.1~0.2 write 10", "only '>' lines may have '*' or a range"),
        ("+0.1", "a time needs an event"),
    ],
)
def test_bad_times(text: str, message: str) -> None:
    with pytest.raises(ScriptSyntaxError, match=re.escape(message)):
        parse_line(text)


# packets ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("letters", "flags"),
    [
        ("S", tcp.SYN),
        ("S.", tcp.SYN | tcp.ACK),
        (".", tcp.ACK),
        ("P.", tcp.PSH | tcp.ACK),
        ("F.", tcp.FIN | tcp.ACK),
        ("R", tcp.RST),
        ("R.", tcp.RST | tcp.ACK),
        ("U.", tcp.URG | tcp.ACK),
        ("SEW", tcp.SYN | tcp.ECE | tcp.CWR),
        ("-", 0),
        (".PF", tcp.PSH | tcp.FIN | tcp.ACK),  # any order in, canonical order out
    ],
)
def test_flags(letters: str, flags: int) -> None:
    assert packet(f"> {letters} 1:1(0)").flags == flags


def test_inbound_defaults_and_outbound_dont_cares_stay_unset() -> None:
    inbound = packet("< . 1:1(0) ack 1")
    assert (inbound.window, inbound.urgent, inbound.options) == (None, None, None)
    outbound = packet("> . 1:1(0)")
    assert (outbound.ack, outbound.window, outbound.options) == (None, None, None)
    assert packet("> . 1:1(0) <...>").options is Wildcard.ANY
    assert packet("> . 1:1(0) <>").options == ()


def test_every_option_and_wildcard() -> None:
    options = packet(
        "> S. *:0(0) ack * <mss *,wscale 14,sackOK,TS val * ecr $,nop,eol,sack 1:* *:9,opt 99 ab>"
    ).options
    assert options == (
        OptionSpec(tcp.OPT_MSS, (Wildcard.ANY,)),
        OptionSpec(tcp.OPT_WSCALE, (14,)),
        OptionSpec(tcp.OPT_SACK_PERMITTED),
        OptionSpec(tcp.OPT_TIMESTAMP, (Wildcard.ANY, Wildcard.LATEST)),
        OptionSpec(tcp.OPT_NOP),
        OptionSpec(tcp.OPT_EOL),
        OptionSpec(tcp.OPT_SACK, (1, Wildcard.ANY, Wildcard.ANY, 9)),
        OptionSpec(99, (), b"\xab"),
    )


def test_sequence_numbers_wrap_in_the_end_check() -> None:
    assert packet("< . 4294967290:4(10) ack 1").end == 4


def test_calls_and_expectations_carry_their_values() -> None:
    assert event("write 3") == ev.Write(3)
    assert event('write "é"') == ev.Write(2, "é")
    assert event("connect 10.0.0.1:9000 from 4000 = ECONNREFUSED") == ev.Connect(
        "10.0.0.1", 9000, 4000, error="ECONNREFUSED"
    )
    assert event("expect state time_wait") == ev.ExpectState(TCPState.TIME_WAIT)
    assert event("expect drop TCP_NO_LISTENER 2") == ev.ExpectDrop(
        DropReason.TCP_NO_LISTENER.name, 2
    )
    assert event("end strict") == ev.EndStrict(5.0)
    assert parse("tolerance 0.002").time is None


# syntax errors ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("< X 0:0(0)", "unknown flag 'X'"),
        ("< SS 0:0(0)", "repeated flag 'S'"),
        ("< S 0:0", "expected SEQ:END\\(LEN\\)"),
        ("< S", "a packet is FLAGS SEQ:END\\(LEN\\)"),
        ("< P. 1:100(1000) ack 1", "END must be SEQ \\+ LEN"),
        ("< . 1:1(0)", "needs 'ack N'"),
        ("< . 1:1(0) ack *", "'\\*' is only allowed on '>' lines"),
        ("< . 1:1(0) ack 1 <...>", "any options\\) is only allowed on '>' lines"),
        ("> . 1:1(0) ack 1 ack 2", "'ack' given twice"),
        ("> . 1:1(0) wnd 5", "expected 'ack N', 'win N' or 'urg N', got 'wnd'"),
        ("> . 1:1(0) win 65536", "too large"),
        ("> . 1:1(0) ack 4294967296", "too large"),
        ("> . 1:1(0) <mss 1460", "options are written <...>"),
        ("> . 1:1(0) <mss>", "bad option 'mss'"),
        ("> . 1:1(0) <TS val 1>", "bad option 'TS val 1'"),
        ("> . 1:1(0) <sack 1-2>", "a SACK block is LEFT:RIGHT"),
        ("> . 1:1(0) <opt 2 0102>", "option kind 2 has a name"),
        ("> . 1:1(0) <opt 99 xyz>", "bad hex"),
        ("> . 1:1(0) <mss $>", "'\\$' is only allowed"),
        ("> icmp unreachable port of udp", "'of tcp|udp' picks the packet a '<' error quotes"),
        ("< icmp unreachable somewhere", "usage: icmp"),
        ("< icmp unreachable port mtu 100", "need-frag takes 'mtu N'"),
        ("listen", "bad call 'listen'"),
        ("listen 70000", "too large"),
        ("connect nowhere:80", "connect ADDRESS:PORT"),
        ("write lots", "write length: expected a number"),
        ('write "unterminated', "bad string"),
        ("read some", "read length: expected a number"),
        ("dance", "bad call 'dance'"),
        ("close = EWHATEVER", "unknown errno name 'EWHATEVER'"),
        ("expect state DANCING", "unknown state 'DANCING'"),
        ("expect drop NO_SUCH_REASON 1", "unknown drop reason"),
        ("expect weather sunny", "usage: expect"),
        ("tolerance", "usage: tolerance SECONDS"),
        ("ports 9000", "usage: ports PEER_PORT PYSTACK_PORT"),
        ("end soon", "usage: end strict"),
        ("exact sizes", "usage: exact windows"),
    ],
)
def test_bad_lines_say_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(ScriptSyntaxError, match=message):
        parse_line(text)


def test_syntax_error_names_the_line_number_and_shows_the_line() -> None:
    script = "0 listen 8080\n# comment\n+0 < S 0:0(0) win 65535\n+0 > S. 0:0(0) akc 1\n"
    with pytest.raises(ScriptSyntaxError) as caught:
        parse_script(script)
    error = caught.value
    assert error.number == 4
    assert str(error) == (
        "line 4: expected 'ack N', 'win N' or 'urg N', got 'akc'\n    +0 > S. 0:0(0) akc 1"
    )


def test_directions_are_the_two_arrows() -> None:
    assert packet("< S 0:0(0)").direction == INBOUND
    assert packet("> S 0:0(0)").direction == OUTBOUND
