"""Profile pystack's stack thread per packet, the way ``pystack bench`` drives it (root only).

    .venv/bin/python tools/profile_fastpath.py [--plain] [--mtu N] [--size BYTES]
        [--mode in|out|rr] [--top N]

Brings up ``pystack up --serve discard,echo,chargen`` in a private namespace (the bench's
``measure_pystack`` setup, through ``KernelHost``), runs the stack thread's loop under cProfile,
has the bench's kernel-side client do one transfer (``in``: kernel -> pystack's discard, ``out``:
chargen -> kernel, ``rr``: 1-byte echo round trips), and prints the functions with the most own
time, each as microseconds per frame handled (frames in + frames out of the link) and as a share
of the thread's time. The namespace and device go away on exit. A tool, not a test: cProfile
adds its own cost per call, so read the shares, not the absolute microseconds.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import selectors
import sys
from pathlib import Path

from pystack import netns
from pystack.bench.kernel import _client
from pystack.host import HostOptions, KernelHost
from pystack.runner import StackThread

PORTS = {"in": ("send", 9), "out": ("recv", 19), "rr": ("rr", 7)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--plain", action="store_true", help="no TUN offloads")
    parser.add_argument("--mtu", type=int, default=1500)
    parser.add_argument("--size", type=int, default=20_000_000, help="bytes (in/out)")
    parser.add_argument("--count", type=int, default=2000, help="round trips (rr)")
    parser.add_argument("--mode", choices=sorted(PORTS), default="in")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument(
        "--no-profile", action="store_true", help="only the figure, without cProfile's cost"
    )
    parser.add_argument("--repeat", type=int, default=1, help="transfers (figures printed)")
    args = parser.parse_args()
    reason = netns.require_root()
    if reason is not None:
        print(f"profile_fastpath: {reason}", file=sys.stderr)
        return 2
    profiler = cProfile.Profile()
    original = StackThread._serve

    def profiled_serve(
        self: StackThread, selector: selectors.BaseSelector, every_link_has_fd: bool
    ) -> None:
        profiler.enable()  # cProfile follows the thread that enables it: the stack thread
        try:
            original(self, selector, every_link_has_fd)
        finally:
            profiler.disable()

    if not args.no_profile:
        StackThread._serve = profiled_serve  # type: ignore[method-assign]
    options = HostOptions(
        offload=not args.plain,
        netns=f"pystack-prof-{os.getpid()}",
        mtu=args.mtu,
        serve=f"discard,echo,chargen={args.size}",
    )
    mode, port = PORTS[args.mode]
    amount = args.count if args.mode == "rr" else args.size
    with KernelHost(options) as host:
        assert host.namespace is not None and host.stack is not None
        figures = _client(host.namespace, mode, port, amount, args.repeat)
        link = host.stack.link.statistics
        frames = link.frames_received + link.frames_sent
    unit = "us per round trip" if args.mode == "rr" else "MB/s"
    shown = " ".join(f"{figure:.1f}" for figure in figures)
    under = "" if args.no_profile else " (under cProfile)"
    print(f"{args.mode}: {shown} {unit}{under}; {frames} frames")
    if args.no_profile:
        return 0
    stats = pstats.Stats(profiler)
    entries = stats.stats  # type: ignore[attr-defined]
    total = sum(row[2] for row in entries.values())
    rows = sorted(entries.items(), key=lambda item: item[1][2], reverse=True)[: args.top]
    print(f"{'own us/frame':>12} {'share':>6} {'calls/frame':>11}  function")
    for (filename, line, name), (_cc, calls, own, _cum, _callers) in rows:
        where = f"{Path(filename).name}:{line}" if line else filename
        print(
            f"{own / frames * 1e6:12.2f} {own / total:6.1%} {calls / frames:11.2f}  {name} {where}"
        )
    print(f"{total / frames * 1e6:12.2f} {1:6.0%}              total")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
