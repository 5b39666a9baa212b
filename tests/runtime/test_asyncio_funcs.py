"""``gather``, ``wait_for`` and ``wait_for_ms`` (docs/asyncio.md 2.10, 5.2): the exact hops.

The gather walk-through is section 5.2 line by line, except that CPython prints a one-argument
exception as ``ValueError(2)`` where MicroPython prints ``ValueError(2,)`` (section 7.3)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.runtime.asyncio_scripts import AsyncioScripts


@pytest.fixture
def scripts(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Iterator[AsyncioScripts]:
    runner = AsyncioScripts(tmp_path, capsys)
    yield runner
    runner.close()


GATHER = """
import asyncio

async def factorial(name, number):
    f = 1
    for i in range(2, number + 1):
        print("Task {}: Compute factorial({})...".format(name, i))
        await asyncio.sleep(0.01)
        f *= i
    print("Task {}: factorial({}) = {}".format(name, number, f))
    return f

async def task(id, t=0.1):
    print("start", id)
    await asyncio.sleep(t)
    print("end", id)
    return id

async def task_loop(id):
    print("task_loop start", id)
    while True:
        await asyncio.sleep(0.1)
        print("task_loop loop", id)

async def task_raise(id, t=0.1):
    print("task_raise start", id)
    await asyncio.sleep(t)
    print("task_raise raise", id)
    raise ValueError(id)

async def gather_task(t0, t1):
    print("gather_task")
    await asyncio.gather(t0, t1)
    print("gather_task2")

async def main():
    print(await asyncio.gather(factorial("A", 2), factorial("B", 3), factorial("C", 4)))
    print("====")
    print(await asyncio.gather())
    print("====")
    tasks = [asyncio.create_task(task(1)), asyncio.create_task(task(2))]
    tasks[0].cancel()
    print(await asyncio.gather(*tasks, return_exceptions=True))
    print("====")
    tasks = [asyncio.create_task(task(1)), asyncio.create_task(task_raise(2))]
    print(await asyncio.gather(*tasks, return_exceptions=True))
    print("====")
    tasks = [asyncio.create_task(task_loop(1)), asyncio.create_task(task_raise(2))]
    try:
        await asyncio.gather(*tasks)
    except ValueError as er:
        print(repr(er))
    print(tasks[0].done(), tasks[1].done())
    for t in tasks:
        t.cancel()
    await asyncio.sleep(0.2)
    print("====")
    tasks = [asyncio.create_task(task_raise(1, t=0)), asyncio.create_task(task_raise(2, t=0))]
    try:
        await asyncio.gather(*tasks)
    except ValueError as er:
        print(repr(er))
    print(tasks[0].done(), tasks[1].done())
    print("====")
    t = asyncio.create_task(gather_task(task(1), task(2)))
    await asyncio.sleep(0.05)
    t.cancel()
    await asyncio.sleep(0.2)
    for i in range(1, 4):
        print("====")
        t = asyncio.create_task(gather_task(task(1, t=0), task(2, t=0)))
        for _ in range(i):
            await asyncio.sleep(0)
        t.cancel()
        await asyncio.sleep(0.2)

asyncio.run(main())
"""

GATHER_EXPECTED = """\
Task A: Compute factorial(2)...
Task B: Compute factorial(2)...
Task C: Compute factorial(2)...
Task A: factorial(2) = 2
Task B: Compute factorial(3)...
Task C: Compute factorial(3)...
Task B: factorial(3) = 6
Task C: Compute factorial(4)...
Task C: factorial(4) = 24
[2, 6, 24]
====
[]
====
start 2
end 2
[CancelledError(), 2]
====
start 1
task_raise start 2
end 1
task_raise raise 2
[1, ValueError(2)]
====
task_loop start 1
task_raise start 2
task_loop loop 1
task_raise raise 2
ValueError(2)
False True
====
task_raise start 1
task_raise start 2
task_raise raise 1
task_raise raise 2
ValueError(1)
True True
====
gather_task
start 1
start 2
====
gather_task
start 1
start 2
====
gather_task
start 1
start 2
end 1
end 2
====
gather_task
start 1
start 2
end 1
end 2
"""


def test_5_2_gather_walkthrough(scripts: AsyncioScripts) -> None:
    outcome = scripts.run(GATHER)
    assert outcome.out == GATHER_EXPECTED
    assert outcome.err == ""  # the detached task_loop was cancelled, not reported


def test_5_2_gather_walkthrough_on_real_time(scripts: AsyncioScripts) -> None:
    outcome = scripts.run(GATHER, real_time=True)
    assert outcome.out == GATHER_EXPECTED


def test_gather_of_nothing_and_of_finished_tasks_does_not_suspend(
    scripts: AsyncioScripts,
) -> None:
    outcome = scripts.run(
        """
        import asyncio
        async def value(v):
            return v
        async def bystander():
            print("bystander ran")
        async def main():
            done = asyncio.create_task(value(7))
            await asyncio.sleep(0)
            asyncio.create_task(bystander())
            print(await asyncio.gather())
            print(await asyncio.gather(done))
            print(done.state)   # read directly: not marked retrieved
            await asyncio.sleep(0)
        asyncio.run(main())
        """
    )
    assert outcome.lines == ["[]", "[7]", "None", "bystander ran"]


def test_gather_refuses_an_awaited_task_and_a_gathered_task_cannot_be_awaited(
    scripts: AsyncioScripts,
) -> None:
    outcome = scripts.run(
        """
        import asyncio
        async def slow():
            await asyncio.sleep_ms(10)
            return "slow"
        async def awaiter(t):
            return await t
        async def gatherer(t):
            return await asyncio.gather(t)
        async def main():
            t = asyncio.create_task(slow())
            asyncio.create_task(awaiter(t))
            await asyncio.sleep(0)
            try:
                await asyncio.gather(t)
            except RuntimeError as error:
                print("RuntimeError", error)
            u = asyncio.create_task(slow())
            g = asyncio.create_task(gatherer(u))
            await asyncio.sleep(0)
            try:
                await u
            except RuntimeError as error:
                print("RuntimeError", error)
            print(await g)
        asyncio.run(main())
        """
    )
    assert outcome.lines == ["RuntimeError can't gather", "RuntimeError can't wait", "['slow']"]


def test_gather_of_an_already_failed_task_raises_at_once(scripts: AsyncioScripts) -> None:
    outcome = scripts.run(
        """
        import asyncio
        asyncio.get_event_loop().set_exception_handler(lambda loop, context: None)
        async def broken():
            raise ValueError("early")
        async def main():
            t = asyncio.create_task(broken())
            await asyncio.sleep(0)
            try:
                await asyncio.gather(t)
            except ValueError as error:
                print("raised", error)
            print(await asyncio.gather(t, return_exceptions=True))
        asyncio.run(main())
        """
    )
    assert outcome.lines == ["raised early", "[ValueError('early')]"]


WAIT_FOR = """
import asyncio

async def task(id, t):
    print("task start", id)
    await asyncio.sleep(t)
    print("task end", id)
    return id * 2

async def task_catch():
    print("task_catch start")
    try:
        await asyncio.sleep(0.2)
    except asyncio.CancelledError:
        print("ignore cancel")
    print("task_catch done")

async def task_raise():
    print("task start")
    raise ValueError

async def task_cancel_other(t, other):
    print("task_cancel_other start")
    await asyncio.sleep(t)
    print("task_cancel_other cancel")
    other.cancel()

async def task_wait_for_cancel(id, t, t_wait):
    print("task_wait_for_cancel start")
    try:
        await asyncio.wait_for(task(id, t), t_wait)
    except asyncio.CancelledError as er:
        print("task_wait_for_cancel cancelled")
        raise er

async def task_wait_for_cancel_ignore(t_wait):
    print("task_wait_for_cancel_ignore start")
    try:
        await asyncio.wait_for(task_catch(), t_wait)
    except asyncio.CancelledError as er:
        print("task_wait_for_cancel_ignore cancelled")
        raise er

async def main():
    sep = "-" * 10
    print(await asyncio.wait_for(task(1, 0.01), 10))
    print(sep)
    try:
        print(await asyncio.wait_for(task(2, 10), 0.01))
    except asyncio.TimeoutError:
        print("timeout")
    print(sep)
    try:
        print(await asyncio.wait_for(task_catch(), 0.1))
    except asyncio.TimeoutError:
        print("TimeoutError")
    print(sep)
    try:
        print(await asyncio.wait_for(task_raise(), 1))
    except ValueError:
        print("ValueError")
    print(sep)
    print(await asyncio.wait_for(task(3, 0.1), None))
    print(sep)
    t = asyncio.create_task(task(4, 10))
    asyncio.create_task(task_cancel_other(0.01, t))
    try:
        print(await asyncio.wait_for(t, 1))
    except asyncio.CancelledError as er:
        print(repr(er))
    print(sep)
    t = asyncio.create_task(task_wait_for_cancel(4, 1, 2))
    await asyncio.sleep(0.01)
    t.cancel()
    await asyncio.sleep(0.01)
    print(sep)
    t = asyncio.create_task(task_wait_for_cancel_ignore(2))
    await asyncio.sleep(0.01)
    t.cancel()
    await asyncio.sleep(0.01)
    print(sep)
    for num_sleep in range(1, 5):
        t = asyncio.create_task(task_wait_for_cancel(4 + num_sleep, 0, 2))
        for _ in range(num_sleep):
            await asyncio.sleep(0)
        assert not t.done()
        print("cancel wait_for")
        t.cancel()
        try:
            await t
        except asyncio.CancelledError as er:
            print(repr(er))
        print(sep)
    print("finish")

asyncio.run(main())
"""

SEPARATOR = "-" * 10
WAIT_FOR_EXPECTED = [
    *("task start 1", "task end 1", "2", SEPARATOR),
    *("task start 2", "timeout", SEPARATOR),
    # aw swallows the cancel and finishes: still TimeoutError, once it is done
    *("task_catch start", "ignore cancel", "task_catch done", "TimeoutError", SEPARATOR),
    *("task start", "ValueError", SEPARATOR),
    *("task start 3", "task end 3", "6", SEPARATOR),
    *("task start 4", "task_cancel_other start", "task_cancel_other cancel"),
    *("CancelledError()", SEPARATOR),
    *("task_wait_for_cancel start", "task start 4", "task_wait_for_cancel cancelled", SEPARATOR),
    # cancelled from outside: leaves at once, before aw has even seen its cancel
    "task_wait_for_cancel_ignore start",
    "task_catch start",
    "task_wait_for_cancel_ignore cancelled",
    *("ignore cancel", "task_catch done", SEPARATOR),
    # the outside cancel against aw finishing: after 1..4 zero-sleeps of main
    *("task_wait_for_cancel start", "cancel wait_for", "task start 5"),
    *("task_wait_for_cancel cancelled", "CancelledError()", SEPARATOR),
    *("task_wait_for_cancel start", "task start 6", "cancel wait_for", "task end 6"),
    *("task_wait_for_cancel cancelled", "CancelledError()", SEPARATOR),
    *("task_wait_for_cancel start", "task start 7", "task end 7", "cancel wait_for"),
    *("task_wait_for_cancel cancelled", "CancelledError()", SEPARATOR),
    *("task_wait_for_cancel start", "task start 8", "task end 8", "cancel wait_for"),
    *("task_wait_for_cancel cancelled", "CancelledError()", SEPARATOR),
    "finish",
]


def test_wait_for_walkthrough(scripts: AsyncioScripts) -> None:
    outcome = scripts.run(WAIT_FOR)
    assert outcome.lines == WAIT_FOR_EXPECTED
    assert outcome.err == ""


def test_wait_for_walkthrough_on_real_time(scripts: AsyncioScripts) -> None:
    assert scripts.run(WAIT_FOR, real_time=True).lines == WAIT_FOR_EXPECTED


def test_wait_for_returns_after_two_hops_when_aw_finishes_first(scripts: AsyncioScripts) -> None:
    # aw's step, the runner's step, then the caller's: a bystander queued before aw gets a
    # second turn between the runner and the caller (run() then returns with main)
    outcome = scripts.run(
        """
        import asyncio
        async def quick():
            print("aw")
            return "value"
        async def bystander():
            for i in range(3):
                print("bystander", i)
                await asyncio.sleep(0)
        async def main():
            asyncio.create_task(bystander())
            print(await asyncio.wait_for(quick(), 5))
        asyncio.run(main())
        """
    )
    assert outcome.lines == ["bystander 0", "aw", "bystander 1", "value"]


def test_wait_for_ms_sleep_ms_and_the_ticks_add_overflow(scripts: AsyncioScripts) -> None:
    outcome = scripts.run(
        """
        import time, asyncio
        async def task(id, t):
            print("task start", id)
            await asyncio.sleep_ms(t)
            print("task end", id)
            return id * 2
        async def main():
            t0 = time.ticks_ms()
            await asyncio.sleep_ms(1)
            print(time.ticks_diff(time.ticks_ms(), t0))
            try:
                asyncio.sleep_ms(time.ticks_add(0, -1) // 2 + 1)  # raised by the call itself
            except OverflowError as error:
                print("OverflowError", error)
            print(await asyncio.wait_for_ms(task(1, 5), 50))
            try:
                print(await asyncio.wait_for_ms(task(2, 50), 5))
            except asyncio.TimeoutError:
                print("timeout")
            print(time.ticks_diff(time.ticks_ms(), t0))
        asyncio.run(main())
        """
    )
    assert outcome.lines == [
        "1",
        "OverflowError ticks interval overflow",
        "task start 1",
        "task end 1",
        "2",
        "task start 2",
        "timeout",
        "11",
    ]


def test_wait_for_accepts_the_generator_awaitables(scripts: AsyncioScripts) -> None:
    outcome = scripts.run(
        """
        import asyncio
        async def main():
            event = asyncio.Event()
            try:
                await asyncio.wait_for(event.wait(), 0.05)
            except asyncio.TimeoutError:
                print("timeout", event.waiting.peek() is None)
            asyncio.create_task(setter(event))
            print(await asyncio.wait_for_ms(event.wait(), 100))
        async def setter(event):
            event.set()
        asyncio.run(main())
        """
    )
    assert outcome.lines == ["timeout True", "True"]


def test_a_cancelled_wait_for_cancels_aw_and_leaves_before_aw_has_finished(
    scripts: AsyncioScripts,
) -> None:
    # asyncio_wait_for_fwd.py's cases: whether aw swallows its cancel or not, and whether the
    # caller catches the CancelledError or not, the caller leaves first.
    outcome = scripts.run(
        """
        import asyncio
        async def awaited(swallow):
            try:
                print("aw started")
                await asyncio.sleep(2)
            except asyncio.CancelledError:
                print("aw cancelled")
                if swallow:
                    return False
                raise
        async def case(catch, swallow):
            print("--", catch, swallow)
            async def waits():
                try:
                    await asyncio.wait_for(awaited(swallow), 1)
                except asyncio.TimeoutError:
                    print("timeout")
                except asyncio.CancelledError:
                    print("wait_for cancelled")
                    if not catch:
                        raise
            async def canceller(t):
                await asyncio.sleep(0.01)
                t.cancel()
            t = asyncio.create_task(waits())
            asyncio.create_task(canceller(t))
            try:
                await t
            except asyncio.CancelledError:
                print("main saw the cancel")
        for catch in (False, True):
            for swallow in (False, True):
                asyncio.run(case(catch, swallow))
        """
    )
    leaves = ["aw started", "wait_for cancelled", "aw cancelled"]
    assert outcome.lines == [
        *("-- False False", *leaves, "main saw the cancel"),
        *("-- False True", *leaves, "main saw the cancel"),
        *("-- True False", *leaves),
        *("-- True True", *leaves),
    ]
