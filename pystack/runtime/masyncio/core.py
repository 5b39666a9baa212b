"""The scheduler: one script world's run queue, I/O queue and main loop (docs/asyncio.md 2).

``Core`` is the whole state of one world's event loop; MicroPython keeps it in module globals of
``asyncio.core``, pystack in one object per ``ScriptWorld`` (two worlds in one process share
nothing). The classes scripts see (``Task``, ``TaskQueue``, ``Event``...) are subclasses made by
``bind`` that carry their world's ``Core`` in the class attribute ``_core``.

The loop (``run_until_complete``), one iteration:

1. **Wait.** Compute ``dt``: milliseconds until the head of the run queue is due (0 if it is),
   -1 if only I/O waiters exist, or the 3 ms idle spin if nothing at all is queued while the
   main task is unfinished (with no main task, or a finished one, return); on a
   ``VirtualClock`` that idle wait is one wait for a ``micropython.schedule`` callback instead,
   however long (time moves with the stacks' deadlines meanwhile; nothing spins). Then one
   ``ipoll(dt)`` of the I/O queue, pushing woken tasks at "now", and repeat while ``dt > 0``.
   So an ``ipoll`` runs before every step, and I/O wake-ups queue behind every task that was
   already due (ordering rule 6). A wait forever ends at the first wake-up.
2. **Step.** Pop the head, make it ``cur_task``, ``send(None)`` into it, or throw its ``data``
   (a pending ``CancelledError``) in. It runs until it suspends; the loop never re-queues a
   task that only yielded: sleeping or parking is the task's own business.
3. **Finish** (when the coroutine returned or raised): wake its waiters in FIFO order, or call
   the gather callback that owns it, or, if nobody waits and it failed, queue it again so the
   exception handler runs one round later unless someone awaits it meanwhile (2.8). The main
   task's return value is returned at once; its exception is raised out of the loop.

Waiting. ``ipoll`` on the world's ``select.poll`` blocks on the stack thread. A long wait is cut
into slices (``WAIT_SLICE_MS``, or ``CUSTOM_POLL_MS`` while an object that is not one of the
stack's sockets, such as a ``ThreadSafeFlag``, is registered: its readiness can change without
the stack noticing, so it is polled every millisecond, as the unix port does) and
``micropython.schedule`` callbacks run between slices (``Scheduler.run_pending``; the loop's own
code is not script code, so the scheduler's signal route never runs them while it waits).
Slicing changes nothing visible: each slice that ends without a wake-up is followed by the same
recomputation of ``dt``. Time comes from ticks.py (real or virtual).

Entry points: ``Core`` (``create_task``, ``run``, ``run_until_complete``, ``sleep_ms``...),
``bind``, ``loop_class``.
"""

from __future__ import annotations

import inspect
import time
import types
from collections.abc import Callable
from typing import Any, TypeVar, cast

from pystack.runtime.masyncio.events import Event, Lock, ThreadSafeFlag
from pystack.runtime.masyncio.funcs import Functions
from pystack.runtime.masyncio.queues import IOQueue, TaskQueue
from pystack.runtime.masyncio.streams import Connections, Server, Stream
from pystack.runtime.masyncio.task import CancelledError, SingletonGenerator, Task
from pystack.runtime.masyncio.ticks import LoopClock
from pystack.runtime.world import ScriptWorld

T = TypeVar("T")
IDLE_SPIN_MS = 3  # nothing queued but the main task unfinished: poll this often (issue 16569)
WAIT_SLICE_MS = 10  # longest single ipoll: scheduled callbacks wait at most this long
CUSTOM_POLL_MS = 1  # MICROPY_PY_SELECT_IOCTL_CALL_PERIOD_MS: objects without a descriptor
UNRETRIEVED = "Task exception wasn't retrieved"

ExceptionHandler = Callable[[type, dict[str, Any]], object]


def bind(cls: type[T], core: Core, **attributes: Any) -> type[T]:
    """A subclass of ``cls`` that belongs to ``core``'s world, as scripts see it."""
    namespace = {"_core": core, "__slots__": (), "__module__": "asyncio", **attributes}
    namespace["__qualname__"] = cls.__qualname__
    return cast(type[T], type(cls.__name__, (cls,), namespace))


class _NoSockets:
    """Stands for the socket type in a world without a socket module: nothing is one."""


async def _stopper() -> None:
    """The main task of ``run_forever``: finishes as soon as ``stop()`` queues it."""


class Core:
    def __init__(self, world: ScriptWorld) -> None:
        self.world = world
        self.time = world.module("time")
        self.select = world.module("select")
        self.sys = world.module("sys")
        self.clock = LoopClock(self.time, world.clock)
        self.unfinished: set[Task] = set()  # closed at the end if never started (no warnings)
        self.Task = bind(Task, self)
        self.TaskQueue = bind(TaskQueue, self)
        self.IOQueue = bind(IOQueue, self)
        self.SingletonGenerator = bind(SingletonGenerator, self)
        self.Event = bind(Event, self)
        self.ThreadSafeFlag = bind(ThreadSafeFlag, self)
        self.Lock = bind(Lock, self)
        self.Stream = bind(Stream, self, _shared_extra={})
        self.Server = bind(Server, self)
        self.functions = Functions(self)
        self.connections = Connections(self)
        self.task_queue = self.TaskQueue()
        self.io_queue = self.IOQueue()
        self.cur_task: Task | None = None
        self.stop_task: Task | None = None
        self.exception_handler: ExceptionHandler | None = None
        self.exception_context: dict[str, Any] = {
            "message": UNRETRIEVED,
            "exception": None,
            "future": None,
        }
        self.sleeper = self.SingletonGenerator()
        self._socket_type: type | None = None
        self.Loop = loop_class(self)
        world.add_cleanup(self.close)

    # -- tasks and sleeping --------------------------------------------------------------------
    def create_task(self, coro: Any) -> Task:
        if not hasattr(coro, "send"):
            raise TypeError("coroutine expected")
        task = self.Task(coro, None)
        self.task_queue.push(task)
        return task

    def promote(self, aw: Any) -> Task:
        """``aw`` itself if it is a Task, else a new task running it."""
        return aw if isinstance(aw, Task) else self.create_task(aw)

    def sleep_ms(self, t: int) -> SingletonGenerator:
        # The key is computed now, at the call: "now" is when sleep_ms() is called (rule 2).
        self.sleeper.state = self.clock.ticks_add(self.clock.now(), max(0, t))
        return self.sleeper

    def sleep(self, t: float) -> SingletonGenerator:
        return self.sleep_ms(int(t * 1000))

    def current_task(self) -> Task:
        task = self.cur_task
        if task is None:
            raise RuntimeError("no running event loop")
        return task

    current = current_task  # what awaitables use to find the task that awaits them

    # -- running -------------------------------------------------------------------------------
    def run(self, coro: Any) -> Any:
        return self.run_until_complete(self.create_task(coro))

    def run_until_complete(self, main_task: Task | None = None) -> Any:
        while self._wait_for_runnable(main_task):
            task = self.task_queue.pop()
            self.cur_task = task
            ending = self._step(task)
            self.clock.stepped()
            if ending is None:
                continue
            self._finish(task, ending)
            if task is main_task:
                self.cur_task = None
                if isinstance(ending, StopIteration):
                    return ending.value
                task.state = False  # run() retrieves the main task's exception: no report
                self.task_queue.remove(task)
                raise ending
        return None

    def _wait_for_runnable(self, main_task: Task | None) -> bool:
        """The wait phase: poll until a task may be popped; False when the loop should end."""
        clock = self.clock
        while True:
            head = self.task_queue.peek()
            if head is not None:
                dt = max(0, clock.ticks_diff(head.ph_key, clock.now()))
            elif not self.io_queue.is_empty():
                dt = -1
            else:
                self.cur_task = None
                if main_task is None or main_task.done():
                    return False
                scheduler = self.world.scheduler
                if scheduler.wait_for_callback():  # virtual time: no spinning while idle
                    scheduler.run_pending()
                    continue
                dt = IDLE_SPIN_MS
            woke = self._poll(dt)
            if dt == 0 or (dt < 0 and woke):
                return True

    def _poll(self, dt: int) -> bool:
        """One ipoll for a wait of ``dt`` ms (-1: until I/O), sliced; True if a task woke."""
        clock, io = self.clock, self.io_queue
        if dt == 0:
            woke = io.wait_io_event(0)
        elif clock.virtual and dt > 0 and io.is_empty() and self.task_queue.peek() is not None:
            # A timer and no I/O waiter (not the idle spin, which waits for callbacks): nothing
            # from outside can come first, so jump to the deadline.
            woke = io.wait_io_event(0)
            clock.advance(dt)
        else:
            period = CUSTOM_POLL_MS if self._custom_pollable_waits() else WAIT_SLICE_MS
            wait = period if dt < 0 else min(dt, period)
            started = time.monotonic()
            woke = io.wait_io_event(wait)
            clock.advance(min(wait, int((time.monotonic() - started) * 1000)))
        scheduler = self.world.scheduler
        if scheduler.pending:
            scheduler.run_pending()  # micropython.schedule callbacks run while the loop waits
        return woke

    def _custom_pollable_waits(self) -> bool:
        """Whether something other than the stack's sockets waits in the I/O queue."""
        if self._socket_type is None:
            try:
                self._socket_type = cast(type, self.world.module("socket").socket)
            except ImportError:
                self._socket_type = _NoSockets  # no socket module: every stream is custom
        socket_type = self._socket_type
        return any(not isinstance(stream, socket_type) for stream in self.io_queue.streams())

    def _step(self, task: Task) -> BaseException | None:
        """Resume ``task`` until it suspends; the exception that ended it, or None."""
        if task._finished:  # the second entry of a failed task nobody awaited (2.8)
            if task.state is None:
                self._report(task)
            return None
        pending = task.data
        try:
            if not pending:
                task.coro.send(None)
            else:
                task.data = None
                task.coro.throw(pending() if isinstance(pending, type) else pending)
        except (CancelledError, Exception) as ending:
            # The traceback starts in this frame, where it was caught; drop it, so that reports
            # show the task's own frames, as MicroPython's do.
            if ending.__traceback__ is not None:
                ending.__traceback__ = ending.__traceback__.tb_next
            return ending
        return None

    def _finish(self, task: Task, ending: BaseException) -> None:
        task._finished = True
        self.unfinished.discard(task)
        state = task.state
        someone_waits = False
        if isinstance(state, TaskQueue):
            while state.peek() is not None:
                self.task_queue.push(state.pop())  # waiters in the order they came
                someone_waits = True
            task.state = False
        elif callable(state):
            state(task, ending)  # gather's callback: it counts as retrieving the task
            task.state = False
            someone_waits = True
        else:
            task.state = None  # finished, not retrieved yet
        if not someone_waits and not isinstance(ending, (CancelledError, StopIteration)):
            self.task_queue.push(task)  # report it one round later unless awaited meanwhile
        task.data = ending

    def _report(self, task: Task) -> None:
        context = self.exception_context
        context["exception"] = task.data
        context["future"] = task
        self.call_exception_handler(context)

    # -- the Loop namespace --------------------------------------------------------------------
    def new_event_loop(self) -> type:
        """Fresh run and I/O queues; whatever was queued is dropped, never run or cancelled."""
        self.task_queue = self.TaskQueue()
        self.io_queue = self.IOQueue()
        return self.Loop

    def get_event_loop(self, runq_len: int = 0, waitq_len: int = 0) -> type:
        return self.Loop

    def run_forever(self) -> None:
        stopper = self.Task(_stopper(), None)  # not queued: stop() queues it
        self.stop_task = stopper
        self.run_until_complete(stopper)

    def loop_run_until_complete(self, aw: Any) -> Any:
        return self.run_until_complete(self.promote(aw))

    def stop(self) -> None:
        stopper = self.stop_task
        if stopper is not None:
            self.task_queue.push(stopper)  # runs after every task already due
            self.stop_task = None

    def set_exception_handler(self, handler: ExceptionHandler | None) -> None:
        self.exception_handler = handler

    def get_exception_handler(self) -> ExceptionHandler | None:
        return self.exception_handler

    def default_exception_handler(self, loop: type, context: dict[str, Any]) -> None:
        stderr = self.sys.stderr
        print(context["message"], file=stderr)
        print("future:", context["future"], "coro=", context["future"].coro, file=stderr)
        self.sys.print_exception(context["exception"], stderr)

    def call_exception_handler(self, context: dict[str, Any]) -> None:
        handler = self.exception_handler or self.default_exception_handler
        handler(self.Loop, context)

    def close(self) -> None:
        """World cleanup: close coroutines that never started, so CPython does not warn that
        they were never awaited (MicroPython frees them silently). Started ones are left alone:
        closing them would run their code."""
        for task in list(self.unfinished):
            coro = task.coro
            if isinstance(coro, types.CoroutineType):
                if inspect.getcoroutinestate(coro) == inspect.CORO_CREATED:
                    coro.close()
        self.unfinished.clear()


def loop_class(core: Core) -> type:
    """``Loop``: a class used as a namespace, so ``Loop.f`` and ``get_event_loop().f`` agree."""

    class Loop:
        create_task = staticmethod(core.create_task)
        run_forever = staticmethod(core.run_forever)
        run_until_complete = staticmethod(core.loop_run_until_complete)
        stop = staticmethod(core.stop)
        set_exception_handler = staticmethod(core.set_exception_handler)
        get_exception_handler = staticmethod(core.get_exception_handler)
        default_exception_handler = staticmethod(core.default_exception_handler)
        call_exception_handler = staticmethod(core.call_exception_handler)

        @staticmethod
        def close() -> None:
            """Does nothing: there is one loop and it cannot be closed."""

    Loop.__module__ = "asyncio"
    return Loop
