"""What a script run leaves behind: the trace of events, the result, and the failure report.

``TraceEntry`` is one event as a line of notation with an absolute time (a trace is itself
readable as a script); ``ScriptFailure`` is the report a student reads: the line, what it
expected, what pystack did, the mismatching fields and the last events; ``ScriptResult`` is what
``run_script`` returns. Entry points: ``TraceEntry``, ``ScriptFailure``, ``ScriptResult``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from pystack.clock import ManualClock
from pystack.link.base import Link
from pystack.script.application import ConnectionLike
from pystack.script.events import ScriptLine
from pystack.script.formatting import format_seconds
from pystack.stack import Stack

TRACE_LENGTH = 12  # events shown in a failure


@dataclass(frozen=True)
class TraceEntry:
    """One thing that happened, as a line of notation with an absolute time."""

    time: float
    text: str
    line: int | None = None
    note: str = ""

    def __str__(self) -> str:
        where = f"line {self.line}" if self.line is not None else ""
        comment = ": ".join(part for part in (where, self.note) if part)
        return f"{format_seconds(self.time)} {self.text}" + (f"  # {comment}" if comment else "")


class ScriptFailure(AssertionError):
    """A script did not run as written. ``str()`` is the whole report, for a student to read."""

    def __init__(
        self,
        reason: str,
        line: ScriptLine | None,
        expected: str | None = None,
        actual: str | None = None,
        details: Sequence[str] = (),
        trace: Sequence[TraceEntry] = (),
    ) -> None:
        self.reason, self.line, self.expected, self.actual = reason, line, expected, actual
        self.details, self.trace = tuple(details), tuple(trace)
        parts = [f"script line {line.number}: {reason}" if line else f"script: {reason}"]
        if line is not None:
            parts.append(f"    {line.text}")
        if expected is not None:
            parts.append(f"  expected: {expected}")
        if actual is not None:
            parts.append(f"  actual:   {actual}")
        parts += [f"  - {detail}" for detail in self.details]
        if self.trace:
            parts.append("last events:")
            parts += [f"  {entry}" for entry in self.trace[-TRACE_LENGTH:]]
        super().__init__("\n".join(parts))


@dataclass
class ScriptResult:
    """A script that ran as written. ``stack`` is None on the kernel target (no pystack stack
    is under test there); ``unobservable`` lists the expectations that target could not check
    (e.g. a pystack counter with no kernel equivalent): reported beside the pass, never hidden."""

    stack: Stack | None
    wire: Link
    clock: ManualClock
    events: list[TraceEntry] = field(default_factory=list)
    connection: ConnectionLike | None = None
    target: str = "pystack"
    unobservable: list[str] = field(default_factory=list)

    @property
    def trace(self) -> str:
        return "\n".join(str(entry) for entry in self.events)
