"""Send buffer, receive buffer and out-of-order reassembly (pystack.tcp.buffers)."""

from __future__ import annotations

import itertools
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pystack.tcp.buffers import COMPACT_MINIMUM, OutOfOrderQueue, ReceiveBuffer, SendBuffer
from pystack.tcp.seq import MASK, seq_add, seq_diff

# --- SendBuffer ---------------------------------------------------------------------------------


def test_send_buffer_write_takes_only_what_fits() -> None:
    buffer = SendBuffer(10)
    assert buffer.write(b"abcdef") == 6
    assert buffer.write(b"ghijkl") == 4
    assert len(buffer) == 10 and buffer.room == 0
    assert buffer.write(b"x") == 0
    assert buffer.read(0, 100) == b"abcdefghij"


def test_send_buffer_read_is_relative_to_the_front_and_short_at_the_end() -> None:
    buffer = SendBuffer(100)
    buffer.write(b"0123456789")
    assert buffer.read(3, 4) == b"3456"
    assert buffer.read(8, 10) == b"89"
    assert buffer.read(10, 5) == b""
    assert buffer.read(50, 5) == b""


def test_send_buffer_release_drops_acknowledged_bytes_and_frees_room() -> None:
    buffer = SendBuffer(10)
    buffer.write(b"0123456789")
    buffer.release(4)
    assert len(buffer) == 6 and buffer.room == 4
    assert buffer.read(0, 3) == b"456"
    assert buffer.write(b"abcdef") == 4
    assert buffer.read(0, 10) == b"456789abcd"


def test_send_buffer_release_of_more_than_held_is_an_error() -> None:
    buffer = SendBuffer(10)
    buffer.write(b"abc")
    with pytest.raises(ValueError):
        buffer.release(4)
    with pytest.raises(ValueError):
        buffer.release(-1)


def test_send_buffer_accepts_bytearray_and_memoryview_and_copies_them() -> None:
    buffer = SendBuffer(6)
    source = bytearray(b"abcd")
    buffer.write(source)
    source[0] = ord("z")
    assert buffer.write(memoryview(b"efgh")) == 2
    assert buffer.read(0, 6) == b"abcdef"


def test_send_buffer_write_of_a_wide_memoryview_counts_bytes() -> None:
    buffer = SendBuffer(6)
    words = memoryview(bytearray(8)).cast("I")  # 2 items, 8 bytes
    assert buffer.write(words) == 6
    assert len(buffer) == 6


def test_send_buffer_shrinking_capacity_leaves_no_room_but_keeps_data() -> None:
    buffer = SendBuffer(10)
    buffer.write(b"0123456789")
    buffer.capacity = 4
    assert buffer.room == 0 and len(buffer) == 10
    assert buffer.write(b"x") == 0


def test_send_buffer_compacts_after_large_releases() -> None:
    buffer = SendBuffer(4 * COMPACT_MINIMUM)
    chunk = bytes(range(256)) * 64
    written = 0
    for _ in range(40):
        written += buffer.write(chunk)
        buffer.release(len(buffer) - 100)
    assert len(buffer) == 100
    assert buffer._head < max(COMPACT_MINIMUM, len(buffer))  # storage stays bounded
    assert buffer.read(0, 100) == chunk[-100:]


send_operations = st.lists(
    st.one_of(
        st.tuples(st.just("write"), st.binary(max_size=300)),
        st.tuples(st.just("release"), st.integers(0, 400)),
        st.tuples(st.just("read"), st.tuples(st.integers(0, 500), st.integers(0, 500))),
        st.tuples(st.just("capacity"), st.integers(0, 1000)),
    ),
    max_size=80,
)


@given(send_operations)
def test_send_buffer_matches_a_bytes_model(operations: list[tuple[str, object]]) -> None:
    buffer = SendBuffer(600)
    model = b""
    capacity = 600
    for operation, argument in operations:
        if operation == "write":
            assert isinstance(argument, bytes)
            taken = buffer.write(argument)
            expected = max(0, min(len(argument), capacity - len(model)))
            assert taken == expected
            model += argument[:taken]
        elif operation == "release":
            assert isinstance(argument, int)
            count = min(argument, len(model))
            buffer.release(count)
            model = model[count:]
        elif operation == "read":
            assert isinstance(argument, tuple)
            offset, length = argument
            assert buffer.read(offset, length) == model[offset : offset + length]
        else:
            assert isinstance(argument, int)
            buffer.capacity = capacity = argument
        assert len(buffer) == len(model)
        assert buffer.room == max(0, capacity - len(model))


@settings(max_examples=20, deadline=None)
@given(st.integers(200, 5000), st.integers(100, 3000), st.integers(0, 2**32))
def test_send_buffer_streams_large_transfers_exactly(write_size: int, step: int, seed: int) -> None:
    data = random.Random(seed).randbytes(200_000)
    buffer = SendBuffer(3 * COMPACT_MINIMUM)
    written = released = 0
    while released < len(data):
        written += buffer.write(data[written : written + write_size])
        count = min(step, written - released)
        assert buffer.read(0, count) == data[released : released + count]
        buffer.release(count)
        released += count


# --- ReceiveBuffer ------------------------------------------------------------------------------


def test_receive_buffer_reads_in_order_and_peeks_without_consuming() -> None:
    buffer = ReceiveBuffer(100)
    buffer.append(b"hello ")
    buffer.append(bytearray(b"world"))
    assert len(buffer) == 11 and buffer.room == 89
    assert buffer.peek(5) == b"hello"
    assert buffer.read(6) == b"hello "
    assert buffer.read_all() == b"world"
    assert buffer.read(10) == b"" and len(buffer) == 0


def test_receive_buffer_append_beyond_capacity_keeps_everything() -> None:
    buffer = ReceiveBuffer(4)
    buffer.append(b"123456")
    assert buffer.room == 0 and buffer.read_all() == b"123456"


def test_receive_buffer_read_of_zero_or_negative_is_empty() -> None:
    buffer = ReceiveBuffer(10)
    buffer.append(b"abc")
    assert buffer.read(0) == b"" and buffer.read(-5) == b"" and buffer.peek(-1) == b""
    assert len(buffer) == 3


def test_receive_buffer_read_into_fills_the_target() -> None:
    buffer = ReceiveBuffer(10)
    buffer.append(b"abcdef")
    target = bytearray(4)
    assert buffer.read_into(target) == 4 and target == b"abcd"
    assert buffer.read_into(memoryview(target)[1:]) == 2 and target == b"aefd"
    assert buffer.read_into(target) == 0


def test_receive_buffer_find_locates_a_line_end() -> None:
    buffer = ReceiveBuffer(100)
    buffer.append(b"xxGET / HTTP/1.0\r\n\r\nbody")
    buffer.read(2)
    assert buffer.find(b"\r\n") == 14
    assert buffer.find(b"\r\n", limit=10) == -1
    assert buffer.find(b"zz") == -1


receive_operations = st.lists(
    st.one_of(
        st.tuples(st.just("append"), st.binary(max_size=300)),
        st.tuples(st.just("read"), st.integers(-2, 400)),
        st.tuples(st.just("peek"), st.integers(0, 400)),
        st.tuples(st.just("read_all"), st.just(0)),
        st.tuples(st.just("read_into"), st.integers(0, 400)),
    ),
    max_size=80,
)


@given(receive_operations)
def test_receive_buffer_matches_a_bytes_model(operations: list[tuple[str, object]]) -> None:
    buffer = ReceiveBuffer(500)
    model = b""
    for operation, argument in operations:
        if operation == "append":
            assert isinstance(argument, bytes)
            buffer.append(argument)
            model += argument
        elif operation == "read":
            assert isinstance(argument, int)
            count = max(argument, 0)
            assert buffer.read(argument) == model[:count]
            model = model[count:]
        elif operation == "peek":
            assert isinstance(argument, int)
            assert buffer.peek(argument) == model[:argument]
        elif operation == "read_into":
            assert isinstance(argument, int)
            target = bytearray(argument)
            count = buffer.read_into(target)
            assert bytes(target[:count]) == model[:argument]
            model = model[count:]
        else:
            assert buffer.read_all() == model
            model = b""
        assert len(buffer) == len(model)
        assert buffer.room == max(0, 500 - len(model))


def test_receive_buffer_stays_small_over_a_long_stream() -> None:
    buffer = ReceiveBuffer(1 << 20)
    segment = b"s" * 1460
    for _ in range(2000):
        buffer.append(segment)
        assert buffer.read(1000) == segment[:1000]
    assert len(buffer) == 2000 * 460
    # Consumed storage is dropped once it is at least half: at most 2x the live bytes.
    assert buffer._head < max(COMPACT_MINIMUM, len(buffer))


# --- OutOfOrderQueue ----------------------------------------------------------------------------


def test_out_of_order_segment_is_held_until_the_gap_fills() -> None:
    queue = OutOfOrderQueue(10_000)
    assert queue.insert(1100, b"B" * 100, rcv_nxt=1000)
    assert queue.pop_ready(1000) == b""
    assert queue.ranges() == [(1100, 1200)] and queue.bytes_held == 100 and len(queue) == 1
    assert queue.pop_ready(1100) == b"B" * 100
    assert len(queue) == 0 and queue.bytes_held == 0


def test_adjacent_segments_merge_into_one_range() -> None:
    queue = OutOfOrderQueue(10_000)
    queue.insert(1200, b"c" * 100, 1000)
    queue.insert(1100, b"b" * 100, 1000)
    queue.insert(1300, b"d" * 100, 1000)
    assert queue.ranges() == [(1100, 1400)]
    assert queue.pop_ready(1100) == b"b" * 100 + b"c" * 100 + b"d" * 100


def test_overlap_keeps_the_bytes_received_first() -> None:
    queue = OutOfOrderQueue(10_000)
    queue.insert(1010, b"AAAAA", 1000)  # 1010..1015
    queue.insert(1008, b"bbbbbbbbbb", 1000)  # 1008..1018 overlaps
    assert queue.ranges() == [(1008, 1018)]
    assert queue.bytes_held == 10
    assert queue.pop_ready(1008) == b"bbAAAAAbbb"


def test_segment_spanning_several_ranges_fills_only_the_gaps() -> None:
    queue = OutOfOrderQueue(10_000)
    queue.insert(1010, b"11", 1000)
    queue.insert(1020, b"22", 1000)
    queue.insert(1030, b"33", 1000)
    assert queue.insert(1005, b"x" * 30, 1000)
    assert queue.ranges() == [(1005, 1035)]
    assert queue.bytes_held == 30
    assert queue.pop_ready(1005) == b"xxxxx11xxxxxxxx22xxxxxxxx33xxx"


def test_data_before_rcv_nxt_is_trimmed() -> None:
    queue = OutOfOrderQueue(10_000)
    assert queue.insert(900, b"o" * 200, rcv_nxt=1000)
    assert queue.ranges() == [(1000, 1100)]
    assert queue.insert(800, b"old", rcv_nxt=1000)  # entirely old: nothing held
    assert queue.bytes_held == 100


def test_pop_ready_returns_the_tail_of_a_range_rcv_nxt_moved_into() -> None:
    queue = OutOfOrderQueue(10_000)
    queue.insert(1100, b"0123456789", 1000)
    queue.insert(1200, b"far", 1000)
    assert queue.pop_ready(1104) == b"456789"
    assert queue.ranges() == [(1200, 1203)]


def test_pop_ready_drops_ranges_wholly_before_rcv_nxt() -> None:
    queue = OutOfOrderQueue(10_000)
    queue.insert(1100, b"a" * 10, 1000)
    queue.insert(1200, b"b" * 10, 1000)
    assert queue.pop_ready(1300) == b""
    assert len(queue) == 0 and queue.bytes_held == 0


def test_insert_over_the_limit_is_refused_and_stores_nothing() -> None:
    queue = OutOfOrderQueue(100)
    assert queue.insert(1100, b"a" * 60, 1000)
    assert not queue.insert(1200, b"b" * 50, 1000)
    assert not queue.insert(1150, b"c" * 60, 1000)  # 10 overlap + 50 new > 40 free
    assert queue.ranges() == [(1100, 1160)] and queue.bytes_held == 60
    assert queue.insert(1160, b"d" * 40, 1000)  # exactly to the limit
    assert queue.bytes_held == 100


def test_duplicate_is_accepted_even_at_the_limit() -> None:
    queue = OutOfOrderQueue(10)
    queue.insert(1100, b"a" * 10, 1000)
    assert queue.insert(1102, b"zz", 1000)
    assert queue.pop_ready(1100) == b"a" * 10


def test_insert_keeps_no_reference_to_a_caller_buffer() -> None:
    queue = OutOfOrderQueue(100)
    source = bytearray(b"abcd")
    queue.insert(1100, memoryview(source), 1000)  # type: ignore[arg-type]
    source[:] = b"zzzz"
    assert queue.pop_ready(1100) == b"abcd"


def test_reassembly_across_the_2_32_wrap() -> None:
    rcv_nxt = MASK - 99  # 100 bytes before the wrap
    queue = OutOfOrderQueue(10_000)
    queue.insert(seq_add(rcv_nxt, 150), b"c" * 50, rcv_nxt)  # 50..100 after the wrap
    queue.insert(seq_add(rcv_nxt, 50), b"b" * 100, rcv_nxt)  # straddles the wrap
    assert queue.ranges() == [(MASK - 49, 100)]  # [2**32 - 50, 100)
    assert queue.pop_ready(seq_add(rcv_nxt, 50)) == b"b" * 100 + b"c" * 50


def test_clear_forgets_everything() -> None:
    queue = OutOfOrderQueue(100)
    queue.insert(1100, b"a", 1000)
    queue.clear()
    assert len(queue) == 0 and queue.bytes_held == 0 and queue.sack_blocks() == []


def test_sack_blocks_follow_rfc_2018_section_5_case_3() -> None:
    # RFC 2018 5, case 3: 500-byte segments from 5000; the 2nd, 4th, 6th, 8th are dropped.
    queue = OutOfOrderQueue(100_000)
    rcv_nxt = 5500  # segment 5000 arrived in order
    segment = b"x" * 500
    queue.insert(6000, segment, rcv_nxt)
    assert queue.sack_blocks() == [(6000, 6500)]
    queue.insert(7000, segment, rcv_nxt)
    assert queue.sack_blocks() == [(7000, 7500), (6000, 6500)]
    queue.insert(8000, segment, rcv_nxt)
    assert queue.sack_blocks() == [(8000, 8500), (7000, 7500), (6000, 6500)]
    queue.insert(9000, segment, rcv_nxt)
    assert queue.sack_blocks() == [(9000, 9500), (8000, 8500), (7000, 7500), (6000, 6500)]
    # The 4th segment (6500) arrives out of order: its block comes first, merged.
    queue.insert(6500, segment, rcv_nxt)
    assert queue.sack_blocks() == [(6000, 7500), (9000, 9500), (8000, 8500)]
    # The 2nd segment (5500) fills the first hole: that data is delivered, no longer SACKed.
    queue.insert(5500, segment, rcv_nxt)
    assert queue.pop_ready(rcv_nxt) == segment * 4
    assert queue.sack_blocks() == [(9000, 9500), (8000, 8500)]


def test_sack_blocks_respect_the_limit_and_repeat_a_duplicate_first() -> None:
    queue = OutOfOrderQueue(100_000)
    for start in (2000, 3000, 4000, 5000):
        queue.insert(start, b"y" * 100, 1000)
    assert queue.sack_blocks(limit=3) == [(5000, 5100), (4000, 4100), (3000, 3100)]
    queue.insert(2050, b"y" * 10, 1000)  # a duplicate of held data triggered this ACK
    assert queue.sack_blocks(limit=3)[0] == (2000, 2100)
    assert queue.sack_blocks(limit=0) == []


def test_sack_blocks_fill_with_blocks_no_recent_segment_names() -> None:
    queue = OutOfOrderQueue(1_000_000)
    for index in range(40):  # more ranges than recent segments are remembered
        queue.insert(2000 + 200 * index, b"z" * 100, 1000)
    blocks = queue.sack_blocks(limit=4)
    assert blocks[0] == (2000 + 200 * 39, 2000 + 200 * 39 + 100)
    assert len(blocks) == 4 and len(set(blocks)) == 4


def _segments(stream: bytes, rng: random.Random) -> list[tuple[int, bytes]]:
    """Cut the stream at random, then add random overlapping pieces and duplicates."""
    cuts = sorted(
        {0, len(stream), *(rng.randrange(len(stream) + 1) for _ in range(rng.randrange(1, 30)))}
    )
    pieces = [(a, stream[a:b]) for a, b in itertools.pairwise(cuts) if b > a]
    for _ in range(rng.randrange(0, 15)):
        a = rng.randrange(len(stream))
        b = min(len(stream), a + rng.randrange(1, 400))
        pieces.append((a, stream[a:b]))
    pieces += rng.sample(pieces, k=min(len(pieces), rng.randrange(0, 5)))
    rng.shuffle(pieces)
    return pieces


@settings(max_examples=150)
@given(
    st.integers(1, 3000),
    st.one_of(st.integers(0, MASK), st.integers(MASK - 3000, MASK)),
    st.randoms(use_true_random=False),
)
def test_any_order_with_duplicates_and_overlaps_reassembles_the_exact_stream(
    size: int, isn: int, rng: random.Random
) -> None:
    stream = rng.randbytes(size)
    queue = OutOfOrderQueue(1 << 20)
    rcv_nxt = isn
    delivered = bytearray()
    for offset, data in _segments(stream, rng):
        seq = seq_add(isn, offset)
        start = seq_diff(rcv_nxt, seq)
        if 0 <= start < len(data) and rng.random() < 0.5:
            delivered += data[start:]  # the connection's in-order path, bypassing the queue
            rcv_nxt = seq_add(rcv_nxt, len(data) - start)
        else:
            assert queue.insert(seq, data, rcv_nxt)
        ready = queue.pop_ready(rcv_nxt)
        delivered += ready
        rcv_nxt = seq_add(rcv_nxt, len(ready))
    assert bytes(delivered) == stream
    assert rcv_nxt == seq_add(isn, size)
    assert len(queue) == 0 and queue.bytes_held == 0


@settings(max_examples=150)
@given(
    st.one_of(st.integers(0, MASK), st.integers(MASK - 500, MASK)),
    st.integers(1, 400),
    st.lists(
        st.tuples(st.integers(-50, 600), st.integers(0, 120), st.integers(0, 255), st.booleans()),
        max_size=40,
    ),
)
def test_out_of_order_queue_matches_a_per_byte_model(
    isn: int, limit: int, script: list[tuple[int, int, int, bool]]
) -> None:
    """First-received bytes win, the limit is exact, ranges and SACK blocks match the model."""
    queue = OutOfOrderQueue(limit)
    model: dict[int, int] = {}  # offset from isn -> byte held
    next_offset = 0  # rcv_nxt - isn
    for offset, length, fill, deliver in script:
        seq, rcv_nxt = seq_add(isn, offset), seq_add(isn, next_offset)
        first = max(offset, next_offset)  # the first byte of this segment still wanted
        new = [p for p in range(first, offset + length) if p not in model]
        accepted = queue.insert(seq, bytes([fill]) * length, rcv_nxt)
        assert accepted == (len(model) + len(new) <= limit)
        if accepted:
            model.update(dict.fromkeys(new, fill))
        if deliver:
            expected = bytearray()
            while next_offset in model:
                expected.append(model.pop(next_offset))
                next_offset += 1
            assert queue.pop_ready(rcv_nxt) == expected
        assert queue.bytes_held == len(model)
        assert queue.ranges() == [(seq_add(isn, a), seq_add(isn, b)) for a, b in _runs(model)]
        blocks = queue.sack_blocks(limit=4)
        assert len(blocks) == min(4, len(queue)) and set(blocks) <= set(queue.ranges())
        if accepted and first < offset + length and first in model:
            # RFC 2018 4: the first block holds the segment that triggered this ACK.
            last = seq_add(isn, first)
            assert seq_diff(last, blocks[0][0]) >= 0 and seq_diff(blocks[0][1], last) > 0


def _runs(model: dict[int, int]) -> list[tuple[int, int]]:
    runs: list[tuple[int, int]] = []
    for position in sorted(model):
        if runs and runs[-1][1] == position:
            runs[-1] = (runs[-1][0], position + 1)
        else:
            runs.append((position, position + 1))
    return runs
