"""``pystack demo``: two hosts on an in-memory Ethernet link resolve each other with ARP and ping.

Runs on a simulated clock, so it needs no root and no network, and prints the same trace every
time for the same seed: the gratuitous ARPs, the ARP request and reply, small echoes, and a
6,000-byte echo fragmented to the 1500-byte MTU and reassembled on both sides.
"""

from __future__ import annotations

import dataclasses
import random
import sys
from collections.abc import Callable, Sequence

from pystack.link.base import LinkKind
from pystack.link.impair import ImpairmentConfig, ImpairmentLink
from pystack.link.memory import MemoryLink
from pystack.sim.network import Simulation
from pystack.stack import Stack, StackConfig
from pystack.tracing import TraceOptions
from pystack.wire.addresses import ip_to_str


def print_line(line: str) -> None:
    """The default sink of ``pystack demo``'s trace: stdout."""
    print(line)


def _printer(simulation: Simulation, sink: Callable[[str], None]) -> Callable[[str], None]:
    def show(line: str) -> None:
        sink(f"{simulation.now:8.3f} {line}")

    return show


def run(
    seed: int = 1,
    trace: bool | TraceOptions | None = True,
    on_end: Callable[[Sequence[tuple[str, Stack]]], None] | None = None,
) -> int:
    """The demo; ``trace`` True is the plain packet trace on stdout, options choose more (with
    ``record``: ``--record``, alice and bob recorded under their names). ``on_end`` gets both
    stacks, named, once the pings are done (``--record`` writes their counters)."""
    simulation = Simulation()
    left, right = MemoryLink.pair(kind=LinkKind.ETHERNET, mtu=1500)
    # A 1 ms one-way delay on alice's side makes the virtual round-trip times visible.
    wire = ImpairmentLink(left, ImpairmentConfig.parse(f"delay=1ms,seed={seed}"))
    alice = simulation.add(
        Stack(StackConfig(address="10.0.0.1/24"), wire, simulation.clock, random.Random(seed))
    )
    bob = simulation.add(
        Stack(StackConfig(address="10.0.0.2/24"), right, simulation.clock, random.Random(seed + 1))
    )
    if trace:
        options = trace if isinstance(trace, TraceOptions) else TraceOptions(print_line)
        for name, stack in (("alice", alice), ("bob  ", bob)):
            # The trace's own label is the name (padded: the columns line up), so the printer
            # adds only the time; a recording takes the name without the padding.
            printer = _printer(simulation, options.sink) if options.sink else None
            stack.set_trace(dataclasses.replace(options, sink=printer), name)
    print(f"alice: {alice.describe()}\nbob:   {bob.describe()}\n")
    simulation.run_for(0.5)  # both announce themselves (gratuitous ARP) first
    sizes = [56, 56, 56, 6000]
    ok = True
    for sequence, size in enumerate(sizes, 1):
        data = bytes(i & 0xFF for i in range(size))
        alice.ping("10.0.0.2", 0x1234, sequence, data)
        sent = simulation.now
        got = simulation.run_until(lambda: bool(alice.echo_replies), timeout=5.0)
        replies = alice.take_echo_replies()
        if not got or replies[0].data != data:
            print(f"ping {sequence}: no reply", file=sys.stderr)
            ok = False
            continue
        reply = replies[0]
        print(
            f"-- {len(data) + 8} bytes from {ip_to_str(reply.source)}: icmp_seq={reply.sequence} "
            f"time={1000 * (reply.time - sent):.3f} ms (virtual)\n"
        )
        simulation.run_for(1.0)
    if on_end is not None:
        on_end((("alice", alice), ("bob", bob)))
    for name, stack in (("alice", alice), ("bob", bob)):
        entries = ", ".join(n.describe() for n in stack.ip.arp.entries())
        print(f"{name} ARP cache: {entries}")
        print(f"{name} counters: {stack.statistics()['counters']}")
    return 0 if ok else 1
