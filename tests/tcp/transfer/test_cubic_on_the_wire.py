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
from tests.tcp.transfer.handshakes import SACK
from tests.tcp.transfer.test_congestion_control import INITIAL_WINDOW

CUBIC = TCPSettings(congestion_control=CongestionControlName.CUBIC)


def test_fast_retransmit_keeps_seventy_percent_and_the_next_stage_starts_reno_friendly() -> None:
    # The same loss as test_sack_recovery_retransmits_only_the_holes' first hole: NewReno goes
    # to 7300 (half of the 14600 in flight), CUBIC to 10220 (0.7 of it), so it sends two more
    # segments during recovery.
    result = run(
        SACK
        + INITIAL_WINDOW
        + """
        +0.1 < . 1:1(0) ack 1 win 65535 <sack 1461:2921>
        +0 > . 14601:16061(1460) ack 1              # limited transmit
        +0 < . 1:1(0) ack 1 win 65535 <sack 1461:4381>
        +0 > . 16061:17521(1460) ack 1
        +0 < . 1:1(0) ack 1 win 65535 <sack 1461:5841>
        +0 > . 1:1461(1460) ack 1                   # three SACKed: the first segment is lost
        +0 expect info in_recovery True
        +0 expect info ssthresh 10220               # RFC 9438 4.6: 14600 * 0.7
        +0 expect info cwnd 10220                   # RFC 6675: cwnd = ssthresh
        +0 < . 1:1(0) ack 1 win 65535 <sack 1461:7301>
        +0 < . 1:1(0) ack 1 win 65535 <sack 1461:8761>
        +0 < . 1:1(0) ack 1 win 65535 <sack 1461:10221>
        +0 > . 17521:18981(1460) ack 1              # pipe fell below 7 segments: new data
        +0 < . 1:1(0) ack 1 win 65535 <sack 1461:11681>
        +0 > . 18981:20441(1460) ack 1
        +0 < . 1:1(0) ack 1 win 65535 <sack 1461:13141>
        +0 > . 20441:21901(1460) ack 1
        +0 < . 1:1(0) ack 1 win 65535 <sack 1461:14601>
        +0 > . 21901:23361(1460) ack 1
        +0 < . 1:1(0) ack 1 win 65535 <sack 1461:16061>
        +0 > . 23361:24821(1460) ack 1
        +0 < . 1:1(0) ack 1 win 65535 <sack 1461:17521>
        +0 > . 24821:26281(1460) ack 1
        +0.05 < . 1:1(0) ack 17521 win 65535        # the retransmission arrived: recovery ends
        +0 > . 26281:27741(1460) ack 1
        +0 expect info in_recovery False
        +0 expect info cwnd 10220                   # min(ssthresh, FlightSize + SMSS)
        +0.1 < . 1:1(0) ack 27741 win 65535         # all acknowledged: congestion avoidance
        +0 > . 27741:29201(1460) ack 1
        +0 > . 29201:30661(1460) ack 1
        +0 > . 30661:32121(1460) ack 1
        +0 > . 32121:33581(1460) ack 1
        +0 > . 33581:35041(1460) ack 1
        +0 > . 35041:36501(1460) ack 1
        +0 > . 36501:37961(1460) ack 1
        # RFC 9438 4.3: W_cubic(0) = cwnd_epoch = 7 segments is below W_est = 7 + alpha_cubic
        # * 7 / 7, so this first ACK sets cwnd to W_est: int(7.529 * 1460).
        +0 expect info cwnd 10992
        """,
        tcp_settings=CUBIC,
    )
    assert result.connection is not None
    state = result.connection.tcp_info()["congestion_state"]
    assert isinstance(state, dict)
    assert state["region"] == "reno-friendly"
    assert state["w_max"] == 14600  # the window when the loss was found (10 segments)
    assert state["cwnd_epoch"] == 10220
    assert state["k"] == pytest.approx((3 / 0.4) ** (1 / 3))  # cbrt((10 - 7) / C) = 1.957 s


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
    w_max = round(congestion.w_max)
    assert w_max == 66  # the window when the loss was found
    # RFC 9438 4.6: ssthresh = 0.7 * FlightSize (66 segments in flight), not half of it.
    assert congestion.ssthresh == pytest.approx(0.7 * 66 * connection.mss, abs=connection.mss)
    after = flights.index(max(flights[:8])) + 1  # the RTT after the one of the loss
    curve = flights[after:]
    assert curve[0] == 46  # 0.7 * 66
    gains = [b - a for a, b in itertools.pairwise(curve)]
    # Concave: the gain per RTT shrinks as the window approaches W_max ...
    assert sum(gains[0:4]) > sum(gains[4:8]) > sum(gains[8:12]) > 0
    # ... the plateau: K = cbrt((66 - 46) / 0.4) = 3.7 s after the stage began, the window
    # stays within two segments of W_max for more than a second ...
    k = (20 / 0.4) ** (1 / 3)
    plateau = [f for f in curve if abs(f - w_max) <= 2]
    assert len(plateau) * RTT > 1.0
    assert congestion.k == pytest.approx(k, abs=0.15)  # (cwnd_epoch is 46.x segments)
    # ... then convex: past W_max the gain per RTT grows, and cwnd leaves W_max far behind.
    top = curve.index(max(plateau))
    convex = gains[top:]
    assert sum(convex[-4:]) > sum(convex[-8:-4]) > sum(convex[-12:-8]) > 0
    assert curve[-1] > 1.5 * w_max
    assert congestion.region == "convex"
    # NewReno on the same path and loss: ssthresh at half, then one segment per two RTTs
    # (one ACK per two segments), so it carries less in the same ten seconds.
    reno_flights, reno_stack, reno_acked = transfer(CongestionControlName.NEWRENO, 10.0)
    reno = next(iter(reno_stack.tcp.connections.values())).congestion
    assert reno.ssthresh == 33 * 1448  # half of 66 segments
    assert max(reno_flights[after + 5 :]) < 60
    assert cubic_acked > 1.3 * reno_acked
