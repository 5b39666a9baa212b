"""The world one fuzz case runs in: pystack under test, the fuzzing peer, a reference peer.

::

    fuzzing peer 10.0.0.1 --- script lines ---> ScriptRunner --+
                                                               |  memory link, virtual time
    reference peer 10.0.0.3 (a second pystack) <--- routed ----+--- pystack under test 10.0.0.2
        (request/response and a transfer                            (``serve echo 7``, and
         through the echo service; checks every byte)                 the case's socket calls)

Everything the host under test receives, and every call made on it, is a line of the script
notation fed to a ``ScriptRunner`` with ``ignore outbound``: the fuzzer's packets as ``< raw``
lines, the reference peer's packets too (routed in as they leave it), the calls as call lines,
the passing of time as ``T expect nothing`` lines at absolute times. So the lines of a case are
its reproducer as they stand, and replaying them with the script runner repeats the case
exactly (the host's randomness is the runner's default seed, its settings the runner's).
The echo service is a line too (``serve echo 7``); the reference peer is not in a replay (its
packets are), so a finding only its checks see does not replay, and the campaign says so.

After every line the world checks the invariants (``check``): no exception escaped (the runner
turns one into a ``ScriptFailure``), ``pystack.tcp.invariants`` on both stacks, RCV.NXT only
moving forward, the IP reassembly within its bounds, and the reference bytes exact. The first
broken one is the case's ``Finding``. Coverage is the set of (state, cause, next state) triples
of the host's TCP transitions, from the layer's trace hook.
Entry points: ``World``, ``Finding``, ``Triple``.
"""

from __future__ import annotations

import random
import re
from collections import deque
from dataclasses import dataclass, field

from pystack.clock import ManualClock
from pystack.link.base import LinkKind
from pystack.link.memory import MemoryLink
from pystack.script.application import errno_name
from pystack.script.events import Call, ScriptLine
from pystack.script.formatting import format_seconds
from pystack.script.notation import parse_line
from pystack.script.report import ScriptFailure
from pystack.script.runner import PEER_ADDRESS, STACK_ADDRESS, ScriptRunner
from pystack.stack import Stack, StackConfig
from pystack.tcp.connection import TCPConnection
from pystack.tcp.invariants import layer_problems
from pystack.tcp.seq import seq_diff
from pystack.tcp.state import TCPState
from pystack.tcp.tcb import Transition
from pystack.wire.addresses import ip_from_str

REFERENCE_ADDRESS = "10.0.0.3"
ECHO_PORT = 7
RUNNER_SEED = 1  # the runner's default: a replay builds the same host
MAX_LINES = 20_000  # per case, whatever the time and actions: a case is bounded
MAX_ROUTING_ROUNDS = 64
TO_PEER_KEPT = 4096  # the host's packets the fuzzing peer may look at between two actions
SPIN_LIMIT = 100  # polls at one instant before a stack counts as stuck  # frames bounced between the stacks at one instant
TRANSFER_CHUNK = 8192  # the transfer goes in exchanges of this size
REFERENCE_TIMEOUT = 600.0  # virtual seconds the reference exchange may take in all

Triple = tuple[str, str, str]  # (state, cause, next state)


@dataclass
class Finding:
    """A broken invariant: ``kind`` and what. The kinds: ``exception`` (one escaped the stack),
    ``invariant`` (``pystack.tcp.invariants`` on the host), ``read`` (the application read
    other bytes than the peer sent), ``sequence`` (RCV.NXT went back), ``reassembly`` (IP
    reassembly past its bounds), ``reference`` (the reference exchange lost a byte or did not
    finish, or the reference stack broke), ``stuck`` (a stack asks to be polled forever),
    ``script`` (the runner refused a line the generator wrote) and ``fuzzer`` (the generator
    itself raised): those two are bugs of the fuzzer, reported all the same."""

    kind: str
    message: str
    details: tuple[str, ...] = ()
    lines: tuple[str, ...] = ()  # the case's lines up to it (the reproducer before minimizing)

    @property
    def signature(self) -> str:
        """What must stay the same while the reproducer is minimized (numbers left out)."""
        return f"{self.kind}: {re.sub(r'[0-9]+', 'N', self.message)}"


class CaseOver(Exception):
    """The case ends here (a finding, or its line budget)."""


@dataclass
class ReferenceClient:
    """The reference peer's application: request/response exchanges, then one transfer in
    chunks, through the host's echo service, with pauses between them so they run while the
    fuzzer acts. Every byte that comes back must be the byte sent."""

    stack: Stack
    requests: list[int]  # sizes of the request/response exchanges
    transfer: int  # bytes of the final transfer
    pauses: list[float]  # seconds between exchanges (used in turn)
    connection: TCPConnection | None = None
    sent: bytearray = field(default_factory=bytearray)
    received: int = 0
    done: bool = False
    problem: str | None = None
    _plan: list[int] = field(default_factory=list)
    _outstanding: int = 0  # bytes of the current exchange not yet echoed
    _pending: bytes = b""  # bytes of the current exchange not yet taken by send
    _wake: float = 0.0  # the next exchange starts then

    def step(self, now: float) -> None:
        if self.done or self.problem:
            return
        if self.connection is None:
            chunks = [TRANSFER_CHUNK] * (self.transfer // TRANSFER_CHUNK)
            self._plan = [*self.requests, *chunks, self.transfer % TRANSFER_CHUNK or 1]
            host = ip_from_str(STACK_ADDRESS.split("/")[0])
            self.connection = self.stack.tcp_connect(host, ECHO_PORT, now)
        connection = self.connection
        data = connection.receive(1 << 16)
        if data:
            expected = bytes(self.sent[self.received : self.received + len(data)])
            if data != expected:
                at = next(
                    (i for i, (a, b) in enumerate(zip(data, expected, strict=False)) if a != b),
                    len(expected),
                )
                self.problem = f"reference data differs at byte {self.received + at}"
                return
            self.received += len(data)
            self._outstanding -= len(data)
        finished = self._outstanding == 0 and not self._plan
        if finished and connection.at_eof:  # all echoed, and the echo service closed after us
            self.done = True
            return
        if connection.state is TCPState.CLOSED or connection.error is not None:
            name = errno_name(connection.error)
            total = len(self.sent) + sum(self._plan)
            self.problem = (
                f"reference connection lost ({name}) with {self.received} of {total} bytes echoed"
            )
            return
        if connection.state is not TCPState.ESTABLISHED:
            return
        if self._outstanding == 0 and self._plan and now >= self._wake:
            self._wake = now + self.pauses[len(self._plan) % len(self.pauses)]
            size = self._plan.pop(0)
            self._outstanding = size
            self._pending = _stream(len(self.sent), size)
            self.sent += self._pending
        if self._pending:
            self._pending = self._pending[connection.send(self._pending, now) :]
        elif finished and not connection.fin_queued:
            connection.close(now)

    def next_deadline(self) -> float | None:
        connection = self.connection
        waiting = (
            connection is not None
            and connection.state is TCPState.ESTABLISHED
            and self._plan
            and self._outstanding == 0
            and not (self.done or self.problem)
        )
        return self._wake if waiting else None


def _stream(start: int, size: int) -> bytes:
    """The reference stream's bytes start..start+size (not the script pattern: a different
    period, so a byte of one stream showing up in the other is noticed)."""
    return bytes((i * 7 + i // 251) & 0xFF for i in range(start, start + size))


class World:
    """One case's network. ``feed`` executes a line; ``advance`` lets time pass."""

    def __init__(self, *, reference: bool = True, rng_seed: int = 0) -> None:
        self.clock = ManualClock()
        link, wire = MemoryLink.pair(kind=LinkKind.IP, capacity=4096)
        config = StackConfig(address=STACK_ADDRESS, gateway=PEER_ADDRESS)
        self.stack = Stack(config, link, self.clock, random.Random(RUNNER_SEED))
        self.runner = ScriptRunner((), stack=self.stack, wire=wire)
        self.address = self.stack.address
        self.peer_address = ip_from_str(PEER_ADDRESS)
        self.reference_address = ip_from_str(REFERENCE_ADDRESS)
        self.coverage: set[Triple] = set()
        self.stack.tcp.set_trace_hooks(self._transition, None, None)
        self.finding: Finding | None = None
        # the host's packets to the fuzzing peer, not yet seen (the newest, if it sent very many)
        self.to_peer: deque[bytes] = deque(maxlen=TO_PEER_KEPT)
        self._rcv_nxt: dict[TCPConnection, int] = {}
        self.reference: ReferenceClient | None = None
        self.reference_stack: Stack | None = None
        self.feed("ignore outbound")
        self.feed(f"serve echo {ECHO_PORT}")  # (always: every reproducer starts the same)
        if reference:  # (after the echo service is up)
            b_link, self._b_wire = MemoryLink.pair(kind=LinkKind.IP, capacity=4096)
            b_config = StackConfig(address=f"{REFERENCE_ADDRESS}/24")
            self.reference_stack = Stack(b_config, b_link, self.clock, random.Random(rng_seed))
            sizes = random.Random(rng_seed)
            self.reference = ReferenceClient(
                self.reference_stack,
                [sizes.randint(1, 3000) for _ in range(sizes.randint(1, 4))],
                sizes.randint(1000, 40_000),
                [sizes.choice((0.0, 0.01, 0.2, 0.5, 1.0, 2.0)) for _ in range(5)],
            )
            self.reference_stack.add_application(self.reference)

    # coverage ---------------------------------------------------------------------------------
    def _transition(self, connection: TCPConnection, transition: Transition) -> None:
        # Numbers in a cause (an ICMP message's length, a retry limit) do not make a new triple.
        cause = re.sub(r"\((\d+)\)", "(N)", re.sub(r"length \d+", "length N", transition.cause))
        self.coverage.add((transition.old.value, cause, transition.new.value))

    # lines ------------------------------------------------------------------------------------
    @property
    def now(self) -> float:
        return self.clock.now()

    @property
    def lines(self) -> tuple[str, ...]:
        return tuple(line.text for line in self.runner.lines)

    def at(self, when: float, text: str) -> None:
        """Feed ``text`` at absolute time ``when`` (not before now)."""
        self.feed(f"{format_seconds(max(when, self.now))} {text}")

    def feed(self, text: str) -> None:
        """Execute one line, route what the host sends, and check the invariants."""
        if self.finding is not None:
            raise CaseOver
        if len(self.runner.lines) >= MAX_LINES:
            raise CaseOver
        self._execute(text)
        self._route()
        self.check()

    def _execute(self, text: str) -> None:
        line = parse_line(text, len(self.runner.lines) + 1)
        assert line is not None
        try:
            self.runner.feed(line)
        except ScriptFailure as failure:
            if not self._call_failed(line, failure):
                found = classify(failure)
                self._found(found.kind, found.message, found.details)

    def _call_failed(self, line: ScriptLine, failure: ScriptFailure) -> bool:
        """A call that raised OSError is no finding: the line becomes ``call = ERRNO`` (what a
        replay then expects) and the poll the runner skipped is made up."""
        cause = failure.__cause__
        if not isinstance(line.event, Call) or not isinstance(cause, OSError):
            return False
        text = f"{line.text} = {errno_name(cause.errno)}"
        fixed = parse_line(text, line.number)
        assert fixed is not None
        self.runner.lines[-1] = fixed
        self.runner.poll_now()
        return True

    def _route(self) -> None:
        """Deliver the host's packets: to the reference peer, or to the fuzzer's inbox; the
        reference peer's answers go in as ``< raw`` lines at once (until all is quiet)."""
        for _ in range(MAX_ROUTING_ROUNDS):
            moved = False
            outbound = self.runner.outbound
            while outbound:
                when, frame = outbound.popleft()
                destination = int.from_bytes(frame[16:20], "big") if len(frame) >= 20 else 0
                if self.reference_stack is not None and destination == self.reference_address:
                    self._b_wire.send(frame, when)
                else:
                    self.to_peer.append(frame)
            if self.reference_stack is None:
                return
            try:
                self.reference_stack.poll(self.now)
            except Exception as error:  # the reference is pystack too: its crash is a finding
                self._found("reference", f"reference stack raised {type(error).__name__}: {error}")
            for frame in self._b_wire.receive(self.now, 1 << 20):
                moved = True
                self._execute(_raw_line(self.now, frame))
            if not moved:
                return
        self._found("stuck", f"the stacks still exchange packets after {MAX_ROUTING_ROUNDS} rounds")

    def inject(self, packets: tuple[bytes, ...]) -> None:
        """The fuzzing peer sends ``packets`` now, as ``< raw`` lines."""
        for packet in packets:
            self.feed(_raw_line(self.now, packet))

    def advance(self, seconds: float) -> None:
        """Let ``seconds`` of virtual time pass, stopping at every deadline of either stack, so
        the reference peer answers as promptly as a wire would let it."""
        target = self.now + seconds
        spins = 0
        while self.now < target - 1e-9:
            deadlines = [self.stack.next_deadline(), target]
            if self.reference_stack is not None:
                deadlines.append(self.reference_stack.next_deadline())
            when = min(d for d in deadlines if d is not None)
            # A deadline that a poll does not move on is a stack asking to be polled forever.
            spins = spins + 1 if when < self.now + 1e-6 else 0
            if spins > SPIN_LIMIT:
                a, b = self.stack.next_deadline(), self._reference_deadline()
                self._found("stuck", f"deadline {a} (host) / {b} (reference) at {self.now}")
            self.at(max(when, self.now + 1e-6), "expect nothing")

    def _reference_deadline(self) -> float | None:
        return None if self.reference_stack is None else self.reference_stack.next_deadline()

    def finish_reference(self) -> None:
        """Let the reference exchange finish (bounded in virtual time); it must, byte-exact."""
        reference = self.reference
        if reference is None:
            return
        deadline = self.now + REFERENCE_TIMEOUT
        while not (reference.done or reference.problem) and self.now < deadline:
            self.advance(min(5.0, deadline - self.now))
        if reference.problem is None and not reference.done:
            reference.problem = (
                f"reference exchange unfinished after {REFERENCE_TIMEOUT:.0f} s "
                f"({reference.received} of {len(reference.sent)} bytes echoed)"
            )
        self.check()

    # invariants -------------------------------------------------------------------------------
    def check(self) -> None:
        if self.finding is not None:
            raise CaseOver
        problems = layer_problems(self.stack.tcp)
        if problems:
            self._found("invariant", problems[0], tuple(problems[1:]))
        for connection in self.stack.tcp.connections.values():
            if connection.state in (TCPState.SYN_SENT, TCPState.SYN_RECEIVED):
                continue  # RCV.NXT is set by the opening
            before = self._rcv_nxt.get(connection)
            if before is not None and seq_diff(connection.rcv_nxt, before) < 0:
                self._found(
                    "sequence",
                    f"{connection.local_port}->{connection.remote_port}: RCV.NXT went back "
                    f"from {before} to {connection.rcv_nxt}",
                )
            self._rcv_nxt[connection] = connection.rcv_nxt
        reassembler = self.stack.ip.reassembler
        settings = reassembler.settings
        if len(reassembler) > settings.max_datagrams or reassembler.memory > settings.memory_limit:
            self._found(
                "reassembly",
                f"IP reassembly holds {len(reassembler)} datagrams, {reassembler.memory} bytes",
            )
        if self.reference_stack is not None:
            problems = layer_problems(self.reference_stack.tcp)
            if problems:
                self._found("reference", f"reference stack: {problems[0]}")
        if self.reference is not None and self.reference.problem:
            self._found("reference", self.reference.problem)

    def _found(self, kind: str, message: str, details: tuple[str, ...] = ()) -> None:
        self.finding = Finding(kind, message, details, self.lines)
        raise CaseOver


INVARIANT_PREFIX = "invariant broken: "  # what the runner's ``expect invariants`` says


def classify(failure: ScriptFailure) -> Finding:
    """The finding a script failure is (in the harness and in a replay alike)."""
    reason = failure.reason
    if reason.startswith(INVARIANT_PREFIX):
        return Finding("invariant", reason[len(INVARIANT_PREFIX) :], tuple(failure.details))
    if reason.startswith(("read ", "expected end")):
        return Finding("read", reason, tuple(failure.details))
    if reason.startswith(("pystack raised", "the call raised")):
        return Finding("exception", reason, tuple(failure.details))
    # The runner refused a line: the generator's fault, not pystack's; reported all the same.
    return Finding("script", reason, tuple(failure.details))


def _raw_line(when: float, packet: bytes) -> str:
    return f"{format_seconds(when)} < raw {packet.hex()}"
