"""Sequence-number arithmetic modulo 2**32 (RFC 9293 3.4, RFC 1982 serial numbers).

Sequence numbers are compared only through these functions: a raw ``<`` on two of them is a bug
once the space wraps. ``a`` is "less than" ``b`` when ``b - a`` (mod 2**32) is in (0, 2**31).
"""

from __future__ import annotations

MOD = 1 << 32
MASK = MOD - 1
HALF = 1 << 31


def seq_add(a: int, n: int) -> int:
    return (a + n) & MASK


def seq_diff(a: int, b: int) -> int:
    """``a - b`` as a signed distance in (-2**31, 2**31]."""
    d = (a - b) & MASK
    return d - MOD if d > HALF else d


def seq_lt(a: int, b: int) -> bool:
    return 0 < ((b - a) & MASK) < HALF


def seq_le(a: int, b: int) -> bool:
    return ((b - a) & MASK) < HALF


def seq_gt(a: int, b: int) -> bool:
    return 0 < ((a - b) & MASK) < HALF


def seq_ge(a: int, b: int) -> bool:
    return ((a - b) & MASK) < HALF


def seq_in_window(value: int, start: int, size: int) -> bool:
    """``start <= value < start + size`` in sequence space (RFC 9293 3.10.7.4 acceptability)."""
    return ((value - start) & MASK) < size


def seq_max(a: int, b: int) -> int:
    return b if seq_lt(a, b) else a


def seq_min(a: int, b: int) -> int:
    return a if seq_lt(a, b) else b
