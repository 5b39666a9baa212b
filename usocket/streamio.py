"""MicroPython's generic stream methods (py/stream.c), over any object's two primitive calls.

On MicroPython a socket, a TLS socket and a file share one implementation of ``read``,
``readinto``, ``readline`` and ``write``: each type gives only a read hook and a write hook, and
py/stream.c loops over them. This module is that shared layer (docs/usocket.md 3, "Stream
methods"). A type hands in:

- ``read_once(n) -> bytes | None``: at most n bytes, ``b""`` at EOF, None when it would block;
- ``write_once(data) -> int | None``: bytes accepted, None when it would block.

The rules that follow: ``read(n)`` loops until n bytes or EOF, ``read()`` reads 256-byte chunks
to EOF, ``readline`` reads one byte at a time (nothing is lost when it would block mid-line),
``write`` sends everything; on a non-blocking stream each returns what it has so far, or None
when it got nothing at all. Errors other than "would block" propagate.
Sizes are read as MicroPython reads them (``py/stream.c`` of v1.24.0, ``py/obj.c``): an int that
does not fit a machine word (64 bits on the unix port) is an OverflowError, ``read(-1)`` reads to
EOF, another negative ``read`` size asks the heap for an impossible allocation (MemoryError), and
``readinto``'s ``nbytes`` is taken as unsigned, so a negative one means the whole buffer.
Entry points: ``read``, ``read_all``, ``readinto``, ``readline``, ``write``, ``write_slice``,
``buffer_bytes``, ``machine_int``, ``allocation_failure``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pystack.bufferview import BytearrayView

ReadOnce = Callable[[int], bytes | None]
WriteOnce = Callable[[bytes], int | None]
CHUNK = 256  # stream_readall reads this much at a time
WORD_BITS = 64  # mp_int_t on the unix port pystack reproduces (sys.maxsize is 2**63 - 1)
WORD_MIN, WORD_MAX = -(1 << (WORD_BITS - 1)), (1 << (WORD_BITS - 1)) - 1


def machine_int(value: Any) -> int:
    """MicroPython's ``mp_obj_get_int``: an int (or bool) that fits a machine word; anything
    else is a TypeError, a bigger int an OverflowError (``py/objint_mpz.c``'s message)."""
    if not isinstance(value, int):
        raise TypeError(f"can't convert {type(value).__name__} to int")
    if not WORD_MIN <= value <= WORD_MAX:
        raise OverflowError("overflow converting long int to machine word")
    return value


def allocation_failure(size: int) -> MemoryError:
    """What ``vstr_init_len(size)`` raises for a negative size other than -1: the length plus
    its terminating byte, as an unsigned word, is more than any heap (``py/malloc.c``'s
    ``m_malloc_fail``, which prints the request as a 32-bit unsigned)."""
    return MemoryError(f"memory allocation failed, allocating {(size + 1) % (1 << 32)} bytes")


def buffer_bytes(data: Any) -> bytes:
    """MicroPython's ``mp_get_buffer_raise(..., MP_BUFFER_READ)``: any readable buffer, and a
    str too (MicroPython's str has the buffer protocol: its UTF-8 bytes); an int is no buffer."""
    if isinstance(data, str):
        return data.encode("utf-8", "surrogatepass")
    try:
        return memoryview(data).tobytes()
    except TypeError:
        if isinstance(data, BytearrayView):  # a script's memoryview of a bytearray
            return data.tobytes()
        raise TypeError("object with buffer protocol required") from None


def read(read_once: ReadOnce, size: int | None) -> bytes | None:
    """``read(n)``: up to n bytes, looping until n or EOF; ``read()``/``read(-1)``: to EOF;
    ``read(-2)`` and below: MemoryError, before anything is read (``stream_read_generic``)."""
    if size is None:
        return read_all(read_once)
    size = machine_int(size)
    if size < 0:
        if size == -1:
            return read_all(read_once)
        raise allocation_failure(size)
    chunks: list[bytes] = []
    got = 0
    while got < size:
        data = read_once(size - got)
        if data is None:
            return b"".join(chunks) if chunks else None
        if not data:
            break  # EOF
        chunks.append(data)
        got += len(data)
    return b"".join(chunks)


def read_all(read_once: ReadOnce) -> bytes | None:
    chunks: list[bytes] = []
    while True:
        data = read_once(CHUNK)
        if data is None:
            return b"".join(chunks) if chunks else None
        if not data:
            return b"".join(chunks)
        chunks.append(data)


def readinto(read_once: ReadOnce, buffer: Any, nbytes: int | None) -> int | None:
    """``readinto(buf[, nbytes])``: loops like ``read(n)``; the count, 0 at EOF, None if none.
    ``buf`` may be a script's ``BytearrayView``: the data goes in by its slice assignment.

    The buffer must be writable (``mp_get_buffer_raise(..., MP_BUFFER_WRITE)``: bytes and str
    are TypeErrors, before anything is read); ``nbytes`` is read as an unsigned length and cut
    to the buffer's, so a negative one reads up to the whole buffer."""
    target: Any
    if isinstance(buffer, BytearrayView):
        target = buffer
    else:
        try:
            view = memoryview(buffer)
        except TypeError:
            raise TypeError("object with buffer protocol required") from None
        if view.readonly:
            raise TypeError("object with buffer protocol required")
        target = view.cast("B")
    size = (
        len(target) if nbytes is None else min(machine_int(nbytes) % (1 << WORD_BITS), len(target))
    )
    data = read(read_once, size)
    if data is None:
        return None
    target[: len(data)] = data
    return len(data)


def readline(read_once: ReadOnce, limit: int | None) -> bytes | None:
    """One byte at a time up to and including ``\\n`` (stream_unbuffered_readline)."""
    line = bytearray()
    while limit is None or limit < 0 or len(line) < limit:
        byte = read_once(1)
        if byte is None:
            return bytes(line) if line else None
        if not byte:
            break
        line += byte
        if byte == b"\n":
            break
    return bytes(line)


def write_slice(buffer: Any, arguments: tuple[int, ...]) -> bytes:
    """The data of ``write(buf[, max_len] | [, off, max_len])``."""
    data = buffer_bytes(buffer)
    if len(arguments) == 1:
        return data[: arguments[0]]
    if len(arguments) == 2:
        offset, length = arguments
        return data[offset : offset + length]
    if arguments:
        raise TypeError("write takes 1 to 3 arguments")
    return data


def write(write_once: WriteOnce, data: bytes) -> int | None:
    """Send everything; non-blocking: the partial count, or None when nothing could go."""
    done = 0
    view = memoryview(data)
    while done < len(data):
        sent = write_once(view[done:].tobytes() if done else data)
        if sent is None:
            return done if done else None
        if sent == 0:
            break
        done += sent
    return done
