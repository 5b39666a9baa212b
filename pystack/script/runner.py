"""Run a script against a Stack: the test plays the peer on the far end of a memory link.

The runner executes the lines in order in virtual time. Before a line at time t it brings the
stack up to t, polling at every ``next_deadline()`` on the way; then ``<`` lines are put on the
wire, calls are made and expectations checked, and the stack is polled at t again. Every packet
pystack emits must be the next ``>`` line, in order, at that line's time (within ``tolerance``,
0 by default: virtual time is exact); a packet before a line that is not ``>`` is unexpected.
After the last line nothing may be waiting; ``end strict N`` also demands N quiet seconds.
``set NAME VALUE`` lines (and the ``settings`` argument) configure the stack before it starts
(``settings.py``). UDP datagrams and ICMP messages take part the same way as TCP segments.
With ``ignore outbound`` pystack's packets are only recorded (``outbound``), never matched, and
``< raw HEX`` lines put the fuzzer's packets on the wire as they are (``pystack.fuzz`` writes its
reproducers so).
A failure raises ``ScriptFailure`` naming the line, what was expected and what pystack did (in
the script's own notation and numbers) and the last events. See ``notation.py`` for the lines
and ``matching.py`` for what their numbers mean.
Entry points: ``run_script``, ``ScriptRunner`` (step by step, or ``feed`` one more line),
``ScriptResult``, ``ScriptFailure``.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any

from pystack.clock import ManualClock
from pystack.link.base import Link, LinkKind
from pystack.link.memory import MemoryLink
from pystack.script import events as ev
from pystack.script.application import Application, CheckFailed, errno_name
from pystack.script.events import INBOUND, OUTBOUND, Packet, ScriptLine
from pystack.script.formatting import format_event, format_packet, format_seconds
from pystack.script.matching import (
    MASK,
    Numbering,
    describe,
    describe_icmp,
    describe_udp,
    icmp_error,
    icmp_mismatches,
    inbound_echo,
    inbound_segment,
    inbound_udp,
    mismatches,
    udp_mismatches,
)
from pystack.script.notation import parse_script
from pystack.script.report import ScriptFailure, ScriptResult, TraceEntry
from pystack.script.settings import configure
from pystack.services.stream import EchoService
from pystack.stack import Stack, StackConfig
from pystack.tcp.invariants import layer_problems
from pystack.tcp.settings import TCPSettings
from pystack.wire.addresses import ip_from_str, ip_to_str
from pystack.wire.errors import MalformedPacket
from pystack.wire.icmpv4 import ICMPv4Message
from pystack.wire.ipv4 import PROTO_ICMP, PROTO_TCP, IPv4Packet
from pystack.wire.summary import summarize_ipv4
from pystack.wire.tcp import FIN, RST, SYN, TCPSegment
from pystack.wire.udp import PROTO_UDP, UDPDatagram

OUTBOUND_KEPT = 100_000  # packets ``ignore outbound`` keeps (the oldest go first)

PEER_ADDRESS = "10.0.0.1"
STACK_ADDRESS = "10.0.0.2/24"
DEFAULT_PEER_PORT = 9000
DEFAULT_LOCAL_PORT = 8080
EPSILON = 1e-9  # virtual times computed two ways may differ in the last bits
ANY_TIME_HORIZON = 1000.0  # how long a '*' line waits
SPIN_LIMIT = 10_000  # polls at one instant before the stack counts as stuck


class ScriptRunner:
    """Executes a script line by line (``step``) or whole (``run``) against one stack."""

    # windows and option layout compared exactly (pystack's own); see matching.mismatches
    exact_layout = True

    def __init__(
        self,
        script: str | Sequence[ScriptLine],
        *,
        config_overrides: dict[str, Any] | None = None,
        seed: int = 1,
        peer_isn_offset: int = 0,
        tcp_settings: TCPSettings | None = None,
        stack: Stack | None = None,
        wire: Link | None = None,
        settings: Mapping[str, str] | None = None,
    ) -> None:
        # a list: ``feed`` appends a line at a time (a fuzz case has thousands)
        self.lines = list(parse_script(script) if isinstance(script, str) else script)
        # ``set`` lines and the ``settings`` argument (a ScriptFile's); a line wins
        chosen = dict(settings or {})
        chosen.update(
            (line.event.name, line.event.value)
            for line in self.lines
            if isinstance(line.event, ev.Setting)
        )
        if stack is None:
            overrides = dict(config_overrides or {})
            if tcp_settings is not None:
                overrides["tcp"] = tcp_settings
            if chosen:
                overrides.update(configure(chosen, overrides.get("tcp")))
            mtu = max(1500, overrides.get("mtu") or 0)  # the link carries what the MTU allows
            link, wire = MemoryLink.pair(kind=LinkKind.IP, mtu=mtu)
            config = StackConfig(address=STACK_ADDRESS, gateway=PEER_ADDRESS, **overrides)
            stack = Stack(config, link, ManualClock(), random.Random(seed))
        elif chosen:
            raise ValueError("'set' lines configure a stack the runner makes, not a given one")
        if wire is None or not isinstance(stack.clock, ManualClock):
            raise ValueError(
                "a given stack needs its wire (the link's other end) and a ManualClock"
            )
        self.stack, self.wire, self.clock = stack, wire, stack.clock
        self.application = Application(stack)
        self._start_state(Numbering(peer_isn_offset), tolerance=0.0)

    def _start_state(self, numbering: Numbering, tolerance: float) -> None:
        """The state of a run, before its first line (shared with the kernel target's runner,
        whose constructor builds no stack)."""
        self.numbering = numbering
        self.peer_address = ip_from_str(PEER_ADDRESS)
        self.peer_port, self.local_port = DEFAULT_PEER_PORT, DEFAULT_LOCAL_PORT
        self.tolerance = tolerance
        self.end_strict: float | None = None
        self.exact_windows = self.exact_layout  # ``exact windows`` makes it True
        self.time = self.clock.now()  # the previous line's time: the base of '+' times
        self.pending: deque[tuple[float, bytes]] = deque()  # sent by pystack, not yet matched
        self.events: list[TraceEntry] = []
        self.latest_local_tsval: int | None = None
        self.latest_peer_tsval: int | None = None
        # pystack's last TCP or UDP packet (what a '< icmp' error quotes), and per protocol
        self.last_outbound: bytes | None = None
        self.last_by_protocol: dict[str, bytes] = {}
        self.ignore_outbound = False  # ``ignore outbound``: record pystack's packets only
        self.outbound: deque[tuple[float, bytes]] = deque(maxlen=OUTBOUND_KEPT)
        self.index = 0
        self.finished = False
        self._line: ScriptLine | None = None

    # driving ----------------------------------------------------------------------------------
    def run(self) -> ScriptResult:
        while self.step() is not None:
            pass
        return self.result()

    def step(self) -> ScriptLine | None:
        """Execute the next line (the end checks after the last); None once finished."""
        if self.index >= len(self.lines):
            if not self.finished:
                self.finished = True
                self._line = None
                self._finish()
            return None
        line = self._line = self.lines[self.index]
        self.index += 1
        self._execute(line)
        return line

    def feed(self, line: ScriptLine) -> None:
        """Execute ``line`` as if it came next in the script (a fuzzer builds its case so)."""
        self.lines.append(line)
        self.index = len(self.lines)
        self._line = line
        self._execute(line)

    def poll_now(self) -> None:
        """Poll the stack at the current time (what a line does after acting)."""
        self._poll(self.clock.now())

    def result(self) -> ScriptResult:
        connection = self.application.connection
        return ScriptResult(self.stack, self.wire, self.clock, self.events, connection)

    def fail(
        self,
        reason: str,
        expected: str | None = None,
        actual: str | None = None,
        details: Sequence[str] = (),
    ) -> ScriptFailure:
        return ScriptFailure(reason, self._line, expected, actual, details, self.events)

    # time -------------------------------------------------------------------------------------
    def _poll(self, when: float) -> None:
        if when > self.clock.now():
            self.clock.set(when)
        when = self.clock.now()
        try:
            self.stack.poll(when)
        except Exception as error:
            raise self.fail(f"pystack raised {type(error).__name__}: {error}") from error
        for frame in self.wire.receive(when, 1 << 20):
            if self.ignore_outbound:
                self._keep_outbound(when, frame)
            else:
                self.pending.append((when, frame))

    def _keep_outbound(self, when: float, frame: bytes) -> None:
        """``ignore outbound``: record the packet; a TCP one is what a ``< icmp`` line quotes."""
        self.outbound.append((when, frame))
        try:
            _, segment = self._decode(frame)
        except MalformedPacket:
            return
        if segment is not None:
            self.last_outbound = frame
            self._learn_isn(segment, 0)  # so '<' lines' acks still count from pystack's ISN
            if segment.timestamp is not None:
                self.latest_local_tsval = segment.timestamp[0]

    def _advance(self, until: float) -> None:
        """Poll at each deadline up to ``until``, then at ``until``; stop at pystack's first packet."""
        spins = 0
        while not self.pending:
            deadline, now = self.stack.next_deadline(), self.clock.now()
            if deadline is None or deadline > until + EPSILON:
                break
            spins = spins + 1 if deadline <= now else 0
            if spins > SPIN_LIMIT:
                raise self.fail(f"pystack asks to be polled again and again at {now}")
            self._poll(max(deadline, now))
        if not self.pending and until >= self.clock.now():
            self._poll(until)

    def _line_time(self, spec: ev.TimeSpec | None) -> float:
        assert spec is not None and spec.start is not None
        when = (self.time if spec.relative else 0.0) + spec.start
        if when < self.clock.now() - EPSILON:
            raise self.fail(
                f"time {format_seconds(when)} is before the current time "
                f"{format_seconds(self.clock.now())}"
            )
        return max(when, self.clock.now())

    def _window(self, spec: ev.TimeSpec | None) -> tuple[float, float]:
        assert spec is not None
        if spec.start is None:
            return self.time, self.time + ANY_TIME_HORIZON
        base = self.time if spec.relative else 0.0
        end = spec.start if spec.end is None else spec.end
        return base + spec.start - self.tolerance, base + end + self.tolerance

    # lines ------------------------------------------------------------------------------------
    def _execute(self, line: ScriptLine) -> None:
        event = line.event
        if isinstance(event, ev.Tolerance):
            self.tolerance = event.seconds
        elif isinstance(event, ev.Ports):
            self.peer_port, self.local_port = event.peer, event.local
        elif isinstance(event, ev.EndStrict):
            self.end_strict = event.seconds
        elif isinstance(event, ev.Setting):
            pass  # applied when the stack was made
        elif isinstance(event, ev.IgnoreOutbound):
            self.ignore_outbound = True
        elif isinstance(event, ev.ExactWindows):
            self.exact_windows = True
        elif isinstance(event, ev.Serve):
            self.stack.add_application(EchoService(self.stack, event.port))
        elif isinstance(event, ev.Wire) and event.direction == OUTBOUND:
            self._expect_packet(line, event)
        else:
            when = self._line_time(line.time)
            self._advance(when)
            if self.pending:
                raise self._unexpected(f"the next line, at {format_seconds(when)}, is not '>'")
            self.time = when
            self._act(line, event, when)
            self._poll(when)

    def _act(self, line: ScriptLine, event: ev.Event, when: float) -> None:
        if isinstance(event, Packet):
            self._inject(line, event, when)
        elif isinstance(event, ev.ICMP):
            self._inject_icmp(line, event, when)
        elif isinstance(event, ev.UDP):
            datagram = inbound_udp(event)
            payload = datagram.build(self.peer_address, self._local_address())
            self._send_payload(PROTO_UDP, payload, when)
            self._record(when, format_event(event), line)
        elif isinstance(event, ev.Echo):
            self._send_payload(PROTO_ICMP, inbound_echo(event).build(), when)
            self._record(when, format_event(event), line)
        elif isinstance(event, ev.RawPacket):
            self._inject_raw(line, event, when)
        elif isinstance(event, ev.Call):
            self._call(line, event, when)
        elif isinstance(event, ev.ExpectInvariants):
            problems = layer_problems(self.stack.tcp)
            if problems:
                raise self.fail(f"invariant broken: {problems[0]}", details=problems[1:])
            self._record(when, format_event(event), line)
        else:
            assert not isinstance(event, ev.Directive)
            try:
                self.application.check(event)
            except CheckFailed as failure:
                raise self.fail(failure.reason, details=failure.details) from None
            self._record(when, format_event(event), line)

    def _record(self, when: float, text: str, line: ScriptLine | None, note: str = "") -> None:
        self.events.append(TraceEntry(when, text, line.number if line else None, note))

    def _finish(self) -> None:
        self._advance(self.clock.now())
        if self.ignore_outbound:
            return
        if self.pending:
            raise self._unexpected("the script has ended")
        if self.end_strict is not None:
            self._advance(self.clock.now() + self.end_strict)
            if self.pending:
                raise self._unexpected(
                    f"'end strict {format_seconds(self.end_strict)}' wants quiet"
                )

    # packets in -------------------------------------------------------------------------------
    def _inject(self, line: ScriptLine, packet: Packet, when: float) -> None:
        # A handshake SYN (not one with FIN or RST, which a connection only challenges) starts
        # the peer's byte stream that 'read' lines check.
        if packet.flags & (SYN | FIN | RST) == SYN and isinstance(packet.seq, int):
            self.application.read_position = (packet.seq + 1) & MASK
        ports = (self.peer_port, self.local_port)
        try:
            segment = inbound_segment(packet, self.numbering, ports, self.latest_local_tsval)
        except ValueError as error:
            raise self.fail(str(error)) from None
        if segment.timestamp is not None:
            self.latest_peer_tsval = segment.timestamp[0]
        source, destination = self.peer_address, self._local_address()
        payload = segment.build(source, destination)
        self._send_ip(IPv4Packet(source, destination, PROTO_TCP, payload, dont_fragment=True), when)
        shown = describe(segment, self.numbering, INBOUND, brief=True)
        self._record(when, format_packet(shown), line)

    def _inject_icmp(self, line: ScriptLine, message: ev.ICMP, when: float) -> None:
        if message.quote is None:
            original, what = self.last_outbound, "TCP or UDP packet"
        else:
            original = self.last_by_protocol.get(message.quote)
            what = f"{message.quote.upper()} packet"
        if original is None:
            raise self.fail(f"an ICMP error quotes pystack's last {what}, but none was sent")
        icmp = icmp_error(message, original)
        quoted = self._show(original)
        if len(icmp.payload) < len(original):
            quoted += f" (its first {len(icmp.payload)} bytes)"
        self._send_payload(PROTO_ICMP, icmp.build(), when)
        self._record(when, format_event(message), line, f"quoting {quoted}")

    def _send_payload(self, protocol: int, payload: bytes, when: float) -> None:
        """An IP packet from the peer to pystack."""
        source, destination = self.peer_address, self._local_address()
        self._send_ip(IPv4Packet(source, destination, protocol, payload), when)

    def _inject_raw(self, line: ScriptLine, raw: ev.RawPacket, when: float) -> None:
        """Put the bytes on the wire as they are; a valid SYN to the script's ports starts the
        peer's byte stream (``read N`` checks against it), as a ``<`` SYN line does."""
        segment: TCPSegment | None = None
        try:
            _, segment = self._decode(raw.data)
        except MalformedPacket:
            pass  # sent all the same: that is what the line is for
        if (
            segment is not None
            and segment.flags & SYN
            and (segment.src_port, segment.dst_port) == (self.peer_port, self.local_port)
        ):
            self.application.read_position = self.numbering.wire_to_peer(segment.seq + 1)
        self.wire.send(raw.data, when)
        self._record(when, f"< raw {summarize_ipv4(raw.data)}", line)

    def _send_ip(self, packet: IPv4Packet, when: float) -> None:
        self.wire.send(packet.build(), when)

    def _local_address(self) -> int:
        """The address of the side under test (here pystack's stack; the kernel target's own)."""
        return self.stack.address

    # calls ------------------------------------------------------------------------------------
    def _call(self, line: ScriptLine, call: ev.Call, when: float) -> None:
        text = format_event(call)
        try:
            note = self.application.perform(call, when)
        except CheckFailed as failure:
            self._record(when, text, line, "failed")
            raise self.fail(failure.reason, details=failure.details) from None
        except OSError as error:
            name = errno_name(error.errno)
            self._record(when, text, line, f"raised {name}")
            if call.error == name:
                return
            raise self.fail(f"the call raised {type(error).__name__}: {error}") from error
        except Exception as error:
            raise self.fail(f"the call raised {type(error).__name__}: {error}") from error
        self._record(when, text, line, note)
        if call.error is not None:
            raise self.fail(f"the call succeeded, expected it to fail with {call.error}")
        if isinstance(call, ev.Listen):
            self.local_port = call.port
        elif isinstance(call, ev.Connect):
            self.peer_address, self.peer_port = ip_from_str(call.address), call.port
            self.local_port = self.application.require_connection().local_port

    # packets out ------------------------------------------------------------------------------
    def _decode(self, frame: bytes) -> tuple[IPv4Packet, TCPSegment | None]:
        packet = IPv4Packet.parse(frame)
        if packet.protocol != PROTO_TCP:
            return packet, None
        return packet, TCPSegment.parse(packet.payload, packet.src, packet.dst)

    def _show(self, frame: bytes) -> str:
        """pystack's packet in notation (tcpdump style when the notation has no line for it)."""
        try:
            packet, segment = self._decode(frame)
            if segment is not None:
                return format_packet(describe(segment, self.numbering, OUTBOUND, brief=True))
            if packet.protocol == PROTO_UDP:
                datagram = UDPDatagram.parse(packet.payload, packet.src, packet.dst)
                return format_event(describe_udp(datagram, OUTBOUND))
            if packet.protocol == PROTO_ICMP:
                shown = describe_icmp(ICMPv4Message.parse(packet.payload), OUTBOUND)
                if shown is not None:
                    return format_event(shown)
        except MalformedPacket as error:
            return f"> malformed packet ({error})"
        return f"> {summarize_ipv4(frame)}"

    def _learn_isn(self, segment: TCPSegment, script_seq: ev.Field) -> None:
        """Each SYN pystack sends starts a connection: its seq is the line's (0 if not given)."""
        if segment.flags & SYN:
            seq = script_seq if isinstance(script_seq, int) else 0
            self.numbering.local_isn = (segment.seq - seq) & MASK

    def _unexpected(self, context: str) -> ScriptFailure:
        when, frame = self.pending[0]
        try:
            _, segment = self._decode(frame)
            if segment is not None:
                self._learn_isn(segment, 0)
        except MalformedPacket:
            pass
        shown = self._show(frame)
        self._record(when, shown, None, "unexpected")
        return self.fail(
            f"pystack sent a packet the script does not expect ({context})",
            expected="nothing",
            actual=f"{format_seconds(when)} {shown}",
        )

    def _expect_packet(self, line: ScriptLine, expected: ev.Wire) -> None:
        low, high = self._window(line.time)
        wanted = f"{_format_window(line.time, low, high, self.tolerance)} {format_event(expected)}"
        if not self.pending and high >= self.clock.now() - EPSILON:
            self._advance(high)
        if not self.pending:
            raise self.fail("pystack sent nothing", expected=wanted, actual="nothing")
        when, frame = self.pending.popleft()
        try:
            packet, segment = self._decode(frame)
            if isinstance(expected, Packet) and segment is not None:
                self._learn_isn(segment, expected.seq if expected.flags & SYN else 0)
            problems = self._wire_problems(expected, packet, segment)
        except MalformedPacket as error:
            raise self.fail(f"pystack sent a malformed packet: {error}", expected=wanted) from None
        shown = self._show(frame)
        actual = f"{format_seconds(when)} {shown}"
        if problems is None:
            self._record(when, shown, line, "mismatch")
            what = {Packet: "TCP", ev.UDP: "UDP"}.get(type(expected), "ICMP")
            raise self.fail(
                f"pystack sent something other than {what}", expected=wanted, actual=actual
            )
        if when < low - EPSILON or when > high + EPSILON:
            problems.insert(
                0,
                f"time: sent at {format_seconds(when)}, expected "
                f"{_format_window(line.time, low, high, self.tolerance)}",
            )
        self._record(when, shown, line, "mismatch" if problems else "")
        if problems:
            reason = (
                "wrong time"
                if problems[0].startswith("time:") and len(problems) == 1
                else "pystack's packet differs from the line"
            )
            raise self.fail(reason, expected=wanted, actual=actual, details=problems)
        self.time = when
        if packet.protocol in (PROTO_TCP, PROTO_UDP):
            self.last_outbound = frame
            self.last_by_protocol["tcp" if packet.protocol == PROTO_TCP else "udp"] = frame
        if segment is not None and segment.timestamp is not None:
            self.latest_local_tsval = segment.timestamp[0]

    def _wire_problems(
        self, expected: ev.Wire, packet: IPv4Packet, segment: TCPSegment | None
    ) -> list[str] | None:
        """How pystack's packet differs from the line; None if it is another protocol."""
        if isinstance(expected, Packet):
            return None if segment is None else self._problems(expected, packet, segment)
        if isinstance(expected, ev.UDP):
            if packet.protocol != PROTO_UDP:
                return None
            datagram = UDPDatagram.parse(packet.payload, packet.src, packet.dst)
            return udp_mismatches(expected, datagram)
        if packet.protocol != PROTO_ICMP:
            return None
        return icmp_mismatches(expected, ICMPv4Message.parse(packet.payload))

    def _problems(self, expected: Packet, packet: IPv4Packet, segment: TCPSegment) -> list[str]:
        actual = describe(segment, self.numbering, OUTBOUND)
        problems = mismatches(
            expected,
            actual,
            self.latest_peer_tsval,
            exact_layout=self.exact_layout,
            exact_windows=self.exact_windows,
        )
        if packet.dst != self.peer_address or segment.dst_port != self.peer_port:
            problems.append(
                f"sent to {ip_to_str(packet.dst)}:{segment.dst_port}, not to the peer "
                f"{ip_to_str(self.peer_address)}:{self.peer_port}"
            )
        if segment.src_port != self.local_port:
            problems.append(f"source port {segment.src_port}, expected {self.local_port}")
        payload_problem = self._payload_problem(actual, segment)
        if payload_problem:
            problems.append(payload_problem)
        return problems

    def _payload_problem(self, actual: Packet, segment: TCPSegment) -> str | None:
        """Data pystack sends must be what the application wrote, at the right offset."""
        if not segment.payload or not isinstance(actual.seq, int):
            return None
        offset = (actual.seq + (1 if segment.flags & SYN else 0) - 1) & MASK
        written = self.application.written
        end = offset + len(segment.payload)
        if end > len(written):
            return f"payload: bytes {offset}..{end} of the stream, but only {len(written)} written"
        if segment.payload != written[offset:end]:
            index = next(i for i, b in enumerate(segment.payload) if b != written[offset + i])
            return f"payload: byte {offset + index} of the stream differs from what was written"
        return None


def _format_window(spec: ev.TimeSpec | None, low: float, high: float, tolerance: float) -> str:
    if spec is not None and spec.start is None:
        return f"any time after {format_seconds(low)}"
    if spec is not None and spec.end is None and not tolerance:
        return format_seconds(low)
    return f"{format_seconds(low)}~{format_seconds(high)}"


def run_script(
    text: str,
    *,
    config_overrides: dict[str, Any] | None = None,
    seed: int = 1,
    peer_isn_offset: int = 0,
    tcp_settings: TCPSettings | None = None,
    settings: Mapping[str, str] | None = None,
) -> ScriptResult:
    """Parse and run ``text`` in a fresh world; raises ``ScriptFailure`` or ``ScriptSyntaxError``
    (``SettingError`` for a ``set`` line or ``settings`` entry the pystack target cannot take)."""
    runner = ScriptRunner(
        text,
        config_overrides=config_overrides,
        seed=seed,
        peer_isn_offset=peer_isn_offset,
        tcp_settings=tcp_settings,
        settings=settings,
    )
    return runner.run()
