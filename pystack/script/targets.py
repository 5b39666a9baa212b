"""Targets: what a script runs against. ``pystack`` (in-process, virtual time) and ``kernel``
(Linux in a network namespace the target makes and removes, ``pystack/script/kernel.py``).

A target takes a parsed ``ScriptFile`` and runs it: ``run`` returns a ``ScriptResult`` when every
line went as written and raises ``ScriptFailure`` (whose text is the report, in the script's own
notation) when one did not. A script the target cannot run at all (a ``set`` name it does not
know, say) raises ``ValueError`` with a one-line message. A target may also have ``close()``,
which ``pystack script`` calls once at the end (the kernel target removes its namespace there).

``TARGETS`` maps a name to a factory (called with no arguments). The command looks names up
here only, so a new target is one entry.
Entry points: ``Target``, ``PystackTarget``, ``TARGETS``, ``make_target``, ``TargetUnavailable``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from pystack.script.files import ScriptFile
from pystack.script.kernel import KernelTarget
from pystack.script.report import ScriptResult
from pystack.script.runner import ScriptRunner


class Target(Protocol):
    name: str  # "pystack" | "kernel"

    def run(self, script: ScriptFile) -> ScriptResult:
        """Run ``script``; raises ScriptFailure on a mismatch."""
        ...


class PystackTarget:
    """A fresh pystack per script, on a memory link with the script as its peer, virtual time.

    ``seed`` seeds the stack's randomness (ISNs, ports): the same script gives the same run.
    """

    name = "pystack"

    def __init__(self, seed: int = 1) -> None:
        self.seed = seed

    def run(self, script: ScriptFile) -> ScriptResult:
        runner = ScriptRunner(script.lines, seed=self.seed, settings=script.settings)
        return runner.run()


class TargetUnavailable(LookupError):
    """A target name that is not registered in this build; the message is one line."""


TARGETS: dict[str, Callable[[], Target]] = {
    "pystack": PystackTarget,
    "kernel": KernelTarget,
}


def make_target(name: str) -> Target:
    """The target called ``name``, made by its factory; TargetUnavailable if none is registered."""
    factory = TARGETS.get(name)
    if factory is None:
        available = ", ".join(sorted(TARGETS))
        raise TargetUnavailable(
            f"target {name!r} is not available in this build (available: {available})"
        )
    return factory()
