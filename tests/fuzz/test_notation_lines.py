"""The notation the fuzzer's reproducers use: ``< raw``, ``ignore outbound``, ``serve echo``,
``read upto`` and ``expect invariants``: parsed, formatted back, refused when wrong, and run."""

from __future__ import annotations

import pytest

from pystack.script import ScriptFailure, ScriptSyntaxError, format_line, parse_line, run_script
from pystack.script import events as ev
from pystack.script.matching import pattern
from pystack.wire.addresses import ip_from_str
from pystack.wire.ipv4 import PROTO_TCP, IPv4Packet
from pystack.wire.tcp import ACK, PSH, SYN, TCPSegment

PEER, HOST = ip_from_str("10.0.0.1"), ip_from_str("10.0.0.2")


def raw(segment: TCPSegment) -> str:
    return IPv4Packet(PEER, HOST, PROTO_TCP, segment.build(PEER, HOST)).build().hex()


@pytest.mark.parametrize(
    "text",
    [
        "+0 < raw 4500001400000000400166d30a0000010a000002",
        "ignore outbound",
        "serve echo 7",
        "0.5 read upto 100",
        "+0 expect invariants",
    ],
)
def test_lines_format_back_to_themselves(text: str) -> None:
    line = parse_line(text)
    assert line is not None
    assert format_line(line.time, line.event) == text


def test_raw_hex_may_have_spaces() -> None:
    line = parse_line("< raw 45 00 00 14")
    assert line is not None and line.event == ev.RawPacket(bytes.fromhex("45000014"))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("< raw", "usage: < raw HEX"),
        ("< raw 4g", "bad hex"),
        ("> raw 45", "only the peer sends raw packets"),
        ("ignore inbound", "usage: ignore outbound"),
        ("serve chargen 19", r"usage: serve \(echo\) PORT"),
        ("serve echo 70000", "too large"),
        ("read upto", "read length: expected a number"),
        ("expect invariants now", "usage: expect"),
    ],
)
def test_bad_lines_are_one_clear_error(text: str, message: str) -> None:
    with pytest.raises(ScriptSyntaxError, match=message):
        parse_line(text)


def test_a_raw_syn_starts_the_peers_byte_stream_and_read_upto_checks_it() -> None:
    syn = TCPSegment(9000, 8080, 1000, 0, SYN, 65535)
    text = f"""
ignore outbound
0 listen 8080
+0 < raw {raw(syn)}
+0 accept ?
"""
    result = run_script(text)
    assert result.connection is None  # the handshake is not complete: nothing to accept yet
    assert result.stack.tcp.connections  # but the SYN made a connection (SYN-RECEIVED)
    # pystack's SYN-ACK went out and was recorded, not matched: no '>' line was needed
    assert [frame for _, frame in result_outbound(text)]


def result_outbound(text: str) -> list[tuple[float, bytes]]:
    from pystack.script import ScriptRunner

    runner = ScriptRunner(text)
    runner.run()
    return list(runner.outbound)


def _handshake_then(data_seq: int, data_length: int, reads: str) -> str:
    from pystack.script import ScriptRunner

    runner = ScriptRunner(
        f"ignore outbound\n0 listen 8080\n+0 < raw {raw(TCPSegment(9000, 8080, 1000, 0, SYN, 65535))}"
    )
    runner.run()
    synack = TCPSegment.parse(IPv4Packet.parse(runner.outbound[-1][1]).payload, HOST, PEER)
    ack = (synack.seq + 1) & 0xFFFFFFFF
    data = TCPSegment(9000, 8080, data_seq, ack, ACK | PSH, 65535, pattern(data_seq, data_length))
    return f"""
ignore outbound
0 listen 8080
+0 < raw {raw(TCPSegment(9000, 8080, 1000, 0, SYN, 65535))}
+0 < raw {raw(TCPSegment(9000, 8080, 1001, ack, ACK, 65535))}
+0 accept
+0 < raw {raw(data)}
{reads}
+0 expect invariants
"""


def test_read_upto_takes_what_there_is() -> None:
    run_script(_handshake_then(1001, 10, "+0 read upto 100\n+0 read upto 5"))


def test_read_upto_fails_on_wrong_bytes() -> None:
    # the peer's stream starts at 1001; data at 1001 read as if it started elsewhere is wrong
    script = _handshake_then(1001, 10, "+0 read 3\n+0 read upto 100")
    run_script(script)  # right bytes: passes
    with pytest.raises(ScriptFailure, match="read 0 bytes, expected 3"):
        run_script(_handshake_then(1002, 10, "+0 read 3"))  # a hole: nothing readable


def test_serve_echo_answers_beside_the_script() -> None:
    from pystack.script import ScriptRunner

    runner = ScriptRunner(
        f"ignore outbound\nserve echo 7\n0 < raw {raw(TCPSegment(9000, 7, 1, 0, SYN, 65535))}"
    )
    runner.run()
    replies = [IPv4Packet.parse(frame) for _, frame in runner.outbound]
    segment = TCPSegment.parse(replies[-1].payload, HOST, PEER)
    assert segment.flags == SYN | ACK and segment.src_port == 7


def test_read_upto_without_a_connection_reads_nothing_but_read_n_fails() -> None:
    run_script("0 read upto 10")
    with pytest.raises(ScriptFailure, match="no connection yet"):
        run_script("0 read 10")
