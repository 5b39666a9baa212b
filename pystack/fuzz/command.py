"""``pystack fuzz --self``: the command line of a self-fuzzing campaign (docs/fuzzing.md).

Exit status: 0 when the campaign found nothing, 1 when it found something (each finding is
listed, and saved with ``--out``), 2 for bad options, 130 after Ctrl-C (the summary of what ran
is printed first). The progress line (cases/s, transitions reached, findings) is drawn only
when standard output is a terminal; otherwise only the summary is printed.
Entry points: ``add_arguments``, ``run``.
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

from pystack.fuzz.campaign import CampaignResult, CampaignSettings, Progress, run_campaign

DESCRIPTION = """\
Fuzz pystack itself: a pystack host on virtual time (no root, no network) receives generated
sequences of socket calls and packets from a fuzzing peer (handshakes, data and ACKs near the
window edges, RSTs, SYNs, flag soup, option soup, bad checksums and lengths, tiny and
overlapping IPv4 fragments, replayed and reordered packets, ICMP errors quoting live
connections, UDP garbage) while a reference peer runs request/response exchanges and a transfer
through it. After every input the invariants are checked (no exception escapes, sequence-space
sanity, every buffer and table within its bound, every byte read and echoed exact). Cases that
reach a new (state, cause, next state) transition are kept and mutated further.

A finding is minimized into a .pkt script that 'pystack script' (or the script runner) replays,
and a .pcap (--out DIR). The same --seed gives the same cases. Exit status: 0 nothing found,
1 findings, 2 bad options, 130 after Ctrl-C (with the summary of what ran). See docs/fuzzing.md.
"""
MAX_SECONDS = 7 * 24 * 3600.0
MAX_JOBS = 64


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--self",
        dest="self_fuzz",
        action="store_true",
        help="fuzz pystack itself: a host on virtual time, a fuzzing peer, a reference peer",
    )
    parser.add_argument(
        "--seconds", type=float, default=60.0, metavar="N",
        help="wall-clock budget (default 60)",
    )  # fmt: skip
    parser.add_argument(
        "--seed", type=int, default=1, metavar="S",
        help="the campaign's seed: the same seed gives the same cases (default 1)",
    )  # fmt: skip
    parser.add_argument(
        "--jobs", type=int, default=1, metavar="K",
        help="worker processes, each with a seed derived from S (default 1)",
    )  # fmt: skip
    parser.add_argument(
        "--cases", type=int, metavar="N",
        help="case budget (the campaign ends at whichever budget comes first)",
    )  # fmt: skip
    parser.add_argument(
        "--packets", type=int, metavar="N",
        help="budget of packets injected (checked between cases; a case adds a few hundred)",
    )  # fmt: skip
    parser.add_argument(
        "--out", metavar="DIR",
        help="write each finding here: a minimized .pkt reproducer and a .pcap",
    )  # fmt: skip
    parser.add_argument(
        "--coverage", metavar="FILE",
        help="write the (state, cause, next state) triples reached, one per line",
    )  # fmt: skip


def check(arguments: argparse.Namespace) -> str | None:
    """The first problem with the options, as one line; None when they are fine."""
    if not arguments.self_fuzz:
        return "fuzz: say what to fuzz: --self (the only campaign so far)"
    if not 0 < arguments.seconds <= MAX_SECONDS:
        return f"fuzz: --seconds must be above 0 and at most {MAX_SECONDS:.0f}"
    if not 1 <= arguments.jobs <= MAX_JOBS:
        return f"fuzz: --jobs must be 1 to {MAX_JOBS}"
    if arguments.cases is not None and arguments.cases < 1:
        return "fuzz: --cases must be at least 1"
    if arguments.packets is not None and arguments.packets < 1:
        return "fuzz: --packets must be at least 1"
    if not 0 <= arguments.seed < 1 << 63:
        return "fuzz: --seed must be 0 or more (below 2**63)"
    for name in ("out", "coverage"):
        value = getattr(arguments, name)
        if value is not None:
            target = Path(value)
            parent = target if name == "out" else target.parent
            if name == "out" and target.exists() and not target.is_dir():
                return f"fuzz: --out {value}: not a directory"
            if name == "coverage" and not (parent.is_dir() or parent == Path("")):
                return f"fuzz: --coverage {value}: no directory {parent}"
    return None


def run(arguments: argparse.Namespace) -> int:
    problem = check(arguments)
    if problem is not None:
        print(problem, file=sys.stderr)
        return 2
    settings = CampaignSettings(
        seed=arguments.seed,
        seconds=arguments.seconds,
        cases=arguments.cases,
        packets=arguments.packets,
        jobs=arguments.jobs,
        out=arguments.out,
    )
    terminal = sys.stdout.isatty()

    def show(progress: Progress) -> None:
        print(f"\r{progress.line()}\033[K", end="", flush=True)

    previous = signal.getsignal(signal.SIGINT)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # Ctrl-C: KeyboardInterrupt
    try:
        result = run_campaign(settings, show if terminal else None)
    finally:
        signal.signal(signal.SIGINT, previous)
    if terminal:
        print()
    print(result.summary())
    if arguments.coverage is not None:
        write_coverage(result, arguments.coverage)
    if result.interrupted:
        return 128 + signal.SIGINT
    return 1 if result.findings else 0


def write_coverage(result: CampaignResult, path: str) -> None:
    """The triples, sorted, one per line: ``STATE<TAB>cause<TAB>NEXT STATE``."""
    lines = [f"{old}\t{cause}\t{new}" for old, cause, new in sorted(result.coverage)]
    Path(path).write_text("\n".join(lines) + "\n")
