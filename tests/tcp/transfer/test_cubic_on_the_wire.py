"""CUBIC (RFC 9438) seen on the wire: a scripted fast retransmit that keeps 70% of the window,
and a simulated bulk transfer (two stacks, virtual time) whose segments in flight per RTT
follow the cubic curve after a loss: concave up to W_max, a plateau, then convex probing.
NewReno runs the same transfer for contrast."""

from __future__ import annotations

import itertools
from random import Random

import pytest

from pystack.bench.netsim import Bottleneck, NetsimLink
from pystack.clock import ManualClock
from pystack.stack import Stack, StackConfig
from pystack.tcp.congestion import Cubic
from pystack.tcp.settings import CongestionControlName, TCPSettings
from pystack.wire.addresses import ip_from_str
from tests.helpers.scripts import run
from tests.tcp.transfer.handshakes import PLAIN

CUBIC = TCPSettings(congestion_control=CongestionControlName.CUBIC)

# Ten segments out at 0.1 s: the initial window (MSS 1460, IW10 = 14600 bytes).
INITIAL_WINDOW = """
    +0 write 40000
    +0 > . 1:1461(1460) ack 1
    +0 > . 1461:2921(1460) ack 1
    +0 > . 2921:4381(1460) ack 1
    +0 > . 4381:5841(1460) ack 1
    +0 > . 5841:7301(1460) ack 1
    +0 > . 7301:8761(1460) ack 1
    +0 > . 8761:10221(1460) ack 1
    +0 > . 10221:11681(1460) ack 1
    +0 > . 11681:13141(1460) ack 1
    +0 > . 13141:14601(1460) ack 1
    +0 expect info cwnd 14600
"""


def segments(first: int, count: int) -> str:
    """``count`` full segments from sequence number ``first`` (MSS 1460), one script line each."""
    return "".join(
        f"        +0 > . {start}:{start + 1460}(1460) ack 1\n"
        for start in range(first, first + count * 1460, 1460)
    )


def test_fast_retransmit_keeps_seventy_percent_then_slow_start_then_reno_friendly() -> None:
    # The initial window's first segment is lost (no SACK: duplicate ACKs find it). NewReno
    # would set ssthresh to 7300, half of the 14600 in flight; CUBIC sets 10220, 0.7 of it
    # (RFC 9438 4.6). After recovery slow start climbs back to ssthresh, and the first ACK in
    # congestion avoidance starts CUBIC's epoch.
    result = run(
        PLAIN
        + INITIAL_WINDOW
        + """
        +0 write 60000
        +0.1 < . 1:1(0) ack 1 win 65535
        +0 > . 14601:16061(1460) ack 1              # limited transmit
        +0 < . 1:1(0) ack 1 win 65535
        +0 > . 16061:17521(1460) ack 1
        +0 < . 1:1(0) ack 1 win 65535
        +0 > . 1:1461(1460) ack 1                   # third duplicate ACK: fast retransmit
        +0 expect info in_recovery True
        +0 expect info ssthresh 10220               # 14600 * 0.7, not 14600 / 2
        +0.05 < . 1:1(0) ack 17521 win 65535        # all of it: recovery ends
        """
        + segments(17521, 2)
        + """
        +0 expect info in_recovery False
        +0 expect info cwnd 2920                    # min(ssthresh, FlightSize 0 + 2 SMSS)
        +0.1 < . 1:1(0) ack 20441 win 65535         # slow start below ssthresh: +2 SMSS a time
        """
        + segments(20441, 4)
        + """
        +0 expect info cwnd 5840
        +0.1 < . 1:1(0) ack 26281 win 65535
        """
        + segments(26281, 6)
        + """
        +0 expect info cwnd 8760
        +0.1 < . 1:1(0) ack 35041 win 65535
        """
        + segments(35041, 8)
        + """
        +0 expect info cwnd 11680                   # past ssthresh: congestion avoidance next
        +0.1 < . 1:1(0) ack 46721 win 65535         # the epoch starts: cwnd_epoch 8 segments
        """
        + segments(46721, 8)
        + """
        # RFC 9438 4.3: W_cubic(0) = cwnd_epoch is below W_est = 8 + alpha_cubic * 8 / 8, so
        # this first ACK sets cwnd to W_est: int(8.529 * 1460) (a 772-byte tail waits: Nagle).
        +0 expect info cwnd 12452
        """,
        tcp_settings=CUBIC,
    )
    assert result.connection is not None
    state = result.connection.tcp_info()["congestion_state"]
    assert isinstance(state, dict)
    assert state["region"] == "reno-friendly"
    assert state["w_max"] == 14600  # the window when the loss was found (10 segments)
    assert state["cwnd_epoch"] == 11680
    assert state["k"] == pytest.approx((2 / 0.4) ** (1 / 3))  # cbrt((10 - 8) / C) = 1.710 s


class DropFrames(Random):
    """A loss pattern for ``NetsimLink``: ``random()`` is 0 (lost) for the listed draws
    (1-based, one draw per frame sent) and 1 (delivered) for every other."""

    def __init__(self, drops: set[int]) -> None:
        super().__init__(0)
        self.drops = drops
        self.draws = 0

    def random(self) -> float:
        self.draws += 1
        return 0.0 if self.draws in self.drops else 1.0


RTT = 0.2  # 100 ms each way
LOST_FRAME = 60  # in the fourth RTT of slow start: the loss is found at a window of 66 segments


def transfer(algorithm: CongestionControlName, seconds: float) -> tuple[list[int], Stack, int]:
    """B sends to A for ``seconds`` of virtual time; B's 60th frame is lost. B's link is a
    2 MB/s bottleneck (never full here) so segments leave paced, as on a real path. Returns B's
    segments in flight at every RTT, B's stack, and the bytes acknowledged."""
    clock = ManualClock()
    link_a = NetsimLink(Bottleneck(), 100_000, 0.5, DropFrames(set()))
    link_b = NetsimLink(Bottleneck(bandwidth=2_000_000), 100_000, 0.5, DropFrames({LOST_FRAME}))
    link_a.peer, link_b.peer = link_b, link_a
    tcp = TCPSettings(send_buffer=1 << 20, receive_buffer=1 << 20, congestion_control=algorithm)
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
    zeros = memoryview(bytes(1 << 20))
    server = None
    flights: list[int] = []
    next_sample = 0.0
    now = 0.0
    for _ in range(2_000_000):  # a bound; the transfer needs about 60,000 rounds
        if now >= seconds:
            break
        moved = a.poll(now)
        if server is None:
            server = listener.accept()
        if server is not None:
            while server.receive(1 << 20):
                moved += 1
        moved += b.poll(now)
        room = client.send_room
        if room and client.state.synchronized:
            moved += client.send(zeros[:room], now) > 0
        if now >= next_sample:
            flights.append(client.flight_size() // client.mss)
            next_sample += RTT
        if moved:
            continue
        deadlines = [d for d in (a.next_deadline(), b.next_deadline()) if d is not None]
        now = clock.set(max(now, min([*deadlines, next_sample])))
    else:
        raise AssertionError("the transfer did not reach its end time")
    acked = client.snd_una - client.iss - 1
    return flights, b, acked


def test_cubic_after_a_loss_concave_plateau_convex_in_segments_per_rtt() -> None:
    flights, stack, cubic_acked = transfer(CongestionControlName.CUBIC, 10.0)
    connection = next(iter(stack.tcp.connections.values()))
    congestion = connection.congestion
    assert isinstance(congestion, Cubic)
    w_max = congestion.w_max  # the window when the loss was found: 66 segments
    assert 60 <= w_max <= 70
    mss = connection.mss
    # RFC 9438 4.6: ssthresh = 0.7 * FlightSize (the whole window was in flight), not half.
    assert congestion.ssthresh == pytest.approx(0.7 * w_max * mss, abs=mss)
    after = flights.index(max(flights[:8])) + 1  # the RTT after the one of the loss
    curve = flights[after:]
    # 46 of 66: PRR (RFC 6937) brings cwnd down to ssthresh by the end of recovery, and the
    # concave growth may add a segment or two within that first RTT.
    assert curve[0] == pytest.approx(0.7 * w_max, abs=2.5)
    gains = [b - a for a, b in itertools.pairwise(curve)]
    # Concave: the gain per RTT shrinks as the window approaches W_max ...
    assert sum(gains[0:4]) > sum(gains[4:8]) > sum(gains[8:12]) > 0
    # ... the plateau: K = cbrt((66 - 46) / 0.4) = 3.7 s after the stage began, the window
    # stays within two segments of W_max for more than a second ...
    assert congestion.k == pytest.approx(((w_max - congestion.cwnd_epoch) / 0.4) ** (1 / 3))
    assert 3.0 < congestion.k < 4.5
    plateau = [f for f in curve if abs(f - w_max) <= 2]
    assert len(plateau) * RTT > 1.0
    # ... then convex: past W_max the gain per RTT grows, and cwnd leaves W_max far behind.
    top = curve.index(max(plateau))
    convex = gains[top:]
    assert sum(convex[-4:]) > sum(convex[-8:-4]) > sum(convex[-12:-8]) > 0
    assert curve[-1] > 1.5 * w_max
    assert congestion.region == "convex"
    # NewReno on the same path and loss: ssthresh at half, then at most one segment per RTT
    # (AIMD), so it carries less in the same ten seconds.
    reno_flights, reno_stack, reno_acked = transfer(CongestionControlName.NEWRENO, 10.0)
    reno = next(iter(reno_stack.tcp.connections.values())).congestion
    assert congestion.ssthresh / reno.ssthresh == pytest.approx(0.7 / 0.5, abs=0.05)
    assert reno_flights[after] == pytest.approx(0.5 * w_max, abs=1)  # 33 of 66
    assert all(b - a <= 1 for a, b in itertools.pairwise(reno_flights[after:]))
    assert cubic_acked > reno_acked
