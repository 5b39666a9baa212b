"""Where a case's decisions come from: a byte string, read front to back.

Every decision the generator makes (which action, which flags, how long a payload, which
sequence number near which edge) is a number drawn from ``Choices``. The numbers come from
bytes, so a case *is* its byte string: the campaign makes fresh cases from seeded random bytes
and new ones by mutating the bytes of cases that reached new coverage (a choice sequence, as
Hypothesis keeps it), and a coverage-guided fuzzer such as atheris can hand ``one_input`` its
own bytes. When the bytes run out every draw gives 0 and ``exhausted`` turns true; the
generator ends the case there, so every byte string is a valid, finite case.
Entry points: ``Choices``, ``mutate_bytes``.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import TypeVar

T = TypeVar("T")


class Choices:
    """Draws numbers from ``data``; 0 for every draw past its end."""

    __slots__ = ("data", "position")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.position = 0

    @property
    def exhausted(self) -> bool:
        return self.position >= len(self.data)

    def _take(self, count: int) -> int:
        chunk = self.data[self.position : self.position + count]
        self.position += count
        return int.from_bytes(chunk.ljust(count, b"\0"), "big")

    def below(self, n: int) -> int:
        """A number in 0..n-1 (n >= 1): one byte for n <= 256, two up to 65536, else four."""
        if n <= 1:
            return 0
        width = 1 if n <= 256 else 2 if n <= 65536 else 4
        return self._take(width) % n

    def between(self, low: int, high: int) -> int:
        """A number in low..high, both included."""
        return low + self.below(high - low + 1)

    def chance(self, percent: int) -> bool:
        return self.below(100) < percent

    def pick(self, items: Sequence[T]) -> T:
        return items[self.below(len(items))]

    def weighted(self, weights: Sequence[int]) -> int:
        """An index into ``weights``, each as likely as its weight."""
        roll = self.below(sum(weights))
        for index, weight in enumerate(weights):
            if roll < weight:
                return index
            roll -= weight
        return len(weights) - 1

    def u32(self) -> int:
        return self._take(4)

    def raw(self, count: int) -> bytes:
        """``count`` bytes (zeros past the end)."""
        chunk = self.data[self.position : self.position + count]
        self.position += count
        return chunk.ljust(count, b"\0")


def fresh_bytes(rng: random.Random, low: int = 256, high: int = 2048) -> bytes:
    """The bytes of a fresh case."""
    return rng.randbytes(rng.randint(low, high))


def mutate_bytes(data: bytes, rng: random.Random, limit: int = 8192) -> bytes:
    """A neighbour of ``data``: a few bytes changed, a run inserted, deleted or copied.

    Changing early bytes changes the whole case (every later decision shifts); changing late
    ones keeps its start and explores what follows, which is what keeps a new state's prefix.
    """
    out = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        how = rng.randrange(5)
        at = rng.randrange(len(out) + 1)
        if how == 0 and out:
            out[min(at, len(out) - 1)] = rng.randrange(256)
        elif how == 1:
            out[at:at] = rng.randbytes(rng.randint(1, 32))
        elif how == 2 and out:
            del out[at : at + rng.randint(1, 32)]
        elif how == 3 and out:
            start = rng.randrange(len(out))
            out[at:at] = out[start : start + rng.randint(1, 64)]
        else:
            out[at:] = rng.randbytes(rng.randint(0, 256))  # a new tail after a kept prefix
    return bytes(out[:limit])
