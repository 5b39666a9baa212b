"""Modules are found as MicroPython finds them: script directory, then MICROPYPATH, in order."""

from __future__ import annotations

from pathlib import Path

from pystack.runtime.paths import DEFAULT_MICROPYPATH, micropython_path, script_search_path
from tests.runtime.scripts import ScriptRunner


def test_default_micropypath_expands_home() -> None:
    assert micropython_path({"HOME": "/home/pat"}) == [
        ".frozen",
        "/home/pat/.micropython/lib",
        "/usr/lib/micropython",
    ]
    assert DEFAULT_MICROPYPATH == ".frozen:~/.micropython/lib:/usr/lib/micropython"
    assert micropython_path({"MICROPYPATH": "a:~/b:", "HOME": "/h"}) == ["a", "/h/b", ""]


def test_search_path_starts_with_the_scripts_real_directory(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "main.py").write_text("")
    (tmp_path / "link").symlink_to(tmp_path / "real")
    path = script_search_path(str(tmp_path / "link" / "main.py"), {"MICROPYPATH": "x:y"})
    assert path == [str((tmp_path / "real").resolve()), "x", "y"]


def test_script_sees_its_search_path_as_sys_path(script: ScriptRunner) -> None:
    script.environ["MICROPYPATH"] = ".frozen:first:second"
    outcome = script.run("import sys\nprint(sys.path[1:])\n")
    assert outcome.out == "['.frozen', 'first', 'second']\n"


def test_script_directory_comes_before_micropypath_entries_in_order(
    script: ScriptRunner, tmp_path: Path
) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    script.environ["MICROPYPATH"] = f".frozen:{first}:{second}"
    script.write("first/shared.py", "WHERE = 'first'\n")
    script.write("second/shared.py", "WHERE = 'second'\n")
    script.write("second/only_second.py", "WHERE = 'second'\n")
    script.write("first/mine.py", "WHERE = 'first'\n")
    script.write("mine.py", "WHERE = 'script directory'\n")
    outcome = script.run(
        "import shared, only_second, mine\nprint(shared.WHERE, only_second.WHERE, mine.WHERE)\n"
    )
    assert outcome.out == "first second script directory\n", outcome.err


def test_mip_style_lib_directory(script: ScriptRunner, tmp_path: Path) -> None:
    # mip on the unix port installs into ~/.micropython/lib: packages as directories
    lib = tmp_path / "home" / ".micropython" / "lib"
    script.environ["MICROPYPATH"] = "~/.micropython/lib"
    script.write("home/.micropython/lib/requestish/__init__.py", "from .http import line\n")
    script.write(
        "home/.micropython/lib/requestish/http.py",
        'def line(method, path):\n    return b"%s /%s HTTP/1.0" % (method, path)\n',
    )
    script.write("home/.micropython/lib/single.py", "VALUE = 3\n")
    outcome = script.run(
        "import requestish, single\n"
        "print(requestish.line('GET', 'x'), single.VALUE, requestish.__path__)\n"
    )
    assert outcome.out == f"b'GET /x HTTP/1.0' 3 {lib / 'requestish'}\n", outcome.err


def test_a_file_extends_an_extensible_builtin_but_the_u_name_stays_builtin(
    script: ScriptRunner,
) -> None:
    script.write("json.py", "from ujson import *\nEXTRA = True\n")
    outcome = script.run(
        "import json, ujson\nprint(json.EXTRA, json.dumps([1]), hasattr(ujson, 'EXTRA'))\n"
    )
    assert outcome.out == "True [1] False\n", outcome.err


def test_a_file_cannot_shadow_a_non_extensible_builtin(script: ScriptRunner) -> None:
    script.write("micropython.py", "SHADOW = True\n")
    script.write("sys.py", "SHADOW = True\n")
    outcome = script.run(
        "import micropython, sys, usys\n"
        "print(hasattr(micropython, 'SHADOW'), hasattr(sys, 'SHADOW'), sys is usys)\n"
    )
    assert outcome.out == "False False True\n", outcome.err


def test_frozen_modules_need_the_frozen_entry(script: ScriptRunner) -> None:
    script.environ["MICROPYPATH"] = ""
    outcome = script.run("import asyncio\n")
    assert outcome.status == 1
    assert "ImportError: no module named 'asyncio'" in outcome.err  # not CPython's asyncio


def test_a_directory_without_init_is_a_namespace_package(script: ScriptRunner) -> None:
    script.write("space/inner.py", "X = 1\n")
    outcome = script.run(
        "import space.inner\nfrom space import inner\nprint(space.inner.X, inner is space.inner)\n"
    )
    assert outcome.out == "1 True\n", outcome.err


def test_relative_imports_inside_packages(script: ScriptRunner) -> None:
    script.write("pkg/__init__.py", "from . import a\n")
    script.write("pkg/a.py", "from .sub.b import B\nA = 'a' + B\n")
    script.write("pkg/sub/__init__.py", "")
    script.write("pkg/sub/b.py", "from .. import c\nB = 'b' + c.C\n")
    script.write("pkg/c.py", "C = 'c'\n")
    outcome = script.run("import pkg\nfrom pkg.sub import b\nprint(pkg.a.A, b.B)\n")
    assert outcome.out == "abc bc\n", outcome.err


def test_relative_import_in_the_script_fails(script: ScriptRunner) -> None:
    outcome = script.run("from . import x\n")
    assert outcome.status == 1
    assert "ImportError: can't perform relative import" in outcome.err


def test_compiled_mpy_is_reported(script: ScriptRunner, tmp_path: Path) -> None:
    (tmp_path / "driver.mpy").write_bytes(b"M\x06\x00\x1f")
    outcome = script.run("import driver\n")
    assert outcome.status == 1
    assert "driver.mpy is compiled MicroPython bytecode" in outcome.err


def test_py_source_wins_over_mpy(script: ScriptRunner, tmp_path: Path) -> None:
    (tmp_path / "driver.mpy").write_bytes(b"M\x06\x00\x1f")
    script.write("driver.py", "OK = 1\n")
    assert script.run("import driver\nprint(driver.OK)\n").out == "1\n"


def test_script_changes_to_sys_path_and_sys_modules_take_effect(
    script: ScriptRunner, tmp_path: Path
) -> None:
    script.write("later/extra.py", "import sys\nsys.loads = getattr(sys, 'loads', 0) + 1\n")
    outcome = script.run(
        f"""
        import sys
        try:
            import extra
        except ImportError:
            print("not yet")
        sys.path.append({str(tmp_path / "later")!r})
        import extra
        import extra
        del sys.modules["extra"]
        import extra
        print(sys.loads)
        """
    )
    assert outcome.out == "not yet\n2\n", outcome.err


def test_unknown_names_are_micropythons_import_error(script: ScriptRunner) -> None:
    # py/builtinimport.c: mp_raise_msg_varg(&mp_type_ImportError, "no module named '%q'")
    outcome = script.run("import math\nprint(math.pi > 3)\nimport itertools\n")
    assert outcome.out == "True\n"
    assert outcome.status == 1
    assert outcome.err.endswith("ImportError: no module named 'itertools'\n")


def test_cpython_modules_falls_back_to_cpython_and_missing_ones_fail(
    script: ScriptRunner,
) -> None:
    script.cpython_modules()
    outcome = script.run(
        "import itertools, math\nprint(list(itertools.islice(itertools.count(), 2)), math.pi > 3)\n"
        "import no_such_module\n"
    )
    assert outcome.out == "[0, 1] True\n"
    assert outcome.status == 1
    assert "ModuleNotFoundError: No module named 'no_such_module'" in outcome.err  # CPython's


def test_a_failed_import_is_not_left_in_sys_modules(script: ScriptRunner) -> None:
    script.write("broken.py", "import sys\nraise ValueError('half done')\n")
    outcome = script.run(
        """
        import sys
        try:
            import broken
        except ValueError:
            pass
        print("broken" in sys.modules)
        """
    )
    assert outcome.out == "False\n", outcome.err


def test_from_import_of_submodules_and_star(script: ScriptRunner) -> None:
    script.write("pkg/__init__.py", "__all__ = ['one', 'two']\n")
    script.write("pkg/one.py", "N = 1\n")
    script.write("pkg/two.py", "N = 2\n")
    outcome = script.run("from pkg import *\nprint(one.N + two.N)\nfrom pkg import nothing\n")
    assert outcome.out == "3\n"
    assert "ImportError: cannot import name 'nothing'" in outcome.err


def test_import_of_a_stdlib_submodule_through_a_micropython_name(script: ScriptRunner) -> None:
    assert "no module named 'os.path'" in script.run("import os.path\n").err  # MicroPython's os
    script.cpython_modules()
    outcome = script.run("import os.path\nimport uos\nprint(os.path.basename('/a/b'), uos.sep)\n")
    assert outcome.out == "b /\n", outcome.err
