"""Two stacks pinging each other over a clean or impaired in-memory link, on a manual clock."""

from __future__ import annotations

import pytest

from pystack.ip.arp import ARPSettings, NeighbourState
from pystack.link.base import LinkKind
from pystack.stats import DropReason
from tests.sim.topology import A_IP, B_IP, TwoHosts, payload

BOTH_KINDS = pytest.mark.parametrize(
    "kind", [LinkKind.IP, LinkKind.ETHERNET], ids=["ip", "ethernet"]
)
SMALL_IMPAIRMENT = "loss=5%,dup=5%,reorder=5%,delay=20ms,jitter=5ms,seed=7"


# a clean link -----------------------------------------------------------------------------------
@BOTH_KINDS
def test_ping_over_clean_link_is_answered_at_once(kind: LinkKind) -> None:
    hosts = TwoHosts(kind)
    hosts.sim.settle()
    hosts.a.ping(B_IP, 1, 1, b"hello", now=0.0)
    assert hosts.sim.run_until(lambda: bool(hosts.a.echo_replies), timeout=1.0)
    [reply] = hosts.a.take_echo_replies()
    assert (reply.time, reply.source, reply.sequence, reply.data) == (0.0, B_IP, 1, b"hello")
    for stack in (hosts.a, hosts.b):
        assert {r: n for r, n in stack.counters.drops.items() if n} == {}


@BOTH_KINDS
@pytest.mark.parametrize("pinger", ["a", "b"])
def test_round_trip_over_delayed_link_is_exactly_twice_the_delay(
    kind: LinkKind, pinger: str
) -> None:
    hosts = TwoHosts(kind, "delay=20ms")
    hosts.sim.run_for(1.0)  # gratuitous ARPs settle
    if kind is LinkKind.ETHERNET:  # resolve both ways first, so only the echo is timed
        hosts.a.ping(B_IP, 9, 0, now=hosts.now)
        hosts.b.ping(A_IP, 9, 0, now=hosts.now)
        hosts.sim.run_for(1.0)
        hosts.a.take_echo_replies()
        hosts.b.take_echo_replies()
    sender = hosts.a if pinger == "a" else hosts.b
    series = hosts.ping_series(10, 0.013, 32, sender=sender)
    hosts.sim.run_for(1.0)
    replies = sender.take_echo_replies()
    assert [r.sequence for r in replies] == list(range(10))
    for reply in replies:
        assert reply.time - series.sent_at[reply.sequence] == pytest.approx(0.040, abs=1e-9)


# small pings, impaired --------------------------------------------------------------------------
@BOTH_KINDS
def test_100_small_pings_with_loss_dup_reorder_delay_match_byte_exact(kind: LinkKind) -> None:
    hosts = TwoHosts(kind, SMALL_IMPAIRMENT)
    series = hosts.ping_series(100, 0.01, 56)
    hosts.sim.run_for(5.0)
    replies = hosts.a.take_echo_replies()
    answered = hosts.assert_replies_match(replies, series, B_IP)
    assert len(answered) >= 75  # about 10% lost on a round trip at 5% each way
    assert len(replies) >= len(answered)
    assert hosts.impaired is not None
    impairments = hosts.impaired.impairment_statistics
    for direction in (impairments.outbound, impairments.inbound):
        assert direction.lost > 0 and direction.duplicated > 0 and direction.reordered > 0
    # Whatever was lost was lost on the link, not inside either stack.
    for stack in (hosts.a, hosts.b):
        assert {r: n for r, n in stack.counters.drops.items() if n} == {}


def test_reordering_and_jitter_keep_round_trips_bounded() -> None:
    hosts = TwoHosts(LinkKind.IP, "reorder=20%,delay=20ms,jitter=5ms,reorder_delay=10ms,seed=3")
    series = hosts.ping_series(100, 0.002, 24)
    hosts.sim.run_for(1.0)
    replies = hosts.a.take_echo_replies()
    assert hosts.assert_replies_match(replies, series, B_IP) == set(range(100))
    assert len(replies) == 100
    arrival = [r.sequence for r in replies]
    assert arrival != sorted(arrival)  # some overtook others
    for reply in replies:
        rtt = reply.time - series.sent_at[reply.sequence]
        assert 0.030 - 1e-9 <= rtt <= 0.070 + 1e-9  # 2 x (20 ms +- 5 ms) + at most 2 x 10 ms


@BOTH_KINDS
def test_every_frame_duplicated_gives_four_replies_per_ping(kind: LinkKind) -> None:
    hosts = TwoHosts(kind, "dup=100%")
    series = hosts.ping_series(20, 0.01, 40)
    hosts.sim.run_for(1.0)
    replies = hosts.a.take_echo_replies()
    assert hosts.assert_replies_match(replies, series, B_IP) == set(range(20))
    # The request arrives twice, so b answers twice, and each answer arrives twice.
    assert sorted(r.sequence for r in replies) == sorted(list(range(20)) * 4)
    assert hosts.b.counters.counters["icmp.echo_replies_sent"] == 40


def test_corrupted_frames_are_dropped_never_delivered() -> None:
    hosts = TwoHosts(LinkKind.ETHERNET, "corrupt=10%,seed=11")
    series = hosts.ping_series(200, 0.01, 100)
    hosts.sim.run_for(5.0)
    replies = hosts.a.take_echo_replies()
    answered = hosts.assert_replies_match(replies, series, B_IP)
    assert len(answered) >= 140
    assert hosts.impaired is not None
    assert hosts.impaired.impairment_statistics.outbound.corrupted > 0
    dropped = sum(sum(stack.counters.drops.values()) for stack in (hosts.a, hosts.b))
    assert dropped > 0  # checksums (and MAC checks) caught the flipped bits


# big, fragmented echoes -------------------------------------------------------------------------
@BOTH_KINDS
def test_60000_byte_echoes_arrive_intact_through_reordering_and_duplication(kind: LinkKind) -> None:
    hosts = TwoHosts(kind, "reorder=10%,dup=5%,delay=5ms,jitter=1ms,seed=5")
    series = hosts.ping_series(8, 0.05, 60_000)
    assert hosts.sim.run_until(lambda: len({r.sequence for r in hosts.a.echo_replies}) == 8, 5.0)
    replies = hosts.a.take_echo_replies()
    assert hosts.assert_replies_match(replies, series, B_IP) == set(range(8))
    assert hosts.b.counters.counters["ipv4.reassembled"] >= 8
    assert hosts.a.counters.counters["ipv4.reassembled"] >= 8
    for stack in (hosts.a, hosts.b):
        assert stack.counters.drops[DropReason.FRAGMENT_DUPLICATE] > 0
        assert stack.counters.drops[DropReason.FRAGMENT_OVERLAP] == 0
    # Late duplicates may start datagrams that never complete; they expire and free memory.
    hosts.sim.run_for(35.0)
    for stack in (hosts.a, hosts.b):
        assert len(stack.ip.reassembler) == 0
        assert stack.ip.reassembler.memory == 0


@BOTH_KINDS
def test_60000_byte_echoes_with_loss_may_be_lost_but_never_corrupted(kind: LinkKind) -> None:
    hosts = TwoHosts(kind, "loss=1%,reorder=5%,dup=2%,delay=5ms,seed=9")
    series = hosts.ping_series(20, 0.05, 60_000)
    hosts.sim.run_for(2.0)
    replies = hosts.a.take_echo_replies()
    answered = hosts.assert_replies_match(replies, series, B_IP)
    assert answered  # about 40% survive 82 fragments at 1% loss
    assert hosts.impaired is not None
    assert hosts.impaired.impairment_statistics.outbound.lost > 0
    # Incomplete datagrams time out (30 s), count FRAGMENT_TIMEOUT and give their memory back.
    hosts.sim.run_for(35.0)
    timeouts = sum(s.counters.drops[DropReason.FRAGMENT_TIMEOUT] for s in (hosts.a, hosts.b))
    assert timeouts > 0
    for stack in (hosts.a, hosts.b):
        assert stack.ip.reassembler.memory == 0
    assert len(hosts.a.take_echo_replies()) == 0  # nothing new, nothing wrong, arrived late


# determinism ------------------------------------------------------------------------------------
def run_scenario(seed: int) -> tuple[list[str], list[tuple[float, int]], list[object]]:
    hosts = TwoHosts(
        LinkKind.ETHERNET,
        f"loss=5%,dup=3%,reorder=5%,delay=10ms,jitter=3ms,seed={seed}",
        trace=True,
    )
    series = hosts.ping_series(30, 0.02, 64)
    big = payload(1000, 5000)
    hosts.a.ping(B_IP, 2, 1000, big, now=hosts.now)
    hosts.sim.run_for(3.0)
    replies = hosts.a.take_echo_replies()
    hosts.assert_replies_match([r for r in replies if r.identifier == 1], series, B_IP)
    timeline = [(r.time, r.sequence) for r in replies]
    assert hosts.impaired is not None
    statistics = [hosts.a.statistics(), hosts.b.statistics(), hosts.impaired.impairment_statistics]
    return hosts.lines, timeline, statistics


def test_same_seed_gives_the_same_run() -> None:
    first = run_scenario(7)
    second = run_scenario(7)
    assert first[0] == second[0]  # every trace line, with its time
    assert first[1] == second[1]
    assert first[2] == second[2]
    assert len(first[0]) > 100 and first[1]


def test_different_seed_gives_a_different_run() -> None:
    assert run_scenario(7)[0] != run_scenario(8)[0]


def test_trace_shows_both_hosts_and_drops() -> None:
    lines, _, _ = run_scenario(7)
    assert any(" a > " in line for line in lines)
    assert any(" b < " in line for line in lines)
    assert all(line.split(" ", 1)[0].replace(".", "").isdigit() for line in lines)


# ARP over an impaired link ----------------------------------------------------------------------
def test_arp_over_lossy_ethernet_eventually_resolves() -> None:
    hosts = TwoHosts(LinkKind.ETHERNET, "loss=40%,delay=2ms,seed=4")
    sequence = 0

    def answered() -> bool:
        return bool(hosts.a.echo_replies)

    # One ping a second; a failed resolution drops its packet and the next ping tries again.
    while not answered() and hosts.now < 60.0:
        hosts.a.ping(B_IP, 1, sequence, b"are you there", now=hosts.now)
        sequence += 1
        hosts.sim.run_until(answered, timeout=1.0)
    assert answered(), "no reply within 60 s at 40% loss"
    [reply, *_] = hosts.a.take_echo_replies()
    assert reply.data == b"are you there"
    entry = hosts.a.ip.arp.entry(B_IP)
    assert entry is not None and entry.mac == hosts.b.mac
    assert entry.state in (NeighbourState.REACHABLE, NeighbourState.PROBE, NeighbourState.STALE)
    assert hosts.impaired is not None
    assert hosts.impaired.impairment_statistics.outbound.lost > 0


def test_arp_with_more_retries_resolves_a_single_ping_through_heavy_loss() -> None:
    hosts = TwoHosts(
        LinkKind.ETHERNET, "loss=50%,seed=12", arp=ARPSettings(max_retries=30, retry_interval=0.5)
    )
    delivered = False
    for sequence in range(20):  # the echo itself may be lost after resolution: ping again
        hosts.a.ping(B_IP, 1, sequence, b"x", now=hosts.now)
        if hosts.sim.run_until(lambda: bool(hosts.a.echo_replies), timeout=2.0):
            delivered = True
            break
    assert delivered
    assert hosts.a.ip.arp.entry(B_IP) is not None
    assert hosts.a.counters.counters["arp.requests_sent"] >= 1
    assert hosts.a.counters.drops[DropReason.ARP_RESOLUTION_FAILED] == 0
