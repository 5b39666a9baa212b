"""Sequence-number arithmetic modulo 2**32 (pystack.tcp.seq)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from pystack.tcp.seq import (
    HALF,
    MASK,
    seq_add,
    seq_diff,
    seq_ge,
    seq_gt,
    seq_in_window,
    seq_le,
    seq_lt,
    seq_max,
    seq_min,
)

sequence = st.integers(0, MASK)
distance = st.integers(-(HALF - 1), HALF - 1)
TOP = MASK  # 2**32 - 1


def test_add_wraps_past_2_32() -> None:
    assert seq_add(TOP, 1) == 0
    assert seq_add(TOP - 9, 20) == 10
    assert seq_add(5, -10) == TOP - 4


def test_diff_is_signed_across_the_wrap() -> None:
    assert seq_diff(10, TOP - 9) == 20
    assert seq_diff(TOP - 9, 10) == -20
    assert seq_diff(0, TOP) == 1


def test_lt_holds_across_the_wrap() -> None:
    assert seq_lt(TOP, 0)
    assert seq_lt(TOP - 100, 100)
    assert not seq_lt(100, TOP - 100)
    assert seq_gt(0, TOP)
    assert seq_le(TOP, TOP)
    assert seq_ge(0, 0)


def test_max_and_min_pick_by_sequence_order_not_value() -> None:
    assert seq_max(TOP, 3) == 3
    assert seq_min(TOP, 3) == TOP


def test_in_window_at_the_wrap() -> None:
    start = TOP - 4  # window of 10: TOP-4 .. 4
    assert seq_in_window(TOP - 4, start, 10)
    assert seq_in_window(TOP, start, 10)
    assert seq_in_window(0, start, 10)
    assert seq_in_window(4, start, 10)
    assert not seq_in_window(5, start, 10)
    assert not seq_in_window(TOP - 5, start, 10)


def test_in_window_of_size_zero_holds_nothing() -> None:
    assert not seq_in_window(7, 7, 0)


@given(sequence, sequence)
def test_lt_and_gt_are_antisymmetric(a: int, b: int) -> None:
    assert seq_lt(a, b) == seq_gt(b, a)
    assert not (seq_lt(a, b) and seq_lt(b, a))
    assert seq_le(a, b) == (seq_lt(a, b) or a == b)
    assert seq_ge(a, b) == (seq_gt(a, b) or a == b)


@given(sequence, distance)
def test_adding_a_distance_orders_and_measures_it(a: int, n: int) -> None:
    b = seq_add(a, n)
    assert seq_diff(b, a) == n
    assert seq_lt(a, b) == (n > 0)
    assert seq_gt(a, b) == (n < 0)


@given(sequence, st.integers(0, HALF - 1), st.integers(1, HALF))
def test_in_window_matches_the_distance(start: int, step: int, size: int) -> None:
    assert seq_in_window(seq_add(start, step), start, size) == (step < size)


@given(sequence, distance)
def test_max_and_min_are_consistent_with_lt(a: int, n: int) -> None:
    b = seq_add(a, n)
    low, high = (a, b) if n >= 0 else (b, a)
    assert seq_max(a, b) == high and seq_min(a, b) == low
