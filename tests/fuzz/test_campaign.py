"""The self-fuzzing campaign: the fixed-seed CI campaign finds nothing, cases are reproducible
from their bytes and the campaign from its seed, workers merge, the command's edges, the
atheris entry point on random bytes, and the packet mutations keep their promises."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from pystack.cli import main
from pystack.fuzz import FindingError, one_input, run_case
from pystack.fuzz.campaign import CampaignSettings, run_campaign, run_worker
from pystack.fuzz.choices import Choices, mutate_bytes
from pystack.fuzz.packets import fragments, mutate, option_soup, tcp_bytes
from pystack.wire.addresses import ip_from_str
from pystack.wire.ipv4 import PROTO_TCP, IPv4Packet
from pystack.wire.tcp import ACK, TCPSegment

CI_CASES = 150  # the "60-second campaign": a case budget on virtual time instead


def test_the_fixed_seed_ci_campaign_finds_nothing() -> None:
    """What the issue asks of CI: a fixed-seed self-fuzz campaign that finds nothing. It runs
    on virtual time with a case budget (the wall-clock bound is only a backstop)."""
    result = run_campaign(CampaignSettings(seed=1, seconds=300.0, cases=CI_CASES))
    assert result.findings == [], result.summary()
    assert result.cases == CI_CASES
    assert len(result.coverage) >= 20  # handshakes, closes, resets, timeouts all reached
    assert result.packets > 1000


def test_a_case_is_a_function_of_its_bytes() -> None:
    data = random.Random(5).randbytes(1500)
    first, second = run_case(data), run_case(data)
    assert first.lines == second.lines
    assert first.coverage == second.coverage
    assert len(first.lines) > 20


def test_the_same_seed_gives_the_same_campaign() -> None:
    settings = CampaignSettings(seed=11, seconds=300.0, cases=12)
    one, two = run_worker(settings), run_worker(settings)
    assert (one.cases, one.lines, one.packets) == (two.cases, two.lines, two.packets)
    assert one.coverage == two.coverage
    other = run_worker(CampaignSettings(seed=12, seconds=300.0, cases=12))
    assert (other.lines, other.packets) != (one.lines, one.packets)


def test_workers_share_the_case_budget_and_merge() -> None:
    result = run_campaign(CampaignSettings(seed=3, seconds=300.0, cases=6, jobs=2))
    assert result.cases == 6
    assert result.coverage


def test_the_packet_budget_ends_the_campaign() -> None:
    result = run_worker(CampaignSettings(seed=1, seconds=300.0, packets=100))
    assert result.packets >= 100
    assert result.packets - 100 < 2000  # it stops at the first case boundary past the budget


def test_a_stop_request_ends_the_campaign_between_cases() -> None:
    calls = []

    def stop() -> bool:
        calls.append(1)
        return len(calls) > 3

    result = run_worker(CampaignSettings(seed=1, seconds=300.0), stop=stop)
    assert result.cases == 3


def test_one_input_takes_any_bytes() -> None:
    """The atheris entry point on random bytes (atheris itself is not installed): it returns or
    raises FindingError, never anything else, and decodes the same bytes the same way."""
    rng = random.Random(2024)
    inputs = [b"", b"\0", b"\xff" * 64] + [rng.randbytes(rng.randint(1, 1200)) for _ in range(25)]
    for data in inputs:
        try:
            one_input(data)
        except FindingError as error:  # pragma: no cover - would be a pystack bug to report
            pytest.fail(f"one_input found something on {data.hex()}: {error}")


def test_choices_past_the_end_are_zero_and_mark_the_end() -> None:
    choices = Choices(b"\x05")
    assert choices.below(10) == 5 and choices.exhausted  # its one byte is used
    assert choices.below(10) == 0
    assert choices.between(3, 9) == 3 and choices.raw(3) == b"\0\0\0"
    assert len(mutate_bytes(b"x" * 10_000, random.Random(1))) <= 8192


A, B = ip_from_str("10.0.0.1"), ip_from_str("10.0.0.2")


def _packet(payload: bytes = bytes(range(200))) -> bytes:
    segment = TCPSegment(9000, 8080, 1, 1, ACK, 65535, payload)
    return IPv4Packet(A, B, PROTO_TCP, segment.build(A, B)).build()


@pytest.mark.parametrize("overlapping", [False, True])
def test_fragments_reassemble_to_the_original(overlapping: bool) -> None:
    packet = _packet()
    original = IPv4Packet.parse(packet).payload
    for seed in range(30):
        pieces = fragments(packet, Choices(random.Random(seed).randbytes(64)), overlapping)
        data = bytearray(len(original))
        covered = set()
        for piece in pieces:
            parsed = IPv4Packet.parse(piece)
            start = parsed.fragment_offset
            data[start : start + len(parsed.payload)] = parsed.payload
            covered.update(range(start, start + len(parsed.payload)))
        assert covered == set(range(len(original)))
        if not overlapping:
            assert bytes(data) == original


def test_mutations_return_packets_and_option_soup_fits() -> None:
    for seed in range(200):
        choices = Choices(random.Random(seed).randbytes(128))
        out = mutate(_packet(), choices)
        assert out and all(0 < len(p) <= 65535 for p in out)
        soup = option_soup(choices)
        assert len(soup) <= 40
        segment = TCPSegment(1, 2, 3, 4, ACK, 5, b"data")
        built = tcp_bytes(segment, A, B, soup)
        assert (built[12] >> 4) * 4 == 20 + len(soup) + (-len(soup) % 4)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["fuzz"], "fuzz: say what to fuzz: --self"),
        (["fuzz", "--self", "--seconds", "0"], "--seconds must be above 0"),
        (["fuzz", "--self", "--seconds", "nan"], "--seconds must be above 0"),
        (["fuzz", "--self", "--jobs", "0"], "--jobs must be 1 to 64"),
        (["fuzz", "--self", "--cases", "0"], "--cases must be at least 1"),
        (["fuzz", "--self", "--packets", "0"], "--packets must be at least 1"),
        (["fuzz", "--self", "--seed", "-1"], "--seed must be 0 or more"),
        (["fuzz", "--self", "--coverage", "/nonexistent/dir/x"], "no directory /nonexistent"),
        (["fuzz", "--self", "--out", "/etc/hostname"], "not a directory"),
    ],
)
def test_bad_options_are_one_line_and_status_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_the_command_prints_a_summary_and_writes_coverage(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    coverage = tmp_path / "coverage.tsv"
    argv = ["fuzz", "--self", "--cases", "8", "--seed", "4", "--coverage", str(coverage)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "fuzz --self seed 4: 8 cases" in out and "findings: 0" in out
    assert "\r" not in out  # not a terminal: no progress line
    triples = coverage.read_text().splitlines()
    assert triples and all(line.count("\t") == 2 for line in triples)
    assert f"transition coverage: {len(triples)} " in out


def test_the_atheris_tool_says_when_atheris_is_missing_and_replays_a_saved_input(
    tmp_path: Path,
) -> None:
    import subprocess
    import sys

    tool = Path(__file__).resolve().parents[2] / "tools" / "atheris_fuzz.py"
    try:
        import atheris  # type: ignore[import-not-found]  # noqa: F401
    except ImportError:
        run = subprocess.run([sys.executable, str(tool)], capture_output=True, text=True)
        assert run.returncode == 2 and "atheris is not installed" in run.stderr
    saved = tmp_path / "input.bin"
    saved.write_bytes(random.Random(9).randbytes(700))
    run = subprocess.run([sys.executable, str(tool), str(saved)], capture_output=True, text=True)
    assert run.returncode == 0 and "no finding" in run.stderr


def test_ctrl_c_ends_the_campaign_with_a_summary_of_what_ran(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A KeyboardInterrupt during the fourth case: three cases ran, the summary says so, and
    the command exits 130 after printing it."""
    import pystack.fuzz.campaign as campaign

    calls = []

    def interrupted_case(data: bytes, **options: object) -> object:
        calls.append(1)
        if len(calls) == 4:
            raise KeyboardInterrupt
        return run_case(data, **options)  # type: ignore[arg-type]

    monkeypatch.setattr(campaign, "run_case", interrupted_case)
    result = run_worker(CampaignSettings(seed=1, seconds=300.0))
    assert result.interrupted and result.cases == 3
    assert "(interrupted)" in result.summary()
    calls.clear()
    assert main(["fuzz", "--self", "--seed", "1"]) == 130
    assert "fuzz --self seed 1: 3 cases" in capsys.readouterr().out


def test_progress_reports_cases_coverage_and_findings() -> None:
    seen = []
    run_worker(CampaignSettings(seed=2, seconds=300.0, cases=3), progress=seen.append)
    last = seen[-1]
    assert last.cases == 3 and last.coverage > 0 and last.findings == 0
    assert last.line().startswith("3 cases (") and "transitions" in last.line()


def test_on_a_terminal_the_command_draws_a_progress_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import sys

    monkeypatch.setattr(sys.stdout, "isatty", lambda: True)
    assert main(["fuzz", "--self", "--cases", "3"]) == 0
    out = capsys.readouterr().out
    assert "\r3 cases (" in out and "transitions" in out and "findings, " in out
    assert out.splitlines()[-3].startswith("fuzz --self seed 1: 3 cases")


def test_a_fuzzer_bug_is_a_finding_not_a_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    from pystack.fuzz.generator import FuzzPeer

    def broken(self: FuzzPeer) -> None:
        raise ValueError("generator bug")

    monkeypatch.setattr(FuzzPeer, "act", broken)
    result = run_case(b"\x01" * 100)
    assert result.finding is not None and result.finding.kind == "fuzzer"
    assert "ValueError: generator bug" in result.finding.message
