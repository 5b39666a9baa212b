"""``pystack fuzz``: the command line of the fuzzing campaigns (docs/fuzzing.md).

Three campaigns: ``--self`` (pystack on virtual time), ``--differential`` (each generated case on
pystack and on Linux in a namespace, compared; ``differential.py``) and ``--target kernel`` (a
service on the kernel side of a namespace perturbed through mutation hooks; ``service.py``).
Exit status: 0 when the campaign found nothing, 1 when it found something (each finding is
listed, and saved with ``--out``), 2 for bad options or a kernel campaign that cannot run here
(not root, no TUN: one line), 130 after Ctrl-C or SIGTERM (the summary of what ran is printed
first; a namespace the campaign made is removed). The progress line (cases/s, transitions reached, findings) is drawn only
when standard output is a terminal; otherwise only the summary is printed.
Entry points: ``add_arguments``, ``run``.
"""

from __future__ import annotations

import argparse
import signal
import sys
from collections.abc import Callable
from pathlib import Path

from pystack.fuzz.campaign import CampaignResult, CampaignSettings, Progress, run_campaign
from pystack.fuzz.differential import (
    DifferentialProgress,
    DifferentialSettings,
    ExpectedListError,
    replay_finding,
    run_differential,
)
from pystack.fuzz.service import HOOKS, ServiceCampaign, ServiceProgress, ServiceSettings
from pystack.netns import require_root
from pystack.script.kernel import KernelTargetError
from pystack.script.kernel_service import SERVICES

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

--differential (root): each generated case (socket calls and peer segments in relative numbers)
runs on pystack (virtual time) and on Linux (a fresh namespace, real time); what each stack sent
and each call's result are normalized (ISNs, ports, TS values, window sizes, option order,
delayed vs quick ACKs) and compared; a difference that pystack/fuzz/expected_differences.txt
does not explain is reported and saved as a .pkt with both outcomes in comments (--out);
--replay FILE.pkt runs a saved case on both stacks again.

--target kernel (root): pystack's peer opens connections to a service on the kernel side of a
namespace (the built-in --serve echo|discard server, or --command CMD started inside it) and
perturbs them through mutation hooks (--hooks); after each case the service must still serve a
fresh connection and the kernel's alarm counters must not move. Findings and interesting cases
are saved as .pkt scripts for 'pystack script --target kernel'.
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
        "--differential", action="store_true",
        help="run each generated case on pystack and on Linux (root) and compare what they did",
    )  # fmt: skip
    parser.add_argument(
        "--target", choices=("kernel",),
        help="fuzz a service on the kernel side of a namespace (root); see --port, --serve",
    )  # fmt: skip
    parser.add_argument(
        "--port", type=int, default=7, metavar="P",
        help="--target kernel: the service's port (default 7)",
    )  # fmt: skip
    parser.add_argument(
        "--serve", choices=SERVICES, default="echo",
        help="--target kernel: the built-in service on --port (default echo)",
    )  # fmt: skip
    parser.add_argument(
        "--command", dest="service_command", metavar="CMD",
        help="--target kernel: start CMD inside the namespace instead of the built-in service",
    )  # fmt: skip
    parser.add_argument(
        "--hooks", metavar="LIST",
        help=f"--target kernel: mutation hooks, comma-separated (default all: {','.join(HOOKS)})",
    )  # fmt: skip
    parser.add_argument(
        "--replay", metavar="FILE",
        help="--differential: run a saved case on both stacks again and compare",
    )  # fmt: skip
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
    modes = [arguments.self_fuzz, arguments.differential, arguments.target is not None]
    if sum(modes) != 1:
        return "fuzz: say what to fuzz: --self, --differential or --target kernel (one of them)"
    if not 0 < arguments.port < 65536:
        return "fuzz: --port must be 1 to 65535"
    if arguments.hooks is not None:
        unknown = [name for name in arguments.hooks.split(",") if name not in HOOKS]
        if unknown or not arguments.hooks:
            return f"fuzz: --hooks: unknown {', '.join(unknown)} (known: {', '.join(HOOKS)})"
    if arguments.replay is not None and not arguments.differential:
        return "fuzz: --replay goes with --differential"
    if arguments.replay is not None and not Path(arguments.replay).is_file():
        return f"fuzz: --replay {arguments.replay}: no such file"
    if arguments.jobs != 1 and not arguments.self_fuzz:
        return "fuzz: --jobs is for --self (the kernel campaigns run one case at a time)"
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
    if problem is None and not arguments.self_fuzz:
        problem = require_root()
        problem = None if problem is None else f"fuzz: {problem}"
    if problem is not None:
        print(problem, file=sys.stderr)
        return 2
    if arguments.differential:
        return _with_signals(lambda: run_differential_command(arguments))
    if arguments.target == "kernel":
        return _with_signals(lambda: run_kernel_command(arguments))
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


def _with_signals(body: Callable[[], int]) -> int:
    """Run ``body`` with Ctrl-C and SIGTERM as ``KeyboardInterrupt`` (namespaces are removed
    by ``finally`` blocks); a kernel campaign that cannot run here is one line, exit 2."""

    def terminate(number: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, terminate)
    try:
        return body()
    except (KernelTargetError, ExpectedListError) as error:
        print(f"fuzz: {error}", file=sys.stderr)
        return 2
    finally:
        signal.signal(signal.SIGINT, previous[0])
        signal.signal(signal.SIGTERM, previous[1])


def _progress_printer(
    terminal: bool,
) -> Callable[[DifferentialProgress | ServiceProgress], None] | None:
    def show(progress: DifferentialProgress | ServiceProgress) -> None:
        print(f"\r{progress.line()}\033[K", end="", flush=True)

    return show if terminal else None


def run_differential_command(arguments: argparse.Namespace) -> int:
    if arguments.replay is not None:
        report, differs = replay_finding(Path(arguments.replay))
        print(report)
        return 1 if differs else 0
    settings = DifferentialSettings(
        seed=arguments.seed,
        seconds=arguments.seconds,
        cases=arguments.cases,
        packets=arguments.packets,
        out=arguments.out,
    )
    terminal = sys.stdout.isatty()
    result = run_differential(settings, _progress_printer(terminal))
    if terminal:
        print()
    print(result.summary())
    if result.interrupted:
        return 128 + signal.SIGINT
    return 1 if result.findings else 0


def run_kernel_command(arguments: argparse.Namespace) -> int:
    command = arguments.service_command
    settings = ServiceSettings(
        port=arguments.port,
        seconds=arguments.seconds,
        seed=arguments.seed,
        cases=arguments.cases,
        packets=arguments.packets,
        service="command" if command is not None else arguments.serve,
        command=command,
        out=arguments.out,
        hooks=tuple(arguments.hooks.split(",")) if arguments.hooks else tuple(HOOKS),
    )
    terminal = sys.stdout.isatty()
    result = ServiceCampaign(settings).run(_progress_printer(terminal))
    if terminal:
        print()
    print(result.summary())
    if result.interrupted:
        return 128 + signal.SIGINT
    return 1 if result.findings else 0
