"""StackThread: the one thread that drives a ``Stack`` in real time.

It loops: poll the stack under the core lock, notify waiters, then ``select`` on the link's
descriptor and a wake-up pipe until the stack's next deadline. Application threads take the same
lock to touch the stack, then call ``wake()`` so queued output leaves at once. Blocking calls
(sockets, ping) wait on ``changed`` with a timeout. Several stacks (the simulator's) can share one
thread: pass them all.
Entry points: ``StackThread``, ``StackThread.call``, ``StackThread.wait_for``.

On a ``VirtualClock`` (the simulator's default under ``pystack run``) the thread is the clock's
driver instead: it takes the clock's lock as its own, never reads real time, and takes turns
with the parties (the script's thread): while a party computes, the stacks wait (unless the
party has computed past its free CPU time, when they run beside it on the moving clock); when
every party waits, it settles the stacks at the current instant (polling until no frame
moves), lets every waiter look, and then jumps the clock to the earliest deadline of the stacks
and the waits. docs/virtual-time.md has the model.

With ``PYSTACK_DEBUG_LOCKS=1`` in the environment (the test suite sets it) each stack checks the
rule: ``Stack.poll`` and ``Stack.flush`` raise ``AssertionError`` when the calling thread does
not hold the lock.
"""

from __future__ import annotations

import os
import selectors
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from pystack.clock import Clock, SystemClock, VirtualClock
from pystack.stack import Stack

T = TypeVar("T")
IDLE_WAIT = 0.5  # upper bound on one wait, so a stop request or clock skew never hangs us
POLL_WITHOUT_FD = 0.002  # links without a descriptor (e.g. a wrapped in-memory link) are polled
BUSY_POLL = 0.001  # virtual time: stacks beside a party computing past its free time, this often
MAX_ROUNDS_PER_SETTLE = 10_000  # virtual time: polls of every stack at one instant, at most
MAX_IDLE_SETTLES = 10_000  # virtual time: settles in a row with work "due now" and no one acting
DEBUG_LOCKS = "PYSTACK_DEBUG_LOCKS"  # "1": stacks assert the lock is held in poll and flush


def debug_locks() -> bool:
    return os.environ.get(DEBUG_LOCKS) == "1"


class StackThread:
    def __init__(self, *stacks: Stack, clock: Clock | None = None, name: str = "pystack") -> None:
        if not stacks:
            raise ValueError("StackThread needs at least one stack")
        self.stacks = stacks
        self.clock = clock if clock is not None else SystemClock()
        self.virtual = clock if isinstance(clock, VirtualClock) else None
        if self.virtual is not None:
            # Only in-process links (the simulator's): their frames come from polls, so the
            # driver never looks at their descriptors.
            self.lock, self.changed = self.virtual.lock, self.virtual.changed
        else:
            self.lock = threading.RLock()
            self.changed = threading.Condition(self.lock)
        if debug_locks():
            # RLock._is_owned: true when the calling thread holds the lock (Condition uses it).
            held: Callable[[], bool] = self.lock._is_owned  # type: ignore[attr-defined]
            for stack in stacks:
                stack.lock_check = held
        self._wake_read, self._wake_write = os.pipe()
        os.set_blocking(self._wake_read, False)
        os.set_blocking(self._wake_write, False)
        self._stop = False
        # Real time: the deadline the thread sleeps until (set under the lock before it waits
        # in select; None: no deadline, an idle wait). ``wake_if_needed`` compares with it.
        self._sleep_until: float | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.error: BaseException | None = None

    def __enter__(self) -> StackThread:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self) -> None:
        if self.virtual is not None:
            self.virtual.drive(self.wake)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop = True
        if self.virtual is not None:
            self.virtual.drive(None)
        self.wake()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout)
        for fd in (self._wake_read, self._wake_write):
            try:
                os.close(fd)
            except OSError:
                pass
        self._wake_read = self._wake_write = -1

    def wake(self) -> None:
        try:
            os.write(self._wake_write, b"\0")
        except (BlockingIOError, OSError):
            pass  # the pipe is full (a wake-up is already pending) or closed (stopping)

    def wake_if_needed(self) -> None:
        """Wake the thread only if it must act sooner than it planned: call with the lock held,
        after changing a stack and flushing its output from this thread. A stack with work due
        (queued output, a dirty connection) or a timer earlier than the one the thread sleeps
        towards wakes it; anything else leaves it asleep. A usocket ``recv`` or ``send`` then
        costs no thread hand-off of its own: the stack thread is woken by the link (new frames)
        or its deadline, once per burst, instead of once per call as well. On virtual time the
        thread is the clock's driver and is always woken, as before."""
        if self.virtual is not None:
            self.wake()
            return
        planned = self._sleep_until
        for stack in self.stacks:
            deadline = stack.next_deadline()
            if deadline is not None and (planned is None or deadline < planned):
                self.wake()
                return

    def call(self, function: Callable[[], T]) -> T:
        """Run ``function`` under the core lock, then wake the thread to flush its output."""
        with self.lock:
            result = function()
        self.wake()
        return result

    def wait_for(self, predicate: Callable[[], bool], timeout: float | None) -> bool:
        """Block until ``predicate()`` is true (checked under the lock) or ``timeout`` passes
        (seconds of the thread's clock: virtual seconds on a ``VirtualClock``, where a timeout of
        0 lets the stacks settle once first)."""
        if self.virtual is not None:

            def alive_and_ready() -> bool:
                if self.error is not None:
                    raise RuntimeError("the stack thread died") from self.error
                return predicate()

            return self.virtual.wait(alive_and_ready, timeout)
        end = None if timeout is None else time.monotonic() + timeout
        with self.changed:
            while not predicate():
                if self.error is not None:
                    raise RuntimeError("the stack thread died") from self.error
                remaining = None if end is None else end - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self.changed.wait(IDLE_WAIT if remaining is None else min(remaining, IDLE_WAIT))
            return True

    # ---------------------------------------------------------------------------------------
    def _run(self) -> None:
        try:
            self._loop()
        except BaseException as error:  # surfaced to waiters; the thread must not die silently
            self.error = error
            with self.changed:
                self.changed.notify_all()
            raise

    def _loop(self) -> None:
        if self.virtual is not None:
            with selectors.DefaultSelector() as wake_only:
                wake_only.register(self._wake_read, selectors.EVENT_READ)
                self._serve_virtual(wake_only, self.virtual)
            return
        descriptors = [s.link.fileno() for s in self.stacks]
        waitable = [fd for fd in descriptors if fd is not None]
        every_link_has_fd = len(waitable) == len(descriptors)
        selector = selectors.DefaultSelector()  # epoll: no limit on descriptor numbers
        for fd in (*waitable, self._wake_read):
            selector.register(fd, selectors.EVENT_READ)
        try:
            self._serve(selector, every_link_has_fd)
        finally:
            selector.close()

    def _serve(self, selector: selectors.BaseSelector, every_link_has_fd: bool) -> None:
        clock = self.clock
        while not self._stop:
            now = clock.now()
            deadline: float | None = None
            with self.changed:
                for stack in self.stacks:
                    stack.poll(now)
                    stack_deadline = stack.next_deadline()
                    if stack_deadline is not None and (
                        deadline is None or stack_deadline < deadline
                    ):
                        deadline = stack_deadline
                self._sleep_until = deadline
                self.changed.notify_all()
            timeout = (
                IDLE_WAIT if deadline is None else max(0.0, min(IDLE_WAIT, deadline - clock.now()))
            )
            if not every_link_has_fd:
                timeout = min(timeout, POLL_WITHOUT_FD)
            if timeout > 0:
                for key, _ in selector.select(timeout):
                    if key.fd == self._wake_read:
                        self._drain_wake_pipe()

    def _serve_virtual(self, selector: selectors.BaseSelector, clock: VirtualClock) -> None:
        """The driver's loop on a ``VirtualClock`` (the protocol is in its docstring)."""
        settle = True  # the clock moved, or we just started: settle at the new instant
        idle_settles = 0
        while not self._stop:
            timeout = IDLE_WAIT
            with self.changed:
                view = clock.view()
                now = clock.now()
                deadline = self._next_deadline()
                if view.every_party_waits:
                    due = deadline is not None and deadline <= now
                    if settle or view.dirty or due:
                        idle_settles = 0 if settle or view.dirty else idle_settles + 1
                        if idle_settles > MAX_IDLE_SETTLES:
                            raise RuntimeError(
                                f"virtual time is stuck: work due at t={now} never ends"
                            )
                        self._settle(now)
                        settle = False
                        continue
                    if view.all_checked:
                        ends = [t for t in (deadline, view.earliest_end) if t is not None]
                        if ends:
                            clock.advance_to(min(ends))
                            settle = True
                            continue
                elif view.free_left is None:
                    # No party at all: time stands still; settle what a caller asked for (it
                    # woke us) at this instant.
                    self._settle(now)
                    settle = False
                elif view.free_left <= 0:  # a party computes on: the stacks run beside it
                    self._settle(now)
                    timeout = BUSY_POLL
                else:  # a party computes within its free time: wait for it (or its free time)
                    timeout = min(IDLE_WAIT, max(view.free_left, BUSY_POLL))
            for key, _ in selector.select(timeout):
                if key.fd == self._wake_read:
                    self._drain_wake_pipe()

    def _next_deadline(self) -> float | None:
        deadlines = [d for d in (s.next_deadline() for s in self.stacks) if d is not None]
        return min(deadlines) if deadlines else None

    def _settle(self, now: float) -> None:
        """Virtual time, under the lock: poll every stack at ``now`` until a whole round moves no
        frame (a frame one stack sends waits in the other's link until the next round), then let
        the waiters look."""
        stacks = self.stacks
        for _ in range(MAX_ROUNDS_PER_SETTLE):
            sent = sum(s.link.statistics.frames_sent for s in stacks)
            handled = 0
            for stack in stacks:
                handled += stack.poll(now)
            if not handled and sum(s.link.statistics.frames_sent for s in stacks) == sent:
                break
        else:
            raise RuntimeError(f"virtual time is stuck: frames still moving at t={now}")
        assert self.virtual is not None
        self.virtual.settled()

    def _drain_wake_pipe(self) -> None:
        try:
            while os.read(self._wake_read, 4096):
                pass
        except (BlockingIOError, OSError):
            pass
