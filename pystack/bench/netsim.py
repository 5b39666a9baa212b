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
1 s) where smoltcp runs without congestion control; gratuitous ARP is off, as smoltcp sends none; pystack's retransmission limit is lifted
(smoltcp has no user timeout). The multiflow (shared bottleneck) run is
not reproduced yet.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass
from random import Random

from pystack.clock import ManualClock
from pystack.link.base import LinkKind, LinkStatistics
from pystack.stack import Stack, StackConfig
from pystack.tcp.settings import TCPSettings
from pystack.wire.addresses import ip_from_str

BUFFERS = (128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768)
LOSSES = (0.0, 0.001, 0.01, 0.02, 0.05, 0.10, 0.20, 0.30)
TRANSFER = 10 * 1024 * 1024  # smoltcp's BYTES
LATENCY_US = 50_000  # one way, both directions
SEED_A_TO_B, SEED_B_TO_A = 0, 1
MAX_ROUNDS_PER_INSTANT = 10_000
RETRIES = 1000  # retransmissions in a row before pystack gives a connection up (default 15)  # bound on iterations at one virtual instant

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
        done = self.bottleneck.admit(len(frame), round(now * 1e6))
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
    received: int
    virtual_seconds: float
    goodput: float  # bytes/s of virtual time at A's application
    smoltcp: float | None  # smoltcp's figure for its 10 MiB cell (None off its grid)
    frames_a_to_b: int
    frames_b_to_a: int
    lost: int
    wall_seconds: float


def run_cell(
    buffer: int, loss: float, transfer: int = TRANSFER, timeout: float = 1e8
) -> CellResult:
    """One grid cell: B sends ``transfer`` bytes to A; bounded by ``timeout`` virtual seconds."""
    started = time.monotonic()
    clock = ManualClock()
    unlimited_ab, unlimited_ba = Bottleneck(), Bottleneck()
    link_a = NetsimLink(unlimited_ab, LATENCY_US, loss, Random(SEED_A_TO_B))
    link_b = NetsimLink(unlimited_ba, LATENCY_US, loss, Random(SEED_B_TO_A))
    link_a.peer, link_b.peer = link_b, link_a
    # smoltcp has no user timeout: pystack's R2 (15 retransmissions in a row, then abort) would
    # end the small-buffer cells at 30% loss, so it is lifted; syn_retries too, for the same reason.
    tcp = TCPSettings(
        send_buffer=buffer, receive_buffer=buffer, data_retries=RETRIES, syn_retries=RETRIES
    )
    a = Stack(
        StackConfig(address="10.0.1.1/24", mac="02:00:00:00:00:01", tcp=tcp, gratuitous_arp=False),
        link_a,
        clock,
        Random(2),
    )
    b = Stack(
        StackConfig(address="10.0.1.2/24", mac="02:00:00:00:00:02", tcp=tcp, gratuitous_arp=False),
        link_b,
        clock,
        Random(3),
    )
    listener = a.tcp.listen(1, 1)
    client = b.tcp.connect(ip_from_str("10.0.1.1"), 1, 0.0, local_port=2)
    zeros = memoryview(bytes(buffer))
    server = None
    received = 0
    rounds_now = 0
    now = 0.0
    while True:
        # smoltcp's order: A's interface, A's application, B's interface, B's application.
        moved = a.poll(now)
        if server is None:
            server = listener.accept()
        if server is not None:
            while data := server.receive(1 << 20):
                received += len(data)
                moved += 1
        moved += b.poll(now)
        room = client.send_room
        if room and client.state.synchronized:
            moved += client.send(zeros[:room], now) > 0
        deadlines = [d for d in (a.next_deadline(), b.next_deadline()) if d is not None]
        deadline = min(deadlines) if deadlines else None
        if received >= transfer:
            # the end time is that of the next event after the last read (smoltcp's loop)
            end = max(now, deadline) if deadline is not None else now
            break
        if deadline is None or deadline > timeout:
            raise NetsimStuck(f"buffer {buffer}, loss {loss}: idle at t={now:.3f} s")
        if moved or deadline <= now:  # more to do at this instant
            rounds_now += 1
            if rounds_now > MAX_ROUNDS_PER_INSTANT:
                raise NetsimStuck(f"buffer {buffer}, loss {loss}: busy at t={now:.6f} s")
            continue
        rounds_now = 0
        now = clock.set(deadline)
    smoltcp = SMOLTCP[buffer][LOSSES.index(loss)] if buffer in SMOLTCP and loss in LOSSES else None
    return CellResult(
        buffer=buffer,
        loss=loss,
        transfer=transfer,
        received=received,
        virtual_seconds=end,
        goodput=received / end if end > 0 else 0.0,
        smoltcp=smoltcp,
        frames_a_to_b=link_a.statistics.frames_sent,
        frames_b_to_a=link_b.statistics.frames_sent,
        lost=link_a.lost + link_b.lost,
        wall_seconds=time.monotonic() - started,
    )
