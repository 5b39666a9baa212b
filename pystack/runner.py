"""StackThread: the one thread that drives a ``Stack`` in real time.

It loops: poll the stack under the core lock, notify waiters, then ``select`` on the link's
descriptor and a wake-up pipe until the stack's next deadline. Application threads take the same
lock to touch the stack, then call ``wake()`` so queued output leaves at once. Blocking calls
(sockets, ping) wait on ``changed`` with a timeout. Several stacks (the simulator's) can share one
thread: pass them all.
Entry points: ``StackThread``, ``StackThread.call``, ``StackThread.wait_for``.

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

from pystack.clock import Clock, SystemClock
from pystack.stack import Stack

T = TypeVar("T")
IDLE_WAIT = 0.5  # upper bound on one wait, so a stop request or clock skew never hangs us
POLL_WITHOUT_FD = 0.002  # links without a descriptor (e.g. a wrapped in-memory link) are polled
DEBUG_LOCKS = "PYSTACK_DEBUG_LOCKS"  # "1": stacks assert the lock is held in poll and flush


def debug_locks() -> bool:
    return os.environ.get(DEBUG_LOCKS) == "1"


class StackThread:
    def __init__(self, *stacks: Stack, clock: Clock | None = None, name: str = "pystack") -> None:
        if not stacks:
            raise ValueError("StackThread needs at least one stack")
        self.stacks = stacks
        self.clock = clock if clock is not None else SystemClock()
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
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.error: BaseException | None = None

    def __enter__(self) -> StackThread:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop = True
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

    def call(self, function: Callable[[], T]) -> T:
        """Run ``function`` under the core lock, then wake the thread to flush its output."""
        with self.lock:
            result = function()
        self.wake()
        return result

    def wait_for(self, predicate: Callable[[], bool], timeout: float | None) -> bool:
        """Block until ``predicate()`` is true (checked under the lock) or ``timeout`` passes."""
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

    def _drain_wake_pipe(self) -> None:
        try:
            while os.read(self._wake_read, 4096):
                pass
        except (BlockingIOError, OSError):
            pass
