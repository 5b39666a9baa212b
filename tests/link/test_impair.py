"""ImpairmentLink over a MemoryLink pair, driven by a manual clock: every impairment, both ways."""

from __future__ import annotations

import random
from collections.abc import Iterator

import pytest

from pystack.link.base import Link, LinkKind
from pystack.link.impair import ImpairmentConfig, ImpairmentLink
from pystack.link.memory import MemoryLink

Trace = list[tuple[float, bytes]]


class Bench:
    """A stack-side ImpairmentLink and the raw peer end it talks to, with a manual clock."""

    def __init__(self, spec: str, kind: LinkKind = LinkKind.IP, rng: random.Random | None = None):
        self.inner, self.peer = MemoryLink.pair(kind=kind, capacity=100_000)
        self.link = ImpairmentLink(self.inner, ImpairmentConfig.parse(spec), rng)
        self.now = 0.0
        self.at_peer: Trace = []  # everything the peer has received, with times
        self.at_stack: Trace = []  # everything the stack has received, with times

    def stack_sends(self, frame: bytes) -> None:
        self.link.send(frame, self.now)

    def peer_sends(self, frame: bytes) -> None:
        self.peer.send(frame, self.now)

    def run_until(self, end: float, max_steps: int = 100_000) -> tuple[Trace, Trace]:
        """Step the clock to each deadline up to ``end``; (new at the peer, new at the stack)."""
        at_peer: Trace = []
        at_stack: Trace = []
        for _ in range(max_steps):
            at_stack.extend((self.now, f) for f in self.link.receive(self.now, 64))
            self.link.poll(self.now)
            at_peer.extend((self.now, f) for f in self.peer.receive(self.now, 100_000))
            if self.inner.pending():
                continue  # the fd would be readable: the stack thread would call receive again
            deadline = self.link.next_deadline()
            if deadline is None or deadline > end:
                break
            self.now = max(self.now, deadline)
        self.now = max(self.now, end)
        self.at_peer.extend(at_peer)
        self.at_stack.extend(at_stack)
        return at_peer, at_stack

    def close(self) -> None:
        self.link.close()
        self.peer.close()


@pytest.fixture
def bench_factory() -> Iterator[type[Bench]]:
    made: list[Bench] = []

    class Tracked(Bench):
        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, **kwargs)  # type: ignore[arg-type]
            made.append(self)

    yield Tracked
    for bench in made:
        bench.close()


def frames(count: int, size: int = 20) -> list[bytes]:
    return [n.to_bytes(4, "big") + bytes(size - 4) for n in range(count)]


def numbers(trace: Trace) -> list[int]:
    return [int.from_bytes(frame[:4], "big") for _, frame in trace]


def test_impairment_link_is_a_link_and_passes_frames_unchanged(bench_factory: type[Bench]) -> None:
    bench = bench_factory("")
    assert isinstance(bench.link, Link)
    sent = frames(50)
    for frame in sent:
        bench.stack_sends(frame)
        bench.peer_sends(frame)
    assert bench.link.next_deadline() is None
    at_peer, at_stack = bench.run_until(0.0)
    assert [f for _, f in at_peer] == sent
    assert [f for _, f in at_stack] == sent


def run_impaired(seed: int) -> tuple[Trace, Trace]:
    spec = f"loss=10%,dup=5%,reorder=10%,delay=3ms,jitter=2ms,corrupt=5%,rate=20mbit,seed={seed}"
    bench = Bench(spec)
    try:
        for n, frame in enumerate(frames(400, 200)):
            bench.run_until(n * 0.0005)
            bench.stack_sends(frame)
            bench.peer_sends(frame)
        bench.run_until(10.0)
    finally:
        bench.close()
    return bench.at_peer, bench.at_stack


def test_impairment_same_seed_gives_identical_outputs_and_timings() -> None:
    first = run_impaired(seed=7)
    second = run_impaired(seed=7)
    assert first == second
    assert len(first[0]) > 300 and len(first[1]) > 300


def test_impairment_different_seeds_differ() -> None:
    assert run_impaired(seed=7) != run_impaired(seed=8)


def test_impairment_directions_draw_from_separate_generators() -> None:
    at_peer, at_stack = run_impaired(seed=11)
    assert numbers(at_peer) != numbers(at_stack)


def test_impairment_injected_rng_makes_runs_reproducible(bench_factory: type[Bench]) -> None:
    outputs = []
    for _ in range(2):
        bench = bench_factory("loss=30%", rng=random.Random(99))
        for frame in frames(200):
            bench.stack_sends(frame)
        outputs.append(numbers(bench.run_until(0.0)[0]))
    assert outputs[0] == outputs[1]
    assert len(outputs[0]) < 200


def test_impairment_loss_rate_near_configured(bench_factory: type[Bench]) -> None:
    bench = bench_factory("loss=10%,seed=1")
    for frame in frames(5000):
        bench.stack_sends(frame)
    delivered = len(bench.run_until(0.0)[0])
    lost = bench.link.impairment_statistics.outbound.lost
    assert delivered + lost == 5000
    assert 4350 <= delivered <= 4650  # 10% +- 3% (about 7 standard deviations)


def test_impairment_duplicate_rate_near_configured(bench_factory: type[Bench]) -> None:
    bench = bench_factory("dup=5%,seed=2")
    for frame in frames(5000):
        bench.peer_sends(frame)
    delivered = numbers(bench.run_until(0.0)[1])
    duplicated = bench.link.impairment_statistics.inbound.duplicated
    assert len(delivered) == 5000 + duplicated
    assert 150 <= duplicated <= 350
    assert sorted(set(delivered)) == list(range(5000))
    assert delivered == sorted(delivered)  # a duplicate follows its original


def test_impairment_outbound_delay_releases_at_due_time(bench_factory: type[Bench]) -> None:
    bench = bench_factory("delay=20ms")
    bench.now = 1.0
    bench.stack_sends(b"late")
    assert bench.link.next_deadline() == pytest.approx(1.020)
    assert bench.run_until(1.0199)[0] == []
    at_peer, _ = bench.run_until(1.5)
    assert [f for _, f in at_peer] == [b"late"]
    assert at_peer[0][0] == pytest.approx(1.020)
    assert bench.link.impairment_statistics.outbound.delayed == 1


def test_impairment_inbound_delay_held_until_receive_at_due_time(
    bench_factory: type[Bench],
) -> None:
    bench = bench_factory("delay=20ms")
    bench.peer_sends(b"in")
    assert bench.link.receive(0.0) == []
    assert bench.link.next_deadline() == pytest.approx(0.020)
    assert bench.link.receive(0.019) == []
    assert bench.link.receive(0.020) == [b"in"]
    assert bench.link.next_deadline() is None


def test_impairment_outbound_due_frames_are_flushed_by_send_and_receive(
    bench_factory: type[Bench],
) -> None:
    bench = bench_factory("out.delay=10ms")
    bench.link.send(b"first", 0.0)
    bench.link.send(b"second", 0.015)  # the first is due: written before the second is held
    assert bench.peer.receive(0.015) == [b"first"]
    bench.link.receive(0.025)
    assert bench.peer.receive(0.025) == [b"second"]


def test_impairment_jitter_keeps_order(bench_factory: type[Bench]) -> None:
    bench = bench_factory("delay=10ms,jitter=9ms,seed=3")
    for n, frame in enumerate(frames(500)):
        bench.now = n * 0.0001
        bench.stack_sends(frame)
    at_peer, _ = bench.run_until(1.0)
    assert numbers(at_peer) == list(range(500))
    times = [t for t, _ in at_peer]
    assert times == sorted(times)
    assert max(t - n * 0.0001 for n, t in enumerate(times)) > 0.012


def test_impairment_reorder_actually_reorders_and_loses_nothing(bench_factory: type[Bench]) -> None:
    bench = bench_factory("reorder=20%,reorder_delay=5ms,seed=4")
    delivered: list[int] = []
    for n, frame in enumerate(frames(300)):
        bench.now = n * 0.001
        bench.stack_sends(frame)
        delivered.extend(numbers(bench.run_until(bench.now)[0]))
    delivered.extend(numbers(bench.run_until(1.0)[0]))
    reordered = bench.link.impairment_statistics.outbound.reordered
    assert 30 <= reordered <= 90
    assert sorted(delivered) == list(range(300))
    assert delivered != list(range(300))
    late = [n for position, n in enumerate(delivered) if n < position]
    assert late, "no frame was overtaken"


def test_impairment_rate_spaces_frames_by_serialisation_time(bench_factory: type[Bench]) -> None:
    bench = bench_factory("rate=8kbit")  # 1000 bytes per second
    for frame in frames(10, size=100):
        bench.stack_sends(frame)
    at_peer, _ = bench.run_until(5.0)
    assert numbers(at_peer) == list(range(10))
    assert [t for t, _ in at_peer] == pytest.approx([0.1 * (n + 1) for n in range(10)])


def test_impairment_rate_tail_drops_when_queue_full(bench_factory: type[Bench]) -> None:
    bench = bench_factory("rate=8kbit,queue=5")
    for frame in frames(8, size=100):
        bench.stack_sends(frame)
    assert bench.link.impairment_statistics.outbound.queue_dropped == 3
    assert bench.link.held_frames() == (0, 5)
    assert numbers(bench.run_until(5.0)[0]) == [0, 1, 2, 3, 4]


def test_impairment_delay_queue_is_bounded(bench_factory: type[Bench]) -> None:
    bench = bench_factory("in.delay=1s,in.queue=10")
    for frame in frames(25):
        bench.peer_sends(frame)
    assert bench.link.receive(0.0, limit=64) == []
    assert bench.link.impairment_statistics.inbound.queue_dropped == 15
    _, at_stack = bench.run_until(2.0)
    assert numbers(at_stack) == list(range(10))


def test_impairment_default_queue_bound_is_4096(bench_factory: type[Bench]) -> None:
    bench = bench_factory("delay=1s")
    for frame in frames(5000):
        bench.stack_sends(frame)
    assert bench.link.held_frames() == (0, 4096)
    assert bench.link.impairment_statistics.outbound.queue_dropped == 5000 - 4096


def test_impairment_corrupt_flips_exactly_one_bit(bench_factory: type[Bench]) -> None:
    bench = bench_factory("corrupt=100%,seed=5")
    sent = frames(200, size=64)
    for frame in sent:
        bench.stack_sends(frame)
    at_peer, _ = bench.run_until(0.0)
    assert bench.link.impairment_statistics.outbound.corrupted == 200
    for original, (_, received) in zip(sent, at_peer, strict=True):
        difference = int.from_bytes(original, "big") ^ int.from_bytes(received, "big")
        assert difference.bit_count() == 1


def test_impairment_mtu_clamp_drops_longer_frames(bench_factory: type[Bench]) -> None:
    bench = bench_factory("mtu=100")
    bench.stack_sends(bytes(100))
    bench.stack_sends(bytes(101))
    assert [f for _, f in bench.run_until(0.0)[0]] == [bytes(100)]
    assert bench.link.impairment_statistics.outbound.mtu_dropped == 1
    assert bench.link.mtu == 1500  # the clamp is a path property; the link still says 1500


def test_impairment_mtu_clamp_on_ethernet_counts_payload_only(bench_factory: type[Bench]) -> None:
    bench = bench_factory("mtu=100", kind=LinkKind.ETHERNET)
    bench.peer_sends(bytes(114))
    bench.peer_sends(bytes(115))
    assert [f for _, f in bench.run_until(0.0)[1]] == [bytes(114)]
    assert bench.link.impairment_statistics.inbound.mtu_dropped == 1


def test_impairment_directions_are_independent(bench_factory: type[Bench]) -> None:
    bench = bench_factory("in.loss=100%,out.delay=5ms")
    for frame in frames(20):
        bench.stack_sends(frame)
        bench.peer_sends(frame)
    at_peer, at_stack = bench.run_until(1.0)
    assert at_stack == []
    assert numbers(at_peer) == list(range(20))
    assert [t for t, _ in at_peer] == pytest.approx([0.005] * 20)
    statistics = bench.link.impairment_statistics
    assert (statistics.inbound.lost, statistics.outbound.lost) == (20, 0)
    assert (statistics.inbound.delayed, statistics.outbound.delayed) == (0, 20)


def test_impairment_receive_limit_keeps_rest_ready(bench_factory: type[Bench]) -> None:
    bench = bench_factory("dup=100%")
    for frame in frames(5):
        bench.peer_sends(frame)
    first = bench.link.receive(0.0, limit=4)
    assert len(first) == 4
    assert bench.link.next_deadline() == 0.0  # ready now, not in the future
    rest = bench.link.receive(0.0, limit=64)
    assert len(first) + len(rest) == 10
    assert bench.link.next_deadline() is None


def test_impairment_next_deadline_is_earliest_of_both_directions(
    bench_factory: type[Bench],
) -> None:
    bench = bench_factory("in.delay=30ms,out.delay=10ms")
    bench.peer_sends(b"in")
    bench.link.receive(0.0)
    assert bench.link.next_deadline() == pytest.approx(0.030)
    bench.stack_sends(b"out")
    assert bench.link.next_deadline() == pytest.approx(0.010)


def test_impairment_link_accepts_spec_text_and_delegates_fileno() -> None:
    inner, peer = MemoryLink.pair()
    link = ImpairmentLink(inner, "loss=1%,seed=3")
    try:
        assert link.config.seed == 3
        assert link.fileno() == inner.fileno()
        assert link.kind is LinkKind.IP
        assert link.statistics is inner.statistics
    finally:
        link.close()
        peer.close()
    assert inner.fileno() is None
