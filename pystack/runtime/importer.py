"""The script world's import system: ``__import__`` for the script and what it loads.

Design. CPython's ``import`` statement calls the ``__import__`` found in the *builtins of the
executing frame*, and a frame's builtins come from its module's ``__builtins__``. So the script,
and every module loaded from the script's search path, is executed with ``__builtins__`` set to
the world's own builtins dict, whose ``__import__`` is an ``Importer``. That binds the
MicroPython names lexically to the script's code: functions, classes, callbacks and threads
defined there import the MicroPython modules wherever they run, while the stack thread, pystack
and the stdlib keep CPython's ``__import__`` and ``sys.modules``.

Why not a ``sys.meta_path`` finder: ``time``, ``socket`` and ``select`` are already in
``sys.modules`` (pystack uses them), so a finder would never be asked, and replacing those
entries would hand the script's modules to pystack's own code.

The Importer follows MicroPython's order (providers.py): loaded modules (the world's
``sys.modules``), non-extensible built-ins and ``u`` aliases, the search path (``.frozen``
where it stands), extensible built-ins. Files found on the path are compiled with the language
bridges (bridges.py) and run as script-world modules, registered only in the world's
``sys.modules``. A name found nowhere raises MicroPython's ``ImportError: no module named 'X'``
(the module set is MicroPython's unix port's, listed in unix_port.py), so a library's
``try: import inspect`` feature test takes its MicroPython branch. With
``ModuleProviders.cpython_fallback`` (``pystack run --cpython-modules``) such a name is imported
from CPython instead (``itertools``, ``functools``...), which runs stdlib code as CPython code,
except for names a provider owns (``asyncio`` with no ``.frozen`` on the path is an ImportError,
as on MicroPython, not CPython's asyncio) and CPython's network modules
(``KERNEL_NETWORK_MODULES``: they would bypass pystack). CPython's ``sys.modules`` is never
touched.

Entry points: ``Importer`` (call it like ``__import__``), ``Importer.execute``.
"""

from __future__ import annotations

import builtins
import importlib
from collections.abc import Mapping, Sequence
from types import ModuleType
from typing import TYPE_CHECKING, Any

from pystack.runtime import bridges
from pystack.runtime.paths import FROZEN_ENTRY, FoundModule, find_module
from pystack.runtime.unix_port import no_module_named

if TYPE_CHECKING:
    from pystack.runtime.world import ScriptWorld

# CPython modules that would reach the kernel's network stack behind pystack's back; MicroPython
# has none of them (micropython-lib versions, installed on the search path, are found first)
KERNEL_NETWORK_MODULES = frozenset(
    {
        "_socket",
        "_ssl",
        "selectors",
        "socketserver",
        "http",
        "urllib",
        "ftplib",
        "smtplib",
        "poplib",
        "imaplib",
        "nntplib",
        "telnetlib",
        "xmlrpc",
        "_asyncio",
        "multiprocessing",
    }
)

_MPY_HINT = (
    "is compiled MicroPython bytecode (.mpy), which pystack cannot run; install the library "
    "as .py source (mpremote mip install --no-mpy, or mip.install(..., mpy=False))"
)


class Importer:
    """``__import__`` for one ``ScriptWorld``."""

    def __init__(self, world: ScriptWorld) -> None:
        self._world = world
        # top-level names answered by a provider (module) or by CPython (None), valid for one
        # value of sys.path: a script that changes sys.path gets a fresh search
        self._resolved: dict[str, ModuleType | None] = {}
        self._resolved_for: tuple[str, ...] = ()

    def __call__(
        self,
        name: str,
        globals: Mapping[str, Any] | None = None,
        locals: Mapping[str, Any] | None = None,
        fromlist: Sequence[str] | None = (),
        level: int = 0,
    ) -> ModuleType:
        if not isinstance(name, str):
            raise TypeError(f"module name must be str, not {type(name).__name__}")
        if level < 0:
            raise ValueError("level must be >= 0")
        absolute = self._absolute(name, globals, level) if level > 0 else name
        if not absolute:
            raise ValueError("Empty module name")
        top_name, _, rest = absolute.partition(".")
        top = self._top_level(top_name)
        if top is None:
            imported: ModuleType = builtins.__import__(absolute, None, None, fromlist or (), 0)
            return imported
        module = self._descend(top, top_name, rest)
        if fromlist:
            self._import_fromlist(module, fromlist)
            return module
        if level == 0:
            return top
        if not name:
            return module
        # __import__("a.b", level=1) without fromlist returns the package's "a", as CPython does
        cut = len(name) - len(name.partition(".")[0])
        return self._world.modules.get(module.__name__[: len(module.__name__) - cut], module)

    @staticmethod
    def _absolute(name: str, globals: Mapping[str, Any] | None, level: int) -> str:
        """Resolve a relative import against ``__name__`` (``evaluate_relative_import``)."""
        current = globals.get("__name__") if globals is not None else None
        if not isinstance(current, str):
            raise ImportError("can't perform relative import")
        base = current
        steps = level - 1 if "__path__" in globals else level  # type: ignore[operator]
        for _ in range(steps):
            if "." not in base:
                raise ImportError("can't perform relative import")
            base = base.rpartition(".")[0]
        if base == "__main__":
            raise ImportError("can't perform relative import")
        return f"{base}.{name}" if name else base

    def _top_level(self, name: str) -> ModuleType | None:
        world = self._world
        loaded = world.modules.get(name)
        if loaded is not None:
            return loaded
        search = tuple(world.path)
        if search != self._resolved_for:
            self._resolved.clear()
            self._resolved_for = search
        if name in self._resolved:
            return self._resolved[name]
        providers = world.providers
        provider = providers.builtin(name)
        if provider is None:
            for entry in search:
                directory: str | None = entry
                if entry == FROZEN_ENTRY:
                    provider = providers.frozen(name)
                    if provider is not None:
                        break
                    directory = world.frozen_dir
                if directory is None:
                    continue
                found = find_module(directory, name)
                if found is not None:
                    return self._load(name, found, None)
            else:
                provider = providers.extensible(name)
                if provider is None:
                    self._refuse_cpython(name)
                    if not providers.cpython_fallback:
                        raise no_module_named(name)
        module = world.provided(provider.name) if provider is not None else None
        self._resolved[name] = module
        return module

    def _refuse_cpython(self, name: str) -> None:
        """Raise rather than fall back to CPython for names MicroPython defines or forbids."""
        if name in self._world.providers:  # e.g. asyncio when sys.path has no '.frozen'
            raise no_module_named(name)
        if name in KERNEL_NETWORK_MODULES and self._world.providers.cpython_fallback:
            raise ModuleNotFoundError(
                f"No module named '{name}' (pystack run: CPython's {name} would use the "
                "kernel's network, not pystack; MicroPython has no such module)",
                name=name,
            )

    def _descend(self, module: ModuleType, full: str, rest: str) -> ModuleType:
        for part in rest.split(".") if rest else ():
            full = f"{full}.{part}"
            child = self._world.modules.get(full)
            module = child if child is not None else self._submodule(module, full, part)
        return module

    def _submodule(self, parent: ModuleType, full: str, part: str) -> ModuleType:
        world = self._world
        if world.providers.dotted(full) is not None:
            child = world.provided(full)
            setattr(parent, part, child)
            return child
        package_dir = parent.__dict__.get("__path__")
        if isinstance(package_dir, str):  # a script-world package: MicroPython's __path__ is a str
            found = find_module(package_dir, part)
            if found is not None:
                return self._load(full, found, parent)
        else:
            attribute = getattr(parent, part, None)
            if isinstance(attribute, ModuleType):
                return attribute
            real_name = getattr(getattr(parent, "__spec__", None), "name", None)
            if isinstance(real_name, str) and package_dir is not None:
                try:
                    return importlib.import_module(f"{real_name}.{part}")
                except ModuleNotFoundError:
                    pass
        raise no_module_named(full)

    def _import_fromlist(self, module: ModuleType, fromlist: Sequence[str]) -> None:
        if "__path__" not in module.__dict__:
            return  # not a package: IMPORT_FROM reads attributes and reports what is missing
        names = [item for item in fromlist if item != "*"]
        if "*" in fromlist:
            names.extend(getattr(module, "__all__", ()))
        for item in names:
            if not isinstance(item, str):
                raise TypeError(f"Item in from list must be str, not {type(item).__name__}")
            if hasattr(module, item):
                continue
            full = f"{module.__name__}.{item}"
            try:
                self._descend(module, module.__name__, item)
            except ImportError as error:
                if error.name != full:
                    raise

    def _load(self, full: str, found: FoundModule, parent: ModuleType | None) -> ModuleType:
        world = self._world
        if found.source is None and found.compiled is not None:
            raise ImportError(f"{found.compiled} {_MPY_HINT}", name=full, path=found.compiled)
        module = world.new_module(full, found.source)
        if found.package_dir is not None:
            module.__dict__["__path__"] = found.package_dir
        world.modules[full] = module
        try:
            if found.source is not None:
                self.execute(module, found.source)
        except BaseException:
            world.modules.pop(full, None)
            raise
        if parent is not None:
            setattr(parent, full.rpartition(".")[2], module)
        return module

    def execute(self, module: ModuleType, filename: str) -> None:
        """Compile ``filename`` with the bridges and run it in ``module``'s namespace."""
        with open(filename, "rb") as file:
            source = file.read()
        code = bridges.compile_script(source, filename, self._world.optimize)
        exec(code, module.__dict__)
