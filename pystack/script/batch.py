"""Many scripts on one or more targets: the outcome of each, and the Markdown report.

``run_one`` runs a script on a target and judges the result against the expected outcome:

    passed, not listed  -> PASS      failed, listed  -> XFAIL   (both as expected)
    failed, not listed  -> FAIL      passed, listed  -> XPASS   (both news)
    could not run (a ``set`` the target does not know, an error in the target) -> ERROR

``first_difference`` is the one-line summary of a failure (its line, reason and first detail);
``markdown_report`` puts the outcomes of all targets side by side, with the first difference of
every script that did not pass everywhere. Nothing here prints; ``pystack script`` does.
Entry points: ``Outcome``, ``ScriptOutcome``, ``run_one``, ``first_difference``,
``markdown_report``.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

from pystack.script.expected import Expectation
from pystack.script.files import ScriptFile
from pystack.script.report import ScriptFailure
from pystack.script.targets import Target


class Outcome(enum.Enum):
    PASS = "PASS"
    FAIL = "FAIL"
    XFAIL = "XFAIL"
    XPASS = "XPASS"
    ERROR = "ERROR"

    @property
    def as_expected(self) -> bool:
        return self in (Outcome.PASS, Outcome.XFAIL)


@dataclass(frozen=True)
class ScriptOutcome:
    """A script's outcome on one target; ``difference``/``report`` when it did not pass."""

    path: str
    target: str
    outcome: Outcome
    difference: str | None = None  # one line: the first difference, or why it could not run
    report: str | None = None  # the runner's whole report (failures only)
    trace: str | None = None  # the events of a run that passed
    expectation: Expectation | None = None

    @property
    def passed(self) -> bool:
        """Whether the script ran as written (whatever was expected)."""
        return self.outcome in (Outcome.PASS, Outcome.XPASS)


def first_difference(failure: ScriptFailure) -> str:
    """``line N: reason: first detail`` (what a one-line summary of a failure shows)."""
    where = f"line {failure.line.number}: " if failure.line is not None else ""
    detail = f": {failure.details[0]}" if failure.details else ""
    if not detail and failure.actual not in (None, "nothing"):
        detail = f": got {failure.actual}"
    elif not detail and failure.expected is not None:
        detail = f": expected {failure.expected}"
    return f"{where}{failure.reason}{detail}"


def run_one(target: Target, script: ScriptFile, expectation: Expectation | None) -> ScriptOutcome:
    """Run ``script`` on ``target`` and judge it (never raises for a script's own problems)."""
    listed = expectation is not None
    try:
        result = target.run(script)
    except ScriptFailure as failure:
        outcome = Outcome.XFAIL if listed else Outcome.FAIL
        difference = first_difference(failure)
        return ScriptOutcome(
            script.path, target.name, outcome, difference, str(failure), expectation=expectation
        )
    except ValueError as error:  # the target cannot run this script (e.g. an unknown setting)
        return ScriptOutcome(
            script.path, target.name, Outcome.ERROR, _one_line(error), expectation=expectation
        )
    except Exception as error:  # a bug in a target is reported, not a traceback
        message = f"the {target.name} target raised {type(error).__name__}: {_one_line(error)}"
        return ScriptOutcome(
            script.path, target.name, Outcome.ERROR, message, expectation=expectation
        )
    outcome = Outcome.XPASS if listed else Outcome.PASS
    return ScriptOutcome(
        script.path, target.name, outcome, trace=result.trace, expectation=expectation
    )


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__


def outcome_line(result: ScriptOutcome, show_target: bool) -> str:
    """``PASS path``, ``FAIL path: difference``, ``XFAIL path: category: reason``..."""
    where = f"{result.path} [{result.target}]" if show_target else result.path
    text = f"{result.outcome.value} {where}"
    if result.outcome in (Outcome.FAIL, Outcome.ERROR):
        return f"{text}: {result.difference}"
    if result.expectation is not None:
        entry = result.expectation
        if result.outcome is Outcome.XPASS:
            return f"{text}: passed, but {entry.source} expects a failure ({entry.category})"
        return f"{text}: {entry.category}: {entry.reason}"
    return text


def _cell(result: ScriptOutcome | None) -> str:
    if result is None:
        return "-"
    if result.expectation is not None:
        return f"{result.outcome.value} ({result.expectation.category})"
    return result.outcome.value


def _outcome(result: ScriptOutcome | None) -> Outcome | None:
    return None if result is None else result.outcome


def _escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def markdown_report(targets: Sequence[str], results: Sequence[ScriptOutcome]) -> str:
    """Outcomes per script and target as a Markdown table, then the differences."""
    paths = list(dict.fromkeys(result.path for result in results))
    table = {(result.path, result.target): result for result in results}
    counts = {outcome: 0 for outcome in Outcome}
    for each in results:
        counts[each.outcome] += 1
    summary = ", ".join(f"{count} {outcome.value}" for outcome, count in counts.items() if count)
    lines = [
        "# Script outcomes",
        "",
        f"{len(paths)} scripts on {', '.join(targets)}: {summary or 'nothing run'}. "
        "PASS and XFAIL are as expected; FAIL, XPASS and ERROR are not.",
        "",
        "| script | " + " | ".join(targets) + " |",
        "|---|" + "---|" * len(targets),
    ]
    for path in paths:
        cells = [_cell(table.get((path, target))) for target in targets]
        lines.append(f"| `{_escape(path)}` | " + " | ".join(cells) + " |")
    passed_everywhere = {
        path
        for path in paths
        if all(_outcome(table.get((path, target))) is Outcome.PASS for target in targets)
    }
    differing = [path for path in paths if path not in passed_everywhere]
    lines += ["", "## Scripts that did not pass everywhere", ""]
    if not differing:
        lines.append("None: every script passed on every target.")
    for path in differing:
        lines += [f"### `{_escape(path)}`", ""]
        for target in targets:
            result = table.get((path, target))
            if result is None:
                continue
            text = f"- **{target}**: {result.outcome.value}"
            if result.difference:
                text += f": {_escape(result.difference)}"
            if result.expectation is not None:
                entry = result.expectation
                text += f" (expected to fail, {entry.category}: {_escape(entry.reason)})"
            lines.append(text)
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"
