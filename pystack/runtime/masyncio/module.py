"""The module objects a script gets: ``asyncio`` (with its submodules) and ``uasyncio``.

MicroPython's ``asyncio`` is a package whose ``__init__`` star-imports ``core`` and loads ten
more names from ``funcs``, ``event``, ``lock`` and ``stream`` on first use (docs/asyncio.md
1.1). pystack builds the same surface eagerly, for one world at a time: the public names of
``core`` (including the implementation details scripts can see: ``TaskQueue``, ``IOQueue``,
``SingletonGenerator``, ``ticks``, ``ticks_diff``, ``ticks_add``, ``sys``, ``select``), the
stale ``cur_task = None`` that the star import copies, the ten lazy names, ``__version__`` and a
module ``__getattr__`` that raises ``AttributeError(name)`` for anything else, so the CPython
names MicroPython lacks (``Queue``, ``ensure_future``, ``TaskGroup``...) are simply absent. The
submodules exist as attributes (``asyncio.core.cur_task`` is the live current task, and
``asyncio.core._task_queue``/``_io_queue`` follow ``new_event_loop``), so ``import asyncio.core``
and ``from asyncio import core`` work as on a board.

``uasyncio`` is MicroPython's one-function alias module: its ``__getattr__`` forwards every
lookup to the world's ``asyncio``.

Entry points: ``asyncio_module``.
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import Any

from pystack.runtime.masyncio.core import Core
from pystack.runtime.masyncio.task import CancelledError, TimeoutError
from pystack.runtime.world import ScriptWorld

VERSION = (3, 0, 0)


def _module(name: str, namespace: dict[str, Any], doc: str) -> ModuleType:
    module = ModuleType(name, doc)
    vars(module).update(namespace)
    return module


def _core_namespace(core: Core) -> dict[str, Any]:
    time = core.time
    return {
        "CancelledError": CancelledError,
        "TimeoutError": TimeoutError,
        "sleep": core.sleep,
        "sleep_ms": core.sleep_ms,
        "create_task": core.create_task,
        "run": core.run,
        "run_until_complete": core.run_until_complete,
        "get_event_loop": core.get_event_loop,
        "new_event_loop": core.new_event_loop,
        "current_task": core.current_task,
        "Loop": core.Loop,
        "Task": core.Task,
        "TaskQueue": core.TaskQueue,
        "IOQueue": core.IOQueue,
        "SingletonGenerator": core.SingletonGenerator,
        "ticks": time.ticks_ms,
        "ticks_diff": time.ticks_diff,
        "ticks_add": time.ticks_add,
        "sys": core.sys,
        "select": core.select,
    }


def _core_module(name: str, core: Core) -> ModuleType:
    module = _module(f"{name}.core", _core_namespace(core), "The event loop (asyncio/core.py).")
    module._promote_to_task = core.promote  # type: ignore[attr-defined]
    live: dict[str, Callable[[], Any]] = {
        "cur_task": lambda: core.cur_task,
        "_task_queue": lambda: core.task_queue,
        "_io_queue": lambda: core.io_queue,
        "_exc_context": lambda: core.exception_context,
        "_stop_task": lambda: core.stop_task,
    }

    def __getattr__(attribute: str) -> Any:
        read = live.get(attribute)
        if read is None:
            raise AttributeError(attribute)
        return read()

    vars(module)["__getattr__"] = __getattr__  # module attribute hook (PEP 562)
    return module


def _lazy_names(core: Core) -> dict[str, dict[str, Any]]:
    """The names of funcs, event, lock and stream, by submodule."""
    functions, connections = core.functions, core.connections
    return {
        "funcs": {
            "wait_for": functions.wait_for,
            "wait_for_ms": functions.wait_for_ms,
            "gather": functions.gather,
        },
        "event": {"Event": core.Event, "ThreadSafeFlag": core.ThreadSafeFlag},
        "lock": {"Lock": core.Lock},
        "stream": {
            "Stream": core.Stream,
            "StreamReader": core.Stream,
            "StreamWriter": core.Stream,
            "Server": core.Server,
            "open_connection": connections.open_connection,
            "start_server": connections.start_server,
        },
    }


# what the package's __getattr__ loads lazily on MicroPython (the ten names of section 1.1)
PACKAGE_NAMES = {
    "funcs": ("wait_for", "wait_for_ms", "gather"),
    "event": ("Event", "ThreadSafeFlag"),
    "lock": ("Lock",),
    "stream": ("open_connection", "start_server", "StreamReader", "StreamWriter"),
}


def asyncio_module(world: ScriptWorld, name: str = "asyncio") -> ModuleType:
    """A fresh ``asyncio`` for ``world`` (or, with ``name="uasyncio"``, the alias module)."""
    if name == "uasyncio":
        return _alias_module(world, name)
    core = Core(world)
    namespace = _core_namespace(core)
    namespace["cur_task"] = None  # the star import's stale copy; asyncio.core.cur_task is live
    namespace["core"] = _core_module(name, core)
    for submodule, names in _lazy_names(core).items():
        namespace[submodule] = _module(f"{name}.{submodule}", names, f"asyncio/{submodule}.py")
        namespace.update((exported, names[exported]) for exported in PACKAGE_NAMES[submodule])
    namespace["__version__"] = VERSION

    def __getattr__(attribute: str) -> Any:
        raise AttributeError(attribute)

    namespace["__getattr__"] = __getattr__
    return _module(name, namespace, "MicroPython's asyncio, on pystack (pystack/runtime/masyncio).")


def _alias_module(world: ScriptWorld, name: str) -> ModuleType:
    module = ModuleType(name, "MicroPython's uasyncio: every attribute is asyncio's.")

    def __getattr__(attribute: str) -> Any:
        return getattr(world.module("asyncio"), attribute)

    vars(module)["__getattr__"] = __getattr__
    return module
