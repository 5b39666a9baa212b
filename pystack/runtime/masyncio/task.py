"""``Task``, the sleep awaitable and asyncio's two exceptions (docs/asyncio.md 1.4, 1.5, 2.4-2.7).

A ``Task`` wraps a coroutine (or any object with ``send``) that the loop steps with
``send(None)`` or ``throw(exception)``. Its two public fields carry the whole protocol:

- ``state``: ``True`` running with no waiter; a ``TaskQueue`` running with waiters; a callable
  running and owned by ``gather``; ``None`` finished and not yet retrieved; ``False`` finished
  and retrieved.
- ``data``: ``None`` queued or running; the place it is parked (anything with ``remove``: an
  ``IOQueue``, a ``TaskQueue``, a gather); another ``Task`` it awaits; the ``CancelledError``
  class while a cancellation is pending; once finished, the ``StopIteration`` (return value) or
  the exception that ended it.

``await task`` parks the caller on the task's waiter queue with ``data`` pointing at the task,
which is the link ``cancel`` follows to cancel the innermost awaited task. The loop keeps its own
"finished" flag (``done()``) instead of relying on what a finished CPython coroutine does when
resumed (section 7.2), and a second ``await`` of a failed task re-raises the stored exception
(section 7.4; the C build crashes there).

``SingletonGenerator`` is the one awaitable every ``sleep_ms`` returns: the call computes the
wake-up key, the first step pushes the caller with it and suspends, the second returns ``None``.
It has no ``send``, so ``create_task(sleep(1))`` raises ``TypeError`` as on MicroPython.

Per-world classes: ``Task`` and ``SingletonGenerator`` reach their loop through the class
attribute ``_core``; core.py's ``bind`` makes a subclass for each world's ``Core``.
Entry points: ``Task``, ``SingletonGenerator``, ``CancelledError``, ``TimeoutError``,
``Awaiting``.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

from pystack.runtime.masyncio.queues import TaskQueue

if TYPE_CHECKING:
    from pystack.runtime.masyncio.core import Core

R = TypeVar("R")
# What the loop's generator awaitables are (Event.wait, Lock.acquire, gather, the stream
# methods): plain generators that yield None when they suspend and return their result.
Suspension = Generator[None, None, R]


class Awaiting(Generic[R]):
    """Lets pystack's own ``async def`` code (``__aenter__``, ``__aexit__``) await one of those
    generators: ``async with`` does not pass through the script bridge that makes ``await``
    accept plain generators, so these methods must be real coroutines."""

    __slots__ = ("_generator",)

    def __init__(self, generator: Suspension[R]) -> None:
        self._generator = generator

    def __await__(self) -> Suspension[R]:
        return self._generator


class CancelledError(BaseException):
    """Thrown into a cancelled task. A BaseException, so ``except Exception`` lets it pass."""


class TimeoutError(Exception):
    """Raised by ``wait_for`` when the timeout expires: asyncio's own class, not the builtin
    ``TimeoutError`` (an ``OSError`` on CPython), as on MicroPython (section 1.5)."""


# Tracebacks name them as MicroPython does ("CancelledError: ..."), not by pystack's module.
for _exception in (CancelledError, TimeoutError):
    _exception.__module__ = "builtins"


class Task:
    """One coroutine the loop runs. Built by ``create_task``; ``Task(coro)`` is not queued."""

    __slots__ = ("_coro", "_entry", "_finished", "_key", "_queue", "data", "state")
    _core: ClassVar[Core]

    def __init__(self, coro: Any, globals: object = None) -> None:
        self._coro = coro
        self.data: Any = None
        self.state: Any = True
        self._key = 0  # ph_key: the key of the latest push
        self._queue: TaskQueue | None = None  # the queue holding it, if any
        self._entry: list[Any] | None = None  # its entry in that queue's heap
        self._finished = False
        self._core.unfinished.add(self)

    @property
    def coro(self) -> Any:
        return self._coro

    @property
    def ph_key(self) -> int:
        return self._key

    def __repr__(self) -> str:
        return "<Task>"

    def done(self) -> bool:
        return self._finished

    def cancel(self) -> bool:
        """Schedule a ``CancelledError`` into the innermost task this one awaits (2.7)."""
        if self._finished:
            return False
        core = self._core
        if self is core.cur_task:
            raise RuntimeError("can't cancel self")
        target = self
        while isinstance(target.data, Task):
            target = target.data  # forward along the await links
        parked = target.data
        run_queue = core.task_queue
        if hasattr(parked, "remove"):
            parked.remove(target)  # an I/O slot, a waiter queue or a gather: take it out...
            run_queue.push(target)  # ...and make it runnable now
        elif run_queue.holds(target) and core.clock.ticks_diff(target._key, core.clock.now()) > 0:
            run_queue.push(target)  # sleeping: bring it forward to now (behind the due tasks)
        # else: already due on the run queue, where it stays
        target.data = CancelledError
        return True

    def _outcome(self) -> Any:
        """The finished task's result, or raise its exception."""
        ending = self.data
        if isinstance(ending, StopIteration):
            return ending.value
        raise ending

    def __await__(self) -> Generator[None, None, Any]:
        if self._finished:
            self.state = False  # retrieved
            return self._outcome()
        if self.state is True:
            self.state = self._core.TaskQueue()  # the first waiter makes the waiter queue
        elif not isinstance(self.state, TaskQueue):
            raise RuntimeError("can't wait")  # owned by gather
        waiters: TaskQueue = self.state
        caller = self._core.current()
        while not self._finished:
            waiters.push(caller)
            caller.data = self  # the await link that cancel() follows
            try:
                yield
            except BaseException:
                waiters.remove(caller)
                raise
        return self._outcome()

    __iter__ = __await__  # MicroPython awaits through the iterator protocol; yield from works too


class SingletonGenerator:
    """The awaitable of ``sleep``/``sleep_ms``: one per loop, re-armed by every call."""

    __slots__ = ("state",)
    _core: ClassVar[Core]

    def __init__(self) -> None:
        self.state: int | None = None  # the wake-up key of the sleep being awaited

    def __iter__(self) -> SingletonGenerator:
        return self

    def __await__(self) -> SingletonGenerator:
        return self

    def __next__(self) -> None:
        key = self.state
        if key is None:
            raise StopIteration  # second step: the sleep is over
        self.state = None
        core = self._core
        core.task_queue.push(core.current(), key)  # first step: requeue at the key, suspend
