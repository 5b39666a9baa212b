"""CPU cost of pystack's fast path in the simulator: no root, no kernel, no other process.

    .venv/bin/python tools/fastpath_sim.py bulk|rr|conn [--rounds N] [--profile] [--top N]

Two stacks on an in-memory link, driven on virtual time (``pystack.sim.network.Simulation``):
``bulk`` sends 20 MB from one to a discard service on the other, ``rr`` makes 5,000 one-byte
round trips to an echo service, ``conn`` opens and closes 3,000 connections to it (100 at a
time). It prints the process CPU time (``time.process_time``: both stacks, the driver included)
per frame handled by the serving stack (bulk, rr) or per connection (conn), for each of
``--rounds`` runs, sorted: compare the best of two builds run one after the other, since CPU
time on a shared machine still moves with its load. ``--profile`` prints cProfile's top
functions of one run instead. docs/performance.md ("The fast path") quotes these figures.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import random
import time
from collections.abc import Callable

from pystack.link.base import LinkKind
from pystack.link.memory import MemoryLink
from pystack.services.stream import DiscardService, EchoService
from pystack.sim.network import Simulation
from pystack.stack import Stack, StackConfig
from pystack.tcp.connection import TCPConnection
from pystack.tcp.state import TCPState
from pystack.wire.addresses import ip_from_str

SERVER = "10.0.0.1"
BULK_BYTES = 20_000_000
ROUND_TRIPS = 5_000
CONNECTIONS = 3_000
BATCH = 100
VIRTUAL_TIMEOUT = 30.0  # seconds of virtual time any one wait may take
BULK_TIMEOUT = 3600.0  # virtual seconds for the bulk transfer (delayed-ACK timers move the clock)


class Stuck(RuntimeError):
    """The simulated transfer did not finish within its virtual-time bound."""


def _world() -> tuple[Simulation, Stack, Stack]:
    sim = Simulation()
    server_end, client_end = MemoryLink.pair(kind=LinkKind.IP, capacity=4096)
    server = sim.add(
        Stack(StackConfig(address=f"{SERVER}/24"), server_end, sim.clock, random.Random(1))
    )
    client = sim.add(
        Stack(StackConfig(address="10.0.0.2/24"), client_end, sim.clock, random.Random(2))
    )
    return sim, server, client


def _frames(stack: Stack) -> int:
    link = stack.link.statistics
    return link.frames_received + link.frames_sent


def bulk() -> tuple[float, int]:
    sim, server, client = _world()
    discard = DiscardService(server)
    server.add_application(discard)
    connection = client.tcp.connect(ip_from_str(SERVER), 9, sim.now)
    data = memoryview(bytes(BULK_BYTES))
    sent = 0
    start = time.process_time()
    end = sim.now + BULK_TIMEOUT
    while discard.bytes_in < BULK_BYTES:
        if sent < BULK_BYTES:
            sent += connection.send(data[sent : sent + 262_144], sim.now)
        sim.step(sim.now + 10.0)
        if sim.now > end:
            raise Stuck("bulk transfer did not finish")
    return time.process_time() - start, _frames(server)


def round_trips() -> tuple[float, int]:
    sim, server, client = _world()
    echo = EchoService(server)
    server.add_application(echo)
    connection = client.tcp.connect(ip_from_str(SERVER), 7, sim.now)
    connection.set_nodelay(True)
    if not sim.run_until(lambda: connection.state is TCPState.ESTABLISHED, VIRTUAL_TIMEOUT):
        raise Stuck("no connection")
    start = time.process_time()
    for _ in range(ROUND_TRIPS):
        connection.send(b"x", sim.now)
        if not sim.run_until(lambda: connection.readable > 0, VIRTUAL_TIMEOUT):
            raise Stuck("no echo")
        connection.receive(1)
    return time.process_time() - start, _frames(server)


def connections() -> tuple[float, int]:
    sim, server, client = _world()
    echo = EchoService(server, backlog=2 * BATCH)
    server.add_application(echo)
    start = time.process_time()
    for _ in range(CONNECTIONS // BATCH):
        batch = [client.tcp.connect(ip_from_str(SERVER), 7, sim.now) for _ in range(BATCH)]

        def established(batch: list[TCPConnection] = batch) -> bool:
            return all(c.state is TCPState.ESTABLISHED for c in batch)

        if not sim.run_until(established, VIRTUAL_TIMEOUT):
            raise Stuck("connections not established")
        for connection in batch:
            connection.close(sim.now)
        if not sim.run_until(lambda: not echo.connections, VIRTUAL_TIMEOUT):
            raise Stuck("connections not closed")
    return time.process_time() - start, CONNECTIONS


MODES: dict[str, tuple[Callable[[], tuple[float, int]], str]] = {
    "bulk": (bulk, "us of CPU per frame at the server"),
    "rr": (round_trips, "us of CPU per frame at the server"),
    "conn": (connections, "us of CPU per connection (both ends)"),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("mode", choices=sorted(MODES))
    parser.add_argument("--rounds", type=int, default=5, help="runs (1-50)")
    parser.add_argument("--profile", action="store_true", help="cProfile one run instead")
    parser.add_argument("--top", type=int, default=30, help="functions --profile prints")
    args = parser.parse_args()
    if not 1 <= args.rounds <= 50:
        parser.error("--rounds must be 1..50")
    run, unit = MODES[args.mode]
    try:
        if args.profile:
            profiler = cProfile.Profile()
            profiler.enable()
            run()
            profiler.disable()
            pstats.Stats(profiler).sort_stats("tottime").print_stats(args.top)
            return 0
        figures = []
        for _ in range(args.rounds):
            cpu, count = run()
            figures.append(cpu / count * 1e6)
    except Stuck as error:
        print(f"fastpath_sim: {error}")
        return 1
    print(f"{args.mode}: {' '.join(f'{f:.2f}' for f in sorted(figures))} {unit}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
