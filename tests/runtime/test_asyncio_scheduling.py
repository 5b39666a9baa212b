"""The scheduler's order (docs/asyncio.md 0, 2, 5.1, 5.4): run queue keys and push order,
sleeping, the poll before every step, cancellation, the exception handler's round, run() and
the Loop functions. Expected outputs are written from the spec's walk-throughs; where the spec
says CPython and MicroPython agree, they are CPython's output for the same script.

Scripts run on virtual time (deterministic, no real sleeping) unless a test says real time."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.runtime.asyncio_scripts import AsyncioScripts

PERIOD = 2**30  # the world's TICKS_PERIOD


@pytest.fixture
def scripts(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Iterator[AsyncioScripts]:
    runner = AsyncioScripts(tmp_path, capsys)
    yield runner
    runner.close()


BASIC = """
import asyncio, time

async def later(seconds, text):
    await asyncio.sleep(seconds)
    print(text)

async def main():
    print("start")
    await asyncio.sleep(0.001)
    print("after sleep")
    t0 = time.ticks_ms()
    await later(0.2, "short")
    t1 = time.ticks_ms()
    await later(0.4, "long")
    t2 = time.ticks_ms()
    await later(-1, "negative")
    t3 = time.ticks_ms()
    print("took", time.ticks_diff(t1, t0), time.ticks_diff(t2, t1), time.ticks_diff(t3, t2))

asyncio.run(main())
"""


def test_5_1_sleep_in_seconds_is_whole_milliseconds_and_negative_is_zero(
    scripts: AsyncioScripts,
) -> None:
    outcome = scripts.run(BASIC)
    assert outcome.lines == ["start", "after sleep", "short", "long", "negative", "took 200 400 0"]


def test_5_1_on_real_time_sleeps_are_accurate_to_well_within_50_ms(
    scripts: AsyncioScripts,
) -> None:
    outcome = scripts.run(BASIC, real_time=True)
    assert outcome.lines[:5] == ["start", "after sleep", "short", "long", "negative"]
    took = [int(number) for number in outcome.lines[5].split()[1:]]
    assert 200 <= took[0] < 250 and 400 <= took[1] < 450 and 0 <= took[2] < 50, took


def test_equal_keys_run_in_push_order_and_create_task_runs_after_the_creators_yield(
    scripts: AsyncioScripts,
) -> None:
    outcome = scripts.run(
        """
        import asyncio
        async def worker(name):
            for round in range(2):
                print(name, round)
                await asyncio.sleep(0)
        async def main():
            for name in "abc":
                asyncio.create_task(worker(name))
            print("main yields")
            await asyncio.sleep(0)
            print("main back")
            await asyncio.sleep_ms(0)
            print("main again")
        asyncio.run(main())
        """
    )
    assert outcome.lines == [
        "main yields",
        "a 0",
        "b 0",
        "c 0",
        "main back",
        "a 1",
        "b 1",
        "c 1",
        "main again",
    ]


def test_timers_wake_by_key_and_a_spinning_task_cannot_starve_them(
    scripts: AsyncioScripts,
) -> None:
    # asyncio_fair.py's shape: two tasks spin on sleep(0) and sleep(-x) for 0.5 s while two
    # timers fire; virtual time still moves (1 ms per STEPS_PER_MS steps).
    outcome = scripts.run(
        """
        import asyncio
        async def task(id, t):
            print("task start", id)
            while True:
                if t > 0:
                    print("task work", id)
                await asyncio.sleep(t)
        async def main():
            tasks = [asyncio.create_task(task(1, -0.01)), asyncio.create_task(task(2, 0.1)),
                     asyncio.create_task(task(3, 0.18)), asyncio.create_task(task(4, -100))]
            await asyncio.sleep(0.5)
            for t in tasks:
                t.cancel()
            print("finish")
        asyncio.run(main())
        """
    )
    assert outcome.lines == [
        "task start 1",
        "task start 2",
        "task work 2",
        "task start 3",
        "task work 3",
        "task start 4",
        "task work 2",
        "task work 3",
        "task work 2",
        "task work 2",
        "task work 3",
        "task work 2",
        "finish",
    ]


def test_keys_compare_with_ticks_diff_across_the_ticks_wrap_around(
    scripts: AsyncioScripts,
) -> None:
    outcome = scripts.run(
        """
        import asyncio, time
        async def sleeper(ms):
            await asyncio.sleep_ms(ms)
            print("woke", ms, time.ticks_ms() < 1000)
        async def main():
            print(time.ticks_ms() > 1000)
            for ms in (90, 30, 60):
                asyncio.create_task(sleeper(ms))
            await asyncio.sleep_ms(100)
        asyncio.run(main())
        """,
        ticks_offset=PERIOD - 50,
    )
    assert outcome.lines == ["True", "woke 30 False", "woke 60 True", "woke 90 True"]


def test_task_queue_pops_smallest_key_first_then_push_order_and_remove_works(
    scripts: AsyncioScripts,
) -> None:
    outcome = scripts.run(
        """
        import asyncio
        def nothing():
            yield
        q = asyncio.TaskQueue()
        tasks = {name: asyncio.Task(nothing()) for name in "abcde"}
        for name, key in zip("abcde", (20, 10, 20, 5, 10)):
            q.push(tasks[name], key)
        q.remove(tasks["c"])
        q.push(tasks["b"], 10)   # pushed again: to the back of its key
        order = []
        while q.peek() is not None:
            task = q.pop()
            order.append([n for n, t in tasks.items() if t is task][0] + str(task.ph_key))
        print(order)
        try:
            q.pop()
        except IndexError:
            print("empty")
        """
    )
    assert outcome.lines == ["['d5', 'e10', 'b10', 'a20']", "empty"]


def test_the_loop_polls_before_every_step_and_io_wakeups_queue_behind_due_tasks(
    scripts: AsyncioScripts,
) -> None:
    # A flag that counts its polls: one ipoll (one ioctl) per task step while it is registered.
    outcome = scripts.run(
        """
        import asyncio
        class CountingFlag(asyncio.ThreadSafeFlag):
            polls = 0
            def ioctl(self, request, argument):
                CountingFlag.polls += 1
                return super().ioctl(request, argument)
        async def waiter(flag):
            await flag.wait()
            print("waiter woke")
        async def main():
            flag = CountingFlag()
            asyncio.create_task(waiter(flag))
            await asyncio.sleep(0)
            before = CountingFlag.polls
            for _ in range(5):
                await asyncio.sleep(0)
            print("polls", CountingFlag.polls - before)
            flag.set()
            await asyncio.sleep(0)
            print("main first")
            await asyncio.sleep(0)
        asyncio.run(main())
        """
    )
    assert outcome.lines == ["polls 5", "main first", "waiter woke"]


def test_cancel_walkthrough_fresh_sleeping_repeated_finished_and_along_await_links(
    scripts: AsyncioScripts,
) -> None:
    outcome = scripts.run(
        """
        import asyncio
        async def task(s, allow_cancel):
            try:
                print("task start")
                await asyncio.sleep(s)
                print("task done")
            except asyncio.CancelledError as er:
                print("task cancel")
                if allow_cancel:
                    raise er
        async def outer(allow_cancel):
            print("outer")
            try:
                await asyncio.create_task(task(0.05, allow_cancel))
            except asyncio.CancelledError as er:
                print("outer cancel")
                raise er
            print("outer done")
        async def main():
            t = asyncio.create_task(task(2, True))
            print(t.cancel())              # before its first step: no code of it runs
            t = asyncio.create_task(task(2, True))
            await asyncio.sleep(0.01)
            print(t.cancel())
            print("main sleep")
            await asyncio.sleep(0.01)
            t = asyncio.create_task(task(2, True))
            await asyncio.sleep(0.01)
            print([t.cancel() for _ in range(4)])  # one CancelledError delivered
            await asyncio.sleep(0.01)
            try:
                await t
            except asyncio.CancelledError:
                print("main got CancelledError")
            t = asyncio.create_task(task(0.01, False))
            await asyncio.sleep(0.05)
            print(t.cancel())              # finished
            for allow in (True, False):
                print("----")
                t = asyncio.create_task(outer(allow))
                await asyncio.sleep(0.01)
                t.cancel()                 # reaches the inner task first
                await asyncio.sleep(0.1)
        asyncio.run(main())
        """
    )
    assert outcome.lines == [
        "True",
        "task start",
        "True",
        "main sleep",
        "task cancel",
        "task start",
        "[True, True, True, True]",
        "task cancel",
        "main got CancelledError",
        "task start",
        "task done",
        "False",
        "----",
        "outer",
        "task start",
        "task cancel",
        "outer cancel",
        "----",
        "outer",
        "task start",
        "task cancel",
        "outer done",
    ]


def test_a_task_cannot_cancel_itself_and_the_error_reaches_run(scripts: AsyncioScripts) -> None:
    outcome = scripts.run(
        """
        import asyncio
        async def task():
            print("cancelling self")
            asyncio.current_task().cancel()
            print("not reached")
        async def main():
            await asyncio.create_task(task())
        try:
            asyncio.run(main())
        except RuntimeError as error:
            print("RuntimeError", error)
        """
    )
    assert outcome.lines == ["cancelling self", "RuntimeError can't cancel self"]


def test_tasks_cancelling_each_other_take_turns(scripts: AsyncioScripts) -> None:
    outcome = scripts.run(
        """
        import asyncio
        async def task(id, other):
            for i in range(3):
                try:
                    print("start", id)
                    await asyncio.sleep(0)
                    print("done", id)
                except asyncio.CancelledError:
                    print("cancelled", id)
                if other is not None:
                    print(id, "cancels", other)
                    tasks[other].cancel()
        async def main():
            global tasks
            tasks = [asyncio.create_task(task(0, 1)), asyncio.create_task(task(1, 0)),
                     asyncio.create_task(task(2, None))]
            await tasks[2]
        asyncio.run(main())
        """
    )
    assert outcome.lines == [
        "start 0",
        "start 1",
        "start 2",
        "done 0",
        "0 cancels 1",
        "start 0",
        "cancelled 1",
        "1 cancels 0",
        "start 1",
        "done 2",
        "start 2",
        "cancelled 0",
        "0 cancels 1",
        "start 0",
        "cancelled 1",
        "1 cancels 0",
        "start 1",
        "done 2",
        "start 2",
        "cancelled 0",
        "0 cancels 1",
        "cancelled 1",
        "1 cancels 0",
        "done 2",
    ]


HANDLER = """
import asyncio

def handler(loop, context):
    print("handler", repr(context["exception"]), context["message"], loop is asyncio.Loop)

async def fail(i):
    raise ValueError(i, i + 1)

async def main():
    loop = asyncio.get_event_loop()
    print(loop.get_exception_handler())
    loop.set_exception_handler(handler)
    print(loop.get_exception_handler() is handler)
    asyncio.create_task(fail(0))
    print("sleep")
    await asyncio.sleep(0)      # fail(0) runs and fails; its report is queued behind main
    print("between")
    await asyncio.sleep(0)      # now the report
    asyncio.create_task(fail(1))
    asyncio.create_task(fail(2))
    print("sleep")
    for _ in range(2):
        await asyncio.sleep(0)
    t = asyncio.create_task(fail(3))
    await asyncio.sleep(0)
    try:
        await t                 # awaited before its report: never reported
    except ValueError as er:
        print(repr(er))
    await asyncio.sleep(0)
    print("done")

asyncio.run(main())
"""


def test_an_unawaited_failure_reaches_the_handler_one_round_later(
    scripts: AsyncioScripts,
) -> None:
    outcome = scripts.run(HANDLER)
    assert outcome.lines == [
        "None",
        "True",
        "sleep",
        "between",
        "handler ValueError(0, 1) Task exception wasn't retrieved True",
        "sleep",
        "handler ValueError(1, 2) Task exception wasn't retrieved True",
        "handler ValueError(2, 3) Task exception wasn't retrieved True",
        "ValueError(3, 4)",
        "done",
    ]


def test_the_default_handler_prints_the_report_on_stderr(scripts: AsyncioScripts) -> None:
    outcome = scripts.run(
        """
        import asyncio
        async def broken():
            raise ValueError("boom")
        async def main():
            asyncio.create_task(broken())
            for _ in range(3):
                await asyncio.sleep(0)
            print("main done")
        asyncio.run(main())
        """
    )
    assert (outcome.status, outcome.out) == (0, "main done\n")
    lines = outcome.err.splitlines()
    assert lines[0] == "Task exception wasn't retrieved"
    assert re.fullmatch(r"future: <Task> coro= <coroutine object broken at 0x[0-9a-f]+>", lines[1])
    assert lines[2] == "Traceback (most recent call last):"
    assert re.fullmatch(r'  File ".*main\.py", line 4, in broken', lines[-2])
    assert lines[-1] == "ValueError: boom"


def test_awaiting_a_failed_task_again_raises_its_exception_again(scripts: AsyncioScripts) -> None:
    outcome = scripts.run(
        """
        import asyncio
        async def broken():
            raise KeyError("k")
        async def main():
            t = asyncio.create_task(broken())
            for attempt in range(3):
                try:
                    await t
                except KeyError as error:
                    print("KeyError", error, t.done())
                await asyncio.sleep(0)
        asyncio.run(main())
        """
    )
    assert outcome.lines == ["KeyError 'k' True"] * 3
    assert outcome.err == ""


def test_run_returns_at_once_and_leftover_tasks_resume_in_the_next_run(
    scripts: AsyncioScripts,
) -> None:
    outcome = scripts.run(
        """
        import asyncio
        async def forever(name):
            while True:
                print(name, "tick")
                await asyncio.sleep_ms(10)
        async def first():
            asyncio.create_task(forever("left"))
            await asyncio.sleep_ms(15)
            print("first done")
            return 1
        async def second():
            await asyncio.sleep_ms(25)
            print("second done")
            return 2
        print(asyncio.run(first()))
        print(asyncio.run(second()))
        asyncio.new_event_loop()
        print(asyncio.run(second()))
        """
    )
    assert outcome.lines == [
        "left tick",
        "left tick",
        "first done",
        "1",
        "left tick",
        "left tick",
        "second done",
        "2",
        "second done",
        "2",
    ]


def test_exceptions_of_the_main_task_and_of_an_awaited_task_come_out_of_run(
    scripts: AsyncioScripts,
) -> None:
    outcome = scripts.run(
        """
        import asyncio
        async def main_fails():
            print("main start")
            raise ValueError(1)
        async def sub():
            raise ValueError(2)
        async def main_awaits():
            await asyncio.create_task(sub())
        async def leaves_a_task():
            asyncio.create_task(sub())   # never started before main fails
            raise ValueError(3)
        for main in (main_fails, main_awaits, leaves_a_task):
            try:
                asyncio.run(main())
            except ValueError as er:
                print("ValueError", er.args[0])
        """
    )
    assert outcome.lines == ["main start", "ValueError 1", "ValueError 2", "ValueError 3"]
    assert outcome.err == ""  # no "never awaited" warning for the task that never started


def test_current_task_outside_the_loop_raises(scripts: AsyncioScripts) -> None:
    outcome = scripts.run(
        """
        import asyncio
        def probe():
            try:
                asyncio.current_task()
                print("a task")
            except RuntimeError as error:
                print("RuntimeError", error)
        async def main():
            probe()
            print(asyncio.current_task() is main_task)
        probe()
        main_task = asyncio.create_task(main())
        asyncio.run_until_complete(main_task)
        probe()
        """
    )
    assert outcome.lines == [
        "RuntimeError no running event loop",
        "a task",
        "True",
        "RuntimeError no running event loop",
    ]


def test_loop_stop_ends_run_forever_after_the_tasks_already_due(scripts: AsyncioScripts) -> None:
    outcome = scripts.run(
        """
        import asyncio
        async def task():
            print("task")
        async def main():
            print("start")
            loop.stop()
            loop.stop()             # a second stop changes nothing
            print("sleep")
            await asyncio.sleep(0)
            loop.stop()
            asyncio.create_task(task())
            await asyncio.sleep(0)
            print("end")
            loop.stop()
        loop = asyncio.get_event_loop()
        loop.stop()                 # outside run_forever: nothing
        loop.create_task(main())
        for i in range(3):
            print("run", i)
            loop.run_forever()
        """
    )
    assert outcome.lines == ["run 0", "start", "sleep", "run 1", "run 2", "task", "end"]


def test_new_event_loop_forgets_the_tasks_of_the_old_one(scripts: AsyncioScripts) -> None:
    outcome = scripts.run(
        """
        import asyncio
        async def task():
            for i in range(4):
                print("task", i)
                await asyncio.sleep(0)
                await asyncio.sleep(0)
        async def main():
            print("start")
            loop.create_task(task())
            await asyncio.sleep(0)
            print("stop")
            loop.stop()
        loop = asyncio.get_event_loop()
        loop.create_task(main())
        loop.run_forever()
        loop = asyncio.new_event_loop()
        loop.create_task(main())
        loop.run_forever()
        """
    )
    assert outcome.lines == ["start", "task 0", "stop", "start", "task 0", "stop"]
    assert outcome.err == ""


def test_loop_run_until_complete_takes_coroutines_and_tasks(scripts: AsyncioScripts) -> None:
    outcome = scripts.run(
        """
        import asyncio
        async def value(v):
            await asyncio.sleep(0)
            return v
        loop = asyncio.get_event_loop()
        print(loop.run_until_complete(value(1)))
        t = loop.create_task(value(2))
        print(loop.run_until_complete(t))
        print(loop.run_until_complete(t))   # finished already: None once nothing is left
        """
    )
    assert outcome.lines == ["1", "2", "None"]


def test_schedule_callbacks_run_while_the_loop_idles_with_nothing_queued(
    scripts: AsyncioScripts,
) -> None:
    # asyncio_event_queue.py's point: nothing queued, nothing polled, main waits on an Event
    # that a micropython.schedule callback sets (queued here from a thread after 30 ms); run()
    # must keep idling (the 3 ms spin) and run the callback meanwhile.
    outcome = scripts.run(
        """
        import asyncio, micropython, time, _thread
        event = asyncio.Event()
        def callback(argument):
            print("callback sets the event", argument)
            event.set()
        def later():
            time.sleep_ms(30)
            micropython.schedule(callback, 1)
        async def main():
            print("waiting")
            _thread.start_new_thread(later, ())
            t0 = time.ticks_ms()
            await event.wait()
            print("done", time.ticks_diff(time.ticks_ms(), t0) >= 30)
        asyncio.run(main())
        """,
        real_time=True,
    )
    assert outcome.lines == ["waiting", "callback sets the event 1", "done True"]


def test_run_until_complete_twice_on_chained_tasks(scripts: AsyncioScripts) -> None:
    # asyncio_wait_for_linked_task.py's shape: task2 awaits task1 awaits task0, driven from
    # outside the loop by two run_until_complete calls
    outcome = scripts.run(
        """
        import asyncio
        loop = asyncio.get_event_loop()
        async def job(before, name):
            if before:
                await before
            await asyncio.sleep(0.1)
            print(name, "done")
            return name
        tasks = []
        for name in ("t0", "t1", "t2"):
            tasks.append(loop.create_task(job(tasks[-1] if tasks else None, name)))
        print(loop.run_until_complete(tasks[0]))
        print(loop.run_until_complete(tasks[2]))
        print([t.done() for t in tasks])
        """
    )
    assert outcome.lines == ["t0 done", "t0", "t1 done", "t2 done", "t2", "[True, True, True]"]
