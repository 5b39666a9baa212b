"""A discrete-event driver for stacks joined by in-memory links, on a manual clock.

``Simulation`` polls every stack at the current virtual time until a whole round moves no frame,
then jumps the clock to the earliest deadline any stack (or link) reports. Nothing sleeps, so a
test of 30 s reassembly timeouts or 10 MB transfers runs as fast as the code does, and a run is
exactly repeatable for the same seeds and inputs. Every run is bounded in steps.
Entry points: ``Simulation.add``, ``Simulation.run_until``, ``Simulation.run_for``.
"""

from __future__ import annotations

from collections.abc import Callable

from pystack.clock import ManualClock
from pystack.stack import Stack

MAX_ROUNDS_PER_INSTANT = 10_000


class SimulationStuck(RuntimeError):
    """The step bound was reached: something keeps generating work at one instant."""


class Simulation:
    def __init__(self, clock: ManualClock | None = None) -> None:
        self.clock = clock if clock is not None else ManualClock()
        self.stacks: list[Stack] = []
        self.steps = 0

    def add(self, stack: Stack) -> Stack:
        self.stacks.append(stack)
        return stack

    @property
    def now(self) -> float:
        return self.clock.now()

    def settle(self) -> int:
        """Poll all stacks at the current time until no frame moves; returns frames moved.

        A frame moves when a stack takes one from its link or puts one on the wire (a timer, or a
        delay line releasing it): a frame sent to a stack already polled in this round waits in
        its in-memory link, which reports no deadline, so it needs another round now.
        """
        moved = 0
        now = self.clock.now()
        for _ in range(MAX_ROUNDS_PER_INSTANT):
            sent_before = self._frames_sent()
            handled = sum(stack.poll(now) for stack in self.stacks)
            moved += handled
            if handled == 0 and self._frames_sent() == sent_before:
                return moved
        raise SimulationStuck(f"no quiet moment after {MAX_ROUNDS_PER_INSTANT} rounds at t={now}")

    def _frames_sent(self) -> int:
        return sum(stack.link.statistics.frames_sent for stack in self.stacks)

    def next_deadline(self) -> float | None:
        deadlines = [d for d in (stack.next_deadline() for stack in self.stacks) if d is not None]
        return min(deadlines) if deadlines else None

    def step(self, limit: float) -> bool:
        """Settle, then advance to the next deadline (at most ``limit``); False when idle."""
        self.settle()
        self.steps += 1
        deadline = self.next_deadline()
        now = self.clock.now()
        if deadline is None or deadline > limit:
            if limit > now:
                self.clock.set(limit)
            return False
        self.clock.set(max(now, deadline))
        return True

    def run_until(
        self, predicate: Callable[[], bool], timeout: float, max_steps: int = 1_000_000
    ) -> bool:
        """Run until ``predicate()`` holds (True) or ``timeout`` virtual seconds pass (False)."""
        end = self.clock.now() + timeout
        for _ in range(max_steps):
            self.settle()
            if predicate():
                return True
            if self.clock.now() >= end:
                return False
            if not self.step(end) and self.clock.now() >= end:
                self.settle()
                return predicate()
        raise SimulationStuck(f"predicate still false after {max_steps} steps")

    def run_for(self, duration: float, max_steps: int = 1_000_000) -> None:
        end = self.clock.now() + duration
        for _ in range(max_steps):
            if not self.step(end) and self.clock.now() >= end:
                self.settle()
                return
        raise SimulationStuck(f"still busy after {max_steps} steps")
