"""Clocks: where ``now`` comes from.

Protocol code never reads time itself; it is handed ``now`` (seconds, float). The runner reads a
``SystemClock`` (monotonic); tests and the simulator use a ``ManualClock`` they advance themselves.
"""

from __future__ import annotations

import time
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
