"""MemoryLink: ordered delivery both ways, bounded queues, MTU drops, a selectable fd, threads."""

from __future__ import annotations

import os
import select
import threading
import time
from collections.abc import Iterator

import pytest

from pystack.link.base import Link, LinkKind
from pystack.link.memory import MemoryLink


def readable(link: MemoryLink) -> bool:
    fd = link.fileno()
    assert fd is not None
    ready, _, _ = select.select([fd], [], [], 0)
    return bool(ready)


@pytest.fixture
def pair() -> Iterator[tuple[MemoryLink, MemoryLink]]:
    first, second = MemoryLink.pair()
    yield first, second
    first.close()
    second.close()


def test_memory_pair_implements_link_protocol(pair: tuple[MemoryLink, MemoryLink]) -> None:
    first, _ = pair
    assert isinstance(first, Link)
    assert first.kind is LinkKind.IP
    assert first.mtu == 1500
    assert first.next_deadline() is None


def test_memory_pair_delivers_in_order(pair: tuple[MemoryLink, MemoryLink]) -> None:
    first, second = pair
    frames = [bytes([n]) * (n + 1) for n in range(100)]
    for frame in frames:
        first.send(frame, 0.0)
    assert second.receive(0.0, limit=1000) == frames
    assert second.receive(0.0) == []


def test_memory_pair_delivers_both_directions_independently(
    pair: tuple[MemoryLink, MemoryLink],
) -> None:
    first, second = pair
    first.send(b"to-second", 0.0)
    second.send(b"to-first", 0.0)
    assert first.receive(0.0) == [b"to-first"]
    assert second.receive(0.0) == [b"to-second"]


def test_memory_receive_respects_limit_and_keeps_rest(pair: tuple[MemoryLink, MemoryLink]) -> None:
    first, second = pair
    for n in range(10):
        first.send(bytes([n]), 0.0)
    assert second.receive(0.0, limit=3) == [b"\x00", b"\x01", b"\x02"]
    assert readable(second)
    assert second.receive(0.0, limit=100) == [bytes([n]) for n in range(3, 10)]
    assert not readable(second)


def test_memory_pair_counts_frames_and_bytes(pair: tuple[MemoryLink, MemoryLink]) -> None:
    first, second = pair
    first.send(b"abc", 0.0)
    first.send(b"de", 0.0)
    second.receive(0.0)
    assert (first.statistics.frames_sent, first.statistics.bytes_sent) == (2, 5)
    assert (second.statistics.frames_received, second.statistics.bytes_received) == (2, 5)


def test_memory_pair_overflow_counts_and_drops() -> None:
    first, second = MemoryLink.pair(capacity=4)
    try:
        for n in range(10):
            first.send(bytes([n]), 0.0)
        assert second.statistics.receive_overflows == 6
        assert first.statistics.send_errors == 0
        assert second.receive(0.0) == [b"\x00", b"\x01", b"\x02", b"\x03"]
        first.send(b"after", 0.0)
        assert second.receive(0.0) == [b"after"]
    finally:
        first.close()
        second.close()


def test_memory_frame_above_mtu_is_dropped_as_send_error() -> None:
    first, second = MemoryLink.pair(mtu=100)
    try:
        first.send(bytes(100), 0.0)
        first.send(bytes(101), 0.0)
        assert first.statistics.send_errors == 1
        assert first.statistics.frames_sent == 1
        assert second.receive(0.0) == [bytes(100)]
    finally:
        first.close()
        second.close()


def test_memory_ethernet_kind_allows_header_above_mtu() -> None:
    first, second = MemoryLink.pair(kind=LinkKind.ETHERNET, mtu=100)
    try:
        first.send(bytes(114), 0.0)
        first.send(bytes(115), 0.0)
        assert first.statistics.send_errors == 1
        assert second.receive(0.0) == [bytes(114)]
    finally:
        first.close()
        second.close()


def test_memory_fileno_readable_while_frames_wait_not_after_drain(
    pair: tuple[MemoryLink, MemoryLink],
) -> None:
    first, second = pair
    assert not readable(second)
    first.send(b"x", 0.0)
    first.send(b"y", 0.0)
    assert readable(second)
    assert not readable(first)
    second.receive(0.0)
    assert not readable(second)
    first.send(b"z", 0.0)
    assert readable(second)


def test_memory_close_closes_pipe_and_later_sends_are_errors() -> None:
    first, second = MemoryLink.pair()
    fd = second.fileno()
    assert fd is not None
    second.close()
    second.close()  # idempotent
    assert second.fileno() is None
    with pytest.raises(OSError):
        os.fstat(fd)
    first.send(b"lost", 0.0)
    assert second.statistics.receive_overflows == 1
    assert second.receive(0.0) == []
    second.send(b"from closed", 0.0)
    assert second.statistics.send_errors == 1
    first.close()


def test_memory_bad_parameters_raise() -> None:
    with pytest.raises(ValueError):
        MemoryLink.pair(mtu=0)
    with pytest.raises(ValueError):
        MemoryLink.pair(capacity=0)


def test_memory_thread_sender_and_selecting_receiver_keep_order() -> None:
    count = 20000
    first, second = MemoryLink.pair(capacity=64)

    def produce() -> None:
        for n in range(count):
            first.send(n.to_bytes(4, "big"), 0.0)

    producer = threading.Thread(target=produce)
    received: list[int] = []
    fd = second.fileno()
    assert fd is not None
    try:
        producer.start()
        deadline = time.monotonic() + 20.0
        while time.monotonic() < deadline:
            select.select([fd], [], [], 0.05)
            received.extend(int.from_bytes(f, "big") for f in second.receive(0.0, 256))
            if not producer.is_alive() and second.pending() == 0:
                break
        producer.join(timeout=5.0)
        received.extend(int.from_bytes(f, "big") for f in second.receive(0.0, 100000))
        assert not producer.is_alive()
        assert received == sorted(set(received)), "frames reordered or duplicated"
        assert len(received) + second.statistics.receive_overflows == count
        assert received[0] == 0
        assert not readable(second)
    finally:
        first.close()
        second.close()
