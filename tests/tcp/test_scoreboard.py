"""RFC 6675 SACK scoreboard with RFC 2883 D-SACK detection (pystack.tcp.scoreboard)."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from pystack.tcp.buffers import SACKScoreboard as ReExported
from pystack.tcp.scoreboard import SACKScoreboard
from pystack.tcp.seq import MASK, seq_add, seq_diff

MSS = 1000
UNA = 100_000


def seg(index: int, base: int = UNA) -> int:
    """The first sequence number of segment ``index`` (MSS-sized segments from ``base``)."""
    return seq_add(base, index * MSS)


def sacked(board: SACKScoreboard, *segments: int, base: int = UNA, segments_sent: int = 10) -> int:
    """The peer SACKs the given segment indexes (one block each); returns newly SACKed bytes."""
    blocks = [(seg(i, base), seg(i + 1, base)) for i in segments]
    return board.update(blocks, base, seg(segments_sent, base))


def test_buffers_re_exports_the_scoreboard() -> None:
    assert ReExported is SACKScoreboard


def test_update_merges_blocks_and_returns_newly_sacked_bytes() -> None:
    board = SACKScoreboard()
    assert sacked(board, 1, 2) == 2 * MSS
    assert board.blocks() == [(seg(1), seg(3))]
    assert board.sacked_bytes == 2 * MSS
    assert sacked(board, 4, 2) == MSS  # segment 2 again: only segment 4 is new
    assert board.blocks() == [(seg(1), seg(3)), (seg(4), seg(5))]
    assert sacked(board, 3) == MSS
    assert board.blocks() == [(seg(1), seg(5))] and len(board) == 1


def test_repeated_blocks_add_nothing() -> None:
    board = SACKScoreboard()
    sacked(board, 3)
    assert sacked(board, 3) == 0
    assert board.sacked_bytes == MSS


def test_blocks_outside_snd_una_to_snd_nxt_are_ignored() -> None:
    board = SACKScoreboard()
    snd_nxt = seg(10)
    blocks = [(seg(2), seg(3)), (seg(9), seg(11)), (seg(5), seg(5)), (seg(6), seg(4))]
    assert board.update(blocks, UNA, snd_nxt) == MSS
    assert board.blocks() == [(seg(2), seg(3))]
    assert board.dsack_count == 0


def test_dsack_first_block_below_snd_una_is_counted_and_ignored() -> None:
    # RFC 2883 4.1.1: a duplicate of data already acknowledged cumulatively.
    board = SACKScoreboard()
    assert board.update([(seg(-2), seg(-1)), (seg(3), seg(4))], UNA, seg(10)) == MSS
    assert board.dsack_count == 1
    assert board.blocks() == [(seg(3), seg(4))]


def test_dsack_first_block_inside_a_later_block_is_counted_and_ignored() -> None:
    # RFC 2883 4.1.2: a duplicate of out-of-order data already SACKed.
    board = SACKScoreboard()
    sacked(board, 3, 4, 5)
    blocks = [(seg(4), seg(4) + 10), (seg(3), seg(6))]
    assert board.update(blocks, UNA, seg(10)) == 0
    assert board.dsack_count == 1
    assert board.sacked_bytes == 3 * MSS


def test_validity_edges_are_exact() -> None:
    board = SACKScoreboard()
    snd_nxt = seg(10)
    assert board.update([(seg(9), snd_nxt + 1)], UNA, snd_nxt) == 0  # one byte past snd_nxt
    assert board.dsack_count == 0
    assert board.update([(UNA - 1, seg(1))], UNA, snd_nxt) == 0  # one byte below snd_una
    assert board.dsack_count == 1
    assert board.update([(UNA, seg(1)), (seg(9), snd_nxt)], UNA, snd_nxt) == 2 * MSS


def test_a_later_block_below_snd_una_is_not_dsack() -> None:
    board = SACKScoreboard()
    board.update([(seg(3), seg(4)), (seg(-2), seg(-1))], UNA, seg(10))
    assert board.dsack_count == 0 and board.blocks() == [(seg(3), seg(4))]


def test_advance_forgets_and_trims_below_snd_una() -> None:
    board = SACKScoreboard()
    sacked(board, 2, 3, 6)
    board.advance(seg(3) + 100)
    assert board.blocks() == [(seg(3) + 100, seg(4)), (seg(6), seg(7))]
    assert board.sacked_bytes == MSS - 100 + MSS
    board.advance(seg(8))
    assert board.blocks() == [] and board.sacked_bytes == 0


def test_update_with_a_new_cumulative_ack_forgets_below_it() -> None:
    board = SACKScoreboard()
    sacked(board, 2)
    assert board.update([(seg(5), seg(6))], seg(3), seg(10)) == MSS
    assert board.blocks() == [(seg(5), seg(6))] and board.sacked_bytes == MSS


def test_is_sacked_and_sacked_run() -> None:
    board = SACKScoreboard()
    sacked(board, 2, 3)
    assert not board.is_sacked(seg(2) - 1)
    assert board.is_sacked(seg(2)) and board.is_sacked(seg(4) - 1)
    assert not board.is_sacked(seg(4))
    assert board.sacked_run(seg(2) + 10) == 2 * MSS - 10
    assert board.sacked_run(seg(1)) == 0 and board.sacked_run(seg(5)) == 0


def test_highest_sacked_is_the_right_edge_of_the_top_block() -> None:
    board = SACKScoreboard()
    assert board.highest_sacked() is None
    sacked(board, 2, 7)
    assert board.highest_sacked() == seg(8)


def test_holes_lie_between_snd_una_and_the_highest_sacked_byte() -> None:
    board = SACKScoreboard()
    assert board.holes(UNA, seg(10)) == []
    sacked(board, 2, 5, 6)
    assert board.holes(UNA, seg(10)) == [(UNA, seg(2)), (seg(3), seg(5))]
    board.advance(seg(1))
    assert board.holes(seg(1), seg(10)) == [(seg(1), seg(2)), (seg(3), seg(5))]


def test_is_lost_after_more_than_two_segments_sacked_above() -> None:
    # RFC 6675 4 IsLost: more than (DupThresh - 1) * SMSS bytes SACKed above.
    board = SACKScoreboard()
    sacked(board, 1, 2)
    assert not board.is_lost(UNA, MSS)
    sacked(board, 3)
    assert board.is_lost(UNA, MSS)
    sacked(board, 5, 6)
    assert not board.is_lost(seg(4), MSS)  # two segments above are not enough


def test_is_lost_after_three_discontiguous_sacked_ranges_above() -> None:
    board = SACKScoreboard()
    tiny = [(seg(i), seg(i) + 10) for i in (2, 4)]
    board.update(tiny, UNA, seg(10))
    assert not board.is_lost(UNA, MSS)
    board.update([(seg(6), seg(6) + 10)], UNA, seg(10))
    assert board.is_lost(UNA, MSS)
    assert not board.is_lost(seg(3), MSS)


def test_is_lost_uses_the_given_dup_threshold() -> None:
    board = SACKScoreboard()
    sacked(board, 1)
    assert board.is_lost(UNA, MSS, dup_threshold=1)
    assert not board.is_lost(UNA, MSS, dup_threshold=2)


def test_pipe_without_sack_is_everything_outstanding() -> None:
    board = SACKScoreboard()
    assert board.pipe(UNA, seg(10), UNA, MSS) == 10 * MSS


def test_pipe_leaves_out_sacked_and_lost_and_counts_retransmissions() -> None:
    # Ten segments out; the first lost, 1-3 SACKed: 6 un-SACKed, not lost, still in flight.
    board = SACKScoreboard()
    sacked(board, 1, 2, 3)
    assert board.pipe(UNA, seg(10), UNA, MSS) == 6 * MSS
    # RFC 6675 SetPipe (b): the retransmission of segment 0 is in the network again.
    assert board.pipe(UNA, seg(10), seg(1), MSS) == 7 * MSS


def test_pipe_counts_a_retransmitted_segment_not_yet_lost_twice() -> None:
    board = SACKScoreboard()
    sacked(board, 5)  # not enough SACKed above for anything to count as lost
    assert board.pipe(UNA, seg(10), seg(1), MSS) == 9 * MSS + MSS


def test_next_retransmit_walks_the_lost_holes_in_order() -> None:
    board = SACKScoreboard()
    sacked(board, 2, 4, 5, 6)
    assert board.next_retransmit(UNA, seg(10), UNA, MSS) == (UNA, MSS)
    assert board.next_retransmit(UNA, seg(10), seg(1), MSS) == (seg(1), MSS)
    assert board.next_retransmit(UNA, seg(10), seg(2), MSS) == (seg(3), MSS)  # skips SACKed 2
    assert board.next_retransmit(UNA, seg(10), seg(4), MSS) is None  # nothing lost above


def test_next_retransmit_needs_the_hole_to_be_lost() -> None:
    board = SACKScoreboard()
    sacked(board, 1)
    assert board.next_retransmit(UNA, seg(10), UNA, MSS) is None
    assert board.next_unsacked(UNA, seg(10), UNA, MSS) == (UNA, MSS)  # NextSeg rule (3)
    assert board.next_unsacked(UNA, seg(10), seg(2), MSS) is None  # only below the top block


def test_next_retransmit_does_not_cross_a_sacked_block() -> None:
    board = SACKScoreboard()
    board.update([(UNA + 300, seg(5))], UNA, seg(10))
    assert board.next_retransmit(UNA, seg(10), UNA, MSS) == (UNA, 300)


def test_next_retransmit_starts_inside_a_partly_retransmitted_hole() -> None:
    board = SACKScoreboard()
    sacked(board, 3, 4, 5)
    assert board.next_retransmit(UNA, seg(10), UNA + 400, MSS) == (UNA + 400, MSS)
    assert board.next_retransmit(UNA, seg(10), seg(2) + 400, MSS) == (seg(2) + 400, 600)


def test_nothing_to_retransmit_without_sack_information() -> None:
    board = SACKScoreboard()
    assert board.next_retransmit(UNA, seg(10), UNA, MSS) is None
    assert board.next_unsacked(UNA, seg(10), UNA, MSS) is None


def test_scoreboard_works_across_the_2_32_wrap() -> None:
    base = MASK - 2 * MSS + 1  # segment 2 starts at 0
    board = SACKScoreboard()
    assert sacked(board, 1, 2, 3, base=base) == 3 * MSS
    assert board.blocks() == [(seg(1, base), seg(4, base))]
    assert seg(4, base) == 2 * MSS
    assert board.is_lost(base, MSS)
    assert board.holes(base, seg(10, base)) == [(base, seg(1, base))]
    assert board.next_retransmit(base, seg(10, base), base, MSS) == (base, MSS)
    assert board.pipe(base, seg(10, base), base, MSS) == 6 * MSS
    assert board.is_sacked(0) and board.is_sacked(MASK)
    board.advance(seg(3, base))
    assert board.blocks() == [(MSS, 2 * MSS)] and board.sacked_bytes == MSS


def test_scoreboard_keeps_at_most_max_ranges_dropping_the_highest() -> None:
    board = SACKScoreboard(max_ranges=64)
    for index in range(100):
        sacked(board, 2 * index, segments_sent=300)
    assert len(board) == 64
    assert board.highest_sacked() == seg(2 * 63 + 1)
    assert board.sacked_bytes == 64 * MSS


def test_clear_forgets_all_sack_information() -> None:
    board = SACKScoreboard()
    sacked(board, 1, 2, 3)
    board.clear()
    assert board.blocks() == [] and board.sacked_bytes == 0 and not board.is_lost(UNA, MSS)


# --- model-based: the RFC 6675 definitions, evaluated byte by byte -------------------------------

SPAN = 1200
SMALL_MSS = 100


def model_is_lost(sacked_set: set[int], seq: int, dup_threshold: int = 3) -> bool:
    above = [s for s in sacked_set if s > seq]
    runs = sum(1 for s in above if s - 1 not in sacked_set or s - 1 == seq)
    return runs >= dup_threshold or len(above) > (dup_threshold - 1) * SMALL_MSS


block = st.tuples(st.integers(-200, SPAN + 200), st.integers(0, 300))


@settings(max_examples=200, deadline=None)
@given(
    st.one_of(st.integers(0, MASK), st.integers(MASK - SPAN, MASK)),
    st.lists(st.lists(block, max_size=4), max_size=8),
    st.integers(0, SPAN + 50),
)
def test_scoreboard_matches_the_rfc_6675_definitions_byte_by_byte(
    base: int, acks: list[list[tuple[int, int]]], high_rxt_offset: int
) -> None:
    board = SACKScoreboard()
    model: set[int] = set()
    snd_nxt = seq_add(base, SPAN)
    dsacks = 0
    for option in acks:
        blocks = [(seq_add(base, left), seq_add(base, left + length)) for left, length in option]
        new = set()
        for index, (left, length) in enumerate(option):
            inside = any(lo <= left and left + length <= lo + ln for lo, ln in option[1:])
            if index == 0 and (left < 0 or inside):
                dsacks += 1
            elif left >= 0 and length > 0 and left + length <= SPAN:
                new |= set(range(left, left + length)) - model
        assert board.update(blocks, base, snd_nxt) == len(new)
        model |= new
        assert board.dsack_count == dsacks
    assert board.sacked_bytes == len(model)
    high_rxt = seq_add(base, high_rxt_offset)
    # IsLost and SetPipe, byte by byte.
    for offset in range(0, SPAN, 37):
        assert board.is_lost(seq_add(base, offset), SMALL_MSS) == model_is_lost(model, offset)
        assert board.is_sacked(seq_add(base, offset)) == (offset in model)
    pipe = sum(
        (not model_is_lost(model, s)) + (s < high_rxt_offset) for s in range(SPAN) if s not in model
    )
    assert board.pipe(base, snd_nxt, high_rxt, SMALL_MSS) == pipe
    # NextSeg rule (1).
    top = max(model, default=-1)
    candidates = [s for s in range(high_rxt_offset, top) if s not in model]
    expected = None
    if candidates and model_is_lost(model, candidates[0]):
        start = candidates[0]
        end = start
        while end < min(start + SMALL_MSS, SPAN) and end not in model:
            end += 1
        expected = (seq_add(base, start), end - start)
    assert board.next_retransmit(base, snd_nxt, high_rxt, SMALL_MSS) == expected
    holes = [(seq_diff(a, base), seq_diff(b, base)) for a, b in board.holes(base, snd_nxt)]
    assert [s for a, b in holes for s in range(a, b)] == [s for s in range(top) if s not in model]
