"""Where tasks wait: ``TaskQueue`` (the run queue, and every FIFO of waiters) and ``IOQueue``.

``TaskQueue`` (docs/asyncio.md 2.1) is MicroPython's stable pairing heap, modelled as a binary
heap ordered by ``(key, push number)``: the smallest key (compared with ``ticks_diff``) comes
first and equal keys leave in push order. A task sits in at most one queue; ``push`` records
the key as the task's ``ph_key`` and sets its ``data`` to ``None`` (that is how "woken
normally" differs from "cancellation pending"), and ``remove`` deletes it in O(1) by marking
its heap entry dead (dead entries are dropped when they reach the top, or all at once when
they outnumber the live ones). Because every push without a key uses "now", waiter queues of
events, locks and tasks are FIFO.

``IOQueue`` (2.5) is the one table of tasks waiting for a stream to become readable or
writable, keyed by ``id()`` of the raw stream (the socket, not the ``Stream`` wrapper), one
reader and one writer per stream, over one ``select.poll`` object of the script world. Waits are
one-shot: a stream is registered only while a task waits on it, and ``wait_io_event`` wakes the
reader on any bit but POLLOUT and the writer on any bit but POLLIN (so ERR/HUP wake both), in
the order the poll object reports the streams. Two decisions of section 7.4: a second waiter
for the same direction raises ``RuntimeError`` (on a board it silently replaces the first one,
which then never wakes), and cancelling one waiter keeps the other direction's waiter.

Neither class may suspend or run task code. Entry points: ``TaskQueue``, ``IOQueue``.
"""

from __future__ import annotations

import heapq
import itertools
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from pystack.runtime.masyncio.core import Core
    from pystack.runtime.masyncio.task import Task

POLLIN, POLLOUT = 1, 4  # select's constants (extmod/modselect.c), the same in every port

_COMPACT_AT = 64  # rebuild a heap once it holds this many dead entries and more dead than live


class TaskQueue:
    """A queue of tasks by wake-up key, first pushed first out among equal keys."""

    __slots__ = ("_dead", "_heap", "_pushes")
    _core: ClassVar[Core]

    def __init__(self) -> None:
        self._heap: list[list[Any]] = []  # [position on the tick line, push number, task|None]
        self._pushes = itertools.count()
        self._dead = 0

    def push(self, task: Task, key: int | None = None) -> None:
        if task._queue is not None:
            task._queue.remove(task)  # one queue at a time (a pairing heap node has one place)
        clock = self._core.clock
        if key is None:
            key = clock.now()
        task._key = key
        task.data = None
        entry = [clock.order(key), next(self._pushes), task]
        task._queue, task._entry = self, entry
        heapq.heappush(self._heap, entry)

    def peek(self) -> Task | None:
        heap = self._heap
        while heap and heap[0][2] is None:
            heapq.heappop(heap)
            self._dead -= 1
        return heap[0][2] if heap else None

    def pop(self) -> Task:
        task = self.peek()
        if task is None:
            raise IndexError("empty queue")
        heapq.heappop(self._heap)
        task._queue = task._entry = None
        return task

    def remove(self, task: Task) -> None:
        """Take ``task`` out if it is here (doing nothing otherwise)."""
        if task._queue is not self or task._entry is None:
            return
        task._entry[2] = None
        task._queue = task._entry = None
        self._dead += 1
        if self._dead >= _COMPACT_AT and self._dead * 2 > len(self._heap):
            self._heap = [entry for entry in self._heap if entry[2] is not None]
            heapq.heapify(self._heap)
            self._dead = 0

    def holds(self, task: Task) -> bool:
        return task._queue is self


class _Waiters:
    """The tasks waiting on one stream: at most one to read and one to write."""

    __slots__ = ("reader", "stream", "writer")

    def __init__(self, stream: Any) -> None:
        self.stream = stream  # kept so id(stream) stays unique while it is in the table
        self.reader: Task | None = None
        self.writer: Task | None = None


class IOQueue:
    """Tasks parked until a stream is ready, over one poll object."""

    __slots__ = ("_table", "poller")
    _core: ClassVar[Core]

    def __init__(self) -> None:
        self.poller: Any = self._core.select.poll()
        self._table: dict[int, _Waiters] = {}

    def queue_read(self, stream: Any) -> None:
        """Park the current task until ``stream`` is readable (the caller then suspends)."""
        self._enqueue(stream, writing=False)

    def queue_write(self, stream: Any) -> None:
        """Park the current task until ``stream`` is writable (the caller then suspends)."""
        self._enqueue(stream, writing=True)

    def _enqueue(self, stream: Any, writing: bool) -> None:
        task = self._core.current()
        waiters = self._table.get(id(stream))
        if waiters is None:
            waiters = _Waiters(stream)
            self.poller.register(stream, POLLOUT if writing else POLLIN)
            self._table[id(stream)] = waiters
        else:
            if (waiters.writer if writing else waiters.reader) is not None:
                direction = "write to" if writing else "read from"
                raise RuntimeError(f"another task is already waiting to {direction} this stream")
            self.poller.modify(stream, POLLIN | POLLOUT)
        if writing:
            waiters.writer = task
        else:
            waiters.reader = task
        task.data = self  # lets cancel() take the task out again (see remove)

    def remove(self, task: Task) -> None:
        """Forget ``task`` wherever it waits; the other direction's waiter stays."""
        for waiters in list(self._table.values()):
            if waiters.reader is task or waiters.writer is task:
                if waiters.reader is task:
                    waiters.reader = None
                if waiters.writer is task:
                    waiters.writer = None
                self._reregister(waiters)

    def _reregister(self, waiters: _Waiters) -> None:
        if waiters.reader is None and waiters.writer is None:
            del self._table[id(waiters.stream)]
            self.poller.unregister(waiters.stream)
        elif waiters.reader is None:
            self.poller.modify(waiters.stream, POLLOUT)
        else:
            self.poller.modify(waiters.stream, POLLIN)

    def is_empty(self) -> bool:
        return not self._table

    def streams(self) -> list[Any]:
        return [waiters.stream for waiters in self._table.values()]

    def wait_io_event(self, timeout_ms: int) -> bool:
        """One ``ipoll(timeout_ms)``; push every task whose stream is ready. True if any woke."""
        run_queue = self._core.task_queue
        woke = False
        for stream, events in self.poller.ipoll(timeout_ms):
            waiters = self._table.get(id(stream))
            if waiters is None:
                continue
            # The reader first, then the writer, for each stream (section 7.5).
            if events & ~POLLOUT and waiters.reader is not None:
                run_queue.push(waiters.reader)
                waiters.reader, woke = None, True
            if events & ~POLLIN and waiters.writer is not None:
                run_queue.push(waiters.writer)
                waiters.writer, woke = None, True
            self._reregister(waiters)
        return woke
