"""Script files: a ``.pkt`` file read and parsed into a ``ScriptFile``, every error one line.

A script file is UTF-8 text in the notation of ``notation.py`` (docs/script-format.md). Its
``set NAME VALUE`` lines come before the first event (after the ``#`` header that says what the
script checks) and become ``ScriptFile.settings``; each name at most once. Every other line is
in ``ScriptFile.lines``, which is what a target runs. A problem is a ``ScriptFileError`` whose
message is one ``path:line: message`` line (``path: message`` when no line is to blame), the way
compilers report, so editors can jump to it.
Entry points: ``ScriptFile``, ``load_script``, ``parse_script_file``, ``find_scripts``,
``ScriptFileError``.
"""

from __future__ import annotations

import os
import types
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from pystack.script import events as ev
from pystack.script.notation import ScriptSyntaxError, parse_line

SUFFIX = ".pkt"
MAX_SIZE = 1 << 20  # bytes: a script is a page of text; a bigger file is a mistake


class ScriptFileError(ValueError):
    """A script file that cannot be used; ``str()`` is one ``path:line: message`` line."""

    def __init__(self, path: str, message: str, line: int = 0) -> None:
        self.path, self.message, self.line = path, message, line
        super().__init__(f"{path}:{line}: {message}" if line else f"{path}: {message}")


@dataclass(frozen=True)
class ScriptFile:
    """One parsed script: its path, its text, its event lines and its ``set`` settings."""

    path: str
    text: str
    lines: tuple[ev.ScriptLine, ...]
    settings: Mapping[str, str]


def parse_script_file(text: str, path: str = "<script>") -> ScriptFile:
    """``text`` as a script file named ``path`` (the name errors carry)."""
    lines: list[ev.ScriptLine] = []
    settings: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        try:
            line = parse_line(raw, number)
        except ScriptSyntaxError as error:
            raise ScriptFileError(path, error.message, number) from None
        if line is None:
            continue
        if isinstance(line.event, ev.Setting):
            name = line.event.name
            if lines:
                first = lines[0].number
                raise ScriptFileError(
                    path, f"'set {name}' must come before the first line (line {first})", number
                )
            if name in settings:
                raise ScriptFileError(path, f"'set {name}' given twice", number)
            settings[name] = line.event.value
        else:
            lines.append(line)
    if not any(line.time is not None for line in lines):
        raise ScriptFileError(path, "no events: a script needs at least one timed line")
    return ScriptFile(path, text, tuple(lines), types.MappingProxyType(settings))


def load_script(path: str) -> ScriptFile:
    """Read and parse the file at ``path``; ``ScriptFileError`` says what is wrong."""
    try:
        with open(path, "rb") as file:
            data = file.read(MAX_SIZE + 1)
    except OSError as error:
        raise ScriptFileError(path, error.strerror or type(error).__name__) from None
    if len(data) > MAX_SIZE:
        raise ScriptFileError(path, f"larger than {MAX_SIZE} bytes: not a script")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        raise ScriptFileError(path, f"not UTF-8 text (byte {error.start})", line) from None
    return parse_script_file(text, path)


def find_scripts(paths: Iterable[str]) -> list[str]:
    """The scripts ``paths`` name: a file as given, a directory's ``*.pkt`` files (walked
    recursively, in sorted order, hidden directories skipped). ``ScriptFileError`` for a path
    that does not exist or a directory without scripts."""
    found: list[str] = []
    for path in paths:
        if os.path.isdir(path):
            inside = sorted(_walk(path))
            if not inside:
                raise ScriptFileError(path, f"no *{SUFFIX} scripts in this directory")
            found += inside
        elif os.path.exists(path):
            found.append(path)
        else:
            raise ScriptFileError(path, "no such file or directory")
    return found


def _walk(top: str) -> Iterable[str]:
    for directory, subdirectories, names in os.walk(top):
        subdirectories[:] = [name for name in subdirectories if not name.startswith(".")]
        for name in names:
            if name.endswith(SUFFIX):
                yield os.path.join(directory, name)
