"""``Event``, ``ThreadSafeFlag`` and ``Lock`` (docs/asyncio.md 1.6).

All three park tasks in places the loop already has, so ``cancel`` can take them out again:

- ``Event`` keeps a FIFO ``TaskQueue`` of waiters; ``set()`` moves all of them to the run
  queue at "now" (in the order they came) and marks the event set. A woken waiter returns
  ``True`` even if the event was cleared before it ran. ``wait()`` on a set event does not
  suspend. Only loop code may call ``set()``.
- ``ThreadSafeFlag`` is a pollable object (``ioctl(3, mask)`` reports ready while it is set);
  its waiter sits in the I/O queue, so ``set()`` from a thread or a ``micropython.schedule``
  callback only flips the flag and the loop notices at its next ``ipoll``. ``wait()`` clears
  the flag on return (auto-reset); one waiter at a time.
- ``Lock`` is free, held, or handed to a waiting task that has not run yet (reserved: still
  not ``locked()``, but no one else may take it, so there is no barging). ``release()`` hands
  the lock straight to the first waiter; a waiter cancelled after the hand-over passes it on.

The awaitables are plain generators, as on MicroPython. Each class reaches its world's
loop through ``_core`` (``bind``). Entry points: ``Event``, ``ThreadSafeFlag``, ``Lock``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

from pystack.runtime.masyncio.task import Awaiting, CancelledError, Suspension, Task

if TYPE_CHECKING:
    from pystack.runtime.masyncio.core import Core

MP_STREAM_POLL = 3  # the ioctl request select.poll makes


class Event:
    __slots__ = ("state", "waiting")
    _core: ClassVar[Core]

    def __init__(self) -> None:
        self.state = False
        self.waiting = self._core.TaskQueue()

    def is_set(self) -> bool:
        return self.state

    def set(self) -> None:
        run_queue = self._core.task_queue
        while self.waiting.peek() is not None:
            run_queue.push(self.waiting.pop())
        self.state = True

    def clear(self) -> None:
        self.state = False

    def wait(self) -> Suspension[bool]:
        if not self.state:
            task = self._core.current()
            self.waiting.push(task)
            task.data = self.waiting  # cancel() removes it from there
            yield
        return True


class ThreadSafeFlag:
    __slots__ = ("state",)
    _core: ClassVar[Core]

    def __init__(self) -> None:
        self.state = 0

    def ioctl(self, request: int, argument: int = 0) -> int:
        if request == MP_STREAM_POLL:
            return argument if self.state else 0
        return -1  # no other stream request (no descriptor, nothing to close)

    def set(self) -> None:
        self.state = 1  # nothing else: safe from any thread or callback

    def clear(self) -> None:
        self.state = 0

    def wait(self) -> Suspension[None]:
        if not self.state:
            self._core.io_queue.queue_read(self)
            yield
        self.state = 0


class Lock:
    __slots__ = ("_owner", "waiting")
    _core: ClassVar[Core]

    def __init__(self) -> None:
        # None: free; True: held; a Task: handed to that task, which has not run yet
        self._owner: Task | bool | None = None
        self.waiting = self._core.TaskQueue()

    def locked(self) -> bool:
        return self._owner is True

    def release(self) -> None:
        if self._owner is not True:
            raise RuntimeError("Lock not acquired")
        successor = self.waiting.peek()
        if successor is None:
            self._owner = None
            return
        self.waiting.pop()
        self._owner = successor  # reserved for it: nobody can take it before it runs
        self._core.task_queue.push(successor)

    def acquire(self) -> Suspension[bool]:
        if self._owner is not None:
            task = self._core.current()
            self.waiting.push(task)
            task.data = self.waiting  # cancel() removes it from there
            try:
                yield
            except CancelledError:
                if self._owner is task:  # handed over, then cancelled before it ran
                    self._owner = True
                    self.release()  # to the next waiter, or free
                raise
        self._owner = True
        return True

    async def __aenter__(self) -> bool:
        return await Awaiting(self.acquire())

    async def __aexit__(self, exc_type: Any, exc: Any, traceback: Any) -> None:
        self.release()  # and return None: an exception raised in the block goes on
