"""``micropython.schedule``: callbacks queued from anywhere, run soon on the script's main thread.

MicroPython runs scheduled callbacks on the main thread between two bytecodes of Python code,
and also inside blocking waits (``MICROPY_EVENT_POLL_HOOK``). The closest CPython has is its
signal machinery: ``_thread.interrupt_main(signum)`` makes the main thread run that signal's
Python handler at its next bytecode boundary, without sending a real signal. So, while a script
runs in the main thread, ``Scheduler.install`` puts a handler on ``SIGURG`` (a signal whose
default action is to be ignored, so a stray real one only triggers an empty drain) and
``schedule`` calls ``interrupt_main(SIGURG)``. A busy loop ``while not flag: pass`` therefore
sees a flag set by a scheduled callback, as it would on a board.

The approximation, and its limits:

- The handler runs callbacks only when the main thread is in *script-world* code (its frame's
  builtins are the world's). If the main thread is inside pystack or the stdlib, the doorbell
  rings again a moment later, so callbacks never run in the middle of the stack's own code.
- ``Scheduler.sleep`` (used by ``time.sleep*``) waits on a condition, so a callback scheduled
  during a sleep runs at once and the sleep then continues, as on MicroPython. On a
  ``VirtualClock`` the sleep is a wait of the clock's (time jumps over it when the stacks have
  nothing to do before its end), and ``schedule`` tells the clock that a waiter must look. Blocking provider
  code (sockets) should call ``run_pending()`` at its safe points for the same effect.
- Outside the main thread (no signal handlers possible) callbacks run only in ``sleep`` and at
  explicit ``run_pending()`` calls.
- The queue holds ``DEPTH`` entries (``MICROPY_SCHEDULER_DEPTH``, 4 by default); one more raises
  ``RuntimeError("schedule queue full")``. Callbacks do not nest.

Entry points: ``Scheduler.schedule``, ``run_pending``, ``sleep``, ``install``, ``uninstall``.
"""

from __future__ import annotations

import _thread
import collections
import signal
import threading
import time
from collections.abc import Callable
from types import FrameType
from typing import Any

from pystack.clock import Clock, VirtualClock

DEPTH = 4
SIGNAL = signal.SIGURG
RETRY = 0.001  # seconds between rings while callbacks wait for the main thread


class Scheduler:
    def __init__(
        self, builtins: dict[str, Any], depth: int = DEPTH, clock: Clock | None = None
    ) -> None:
        self._builtins = builtins  # identifies script-world frames
        self._virtual = clock if isinstance(clock, VirtualClock) else None
        self._depth = depth
        self._queue: collections.deque[tuple[Callable[[Any], object], object]] = collections.deque()
        self._lock = threading.RLock()
        self._wakeup = threading.Condition(self._lock)
        self._running = False
        self._installed = False
        self._previous: Any = None
        self._doorbell: threading.Thread | None = None

    def schedule(self, function: Callable[[Any], object], argument: object) -> None:
        if not callable(function):
            raise TypeError("function must be callable")
        with self._wakeup:
            if len(self._queue) >= self._depth:
                raise RuntimeError("schedule queue full")
            self._queue.append((function, argument))
            self._wakeup.notify_all()
        if self._virtual is not None:
            self._virtual.notify()  # outside our lock: the clock's lock is the stack's

    @property
    def pending(self) -> int:
        return len(self._queue)

    def run_pending(self) -> None:
        """Run the callbacks queued so far, oldest first (not re-entrant). One scheduled while
        they run waits for the next call, as on MicroPython: a callback that schedules itself
        again cannot keep the script from running."""
        if self._running:
            return
        self._running = True
        try:
            with self._lock:
                due = len(self._queue)
            for _ in range(due):
                with self._lock:
                    if not self._queue:
                        return
                    function, argument = self._queue.popleft()
                function(argument)
        finally:
            self._running = False
            with self._wakeup:
                self._wakeup.notify_all()

    def sleep(self, seconds: float, monotonic: Callable[[], float] = time.monotonic) -> None:
        """Wait ``seconds`` (of real time, or of the virtual clock's), running scheduled
        callbacks as they arrive."""
        virtual = self._virtual
        if virtual is not None:
            end = virtual.now() + max(0.0, seconds)
            while True:
                self.run_pending()
                remaining = max(0.0, end - virtual.now())
                if not virtual.wait(lambda: bool(self._queue), remaining):
                    return
        deadline = monotonic() + max(0.0, seconds)
        while True:
            self.run_pending()
            remaining = deadline - monotonic()
            if remaining <= 0:
                return
            with self._wakeup:
                if not self._queue:
                    self._wakeup.wait(remaining)

    def wait_for_callback(self) -> bool:
        """Virtual time only: wait, as long as it takes, until a callback is queued (time moves
        meanwhile whenever the stacks have deadlines); False at once on real time."""
        virtual = self._virtual
        if virtual is None:
            return False
        return virtual.wait(lambda: bool(self._queue), None)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if frame is not None and frame.f_builtins is self._builtins:
            self.run_pending()  # else not at a script bytecode: the doorbell rings again

    def _ring(self) -> None:
        with self._wakeup:
            while self._installed:
                if self._queue and not self._running:
                    _thread.interrupt_main(SIGNAL)
                    self._wakeup.wait(RETRY)
                else:
                    self._wakeup.wait()

    def install(self) -> bool:
        """Route ``schedule`` through the main thread's signal handling; False if not possible."""
        if self._installed or threading.current_thread() is not threading.main_thread():
            return self._installed
        self._previous = signal.signal(SIGNAL, self._on_signal)
        self._installed = True
        self._doorbell = threading.Thread(target=self._ring, name="pystack-schedule", daemon=True)
        self._doorbell.start()
        return True

    def uninstall(self) -> None:
        if not self._installed:
            return
        with self._wakeup:
            self._installed = False
            self._queue.clear()
            self._wakeup.notify_all()
        if self._doorbell is not None:
            self._doorbell.join(1.0)
            self._doorbell = None
        signal.signal(SIGNAL, self._previous if self._previous is not None else signal.SIG_DFL)
