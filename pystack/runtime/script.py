"""``run_script``: run a script as ``__main__`` in a fresh ``ScriptWorld``, like ``python SCRIPT``.

As MicroPython's unix port runs ``micropython SCRIPT`` (``ports/unix/main.c``): ``sys.argv`` is
``[SCRIPT, *ARGS]`` (CPython's ``sys.argv`` too, for the duration, so stdlib code the script
calls sees it); the exit status is 0 when the script ends, ``SystemExit``'s code otherwise
(``None`` is 0, an int is its low 8 bits, anything else gives 1 and is not printed); any other
uncaught exception prints MicroPython's traceback on stderr with the script's frames only
(tracebacks.py) and gives 1; ``KeyboardInterrupt`` (Ctrl-C) prints the same traceback and gives
130, the status a shell reports for a process ended by SIGINT (MicroPython's unix port gives 1). A syntax error keeps
CPython's text and caret (pystack compiles with CPython). An unreadable script gives ``can't
open file ...`` and 2; stdout is flushed at the end and a failed flush gives 120.

Around the script: the scheduler's signal route is installed (main thread only), the script's
``sys.atexit`` function runs after it, then the world's cleanups, then ``on_exit(abrupt)`` (how
``pystack run`` closes the script's connections: ``abrupt`` is True after Ctrl-C or a
``ScriptEnd`` that says so, such as ``machine.reset()``). stdin, stdout and stderr are the
script's; nothing else is printed, except the one-line ``pystack: ...`` note of a ``ScriptEnd``.

``ScriptEnd`` is how a provided module ends the script from inside as a board would end it
(``machine.reset()``, an expired ``machine.WDT``): a ``SystemExit`` (so ``except Exception``
does not catch it, as nothing catches a board's reset) with its status, its note and whether
connections are reset rather than closed.

Entry points: ``run_script``, ``exit_status``, ``ScriptEnd``.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping, Sequence

from pystack.clock import Clock
from pystack.runtime.paths import script_search_path
from pystack.runtime.providers import ModuleProviders
from pystack.runtime.tracebacks import print_cpython_exception
from pystack.runtime.world import ScriptWorld

EXIT_FLUSH_FAILED = 120
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as a shell reports a process Ctrl-C ended
EXIT_CANNOT_OPEN = 2


class ScriptEnd(SystemExit):
    """The script ends here, as a board would end it: exit ``status``, ``note`` printed on stderr
    after ``pystack: ``, and ``abrupt`` (connections reset, as a board's reset drops them) or not
    (closed as ``close()`` closes them, as at a normal end)."""

    def __init__(self, status: int, note: str, *, abrupt: bool) -> None:
        super().__init__(status)
        self.status = status
        self.note = note
        self.abrupt = abrupt


def exit_status(exit: SystemExit) -> int:
    """The status MicroPython's unix port derives from an uncaught ``SystemExit``
    (``ports/unix/main.c:handle_uncaught_exception``): None is 0, an int is itself (its low 8
    bits), anything else is 1 and is not printed. A ``ScriptEnd`` prints its note first."""
    if isinstance(exit, ScriptEnd):
        print(f"pystack: {exit.note}", file=sys.stderr)
        return exit.status
    code = exit.code
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    return 1


def _report(world: ScriptWorld, error: BaseException) -> None:
    if isinstance(error, SyntaxError):
        print_cpython_exception(error, sys.stderr)  # a compile error: CPython's text and caret
        return
    world.print_exception(error, sys.stderr)


def _call(world: ScriptWorld, function: Callable[[], object], abrupt: list[bool]) -> int | None:
    """Run script code; None if it returned, else the exit status its exception means: 1 for
    any uncaught exception after MicroPython's traceback (``handle_uncaught_exception`` in
    ``ports/unix/main.c``), 130 for Ctrl-C (the shell's convention for SIGINT, after the same
    traceback). Appends True to ``abrupt`` when it ended by Ctrl-C or an abrupt ``ScriptEnd``."""
    try:
        function()
    except SystemExit as exit:
        if isinstance(exit, ScriptEnd) and exit.abrupt:
            abrupt.append(True)
        return exit_status(exit)
    except KeyboardInterrupt as error:
        abrupt.append(True)
        _report(world, error)
        return EXIT_INTERRUPTED
    except BaseException as error:
        _report(world, error)
        return 1
    return None


def _flush() -> bool:
    try:
        sys.stdout.flush()
    except (OSError, ValueError):
        return False
    return True


def run_script(
    path: str,
    arguments: Sequence[str],
    providers: ModuleProviders,
    *,
    environ: Mapping[str, str] | None = None,
    clock: Clock | None = None,
    frozen_dir: str | None = None,
    options: Mapping[str, object] | None = None,
    on_exit: Callable[[bool], object] | None = None,
) -> int:
    """Run the script at ``path`` with ``arguments``; return its exit status. ``on_exit(abrupt)``
    runs once the script, its ``atexit`` function and the world's cleanups are done."""
    try:
        with open(path, "rb"):
            pass
    except OSError as error:
        print(
            f"pystack: can't open file {os.path.abspath(path)!r}: [Errno {error.errno}] "
            f"{error.strerror}",
            file=sys.stderr,
        )
        return EXIT_CANNOT_OPEN
    world = ScriptWorld(
        providers,
        path=script_search_path(path, os.environ if environ is None else environ),
        argv=[path, *arguments],
        clock=clock,
        frozen_dir=frozen_dir,
        options=options,
    )
    filename = os.path.abspath(path)  # as CPython 3.9+ names __main__'s file
    main = world.new_module("__main__", filename)
    world.modules["__main__"] = main
    world.shown_names[filename] = path  # tracebacks show the path as given, as the unix port
    saved_argv = sys.argv
    sys.argv = world.argv
    world.scheduler.install()
    abrupt: list[bool] = []
    try:
        status = _call(world, lambda: world.importer.execute(main, filename), abrupt)
        if world.atexit is not None:
            status = _call(world, world.atexit, abrupt) or status
        for failure in world.close():
            print_cpython_exception(failure, sys.stderr)  # pystack's clean-up, not the script
            status = status or 1
        if on_exit is not None:
            try:
                on_exit(bool(abrupt))
            except KeyboardInterrupt:
                status = status or EXIT_INTERRUPTED
    finally:
        world.scheduler.uninstall()
        sys.argv = saved_argv
    if not _flush() and not status:
        return EXIT_FLUSH_FAILED
    return status or 0
