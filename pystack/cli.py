"""The ``pystack`` command: ``up`` (a host on a TUN/TAP device), ``demo`` (two stacks in memory)
and ``run`` (a MicroPython script on pystack).

Errors people can fix (no root, a bad address, a bad ``--impair`` spec) end in one line on stderr
and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType

from pystack import demo
from pystack.host import HostError, HostOptions, KernelHost, stderr_trace_sink
from pystack.link.tuntap import LinkUnavailable
from pystack.netns import NamespaceError
from pystack.runtime import build_runtime
from pystack.runtime.network import ScriptNetwork, fast_thread_switches
from pystack.runtime.script import run_script


def _say(text: str) -> None:
    print(f"pystack: {text}", file=sys.stderr, flush=True)


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
        default="10.0.0.1",
        metavar="IP",
        help="the kernel side's address (default 10.0.0.1)",
    )
    parser.add_argument(
        "--mtu", type=int, default=1500, help="device MTU, 68..65535 (default 1500)"
    )
    parser.add_argument(
        "--impair",
        metavar="SPEC",
        help="e.g. loss=5%%,dup=1%%,reorder=2%%,delay=20ms,jitter=5ms,rate=10mbit,seed=7",
    )
    parser.add_argument(
        "--seed", type=int, help="seed for the stack's randomness (and impairments)"
    )
    parser.add_argument("--pcap", metavar="FILE", help="write every frame on the device to FILE")
    parser.add_argument(
        "--trace", action="store_true", help="one line per packet in/out and per drop"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pystack", description="a userspace TCP/IP stack in pure Python"
    )
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
    up.add_argument("--duration", type=float, help="stop by itself after this many seconds")
    show = commands.add_parser(
        "demo", help="two stacks on an in-memory link: ARP, then pings, traced"
    )
    show.add_argument("--seed", type=int, default=1)
    show.add_argument("--quiet", action="store_true", help="no packet trace, only the results")
    _add_run_parser(commands)
    return parser


def _add_run_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    run = commands.add_parser(
        "run",
        help="run a MicroPython script with socket, select, ssl, time... from pystack",
        description="Everything after SCRIPT goes to the script untouched.",
    )
    run.add_argument("--link", choices=("sim", "tun", "tap"), default="sim")
    run.add_argument("--netns", metavar="NAME", help="network namespace for a tun/tap device")
    run.add_argument("--addr", metavar="A/N", help="pystack's address")
    run.add_argument("--peer", metavar="IP", help="the peer's (or kernel side's) address")
    run.add_argument("--dns", metavar="IP", help="the DNS server getaddrinfo asks")
    run.add_argument("--impair", metavar="SPEC", help="e.g. loss=5%%,delay=20ms,seed=7")
    run.add_argument(
        "--seed",
        type=int,
        help="seed for every random choice of the run (stacks, impairment, the script's random): same seed, same trace",
    )
    run.add_argument("--pcap", metavar="FILE", help="write every frame to FILE")
    run.add_argument("--trace", action="store_true", help="pystack's trace lines on stderr")
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
    run.add_argument("script", metavar="SCRIPT")
    run.add_argument("arguments", metavar="ARGS", nargs=argparse.REMAINDER)


def command_run(arguments: argparse.Namespace) -> int:
    with fast_thread_switches():  # for this run only (process-wide; see its docstring)
        network = ScriptNetwork(arguments)
        try:
            try:
                providers = build_runtime(arguments)
                network.register(providers, network.start())
            except (HostError, LinkUnavailable, NamespaceError, ValueError, OSError) as error:
                _say(str(error))
                return 1
            return run_script(
                arguments.script,
                arguments.arguments,
                providers,
                clock=network.clock,  # virtual time on the simulator, unless --real-time
                options={"seed": arguments.seed},  # the script's random module
            )
        finally:
            network.close()


def command_up(arguments: argparse.Namespace) -> int:
    options = HostOptions(
        link=arguments.link,
        netns=arguments.netns,
        device=arguments.device,
        address=arguments.addr,
        peer=arguments.peer,
        mtu=arguments.mtu,
        impair=arguments.impair,
        seed=arguments.seed,
        pcap=arguments.pcap,
        serve=arguments.serve,
        hosts=arguments.hosts,
        trace=stderr_trace_sink() if arguments.trace else None,
    )
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    host = KernelHost(options)
    try:
        host.start()
        _say(f"{host.describe()} is up; Ctrl-C to stop")
        stop.wait(arguments.duration)
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
    except (HostError, LinkUnavailable, NamespaceError, ValueError) as error:
        _say(str(error))
        return 1
    finally:
        host.close()
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def main(argv: Sequence[str] | None = None) -> int:
    arguments = build_parser().parse_args(argv)
    if arguments.command == "up":
        return command_up(arguments)
    if arguments.command == "demo":
        return demo.run(seed=arguments.seed, trace=not arguments.quiet)
    if arguments.command == "run":
        return command_run(arguments)
    return 2


if __name__ == "__main__":
    sys.exit(main())
