"""Buffer memory by use (pystack.tcp.buffers.BufferPool): every buffer counts what it holds in
its stack's pool, the pool bounds them together, storage shrinks when drained, and a closed
connection's buffers give their bytes back."""

from __future__ import annotations

import random
import sys

from hypothesis import given, settings
from hypothesis import strategies as st

from pystack.tcp.buffers import BufferPool, OutOfOrderQueue, ReceiveBuffer, SendBuffer
from pystack.tcp.seq import seq_add


def test_send_buffer_counts_writes_and_releases() -> None:
    pool = BufferPool(100)
    buffer = SendBuffer(1000, pool)
    assert buffer.write(b"x" * 60) == 60 and pool.held == 60
    assert buffer.room == 40  # the pool, not the capacity, is the bound now
    assert buffer.write(memoryview(b"y" * 60)) == 40 and pool.held == 100 and pool.full
    buffer.release(30)
    assert pool.held == 70 and buffer.room == 30


def test_two_buffers_share_one_pool() -> None:
    pool = BufferPool(100)
    first, second = SendBuffer(80, pool), ReceiveBuffer(80, pool)
    first.write(b"a" * 70)
    assert second.room == 30
    second.append(b"b" * 50)  # acknowledged bytes are never refused, even past the limit
    assert pool.held == 120 and pool.room == 0 and first.room == 0 and second.room == 0
    assert second.read(50) == b"b" * 50
    assert pool.held == 70 and second.room == 30


def test_receive_buffer_reads_of_every_kind_give_bytes_back() -> None:
    pool = BufferPool(1000)
    buffer = ReceiveBuffer(1000, pool)
    buffer.append(b"0123456789")
    assert buffer.peek(4) == b"0123" and pool.held == 10
    target = bytearray(3)
    assert buffer.read_into(target) == 3 and pool.held == 7
    assert buffer.read(2) == b"34" and pool.held == 5
    assert buffer.read_all() == b"56789" and pool.held == 0


def test_out_of_order_queue_counts_held_bytes_and_respects_the_pool() -> None:
    pool = BufferPool(25)
    queue = OutOfOrderQueue(1000, pool)
    assert queue.insert(110, b"a" * 10, 100)
    assert queue.insert(120, b"b" * 10, 100)  # continues the range
    assert pool.held == 20
    assert not queue.insert(140, b"c" * 10, 100)  # the pool has room for 5 only
    assert queue.insert(105, b"d" * 10, 100)  # overlaps: only the 5 new bytes count
    assert pool.held == 25
    assert queue.pop_ready(100) == b""
    data = queue.pop_ready(105)
    assert len(data) == 25 and pool.held == 0
    queue.insert(200, b"e" * 5, 130)
    queue.clear()
    assert pool.held == 0


def test_detach_gives_the_bytes_back_and_keeps_them_readable() -> None:
    pool = BufferPool(1000)
    buffer = ReceiveBuffer(1000, pool)
    buffer.append(b"unread")
    buffer.detach()
    assert pool.held == 0
    assert buffer.read(100) == b"unread" and pool.held == 0  # no longer this pool's concern


def test_drained_buffers_hold_no_storage() -> None:
    pool = BufferPool(1 << 30)
    buffer = ReceiveBuffer(1 << 20, pool)
    empty = sys.getsizeof(buffer._data)
    buffer.append(b"z" * 500_000)
    assert sys.getsizeof(buffer._data) > 500_000
    buffer.read(1 << 20)
    assert sys.getsizeof(buffer._data) <= empty + 8 and pool.held == 0  # (a NUL byte at most)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from("wrapio"), st.integers(0, 3000)), max_size=60))
def test_pool_always_equals_what_the_buffers_hold(operations: list[tuple[str, int]]) -> None:
    pool = BufferPool(10_000)
    send, receive = SendBuffer(4000, pool), ReceiveBuffer(4000, pool)
    queue = OutOfOrderQueue(4000, pool)
    rng = random.Random(len(operations))
    rcv_nxt = 1000
    for operation, size in operations:
        if operation == "w":
            send.write(b"s" * size)
        elif operation == "r":
            send.release(min(size, len(send)))
        elif operation == "a":
            receive.append(b"r" * size)
        elif operation == "p":
            receive.read(size)
        elif operation == "i":
            queue.insert(seq_add(rcv_nxt, rng.randrange(1, 5000)), b"o" * (size % 1500), rcv_nxt)
        else:
            rcv_nxt = seq_add(rcv_nxt, size)
            queue.pop_ready(rcv_nxt)
        assert pool.held == len(send) + len(receive) + queue.bytes_held
