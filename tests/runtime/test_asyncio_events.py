"""``Event``, ``Lock``, ``ThreadSafeFlag`` and the I/O queue's rules (docs/asyncio.md 1.6, 2.5,
5.4, 7.4), and ``Stream`` over stub objects (no network)."""

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


def test_event_wakes_every_waiter_in_order_and_a_set_event_does_not_suspend(
    scripts: AsyncioScripts,
) -> None:
    outcome = scripts.run(
        """
        import asyncio
        async def waiter(name, event):
            print(name, "waits")
            print(name, await event.wait())
        async def bystander():
            print("bystander")
        async def main():
            event = asyncio.Event()
            print(event.is_set())
            for name in ("w1", "w2"):
                asyncio.create_task(waiter(name, event))
            await asyncio.sleep(0)
            event.set()
            print("set", event.is_set())
            await asyncio.sleep(0)
            asyncio.create_task(bystander())
            print("already set:", await event.wait())   # no suspension: bystander waits
            event.clear()
            print(event.is_set())
            await asyncio.sleep(0)
        asyncio.run(main())
        """
    )
    assert outcome.lines == [
        "False",
        "w1 waits",
        "w2 waits",
        "set True",
        "w1 True",
        "w2 True",
        "already set: True",
        "False",
        "bystander",
    ]


def test_a_woken_waiter_returns_true_even_if_the_event_was_cleared_and_waiters_take_turns(
    scripts: AsyncioScripts,
) -> None:
    # asyncio_event_fair.py's shape: set()+clear() in a loop must not let waiters starve others
    outcome = scripts.run(
        """
        import asyncio
        async def sleeper(id):
            for i in range(4):
                print("sleep", id)
                await asyncio.sleep(0)
        async def setter(id, ev):
            for i in range(4):
                ev.set()
                ev.clear()
                print("wait", id)
                print(id, "got", await ev.wait())
        async def main():
            ev = asyncio.Event()
            tasks = [asyncio.create_task(sleeper(0)), asyncio.create_task(setter(2, ev)),
                     asyncio.create_task(sleeper(1)), asyncio.create_task(setter(3, ev))]
            await tasks[1]
            ev.set()
        asyncio.run(main())
        """
    )
    # CPython prints one more line, "3 got True": its run() runs the leftovers while it
    # cancels them; MicroPython's returns as soon as main is done (rule 9).
    assert outcome.lines == [
        *("sleep 0", "wait 2", "sleep 1", "wait 3", "sleep 0", "sleep 1"),
        *("2 got True", "wait 2", "sleep 0", "sleep 1", "3 got True", "wait 3"),
        *("sleep 0", "sleep 1", "2 got True", "wait 2", "3 got True", "wait 3"),
        *("2 got True", "wait 2", "3 got True", "wait 3", "2 got True"),
    ]


def test_lock_is_taken_without_suspending_handed_over_in_order_and_refuses_a_bad_release(
    scripts: AsyncioScripts,
) -> None:
    outcome = scripts.run(
        """
        import asyncio
        async def worker(name, lock):
            async with lock:
                print(name, "has it", lock.locked())
                await asyncio.sleep_ms(5)
            print(name, "released")
        async def main():
            lock = asyncio.Lock()
            try:
                lock.release()
            except RuntimeError as error:
                print("RuntimeError", error)
            print(await lock.acquire(), lock.locked())
            for name in ("a", "b"):
                asyncio.create_task(worker(name, lock))
            await asyncio.sleep(0)
            lock.release()
            print("handed over, locked:", lock.locked())   # reserved for a, not held yet
            got = await lock.acquire()   # no barging: main queues behind b
            print("main has it", got)
            lock.release()
            try:
                async with lock:
                    raise ValueError("inside")
            except ValueError:
                print("not swallowed", lock.locked())
        asyncio.run(main())
        """
    )
    assert outcome.lines == [
        "RuntimeError Lock not acquired",
        "True True",
        "handed over, locked: False",
        "a has it True",
        "a released",
        "b has it True",
        "b released",
        "main has it True",
        "not swallowed False",
    ]


def test_lock_waiters_cancelled_before_and_after_the_hand_over(scripts: AsyncioScripts) -> None:
    outcome = scripts.run(
        """
        import asyncio
        async def task(i, lock, flag):
            print("task", i, "start")
            try:
                await lock.acquire()
            except asyncio.CancelledError:
                print("task", i, "cancel")
                return
            print("task", i, "lock_flag", flag[0])
            flag[0] = True
            await asyncio.sleep(0)
            lock.release()
            flag[0] = False
            print("task", i, "done")
        async def main():
            lock = asyncio.Lock()
            await lock.acquire()
            flag = [True]
            tasks = [asyncio.create_task(task(i, lock, flag)) for i in range(4)]
            await asyncio.sleep(0)
            tasks[1].cancel()
            tasks[2].cancel()
            lock.release()          # handed to task 0
            flag[0] = False
            tasks[0].cancel()       # after the hand-over: task 0 passes the lock on to 3
            for _ in range(4):
                await asyncio.sleep(0)
            print(lock.locked())
        asyncio.run(main())
        """
    )
    assert outcome.lines == [
        "task 0 start",
        "task 1 start",
        "task 2 start",
        "task 3 start",
        "task 1 cancel",
        "task 2 cancel",
        "task 0 cancel",
        "task 3 lock_flag False",
        "task 3 done",
        "False",
    ]


THREADSAFEFLAG = """
import asyncio
import micropython

async def task(id, flag):
    print("task", id)
    await flag.wait()
    print("task", id, "done")

def set_from_schedule(flag):
    flag.set()

async def main():
    flag = asyncio.ThreadSafeFlag()
    t = asyncio.create_task(task(1, flag))
    print("yield")
    await asyncio.sleep(0)
    print("set event")
    flag.set()
    print("yield")
    await asyncio.sleep(0)
    print("wait task")
    await t
    print("----")
    t = asyncio.create_task(task(2, flag))
    print("yield")
    await asyncio.sleep(0)
    print("set event")
    micropython.schedule(set_from_schedule, flag)
    print("yield")
    await asyncio.sleep(0)
    print("wait task")
    await t
    print("----")
    print("set event")
    flag.set()
    t = asyncio.create_task(task(3, flag))
    print("yield")
    await asyncio.sleep(0)
    print("wait task")
    await t
    print("----")
    print("set event")
    flag.set()
    print("yield")
    await asyncio.sleep(0)
    print("clear event")
    flag.clear()
    print("yield")
    await asyncio.sleep(0)
    t = asyncio.create_task(task(4, flag))
    print("yield")
    await asyncio.sleep(0)
    print("set event")
    flag.set()
    print("yield")
    await asyncio.sleep(0)
    print("wait task")
    await t

asyncio.run(main())
"""

THREADSAFEFLAG_EXPECTED = """\
yield
task 1
set event
yield
wait task
task 1 done
----
yield
task 2
set event
yield
wait task
task 2 done
----
set event
yield
task 3
task 3 done
wait task
----
set event
yield
clear event
yield
yield
task 4
set event
yield
wait task
task 4 done
"""


@pytest.mark.parametrize("real_time", [False, True], ids=["virtual", "real"])
def test_5_4_threadsafeflag_walkthrough(scripts: AsyncioScripts, real_time: bool) -> None:
    assert scripts.run(THREADSAFEFLAG, real_time=real_time).out == THREADSAFEFLAG_EXPECTED


def test_threadsafeflag_set_from_another_thread_wakes_the_loop_within_milliseconds(
    scripts: AsyncioScripts,
) -> None:
    outcome = scripts.run(
        """
        import asyncio, _thread, time
        flag = asyncio.ThreadSafeFlag()
        def later():
            time.sleep_ms(20)
            flag.set()
        async def main():
            _thread.start_new_thread(later, ())
            t0 = time.ticks_ms()
            await asyncio.wait_for_ms(flag.wait(), 2000)
            waited = time.ticks_diff(time.ticks_ms(), t0)
            print("woke", 20 <= waited < 200, flag.ioctl(3, 1))
        asyncio.run(main())
        """,
        real_time=True,
    )
    assert outcome.lines == ["woke True 0"]


def test_a_second_waiter_for_the_same_direction_is_refused(scripts: AsyncioScripts) -> None:
    outcome = scripts.run(
        """
        import asyncio
        async def waiter(name, flag):
            try:
                await flag.wait()
                print(name, "woke")
            except RuntimeError as error:
                print(name, "RuntimeError", error)
        async def main():
            flag = asyncio.ThreadSafeFlag()
            first = asyncio.create_task(waiter("first", flag))
            await asyncio.sleep(0)
            await asyncio.create_task(waiter("second", flag))
            flag.set()
            await first
        asyncio.run(main())
        """
    )
    assert outcome.lines == [
        "second RuntimeError another task is already waiting to read from this stream",
        "first woke",
    ]


STUB = """
import asyncio

class Stub:
    # a non-blocking stream: reads and writes return None until allowed, poll says so
    def __init__(self):
        self.incoming = b""
        self.writable = False
        self.written = []
    def ioctl(self, request, mask):
        ready = 0
        if request == 3:
            if self.incoming:
                ready |= 1
            if self.writable:
                ready |= 4
        return ready & mask
    def read(self, n=-1):
        if not self.incoming:
            return None
        data, self.incoming = self.incoming[:n], self.incoming[n:]
        return data
    def readline(self):
        return self.read(1)
    def readinto(self, buf):
        data = self.read(len(buf))
        if data is None:
            return None
        buf[:len(data)] = data
        return len(data)
    def write(self, data):
        if not self.writable:
            return None
        self.written.append(bytes(data[:3]))
        return min(3, len(data))
    def close(self):
        print("stub closed")
"""


def test_stream_write_buffers_what_the_stream_refuses_and_drain_waits_for_pollout(
    scripts: AsyncioScripts,
) -> None:
    outcome = scripts.run(
        STUB
        + """
async def main():
    stub = Stub()
    stream = asyncio.StreamWriter(stub, None)
    stream.write(b"12")                 # refused: all of it buffered
    stream.write(bytearray(b"34"))      # something is buffered: only appended
    print(stream.out_buf, stub.written)
    drainer = asyncio.create_task(stream.drain())
    await asyncio.sleep(0)
    print("drain parked", drainer.done())
    stub.writable = True
    await drainer
    print(stream.out_buf, stub.written)
    stream.write(b"abcdefg")            # partial: the rest waits in out_buf
    print(stream.out_buf)
    await stream.awrite(b"0123456789", 2, 4)
    print(stream.out_buf, stub.written[-3:])
    await stream.wait_closed()

asyncio.run(main())
"""
    )
    assert outcome.lines == [
        "b'1234' []",
        "drain parked False",
        "b'' [b'123', b'4']",
        "b'defg'",
        "b'' [b'def', b'g23', b'45']",  # appended behind the rest, then drained
        "stub closed",
    ]


def test_stream_reads_wait_for_pollin_then_make_one_non_blocking_call(
    scripts: AsyncioScripts,
) -> None:
    outcome = scripts.run(
        STUB
        + """
async def main():
    stub = Stub()
    stream = asyncio.StreamReader(stub)
    print(stream.get_extra_info.__name__, stream.e == {})
    reader = asyncio.create_task(stream.readexactly(5))
    await asyncio.sleep(0)
    stub.incoming = b"abc"
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    print("partial", reader.done())
    stub.incoming = b"defg\\nh"
    print(await reader, stub.incoming)
    print(await stream.readline(), await stream.read(1))
    buf = bytearray(4)
    stub.incoming = b"xy"
    print(await stream.readinto(buf), buf)
    print(await stream.readexactly(0))
    try:
        stream.get_extra_info("peername")
    except KeyError:
        print("KeyError")

asyncio.run(main())
"""
    )
    assert outcome.lines == [
        "get_extra_info True",
        "partial False",
        "b'abcde' b'fg\\nh'",
        "b'fg\\n' b'h'",
        "2 bytearray(b'xy\\x00\\x00')",
        "b''",
        "KeyError",
    ]


def test_cancelling_one_io_waiter_keeps_the_other_directions_waiter(
    scripts: AsyncioScripts,
) -> None:
    outcome = scripts.run(
        STUB
        + """
async def main():
    stub = Stub()
    stream = asyncio.StreamWriter(stub)
    stream.write(b"hi")
    reader = asyncio.create_task(stream.read(4))
    writer = asyncio.create_task(stream.drain())
    await asyncio.sleep(0)
    reader.cancel()
    await asyncio.sleep(0)
    print("reader", reader.done(), "writer", writer.done())
    stub.writable = True
    await writer
    print("written", stub.written)

asyncio.run(main())
"""
    )
    assert outcome.lines == ["reader True writer False", "written [b'hi']"]
