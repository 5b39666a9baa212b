"""The ``pystack`` command: ``up`` (a host on a TUN/TAP device), ``demo`` (two stacks in memory),
``run`` (a MicroPython script on pystack), ``show`` (a recording or a capture as a ladder
diagram) and ``script`` (packet scripts run against pystack or another target).

Errors people can fix (no root, a bad address, a file that cannot be written) end in one line
on stderr and a non-zero exit, never a traceback. Options are checked before anything starts
(``check_options``): a bad one is one ``pystack: --OPTION: ...`` line and exit status 2.
SIGINT, SIGTERM and SIGHUP on ``up`` and ``run`` stop it the same way a normal end does (the
device and the namespace are removed) with exit status 128 + the signal; while it cleans up,
further signals are noted and ignored (``_shielded``), so a second Ctrl-C cannot cut the
clean-up short.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import math
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from types import FrameType
from typing import Any

import pystack.bench
import pystack.fuzz.command
from pystack import demo
from pystack.host import HostError, HostOptions, KernelHost, stack_config_for, trace_options
from pystack.link.impairspec import KEYS_HELP, RULES_HELP, ImpairmentConfig
from pystack.link.tuntap import LinkUnavailable
from pystack.netns import NamespaceError
from pystack.runtime import build_runtime
from pystack.runtime.network import ScriptNetwork, fast_thread_switches
from pystack.runtime.script import ScriptEnd, exit_status, run_script
from pystack.script import batch
from pystack.script.expected import (
    ExpectedFileError,
    ExpectedOutcomes,
    find_expected,
    load_expected,
)
from pystack.script.files import ScriptFile, ScriptFileError, find_scripts, load_script
from pystack.script.targets import TARGETS, Target, TargetUnavailable, make_target
from pystack.show import ShowError, load, render_html, text_ladder
from pystack.show.recording import DEFAULT_LIMIT, Recorder
from pystack.sim.world import HOST_ADDRESS, PEER_ADDRESS
from pystack.stack import DHCP, Stack
from pystack.statsview import statistics_report
from pystack.tcp.settings import CongestionControlName
from pystack.tracing import TraceLevel, TraceOptions, colour_wanted
from pystack.wire.addresses import ip_from_str, ip_to_str, parse_cidr, prefix_mask

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)  # each ends up and run cleanly
MAX_DURATION = 365 * 86400.0  # seconds: --duration beyond a year is a typo

IMPAIR_HELP = (
    "impair the link, e.g. loss=5%,delay=20ms,seed=7 or drop=out:tcp:data:3. Keys: "
    + KEYS_HELP
    + "; "
    + RULES_HELP
    + ". Comma-separated, combinable; see docs/impairment.md"
).replace("%", "%%")


def _say(text: str) -> None:
    print(f"pystack: {text}", file=sys.stderr, flush=True)


def _os_error_line(error: OSError) -> str:
    """One line for an ``OSError`` from a file, a device or a namespace."""
    reason = error.strerror or str(error) or type(error).__name__
    return f"{error.filename}: {reason}" if error.filename else reason


def package_version() -> str:
    """``pystack --version``: the installed distribution's version."""
    try:
        return importlib.metadata.version("pystack-net")
    except importlib.metadata.PackageNotFoundError:
        return "unknown (not installed)"


def _signal_name(signum: int) -> str:
    return signal.Signals(signum).name


# False when ``main`` runs as the ``pystack`` process itself: a command then leaves the stop
# signals ignored when it returns (the process is about to exit, and a second Ctrl-C or
# SIGTERM must not kill it after its clean-up with a status or a traceback of its own); True
# when ``main`` is called from Python (tests), which gets its handlers back.
_restore_signals = True


def _restore(previous: Mapping[signal.Signals, Any]) -> None:
    for signum, handler in previous.items():
        keep = not _restore_signals and signum in STOP_SIGNALS
        signal.signal(signum, signal.SIG_IGN if keep else handler)


@contextlib.contextmanager
def _shielded(caught: list[int]) -> Iterator[None]:
    """While cleaning up: SIGINT, SIGTERM and SIGHUP are noted in ``caught`` and otherwise
    ignored (no KeyboardInterrupt, no death by SIGHUP), so the clean-up always completes."""

    def note(signum: int, frame: FrameType | None) -> None:
        caught.append(signum)

    previous = {s: signal.signal(s, note) for s in STOP_SIGNALS}
    try:
        yield
    finally:
        _restore(previous)


def _add_host_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--link", choices=("tun", "tap"), default="tun", help="device kind (default tun)"
    )
    parser.add_argument(
        "--netns", metavar="NAME", help="network namespace for the device (created if missing)"
    )
    parser.add_argument(
        "--device", metavar="NAME", help="attach to an existing TUN/TAP device instead"
    )
    parser.add_argument(
        "--addr",
        default="10.0.0.2/24",
        metavar="A/N",
        help="pystack's address (default 10.0.0.2/24)",
    )
    parser.add_argument(
        "--peer",
        metavar="IP",
        help="the kernel side's address, in --addr's subnet (default 10.0.0.1)",
    )
    parser.add_argument(
        "--mtu", type=int, default=1500, help="device MTU, 68..65535 (default 1500)"
    )
    parser.add_argument("--impair", metavar="SPEC", help=IMPAIR_HELP)
    parser.add_argument(
        "--seed", type=int, help="seed for the stack's randomness (and impairments)"
    )
    parser.add_argument("--pcap", metavar="FILE", help="write every frame on the device to FILE")
    _add_congestion_argument(parser, "the stack's TCP connections")
    _add_trace_arguments(parser)
    parser.add_argument(
        "--stats",
        action="store_true",
        help="print connections, counters and drops at exit (and on SIGUSR1)",
    )
    _add_record_arguments(parser)


def _add_congestion_argument(parser: argparse.ArgumentParser, whose: str) -> None:
    names = [member.value for member in CongestionControlName]
    parser.add_argument(
        "--congestion",
        choices=names,
        metavar="ALGORITHM",
        help=f"congestion control of {whose}: {' or '.join(names)} (default newreno); a socket "
        "can choose its own (docs/congestion-control.md)",
    )


def _add_trace_arguments(parser: argparse.ArgumentParser) -> None:
    # Separate flags for --trace and --trace=LEVEL: an optional value would swallow the SCRIPT
    # that follows ``run --trace``.
    parser.add_argument(
        "--trace",
        dest="trace",
        action="store_const",
        const=TraceLevel.PACKETS.value,
        help="trace on stderr: packets in (<) and out (>), drops (x) with their reason, "
        "impairment actions (~), TCP state changes (=); retransmissions say why",
    )
    parser.add_argument(
        "--trace=events",
        dest="trace",
        action="store_const",
        const=TraceLevel.EVENTS.value,
        help="--trace plus TCP events (*): cwnd, ssthresh, RTO, SRTT, recovery, RACK, TLP and "
        "undo decisions, timers",
    )
    parser.add_argument(
        "--trace=all",
        dest="trace",
        action="store_const",
        const=TraceLevel.ALL.value,
        help="--trace=events plus the delayed-ACK timer and every re-armed timer",
    )
    parser.add_argument(
        "--absolute-seq",
        action="store_true",
        help="absolute TCP sequence numbers in the trace (default: relative, as tcpdump)",
    )


def _add_record_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--record",
        metavar="FILE",
        help="record every packet (with its bytes), drop, state change and TCP variable change "
        "as JSON lines to FILE, for pystack show (docs/record-format.md); prints nothing "
        "without --trace",
    )
    parser.add_argument(
        "--record-limit",
        type=_size,
        default=DEFAULT_LIMIT,
        metavar="BYTES",
        help="stop recording (with a last line saying so) past this size, e.g. 50M (default 200M)",
    )


def _size(text: str) -> int:
    units = {"k": 1000, "m": 1000**2, "g": 1000**3}
    scale = units.get(text[-1:].lower(), 1)
    number = text[:-1] if text[-1:].lower() in units else text
    try:
        value = int(float(number) * scale)
    except ValueError:
        value = 0
    if value < 1000:
        raise argparse.ArgumentTypeError(f"not a size of at least 1000 bytes: {text!r}")
    return value


def _add_show_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    show = commands.add_parser(
        "show",
        help="draw a recording (--record) or a pcap/pcapng capture as a ladder diagram",
        description="Renders FILE (a pystack recording, or a classic pcap or pcapng capture, "
        "e.g. from tcpdump) as one self-contained offline HTML page: a ladder diagram (a column "
        "per host, an arrow per packet labelled with flags, relative seq and ack, length and "
        "window; lost packets stop midway with an X; retransmissions in orange with their "
        "cause; TCP states down the sides), plots of cwnd, ssthresh, bytes in flight, the "
        "receive windows, SRTT and RTO per connection (recordings only), and the counters. "
        "Ladders longer than 3000 packets show the first 3000 and say so.",
    )
    show.add_argument("file", metavar="FILE", help="a pystack recording or a pcap/pcapng file")
    show.add_argument(
        "-o",
        "--output",
        metavar="OUT.html",
        help="where to write the page (default: FILE with .html, next to it)",
    )
    show.add_argument(
        "--text", action="store_true", help="print a plain ladder on the terminal instead"
    )


def command_show(arguments: argparse.Namespace) -> int:
    try:
        ladder = load(arguments.file)
    except ShowError as error:
        _say(str(error))
        return 1
    if arguments.text:
        sys.stdout.write(text_ladder(ladder))
        return 0
    output = arguments.output or _html_name(arguments.file)
    try:
        with open(output, "w", encoding="utf-8") as file:
            file.write(render_html(ladder))
    except OSError as error:
        _say(f"{output}: {error.strerror or error}")
        return 1
    _say(f"wrote {output} ({len(ladder.arrows)} packets drawn)")
    return 0


def _html_name(path: str) -> str:
    stem, dot, extension = path.rpartition(".")
    if dot and "/" not in extension:
        return f"{stem}.html"
    return f"{path}.html"


def _open_recorder(arguments: argparse.Namespace, argv: Sequence[str]) -> Recorder | None:
    """The --record writer (OSError if FILE cannot be created)."""
    if not getattr(arguments, "record", None):
        return None
    return Recorder(
        arguments.record,
        command=["pystack", *argv],
        seed=arguments.seed,
        limit=arguments.record_limit,
    )


def _close_recorder(recorder: Recorder | None, stacks: Sequence[tuple[str, Stack]]) -> None:
    """The counters line of each stack, then the end line (after the stack thread stopped)."""
    if recorder is None:
        return
    for role, stack in stacks:
        recorder.statistics(role, ip_to_str(stack.address), stack.statistics())
    recorder.close()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pystack", description="a userspace TCP/IP stack in pure Python"
    )
    parser.add_argument("--version", action="version", version=f"pystack {package_version()}")
    commands = parser.add_subparsers(dest="command", required=True)
    up = commands.add_parser(
        "up", help="bring a pystack host up on a TUN/TAP device and serve until stopped"
    )
    _add_host_arguments(up)
    up.add_argument(
        "--serve",
        metavar="LIST",
        help="services on the stack: echo,discard,chargen[=N],daytime,http,https,tlsecho,mqtt,dns",
    )
    up.add_argument(
        "--hosts",
        metavar="FILE",
        help="hosts(5) file: more names for --serve dns (it always answers pystack.test)",
    )
    up.add_argument(
        "--duration",
        metavar="SECONDS",
        help="stop by itself after this many seconds (0 < SECONDS <= a year)",
    )
    show = commands.add_parser(
        "demo", help="two stacks on an in-memory link: ARP, then pings, traced"
    )
    show.add_argument("--seed", type=int, default=1)
    show.add_argument("--quiet", action="store_true", help="no packet trace, only the results")
    _add_trace_arguments(show)
    _add_record_arguments(show)
    _add_run_parser(commands)
    _add_show_parser(commands)
    _add_script_parser(commands)
    bench = commands.add_parser(
        "bench",
        help="measure pystack beside the Linux kernel and a raw-TUN ceiling (root; namespaces)",
        description=pystack.bench.__doc__,
        epilog=pystack.bench.ROW_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    pystack.bench.add_arguments(bench)
    fuzz = commands.add_parser(
        "fuzz",
        help="fuzz pystack (--self), pystack against Linux (--differential), a kernel service (--target kernel)",
        description=pystack.fuzz.command.DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    pystack.fuzz.command.add_arguments(fuzz)
    return parser


def _add_run_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    run = commands.add_parser(
        "run",
        help="run a MicroPython script with socket, select, ssl, time... from pystack",
        description="Everything after SCRIPT goes to the script untouched.",
    )
    run.add_argument("--link", choices=("sim", "tun", "tap"), default="sim")
    run.add_argument("--netns", metavar="NAME", help="network namespace for a tun/tap device")
    run.add_argument("--mtu", type=int, help="the tun/tap device's MTU, 68..65535 (default 1500)")
    run.add_argument(
        "--no-offload",
        action="store_true",
        help="with --link tun: no TUN offloads (one frame per segment, full checksums)",
    )
    run.add_argument("--addr", metavar="A/N", help="pystack's address")
    run.add_argument("--peer", metavar="IP", help="the peer's (or kernel side's) address")
    run.add_argument("--dns", metavar="IP", help="the DNS server getaddrinfo asks")
    run.add_argument("--impair", metavar="SPEC", help=IMPAIR_HELP)
    run.add_argument(
        "--seed",
        type=int,
        help="seed for every random choice of the run (stacks, impairment, the script's "
        "random): same seed, same trace",
    )
    run.add_argument("--pcap", metavar="FILE", help="write every frame to FILE")
    _add_congestion_argument(run, "the script's stack (the simulated peer keeps newreno)")
    _add_trace_arguments(run)
    _add_record_arguments(run)
    run.add_argument(
        "--trace-peer",
        action="store_true",
        help="also trace the simulated peer (implies --trace); lines say host or peer",
    )
    run.add_argument(
        "--stats", action="store_true", help="print connections, counters and drops at exit"
    )
    run.add_argument(
        "--real-time",
        action="store_true",
        help="on the simulator, run on the real clock instead of virtual time (the default: "
        "time jumps to the next deadline whenever the script and the stacks all wait)",
    )
    run.add_argument("--hosts", metavar="FILE", help="more names for the simulated DNS server")
    run.add_argument(
        "--socket-extensions",
        action="store_true",
        help="also give socket the unix port's inet_pton/inet_ntop (off: lwIP's exact surface)",
    )
    run.add_argument(
        "--linger",
        type=_seconds,
        metavar="SECONDS",
        help="at the script's end, reset a connection whose data or FIN makes no progress for "
        "this long (default max(3 s, 4 RTOs, twice the backed-off RTO)); see docs/board.md",
    )
    run.add_argument(
        "--cpython-modules",
        action="store_true",
        help="let the script import CPython's standard library too (off: MicroPython's modules)",
    )
    # SCRIPT is checked in check_options: argparse would call a REMAINDER positional required.
    run.add_argument("script", metavar="SCRIPT", nargs="?")
    run.add_argument("arguments", metavar="ARGS", nargs=argparse.REMAINDER)
    run.usage = (
        run.format_usage()
        .removeprefix("usage: ")
        .rstrip()
        .replace("[SCRIPT] ...", "SCRIPT [ARGS ...]")
    )


SCRIPT_DESCRIPTION = """\
Runs packet scripts (docs/script-format.md) and prints one line per script and target:
PASS, FAIL (with the first difference, then the full report), XFAIL (a failure the
expected-outcome file lists, with its reason) or XPASS (a listed script that passed).
ERROR means the target could not run the script (e.g. a 'set' it does not know); SKIP, that
--max-seconds left it out.

Expected-outcome files (one per target) list the scripts a target is expected to fail:
    PATH xfail CATEGORY REASON     (CATEGORY: rfc, policy or linux)
with PATH relative to the directory above the file's. Without --expect, each script uses the
nearest expected/TARGET.txt in its directory or one above it (scripts/expected/pystack.txt).

Exit status: 0 if every outcome is the expected one (PASS, XFAIL or SKIP), 1 if not (FAIL,
XPASS, ERROR), 2 for a usage error: a bad option, a script or expected-outcome file that cannot be
read or parsed (one path:line: message line), an unknown or unavailable target.
"""


def _add_script_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    script = commands.add_parser(
        "script",
        help="run packet scripts (.pkt) against pystack (or another target) and judge them",
        description=SCRIPT_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    script.add_argument(
        "paths",
        metavar="FILE.pkt|DIR",
        nargs="+",
        help="scripts, or directories walked for *.pkt (sorted by path)",
    )
    script.add_argument(
        "--target",
        default="pystack",
        metavar="NAME[,NAME]",
        help="what the scripts run against: pystack (default; in-process, virtual time, no "
        f"root), kernel (Linux in a namespace, when available), or both, comma-separated "
        f"(available here: {', '.join(sorted(TARGETS))})",
    )
    script.add_argument(
        "--expect",
        action="append",
        default=[],
        metavar="[TARGET=]FILE",
        help="the expected-outcome file (for TARGET only, or for every target); repeatable",
    )
    script.add_argument(
        "--report",
        metavar="FILE.md",
        help="write a Markdown report: every script's outcome per target side by side, and the "
        "first difference of each that did not pass everywhere",
    )
    script.add_argument(
        "--jobs",
        default="1",
        metavar="N",
        help="run N scripts at once, each in a worker process of its own (default 1; at most "
        f"{batch.MAX_JOBS}); the output keeps the input order. A kernel run mostly waits for "
        "Linux's real timers, so many jobs finish the corpus in about its longest script's time",
    )
    script.add_argument(
        "--max-seconds",
        metavar="S",
        help="on a real-time target (kernel), skip (SKIP, not run) the scripts whose written "
        "time is longer than S seconds; e.g. 100 leaves out the corpus's four long scripts "
        "(keepalive_off_by_default.pkt alone takes 8000 s)",
    )
    script.add_argument(
        "--verbose",
        action="store_true",
        help="also print the trace of scripts that pass and the report of expected failures",
    )


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"not a number of seconds >= 0: {text!r}")
    return value


def check_options(arguments: argparse.Namespace) -> str | None:
    """What is wrong with the options of ``up``, ``run`` or ``demo``, as one line (None: all
    fine). Checked before anything starts, so nothing is created for a run that cannot work."""
    command = arguments.command
    if command == "run" and arguments.script is None:
        return "run: give the SCRIPT to run (pystack run [OPTIONS] SCRIPT [ARGS ...])"
    if command == "run" and arguments.link != "sim" and not arguments.netns:
        return f"--link {arguments.link} needs --netns NAME (pystack never configures this one)"
    impair = getattr(arguments, "impair", None)
    if impair is not None:
        if not impair.strip(" ,"):
            return "--impair: the spec is empty (e.g. loss=5%,delay=20ms; see docs/impairment.md)"
        try:
            ImpairmentConfig.parse(impair)
        except ValueError as error:
            return f"--impair: {error}"
    if command == "up":
        if arguments.netns is None and arguments.device is None:
            return (
                "up: give --netns NAME (pystack never configures this namespace) or --device NAME"
            )
        duration = _duration(arguments.duration)
        if isinstance(duration, str):
            return duration
        arguments.duration = duration
        if not 68 <= arguments.mtu <= 65535:
            return f"--mtu: must be 68..65535, not {arguments.mtu}"
    if command == "run" and arguments.mtu is not None:
        if arguments.link == "sim":
            return "--mtu: only with --link tun or tap"
        if not 68 <= arguments.mtu <= 65535:
            return f"--mtu: must be 68..65535, not {arguments.mtu}"
    if command == "script":
        return _script_options_problem(arguments)
    if command in ("up", "run", "demo"):
        for option in ("pcap", "hosts", "record"):
            written = option in ("pcap", "record")
            problem = _file_problem(option, getattr(arguments, option, None), written)
            if problem is not None:
                return problem
    if command in ("up", "run"):
        # run's defaults are the simulator's (ScriptNetwork's), which are up's too
        problem = _address_problem(arguments.addr or HOST_ADDRESS, arguments.peer or PEER_ADDRESS)
        if problem is not None:
            if arguments.peer is None and problem.startswith("--peer"):
                problem += " (the default: give --peer too)"
            return problem
        dns = getattr(arguments, "dns", None)
        if dns is not None:
            try:
                ip_from_str(dns)
            except ValueError:
                return f"--dns: {dns!r} is not an IPv4 address"
    return None


def _script_options_problem(arguments: argparse.Namespace) -> str | None:
    """``script``'s --target (split into ``arguments.targets``), --expect and --report."""
    names = [name.strip() for name in arguments.target.split(",")]
    if not all(names):
        return f"--target: {arguments.target!r}: give target names separated by commas"
    arguments.targets = list(dict.fromkeys(names))
    for name in arguments.targets:
        if name not in TARGETS:
            available = ", ".join(sorted(TARGETS))
            return (
                f"--target: target {name!r} is not available in this build (available: {available})"
            )
    explicit: dict[str | None, str] = {}
    for text in arguments.expect:
        target, equals, path = text.rpartition("=")
        key = target if equals else None
        if equals and target not in arguments.targets:
            return f"--expect {text}: {target!r} is not one of the targets run"
        if key in explicit:
            return f"--expect: given twice for {key or 'every target'}"
        if not path:
            return "--expect: the file name is empty"
        explicit[key] = path
    arguments.expect_files = explicit
    jobs = str(arguments.jobs)
    if not jobs.isdigit() or not 1 <= int(jobs) <= batch.MAX_JOBS:
        return f"--jobs: expected a number of jobs 1..{batch.MAX_JOBS}, got {jobs!r}"
    arguments.jobs = int(jobs)
    if arguments.max_seconds is not None:
        text = arguments.max_seconds
        try:
            arguments.max_seconds = float(arguments.max_seconds)
        except ValueError:
            arguments.max_seconds = -1.0
        if not 0 <= arguments.max_seconds < float("inf"):
            return f"--max-seconds: expected a number of seconds >= 0, got {text!r}"
    return _file_problem("report", arguments.report, written=True)


def _duration(text: str | None) -> float | str | None:
    """``--duration``: seconds, or the one-line complaint."""
    if text is None:
        return None
    try:
        value = float(text)
    except ValueError:
        return f"--duration: {text!r} is not a number of seconds"
    if not (math.isfinite(value) and 0 < value <= MAX_DURATION):
        return f"--duration: must be more than 0 and at most {MAX_DURATION:.0f} s, not {text}"
    return value


def _file_problem(option: str, path: str | None, written: bool) -> str | None:
    """Why ``--pcap FILE`` (written) or ``--hosts FILE`` (read) cannot work, or None."""
    if path is None:
        return None
    if not path:
        return f"--{option}: the file name is empty"
    if written:
        directory = os.path.dirname(path) or "."
        if not os.path.isdir(directory):
            return f"--{option}: {directory}: no such directory"
        if os.path.isdir(path):
            return f"--{option}: {path} is a directory"
        if not os.access(directory, os.W_OK | os.X_OK):
            return f"--{option}: {directory}: cannot write there (permission denied)"
        return None
    if not os.path.isfile(path):
        return f"--{option}: {path}: no such file"
    if not os.access(path, os.R_OK):
        return f"--{option}: {path}: cannot read it (permission denied)"
    return None


def _address_problem(address_text: str, peer_text: str) -> str | None:
    """``--addr A/N`` and ``--peer IP``: an explicit prefix, a usable host address, and a peer
    in the same subnet that is neither the subnet's network nor its broadcast address."""
    address = prefix = None
    if address_text != DHCP:
        if "/" not in address_text:
            return f"--addr: give the prefix length too, e.g. {address_text}/24"
        try:
            address, prefix = parse_cidr(address_text)
        except ValueError as error:
            return f"--addr: {error}"
        problem = _host_problem("--addr", address, prefix)
        if problem is not None:
            return problem
    try:
        peer = ip_from_str(peer_text)
    except ValueError:
        return f"--peer: {peer_text!r} is not an IPv4 address"
    if address is None or prefix is None:
        return _host_problem("--peer", peer, 0)
    if peer == address:
        return "--peer: must differ from --addr"
    mask = prefix_mask(prefix)
    if peer & mask != address & mask:
        subnet = f"{ip_to_str(address & mask)}/{prefix}"
        return f"--peer: {peer_text} is not in --addr's subnet {subnet}"
    return _host_problem("--peer", peer, prefix)


def _host_problem(option: str, address: int, prefix: int) -> str | None:
    """Why ``address`` cannot be one host's address in a subnet of ``prefix`` bits, or None."""
    text = ip_to_str(address)
    if address == 0 or address >> 24 in (0, 127) or address >> 28 >= 0xE:
        return f"{option}: {text} is not a host address (zero, loopback, multicast or reserved)"
    if prefix == 32:
        return f"{option}: a /32 subnet has no room for the peer (use e.g. /24)"
    if 0 < prefix <= 30:
        host_bits = address & ~prefix_mask(prefix) & 0xFFFFFFFF
        if host_bits == 0:
            return f"{option}: {text} is the network address of its /{prefix} subnet"
        if host_bits == ~prefix_mask(prefix) & 0xFFFFFFFF:
            return f"{option}: {text} is the broadcast address of its /{prefix} subnet"
    return None


def command_run(arguments: argparse.Namespace, argv: Sequence[str] = ()) -> int:
    """``pystack run``; SIGTERM and SIGHUP end the script as a reset board would end it (its
    connections reset) with status 128 + the signal, SIGINT is the script's KeyboardInterrupt."""

    def on_terminate(signum: int, frame: FrameType | None) -> None:
        name = _signal_name(signum)
        raise ScriptEnd(128 + signum, f"stopped by {name}", abrupt=True)

    try:
        recorder = _open_recorder(arguments, argv)
    except OSError as error:
        _say(f"--record: {arguments.record}: {error.strerror or error}")
        return 1
    stacks: list[tuple[str, Stack]] = []  # whose counters end the recording
    previous = {s: signal.signal(s, on_terminate) for s in (signal.SIGTERM, signal.SIGHUP)}
    caught: list[int] = []
    status = 0
    try:
        with fast_thread_switches():  # for this run only (process-wide; see its docstring)
            network = ScriptNetwork(arguments, recorder.record if recorder is not None else None)
            try:
                status = _run_on(network, arguments, stacks)
            except ScriptEnd as end:  # a signal before or after the script itself
                status = exit_status(end)
            except KeyboardInterrupt:
                status = 128 + signal.SIGINT
            finally:
                with _shielded(caught):
                    network.close()
                    _close_recorder(recorder, stacks)
    finally:
        _restore(previous)
    if caught and not status:
        status = 128 + caught[0]
    return status


def _run_on(
    network: ScriptNetwork, arguments: argparse.Namespace, stacks: list[tuple[str, Stack]]
) -> int:
    try:
        providers = build_runtime(arguments)
        network.register(providers, network.start())
        stacks.append(("host", network.stack))
        if network.simulation is not None:
            stacks.append(("peer", network.simulation.peer))
    except OSError as error:
        _say(_os_error_line(error))
        return 1
    except (HostError, LinkUnavailable, NamespaceError, ValueError) as error:
        _say(str(error))
        return 1
    status = run_script(
        arguments.script,
        arguments.arguments,
        providers,
        on_exit=network.finish,
        clock=network.clock,  # virtual time on the simulator, unless --real-time
        options={"seed": arguments.seed},  # the script's random module
    )
    if arguments.stats:
        _print_statistics(network.thread.call, network.stack)
        if network.simulation is not None:
            peer = network.simulation.peer
            _print_statistics(network.thread.call, peer, "the simulated peer")
    return status


def _print_statistics(
    call: Callable[[Callable[[], str]], str], stack: Stack, title: str = ""
) -> None:
    """``--stats``: the report, made under the stack thread's lock (``StackThread.call``)."""
    print(call(lambda: statistics_report(stack, title)), file=sys.stderr, flush=True)


def command_up(arguments: argparse.Namespace, argv: Sequence[str] = ()) -> int:
    try:
        recorder = _open_recorder(arguments, argv)
    except OSError as error:
        _say(f"--record: {arguments.record}: {error.strerror or error}")
        return 1
    options = HostOptions(
        link=arguments.link,
        netns=arguments.netns,
        device=arguments.device,
        address=arguments.addr,
        peer=arguments.peer or PEER_ADDRESS,
        mtu=arguments.mtu,
        impair=arguments.impair,
        seed=arguments.seed,
        pcap=arguments.pcap,
        serve=arguments.serve,
        hosts=arguments.hosts,
        trace=trace_options(arguments, recorder.record if recorder is not None else None),
        stack_config=stack_config_for(arguments.congestion),
    )
    stop = threading.Event()
    report = threading.Event()
    stopped_by: list[int] = []

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stopped_by.append(signum)
        stop.set()

    def on_report(signum: int, frame: FrameType | None) -> None:
        report.set()  # printed by the main loop below, not inside the handler
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in STOP_SIGNALS}
    if arguments.stats:
        previous[signal.SIGUSR1] = signal.signal(signal.SIGUSR1, on_report)
    host = KernelHost(options)
    try:
        status = _serve(host, arguments, stop, report)
        return 128 + stopped_by[0] if stopped_by and status == 0 else status
    finally:
        stack = host.stack
        host.close()  # (the handlers above only set stop: a signal now cannot cut this short)
        _close_recorder(recorder, [("host", stack)] if stack is not None else [])
        _restore(previous)


def _serve(
    host: KernelHost, arguments: argparse.Namespace, stop: threading.Event, report: threading.Event
) -> int:
    """``up`` between start and close: serve until ``stop``; the exit status."""
    try:
        host.start()
        if stop.is_set() and not report.is_set():
            return 0  # a signal came during the bring-up
        _say(f"{host.describe()} is up; Ctrl-C to stop")
        deadline = None if arguments.duration is None else time.monotonic() + arguments.duration
        while True:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            stop.wait(left)
            if not report.is_set():
                break
            report.clear()
            stop.clear()
            if host.stack is not None and host.thread is not None:
                _print_statistics(host.thread.call, host.stack)
        if arguments.stats and host.stack is not None and host.thread is not None:
            _print_statistics(host.thread.call, host.stack)
        if host.thread is not None and host.thread.error is not None:
            _say(f"the stack thread failed: {host.thread.error!r}")
            return 1
        if host.stack is not None:
            drops = host.stack.statistics()["drops"]
            counters = host.stack.statistics()["counters"]
            _say(
                f"stopping; {counters.get('ipv4.received', 0)} packets in, "
                f"{counters.get('ipv4.sent', 0)} out, drops {drops or 'none'}"
            )
        return 0
    except OSError as error:
        _say(_os_error_line(error))
        return 1
    except (HostError, LinkUnavailable, NamespaceError, ValueError) as error:
        _say(str(error))
        return 1


def command_demo(arguments: argparse.Namespace, argv: Sequence[str]) -> int:
    try:
        recorder = _open_recorder(arguments, argv)
    except OSError as error:
        _say(f"--record: {arguments.record}: {error.strerror or error}")
        return 1
    record = recorder.record if recorder is not None else None
    trace: TraceOptions | None = None
    if not arguments.quiet or record is not None:
        trace = TraceOptions(
            None if arguments.quiet else demo.print_line,
            TraceLevel(arguments.trace or TraceLevel.PACKETS.value),
            absolute_seq=arguments.absolute_seq,
            colour=colour_wanted(sys.stdout),
            record=record,
        )
    ended: list[tuple[str, Stack]] = []
    try:
        return demo.run(seed=arguments.seed, trace=trace, on_end=ended.extend)
    finally:
        _close_recorder(recorder, ended)


def command_script(arguments: argparse.Namespace) -> int:
    """``pystack script``: every script on every target, a line each; see SCRIPT_DESCRIPTION."""
    try:
        scripts = [load_script(path) for path in find_scripts(arguments.paths)]
        expectations = _expected_outcomes(arguments, scripts)
    except (ScriptFileError, ExpectedFileError) as error:
        _say(str(error))
        return 2
    for outcomes in {id(o): o for per in expectations.values() for o in per.values()}.values():
        for entry in outcomes.missing():
            _say(f"warning: {entry.source}: no script {entry.path} under {outcomes.root}")
    targets: list[Target] = []
    stopped_by: list[int] = []

    def on_signal(signum: int, frame: FrameType | None) -> None:
        # SIGTERM and SIGHUP unwind like Ctrl-C: a kernel run's namespace is removed on the way.
        stopped_by.append(signum)
        raise KeyboardInterrupt

    previous = {s: signal.signal(s, on_signal) for s in STOP_SIGNALS}
    try:
        for name in arguments.targets:
            try:
                targets.append(make_target(name))
            except TargetUnavailable as error:
                _say(f"--target: {error}")
                return 2
            except (OSError, ValueError, RuntimeError) as error:
                _say(f"--target {name}: cannot start it: {error}")
                return 1
        results = _run_scripts(arguments, scripts, targets, expectations)
    except KeyboardInterrupt:
        _say("interrupted")
        return 128 + (stopped_by[0] if stopped_by else signal.SIGINT)
    finally:
        with _shielded([]):
            for target in targets:
                close = getattr(target, "close", None)
                if callable(close):
                    close()
            _restore(previous)
    return _finish_scripts(arguments, results)


def _expected_outcomes(
    arguments: argparse.Namespace, scripts: Sequence[ScriptFile]
) -> dict[str, dict[str, ExpectedOutcomes]]:
    """For each target, each script's expected-outcome file (explicit, else the nearest)."""
    loaded: dict[str, ExpectedOutcomes] = {}

    def load(path: str) -> ExpectedOutcomes:
        key = os.path.abspath(path)
        if key not in loaded:
            loaded[key] = load_expected(path)
        return loaded[key]

    chosen: dict[str, dict[str, ExpectedOutcomes]] = {}
    files: dict[str | None, str] = arguments.expect_files
    for target in arguments.targets:
        per_script: dict[str, ExpectedOutcomes] = {}
        explicit = files.get(target, files.get(None))
        for script in scripts:
            path = explicit if explicit is not None else find_expected(script.path, target)
            if path is not None:
                per_script[script.path] = load(path)
        chosen[target] = per_script
    return chosen


def _run_scripts(
    arguments: argparse.Namespace,
    scripts: Sequence[ScriptFile],
    targets: Sequence[Target],
    expectations: Mapping[str, Mapping[str, ExpectedOutcomes]],
) -> list[batch.ScriptOutcome]:
    tasks: list[batch.Task] = []
    # in input order: an outcome decided here (a script too long for --max-seconds), or None
    # for the next task's outcome from the workers
    planned: list[batch.ScriptOutcome | None] = []
    for script in scripts:
        for target in targets:
            outcomes = expectations[target.name].get(script.path)
            expectation = outcomes.lookup(script.path) if outcomes is not None else None
            skipped = batch.skip_if_longer(target, script, arguments.max_seconds)
            planned.append(skipped)
            if skipped is None:
                tasks.append((target, script, expectation))
    results = []
    several = len(targets) > 1
    # The workers are stopped (by PID) when the block ends, also on Ctrl-C or SIGTERM.
    with batch.Workers(arguments.jobs) as workers:
        ran = workers.run(tasks)
        for decided in planned:
            result = decided if decided is not None else next(ran)
            results.append(result)
            print(batch.outcome_line(result, several), flush=True)
            failed_badly = result.outcome is batch.Outcome.FAIL
            if result.report is not None and (failed_badly or arguments.verbose):
                print(_indent(result.report), flush=True)
            if arguments.verbose and result.trace:
                print(_indent(result.trace), flush=True)
    return results


def _indent(text: str) -> str:
    return "\n".join(f"    {line}" if line else line for line in text.splitlines())


def _finish_scripts(arguments: argparse.Namespace, results: Sequence[batch.ScriptOutcome]) -> int:
    counts: dict[batch.Outcome, int] = {}
    for result in results:
        counts[result.outcome] = counts.get(result.outcome, 0) + 1
    summary = ", ".join(f"{count} {outcome.value}" for outcome, count in counts.items())
    print(f"{len(results)} runs: {summary}", flush=True)
    if arguments.report:
        try:
            with open(arguments.report, "w", encoding="utf-8") as file:
                file.write(batch.markdown_report(arguments.targets, results))
        except OSError as error:
            _say(f"--report: {arguments.report}: {error.strerror or error}")
            return 1
    return 0 if all(result.outcome.as_expected for result in results) else 1


def main(argv: Sequence[str] | None = None) -> int:
    """The ``pystack`` command on ``argv`` (None: the process's own command line)."""
    global _restore_signals
    _restore_signals = argv is not None
    arguments = build_parser().parse_args(argv)
    problem = check_options(arguments)
    if problem is not None:
        _say(problem)
        return 2
    try:
        return _command(arguments, sys.argv[1:] if argv is None else argv)
    except KeyboardInterrupt:  # Ctrl-C outside the commands' own handling (e.g. demo)
        return 128 + signal.SIGINT


def _command(arguments: argparse.Namespace, argv: Sequence[str]) -> int:
    if arguments.command == "up":
        return command_up(arguments, argv)
    if arguments.command == "show":
        return command_show(arguments)
    if arguments.command == "demo":
        return command_demo(arguments, argv)
    if arguments.command == "run":
        return command_run(arguments, argv)
    if arguments.command == "bench":
        return pystack.bench.run(arguments)
    if arguments.command == "script":
        try:
            return command_script(arguments)
        except BrokenPipeError:  # the output went to e.g. ``head``, which has stopped reading
            # Point stdout at /dev/null so Python's own flush at exit has nowhere to fail.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            return 1
    if arguments.command == "fuzz":
        return pystack.fuzz.command.run(arguments)
    return 2


if __name__ == "__main__":
    sys.exit(main())
