"""smoltcp's ``netsim`` window-vs-loss grid, reproduced with two pystack stacks on virtual time.

The scenario is the one docs/performance.md points to (smoltcp's ``tests/netsim.rs``, specified in
full in the project's NETSIM notes): one flow from B (sender) to A (receiver) over Ethernet, MTU
1500, ARP for real; per direction a bottleneck (here unlimited: no serialisation, no drops) and
a wire of 50 ms constant latency with Bernoulli loss; socket receive and send buffers both set to
the cell's buffer size on both sides; the run ends when A's application has read the transfer,
and goodput is bytes read over the virtual time of the first event after that, from t=0.

What differs from smoltcp, on purpose or by necessity: loss draws come from ``random.Random``
seeded 0 (A->B) and 1 (B->A), not ChaCha20 (a different stack sends other frames anyway, so the
cells compare as distributions); pystack keeps its own TCP with its defaults (NewReno, SACK
with RACK-TLP, PRR and D-SACK, timestamps so MSS payload 1448, delayed ACK 40 ms, minimum RTO
1 s) where smoltcp runs without congestion control; gratuitous ARP is off, as smoltcp sends
none; pystack's retransmission limit is lifted (smoltcp has no user timeout).

The multiflow scenario (``run_multiflow``) is smoltcp's ``netsim_multiflow``: n flows, each its
own pair of stacks, sharing one 25,000,000 B/s bottleneck with a 65,536-byte drop-tail queue per
direction; each flow's wires have the constant one-way delays of NETSIM.md's RTT table (drawn by
smoltcp's ChaCha20 streams seeded 2i and 2i+1), no loss; 256 KiB buffers both ways, 2 MiB per
flow, the run ends when the slowest flow is done.
"""

from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import dataclass
from random import Random

from pystack.clock import ManualClock
from pystack.link.base import LinkKind, LinkStatistics
from pystack.stack import Stack, StackConfig
from pystack.tcp.connection import TCPConnection
from pystack.tcp.settings import TCPSettings
from pystack.wire.addresses import ip_from_str

BUFFERS = (128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768)
LOSSES = (0.0, 0.001, 0.01, 0.02, 0.05, 0.10, 0.20, 0.30)
TRANSFER = 10 * 1024 * 1024  # smoltcp's BYTES
LATENCY_US = 50_000  # one way, both directions
SEED_A_TO_B, SEED_B_TO_A = 0, 1
MAX_ROUNDS_PER_INSTANT = 10_000  # bound on iterations at one virtual instant
RETRIES = 1000  # retransmissions in a row before pystack gives a connection up (default 15)

# The multiflow scenario (netsim_multiflow).
FLOW_COUNTS = (1, 2, 4, 16, 32, 64)
MULTIFLOW_RATE = 25_000_000  # bytes/s per direction, shared by all flows
MULTIFLOW_QUEUE = 65_536  # bytes of drop-tail queue per direction
MULTIFLOW_BUFFER = 262_144  # socket rx = tx buffer, both sides
MULTIFLOW_TRANSFER = 2 * 1024 * 1024  # per flow
# Per flow: (A->B, B->A) round-trip draws in ms; one-way delay = ms * 1000 // 2 microseconds
# (NETSIM.md section 3, from smoltcp's ChaCha20Rng seeded 2i and 2i+1).
MULTIFLOW_RTT_MS: tuple[tuple[int, int], ...] = (
    (52, 111), (57, 111), (105, 111), (99, 52), (88, 50), (79, 136), (100, 69), (89, 130),
    (103, 72), (129, 139), (89, 67), (95, 149), (77, 50), (60, 57), (87, 123), (56, 75),
    (143, 111), (56, 79), (143, 51), (57, 134), (146, 72), (101, 106), (96, 53), (51, 81),
    (63, 74), (120, 85), (138, 74), (147, 73), (122, 73), (136, 65), (121, 51), (138, 104),
    (58, 91), (81, 109), (52, 121), (120, 142), (87, 102), (96, 83), (95, 123), (71, 99),
    (133, 69), (112, 147), (105, 55), (131, 58), (52, 126), (68, 71), (63, 120), (51, 82),
    (89, 93), (88, 100), (65, 146), (97, 92), (148, 101), (68, 114), (50, 57), (84, 138),
    (71, 133), (149, 132), (130, 82), (86, 58), (87, 86), (86, 147), (137, 73), (144, 127),
)  # fmt: skip
# smoltcp's netsim__netsim_multiflow.snap: flows -> (agg_thru, min_thru, max_thru, fairness, drops)
SMOLTCP_MULTIFLOW: dict[int, tuple[float, float, float, float, float]] = {
    1: (3449.54, 3449.54, 3449.54, 1.0000, 0.4467),
    2: (6966.98, 3448.67, 3518.30, 0.9999, 0.4427),
    4: (12848.40, 3138.89, 3300.60, 0.9997, 0.4430),
    16: (52408.19, 2931.62, 3908.99, 0.9913, 0.4364),
    32: (94342.76, 2166.74, 4694.84, 0.9759, 0.4379),
    64: (167823.63, 2056.19, 3412.10, 0.9866, 0.4548),
}

# smoltcp's goodput (bytes/s of virtual time) from its netsim__netsim.snap, buffer -> one per loss.
SMOLTCP: dict[int, tuple[float, ...]] = {
    128: (1279.98, 1255.76, 1054.15, 886.36, 538.66, 227.84, 33.99, 7.18),
    256: (2559.91, 2507.27, 2100.03, 1770.30, 1070.71, 468.24, 66.71, 14.35),
    512: (5119.63, 5011.95, 4172.36, 3531.57, 2098.73, 942.38, 144.73, 29.45),
    1024: (10238.50, 10023.19, 8340.90, 7084.25, 4003.34, 1869.94, 290.74, 60.92),
    2048: (17535.11, 17171.82, 14093.50, 11963.68, 7399.06, 3416.41, 690.50, 126.57),
    4096: (35062.41, 33859.80, 26937.41, 21886.99, 14073.67, 7870.66, 1603.60, 401.79),
    8192: (77374.28, 72992.18, 58490.74, 46527.73, 29421.45, 15515.23, 3737.20, 710.80),
    16384: (161842.28, 159310.62, 127090.53, 104233.16, 55319.33, 27269.28, 7654.51, 1277.32),
    32768: (322944.88, 314779.73, 219670.76, 166587.86, 76626.48, 37774.62, 6079.34, 1156.40),
}


class NetsimStuck(RuntimeError):
    """A cell made no progress within its bounds (virtual time, iterations)."""


class Bottleneck:
    """One direction's router egress: a byte rate and a drop-tail byte queue (None: unlimited)."""

    __slots__ = ("bandwidth", "capacity", "next_tx_available", "pushes", "tail_drops")

    def __init__(self, bandwidth: int | None = None, capacity: int | None = None) -> None:
        self.bandwidth = bandwidth  # bytes per second
        self.capacity = capacity  # bytes
        self.next_tx_available = 0  # microseconds
        self.pushes = 0
        self.tail_drops = 0

    def admit(self, length: int, now_us: int) -> int | None:
        """The microsecond the frame leaves the queue, or None when it is tail-dropped."""
        self.pushes += 1
        bandwidth = self.bandwidth
        if bandwidth is None:
            return now_us
        queued = max(0, self.next_tx_available - now_us) * bandwidth // 1_000_000
        if self.capacity is not None and queued + length > self.capacity:
            self.tail_drops += 1
            return None
        done = max(self.next_tx_available, now_us) + length * 1_000_000 // bandwidth
        self.next_tx_available = done
        return done


class NetsimLink:
    """One endpoint's Ethernet link: what it sends crosses its direction's bottleneck, then its
    wire (constant latency, Bernoulli loss drawn per admitted frame) to the peer's queue."""

    kind = LinkKind.ETHERNET
    mtu = 1500

    def __init__(self, bottleneck: Bottleneck, latency_us: int, loss: float, rng: Random) -> None:
        self.statistics = LinkStatistics()
        self.bottleneck = bottleneck
        self.latency_us = latency_us
        self.loss = loss
        self.rng = rng
        self.peer: NetsimLink | None = None
        self.incoming: deque[tuple[int, bytes]] = deque()  # (arrival us, frame), FIFO
        self.lost = 0

    def send(self, frame: bytes, now: float) -> None:
        self.statistics.frames_sent += 1
        self.statistics.bytes_sent += len(frame)
        done = self.bottleneck.admit(len(frame), round(now * 1e6))  # pystack never pads frames
        if done is None:
            return
        if self.rng.random() < self.loss:
            self.lost += 1
            return
        assert self.peer is not None
        self.peer.incoming.append((done + self.latency_us, bytes(frame)))

    def receive(self, now: float, limit: int = 64) -> list[bytes]:
        now_us = round(now * 1e6)
        incoming = self.incoming
        frames: list[bytes] = []
        while incoming and incoming[0][0] <= now_us and len(frames) < limit:
            frames.append(incoming.popleft()[1])
        self.statistics.frames_received += len(frames)
        return frames

    def next_deadline(self) -> float | None:
        return self.incoming[0][0] / 1e6 if self.incoming else None

    def fileno(self) -> int | None:
        return None

    def close(self) -> None:
        self.incoming.clear()


@dataclass(frozen=True)
class CellResult:
    buffer: int
    loss: float
    transfer: int
    seeds: tuple[int, int]  # loss RNG seeds A->B, B->A
    received: int
    virtual_seconds: float
    goodput: float  # bytes/s of virtual time at A's application
    smoltcp: float | None  # smoltcp's figure for its 10 MiB cell (None off its grid)
    frames_a_to_b: int
    frames_b_to_a: int
    lost: int
    wall_seconds: float


class Flow:
    """One connection of a scenario: A (listener, receiver) and B (connector, sender), each a
    pystack ``Stack`` on its own ``NetsimLink``; ``received`` counts what A's application read."""

    def __init__(
        self,
        index: int,
        buffer: int,
        links: tuple[NetsimLink, NetsimLink],
        clock: ManualClock,
        retries: int = RETRIES,
    ) -> None:
        link_a, link_b = links
        link_a.peer, link_b.peer = link_b, link_a
        self.link_a, self.link_b = link_a, link_b
        # smoltcp has no user timeout: pystack's R2 (15 retransmissions in a row, then abort)
        # would end the small-buffer cells at 30% loss, so it is lifted; syn_retries too.
        tcp = TCPSettings(
            send_buffer=buffer, receive_buffer=buffer, data_retries=retries, syn_retries=retries
        )
        a_ip, b_ip = f"10.0.{index + 1}.1", f"10.0.{index + 1}.2"
        mac = f"02:00:00:00:{index:02x}"
        self.a = Stack(
            StackConfig(address=f"{a_ip}/24", mac=f"{mac}:01", tcp=tcp, gratuitous_arp=False),
            link_a,
            clock,
            Random(2 + 2 * index),
        )
        self.b = Stack(
            StackConfig(address=f"{b_ip}/24", mac=f"{mac}:02", tcp=tcp, gratuitous_arp=False),
            link_b,
            clock,
            Random(3 + 2 * index),
        )
        self.listener = self.a.tcp.listen(1, 1)
        self.client = self.b.tcp.connect(ip_from_str(a_ip), 1, 0.0, local_port=2)
        self.zeros = memoryview(bytes(buffer))
        self.server: TCPConnection | None = None
        self.received = 0

    def step(self, now: float) -> int:
        """smoltcp's order: A's interface, A's application, B's interface, B's application.
        Returns how much moved (0: nothing happened at this instant)."""
        moved = self.a.poll(now)
        if self.server is None:
            self.server = self.listener.accept()
        if self.server is not None:
            while data := self.server.receive(1 << 20):
                self.received += len(data)
                moved += 1
        moved += self.b.poll(now)
        client = self.client
        room = client.send_room
        if room and client.state.synchronized:
            moved += client.send(self.zeros[:room], now) > 0
        return moved

    def next_deadline(self) -> float | None:
        deadlines = [d for d in (self.a.next_deadline(), self.b.next_deadline()) if d is not None]
        return min(deadlines) if deadlines else None


def _run(flows: list[Flow], clock: ManualClock, transfer: int, timeout: float, name: str) -> float:
    """Run the flows until every one's A has read ``transfer`` bytes; the end time (the next
    event after the last read, as smoltcp's loop measures it)."""
    rounds_now = 0
    now = 0.0
    # A flow changes only when it is stepped (flows meet only in the bottlenecks, whose timing
    # is settled when a frame is sent), so a flow with nothing due that did nothing last round
    # is skipped: stepping it would do nothing, exactly as smoltcp's poll of an idle interface.
    # This keeps the loop's cost per event independent of the number of idle flows.
    due: list[float | None] = [0.0] * len(flows)  # each flow's next event
    busy = [True] * len(flows)  # it moved in the last round at this instant
    while True:
        moved = 0
        for index, flow in enumerate(flows):  # flows in index order, each A before B
            next_event = due[index]
            if busy[index] or (next_event is not None and next_event <= now):
                flow_moved = flow.step(now)
                moved += flow_moved
                busy[index] = flow_moved > 0
                due[index] = flow.next_deadline()
        pending = [d for d in due if d is not None]
        deadline = min(pending) if pending else None
        if all(flow.received >= transfer for flow in flows):
            return max(now, deadline) if deadline is not None else now
        if deadline is None or deadline > timeout:
            raise NetsimStuck(f"{name}: idle at t={now:.3f} s")
        if moved or deadline <= now:  # more to do at this instant
            rounds_now += 1
            if rounds_now > MAX_ROUNDS_PER_INSTANT:
                raise NetsimStuck(f"{name}: busy at t={now:.6f} s")
            continue
        rounds_now = 0
        # smoltcp's clock counts whole microseconds: the next instant is the deadline rounded up
        # (so no timer fires early). round() first drops float noise (1235.0000001 us is 1235),
        # and max() then keeps such a deadline reachable: the clock never stops short of it.
        now = clock.set(max(math.ceil(round(deadline * 1e6, 3)) / 1e6, deadline))


def run_cell(
    buffer: int, loss: float, transfer: int = TRANSFER, timeout: float = 1e8, seed: int = 0
) -> CellResult:
    """One grid cell: B sends ``transfer`` bytes to A; bounded by ``timeout`` virtual seconds.
    Seed k draws losses from ``random.Random`` seeded 2k (A->B) and 2k+1 (B->A); k=0 is 0 and 1,
    smoltcp's seeds."""
    started = time.monotonic()
    clock = ManualClock()
    seeds = (SEED_A_TO_B + 2 * seed, SEED_B_TO_A + 2 * seed)
    link_a = NetsimLink(Bottleneck(), LATENCY_US, loss, Random(seeds[0]))
    link_b = NetsimLink(Bottleneck(), LATENCY_US, loss, Random(seeds[1]))
    flow = Flow(0, buffer, (link_a, link_b), clock)
    end = _run([flow], clock, transfer, timeout, f"buffer {buffer}, loss {loss}")
    smoltcp = SMOLTCP[buffer][LOSSES.index(loss)] if buffer in SMOLTCP and loss in LOSSES else None
    return CellResult(
        buffer=buffer,
        loss=loss,
        transfer=transfer,
        seeds=seeds,
        received=flow.received,
        virtual_seconds=end,
        goodput=flow.received / end if end > 0 else 0.0,
        smoltcp=smoltcp,
        frames_a_to_b=link_a.statistics.frames_sent,
        frames_b_to_a=link_b.statistics.frames_sent,
        lost=link_a.lost + link_b.lost,
        wall_seconds=time.monotonic() - started,
    )


@dataclass(frozen=True)
class MultiflowResult:
    flows: int
    transfer: int  # bytes per flow
    virtual_seconds: float
    received: tuple[int, ...]  # per flow, bytes A's application read
    agg_thru: float  # sum of received / duration (bytes/s of virtual time)
    min_thru: float
    max_thru: float
    fairness: float  # Jain's index over per-flow received bytes
    drops: float  # bottleneck tail drops / offers, both directions
    ceiling: float  # min(rate, sum of buffer / RTT_i): the link/window limit
    smoltcp: tuple[float, float, float, float, float] | None  # agg, min, max, fairness, drops
    wall_seconds: float


def jain(values: list[int] | tuple[int, ...]) -> float:
    """Jain's fairness index (sum x)^2 / (n * sum x^2); 1.0 when all are equal."""
    squares = sum(x * x for x in values)
    return sum(values) ** 2 / (len(values) * squares) if squares else 1.0


def multiflow_ceiling(flows: int, buffer: int = MULTIFLOW_BUFFER) -> float:
    """min(link rate, sum over flows of buffer / RTT_i), RTT_i = (rtt_ab + rtt_ba) / 2."""
    windows = sum(buffer / ((ab + ba) / 2 / 1000) for ab, ba in MULTIFLOW_RTT_MS[:flows])
    return min(float(MULTIFLOW_RATE), windows)


def run_multiflow(
    flows: int, transfer: int = MULTIFLOW_TRANSFER, timeout: float = 1e6
) -> MultiflowResult:
    """smoltcp's netsim_multiflow with ``flows`` flows sharing one bottleneck per direction."""
    if not 1 <= flows <= len(MULTIFLOW_RTT_MS):
        raise ValueError(f"flows must be 1..{len(MULTIFLOW_RTT_MS)}, not {flows}")
    started = time.monotonic()
    clock = ManualClock()
    bottleneck_ab = Bottleneck(MULTIFLOW_RATE, MULTIFLOW_QUEUE)
    bottleneck_ba = Bottleneck(MULTIFLOW_RATE, MULTIFLOW_QUEUE)
    running = []
    for index in range(flows):
        rtt_ab, rtt_ba = MULTIFLOW_RTT_MS[index]
        links = (
            NetsimLink(bottleneck_ab, rtt_ab * 1000 // 2, 0.0, Random(2 * index)),
            NetsimLink(bottleneck_ba, rtt_ba * 1000 // 2, 0.0, Random(2 * index + 1)),
        )
        running.append(Flow(index, MULTIFLOW_BUFFER, links, clock))
    end = _run(running, clock, transfer, timeout, f"multiflow {flows}")
    received = tuple(flow.received for flow in running)
    pushes = bottleneck_ab.pushes + bottleneck_ba.pushes
    return MultiflowResult(
        flows=flows,
        transfer=transfer,
        virtual_seconds=end,
        received=received,
        agg_thru=sum(received) / end,
        min_thru=min(received) / end,
        max_thru=max(received) / end,
        fairness=jain(received),
        drops=(bottleneck_ab.tail_drops + bottleneck_ba.tail_drops) / pushes if pushes else 0.0,
        ceiling=multiflow_ceiling(flows),
        smoltcp=SMOLTCP_MULTIFLOW.get(flows),
        wall_seconds=time.monotonic() - started,
    )
