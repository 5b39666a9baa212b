"""Helpers for runtime tests: write a script (and its libraries) under tmp_path and run it.

``ScriptRunner.run(source, *args)`` runs ``main.py`` in-process with ``run_script`` and returns
the exit status with what the script wrote to stdout and stderr. The environment is explicit:
``MICROPYPATH`` defaults to ``.frozen`` and ``HOME`` to the test's directory, so nothing from the
machine's ``~/.micropython`` leaks in.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

from pystack.runtime import default_providers
from pystack.runtime.providers import ModuleProviders
from pystack.runtime.script import run_script


@dataclass(frozen=True)
class Outcome:
    status: int
    out: str
    err: str


class ScriptRunner:
    def __init__(self, directory: Path, capture: pytest.CaptureFixture[str]) -> None:
        self.directory = directory
        self.capture = capture
        self.environ = {"MICROPYPATH": ".frozen", "HOME": str(directory / "home")}
        self.providers: ModuleProviders = default_providers()

    def cpython_modules(self) -> None:
        """Run later scripts as ``pystack run --cpython-modules`` does (CPython's stdlib too)."""
        self.providers = default_providers(cpython_modules=True)

    def write(self, relative: str, source: str) -> Path:
        path = self.directory / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source))
        return path

    def run(self, source: str, *arguments: str, name: str = "main.py") -> Outcome:
        script = self.write(name, source)
        self.capture.readouterr()
        status = run_script(str(script), list(arguments), self.providers, environ=self.environ)
        captured = self.capture.readouterr()
        return Outcome(status, captured.out, captured.err)
