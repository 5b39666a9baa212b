"""The simulation driver itself: virtual time, deadlines, bounded runs."""

from __future__ import annotations

from pystack.ip.fragments import fragment
from pystack.link.base import LinkKind
from pystack.stats import DropReason
from pystack.wire.icmpv4 import ICMPv4Message
from pystack.wire.ipv4 import PROTO_ICMP, IPv4Packet
from tests.sim.topology import A_IP, B_IP, TwoHosts


def test_run_for_advances_the_clock_exactly() -> None:
    hosts = TwoHosts()
    hosts.sim.run_for(2.5)
    assert hosts.now == 2.5
    hosts.sim.run_for(0.0)
    assert hosts.now == 2.5


def test_run_until_false_predicate_stops_at_the_timeout() -> None:
    hosts = TwoHosts()
    assert hosts.sim.run_until(lambda: False, timeout=3.0) is False
    assert hosts.now == 3.0


def test_run_until_stops_as_soon_as_the_predicate_holds() -> None:
    hosts = TwoHosts(LinkKind.IP, "delay=100ms")
    hosts.a.ping(B_IP, 1, 1, now=0.0)
    assert hosts.sim.run_until(lambda: bool(hosts.a.echo_replies), timeout=10.0)
    assert hosts.now == 0.2


def test_clock_jumps_straight_to_a_30_second_timer() -> None:
    hosts = TwoHosts()
    first = fragment(
        IPv4Packet(A_IP, B_IP, PROTO_ICMP, ICMPv4Message.echo_request(1, 1, bytes(3000)).build()),
        1500,
    )[0]
    hosts.a.ip.send_packet(first, 0.0)
    hosts.sim.settle()
    assert hosts.sim.next_deadline() == 30.0
    steps = hosts.sim.steps
    hosts.sim.run_for(60.0)
    assert hosts.sim.steps - steps <= 3  # no polling in between
    assert hosts.b.counters.drops[DropReason.FRAGMENT_TIMEOUT] == 1
    assert hosts.a.counters.counters["icmp.received.type11"] == 1  # time exceeded came back


def test_frame_sent_by_a_timer_to_a_stack_polled_earlier_is_delivered_at_once() -> None:
    # b's echo reply leaves b while a, polled first, already had its turn in that round.
    hosts = TwoHosts(LinkKind.IP, "in.delay=50ms")
    hosts.b.ping(A_IP, 1, 1, now=0.0)
    hosts.sim.run_for(1.0)
    [reply] = hosts.b.take_echo_replies()
    assert reply.time == 0.05
