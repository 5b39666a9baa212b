"""Tracebacks as the script should see them: without pystack's runtime plumbing.

An exception raised in a module the script imports travels through ``Importer`` frames, and
every exception through ``run_script``; CPython hides its own import machinery from
tracebacks, so ``strip_runtime_frames`` hides ours and an uncaught exception prints as it would
under ``python SCRIPT``. ``print_exception`` is MicroPython's ``sys.print_exception`` format
(``File "...", line N, in name`` without source lines; ``Type: message``).

Entry points: ``strip_runtime_frames``, ``print_exception``.
"""

from __future__ import annotations

import os
import sys
import traceback
from types import TracebackType
from typing import TextIO

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
    """Drop runtime frames from ``error`` and every exception chained to it (in place)."""
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


def print_exception(error: BaseException, file: TextIO | None = None) -> None:
    """``sys.print_exception(exc, file=sys.stdout)`` in MicroPython's format."""
    out = file if file is not None else sys.stdout
    frames = [
        frame
        for frame in traceback.extract_tb(error.__traceback__)
        if not _is_runtime(frame.filename)
    ]
    if frames:
        print("Traceback (most recent call last):", file=out)
        for frame in frames:
            print(f'  File "{frame.filename}", line {frame.lineno}, in {frame.name}', file=out)
    name = type(error).__qualname__
    if not error.args:
        print(name, file=out)
    elif len(error.args) == 1:
        print(f"{name}: {error.args[0]}", file=out)
    else:
        print(f"{name}: {error.args!r}", file=out)
