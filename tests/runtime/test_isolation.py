"""The script world sees MicroPython modules; pystack and the stdlib keep CPython's, at the same time."""

from __future__ import annotations

import sys
import threading
import time
from types import ModuleType

import pystack.clock
from pystack.runtime.providers import ModuleKind
from pystack.runtime.world import ScriptWorld
from tests.runtime.scripts import ScriptRunner


def test_script_time_has_ticks_while_pystack_time_stays_cpython(script: ScriptRunner) -> None:
    seen: list[float] = []
    stop = threading.Event()

    def stack_thread() -> None:  # like the runner: CPython's time, while the script runs
        while not stop.is_set():
            seen.append(time.monotonic())
            stop.wait(0.001)

    worker = threading.Thread(target=stack_thread)
    worker.start()
    script.cpython_modules()  # the script imports pystack.clock: CPython's import
    try:
        outcome = script.run(
            """
            import time, utime
            import pystack.clock
            print(time is utime, hasattr(time, "ticks_ms"), hasattr(time, "monotonic"))
            print(hasattr(pystack.clock.time, "monotonic"), hasattr(pystack.clock.time, "ticks_ms"))
            t0 = time.ticks_ms()
            time.sleep_ms(20)
            print(time.ticks_diff(time.ticks_ms(), t0) >= 20)
            """
        )
    finally:
        stop.set()
        worker.join()
    assert outcome.status == 0, outcome.err
    assert outcome.out.split("\n") == ["True True False", "True False", "True", ""]
    assert len(seen) > 1 and seen == sorted(seen)
    assert sys.modules["time"] is time and vars(pystack.clock)["time"] is time
    assert hasattr(time, "monotonic") and not hasattr(time, "ticks_ms")


def test_cpython_sys_modules_untouched(script: ScriptRunner) -> None:
    before = dict(sys.modules)
    script.write("logging.py", "NAME = 'script logging'\n")
    outcome = script.run(
        """
        import logging, json, time, sys, errno, micropython
        print(logging.NAME, sorted(sys.modules))
        """
    )
    assert outcome.status == 0, outcome.err
    assert outcome.out == "script logging ['__main__', 'logging']\n"
    after = dict(sys.modules)
    assert {name: after[name] for name in before} == before
    assert set(after) - set(before) <= {"itertools"}  # nothing of the script's
    if "logging" in sys.modules:
        assert not hasattr(sys.modules["logging"], "NAME")


def test_functions_defined_by_the_script_keep_its_imports_when_cpython_calls_them(
    script: ScriptRunner,
) -> None:
    script.cpython_modules()  # CPython code calling back into the script
    outcome = script.run(
        """
        import functools, threading
        def inside(_accumulated, _item):
            import time
            return hasattr(time, "ticks_ms")
        print(functools.reduce(inside, [1, 2], None))
        results = []
        thread = threading.Thread(target=lambda: results.append(inside(None, None)))
        thread.start(); thread.join()
        print(results)
        """
    )
    assert outcome.out == "True\n[True]\n", outcome.err


def test_stdlib_used_by_the_script_gets_cpython_modules(script: ScriptRunner) -> None:
    script.cpython_modules()
    outcome = script.run(
        """
        import time
        import json, calendar
        print(hasattr(time, "monotonic"), calendar.timegm((1970, 1, 2, 0, 0, 0)))
        print(json.dumps({"a": 1}))
        """
    )
    assert outcome.out == 'False 86400\n{"a": 1}\n', outcome.err


def test_modules_given_under_micropython_names_are_copies(script: ScriptRunner) -> None:
    script.cpython_modules()  # os.path: CPython's os, copied
    outcome = script.run(
        """
        import json, ujson, os, uos
        json.marker = 1
        print(json is ujson, os is uos, hasattr(os, "ilistdir"), os.path.join("a", "b"))
        """
    )
    import json

    assert outcome.out == "True True True a/b\n", outcome.err
    assert not hasattr(json, "marker")


def test_script_random_seed_is_private(script: ScriptRunner) -> None:
    import random

    random.seed(5)
    expected = random.random()
    random.seed(5)
    outcome = script.run("import random\nrandom.seed(1)\nprint(random.getrandbits(32) >= 0)\n")
    assert outcome.out == "True\n"
    assert random.random() == expected


def test_providers_get_the_world_and_build_once_per_world(script: ScriptRunner) -> None:
    built: list[ScriptWorld] = []

    def factory(world: ScriptWorld) -> ModuleType:
        built.append(world)
        module = ModuleType("network")
        module.ticks = world.module("time").ticks_ms  # type: ignore[attr-defined]
        return module

    script.providers.register("network", factory, ModuleKind.BUILTIN)
    outcome = script.run(
        "import network, network as again, time\n"
        "print(network is again, network.ticks is time.ticks_ms)\n"
    )
    assert outcome.out == "True True\n", outcome.err
    assert len(built) == 1
    script.run("import network\n")
    assert len(built) == 2 and built[0] is not built[1]


def test_placeholder_network_modules_raise_a_clear_import_error(script: ScriptRunner) -> None:
    outcome = script.run(
        """
        for name in ("socket", "usocket", "select", "uselect", "ssl", "ussl", "tls",
                     "network", "asyncio", "uasyncio"):
            try:
                __import__(name)
            except ImportError as error:
                print(name, "needs a network" in str(error))
        """
    )
    assert outcome.status == 0, outcome.err
    lines = outcome.out.split()
    assert lines == [word for name in lines[::2] for word in (name, "True")]
    assert len(lines) == 20


def test_kernel_network_modules_are_refused(script: ScriptRunner) -> None:
    assert script.run("import urllib.request\n").err.endswith(
        "ImportError: no module named 'urllib'\n"
    )
    script.cpython_modules()  # even with CPython's stdlib, not those that bypass pystack
    outcome = script.run("import urllib.request\n")
    assert outcome.status == 1
    assert "ModuleNotFoundError: No module named 'urllib'" in outcome.err
    assert "kernel's network" in outcome.err


def test_a_real_provider_replaces_the_placeholder_and_keeps_the_u_name(
    script: ScriptRunner,
) -> None:
    defaults = script.providers.copy()

    def socket_factory(world: ScriptWorld) -> ModuleType:
        module = ModuleType("socket")
        module.AF_INET = 2  # type: ignore[attr-defined]
        return module

    script.providers.register("socket", socket_factory)
    outcome = script.run("import socket, usocket\nprint(socket is usocket, usocket.AF_INET)\n")
    assert outcome.out == "True 2\n", outcome.err
    script.providers = defaults
    assert "needs a network" in script.run("import usocket\n").err
