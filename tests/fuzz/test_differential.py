"""``pystack fuzz --differential`` (pystack/fuzz/differential.py): one case, two stacks, compared.

The tests at the top need no kernel: the generator's promises (reproducible, dependencies
respected, unacceptable segments spaced), the normalization, the expected-difference list and
the comparison. The kernel tests (``kernel`` fixture: skipped without root, a failure under
PYSTACK_REQUIRE_KERNEL=1) run a short campaign that must find nothing unexplained, and a
campaign against a planted pystack double (RFC 793's RST handling, without RFC 5961's challenge
ACK) that must report the difference and save a script whose replay shows it again.
"""

from __future__ import annotations

import itertools
import os
import random
import re
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from pystack.fuzz import differential
from pystack.fuzz.differential import (
    REPLY_INTERVAL,
    UNACCEPTABLE,
    DifferentialSettings,
    ExpectedListError,
    Outcome,
    collapse_acks,
    compare,
    generate_case,
    load_expected,
    normalize_packet,
    observe_pystack,
    replay_finding,
    run_differential,
)
from pystack.netns import NAME_PREFIX, list_namespaces
from pystack.script.notation import parse_script
from pystack.tcp.input import ConnectionInput
from pystack.wire.tcp import TCPSegment

CLEAN_SEED, CLEAN_CASES = 11, 6  # a short campaign (about 10 s)
PLANTED_SEED = 5  # its first case has an in-window RST that is not at RCV.NXT (asserted below)


def _times(lines: Sequence[str]) -> list[tuple[float, str]]:
    now, timed = 0.0, []
    for line in parse_script("\n".join(lines)):
        if line.time is not None and line.time.start is not None:
            now = (now if line.time.relative else 0.0) + line.time.start
        timed.append((now, line.text))
    return timed


# no kernel needed -------------------------------------------------------------------------------
def test_the_same_seed_gives_the_same_cases_and_every_case_parses() -> None:
    first = [generate_case(random.Random(3)) for _ in range(20)]
    again = [generate_case(random.Random(3)) for _ in range(20)]
    assert first == again
    for lines in first:
        assert lines[0] == "ignore outbound"
        parse_script("\n".join(lines))  # raises on a line the notation does not have


def test_every_write_is_acked_by_the_next_peer_line_before_any_rto() -> None:
    for seed in range(40):
        lines = generate_case(random.Random(seed))
        for index, line in enumerate(lines):
            if " write " in f" {line} ":
                following = lines[index + 1]
                assert " < . " in f" {following}", (seed, line, following)
                assert float(following.split()[0]) <= 0.2  # below Linux's 200 ms minimum RTO


def test_unacceptable_segments_are_spaced_by_the_reply_interval() -> None:
    # Both stacks answer such segments at most once per 500 ms; closer ones would differ in
    # how many answers come, not in behaviour (docs/fuzzing.md).
    patterns = {
        "rst": re.compile(r" < R \d"),
        "syn": re.compile(r" < S \d"),
        "beyond": re.compile(r" < P\. (10[0-9]{5}|16[0-9]{6})"),
    }
    checked = 0
    for seed in range(60):
        timed = _times(generate_case(random.Random(seed)))
        marks = [
            when
            for when, text in timed
            if any(p.search(f" {text}") for p in patterns.values()) and "S 0:0(0)" not in text
        ]
        for earlier, later in itertools.pairwise(marks):
            assert later - earlier >= REPLY_INTERVAL - 1e-9, (seed, marks)
            checked += 1
    assert checked > 10
    assert "rst_in_window" in UNACCEPTABLE


def test_normalization_leaves_out_what_two_correct_stacks_may_choose() -> None:
    pystack = "> S. 0:0(0) ack 1 win 65535 <mss 1460,sackOK,TS val 3589583794 ecr 100,nop,wscale 3>"
    linux = "> S. 0:0(0) ack 1 win 65160 <mss 1460,nop,nop,sackOK,TS val 0 ecr 100,wscale 10>"
    assert normalize_packet(pystack) == normalize_packet(linux)
    assert normalize_packet(pystack) == "S. 0:0(0) ack 1 win + <TS,mss 1460,sackOK,wscale>"
    assert normalize_packet("> . 1:1(0) ack 5 win 0") == ". 1:1(0) ack 5 win 0"  # closed stays
    assert normalize_packet("> . 1:1(0) ack 5 win 1 <sack 3:4>") != normalize_packet(
        "> . 1:1(0) ack 5 win 1 <sack 3:5>"
    )


def test_growing_acks_collapse_but_duplicates_stay() -> None:
    quick = [". 1:1(0) ack 11 win +", ". 1:1(0) ack 21 win +", "P. 1:11(10) ack 21 win +"]
    delayed = [". 1:1(0) ack 21 win +", "P. 1:11(10) ack 21 win +"]
    assert collapse_acks(quick) == collapse_acks(delayed)
    challenge = [". 1:1(0) ack 21 win +", ". 1:1(0) ack 21 win +"]
    assert collapse_acks(challenge) == tuple(challenge)
    later = [*challenge, ". 1:1(0) ack 31 win +"]  # a later ACK does not swallow the challenge
    assert collapse_acks(later) == tuple(later)


def test_the_repository_list_parses_and_every_entry_has_a_reason() -> None:
    entries = load_expected()
    assert len(entries) >= 5
    for entry in entries:
        assert entry.kind in ("RFC", "Linux choice", "pystack choice", "harness", "known bug"), (
            entry.name
        )
        assert len(entry.reason) > 40, entry.name
        assert (entry.match is not None) != (entry.pystack is not None), entry.name


def test_a_malformed_list_is_one_line_naming_its_line(tmp_path: Path) -> None:
    bad = tmp_path / "list.txt"
    bad.write_text("[x]\nstream: packets\nside: nobody\nmatch: a\nkind: RFC\nreason: r\n")
    with pytest.raises(ExpectedListError, match=r"list.txt:\d+: \[x\]: side must be"):
        load_expected(bad)
    bad.write_text("stream: packets\n")
    with pytest.raises(ExpectedListError, match=r"list\.txt:1: expected"):
        load_expected(bad)


def _outcome(*packets: str, state: str = "CLOSED") -> Outcome:
    return Outcome(tuple(packets), (), state)


def test_compare_explains_with_rewrites_and_first_divergences_only_where_they_apply(
    tmp_path: Path,
) -> None:
    listing = tmp_path / "list.txt"
    listing.write_text(
        "[rst-form]\nstream: packets\nside: pystack\nmatch: ^R\\. (\\d+:\\d+\\(0\\)).*$\n"
        "replace: R \\1\nkind: RFC\nreason: the form of a RST\n\n"
        "[after-close]\nstream: packets\npystack: ^\\. \nkernel: ^\\(nothing\\)$\n"
        "case: close\nkind: Linux choice\nreason: an example\n"
    )
    entries = load_expected(listing)
    same = compare(_outcome("R 2:2(0)"), _outcome("R 2:2(0)"), entries)
    assert same.same and not same.unexplained
    rewritten = compare(_outcome("R. 2:2(0) ack 1 win 0"), _outcome("R 2:2(0)"), entries)
    assert rewritten.explained_by == ("rst-form",) and not rewritten.unexplained
    ours, theirs = _outcome(". 2:2(0) ack 1 win +"), _outcome()
    assert compare(ours, theirs, entries, ["0 close"]).explained_by == ("after-close",)
    left = compare(ours, theirs, entries, ["0 shutdown"])
    assert left.differences == ("packets #1: pystack '. 2:2(0) ack 1 win +', kernel '(nothing)'",)


def test_two_differences_that_line_up_are_compared_again_per_answered_line(
    tmp_path: Path,
) -> None:
    # Linux ACKs the line-5 RST (pystack is silent), pystack challenges the line-6 SYN (Linux
    # resets): as sequences the two ACKs coincide and the first difference is the RST, which no
    # entry describes; answer by answer, line 5 differs first, as the entry says.
    listing = tmp_path / "list.txt"
    listing.write_text(
        "[acks-outside-rst]\nstream: packets\npystack: .\nkernel: ^\\. \ncase: close\n"
        "kind: Linux choice\nreason: the mini socket ACKs a RST outside the window\n"
    )
    entries = load_expected(listing)
    ack, reset = ". 2:2(0) ack 1 win +", "R. 0abs ack 2 win 0"
    ours = Outcome(("S", ack), (), "FIN-WAIT-2", answering=(1, 6))
    theirs = Outcome(("S", ack, reset), (), "CLOSED", answering=(1, 5, 6))
    explained = compare(ours, theirs, entries, ["0 close"])
    assert explained.explained_by == ("acks-outside-rst (per line)",)
    assert compare(ours, theirs, entries, ["0 shutdown"]).differences == (
        "packets #3: pystack '(nothing)', kernel 'R. 0abs ack 2 win 0'",
        "state #1: pystack 'FIN-WAIT-2', kernel 'CLOSED'",
    )
    unnumbered = Outcome(("S", ack), (), "FIN-WAIT-2")  # no line numbers: sequences only
    assert compare(unnumbered, theirs, entries, ["0 close"]).unexplained


def test_a_case_observed_on_pystack_is_deterministic() -> None:
    lines = generate_case(random.Random(4))
    first, again = observe_pystack(lines), observe_pystack(lines)
    assert first == again
    assert first.packets and first.packets[0].startswith(("S", "S."))


# the kernel -------------------------------------------------------------------------------------
def _my_namespaces() -> list[str]:
    mine = f"{NAME_PREFIX}{os.getpid()}-"
    return [name for name in list_namespaces() if name.startswith(mine)]


def test_a_short_campaign_finds_no_unexplained_difference(kernel: None, tmp_path: Path) -> None:
    settings = DifferentialSettings(
        seed=CLEAN_SEED, seconds=60.0, cases=CLEAN_CASES, out=str(tmp_path)
    )
    result = run_differential(settings)
    assert result.cases == CLEAN_CASES
    assert not result.findings, result.summary()
    assert result.same + result.explained_cases == CLEAN_CASES
    assert not list(tmp_path.iterdir())
    assert not _my_namespaces()


@pytest.fixture
def rfc793_resets(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The planted bug: every in-window RST is taken as exact (no RFC 5961 challenge ACK)."""
    original = ConnectionInput._process_reset

    def take_any(self: ConnectionInput, segment: TCPSegment, now: float) -> None:
        original(self, segment._replace(seq=self.rcv_nxt), now)

    monkeypatch.setattr(ConnectionInput, "_process_reset", take_any)
    yield


def test_a_planted_difference_is_reported_and_its_saved_script_shows_it_again(
    kernel: None, tmp_path: Path, rfc793_resets: None
) -> None:
    case = generate_case(random.Random(PLANTED_SEED))
    assert "+0.5 < R 1012:1012(0) win 0" in case  # in the window, RCV.NXT is 1011
    settings = DifferentialSettings(seed=PLANTED_SEED, seconds=60.0, cases=1, out=str(tmp_path))
    result = run_differential(settings)
    assert len(result.findings) == 1, result.summary()
    differences = result.findings[0].comparison.differences
    assert any("pystack '(nothing)', kernel '. 2:2(0) ack 1011" in line for line in differences)
    assert any(line.startswith("state") and "CLOSED" in line for line in differences)
    (saved,) = tmp_path.iterdir()
    text = saved.read_text()
    assert "# unexplained differences:" in text and "# kernel sent" in text
    report, differs = replay_finding(saved)
    assert differs, report
    assert "ack 1011" in report


def test_the_real_pystack_challenges_the_same_rst(kernel: None) -> None:
    case = generate_case(random.Random(PLANTED_SEED))
    comparison = compare(
        observe_pystack(case), differential.observe_kernel(case), load_expected(), case
    )
    assert not comparison.unexplained, comparison.differences


def test_without_root_both_kernel_campaigns_say_so_in_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from pystack.cli import main
    from pystack.fuzz import command

    monkeypatch.setattr(command, "require_root", lambda: "network namespaces need root")
    for argv in (["fuzz", "--differential"], ["fuzz", "--target", "kernel"]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err == "fuzz: network namespaces need root\n"
