"""The event loop's view of time: the script's ``time.ticks_*`` and, in tests, virtual time.

Run-queue keys are ``time.ticks_ms()`` values, whole milliseconds that wrap around at the
world's ``TICKS_PERIOD`` (docs/asyncio.md section 4). Keys are only ever compared with
``ticks_diff``; to keep them in a binary heap, ``LoopClock.order`` turns a key into a position on
an unwrapped line (milliseconds since the loop started), valid while every key is within half a
period of "now", which ``ticks_add`` guarantees for every key asyncio makes.

Two time bases (docs/asyncio.md section 7.1):

- **Real time** (the world's clock is a ``SystemClock``, as under ``pystack run``): ticks move
  by themselves and waits are real, so pystack copies MicroPython exactly, including its rare
  order flips when two steps fall on either side of a millisecond boundary.
- **Virtual time** (the world's clock is a ``ManualClock``, for tests): the clock stands still
  while tasks run, so everything a task does takes zero milliseconds, and the loop moves it.
  With no I/O waiter a timed wait jumps straight to the deadline; with I/O waiters the loop
  waits for real and moves the clock by the time that really passed (at most to the
  deadline); after ``STEPS_PER_MS`` task steps without a wait it moves one millisecond, so
  tasks spinning on ``sleep(0)`` cannot freeze time (``asyncio_fair.py``). This gives the
  "infinitely fast CPU" orders that MicroPython's ``.exp`` files record, deterministically.
  Limits: a task that busy-waits on ``ticks_ms`` without yielding never sees it move, and
  ``time.sleep`` does not move it.

Entry points: ``LoopClock`` (``now``, ``order``, ``virtual``, ``advance``, ``stepped``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from types import ModuleType
from typing import cast

from pystack.clock import Clock, ManualClock

STEPS_PER_MS = 100  # virtual time: a run of this many steps without a wait costs 1 ms


class LoopClock:
    def __init__(self, time_module: ModuleType, clock: Clock) -> None:
        self.ticks_ms = cast(Callable[[], int], time_module.ticks_ms)
        self.ticks_diff = cast(Callable[[int, int], int], time_module.ticks_diff)
        self.ticks_add = cast(Callable[[int, int], int], time_module.ticks_add)
        self._manual = clock if isinstance(clock, ManualClock) else None
        self._origin = clock.now()  # where the script's ticks were 0 (the time module's start)
        self._last = self.ticks_ms()
        self._line = 0  # self._last's position on the unwrapped line
        self._steps = 0  # virtual time: steps since the clock last moved

    @property
    def virtual(self) -> bool:
        return self._manual is not None

    def now(self) -> int:
        """``ticks_ms()``, also moving the reference that ``order`` measures from."""
        ticks = self.ticks_ms()
        self._line += self.ticks_diff(ticks, self._last)
        self._last = ticks
        return ticks

    def order(self, key: int) -> int:
        """Where ``key`` lies on the unwrapped line: sorting by this is sorting by ticks_diff."""
        return self._line + self.ticks_diff(key, self._last)

    def advance(self, milliseconds: int) -> None:
        """Virtual time only: move the world's clock on by whole milliseconds."""
        manual = self._manual
        if manual is None or milliseconds <= 0:
            return
        self._steps = 0
        # Land in the middle of the target millisecond, so float rounding can never make
        # int(elapsed * 1000) in ticks_ms() read one less.
        elapsed = math.floor((manual.now() - self._origin) * 1000)
        manual.set(max(manual.now(), self._origin + (elapsed + milliseconds + 0.5) / 1000))

    def stepped(self) -> None:
        """Virtual time only: count one task step; every STEPS_PER_MS steps cost 1 ms."""
        if self._manual is None:
            return
        self._steps += 1
        if self._steps >= STEPS_PER_MS:
            self.advance(1)
