"""Which module a name gives a script, and where in MicroPython's search order it is found.

A ``ModuleProviders`` object maps a module name to a *factory* that builds that module for one
``ScriptWorld`` (factories take the world, so a ``socket`` module can be bound to one stack and
``asyncio`` can fetch the same world's ``time`` and ``select``). It holds no module objects: the
world builds each module once, on first import, and keeps it.

Each provider has a ``ModuleKind`` that places it in MicroPython's import order
(``py/builtinimport.c:process_import_at_level``, ``py/objmodule.c:mp_module_get_builtin``):

1. ``BUILTIN`` (non-extensible built-ins such as ``sys``, ``micropython``, ``gc``): found before
   the search path, so no file can shadow them.
2. the search path (``sys.path``), in order; where the ``.frozen`` entry stands, ``FROZEN``
   providers (MicroPython freezes ``asyncio`` and ``ssl`` as Python code) are found.
3. ``EXTENSIBLE`` built-ins (``time``, ``socket``, ``json``...): found only when no file or
   directory of that name is on the path, so a library can extend them (micropython-lib's
   ``os/__init__.py`` does ``from uos import *``).

Every extensible module can also be imported as ``u`` + its name; that spelling is a weak link
that always gives the built-in, before the path is searched (``import utime`` never finds a
``utime.py``). ``usys`` gives ``sys``. Other extra spellings (``uasyncio``, ``ussl``) are
``aliases`` resolved at the provider's own step.

Entry points: ``ModuleProviders.register``, ``ModuleProviders.builtin``, ``.frozen``,
``.extensible``, ``.dotted``.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pystack.runtime.world import ScriptWorld

ModuleFactory = Callable[["ScriptWorld"], ModuleType]


class ModuleKind(enum.Enum):
    BUILTIN = "built-in, found before the search path"
    FROZEN = "frozen, found where '.frozen' stands in the search path"
    EXTENSIBLE = "built-in, found after the search path; also importable as u<name>"


@dataclass(frozen=True)
class ModuleProvider:
    name: str
    factory: ModuleFactory
    kind: ModuleKind
    aliases: tuple[str, ...] = ()


class ModuleProviders:
    """The registry of modules a script can import by MicroPython name.

    ``register`` replaces an earlier registration of the same name, so the lead's real
    ``socket`` provider simply overwrites the placeholder.
    """

    def __init__(self, *, cpython_fallback: bool = False) -> None:
        # True: a name found nowhere is imported from CPython's standard library (the
        # --cpython-modules opt-out); False: it is MicroPython's ImportError
        self.cpython_fallback = cpython_fallback
        self._providers: dict[str, ModuleProvider] = {}
        self._names: dict[str, str] = {}  # every importable spelling -> canonical name

    def register(
        self,
        name: str,
        factory: ModuleFactory,
        kind: ModuleKind = ModuleKind.EXTENSIBLE,
        aliases: Iterable[str] = (),
    ) -> None:
        previous = self._providers.pop(name, None)
        if previous is not None:
            for spelling in (previous.name, *previous.aliases):
                self._names.pop(spelling, None)
        provider = ModuleProvider(name, factory, kind, tuple(aliases))
        self._providers[name] = provider
        for spelling in (name, *provider.aliases):
            self._names[spelling] = name

    def __contains__(self, name: object) -> bool:
        return name in self._providers

    def __iter__(self) -> Iterator[ModuleProvider]:
        return iter(list(self._providers.values()))

    def get(self, name: str) -> ModuleProvider | None:
        """The provider registered under exactly ``name`` (canonical name only)."""
        return self._providers.get(name)

    def _spelled(self, name: str, kind: ModuleKind) -> ModuleProvider | None:
        canonical = self._names.get(name)
        provider = self._providers.get(canonical) if canonical is not None else None
        if provider is not None and provider.kind is kind and "." not in provider.name:
            return provider
        return None

    def builtin(self, name: str) -> ModuleProvider | None:
        """Step 1: a non-extensible built-in, or a weak ``u`` link to an extensible one."""
        provider = self._spelled(name, ModuleKind.BUILTIN)
        if provider is not None:
            return provider
        if name == "usys":
            return self._spelled("sys", ModuleKind.BUILTIN)
        if name.startswith("u") and len(name) > 1:
            target = self._providers.get(name[1:])
            if target is not None and target.kind is ModuleKind.EXTENSIBLE:
                return target
        return None

    def frozen(self, name: str) -> ModuleProvider | None:
        """Step 2, at the ``.frozen`` entry of the search path."""
        return self._spelled(name, ModuleKind.FROZEN)

    def extensible(self, name: str) -> ModuleProvider | None:
        """Step 3: an extensible built-in, when the search path had nothing by that name."""
        return self._spelled(name, ModuleKind.EXTENSIBLE)

    def dotted(self, full_name: str) -> ModuleProvider | None:
        """A provider registered for a submodule (``"asyncio.core"``), if any."""
        provider = self._providers.get(full_name)
        return provider if provider is not None and "." in full_name else None

    def copy(self) -> ModuleProviders:
        duplicate = ModuleProviders(cpython_fallback=self.cpython_fallback)
        for provider in self._providers.values():
            duplicate.register(provider.name, provider.factory, provider.kind, provider.aliases)
        return duplicate
