"""MicroPython's built-in modules for a script: registration, and the ones written here.

By default the modules listed in unix_port.py are given with MicroPython's surface
(shaped_modules.py: ``json``, ``collections``, ``struct``, ``os``...). With
``--cpython-modules`` (``register_builtin_modules(..., cpython_modules=True)``) ``json``,
``struct``, ``binascii``, ``hashlib``, ``io``, ``collections``, ``re``, ``heapq``, ``array``
and ``os`` are *copies* of CPython's modules instead (a script that sets an attribute does not
change pystack's module; ``os`` gains ``ilistdir`` and ``dupterm``). ``math`` and ``cmath`` are
copies of CPython's in both.

Written here:

- ``sys``: ``argv``, ``path`` and ``modules`` are the world's (the script's ``sys.path`` is the
  MicroPython search path, ``sys.modules`` its own loaded modules); ``version``,
  ``version_info`` and ``implementation`` as MicroPython reports them (unix_port.py; no
  ``_mpy``, so ``mip`` installs ``.py`` source); ``print_exception(exc, file=stdout)`` in
  MicroPython's traceback format; ``atexit(func)`` (one function, run when the script ends,
  the previous one returned); ``stdin``/``stdout``/``stderr`` are read live from CPython's
  ``sys``. No other attribute (``--cpython-modules``: CPython's). Also importable as ``usys``.
- ``gc``: ``collect`` (CPython's), ``mem_free``/``mem_alloc`` from the world's heap model,
  ``threshold``; ``enable``/``disable``/``isenabled`` keep a flag and do not switch CPython's
  collector off for the stack.
- ``random``: MicroPython's functions on a private ``random.Random`` (``seed`` in the script
  never touches anyone else's generator), seeded from ``world.options["seed"]`` when it is an
  int (``pystack run --seed N``), else from the system; ``getrandbits`` takes at most 32 bits.
- ``builtins``: the world's builtins module (``builtins.x = 1`` is seen by script code only).

Entry points: ``register_builtin_modules``.
"""

from __future__ import annotations

import array
import binascii
import cmath
import collections
import gc
import hashlib
import heapq
import io
import json
import math
import operator
import os
import random
import re
import struct
import sys
from collections.abc import Callable, Sequence
from types import ModuleType, SimpleNamespace
from typing import Any

from pystack.runtime import unix_port
from pystack.runtime.machine_module import make_machine_module
from pystack.runtime.micropython_module import (
    make_errno_module,
    make_micropython_module,
    make_time_module,
)
from pystack.runtime.providers import ModuleKind, ModuleProviders
from pystack.runtime.shaped_modules import SHAPED_FACTORIES, ilistdir
from pystack.runtime.unix_port import MICROPYTHON_VERSION, Place
from pystack.runtime.world import ScriptWorld

_EXTENSIBLE_COPIES: tuple[ModuleType, ...] = (
    json,
    struct,
    binascii,
    hashlib,
    io,
    collections,
    re,
    heapq,
    array,
)
_BUILTIN_COPIES: tuple[ModuleType, ...] = (math, cmath)


def _copy_of(original: ModuleType) -> Callable[[ScriptWorld], ModuleType]:
    def factory(world: ScriptWorld) -> ModuleType:
        module = ModuleType(original.__name__, original.__doc__)
        vars(module).update(vars(original))
        return module

    return factory


# py/modsys.c's attributes that are read live from CPython's sys (the script's streams may be
# redirected by whoever runs it); every other CPython attribute is absent, as on MicroPython
_LIVE_SYS = frozenset({"stdin", "stdout", "stderr"})


def _implementation() -> SimpleNamespace:
    """``sys.implementation``: MicroPython's attrtuple (``py/modsys.c``, ``impl_fields``) with
    ``name``, ``version``, ``_machine`` and ``_thread`` ("unsafe": the unix port's threads have no
    GIL). No ``_mpy``: ``mip`` reads it to download ``.mpy`` files, which pystack cannot run, and
    without it ``mip`` installs ``.py`` source."""
    return SimpleNamespace(
        name="micropython",
        version=MICROPYTHON_VERSION,
        _machine=unix_port.machine_text(),
        _thread="unsafe",
    )


def make_sys_module(world: ScriptWorld) -> ModuleType:
    module = ModuleType("sys")

    def atexit(function: Callable[[], object] | None) -> Callable[[], object] | None:
        previous = world.atexit
        world.atexit = function
        return previous

    def __getattr__(name: str) -> Any:
        if name in _LIVE_SYS or world.providers.cpython_fallback:
            return getattr(sys, name)
        raise AttributeError(f"'module' object has no attribute '{name}'")

    def __dir__() -> list[str]:
        names = set(vars(module)) | _LIVE_SYS
        if world.providers.cpython_fallback:
            names |= set(dir(sys))
        return sorted(names)

    vars(module).update(
        {
            "argv": world.argv,
            "path": world.path,
            "modules": world.modules,
            "version": unix_port.sys_version(),
            "version_info": unix_port.PYTHON_LANGUAGE_VERSION,
            "implementation": _implementation(),
            "platform": "linux",
            "byteorder": sys.byteorder,
            "maxsize": sys.maxsize,
            "executable": sys.executable,
            "exit": sys.exit,
            "exc_info": sys.exc_info,
            "intern": sys.intern,
            "print_exception": world.print_exception,
            "atexit": atexit,
            "__getattr__": __getattr__,
            "__dir__": __dir__,
        }
    )
    return module


def make_gc_module(world: ScriptWorld) -> ModuleType:
    module = ModuleType("gc")
    state = {"enabled": True, "threshold": -1}

    def collect() -> int:
        return gc.collect()

    def enable() -> None:
        state["enabled"] = True

    def disable() -> None:
        state["enabled"] = False

    def isenabled() -> bool:
        return bool(state["enabled"])

    def threshold(amount: int | None = None) -> int | None:
        if amount is None:
            return int(state["threshold"])
        state["threshold"] = operator.index(amount)
        return None

    vars(module).update(
        {
            "collect": collect,
            "enable": enable,
            "disable": disable,
            "isenabled": isenabled,
            "mem_free": world.heap.free,
            "mem_alloc": world.heap.used,
            "threshold": threshold,
        }
    )
    return module


def make_os_module(world: ScriptWorld) -> ModuleType:
    module = _copy_of(os)(world)
    vars(module).update({"ilistdir": ilistdir, "dupterm": lambda *arguments: None})
    return module


def make_random_module(world: ScriptWorld) -> ModuleType:
    module = ModuleType("random")
    seed_option = world.options.get("seed")
    # str seeds are hashed with SHA-512: stable across runs, and apart from the stacks' streams
    generator = random.Random(
        f"pystack-script/{seed_option}" if isinstance(seed_option, int) else None
    )

    def getrandbits(bits: int) -> int:
        bits = operator.index(bits)
        if not 0 <= bits <= 32:
            raise ValueError("bits must be 32 or less")
        return generator.getrandbits(bits) if bits else 0

    def seed(value: int | None = None) -> None:
        generator.seed(value)

    def choice(sequence: Sequence[Any]) -> Any:
        return generator.choice(sequence)

    vars(module).update(
        {
            "getrandbits": getrandbits,
            "seed": seed,
            "randrange": generator.randrange,
            "randint": generator.randint,
            "choice": choice,
            "random": generator.random,
            "uniform": generator.uniform,
        }
    )
    return module


def register_builtin_modules(
    providers: ModuleProviders, *, cpython_modules: bool = False
) -> ModuleProviders:
    """Register the modules that need no network: everything but socket/select/ssl/asyncio.

    ``cpython_modules`` (``--cpython-modules``) gives copies of CPython's modules where the
    default gives MicroPython-shaped ones (shaped_modules.py)."""
    builtin, extensible = ModuleKind.BUILTIN, ModuleKind.EXTENSIBLE
    providers.register("sys", make_sys_module, builtin)
    providers.register("micropython", make_micropython_module, builtin)
    providers.register("gc", make_gc_module, builtin)
    providers.register("machine", make_machine_module, extensible)
    providers.register("builtins", lambda world: world.builtins_module, builtin)
    for original in _BUILTIN_COPIES:
        providers.register(original.__name__, _copy_of(original), builtin)
    providers.register("time", make_time_module, extensible)
    providers.register("errno", make_errno_module, extensible)
    providers.register("random", make_random_module, extensible)
    if cpython_modules:
        providers.register("os", make_os_module, extensible)
        for original in _EXTENSIBLE_COPIES:
            providers.register(original.__name__, _copy_of(original), extensible)
        return providers
    for name, factory in SHAPED_FACTORIES.items():
        place = unix_port.UNIX_PORT_MODULES[name][0]
        providers.register(name, factory, builtin if place is Place.BUILTIN else extensible)
    return providers
