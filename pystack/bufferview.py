"""A ``memoryview`` of a ``bytearray`` that lets the bytearray be resized, as MicroPython does.

MicroPython's memoryview (``py/objarray.c``) holds a pointer to the start of its object's
memory, an offset and a length; nothing stops the bytearray behind it from growing
(``ba.extend``, ``ba += ...``, ``ba[len(ba):] = ...``) or shrinking (``ba[:n] = b""``) while
the view lives ("we don't handle the case where the original buffer might change size",
says the file). CPython forbids it: a bytearray with a live export raises ``BufferError``.
The script world's ``memoryview(bytearray)`` is therefore this class, which holds the
bytearray, an offset and a length and exports no buffer, so the bytearray stays resizable.

What a view sees after its bytearray changed size, here and on a board:

- its length and offset never change (``len(view)`` is the length at creation);
- it reads and writes the bytearray's current contents at its offset. On a board that holds
  while no reallocation moved the array; a moved array leaves the view on the old, freed
  memory, whose contents are undefined. pystack takes the defined case;
- positions past the bytearray's current end read as 0 (a shrink clears the freed tail
  without reallocating, ``mp_seq_clear``, so a board reads zeros there) and writes to them
  are dropped (a board writes into spare memory the bytearray no longer counts).

CPython's C functions do not take this class as a buffer (CPython 3.11 has no Python-level
buffer protocol): pystack's consumers convert it where they take buffers
(``readable(data)`` for reads; ``usocket.streamio.readinto`` and ``struct.pack_into`` write
through its slice assignment). ``bytes(view)`` works (``__bytes__``); ``bytearray(view)``,
``ba.extend(view)`` and ``ba[i:j] = view`` iterate it.
Entry points: ``BytearrayView``, ``readable``.
"""

from __future__ import annotations

import sys
from typing import Any

_BINARY_OP = 122  # CPython 3.11+'s opcode for every binary operator; its argument tells which
_NB_INPLACE_ADD = 13  # BINARY_OP's argument for ``+=``


def _other_bytes(other: object) -> bytes | None:
    """``other``'s bytes if MicroPython would compare a memoryview with it, else None."""
    if isinstance(other, BytearrayView):
        return other.tobytes()
    if isinstance(other, str):
        return other.encode("utf-8", "surrogatepass")  # MicroPython's str is a buffer
    try:
        return memoryview(other).tobytes()  # type: ignore[arg-type]
    except TypeError:
        return None


class BytearrayView:
    """A read-write view of ``length`` bytes of a bytearray from ``start``; see the module."""

    __slots__ = ("_base", "_length", "_start")
    __hash__ = None  # type: ignore[assignment]  # a writable view is not hashable

    def __init__(self, base: bytearray, start: int = 0, length: int | None = None) -> None:
        self._base = base
        self._start = start
        self._length = len(base) - start if length is None else length

    @property
    def itemsize(self) -> int:
        return 1

    def __len__(self) -> int:
        return self._length

    def tobytes(self) -> bytes:
        start = self._start
        end = start + self._length
        data = bytes(self._base[start:end])
        if len(data) < self._length:
            data += bytes(self._length - len(data))  # past the bytearray's end: zeros
        return data

    __bytes__ = tobytes

    def hex(self, *separator: Any) -> str:
        return self.tobytes().hex(*separator)

    def __iter__(self) -> Any:
        return iter(self.tobytes())

    def __repr__(self) -> str:
        return "<memoryview>"  # MicroPython's print of a memoryview (no address)

    def _bounds(self, key: slice) -> tuple[int, int]:
        if key.step is not None and key.step != 1:
            raise NotImplementedError("only slices with step=1 (aka None) are supported")
        first, last, _ = key.indices(self._length)
        return first, max(first, last)

    def _index(self, key: Any) -> int:
        try:
            index = key.__index__()
        except AttributeError:
            raise TypeError("memoryview indices must be integers") from None
        if index < 0:
            index += self._length
        if not 0 <= index < self._length:
            raise IndexError("memoryview index out of range")
        return int(index)

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, slice):
            first, last = self._bounds(key)
            return BytearrayView(self._base, self._start + first, last - first)
        position = self._start + self._index(key)
        base = self._base
        return base[position] if position < len(base) else 0

    def __setitem__(self, key: Any, value: Any) -> None:
        base = self._base
        if isinstance(key, slice):
            first, last = self._bounds(key)
            data = value.tobytes() if isinstance(value, BytearrayView) else value
            if not isinstance(data, bytes | bytearray | memoryview):
                raise NotImplementedError("array/bytes required on right side")
            if len(data) != last - first:
                raise ValueError("lhs and rhs should be compatible")
            start = self._start + first
            room = len(base) - start
            if room >= len(data):
                base[start : start + len(data)] = data
            elif room > 0:
                base[start:] = memoryview(data)[:room]  # the rest is past the end: dropped
            return
        position = self._start + self._index(key)
        if not isinstance(value, int):
            raise TypeError("can't convert to int")
        if position < len(base):
            base[position] = value & 0xFF  # a board's bytearray stores the low byte

    def _compare(self, other: object) -> bytes:
        data = _other_bytes(other)
        if data is None:
            raise TypeError("unsupported types for comparison")
        return data

    def __eq__(self, other: object) -> bool:
        data = _other_bytes(other)
        return data is not None and self.tobytes() == data

    def __ne__(self, other: object) -> bool:
        return not self == other

    def __lt__(self, other: object) -> bool:
        return self.tobytes() < self._compare(other)

    def __le__(self, other: object) -> bool:
        return self.tobytes() <= self._compare(other)

    def __gt__(self, other: object) -> bool:
        return self.tobytes() > self._compare(other)

    def __ge__(self, other: object) -> bool:
        return self.tobytes() >= self._compare(other)

    def __radd__(self, other: object) -> object:
        """``bytes + view`` and ``bytearray + view`` (MicroPython adds any buffer); for
        ``ba += view`` the bytearray grows in place, as ``bytearray.extend`` would."""
        if isinstance(other, bytearray):
            caller = sys._getframe(1)
            code = caller.f_code.co_code
            offset = caller.f_lasti
            if code[offset] == _BINARY_OP and code[offset + 1] == _NB_INPLACE_ADD:
                other += self.tobytes()
                return other
            return other + self.tobytes()
        if isinstance(other, bytes):
            return other + self.tobytes()
        return NotImplemented


def readable(data: Any) -> Any:
    """``data`` as CPython's C code takes a read-only buffer: a view becomes its bytes."""
    return data.tobytes() if isinstance(data, BytearrayView) else data


BytearrayView.__name__ = "memoryview"  # as the script sees its type in messages
