"""Many scripts on one or more targets: the outcome of each, and the Markdown report.

``run_one`` runs a script on a target and judges the result against the expected outcome:

    passed, not listed  -> PASS      failed, listed  -> XFAIL   (both as expected)
    failed, not listed  -> FAIL      passed, listed  -> XPASS   (both news)
    could not run (a ``set`` the target does not know) -> ERROR, or XFAIL when listed
    an error in the target itself (a bug: any other exception) -> ERROR, listed or not

``first_difference`` is the one-line summary of a failure (its line, reason and first detail);
``markdown_report`` puts the outcomes of all targets side by side, with the first difference of
every script that did not pass everywhere. Nothing here prints; ``pystack script`` does.

``Workers`` runs many (target, script) runs in parallel worker processes (``--jobs N``): a
kernel run spends most of its time waiting for Linux's real timers, so N at once take about
the time of the longest. Each run is a forked child of its own (its namespace is its own, made
and removed by the child); results come back in the input order. ``Workers.stop()`` (its
``with`` block's end, also on Ctrl-C or SIGTERM) sends SIGTERM to each child still running, by
its PID, which unwinds the child like Ctrl-C (so it removes its namespace); a child that does
not end within ``STOP_GRACE`` seconds is killed, and any namespace still named after a stopped
child's PID is removed.
Entry points: ``Outcome``, ``ScriptOutcome``, ``run_one``, ``Workers``, ``first_difference``,
``markdown_report``.
"""

from __future__ import annotations

import contextlib
import enum
import multiprocessing
import os
import signal
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from types import FrameType

from pystack.netns import NamespaceError, remove_namespaces_of
from pystack.script.events import EndStrict
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
    SKIP = "SKIP"  # not run: asked for (``--max-seconds``)

    @property
    def as_expected(self) -> bool:
        return self in (Outcome.PASS, Outcome.XFAIL, Outcome.SKIP)


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
    # expectations the target could not check (kernel: pystack-only counters, drops...): a
    # run that passed with some is a PASS that says so, never a silent one
    unobservable: tuple[str, ...] = ()

    @property
    def unobservable_note(self) -> str:
        """``(N expectations not observable on TARGET)``, or "" when every one was checked."""
        count = len(self.unobservable)
        if not count:
            return ""
        noun = "expectation" if count == 1 else "expectations"
        return f"({count} {noun} not observable on {self.target})"

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
        # Listed, it is an expected failure (a setting Linux has not, say): the entry's reason
        # says why; unlisted, an ERROR.
        outcome = Outcome.XFAIL if listed else Outcome.ERROR
        return ScriptOutcome(
            script.path, target.name, outcome, _one_line(error), expectation=expectation
        )
    except Exception as error:  # a bug in a target is reported, not a traceback
        message = f"the {target.name} target raised {type(error).__name__}: {_one_line(error)}"
        return ScriptOutcome(
            script.path, target.name, Outcome.ERROR, message, expectation=expectation
        )
    outcome = Outcome.XPASS if listed else Outcome.PASS
    return ScriptOutcome(
        script.path,
        target.name,
        outcome,
        trace=result.trace,
        expectation=expectation,
        unobservable=tuple(result.unobservable),
    )


Task = tuple[Target, ScriptFile, Expectation | None]  # run_one's arguments
MAX_JOBS = 64  # worker processes at most (each kernel run holds a namespace and a TUN device)
REAL_TIME_NICE = -10  # a real-time worker's priority change (see _work)
STOP_GRACE = 15.0  # seconds a stopped worker has to remove its namespace before it is killed


class Workers:
    """Runs tasks in up to ``jobs`` forked worker processes, one per task (see the module doc).

    Use as ``with Workers(jobs) as workers: for outcome in workers.run(tasks): ...``; with
    ``jobs`` 1 the tasks run one after the other in this process, as without ``Workers``.
    """

    def __init__(self, jobs: int) -> None:
        if not 1 <= jobs <= MAX_JOBS:
            raise ValueError(f"jobs must be 1..{MAX_JOBS}, got {jobs}")
        self.jobs = jobs
        self.running: dict[int, tuple[BaseProcess, Connection]] = {}  # task index -> worker

    def __enter__(self) -> Workers:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def run(self, tasks: Sequence[Task]) -> Iterator[ScriptOutcome]:
        """Each task's outcome, in the order of ``tasks``, as soon as it and those before are in."""
        if self.jobs == 1:
            for task in tasks:
                yield run_one(*task)
            return
        context = multiprocessing.get_context("fork")  # the children share the loaded scripts
        # The longest runs start first (the corpus then takes about its longest script's time,
        # not that plus whatever queued behind it); the output still keeps the input order.
        order = sorted(range(len(tasks)), key=lambda index: -real_seconds(*tasks[index][:2]))
        done: dict[int, ScriptOutcome] = {}
        started = returned = 0
        while returned < len(tasks):
            while started < len(tasks) and len(self.running) < self.jobs:
                index = order[started]
                receiver, sender = context.Pipe(duplex=False)
                process: BaseProcess = context.Process(
                    target=_work, args=(tasks[index], sender), name=f"script-{index}"
                )
                process.start()
                sender.close()  # the child's end: closed here, so its exit shows as EOF
                self.running[index] = (process, receiver)
                started += 1
            while returned in done:
                yield done.pop(returned)
                returned += 1
            if returned == len(tasks):
                return
            wait([receiver for _, receiver in self.running.values()])
            for index, (process, receiver) in list(self.running.items()):
                if receiver.poll():
                    done[index] = self._collect(index, tasks[index], process, receiver)

    def _collect(
        self, index: int, task: Task, process: BaseProcess, receiver: Connection
    ) -> ScriptOutcome:
        target, script, expectation = task
        try:
            outcome: ScriptOutcome = receiver.recv()
        except (EOFError, OSError):  # the worker ended without an outcome
            process.join()
            message = f"the {target.name} worker ended with status {process.exitcode}"
            outcome = ScriptOutcome(
                script.path, target.name, Outcome.ERROR, message, expectation=expectation
            )
        process.join()
        receiver.close()
        del self.running[index]
        return outcome

    def stop(self) -> None:
        """End every worker still running: SIGTERM by PID, then SIGKILL after ``STOP_GRACE``."""
        for process, _ in self.running.values():
            if process.is_alive():
                process.terminate()  # SIGTERM to this child's PID only
        deadline = time.monotonic() + STOP_GRACE
        for process, receiver in self.running.values():
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                process.kill()
                process.join()
            # A child killed, or stopped between making its namespace and owning it, leaves
            # that namespace behind: remove the ones named after its (now ended) PID.
            if process.pid is not None:
                with contextlib.suppress(NamespaceError):
                    remove_namespaces_of(process.pid)
            receiver.close()
        self.running.clear()


def real_seconds(target: Target, script: ScriptFile) -> float:
    """About how long ``script`` takes on ``target`` in real seconds: the time of its last line
    (and ``end strict``) on a real-time target (``real_time``: the kernel), 0 on virtual time."""
    if not getattr(target, "real_time", False):
        return 0.0
    now = longest = 0.0
    for line in script.lines:
        spec = line.time
        if spec is not None and spec.start is not None:
            now = (now if spec.relative else 0.0) + spec.start
            longest = max(longest, now)
        if isinstance(line.event, EndStrict):
            longest = max(longest, now + line.event.seconds)
    return longest


def skip_if_longer(
    target: Target, script: ScriptFile, max_seconds: float | None
) -> ScriptOutcome | None:
    """A SKIP outcome when ``script`` would take longer than ``max_seconds`` real seconds on
    ``target`` (``real_seconds``; never on virtual time), else None: run it."""
    if max_seconds is None:
        return None
    seconds = real_seconds(target, script)
    if seconds <= max_seconds:
        return None
    reason = (
        f"not run: its written time, {seconds:g} s, is longer than --max-seconds {max_seconds:g}"
    )
    return ScriptOutcome(script.path, target.name, Outcome.SKIP, reason)


def _work(task: Task, sender: Connection) -> None:
    """A worker: run one task, send its outcome. SIGTERM and SIGHUP unwind it like Ctrl-C, so
    a kernel run's ``finally`` blocks remove its namespace."""

    def on_signal(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    for each in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(each, on_signal)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    if getattr(task[0], "real_time", False):
        # Its lines are timed in real time: a busy machine's scheduling delay would show as a
        # late packet. A higher priority (when allowed: root) keeps the delay small; the
        # worker sleeps in select() nearly all the time, so it takes little from others.
        with contextlib.suppress(OSError):
            os.nice(REAL_TIME_NICE)
    try:
        sender.send(run_one(*task))
    except KeyboardInterrupt:
        os._exit(128 + signal.SIGTERM)
    finally:
        sender.close()


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__


def outcome_line(result: ScriptOutcome, show_target: bool) -> str:
    """``PASS path``, ``FAIL path: difference``, ``XFAIL path: category: reason``..."""
    where = f"{result.path} [{result.target}]" if show_target else result.path
    text = f"{result.outcome.value} {where}"
    if result.unobservable:
        text += f" {result.unobservable_note}"
    if result.outcome in (Outcome.FAIL, Outcome.ERROR, Outcome.SKIP):
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
    text = result.outcome.value
    if result.expectation is not None:
        text += f" ({result.expectation.category})"
    if result.unobservable:
        text += f" ({len(result.unobservable)} not observable)"
    return text


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
        "PASS, XFAIL and SKIP (not run: --max-seconds) are as expected; FAIL, XPASS and ERROR "
        "are not.",
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
        and not any(result.unobservable for result in results if result.path == path)
    }
    differing = [path for path in paths if path not in passed_everywhere]
    lines += ["", "## Scripts that did not pass everywhere, or passed unchecked in part", ""]
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
            if result.unobservable:
                text += f" {result.unobservable_note}: " + "; ".join(
                    _escape(each) for each in result.unobservable
                )
            lines.append(text)
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"
