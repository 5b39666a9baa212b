"""asyncio's surface as scripts see it (docs/asyncio.md 1): the names MicroPython has, the CPython
names it lacks, the uasyncio alias, the Task/Loop/Stream shapes and the two exceptions."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from pystack.clock import ManualClock
from pystack.runtime.masyncio import asyncio_module
from pystack.runtime.world import ScriptWorld
from tests.runtime.asyncio_scripts import AsyncioScripts

CORE_PUBLIC = (
    "CancelledError TimeoutError sleep sleep_ms create_task run run_until_complete "
    "get_event_loop new_event_loop current_task Loop Task"
)
CORE_DETAILS = "TaskQueue IOQueue SingletonGenerator ticks ticks_diff ticks_add sys select"
LAZY = (
    "wait_for wait_for_ms gather Event ThreadSafeFlag Lock open_connection start_server "
    "StreamReader StreamWriter"
)
ABSENT_MODULE = (
    "Queue Semaphore BoundedSemaphore Condition Future ensure_future wait as_completed shield "
    "timeout timeout_at TaskGroup Runner all_tasks get_running_loop set_event_loop "
    "iscoroutine iscoroutinefunction run_coroutine_threadsafe to_thread IncompleteReadError "
    "LimitOverrunError InvalidStateError open_unix_connection Protocol Transport "
    "create_subprocess_exec Stream Server"
)
ABSENT_LOOP = (
    "call_soon call_later call_at time is_running is_closed create_future run_in_executor "
    "sock_recv sock_sendall create_connection create_server"
)
ABSENT_TASK = "result exception cancelled add_done_callback get_name get_coro"
ABSENT_STREAM = "at_eof readuntil writelines write_eof can_write_eof is_closing transport"
ABSENT_SERVER = "serve_forever sockets is_serving start_serving"


@pytest.fixture
def scripts(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Iterator[AsyncioScripts]:
    runner = AsyncioScripts(tmp_path, capsys)
    yield runner
    runner.close()


def _probe(names: str, target: str) -> str:
    return f"print([n for n in {names.split()!r} if not hasattr({target}, n)])\n"


def test_module_has_micropythons_names_and_its_version(scripts: AsyncioScripts) -> None:
    outcome = scripts.run(
        "import asyncio\n"
        + _probe(CORE_PUBLIC, "asyncio")
        + _probe(CORE_DETAILS, "asyncio")
        + _probe(LAZY, "asyncio")
        + "print(asyncio.__version__, asyncio.cur_task)\n"
        + "print(asyncio.StreamReader is asyncio.StreamWriter)\n"
        + "import time, select, sys\n"
        + "print(asyncio.ticks is time.ticks_ms, asyncio.select is select, asyncio.sys is sys)\n"
    )
    assert outcome.lines == ["[]", "[]", "[]", "(3, 0, 0) None", "True", "True True True"]


def test_cpython_names_are_absent_and_unknown_attributes_raise_attribute_error_with_the_name(
    scripts: AsyncioScripts,
) -> None:
    outcome = scripts.run(
        f"""
        import asyncio
        print([n for n in {ABSENT_MODULE.split()!r} if hasattr(asyncio, n)])
        try:
            asyncio.Queue
        except AttributeError as error:
            print(repr(error.args))
        """
    )
    assert outcome.lines == ["[]", "('Queue',)"]


def test_uasyncio_gives_the_same_objects_as_asyncio(scripts: AsyncioScripts) -> None:
    names = (CORE_PUBLIC + " " + LAZY).split()
    outcome = scripts.run(
        f"""
        import asyncio
        import uasyncio
        print(all(getattr(uasyncio, n) is getattr(asyncio, n) for n in {names!r}))
        """
    )
    assert outcome.lines == ["True"]


def test_uasyncio_as_its_own_alias_module_forwards_every_attribute(
    scripts: AsyncioScripts,
) -> None:
    providers = scripts.providers()
    world = ScriptWorld(providers, path=[".frozen"], argv=["x.py"], clock=ManualClock())
    try:
        alias = asyncio_module(world, "uasyncio")
        real = world.module("asyncio")
        assert alias.__name__ == "uasyncio" and alias is not real
        assert alias.Event is real.Event and alias.run is real.run
        with pytest.raises(AttributeError):
            alias.Queue  # noqa: B018
    finally:
        world.close()


def test_each_world_gets_its_own_loop_and_classes(scripts: AsyncioScripts) -> None:
    worlds = [
        ScriptWorld(scripts.providers(), path=[".frozen"], argv=["x.py"], clock=ManualClock())
        for _ in range(2)
    ]
    try:
        first, second = (world.module("asyncio") for world in worlds)
        assert first is not second
        assert first.Task is not second.Task and first.Event is not second.Event
        assert first.CancelledError is second.CancelledError  # plain exception classes
    finally:
        for world in worlds:
            world.close()


def test_without_a_frozen_entry_on_the_path_asyncio_is_not_found(scripts: AsyncioScripts) -> None:
    scripts.environ["MICROPYPATH"] = ""
    outcome = scripts.run(
        """
        try:
            import asyncio
        except ImportError as error:
            print(type(error).__name__)
        """
    )
    assert outcome.lines == ["ImportError"]  # MicroPython has no ModuleNotFoundError


def test_exceptions_are_asyncios_own_classes(scripts: AsyncioScripts) -> None:
    outcome = scripts.run(
        """
        import asyncio
        print(issubclass(asyncio.CancelledError, BaseException),
              issubclass(asyncio.CancelledError, Exception))
        print(issubclass(asyncio.TimeoutError, Exception),
              issubclass(asyncio.TimeoutError, OSError),
              asyncio.TimeoutError is TimeoutError)
        print(repr(asyncio.CancelledError()), repr(asyncio.TimeoutError()))
        try:
            raise asyncio.TimeoutError()
        except OSError:
            print("caught as OSError")
        except Exception:
            print("caught as Exception")
        """
    )
    assert outcome.lines == [
        "True False",
        "True False False",
        "CancelledError() TimeoutError()",
        "caught as Exception",
    ]


def test_task_has_micropythons_fields_only(scripts: AsyncioScripts) -> None:
    outcome = scripts.run(
        f"""
        import asyncio
        async def work():
            return 5
        async def main():
            t = asyncio.create_task(work())
            print(repr(t), t.state, t.data, isinstance(t.ph_key, int), t.done())
            print([n for n in {ABSENT_TASK.split()!r} if hasattr(t, n)])
            for name in ("ph_key", "coro", "name"):
                try:
                    setattr(t, name, 1)
                except AttributeError:
                    print("read-only", name)
            t.data = None
            t.state = True
            print(await t, t.done(), t.state, type(t.data).__name__, t.cancel())
        asyncio.run(main())
        """
    )
    assert outcome.lines == [
        "<Task> True None True False",
        "[]",
        "read-only ph_key",
        "read-only coro",
        "read-only name",
        "5 True False StopIteration False",
    ]


def test_get_event_loop_is_the_loop_class_and_its_missing_methods(
    scripts: AsyncioScripts,
) -> None:
    outcome = scripts.run(
        f"""
        import asyncio
        loop = asyncio.get_event_loop(10, 20)
        print(loop is asyncio.Loop, asyncio.new_event_loop() is loop, isinstance(loop, type))
        print(loop.create_task is asyncio.Loop.create_task)
        print([n for n in {ABSENT_LOOP.split()!r} if hasattr(loop, n)])
        print(loop.close(), loop.get_exception_handler())
        """
    )
    assert outcome.lines == ["True True True", "True", "[]", "None None"]


def test_stream_and_server_lack_cpythons_extras(scripts: AsyncioScripts) -> None:
    outcome = scripts.run(
        f"""
        import asyncio
        s = asyncio.StreamWriter(object())
        print(hasattr(s, "s"), hasattr(s, "e"), s.out_buf)
        print([n for n in {ABSENT_STREAM.split()!r} if hasattr(s, n)])
        server = asyncio.stream.Server()
        print([n for n in {ABSENT_SERVER.split()!r} if hasattr(server, n)])
        """
    )
    assert outcome.lines == ["True True b''", "[]", "[]"]


def test_create_task_wants_something_with_send_and_sleep_takes_one_argument(
    scripts: AsyncioScripts,
) -> None:
    outcome = scripts.run(
        """
        import asyncio
        def generator():
            yield
        for candidate in (42, asyncio.sleep(1)):
            try:
                asyncio.create_task(candidate)
            except TypeError as error:
                print("TypeError", error)
        print(type(asyncio.create_task(generator())).__name__)
        try:
            asyncio.sleep(1, "result")
        except TypeError:
            print("sleep takes no result")
        """
    )
    assert outcome.lines == [
        "TypeError coroutine expected",
        "TypeError coroutine expected",
        "Task",
        "sleep takes no result",
    ]


def test_core_submodule_shows_the_live_current_task(scripts: AsyncioScripts) -> None:
    outcome = scripts.run(
        """
        import asyncio
        import asyncio.core
        from asyncio import core
        async def main():
            print(core.cur_task is asyncio.current_task(), asyncio.cur_task)
            print(type(core._task_queue).__name__, type(core._io_queue).__name__)
        asyncio.run(main())
        print(core.cur_task, asyncio.core is core)
        """
    )
    assert outcome.lines == ["True None", "TaskQueue IOQueue", "None True"]
