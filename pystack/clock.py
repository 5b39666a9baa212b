"""Clocks: where ``now`` comes from.

Protocol code never reads time itself; it is handed ``now`` (seconds, float). The runner reads a
``SystemClock`` (monotonic); tests and the scripted simulation use a ``ManualClock`` they advance
themselves; ``pystack run`` on the simulator uses a ``VirtualClock``, which jumps to the next
deadline whenever every party waits (the model: docs/virtual-time.md).
Entry points: ``SystemClock``, ``ManualClock``, ``VirtualClock``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float: ...


class SystemClock:
    """Monotonic seconds (``time.monotonic``)."""

    def now(self) -> float:
        return time.monotonic()


class ManualClock:
    """A clock that moves only when told to; for tests and simulations."""

    def __init__(self, start: float = 0.0) -> None:
        self._now = start

    def now(self) -> float:
        return self._now

    def advance(self, seconds: float) -> float:
        if seconds < 0:
            raise ValueError("a clock does not go backwards")
        self._now += seconds
        return self._now

    def set(self, when: float) -> float:
        if when < self._now:
            raise ValueError("a clock does not go backwards")
        self._now = when
        return self._now


FREE_COMPUTE = 0.050  # CPU seconds a party may compute between two waits before time moves
WAIT_SLICE = 0.5  # longest single real wait inside ``VirtualClock.wait`` (Ctrl-C, a dead driver)
_DIRTY = -1  # a party's ``checked`` after it acted: the world must be settled again


class _Party:
    """A thread whose waits the virtual clock knows: running (its CPU time is timed) or
    waiting (until ``until``, None: until woken)."""

    __slots__ = ("checked", "cpu", "free", "ident", "start", "until", "waiting")

    def __init__(self, ident: int) -> None:
        self.ident = ident
        try:
            self.cpu: int | None = time.pthread_getcpuclockid(ident)
        except (AttributeError, OSError):
            self.cpu = None  # no per-thread CPU clock here: computing costs no virtual time
        self.start = self.cpu_time()  # CPU time when the current stretch of computing began
        self.free = FREE_COMPUTE  # what is left of this stretch's free CPU time
        self.waiting = False
        self.until: float | None = None
        self.checked = _DIRTY  # the last settle generation this party looked at

    def cpu_time(self) -> float:
        if self.cpu is None:
            return 0.0
        try:
            return time.clock_gettime(self.cpu)
        except OSError:  # the thread ended
            return self.start

    def credit(self) -> float:
        """Virtual seconds this stretch of computing has earned so far."""
        return max(0.0, self.cpu_time() - self.start - self.free)


class VirtualClock:
    """Virtual time for a simulated world: it stands still while everyone waits and a driver
    (``pystack.runner.StackThread``) jumps it to the next deadline, and it moves with the CPU
    time a party spends computing beyond ``FREE_COMPUTE`` per stretch between two waits.

    Parties are the threads whose computing counts and without whose wait time cannot jump: a
    thread joins with ``attach`` (``pystack run`` attaches the script's thread), and any other
    thread is a party for the length of one ``wait``. ``lock`` is the one lock of the world:
    the driver's ``StackThread`` takes it as its own, so ``wait``'s predicate is checked under
    it. Protocol, all under ``lock``:

    - a party that waits marks itself dirty, wakes the driver and sleeps on ``changed``;
    - the driver settles the stacks at ``now()`` when every party waits and one is dirty, then
      calls ``settled()`` (a new generation; every waiter re-checks its predicate and records
      the generation it saw);
    - once every party waits and has seen the latest generation, nothing can happen at this
      instant: the driver ``advance_to``-s the earliest deadline (its stacks', or a party's
      ``until``) and settles again. With no deadline anywhere it waits for a wake-up;
    - ``notify`` (a ``micropython.schedule`` callback was queued) marks every party dirty;
    - while a party computes, the driver leaves the stacks alone until the party has used up
      its free CPU time; from then on it settles them beside it, at the moving ``now()``.

    Without a driver (``drive`` never called) a wait jumps straight to its own end.
    """

    def __init__(self, start: float = 0.0) -> None:
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)
        self.generation = 0  # settles so far
        self._now = start
        self._high = start
        self._parties: dict[int, _Party] = {}
        self._running: tuple[_Party, ...] = ()  # parties computing, read without the lock
        self._wake_driver: Callable[[], None] | None = None

    # -- time ------------------------------------------------------------------------------------
    def now(self) -> float:
        value = self._now
        for party in self._running:
            credit = party.credit()
            if value < self._now + credit:
                value = self._now + credit
        if value < self._high:  # a party committed its credit meanwhile: never go back
            return self._high
        self._high = value
        return value

    def advance_to(self, when: float) -> None:
        """Driver only, every party waiting: jump to ``when`` (never backwards)."""
        with self.lock:
            if when > self._now:
                self._now = when
                self._high = max(self._high, when)

    # -- parties ---------------------------------------------------------------------------------
    def attach(self) -> None:
        """The calling thread becomes a party: time jumps only while it waits."""
        with self.lock:
            ident = threading.get_ident()
            if ident not in self._parties:
                self._parties[ident] = _Party(ident)
                self._update_running()

    def detach(self) -> None:
        with self.lock:
            party = self._parties.pop(threading.get_ident(), None)
            if party is not None:
                self._commit(party)
                self._update_running()
        self._wake()

    def _update_running(self) -> None:
        self._running = tuple(p for p in self._parties.values() if not p.waiting)

    def _commit(self, party: _Party) -> None:
        """Move what ``party`` has computed into the clock; the stretch goes on from here."""
        credit = party.credit()
        if credit > 0:
            self._now += credit
            party.start = party.cpu_time()
            party.free = 0.0

    def wait(self, predicate: Callable[[], bool], timeout: float | None) -> bool:
        """Wait until ``predicate()`` (checked under ``lock``) or ``timeout`` virtual seconds
        (None: forever); True if the predicate held. A timeout of 0 still lets the driver settle
        the world once at this instant (a non-blocking call sees what has arrived by now) and
        does not end the stretch of computing; any other wait does."""
        with self.changed:
            if predicate():
                return True
            ident = threading.get_ident()
            party = self._parties.get(ident)
            transient = party is None
            if party is None:
                party = self._parties[ident] = _Party(ident)
            else:
                self._commit(party)
            now = self.now()
            until = None if timeout is None else now + max(0.0, timeout)
            party.waiting, party.until, party.checked = True, until, _DIRTY
            self._update_running()
            entered = self.generation
            try:
                while True:
                    if self.generation > entered:  # settled since we came: look
                        if predicate():
                            return True
                        if until is not None and self._now >= until:
                            return False
                        party.checked = self.generation
                    if self._wake_driver is None:  # nobody drives: jump to our own end
                        if until is None:
                            self.changed.wait(WAIT_SLICE)
                        else:
                            self.advance_to(until)
                        self.generation += 1
                        continue
                    self._wake_driver()
                    self.changed.wait(WAIT_SLICE)
            finally:
                party.waiting, party.until = False, None
                if transient:
                    del self._parties[ident]
                elif timeout != 0:
                    party.start, party.free = party.cpu_time(), FREE_COMPUTE
                self._update_running()

    def notify(self) -> None:
        """Something outside the stacks changed what a waiter waits for (a callback was
        scheduled): every waiter re-checks before time may move again."""
        with self.changed:
            for party in self._parties.values():
                party.checked = _DIRTY
            self.changed.notify_all()
        self._wake()

    def _wake(self) -> None:
        wake = self._wake_driver
        if wake is not None:
            wake()

    # -- the driver's side -------------------------------------------------------------------------
    def drive(self, wake: Callable[[], None] | None) -> None:
        """``wake`` is how waiters wake the driver; None: no driver any more."""
        with self.lock:
            self._wake_driver = wake

    def settled(self) -> None:
        """Driver, under ``lock``: the stacks were settled at ``now()``; waiters re-check."""
        self.generation += 1
        self.changed.notify_all()

    def view(self) -> ClockView:
        """Driver, under ``lock``: what the parties are doing."""
        parties = self._parties.values()
        waiting = bool(self._parties) and all(p.waiting for p in parties)
        ends = [p.until for p in parties if p.until is not None]
        free = min((p.free - (p.cpu_time() - p.start) for p in self._running), default=None)
        return ClockView(
            every_party_waits=waiting,
            dirty=any(p.checked == _DIRTY for p in parties if p.waiting),
            all_checked=all(p.checked == self.generation for p in parties),
            earliest_end=min(ends) if ends else None,
            free_left=free,
        )


@dataclass(frozen=True)
class ClockView:
    every_party_waits: bool  # at least one party, and all of them wait
    dirty: bool  # a waiting party acted since the last settle
    all_checked: bool  # every party looked at the latest settle
    earliest_end: float | None  # the earliest end of a party's wait
    free_left: float | None  # CPU seconds before a computing party makes time move (<0: moving)
