"""``pystack script`` end to end: outcome lines, exit status, expected outcomes, the report."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pystack.cli import main
from pystack.script.files import ScriptFile
from pystack.script.report import ScriptResult
from pystack.script.runner import ScriptRunner
from pystack.script.targets import TARGETS, Target

ROOT = Path(__file__).resolve().parents[1]

PASSING = """\
# a passive open: pystack answers a SYN with a SYN-ACK
0 listen 8080
+0 < S 0:0(0) win 65535 <mss 1460,sackOK>
+0 > S. 0:0(0) ack 1 <mss 1460,sackOK,nop,nop>
"""
FAILING = PASSING.replace("> S. 0:0(0)", "> R. 0:0(0)")  # pystack sends S., not R.
PING = """\
0 < icmp echo id 1 seq 1 (8)
+0 > icmp echo-reply id 1 seq 1 (8)
"""


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    """scripts/ with tcp/ok.pkt, tcp/wrong.pkt, icmp/ping.pkt; no expected file yet."""
    root = tmp_path / "scripts"
    for name, text in (
        ("tcp/ok.pkt", PASSING),
        ("tcp/wrong.pkt", FAILING),
        ("icmp/ping.pkt", PING),
    ):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def expect(root: Path, text: str, target: str = "pystack") -> Path:
    path = root / "expected" / f"{target}.txt"
    path.parent.mkdir(exist_ok=True)
    path.write_text(text)
    return path


def script(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    status = main(["script", *argv])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_a_passing_script_is_one_pass_line(
    corpus: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = str(corpus / "tcp" / "ok.pkt")
    status, out, err = script([path], capsys)
    assert (status, out, err) == (0, f"PASS {path}\n1 runs: 1 PASS\n", "")


def test_a_failing_script_shows_the_first_difference_and_the_report(
    corpus: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = str(corpus / "tcp" / "wrong.pkt")
    status, out, _ = script([path], capsys)
    assert status == 1
    lines = out.splitlines()
    assert lines[0] == (
        f"FAIL {path}: line 4: pystack's packet differs from the line: flags: expected R., got S."
    )
    assert "    script line 4: pystack's packet differs from the line" in lines
    assert "      actual:   0 > S. 0:0(0) ack 1 win 65535 <mss 1460,sackOK,nop,nop>" in lines
    assert lines[-1] == "1 runs: 1 FAIL"


def test_a_directory_is_walked_in_sorted_order(
    corpus: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, _ = script([str(corpus)], capsys)
    outcomes = [line.split()[:2] for line in out.splitlines() if line[:1] in "PFX"]
    assert outcomes == [
        ["PASS", str(corpus / "icmp" / "ping.pkt")],
        ["PASS", str(corpus / "tcp" / "ok.pkt")],
        ["FAIL", str(corpus / "tcp" / "wrong.pkt") + ":"],
    ]
    assert status == 1


def test_the_nearest_expected_file_turns_a_failure_into_xfail(
    corpus: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    expect(corpus, "tcp/wrong.pkt xfail policy the script wants a reset\n")
    status, out, _ = script([str(corpus / "tcp")], capsys)
    assert status == 0
    wrong = corpus / "tcp" / "wrong.pkt"
    assert f"XFAIL {wrong}: policy: the script wants a reset" in out.splitlines()
    assert "script line 4" not in out  # an expected failure's report only with --verbose
    _, verbose, _ = script([str(wrong), "--verbose"], capsys)
    assert "    script line 4: pystack's packet differs from the line" in verbose


def test_a_listed_script_that_passes_is_xpass_and_fails_the_run(
    corpus: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    listing = expect(corpus, "# news when it passes\ntcp/ok.pkt xfail rfc nobody knows\n")
    status, out, _ = script([str(corpus / "tcp" / "ok.pkt")], capsys)
    assert status == 1
    assert out.splitlines()[0] == (
        f"XPASS {corpus / 'tcp' / 'ok.pkt'}: passed, but {listing}:2 expects a failure (rfc)"
    )


def test_an_explicit_expect_file_wins_and_stale_entries_are_warned(
    corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    expect(corpus, "tcp/ok.pkt xfail rfc the default file, not used\n")
    other = tmp_path / "lists" / "custom.txt"  # its corpus root: tmp_path, above lists/
    other.parent.mkdir()
    other.write_text("scripts/tcp/wrong.pkt xfail linux wanted\nscripts/tcp/old.pkt xfail rfc x\n")
    status, out, err = script([str(corpus / "tcp"), "--expect", str(other)], capsys)
    assert status == 0, out
    assert "XFAIL" in out and "XPASS" not in out
    assert err == f"pystack: warning: {other}:2: no script scripts/tcp/old.pkt under {tmp_path}\n"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--target", "bsd"], "--target: target 'bsd' is not available in this build"),
        (["--target", "pystack,"], "--target: 'pystack,': give target names separated by commas"),
        (["--expect", "kernel=x.txt"], "--expect kernel=x.txt: 'kernel' is not one of the targets"),
        (["--expect", "a.txt", "--expect", "b.txt"], "--expect: given twice for every target"),
        (["--report", "/nonexistent/dir/r.md"], "--report: /nonexistent/dir: no such directory"),
    ],
)
def test_bad_options_are_one_line_and_status_2(
    argv: list[str], message: str, corpus: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, err = script([str(corpus / "tcp" / "ok.pkt"), *argv], capsys)
    assert status == 2 and out == ""
    assert err.startswith(f"pystack: {message}") and err.count("\n") == 1


def test_a_bad_file_is_one_line_and_nothing_runs(
    corpus: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = corpus / "tcp" / "zz-bad.pkt"
    bad.write_text("# broken\n0 listen 80\n+0 < Q 0:0(0)\n")
    status, out, err = script([str(corpus)], capsys)
    assert (status, out) == (2, "")
    assert (
        err == f"pystack: {bad}:3: unknown flag 'Q' in 'Q' (flags: S F R P U E W and . for ACK)\n"
    )
    expect(corpus, "tcp/ok.pkt xfail maybe reason\n")
    bad.unlink()
    status, out, err = script([str(corpus)], capsys)
    assert status == 2 and err.startswith(f"pystack: {corpus / 'expected' / 'pystack.txt'}:1: ")


def test_a_setting_the_target_does_not_know_is_an_error_line(
    corpus: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = corpus / "tcp" / "ecn.pkt"
    path.write_text("set ecn on\n" + PASSING)
    status, out, _ = script([str(path)], capsys)
    assert status == 1
    assert out.splitlines()[0].startswith(
        f"ERROR {path}: set ecn: the pystack target has no such setting"
    )


def test_a_listed_script_the_target_cannot_run_is_an_expected_failure(
    corpus: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # e.g. a setting Linux has not (set initial_rto on the kernel): listed with its reason
    path = corpus / "tcp" / "ecn.pkt"
    path.write_text("set ecn on\n" + PASSING)
    expect(corpus, "tcp/ecn.pkt xfail policy pystack has no ECN\n")
    status, out, _ = script([str(path)], capsys)
    assert status == 0
    assert out.splitlines()[0] == f"XFAIL {path}: policy: pystack has no ECN"


class WithoutSack:
    """A second target for the tests: pystack with SACK off (so SACK scripts differ)."""

    name = "nosack"
    closed = 0

    def run(self, script: ScriptFile) -> ScriptResult:
        settings = {**script.settings, "sack": "off"}
        return ScriptRunner(script.lines, settings=settings).run()

    def close(self) -> None:
        WithoutSack.closed += 1


def test_two_targets_side_by_side_and_the_markdown_report(
    corpus: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    factory: type[Target] = WithoutSack
    monkeypatch.setitem(TARGETS, "nosack", factory)
    expect(corpus, "tcp/wrong.pkt xfail policy wants a reset\n")
    expect(corpus, "tcp/ok.pkt xfail linux no SACK here\n", target="nosack")
    report = tmp_path / "report.md"
    closed = WithoutSack.closed
    argv = [str(corpus), "--target", "pystack,nosack", "--report", str(report)]
    status, out, _ = script(argv, capsys)
    assert WithoutSack.closed == closed + 1
    ok, wrong, ping = (
        str(corpus / name) for name in ("tcp/ok.pkt", "tcp/wrong.pkt", "icmp/ping.pkt")
    )
    lines = out.splitlines()
    assert f"PASS {ping} [pystack]" in lines and f"PASS {ping} [nosack]" in lines
    assert f"XFAIL {ok} [nosack]: linux: no SACK here" in lines
    assert f"FAIL {wrong} [nosack]: line 4: pystack's packet differs from the line: " in out
    assert status == 1  # wrong.pkt is listed for pystack only
    text = report.read_text()
    assert f"| `{ok}` | PASS | XFAIL (linux) |" in text
    assert f"| `{ping}` | PASS | PASS |" in text
    assert f"| `{wrong}` | XFAIL (policy) | FAIL |" in text
    assert "### `" + ok + "`" in text and "### `" + ping + "`" not in text
    assert "- **nosack**: XFAIL: line 4: pystack's packet differs from the line: options:" in text
    assert "(expected to fail, linux: no SACK here)" in text


def test_the_installed_command_has_no_traceback_for_a_bad_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.pkt"
    bad.write_text("0 listen eighty\n")
    result = subprocess.run(
        [sys.executable, "-m", "pystack", "script", str(bad)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert result.returncode == 2
    assert result.stderr == f"pystack: {bad}:1: port: expected a number, got 'eighty'\n"


class RealTime:
    """A target that says it runs on real time (as the kernel does), so --max-seconds applies."""

    name = "realtime"
    real_time = True

    def run(self, script: ScriptFile) -> ScriptResult:
        return ScriptRunner(script.lines, settings=script.settings).run()

    def close(self) -> None:
        pass


def test_max_seconds_skips_long_scripts_on_a_real_time_target_only(
    corpus: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    factory: type[Target] = RealTime
    monkeypatch.setitem(TARGETS, "realtime", factory)
    long_ping = PING + "+500 < icmp echo id 1 seq 2 (8)\n+0 > icmp echo-reply id 1 seq 2 (8)\n"
    (corpus / "tcp" / "long.pkt").write_text(long_ping)
    (corpus / "tcp" / "wrong.pkt").unlink()
    report = tmp_path / "report.md"
    argv = [str(corpus), "--target", "pystack,realtime", "--max-seconds", "100", "--jobs", "2"]
    status, out, _ = script([*argv, "--report", str(report)], capsys)
    long, ok, ping = (
        str(corpus / name) for name in ("tcp/long.pkt", "tcp/ok.pkt", "icmp/ping.pkt")
    )
    assert out.splitlines() == [
        f"PASS {ping} [pystack]",
        f"PASS {ping} [realtime]",
        f"PASS {long} [pystack]",  # virtual time: run whatever its length
        f"SKIP {long} [realtime]: not run: its written time, 500 s, is longer than "
        "--max-seconds 100",
        f"PASS {ok} [pystack]",
        f"PASS {ok} [realtime]",
        "6 runs: 5 PASS, 1 SKIP",
    ]
    assert status == 0
    assert f"| `{long}` | PASS | SKIP |" in report.read_text()
    status, _, err = script([str(corpus), "--max-seconds", "soon"], capsys)
    assert status == 2 and "--max-seconds" in err
