"""Fragmentation (``fragment``) and reassembly (``Reassembler``), driven directly."""

from __future__ import annotations

import itertools
import random

import pytest

from pystack.counters import DECLARED
from pystack.ip.fragments import FRAGMENT_OVERHEAD, Reassembler, ReassemblySettings, fragment
from pystack.stats import DropReason, Statistics
from pystack.wire.ipv4 import IPv4Packet
from tests.helpers.frames import datagram, piece


class Reassembly:
    """A Reassembler with its own counters."""

    def __init__(self, **settings: object) -> None:
        self.statistics = Statistics(DECLARED)
        self.reassembler = Reassembler(ReassemblySettings(**settings), self.statistics)  # type: ignore[arg-type]

    def add_all(self, fragments: list[IPv4Packet], now: float = 0.0) -> list[IPv4Packet]:
        whole = []
        for packet in fragments:
            done = self.reassembler.add(packet, now)
            if done is not None:
                whole.append(done)
        return whole

    @property
    def drops(self) -> dict[DropReason, int]:
        return {reason: n for reason, n in self.statistics.drops.items() if n}

    def assert_empty(self) -> None:
        assert len(self.reassembler) == 0
        assert self.reassembler.memory == 0
        assert self.reassembler.next_deadline() is None


# fragment() -------------------------------------------------------------------------------------
@pytest.mark.parametrize("mtu", [68, 576, 1006, 1500, 9000])
def test_fragment_sizes_fit_mtu_in_multiples_of_8(mtu: int) -> None:
    original = datagram(20_000)
    fragments = fragment(original, mtu)
    assert len(fragments) > 1
    offset = 0
    for i, part in enumerate(fragments):
        last = i == len(fragments) - 1
        assert part.total_length <= mtu
        assert part.fragment_offset == offset
        assert part.more_fragments is not last
        if not last:
            assert len(part.payload) % 8 == 0
            assert len(part.payload) == (mtu - 20) & ~7  # as full as the MTU allows
        assert (part.src, part.dst, part.protocol, part.identification, part.ttl) == (
            original.src,
            original.dst,
            original.protocol,
            original.identification,
            original.ttl,
        )
        # Every fragment builds and parses back (valid headers, checksums).
        assert IPv4Packet.parse(part.build()) == part
        offset += len(part.payload)
    assert offset == len(original.payload)
    assert b"".join(p.payload for p in fragments) == original.payload


def test_fragment_of_small_packet_is_the_packet() -> None:
    small = datagram(100)
    assert fragment(small, 1500) == [small]
    exact = datagram(1480)
    assert fragment(exact, 1500) == [exact]
    assert len(fragment(datagram(1481), 1500)) == 2


def test_fragment_copies_only_copied_options_to_later_fragments() -> None:
    record_route = bytes([7, 7, 4]) + bytes(4) + b"\x01"  # not copied (class 0, copy bit 0)
    router_alert = bytes([0x94, 4, 0, 0])  # copied (copy bit 1)
    options = record_route + router_alert  # 12 bytes
    original = datagram(3000, options=options)
    fragments = fragment(original, 1000)
    assert fragments[0].options == options
    assert all(part.options == router_alert for part in fragments[1:])
    for part in fragments:
        assert part.total_length <= 1000
        assert part.more_fragments is not (part is fragments[-1])
    assert len(fragments[0].payload) == (1000 - 20 - 12) & ~7
    assert len(fragments[1].payload) == (1000 - 20 - 4) & ~7
    [whole] = Reassembly().add_all(list(reversed(fragments)))
    assert whole == original


def test_fragment_with_only_uncopied_options_sends_later_fragments_without_options() -> None:
    original = datagram(3000, options=bytes([7, 7, 4]) + bytes(4) + b"\x00")
    fragments = fragment(original, 1500)
    assert [len(p.options) for p in fragments] == [8, 0, 0]


def test_refragmenting_a_fragment_keeps_its_place_and_more_fragments() -> None:
    original = datagram(6000)
    first, *rest = fragment(original, 4000)
    assert first.more_fragments
    smaller = fragment(first, 1500)
    assert all(p.more_fragments for p in smaller)
    assert smaller[0].fragment_offset == 0
    later = fragment(rest[0], 1500)
    assert later[0].fragment_offset == rest[0].fragment_offset
    assert later[-1].more_fragments is False
    [whole] = Reassembly().add_all(smaller + later)
    assert whole == original


def test_fragment_rejects_mtu_with_no_room_for_data() -> None:
    with pytest.raises(ValueError):
        fragment(datagram(100, options=bytes(40)), 60)


# reassembly, driven directly --------------------------------------------------------------------
def test_reassembly_in_order() -> None:
    original = datagram(4000)
    reassembly = Reassembly()
    fragments = fragment(original, 1500)
    assert reassembly.add_all(fragments[:-1]) == []
    assert len(reassembly.reassembler) == 1
    assert reassembly.reassembler.memory == sum(
        len(p.payload) + FRAGMENT_OVERHEAD for p in fragments[:-1]
    )
    assert reassembly.add_all(fragments[-1:]) == [original]
    reassembly.assert_empty()
    assert reassembly.drops == {}
    assert reassembly.statistics.counters["ipv4.reassembled"] == 1


@pytest.mark.parametrize("order", ["reversed", "shuffled", "last-first", "middle-out"])
def test_reassembly_out_of_order(order: str) -> None:
    original = datagram(12_000)
    fragments = fragment(original, 1500)
    if order == "reversed":
        fragments.reverse()
    elif order == "shuffled":
        random.Random(3).shuffle(fragments)
    elif order == "last-first":
        fragments = fragments[-1:] + fragments[:-1]
    else:
        middle = len(fragments) // 2
        fragments = fragments[middle:] + fragments[:middle][::-1]
    reassembly = Reassembly()
    assert reassembly.add_all(fragments) == [original]
    reassembly.assert_empty()


def test_every_order_of_four_fragments_reassembles() -> None:
    original = datagram(5000)
    fragments = fragment(original, 1500)
    assert len(fragments) == 4
    for order in itertools.permutations(fragments):
        reassembly = Reassembly()
        assert reassembly.add_all(list(order)) == [original]
        reassembly.assert_empty()


def test_exact_duplicates_are_dropped_and_datagram_still_completes() -> None:
    original = datagram(6000)
    fragments = fragment(original, 1500)
    doubled = [p for p in fragments[:-1] for _ in range(2)] + fragments[-1:]
    reassembly = Reassembly()
    assert reassembly.add_all(doubled) == [original]
    assert reassembly.drops == {DropReason.FRAGMENT_DUPLICATE: len(fragments) - 1}
    reassembly.assert_empty()


def test_duplicate_after_completion_starts_a_new_datagram_that_times_out() -> None:
    original = datagram(3000)
    fragments = fragment(original, 1500)
    reassembly = Reassembly(timeout=30.0)
    assert reassembly.add_all(fragments) == [original]
    assert reassembly.add_all(fragments[:1], now=1.0) == []
    assert reassembly.reassembler.next_deadline() == 31.0
    assert reassembly.reassembler.expire(31.0) == [fragments[0]]
    assert reassembly.drops == {DropReason.FRAGMENT_TIMEOUT: 1}
    reassembly.assert_empty()


@pytest.mark.parametrize(
    ("second_start", "second_size"),
    [(8, 16), (0, 8), (0, 24), (16, 16), (8, 8)],
    ids=["straddles-end", "prefix-of-first", "longer-than-first", "covers-next", "inside"],
)
def test_overlap_discards_the_whole_datagram(second_start: int, second_size: int) -> None:
    reassembly = Reassembly()
    reassembler = reassembly.reassembler
    assert reassembler.add(piece(0, b"A" * 16, True), 0.0) is None
    assert reassembler.add(piece(24, b"C" * 8, True), 0.0) is None
    assert reassembler.add(piece(second_start, b"B" * second_size, True), 0.0) is None
    assert reassembly.drops == {DropReason.FRAGMENT_OVERLAP: 1}
    reassembly.assert_empty()
    # What arrives afterwards starts from scratch: the old pieces are gone.
    assert reassembler.add(piece(16, b"D" * 8, False), 0.0) is None
    assert len(reassembler) == 1


def test_same_offset_with_different_bytes_is_an_overlap_not_a_duplicate() -> None:
    reassembly = Reassembly()
    reassembly.add_all([piece(0, b"A" * 16, True), piece(0, b"Z" * 16, True)])
    assert reassembly.drops == {DropReason.FRAGMENT_OVERLAP: 1}
    reassembly.assert_empty()


@pytest.mark.parametrize(
    "fragments",
    [
        [piece(0, bytes(16), True), piece(24, bytes(8), False), piece(40, bytes(8), False)],
        [piece(16, bytes(8), False), piece(24, bytes(8), True)],
        [piece(32, bytes(8), True), piece(16, bytes(8), False)],
        [piece(0, bytes(12), True)],
    ],
    ids=["second-last-other-end", "beyond-end", "end-before-data", "not-multiple-of-8"],
)
def test_inconsistent_end_discards_the_datagram(fragments: list[IPv4Packet]) -> None:
    reassembly = Reassembly()
    assert reassembly.add_all(fragments) == []
    assert reassembly.drops == {DropReason.FRAGMENT_INCONSISTENT: 1}
    reassembly.assert_empty()


def test_last_fragment_repeated_identically_is_a_duplicate() -> None:
    reassembly = Reassembly()
    reassembly.add_all([piece(16, bytes(8), False), piece(16, bytes(8), False)])
    assert reassembly.drops == {DropReason.FRAGMENT_DUPLICATE: 1}
    assert reassembly.add_all([piece(0, bytes(16), True)]) != []


def test_ping_of_death_over_65535_is_dropped() -> None:
    reassembly = Reassembly()
    fragments = [piece(offset, bytes(1480), True) for offset in range(0, 65_120, 1480)]
    fragments.append(piece(65_120, bytes(400), False))  # ends at 65520 + 20 header > 65535
    assert reassembly.add_all(fragments) == []
    assert reassembly.drops == {DropReason.FRAGMENT_TOO_LARGE: 1}
    reassembly.assert_empty()


def test_largest_legal_datagram_reassembles() -> None:
    original = datagram(65_535 - 20)
    reassembly = Reassembly()
    [whole] = reassembly.add_all(fragment(original, 1500))
    assert whole == original and whole.total_length == 65_535
    assert IPv4Packet.parse(whole.build()) == whole


def test_first_fragment_options_pushing_the_datagram_over_65535_is_too_large() -> None:
    # The end is legal without options (65515 + 20 = 65535); the first fragment's 4 option bytes,
    # arriving last, would make a 65539-byte datagram that cannot even be built.
    reassembly = Reassembly()
    last = piece(65_512, bytes(3), False)
    middle = piece(8, bytes(65_504), True)
    first = piece(0, bytes(8), True, options=bytes([0x94, 4, 0, 0]))
    assert reassembly.add_all([last, middle, first]) == []
    assert reassembly.drops == {DropReason.FRAGMENT_TOO_LARGE: 1}
    reassembly.assert_empty()


def test_timeout_reports_first_fragment_only_if_it_arrived() -> None:
    reassembly = Reassembly(timeout=30.0)
    reassembler = reassembly.reassembler
    fragments = fragment(datagram(3000, identification=1), 1500)
    reassembler.add(fragments[0], 0.0)
    without_first = fragment(datagram(3000, identification=2), 1500)
    reassembler.add(without_first[1], 5.0)
    assert reassembler.next_deadline() == 30.0
    assert reassembler.expire(29.999) == []
    assert reassembler.expire(30.0) == [fragments[0]]
    assert reassembler.next_deadline() == 35.0
    assert reassembler.expire(35.0) == []  # no first fragment: nothing to quote
    assert reassembly.drops == {DropReason.FRAGMENT_TIMEOUT: 2}
    reassembly.assert_empty()


def test_memory_bound_evicts_oldest_and_accounting_returns_to_zero() -> None:
    cost = 1000 + FRAGMENT_OVERHEAD
    reassembly = Reassembly(memory_limit=3 * cost + 100)  # room for small last fragments
    reassembler = reassembly.reassembler
    firsts = {i: piece(0, bytes([i]) * 1000, True, identification=i) for i in range(4)}
    for i in range(3):
        reassembler.add(firsts[i], float(i))
    assert reassembler.memory == 3 * cost
    assert reassembly.drops == {}
    reassembler.add(firsts[3], 3.0)  # no room: the oldest (id 0) goes
    assert reassembly.drops == {DropReason.FRAGMENT_MEMORY_LIMIT: 1}
    assert reassembler.memory == 3 * cost
    assert len(reassembler) == 3
    # Datagrams 1..3 complete; 0 has lost its first half and would start again.
    for i in (1, 2, 3):
        [whole] = reassembly.add_all([piece(1000, bytes([i]) * 10, False, identification=i)])
        assert whole.payload == bytes([i]) * 1010
    assert reassembler.memory == 0
    assert len(reassembler) == 0


def test_single_fragment_bigger_than_the_memory_bound_is_refused() -> None:
    reassembly = Reassembly(memory_limit=1000)
    reassembly.add_all([piece(0, bytes(1480), True)])
    assert reassembly.drops == {DropReason.FRAGMENT_MEMORY_LIMIT: 1}
    reassembly.assert_empty()


def test_too_many_datagrams_evicts_the_oldest() -> None:
    reassembly = Reassembly(max_datagrams=3)
    reassembler = reassembly.reassembler
    for i in range(4):
        reassembler.add(piece(0, bytes(8), True, identification=i), float(i))
    assert len(reassembler) == 3
    assert reassembly.drops == {DropReason.FRAGMENT_TOO_MANY_DATAGRAMS: 1}
    assert reassembler.next_deadline() == 1.0 + 30.0  # id 0 (the oldest) is gone
    completed = [
        reassembler.add(piece(8, bytes(8), False, identification=i), 4.0) for i in (1, 2, 3)
    ]
    assert all(c is not None for c in completed)
    # Datagram 0's first half is gone: its last fragment starts a new, incomplete datagram.
    assert reassembler.add(piece(8, bytes(8), False, identification=0), 4.0) is None
    assert len(reassembler) == 1


def test_too_many_fragments_discards_the_datagram() -> None:
    reassembly = Reassembly(max_fragments=4)
    fragments = [piece(8 * i, bytes(8), True) for i in range(5)]
    assert reassembly.add_all(fragments) == []
    assert reassembly.drops == {DropReason.FRAGMENT_TOO_MANY: 1}
    reassembly.assert_empty()


def test_different_keys_reassemble_independently() -> None:
    a = fragment(datagram(3000, identification=1), 1500)
    b = fragment(datagram(3000, identification=1)._replace(protocol=17), 1500)
    c = fragment(datagram(3001, identification=2), 1500)
    interleaved = [x for trio in zip(a, b, c, strict=False) for x in trio] + c[len(a) :]
    whole = Reassembly().add_all(interleaved)
    assert sorted((w.protocol, w.identification, len(w.payload)) for w in whole) == [
        (17, 1, 3000),
        (99, 1, 3000),
        (99, 2, 3001),
    ]
