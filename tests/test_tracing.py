"""--trace: drops with their reasons, retransmission causes, relative sequence numbers, TCP
events, TSO bursts, the peer's lines, colours; --stats; --impair errors. Stack-level tests run
two stacks on a manual clock; the command-line ones run ``pystack run`` on the simulator."""

from __future__ import annotations

import io
import os
import random
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from pystack.link.base import LinkKind, SegmentedFrame
from pystack.link.impair import ImpairmentConfig, ImpairmentLink
from pystack.link.memory import MemoryLink
from pystack.sim.network import Simulation
from pystack.stack import Stack, StackConfig
from pystack.tracing import TraceLevel, TraceOptions, Tracer, colour_wanted
from pystack.wire.ipv4 import PROTO_TCP, IPv4Packet
from pystack.wire.tcp import ACK, TCPSegment

ROOT = Path(__file__).resolve().parents[1]
A, B = 0x0A000001, 0x0A000002


class Pair:
    """alice (10.0.0.1, traced) and bob (10.0.0.2) on a manual clock; bob listens on 7."""

    def __init__(self, impair: str = "", **options: object) -> None:
        self.lines: list[str] = []
        self.simulation = Simulation()
        left, right = MemoryLink.pair(kind=LinkKind.ETHERNET, mtu=1500)
        link = ImpairmentLink(left, ImpairmentConfig.parse(impair)) if impair else left
        self.alice = self.simulation.add(
            Stack(StackConfig(address="10.0.0.1/24"), link, self.simulation.clock, random.Random(1))
        )
        self.bob = self.simulation.add(
            Stack(
                StackConfig(address="10.0.0.2/24"), right, self.simulation.clock, random.Random(2)
            )
        )
        self.alice.set_trace(TraceOptions(self.lines.append, **options))  # type: ignore[arg-type]
        self.listener = self.bob.tcp_listen(7)

    def connect(self, port: int = 7) -> None:
        self.connection = self.alice.tcp_connect(B, port, self.simulation.now)
        self.simulation.run_for(0.5)

    def send(self, size: int) -> None:
        self.connection.send(bytes(size), self.simulation.now)
        self.alice.tcp.connection_changed(self.connection)
        self.simulation.run_for(5.0)

    def matching(self, pattern: str) -> list[str]:
        return [line for line in self.lines if re.search(pattern, line)]


def test_a_syn_to_a_closed_port_shows_the_drop_and_the_rst() -> None:
    pair = Pair()
    bob_lines: list[str] = []
    pair.bob.set_trace(bob_lines.append)
    pair.connect(port=81)
    drop = [line for line in bob_lines if line.startswith("x ")]
    assert len(drop) == 1 and "Flags [S]" in drop[0] and "[TCP_NO_LISTENER]" in drop[0]
    after = bob_lines[bob_lines.index(drop[0]) + 1 :]
    assert any(line.startswith("> ") and "Flags [R.]" in line for line in after)


def test_sequence_numbers_are_relative_unless_absolute_is_asked() -> None:
    relative = Pair()
    relative.connect()
    assert relative.matching(r"Flags \[S\], seq 0, win")
    assert relative.matching(r"< .*Flags \[S\.\], seq 0, ack 1, win")
    absolute = Pair(absolute_seq=True)
    absolute.connect()
    iss = absolute.connection.iss
    assert absolute.matching(rf"Flags \[S\], seq {iss}, win")
    assert not absolute.matching(r"Flags \[S\], seq 0, win")
    absolute.send(3000)
    first = absolute.connection.iss + 1
    assert absolute.matching(rf"> .*seq {first}:{first + 1448},")
    relative.send(3000)
    assert relative.matching(r"> .*seq 1:1449, ack 1,")


def test_an_impairment_drop_is_an_x_line_and_its_repair_says_tlp_probe() -> None:
    pair = Pair("drop=out:tcp:data:1")
    pair.connect()
    pair.send(100)
    drops = pair.matching(r"^x .*\[IMPAIRMENT_RULE: rule drop=out:tcp:data:1, outbound\]")
    assert len(drops) == 1 and "seq 1:101" in drops[0]
    # The only segment was lost: the tail loss probe (RFC 8985) resends it, not the RTO.
    retransmits = pair.matching(r"\[TLP probe\]")
    assert len(retransmits) == 1 and "seq 1:101" in retransmits[0]
    assert pair.lines.index(drops[0]) < pair.lines.index(retransmits[0])


def test_rack_retransmit_and_events_show_cwnd_ssthresh_and_recovery() -> None:
    pair = Pair("drop=out:tcp:data:3", level=TraceLevel.EVENTS)
    pair.connect()
    pair.send(20000)
    assert pair.matching(r"\[retransmit: RACK lost\]")  # RFC 8985: found lost by time
    assert pair.matching(r"^\* TCP .*RACK: lost 1 segment")
    entered = pair.matching(r"^\* TCP .*: .*ssthresh \d+ -> \d+.*recovery entered")
    assert entered and re.search(r"cwnd \d+ -> \d+", entered[0])
    assert pair.matching(r"^\* TCP .*recovery exited")
    assert pair.matching(r"^\* TCP .*retransmit timer armed \(1\.000 s\)")
    assert pair.matching(r"^\* TCP .*srtt .* -> [\d.]+ ms")
    assert not pair.matching("delayed-ACK")  # only at --trace=all


def test_plain_trace_has_no_event_lines_and_all_adds_re_armed_timers() -> None:
    plain = Pair()
    plain.connect()
    plain.send(5000)
    assert plain.lines and not plain.matching(r"^\* ")
    every = Pair("delay=10ms", level=TraceLevel.ALL)
    every.connect()
    every.send(5000)
    assert every.matching(r"^\* .*re-armed")


def test_impairment_loss_and_corruption_are_traced() -> None:
    pair = Pair("out.loss=100%")
    pair.connect()
    assert pair.matching(r"^x .*Flags \[S\].*\[IMPAIRMENT_LOSS: loss=1, outbound\]")
    corrupt = Pair("in.corrupt=100%")
    corrupt.connect()
    assert corrupt.matching(r"^~ .*\[impairment inbound: corrupted: one bit flipped\]")
    assert corrupt.matching(r"^x .*\[(TCP|IPV4|ETHERNET|ARP)_\w+")


def test_a_tso_burst_is_shown_as_one_not_as_a_bad_checksum() -> None:
    payload = bytes(4000)
    segment = TCPSegment(5000, 7, 100, 1, ACK, 1000, payload)
    data = IPv4Packet(A, B, PROTO_TCP, segment.build(A, B, checksum=0x1234)).build()
    frame = SegmentedFrame(data, 1448, 40, 20, 16)
    tracer = Tracer(TraceOptions(print), ethernet=False)
    line = tracer.describe(frame, False)
    assert "malformed" not in line and "bad_checksum" not in line
    assert line.endswith("length 4000  [TSO burst of 3 segments, checksum offloaded]")


def test_colours_only_on_a_terminal_and_without_no_color(monkeypatch: pytest.MonkeyPatch) -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.delenv("NO_COLOR", raising=False)
    assert colour_wanted(Terminal()) and not colour_wanted(io.StringIO())
    monkeypatch.setenv("NO_COLOR", "1")
    assert not colour_wanted(Terminal())
    lines: list[str] = []
    Tracer(TraceOptions(lines.append, colour=True), False).emit("=", "x")
    Tracer(TraceOptions(lines.append), False).emit("=", "x")
    assert lines == ["\x1b[33m= x\x1b[0m", "= x"]


# -- the command ---------------------------------------------------------------------------------
def pystack(tmp_path: Path, *arguments: str, source: str = "") -> subprocess.CompletedProcess[str]:
    script = tmp_path / "script.py"
    script.write_text(textwrap.dedent(source))
    environ = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "MICROPYPATH": ".frozen",
        "HOME": str(tmp_path),
    }
    environ.pop("NO_COLOR", None)
    return subprocess.run(
        [sys.executable, "-m", "pystack", *arguments, str(script)],
        capture_output=True,
        text=True,
        timeout=120,
        env=environ,
        cwd=tmp_path,
    )


ECHO_AND_CLOSED = """
    import socket
    s = socket.socket()
    s.connect(socket.getaddrinfo("10.0.0.1", 7)[0][-1])
    s.send(b"x" * 100)
    got = b""
    while len(got) < 100:
        got += s.recv(100)
    s.close()
    t = socket.socket()
    try:
        t.connect(socket.getaddrinfo("10.0.0.1", 81)[0][-1])
    except OSError:
        print("refused")
"""


def test_run_trace_peer_and_stats(tmp_path: Path) -> None:
    done = pystack(
        tmp_path,
        "run",
        "--seed",
        "4",
        "--impair",
        "drop=out:tcp:data:1",
        "--trace-peer",
        "--stats",
        source=ECHO_AND_CLOSED,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "refused\n"
    err = done.stderr
    assert "\x1b[" not in err  # stderr is a pipe: no colours
    assert re.search(r"host x .*\[IMPAIRMENT_RULE: rule drop=out:tcp:data:1, outbound\]", err)
    assert re.search(r"host > .*seq 1:101, .*\[TLP probe\]", err)
    assert re.search(r"peer x .*Flags \[S\].*\[TCP_NO_LISTENER\]", err)
    assert re.search(r"peer > .*Flags \[R\.\]", err)
    assert re.search(r"peer = TCP 10\.0\.0\.1:7 <-> ", err)
    # --stats: the connection table, counters with their meanings, drops, the impairment
    assert re.search(r"state +local +remote +cwnd +ssthresh +srtt ms +rto s +retrans", err)
    assert re.search(r"TIME-WAIT +10\.0\.0\.2:\d+ +10\.0\.0\.1:7 ", err)
    assert re.search(r"tcp\.retransmits +1 +segments retransmitted", err)
    assert re.search(r"TCP_NO_LISTENER +1 +TCP segment for a closed port", err)
    assert re.search(r"rule_dropped +0 +1", err)


@pytest.mark.parametrize(
    "spec", ["drop=out:tcp:x", "loss=200%", "delay=5", "mtu=-1", "bogus=1", "in.drop=tcp:1"]
)
def test_a_bad_impair_spec_is_one_line_and_status_2(tmp_path: Path, spec: str) -> None:
    done = pystack(tmp_path, "run", "--impair", spec, source="print('never')")
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.startswith("pystack: --impair: ") and done.stderr.count("\n") == 1
