"""``ScriptWorld``: everything one script run owns, and the context handed to module factories.

A world holds the script's ``sys.path``, ``sys.argv`` and ``sys.modules`` (its own dict, never
CPython's), the builtins dict that every script-world module sees (with the world's
``__import__`` and the bridge helpers in it), the provided modules built so far, the scheduler
behind ``micropython.schedule``, the clock behind ``time.ticks_ms``, and a small model of the
heap for ``gc.mem_free``/``micropython.mem_info``. Two worlds in one process share nothing.

For providers (the ``socket``/``select``/``network``/``asyncio``/``ssl`` factories):

- ``world.module(name)`` imports ``name`` *in the script world* (``asyncio`` gets the same
  ``time`` and ``select`` the script sees);
- ``world.clock`` (``pystack.clock.Clock``) is the time base of ``ticks_ms``;
- ``world.scheduler.schedule(f, arg)`` queues a callback the MicroPython way (socket callbacks),
  and blocking calls should call ``world.scheduler.run_pending()`` while they wait;
- ``world.add_cleanup(f)`` runs ``f`` when the script ends (close sockets, stop threads);
- ``world.options`` carries whatever the command line set up (a stack, a runner).

Entry points: ``ScriptWorld``, ``ScriptWorld.module``, ``ScriptWorld.provided``, ``close``.
"""

from __future__ import annotations

import builtins
import sys
import threading
from collections.abc import Callable, Mapping
from types import MappingProxyType, ModuleType
from typing import Any, TextIO

from pystack.clock import Clock, SystemClock
from pystack.runtime import bridges
from pystack.runtime.importer import Importer
from pystack.runtime.providers import ModuleProviders
from pystack.runtime.scheduler import Scheduler
from pystack.runtime.tracebacks import print_exception

HEAP_SIZE = 2 * 1024 * 1024  # the unix port's default heap on a 64-bit host
_BASE_USE = 12 * 1024  # what a freshly started interpreter has allocated, roughly
_BYTES_PER_BLOCK = 32  # a CPython allocation counted as one 32-byte MicroPython GC block


class HeapModel:
    """A plausible MicroPython heap: fixed size, use growing with CPython's allocations.

    Numbers only; nothing is enforced (``heap_lock`` does not make allocation fail).
    """

    def __init__(self, size: int = HEAP_SIZE) -> None:
        self.size = size
        self.lock_depth = 0
        self._start_blocks = sys.getallocatedblocks()

    def used(self) -> int:
        grown = max(0, sys.getallocatedblocks() - self._start_blocks) * _BYTES_PER_BLOCK
        return min(self.size - 1024, _BASE_USE + grown)

    def free(self) -> int:
        return self.size - self.used()


class ScriptWorld:
    def __init__(
        self,
        providers: ModuleProviders,
        *,
        path: list[str],
        argv: list[str],
        clock: Clock | None = None,
        frozen_dir: str | None = None,
        options: Mapping[str, object] | None = None,
    ) -> None:
        self.providers = providers
        self.path = path
        self.argv = argv
        self.modules: dict[str, ModuleType] = {}
        self.clock: Clock = clock if clock is not None else SystemClock()
        self.frozen_dir = frozen_dir  # a directory of frozen .py modules for '.frozen', if any
        self.options: Mapping[str, object] = MappingProxyType(dict(options or {}))
        self.optimize = 0  # micropython.opt_level(): applies to modules compiled afterwards
        self.heap = HeapModel()
        self.atexit: Callable[[], object] | None = None  # sys.atexit's one function
        self._cleanups: list[Callable[[], object]] = []
        self._provided: dict[str, ModuleType] = {}
        self._providing = threading.RLock()  # one instance per module even if threads race
        self.builtins_module = ModuleType("builtins")
        self.builtins: dict[str, Any] = vars(self.builtins_module)
        self.builtins.update(vars(builtins))
        self.builtins.update(bridges.HELPERS)
        self.importer = Importer(self)
        self.builtins["__import__"] = self.importer
        self.scheduler = Scheduler(self.builtins, clock=self.clock)
        self.shown_names: dict[str, str] = {}  # compiled file name -> name tracebacks show

    def print_exception(self, error: BaseException, file: TextIO | None = None) -> None:
        """``sys.print_exception``: MicroPython's format, this world's frames only."""
        errno_names: Mapping[int, str] | None = None
        if self.providers.get("errno") is not None:
            errno_names = getattr(self.provided("errno"), "errorcode", None)
        print_exception(
            error,
            file,
            script_builtins=self.builtins,
            errno_names=errno_names,
            shown_names=self.shown_names,
        )

    def provided(self, name: str) -> ModuleType:
        """The world's instance of provided module ``name`` (canonical), built on first use."""
        with self._providing:
            module = self._provided.get(name)
            if module is None:
                provider = self.providers.get(name)
                if provider is None:
                    raise ModuleNotFoundError(f"No module named '{name}'", name=name)
                module = provider.factory(self)
                self._provided[name] = module
            return module

    def module(self, name: str) -> ModuleType:
        """Import ``name`` as a script would (``import name``) and return that module."""
        module: ModuleType = self.importer(name, fromlist=("__name__",))
        return module

    def new_module(self, name: str, filename: str | None = None) -> ModuleType:
        """An empty script-world module: its code will see the world's builtins."""
        module = ModuleType(name)
        module.__dict__["__builtins__"] = self.builtins
        if filename is not None:
            module.__file__ = filename
        return module

    def add_cleanup(self, function: Callable[[], object]) -> None:
        self._cleanups.append(function)

    def close(self) -> list[BaseException]:
        """Run cleanups, newest first; return the errors instead of raising them."""
        errors: list[BaseException] = []
        while self._cleanups:
            function = self._cleanups.pop()
            try:
                function()
            except BaseException as error:
                errors.append(error)
        self.scheduler.uninstall()
        return errors
