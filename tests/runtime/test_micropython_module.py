"""The micropython, errno, sys, gc and random modules a script sees, and micropython.schedule."""

from __future__ import annotations

import errno as cpython_errno

from pystack.runtime import default_providers
from pystack.runtime.micropython_module import ERRNO_TABLE
from pystack.runtime.world import ScriptWorld
from tests.runtime.scripts import ScriptRunner


def _world() -> ScriptWorld:
    return ScriptWorld(default_providers(), path=[".frozen"], argv=["x.py"])


def test_const_and_code_emitter_decorators() -> None:
    micropython = _world().module("micropython")
    assert micropython.const(7) == 7

    def f() -> int:
        return 1

    for decorator in ("native", "viper", "asm_thumb", "asm_xtensa"):
        assert getattr(micropython, decorator)(f) is f


def test_heap_lock_counts() -> None:
    micropython = _world().module("micropython")
    assert micropython.heap_locked() == 0
    micropython.heap_lock()
    micropython.heap_lock()
    assert micropython.heap_locked() == 2
    assert micropython.heap_unlock() == 1
    assert micropython.heap_unlock() == 0
    assert micropython.heap_unlock() == 0


def test_no_op_functions_accept_micropythons_arguments() -> None:
    micropython = _world().module("micropython")
    assert micropython.alloc_emergency_exception_buf(100) is None
    assert micropython.kbd_intr(-1) is None
    assert micropython.stack_use() > 0


def test_mem_info_and_gc_numbers_are_plausible(script: ScriptRunner) -> None:
    outcome = script.run(
        """
        import micropython, gc
        micropython.mem_info()
        micropython.qstr_info()
        free, used = gc.mem_free(), gc.mem_alloc()
        print(free > 0, used > 0, abs(free + used - 2 * 1024 * 1024) < 65536, gc.collect() >= 0)
        gc.disable(); print(gc.isenabled()); gc.enable(); print(gc.isenabled())
        """
    )
    lines = outcome.out.splitlines()
    assert lines[0].startswith("stack: ") and lines[1].startswith("GC: total: 2097152, used: ")
    assert lines[3].startswith("qstr pool: ")
    assert lines[4:] == ["True True True True", "False", "True"]


def test_opt_level_drops_asserts_in_modules_compiled_afterwards(script: ScriptRunner) -> None:
    script.write("checked.py", "def check():\n    assert False, 'asserted'\n    return __debug__\n")
    outcome = script.run(
        """
        import micropython
        print(micropython.opt_level())
        micropython.opt_level(1)
        print(micropython.opt_level())
        import checked
        print(checked.check())
        """
    )
    assert outcome.out == "0\n1\nFalse\n", outcome.err


def test_errno_matches_py_mperrno_and_linux() -> None:
    errno = _world().module("errno")
    assert len(ERRNO_TABLE) == 22
    for name, value in ERRNO_TABLE:
        assert getattr(errno, name) == value == getattr(cpython_errno, name)
        assert errno.errorcode[value] == name
    assert len(errno.errorcode) == 22
    assert not hasattr(errno, "EWOULDBLOCK")  # not in MicroPython's default list
    assert _world().module("uerrno") is not errno  # one module per world
    world = _world()
    assert world.module("uerrno") is world.module("errno")


def test_sys_for_scripts(script: ScriptRunner) -> None:
    outcome = script.run(
        """
        import sys
        print(sys.implementation.name, len(sys.implementation.version))
        print(hasattr(sys.implementation, "_mpy"), sys.maxsize > 2**31, sys.stdout.write is not None)
        print(sys.platform, "modules" in dir(sys))
        """
    )
    assert outcome.out == "micropython 4\nFalse True True\nlinux True\n", outcome.err


def test_random_has_micropythons_functions(script: ScriptRunner) -> None:
    outcome = script.run(
        """
        import random
        random.seed(3)
        a = [random.getrandbits(8), random.randint(1, 3), random.choice("ab"), random.random() < 1]
        random.seed(3)
        b = [random.getrandbits(8), random.randint(1, 3), random.choice("ab"), random.random() < 1]
        print(a == b, 1 <= random.uniform(1, 2) <= 2, random.randrange(4) < 4)
        try:
            random.getrandbits(33)
        except ValueError as error:
            print(error)
        """
    )
    assert outcome.out == "True True True\nbits must be 32 or less\n", outcome.err


def test_builtins_module_is_the_scripts_own(script: ScriptRunner) -> None:
    import builtins

    outcome = script.run("import builtins\nbuiltins.shared_name = 5\nprint(shared_name)\n")
    assert outcome.out == "5\n", outcome.err
    assert not hasattr(builtins, "shared_name")


def test_schedule_runs_on_the_main_thread_during_a_busy_loop(script: ScriptRunner) -> None:
    outcome = script.run(
        """
        import micropython, _thread, time
        calls = []
        def callback(argument):
            calls.append((argument, _thread.get_ident() == main))
        main = _thread.get_ident()
        def from_another_thread():
            time.sleep_ms(20)
            micropython.schedule(callback, "busy")
        _thread.start_new_thread(from_another_thread, ())
        start = time.ticks_ms()
        while not calls and time.ticks_diff(time.ticks_ms(), start) < 5000:
            pass
        print(calls)
        """
    )
    assert outcome.out == "[('busy', True)]\n", outcome.err


def test_schedule_runs_during_sleep_and_the_sleep_continues(script: ScriptRunner) -> None:
    outcome = script.run(
        """
        import micropython, _thread, time
        calls = []
        def later():
            time.sleep_ms(10)
            micropython.schedule(calls.append, time.ticks_ms())
        _thread.start_new_thread(later, ())
        start = time.ticks_ms()
        time.sleep_ms(150)
        took = time.ticks_diff(time.ticks_ms(), start)
        print(len(calls), time.ticks_diff(calls[0], start) < 140, took >= 150)
        """
    )
    assert outcome.out == "1 True True\n", outcome.err


def test_schedule_queue_is_bounded_and_exceptions_reach_the_script(script: ScriptRunner) -> None:
    outcome = script.run(
        """
        import micropython
        def fail(argument):
            raise ValueError(argument)
        for n in range(4):
            micropython.schedule(print, n)
        try:
            micropython.schedule(print, 4)
        except RuntimeError as error:
            print(error)
        try:
            micropython.schedule(1, 2)
        except TypeError:
            print("TypeError")
        while True:
            try:
                micropython.schedule(fail, "from the callback")
                break
            except RuntimeError:
                pass  # the four prints have not run yet
        try:
            while True:
                pass
        except ValueError as error:
            print("caught", error)
        """
    )
    assert outcome.out.startswith("schedule queue full\nTypeError\n"), outcome.err
    assert outcome.out.endswith("caught from the callback\n")
    assert sorted(outcome.out.splitlines()[2:6]) == ["0", "1", "2", "3"]
