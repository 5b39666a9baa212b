"""The script's search path, built and searched the way MicroPython's unix port does it.

``sys.path`` for a script is ``[<directory of the script>, *MICROPYPATH]`` (``ports/unix/main.c``:
entry 0 is the script's real directory, the rest come from ``MICROPYPATH``, split on ``:``, with a
leading ``~/`` replaced by ``$HOME``). Unset, ``MICROPYPATH`` defaults to
``.frozen:~/.micropython/lib:/usr/lib/micropython``; ``~/.micropython/lib`` is where
``mip`` installs packages on the unix port, so libraries installed that way are found. The entry
``.frozen`` is virtual: it stands for the modules frozen into the firmware (see providers.py).

In one directory, ``find_module`` looks for ``<name>/`` (a package; without ``__init__.py`` it is a
namespace package), then ``<name>.py``, then ``<name>.mpy``
(``py/builtinimport.c:stat_module``). A ``.mpy`` file is compiled MicroPython bytecode that CPython
cannot run; it is reported so the importer can say so.

Entry points: ``script_search_path``, ``find_module``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

DEFAULT_MICROPYPATH = ".frozen:~/.micropython/lib:/usr/lib/micropython"
FROZEN_ENTRY = ".frozen"


@dataclass(frozen=True)
class FoundModule:
    """Where a module was found: a source file, a package directory, or only a ``.mpy`` file."""

    source: str | None  # the .py file to run (a package's __init__.py), if any
    package_dir: str | None = None  # set for packages: MicroPython keeps __path__ as one str
    compiled: str | None = None  # a .mpy file found instead of source


def micropython_path(environ: Mapping[str, str]) -> list[str]:
    """The ``MICROPYPATH`` entries, in order, with ``~/`` expanded as the unix port does."""
    value = environ.get("MICROPYPATH")
    if value is None:
        value = DEFAULT_MICROPYPATH
    home = environ.get("HOME")
    entries = []
    for entry in value.split(":"):
        if entry.startswith("~/") and home is not None:
            entry = home + entry[1:]
        entries.append(entry)
    return entries


def script_search_path(script: str, environ: Mapping[str, str]) -> list[str]:
    """``sys.path`` for ``script``: its real directory first, then ``MICROPYPATH``."""
    return [os.path.dirname(os.path.realpath(script)), *micropython_path(environ)]


def find_module(directory: str, name: str) -> FoundModule | None:
    """Look for module ``name`` in one search-path directory (``""`` is the current one)."""
    base = os.path.join(directory, name) if directory else name
    if os.path.isdir(base):
        init = os.path.join(base, "__init__.py")
        if os.path.isfile(init):
            return FoundModule(source=init, package_dir=base)
        if os.path.isfile(init[:-3] + ".mpy"):
            return FoundModule(source=None, package_dir=base, compiled=init[:-3] + ".mpy")
        return FoundModule(source=None, package_dir=base)
    if os.path.isfile(base + ".py"):
        return FoundModule(source=base + ".py")
    if os.path.isfile(base + ".mpy"):
        return FoundModule(source=None, compiled=base + ".mpy")
    return None
