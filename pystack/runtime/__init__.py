"""What ``pystack run SCRIPT`` gives a script: MicroPython's modules, for that script only.

The pieces:

- unix_port.py: the emulated MicroPython version and its module set (the one list);
- shaped_modules.py: ``json``, ``os``, ``collections``... with MicroPython's surface;
- providers.py: ``ModuleProviders``, the registry of MicroPython module names -> factories, with
  each name's place in MicroPython's import order;
- world.py: ``ScriptWorld``, one run's state and the context factories receive;
- importer.py: the script world's ``__import__`` (how script code gets MicroPython modules while
  pystack and the stdlib keep CPython's; the design is explained there);
- paths.py: ``sys.path`` from the script's directory and ``MICROPYPATH``;
- bridges.py: the language differences bridged for script code (``b"%s" % "x"`` and five more);
- micropython_module.py, builtin_modules.py: ``micropython``, ``time``, ``errno``, ``sys``,
  ``gc``, ``os``, ``random`` and the stdlib modules given under MicroPython names;
- scheduler.py: ``micropython.schedule``; script.py: ``run_script`` and exit statuses;
  tracebacks.py: tracebacks without runtime frames.

- masyncio/: MicroPython's asyncio (``asyncio``/``uasyncio``) written for pystack, on the world's
  ``select``, ``socket`` and ``time``.

``build_runtime(arguments)`` is what the ``run`` subcommand calls. It registers every module that
needs no network, and placeholders for ``socket``, ``select``, ``ssl``, ``tls``, ``network`` and
``asyncio`` that raise ImportError when a script imports them without a network; the stack set-up
(``network.py``, ``ScriptNetwork.register``) replaces them with the real modules, bound to the
script's stack.

Entry points: ``build_runtime``, ``default_providers``, ``NETWORK_MODULES``.
"""

from __future__ import annotations

import argparse
from types import MappingProxyType, ModuleType

from pystack.runtime.builtin_modules import register_builtin_modules
from pystack.runtime.providers import ModuleFactory, ModuleKind, ModuleProviders
from pystack.runtime.world import ScriptWorld

# name -> (kind, extra spellings): where MicroPython finds each network-facing module
NETWORK_MODULES = MappingProxyType(
    {
        "socket": (ModuleKind.EXTENSIBLE, ()),  # also usocket (weak link)
        "select": (ModuleKind.EXTENSIBLE, ()),  # also uselect
        "network": (ModuleKind.BUILTIN, ()),
        "tls": (ModuleKind.BUILTIN, ()),  # the mbedTLS module under micropython-lib's ssl
        "ssl": (ModuleKind.FROZEN, ("ussl",)),
        "asyncio": (ModuleKind.FROZEN, ("uasyncio",)),
    }
)


def _not_yet(name: str) -> ModuleFactory:
    def factory(world: ScriptWorld) -> ModuleType:
        raise ImportError(
            f"pystack run: '{name}' needs a network, and this script world has none",
            name=name,
        )

    return factory


def default_providers(*, cpython_modules: bool = False) -> ModuleProviders:
    """Every module that needs no network, plus ImportError placeholders for the network ones.

    ``cpython_modules`` is ``pystack run --cpython-modules``: CPython's standard library as a
    fallback for names MicroPython does not have, and CPython's modules where MicroPython's
    differ (see unix_port.py for the default module set)."""
    providers = register_builtin_modules(
        ModuleProviders(cpython_fallback=cpython_modules), cpython_modules=cpython_modules
    )
    for name, (kind, aliases) in NETWORK_MODULES.items():
        providers.register(name, _not_yet(name), kind, aliases)
    return providers


def build_runtime(arguments: argparse.Namespace) -> ModuleProviders:
    """The providers for ``pystack run`` with these command-line options.

    Stub: the link, address, DNS, impairment, seed, pcap and trace options are parsed but not yet
    used; the stack set-up will build a stack from them and register the network modules.
    """
    return default_providers(cpython_modules=bool(getattr(arguments, "cpython_modules", False)))
