"""The script's module set is MicroPython's unix port's (pystack/runtime/unix_port.py)."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from pystack.runtime.unix_port import (
    MICROPYTHON_VERSION,
    PYSTACK_VERSION,
    UNIX_PORT_MODULES,
    Emulation,
)
from tests.runtime.scripts import ScriptRunner

ROOT = Path(__file__).resolve().parents[2]
CPYTHON_ONLY = ("inspect", "functools", "threading", "typing", "logging", "datetime", "hmac")


def test_pystack_version_is_the_projects() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["version"] == PYSTACK_VERSION


@pytest.mark.parametrize("name", [*CPYTHON_ONLY, "base64", "itertools", "operator"])
def test_cpython_only_modules_are_micropythons_import_error(
    script: ScriptRunner, name: str
) -> None:
    # py/builtinimport.c: mp_raise_msg_varg(&mp_type_ImportError, "no module named '%q'")
    outcome = script.run(
        f"try:\n    import {name}\nexcept ImportError as e:\n    print(type(e).__name__, e)\n"
    )
    assert outcome.out == f"ImportError no module named '{name}'\n", outcome.err


def test_every_emulated_module_without_a_network_imports(script: ScriptRunner) -> None:
    names = [n for n, (_, how) in UNIX_PORT_MODULES.items() if how is Emulation.PYSTACK]
    outcome = script.run(f"for name in {names!r}:\n    __import__(name)\nprint('ok')\n")
    assert outcome.out == "ok\n", outcome.err


def test_not_emulated_modules_say_so_as_micropython_would(script: ScriptRunner) -> None:
    outcome = script.run("import vfs\n")
    assert outcome.err.endswith("ImportError: no module named 'vfs'\n")


def test_surfaces_follow_micropython(script: ScriptRunner) -> None:
    # py/modcollections.c, extmod/modjson.c, py/modsys.c, extmod/modos.c, extmod/modhashlib.c
    outcome = script.run(
        """
        import collections, json, sys, os, hashlib, ujson, ucollections
        print(hasattr(collections, "defaultdict"), hasattr(collections, "deque"))
        print(json.dumps({"k": [1, "é"]}), json.dumps([1, 2], separators=(",", ":")))
        try:
            json.dumps({}, indent=2)
        except TypeError:
            print("no indent")
        print(hasattr(sys, "getrefcount"), hasattr(sys, "print_exception"), sys.platform)
        print(hasattr(os, "path"), hasattr(os, "environ"), hasattr(os, "ilistdir"))
        print(hasattr(hashlib.sha256(), "hexdigest"), ujson is json, ucollections is collections)
        """
    )
    assert outcome.out == (
        "False True\n"
        '{"k": [1, "é"]} [1,2]\n'
        "no indent\n"
        "False True linux\n"
        "False False True\n"
        "False True True\n"
    ), outcome.err


def test_sys_version_and_implementation_are_micropythons(script: ScriptRunner) -> None:
    # py/modsys.c: version is "3.4.0; " MICROPY_BANNER_NAME_AND_VERSION, version_info (3, 4, 0),
    # implementation (name, version, _machine, _thread); no _mpy (see unix_port.py)
    outcome = script.run(
        """
        import sys
        print(sys.version)
        print(sys.version_info, sys.implementation.name, sys.implementation.version)
        print(sys.implementation._machine, sys.implementation._thread)
        print(hasattr(sys.implementation, "_mpy"))
        """
    )
    major, minor, micro, _ = MICROPYTHON_VERSION
    assert outcome.out == (
        f"3.4.0; MicroPython v{major}.{minor}.{micro} on 2024-10-25\n"
        f"(3, 4, 0) micropython {MICROPYTHON_VERSION}\n"
        f"linux [pystack {PYSTACK_VERSION}] version unsafe\n"
        "False\n"
    ), outcome.err


def test_cpython_modules_opt_out_keeps_cpythons_modules(script: ScriptRunner) -> None:
    script.cpython_modules()
    outcome = script.run(
        "import functools, collections\nprint(hasattr(collections, 'defaultdict'))\n"
    )
    assert outcome.out == "True\n", outcome.err
