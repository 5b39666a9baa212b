"""What line numbers mean on the wire, and the matching rules for pystack's packets."""

from __future__ import annotations

import pytest

from pystack.script.events import OUTBOUND, Packet
from pystack.script.matching import (
    MASK,
    Numbering,
    describe,
    inbound_segment,
    mismatches,
    pattern,
)
from pystack.script.notation import parse_line
from pystack.wire import tcp
from pystack.wire.tcp import TCPSegment

PORTS = (9000, 8080)
WRAP = 2**32 - 100


def packet(text: str) -> Packet:
    line = parse_line(text)
    assert line is not None and isinstance(line.event, Packet)
    return line.event


def test_pattern_is_the_low_byte_of_each_sequence_number() -> None:
    assert pattern(1, 3) == b"\x01\x02\x03"
    assert pattern(254, 4) == b"\xfe\xff\x00\x01"
    assert pattern(2**32 - 1, 2) == b"\xff\x00"
    assert len(pattern(7, 1000)) == 1000
    assert pattern(5, 0) == b""


def test_numbering_translates_both_ways_across_the_wrap() -> None:
    numbering = Numbering(peer_offset=WRAP, local_isn=0xFFFFFFF0)
    assert numbering.peer_to_wire(0) == WRAP
    assert numbering.peer_to_wire(1001) == (WRAP + 1001) & MASK == 901
    assert numbering.wire_to_peer(901) == 1001
    assert numbering.local_to_wire(0x20) == 0x10
    assert numbering.wire_to_local(0x10) == 0x20


def test_inbound_segment_uses_the_peer_offset_for_seq_and_the_isn_for_ack() -> None:
    numbering = Numbering(peer_offset=WRAP, local_isn=5000)
    line = packet("< P. 1:1001(1000) ack 1 win 257 urg 3 <sack 100:200,TS val 7 ecr *,mss 1200>")
    segment = inbound_segment(line, numbering, PORTS, latest_tsval=424242)
    assert (segment.src_port, segment.dst_port) == PORTS
    assert segment.seq == WRAP + 1
    assert segment.ack == 5001
    assert (segment.flags, segment.window, segment.urgent) == (tcp.PSH | tcp.ACK, 257, 3)
    assert segment.payload == pattern(1, 1000)
    assert segment.sack_blocks == ((5100, 5200),)  # inbound SACK blocks are pystack's numbers
    assert segment.timestamp == (7, 424242)  # ecr * echoes pystack's latest TS val
    assert segment.mss == 1200


def test_inbound_defaults_window_65535_no_options_ack_zero() -> None:
    segment = inbound_segment(packet("< S 0:0(0)"), Numbering(), PORTS, None)
    assert (segment.window, segment.options, segment.ack, segment.payload) == (65535, (), 0, b"")


def test_inbound_ecr_latest_before_any_tsval_is_an_error() -> None:
    with pytest.raises(ValueError, match="no TS val"):
        inbound_segment(packet("< . 1:1(0) ack 1 <TS val 1 ecr $>"), Numbering(), PORTS, None)


def test_describe_outbound_in_script_numbers() -> None:
    numbering = Numbering(peer_offset=WRAP, local_isn=0xFFFFFF00)
    segment = TCPSegment(
        8080, 9000, 0xFFFFFF01, WRAP + 1001, tcp.ACK | tcp.PSH, 512, b"x" * 10,
        (tcp.sack_option(((WRAP + 2001, WRAP + 3001),)), tcp.timestamp_option(9, 8)),
    )  # fmt: skip
    described = describe(segment, numbering, OUTBOUND)
    assert (described.seq, described.end, described.length) == (1, 11, 10)
    assert described.ack == 1001
    line = packet("> P. 1:11(10) ack 1001 win 512 urg 0 <sack 2001:3001,TS val 9 ecr 8>")
    assert described == line


def test_brief_description_leaves_out_unflagged_zero_fields() -> None:
    segment = TCPSegment(8080, 9000, 100, 0, tcp.RST, 0)
    shown = describe(segment, Numbering(), OUTBOUND, brief=True)
    assert (shown.ack, shown.urgent, shown.options) == (None, None, None)


def actual(text: str) -> Packet:
    """A fully described packet, as the runner builds from what pystack sent."""
    return packet(text)


FULL = "> P. 1:101(100) ack 1001 win 512 urg 0 <nop,nop,TS val 77 ecr 5>"


@pytest.mark.parametrize(
    "expected",
    [
        "> P. 1:101(100) ack 1001 win 512 urg 0 <nop,nop,TS val 77 ecr 5>",
        "> P. 1:101(100)",  # ack, win, urg, options: don't care
        "> P. *:*(*) ack * win * urg *",
        "> P. 1:101(100) ack 1001 <...>",
        "> P. 1:101(100) <nop,nop,TS val * ecr 5>",
        "> P. 1:101(100) <nop,nop,TS val 77 ecr $>",  # $: the peer's latest TS val (5)
    ],
)
def test_lines_that_match(expected: str) -> None:
    assert mismatches(packet(expected), actual(FULL), latest_peer_tsval=5) == []


@pytest.mark.parametrize(
    ("expected", "problem"),
    [
        ("> . 1:101(100)", "flags: expected ., got P."),
        ("> P. 2:102(100)", "seq: expected 2, got 1"),
        ("> P. 1:1(0)", "length: expected 0, got 100"),
        ("> P. 1:101(100) ack 1", "ack: expected 1, got 1001"),
        ("> P. 1:101(100) win 65535", "win: expected 65535, got 512"),
        ("> P. 1:101(100) urg 1", "urg: expected 1, got 0"),
        ("> P. 1:101(100) <>", "options: expected <>, got <nop,nop,TS val 77 ecr 5>"),
        ("> P. 1:101(100) <nop,TS val 77 ecr 5>", "options: expected <nop,TS val 77 ecr 5>"),
        ("> P. 1:101(100) <nop,nop,TS val 78 ecr 5>", "options: expected <nop,nop,TS val 78"),
        ("> P. 1:101(100) <nop,nop,TS val 77 ecr $>", "(the peer's latest TS val is 6)"),
        ("> P. 1:101(100) <nop,nop,sack 1:2>", "options: expected <nop,nop,sack 1:2>"),
    ],
)
def test_lines_that_do_not_match_say_which_field(expected: str, problem: str) -> None:
    problems = mismatches(packet(expected), actual(FULL), latest_peer_tsval=6)
    assert any(problem in text for text in problems), problems


def test_every_differing_field_is_reported() -> None:
    problems = mismatches(packet("> S 5:5(0) ack 3 win 1"), actual(FULL), None)
    assert [problem.split(":")[0] for problem in problems] == [
        "flags", "seq", "end", "length", "ack", "win",
    ]  # fmt: skip


# The kernel target (exact_layout=False): another stack's window size and option layout are its
# configuration; what is compared is whether the window is open and which options it sent.
SYN_ACK = "> S. 0:0(0) ack 1 win 64240 <mss 1460,nop,nop,sackOK,nop,wscale 7>"


@pytest.mark.parametrize(
    "expected",
    [
        "> S. 0:0(0) ack 1 win 65535 <mss 1460,sackOK,nop,wscale 7>",  # another layout
        "> S. 0:0(0) ack 1 win 1 <wscale 7,mss 1460,sackOK>",
        "> S. 0:0(0) ack 1 <mss 1460,sackOK,nop,wscale 3>",  # the shift follows the buffers
        "> S. 0:0(0) ack 1 win 64240 <mss 1460,nop,nop,sackOK,nop,wscale 7>",
    ],
)
def test_kernel_layout_matches_any_open_window_and_option_order(expected: str) -> None:
    assert mismatches(packet(expected), actual(SYN_ACK), None, exact_layout=False) == []


@pytest.mark.parametrize(
    ("expected", "got", "problem"),
    [
        ("> . 1:1(0) ack 1 win 0", "> . 1:1(0) ack 1 win 64240", "win: expected 0, got 64240"),
        ("> . 1:1(0) ack 1 win 65535", "> . 1:1(0) ack 1 win 0", "win: expected 65535, got 0"),
        ("> S. 0:0(0) ack 1 <mss 1460,sackOK>", SYN_ACK, "options: expected <mss 1460,sackOK>"),
        ("> S. 0:0(0) ack 1 <mss 1460,sackOK,TS val * ecr 0>", SYN_ACK, "options: expected <mss"),
        ("> S. 0:0(0) ack 1 <mss 536,wscale 7,sackOK>", SYN_ACK, "options: expected <mss 536"),
        (
            "> S. 0:0(0) ack 1 <mss 1460,nop,wscale 7>",
            SYN_ACK,
            "options: expected <mss 1460,wscale *>, got <mss 1460,wscale 7,sackOK> (compared by "
            "kind, without padding)",
        ),
    ],
)
def test_kernel_layout_still_tells_closed_windows_and_other_options(
    expected: str, got: str, problem: str
) -> None:
    problems = mismatches(packet(expected), actual(got), None, exact_layout=False)
    assert any(problem in text for text in problems), problems


def test_exact_windows_compares_window_numbers_on_the_kernel_too() -> None:
    expected, got = packet("> . 1:1(0) ack 1 win 65535"), actual("> . 1:1(0) ack 1 win 64240")
    assert mismatches(expected, got, None, exact_layout=False) == []
    problems = mismatches(expected, got, None, exact_layout=False, exact_windows=True)
    assert problems == ["win: expected 65535, got 64240"]
