"""``wait_for``, ``wait_for_ms`` and ``gather`` (docs/asyncio.md 2.10).

``wait_for(aw, timeout)`` races ``aw`` against a sleep. ``aw`` becomes a task at once; a *runner*
task, queued after it, awaits it and, if the caller is still sleeping out the timeout, cancels
that sleep with a ``CancelledError`` carrying the outcome (two hops: the runner's step, then the
caller's). If the sleep ends first the caller cancels the runner, which the await link forwards
to ``aw``, waits until ``aw`` has really finished, and raises ``TimeoutError``, even if ``aw``
swallowed the cancellation. A cancel from outside (a ``CancelledError`` with no outcome) cancels
``aw`` and leaves at once. One change from MicroPython: the runner acts only while the caller is
still in *this* sleep, so a late runner can never cancel some later, unrelated sleep of a caller
that went on after an outside cancel.

``gather(*aws)`` promotes every argument to a task and puts one ``_Gathering`` object in charge:
it is the completion callback stored in each running sub-task's ``state`` and the parking place
(``data``) of the gathering task, whose ``remove`` does nothing, as cancel requires. The first
failure (or, with ``return_exceptions``, the last completion) queues the gathering task; when it
resumes, sub-tasks still running are detached, not cancelled, unless the gather itself was
cancelled. It never suspends when there is nothing to wait for.

Entry points: ``Functions`` (its bound methods are the module's ``wait_for``, ``wait_for_ms``,
``gather``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pystack.runtime.masyncio.task import (
    CancelledError,
    SingletonGenerator,
    Suspension,
    Task,
    TimeoutError,
)

if TYPE_CHECKING:
    from pystack.runtime.masyncio.core import Core


class _Outcome:
    """How the awaited task ended, handed to the sleeping caller inside a CancelledError."""

    __slots__ = ("error", "value")

    def __init__(self, value: Any, error: BaseException | None) -> None:
        self.value = value
        self.error = error


class _Timeout:
    """What one ``wait_for``'s caller and its runner task share."""

    __slots__ = ("caller", "sleeping")

    def __init__(self, caller: Task) -> None:
        self.caller = caller
        self.sleeping = True  # the caller is still in the timeout's sleep


class _Gathering:
    """One ``gather`` in progress: sub-tasks' completion callback, gathering task's parking."""

    __slots__ = ("core", "failure", "pending", "return_exceptions", "waiter")

    def __init__(self, core: Core, waiter: Task, return_exceptions: bool) -> None:
        self.core = core
        self.waiter = waiter
        self.return_exceptions = return_exceptions
        self.pending = 0  # sub-tasks still running
        self.failure: BaseException | None = None

    def __call__(self, task: Task, ending: BaseException) -> None:
        if self.waiter.data is not self:
            return  # already queued: by an earlier failure or by a cancel
        if not self.return_exceptions and not isinstance(ending, StopIteration):
            self.failure = ending
        else:
            self.pending -= 1
            if self.pending:
                return
        self.core.task_queue.push(self.waiter)

    def remove(self, task: Task) -> None:
        """Nothing to undo when the gathering task is cancelled (cancel then queues it)."""


def _result(task: Task) -> Any:
    """A finished sub-task's value, or its exception as an object."""
    ending = task.data
    return ending.value if isinstance(ending, StopIteration) else ending


class Functions:
    def __init__(self, core: Core) -> None:
        self._core = core

    def wait_for(self, aw: Any, timeout: float | None) -> Suspension[Any]:
        return (yield from self._race(aw, timeout, self._core.sleep))

    def wait_for_ms(self, aw: Any, timeout: int | None) -> Suspension[Any]:
        return (yield from self._race(aw, timeout, self._core.sleep_ms))

    def _race(
        self, aw: Any, timeout: Any, sleep: Callable[[Any], SingletonGenerator]
    ) -> Suspension[Any]:
        core = self._core
        task = core.promote(aw)
        if timeout is None:
            return (yield from task.__await__())
        shared = _Timeout(core.current())
        runner = core.create_task(self._run(shared, task))
        try:
            yield from sleep(timeout)
        except CancelledError as cancel:
            shared.sleeping = False
            outcome = cancel.args[0] if cancel.args else None
            if not isinstance(outcome, _Outcome):  # cancelled from outside: go now
                runner.cancel()
                raise
            if outcome.error is not None:
                raise outcome.error from None
            return outcome.value
        shared.sleeping = False
        runner.cancel()  # forwarded to aw through the runner's await
        yield from runner.__await__()  # wait until aw has really finished
        raise TimeoutError()

    def _run(self, shared: _Timeout, task: Task) -> Suspension[None]:
        try:
            outcome = _Outcome((yield from task.__await__()), None)
        except (CancelledError, Exception) as error:
            outcome = _Outcome(None, error)
        caller = shared.caller
        if shared.sleeping and caller.data is None and caller.cancel():
            caller.data = CancelledError(outcome)  # thrown into the sleep instead of a bare one

    def gather(self, *aws: Any, return_exceptions: bool = False) -> Suspension[list[Any]]:
        if not aws:
            return []
        core = self._core
        tasks = [core.promote(aw) for aw in aws]
        for task in tasks:  # refuse before taking any task over
            if task.state is True:
                continue
            if not task.done():
                raise RuntimeError("can't gather")  # someone else awaits it, or a gather owns it
            if not return_exceptions and not isinstance(task.data, StopIteration):
                raise task.data  # finished with an error already: no waiting at all
        gathering = _Gathering(core, core.current(), return_exceptions)
        for task in tasks:
            if task.state is True:
                task.state = gathering
                gathering.pending += 1
        cancelled: CancelledError | None = None
        if gathering.pending:
            gathering.waiter.data = gathering
            try:
                yield
            except CancelledError as error:
                cancelled = error
        for task in tasks:
            if task.state is gathering:
                task.state = True  # detached: an ordinary task again
                if cancelled is not None:
                    task.cancel()
        if cancelled is not None:
            raise cancelled
        if gathering.failure is not None:
            raise gathering.failure
        return [_result(task) for task in tasks]
