"""Exit status, tracebacks and argv behave as under MicroPython's ``micropython SCRIPT``.

References: ``ports/unix/main.c:handle_uncaught_exception`` (statuses), ``py/obj.c:
mp_obj_print_exception`` and ``py/objexcept.c:mp_obj_exception_print`` (the traceback text)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.runtime.scripts import ScriptRunner


def _python(path: Path, *arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(path), *arguments], capture_output=True, text=True, timeout=60
    )


def test_a_script_that_ends_exits_zero(script: ScriptRunner) -> None:
    outcome = script.run("print('hello')\n")
    assert (outcome.status, outcome.out, outcome.err) == (0, "hello\n", "")


@pytest.mark.parametrize(
    ("statement", "status", "err"),
    [
        ("sys.exit()", 0, ""),
        ("sys.exit(3)", 3, ""),
        ("sys.exit(0)", 0, ""),
        ("sys.exit(True)", 1, ""),
        ("sys.exit('bye')", 1, ""),  # main.c: not an int -> 1, nothing printed
        ("sys.exit(257)", 1, ""),  # main.c: val & 255
        ("raise SystemExit(7)", 7, ""),
    ],
)
def test_system_exit(script: ScriptRunner, statement: str, status: int, err: str) -> None:
    outcome = script.run(f"import sys\nprint('before')\n{statement}\nprint('after')\n")
    assert (outcome.status, outcome.out, outcome.err) == (status, "before\n", err)


def test_uncaught_exception_prints_micropythons_traceback_and_exits_one(
    script: ScriptRunner,
) -> None:
    script.write("helper.py", "def fail():\n    raise ValueError('bad value')\n")
    source = "import helper\nprint('out')\ndef go():\n    helper.fail()\ngo()\n"
    outcome = script.run(source)
    main, helper = script.directory / "main.py", script.directory / "helper.py"
    assert (outcome.status, outcome.out) == (1, "out\n")
    assert outcome.err == (
        "Traceback (most recent call last):\n"
        f'  File "{main}", line 5, in <module>\n'
        f'  File "{main}", line 4, in go\n'
        f'  File "{helper}", line 2, in fail\n'
        "ValueError: bad value\n"
    )


def test_chained_exceptions_print_only_the_last(script: ScriptRunner) -> None:
    # MicroPython keeps no __cause__/__context__ chain to print
    source = "try:\n    {}['k']\nexcept KeyError as error:\n    raise RuntimeError('wrapped') from error\n"
    outcome = script.run(source)
    path = script.directory / "main.py"
    assert outcome.err == (
        "Traceback (most recent call last):\n"
        f'  File "{path}", line 4, in <module>\n'
        "RuntimeError: wrapped\n"
    )


def test_syntax_errors_print_like_cpython(script: ScriptRunner) -> None:
    outcome = script.run("def (\n")
    expected = _python(script.directory / "main.py")
    assert outcome.status == expected.returncode == 1
    assert outcome.err == expected.stderr
    script.write("broken.py", "x = (\n")
    outcome = script.run("import broken\n")
    assert outcome.err == _python(script.directory / "main.py").stderr


def test_keyboard_interrupt_exits_130_after_its_traceback(script: ScriptRunner) -> None:
    # The traceback is MicroPython's (main.c prints every uncaught exception; an exception
    # without arguments prints "Name: ", objexcept.c prints ": " then nothing); the status is
    # the shell's convention for SIGINT (128 + 2), not the unix port's 1 (docs/micropython-world.md)
    outcome = script.run("def loop():\n    raise KeyboardInterrupt\nloop()\n")
    path = script.directory / "main.py"
    assert outcome.status == 130
    assert outcome.err == (
        "Traceback (most recent call last):\n"
        f'  File "{path}", line 3, in <module>\n'
        f'  File "{path}", line 2, in loop\n'
        "KeyboardInterrupt: \n"
    )


def test_missing_script_exits_two(script: ScriptRunner, capsys: pytest.CaptureFixture[str]) -> None:
    from pystack.runtime.script import run_script

    status = run_script(str(script.directory / "absent.py"), [], script.providers)
    assert status == 2
    assert "can't open file" in capsys.readouterr().err


def test_argv_is_the_script_path_then_the_arguments(script: ScriptRunner) -> None:
    outcome = script.run("import sys\nprint(sys.argv[1:])\n", "--trace", "-x", "two words")
    assert outcome.out == "['--trace', '-x', 'two words']\n"
    assert sys.argv[0] != str(script.directory / "main.py")  # restored afterwards


def test_dunder_main_and_file(script: ScriptRunner) -> None:
    outcome = script.run("import __main__\nprint(__name__, __main__.__file__ == __file__)\n")
    assert outcome.out == "__main__ True\n"


def test_sys_atexit_runs_after_the_script(script: ScriptRunner) -> None:
    outcome = script.run(
        "import sys\ndef bye():\n    print('atexit')\nprint(sys.atexit(bye))\nsys.exit(4)\n"
    )
    assert (outcome.status, outcome.out) == (4, "None\natexit\n")


def test_print_exception_uses_micropythons_format(script: ScriptRunner) -> None:
    outcome = script.run(
        """
        import sys
        def f():
            raise OSError(104)
        try:
            f()
        except OSError as error:
            sys.print_exception(error)
        """
    )
    path = script.directory / "main.py"
    assert outcome.out == (
        "Traceback (most recent call last):\n"
        f'  File "{path}", line 6, in <module>\n'
        f'  File "{path}", line 4, in f\n'
        "OSError: [Errno 104] ECONNRESET\n"  # objexcept.c: "[Errno %d] %q" for a known errno
    )


def test_stdin_belongs_to_the_script(script: ScriptRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    import io

    monkeypatch.setattr(sys, "stdin", io.StringIO("typed\n"))
    assert script.run("print(input().upper())\n").out == "TYPED\n"
