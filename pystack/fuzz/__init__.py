"""Fuzzing pystack: generated cases against a pystack host on virtual time (docs/fuzzing.md).

``choices.py`` turns bytes into decisions, ``packets.py`` builds and damages packets,
``world.py`` is the network a case runs in (the host fed through the script runner, the
reference peer, the invariants, the coverage), ``generator.py`` the fuzzing peer that makes a
case's calls and packets, ``reproducer.py`` minimizes findings into scripts and captures,
``campaign.py`` runs many cases guided by state-transition coverage (``pystack fuzz --self``).
``one_input`` is the entry point for coverage-guided fuzzers (tools/atheris_fuzz.py).
Against Linux (root, a namespace; imported by their command, not here, so ``--self`` needs no
kernel code): ``differential.py`` runs each generated case on pystack and on the kernel and
compares what they did against ``expected_differences.txt`` (``pystack fuzz --differential``);
``service.py`` perturbs connections to a kernel-side service through mutation hooks
(``pystack fuzz --target kernel``).
Entry points: ``one_input``, ``FindingError``, ``run_case``, ``run_campaign``,
``CampaignSettings``.
"""

from __future__ import annotations

from pystack.fuzz.campaign import CampaignResult, CampaignSettings, run_campaign
from pystack.fuzz.generator import CaseResult, run_case
from pystack.fuzz.world import Finding

ONE_INPUT_ACTIONS = 32  # actions per case for one_input: short cases, many of them


class FindingError(AssertionError):
    """``one_input`` found something: the finding, and its case's lines as a script."""

    def __init__(self, finding: Finding) -> None:
        super().__init__(f"{finding.kind}: {finding.message}")
        self.finding = finding


def one_input(data: bytes) -> None:
    """Decode ``data`` into a case (deterministically), run it, raise ``FindingError`` if it
    breaks an invariant. Any byte string is a valid case; nothing else escapes."""
    result = run_case(bytes(data), max_actions=ONE_INPUT_ACTIONS)
    if result.finding is not None:
        raise FindingError(result.finding)


__all__ = [
    "CampaignResult",
    "CampaignSettings",
    "CaseResult",
    "Finding",
    "FindingError",
    "one_input",
    "run_campaign",
    "run_case",
]
