"""``pystack script --jobs N`` and ``batch.Workers``: scripts in worker processes.

Checked: the output of N jobs is the output of one (same lines, input order); a bad ``--jobs`` is
a one-line usage error; a worker that dies is an ERROR outcome, not a hang; the longest kernel
runs are estimated from their written times; a PASS with expectations a target could not check
says so. On the kernel (root): SIGTERM to ``pystack script`` stops its workers, by PID, and
leaves no namespace of theirs behind.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pystack.cli import main
from pystack.netns import NAME_PREFIX, list_namespaces
from pystack.script.batch import (
    Outcome,
    ScriptOutcome,
    Workers,
    markdown_report,
    outcome_line,
    real_seconds,
)
from pystack.script.files import ScriptFile, load_script
from pystack.script.kernel import KernelTarget
from pystack.script.report import ScriptResult
from pystack.script.targets import PystackTarget

ROOT = Path(__file__).resolve().parents[2]


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    status = main(["script", *argv])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_four_jobs_print_what_one_job_prints_in_the_same_order(
    capsys: pytest.CaptureFixture[str],
) -> None:
    paths = [str(ROOT / "scripts" / "examples"), str(ROOT / "scripts" / "tcp" / "handshake")]
    one = run([*paths, "--jobs", "1"], capsys)
    four = run([*paths, "--jobs", "4"], capsys)
    assert one == four
    assert one[0] == 0 and one[1].count("\n") > 20


@pytest.mark.parametrize("jobs", ["0", "65", "two", "-1"])
def test_a_bad_job_count_is_a_usage_error(jobs: str, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = run([str(ROOT / "scripts" / "examples"), "--jobs", jobs], capsys)
    assert status == 2 and out == ""
    assert err == f"pystack: --jobs: expected a number of jobs 1..64, got {jobs!r}\n"


class Crashing:
    """A target whose run ends its process abruptly (as a worker killed by the OOM killer)."""

    name = "crashing"

    def run(self, script: ScriptFile) -> ScriptResult:
        os._exit(3)


def test_a_worker_that_dies_is_an_error_outcome(tmp_path: Path) -> None:
    path = tmp_path / "ping.pkt"
    path.write_text("0 < icmp echo id 1 seq 1 (8)\n+0 > icmp echo-reply id 1 seq 1 (8)\n")
    script = load_script(str(path))
    with Workers(2) as workers:
        outcomes = list(workers.run([(Crashing(), script, None), (PystackTarget(), script, None)]))
    assert [outcome.outcome for outcome in outcomes] == [Outcome.ERROR, Outcome.PASS]
    assert outcomes[0].difference == "the crashing worker ended with status 3"
    assert workers.running == {}


def test_kernel_runs_are_estimated_from_their_written_time(tmp_path: Path) -> None:
    path = tmp_path / "long.pkt"
    path.write_text("0 udp bind 7\n+1 udp close\n2.5 udp bind 8\nend strict 3\n")
    script = load_script(str(path))
    assert real_seconds(KernelTarget(), script) == pytest.approx(5.5)
    assert real_seconds(PystackTarget(), script) == 0.0  # virtual time: no real wait


def test_a_pass_with_unobservable_expectations_says_so() -> None:
    checked = ScriptOutcome("a.pkt", "kernel", Outcome.PASS)
    partial = ScriptOutcome(
        "b.pkt",
        "kernel",
        Outcome.PASS,
        unobservable=(
            "line 5: expect counter tcp.closed_with_unread_data 1  # no kernel equivalent",
        )
        * 3,
    )
    assert outcome_line(checked, False) == "PASS a.pkt"
    assert outcome_line(partial, False) == "PASS b.pkt (3 expectations not observable on kernel)"
    report = markdown_report(["kernel"], [checked, partial])
    assert "| `b.pkt` | PASS (3 not observable) |" in report
    assert "### `b.pkt`" in report and "no kernel equivalent" in report
    assert "### `a.pkt`" not in report


def _children(pid: int) -> set[int]:
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        found.update(int(each) for each in (task / "children").read_text().split())
    return found


def _namespaces_of(pids: set[int]) -> list[str]:
    pattern = re.compile(re.escape(NAME_PREFIX) + r"(\d+)-\d+")
    matches = [pattern.fullmatch(name) for name in list_namespaces()]
    return [match.group(0) for match in matches if match and int(match.group(1)) in pids]


def test_sigterm_stops_the_workers_and_leaves_no_namespace(kernel: None, tmp_path: Path) -> None:
    for number in range(3):  # each waits 20 s (really) with a UDP socket open in its namespace
        (tmp_path / f"wait{number}.pkt").write_text("0 udp bind 7\n+20 udp close\n")
    command = [sys.executable, "-m", "pystack.cli", "script", str(tmp_path)]
    process = subprocess.Popen(
        [*command, "--target", "kernel", "--jobs", "3"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        workers: set[int] = set()
        deadline = time.monotonic() + 15  # bounded: the three namespaces appear within seconds
        while time.monotonic() < deadline:
            workers = _children(process.pid)
            if len(workers) == 3 and len(_namespaces_of(workers)) == 3:
                break
            time.sleep(0.05)
        assert len(_namespaces_of(workers)) == 3, "the workers did not start their runs"
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 128 + signal.SIGTERM
    assert err.strip().endswith("interrupted")
    assert "Traceback" not in err
    assert all(not Path(f"/proc/{pid}").exists() for pid in workers)
    assert _namespaces_of(workers) == []
