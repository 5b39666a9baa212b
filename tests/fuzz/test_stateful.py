"""Hypothesis drives two pystack stacks over a memory link: API calls and network events.

The state machine holds a client stack (10.0.0.2) and a server stack (10.0.0.1, listening on
5000) whose frames pass through a test-controlled wire: hypothesis chooses the next step among
the application's calls (connect, accept, send, recv, shutdown, close) on either side and the
network's events (deliver, drop, duplicate, reorder, corrupt a byte, let time pass). After every
step the invariants hold on both stacks (``pystack.tcp.invariants``: sequence space, buffers,
tables) and what each side has read is exactly a prefix of what the other side sent. The
``heal`` step then lets the network behave for a while: everything sent must arrive, byte for
byte, unless a side closed or reset the connection. Virtual time throughout (a ManualClock).
"""

from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from pystack.clock import ManualClock
from pystack.link.base import LinkKind
from pystack.link.memory import MemoryLink
from pystack.stack import Stack, StackConfig
from pystack.tcp import input as tcp_input
from pystack.tcp.connection import TCPConnection
from pystack.tcp.input import ConnectionInput
from pystack.tcp.invariants import layer_problems
from pystack.tcp.state import TCPState

PORT = 5000
IN_FLIGHT_LIMIT = 256  # frames the wire holds; beyond it the oldest is lost
HEAL_SECONDS = 900.0  # virtual time the heal step may take
SIDES = ("client", "server")


def _stream(side: str, start: int, size: int) -> bytes:
    """Each side's bytes differ (and are not periodic in a short run), so a byte from the
    wrong place shows."""
    salt = 0 if side == "client" else 101
    return bytes((i * 31 + i // 253 + salt) & 0xFF for i in range(start, start + size))


class TwoStacks(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.clock = ManualClock()
        client_link, self.client_wire = MemoryLink.pair(kind=LinkKind.IP, capacity=4096)
        server_link, self.server_wire = MemoryLink.pair(kind=LinkKind.IP, capacity=4096)
        self.client = Stack(
            StackConfig(address="10.0.0.2/24"), client_link, self.clock, random.Random(1)
        )
        self.server = Stack(
            StackConfig(address="10.0.0.1/24"), server_link, self.clock, random.Random(2)
        )
        self.listener = self.server.tcp_listen(PORT)
        self.connections: dict[str, TCPConnection | None] = {"client": None, "server": None}
        self.sent = {side: bytearray() for side in SIDES}
        self.received = {side: bytearray() for side in SIDES}
        self.finished = {side: False for side in SIDES}  # shut down or closed: sends no more
        self.in_flight: list[tuple[str, bytes]] = []  # (to which side, IP packet)

    # the wire ---------------------------------------------------------------------------------
    def _pump(self) -> None:
        now = self.clock.now()
        for _ in range(50):
            self.client.poll(now)
            self.server.poll(now)
            moved = False
            for frame in self.client_wire.receive(now, 1 << 16):
                self.in_flight.append(("server", frame))
                moved = True
            for frame in self.server_wire.receive(now, 1 << 16):
                self.in_flight.append(("client", frame))
                moved = True
            if not moved:
                break
        del self.in_flight[:-IN_FLIGHT_LIMIT]
        if self.connections["server"] is None:
            self.connections["server"] = self.listener.accept()

    def _deliver(self, count: int) -> None:
        now = self.clock.now()
        batch, self.in_flight = self.in_flight[:count], self.in_flight[count:]
        for side, frame in batch:
            (self.client_wire if side == "client" else self.server_wire).send(frame, now)
        self._pump()

    def _advance(self, seconds: float) -> None:
        target = self.clock.now() + seconds
        for _ in range(10_000):
            deadlines = [d for d in (self.client.next_deadline(), self.server.next_deadline()) if d]
            when = min([target, *deadlines])
            self.clock.set(max(when, self.clock.now()))
            self._pump()
            if self.clock.now() >= target:
                return

    # application calls ------------------------------------------------------------------------
    @precondition(lambda self: self.connections["client"] is None)
    @rule()
    def connect(self) -> None:
        self.connections["client"] = self.client.tcp_connect(
            self.server.address, PORT, self.clock.now()
        )
        self._pump()

    @rule(side=st.sampled_from(SIDES), size=st.sampled_from([1, 100, 1460, 5000, 70_000]))
    def send(self, side: str, size: int) -> None:
        connection = self.connections[side]
        if connection is None or self.finished[side]:
            return
        if connection.state not in (TCPState.ESTABLISHED, TCPState.CLOSE_WAIT):
            return
        data = _stream(side, len(self.sent[side]), size)
        accepted = connection.send(data, self.clock.now())
        self.sent[side] += data[:accepted]
        self._pump()

    @rule(side=st.sampled_from(SIDES), size=st.sampled_from([1, 1000, 1 << 20]))
    def recv(self, side: str, size: int) -> None:
        connection = self.connections[side]
        if connection is not None:
            self.received[side] += connection.receive(size)
            self._pump()

    @rule(side=st.sampled_from(SIDES), close=st.booleans())
    def finish(self, side: str, close: bool) -> None:
        connection = self.connections[side]
        if connection is None or self.finished[side] or connection.state is TCPState.CLOSED:
            return
        self.finished[side] = True
        if close:
            # close() means nobody reads any more: what arrives later is answered with RST
            # (RFC 9293 3.10.4), so the byte-exact check below stops for this direction.
            connection.close(self.clock.now())
        else:
            connection.shutdown(self.clock.now())
        self._pump()

    # network events ---------------------------------------------------------------------------
    @rule(count=st.integers(1, 20))
    def deliver(self, count: int) -> None:
        self._deliver(count)

    @precondition(lambda self: self.in_flight)
    @rule(index=st.integers(0, 1000))
    def drop(self, index: int) -> None:
        del self.in_flight[index % len(self.in_flight)]

    @precondition(lambda self: self.in_flight)
    @rule(index=st.integers(0, 1000))
    def duplicate(self, index: int) -> None:
        self.in_flight.append(self.in_flight[index % len(self.in_flight)])

    @precondition(lambda self: len(self.in_flight) >= 2)
    @rule(index=st.integers(0, 1000))
    def reorder(self, index: int) -> None:
        self.in_flight.insert(0, self.in_flight.pop(index % len(self.in_flight)))

    @precondition(lambda self: self.in_flight)
    @rule(index=st.integers(0, 1000), position=st.integers(0, 100_000))
    def corrupt(self, index: int, position: int) -> None:
        """One byte changed: the IP or TCP checksum must catch it."""
        slot = index % len(self.in_flight)
        side, frame = self.in_flight[slot]
        damaged = bytearray(frame)
        damaged[position % len(damaged)] ^= 0x5A
        self.in_flight[slot] = (side, bytes(damaged))

    @rule(seconds=st.sampled_from([0.001, 0.04, 0.3, 1.0, 5.0, 30.0]))
    def wait(self, seconds: float) -> None:
        self._advance(seconds)

    @rule()
    def heal(self) -> None:
        """The network behaves: deliver everything, read everything, let timers run."""
        deadline = self.clock.now() + HEAL_SECONDS
        while self.clock.now() < deadline:
            self._deliver(len(self.in_flight))
            for side in SIDES:
                self.recv(side, 1 << 20)
            if not self.in_flight and self._complete():
                break
            self._advance(0.5)
        for side, other in (("client", "server"), ("server", "client")):
            if self._direction_alive(side, other):
                assert self.received[other] == self.sent[side], (
                    f"{side} sent {len(self.sent[side])} bytes, {other} got "
                    f"{len(self.received[other])}"
                )

    def _direction_alive(self, side: str, other: str) -> bool:
        """Must ``side``'s bytes all reach ``other``? Yes while both ends are whole: neither
        reset, and the reader has not closed (it would answer new data with RST)."""
        mine, theirs = self.connections[side], self.connections[other]
        if mine is None or theirs is None:
            return False
        if mine.error is not None or theirs.error is not None:
            return False
        return not (self.finished[other] and theirs.user_closed)

    def _complete(self) -> bool:
        return all(
            not self._direction_alive(side, other) or self.received[other] == self.sent[side]
            for side, other in (("client", "server"), ("server", "client"))
        )

    # invariants -------------------------------------------------------------------------------
    @invariant()
    def sequence_space_and_bounds(self) -> None:
        assert layer_problems(self.client.tcp) == []
        assert layer_problems(self.server.tcp) == []

    @invariant()
    def reads_are_exact_prefixes(self) -> None:
        for side, other in (("client", "server"), ("server", "client")):
            got = self.received[other]
            assert got == self.sent[side][: len(got)], f"{other} read bytes {side} never sent"


TwoStacks.TestCase.settings = settings(
    max_examples=60,
    stateful_step_count=50,
    deadline=None,
    derandomize=True,  # the same examples on every run: a failure in CI is repeatable
    suppress_health_check=[HealthCheck.too_slow],
)
test_two_stacks = TwoStacks.TestCase


def test_the_machine_catches_a_receiver_that_takes_out_of_window_data(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The same machine against the planted bug of test_planted_bug.py: it must fail."""
    from tests.fuzz.test_planted_bug import _accept_everything, _take_as_next

    monkeypatch.setattr(tcp_input, "check_sequence", _accept_everything)
    monkeypatch.setattr(ConnectionInput, "_receive_data", _take_as_next)
    quick = settings(
        TwoStacks.TestCase.settings,
        phases=[Phase.generate],  # no shrinking: finding it is what counts here
        report_multiple_bugs=False,
    )
    with pytest.raises(AssertionError):
        run_state_machine_as_test(TwoStacks, settings=quick)
