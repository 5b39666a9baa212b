"""Tracebacks as MicroPython prints them, with only the script's and its libraries' frames.

MicroPython's format (``py/obj.c:mp_obj_print_exception``, ``py/objexcept.c:
mp_obj_exception_print``)::

    Traceback (most recent call last):
      File "main.py", line 4, in <module>
      File "lib.py", line 2, in fail
    ValueError: bad value

No source lines, no ``^^^`` markers, no chained causes. The last line is the exception's class
name, ``": "``, then: nothing for no arguments (``KeyboardInterrupt: ``), ``str(arg)`` for one,
``[Errno 104] ECONNRESET`` for an ``OSError`` whose first argument is an errno MicroPython names
(a second argument follows after ``": "``), else the arguments' tuple.

Which frames are shown: those of code compiled in the script world (the script, and every
module loaded from its search path), recognised by their globals' ``__builtins__`` being the
world's builtins. pystack's own code (usocket, the asyncio written for pystack, the importer,
the runner) and CPython's standard library are never shown; the exception was raised somewhere
in them, and the last script frame says where the script called it. The ``__main__`` file is
shown as it was given on the command line, as the unix port shows it.

Entry points: ``print_exception``, ``exception_line``, ``strip_runtime_frames``.
"""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Mapping
from types import TracebackType
from typing import Any, TextIO

_HERE = os.path.dirname(os.path.abspath(__file__))
RUNTIME_FILES = frozenset(
    os.path.join(_HERE, name) for name in ("bridges.py", "importer.py", "script.py", "world.py")
)


def _is_runtime(filename: str) -> bool:
    return os.path.abspath(filename) in RUNTIME_FILES


def _filtered(trace: TracebackType | None) -> TracebackType | None:
    kept: list[TracebackType] = []
    while trace is not None:
        if not _is_runtime(trace.tb_frame.f_code.co_filename):
            kept.append(trace)
        trace = trace.tb_next
    rebuilt: TracebackType | None = None
    for item in reversed(kept):
        rebuilt = TracebackType(rebuilt, item.tb_frame, item.tb_lasti, item.tb_lineno)
    return rebuilt


def strip_runtime_frames(error: BaseException) -> BaseException:
    """Drop runtime frames from ``error`` and every exception chained to it (in place); used
    for errors the script world cannot have caused (CPython's format is kept for those)."""
    seen: set[int] = set()
    pending = [error]
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        current.__traceback__ = _filtered(current.__traceback__)
        pending.extend(e for e in (current.__cause__, current.__context__) if e is not None)
    return error


def exception_line(error: BaseException, errno_names: Mapping[int, str] | None = None) -> str:
    """The last line of MicroPython's traceback (``mp_obj_exception_print``, ``PRINT_EXC``)."""
    name = type(error).__name__
    arguments = error.args
    if not arguments:
        return f"{name}: "
    first = arguments[0]
    if (
        isinstance(error, OSError)
        and name == "OSError"  # usocket's OSError subclass is MicroPython's OSError too
        and len(arguments) < 3
        and type(first) is int
        and errno_names is not None
        and first in errno_names
    ):
        text = f"[Errno {first}] {errno_names[first]}"
        return f"{name}: {text}: {arguments[1]}" if len(arguments) > 1 else f"{name}: {text}"
    if len(arguments) == 1:
        return f"{name}: {first}"
    return f"{name}: {arguments!r}"


def print_exception(
    error: BaseException,
    file: TextIO | None = None,
    *,
    script_builtins: Mapping[str, Any] | None = None,
    errno_names: Mapping[int, str] | None = None,
    shown_names: Mapping[str, str] | None = None,
) -> None:
    """``sys.print_exception(exc, file=sys.stdout)`` in MicroPython's format.

    ``script_builtins``: the world's builtins; only frames of code that runs with them are shown
    (None: every frame but the runtime's). ``shown_names``: file names to print differently.
    """
    out = file if file is not None else sys.stdout
    lines = []
    trace = error.__traceback__
    while trace is not None:
        frame = trace.tb_frame
        code = frame.f_code
        shown = (
            frame.f_globals.get("__builtins__") is script_builtins
            if script_builtins is not None
            else not _is_runtime(code.co_filename)
        )
        if shown:
            filename = code.co_filename
            if shown_names is not None:
                filename = shown_names.get(filename, filename)
            lines.append(f'  File "{filename}", line {trace.tb_lineno}, in {code.co_name}\n')
        trace = trace.tb_next
    text = "Traceback (most recent call last):\n" + "".join(lines) if lines else ""
    out.write(text + exception_line(error, errno_names) + "\n")


def print_cpython_exception(error: BaseException, file: TextIO) -> None:
    """CPython's format without runtime frames: for pystack's own failures at the script's end."""
    strip_runtime_frames(error)
    traceback.print_exception(error, file=file)
