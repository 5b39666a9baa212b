"""The ``micropython``, ``time``/``utime`` and ``errno``/``uerrno`` modules a script sees.

``micropython``: ``const`` returns its argument; ``native``, ``bytecode``, ``viper``, ``asm_thumb`` and
``asm_xtensa`` are identity decorators (a viper function that uses ``ptr8`` or an assembler body
cannot run on CPython); ``schedule`` is scheduler.py's approximation; ``mem_info``,
``qstr_info``, ``stack_use`` print or return plausible numbers from the world's heap model;
``opt_level`` is kept per world and honoured by the importer for modules compiled afterwards
(level >= 1 drops ``assert``); ``heap_lock``/``heap_unlock``/``heap_locked`` count but never make
allocation fail; ``alloc_emergency_exception_buf`` and ``kbd_intr`` do nothing (Ctrl-C is
CPython's ``KeyboardInterrupt``).

``time`` (``extmod/modtime.c``): ``ticks_ms``/``ticks_us``/``ticks_cpu`` count from the world's
start on the world's clock (plus ``ticks_offset``), modulo ``TICKS_PERIOD``. The period is
``2**30``, the small-int range of the 32-bit microcontroller ports (the 64-bit unix port uses
``2**62``; scripts can only learn it as ``ticks_add(0, -1) + 1``), so wrap-around bugs show up as
they would on a board. ``ticks_cpu`` counts nanoseconds. ``ticks_add`` raises
``OverflowError("ticks interval overflow")`` unless ``-PERIOD/2 < delta < PERIOD/2``;
``ticks_diff`` is signed and correct across the wrap. ``time()``, ``localtime``, ``gmtime`` and
``mktime`` use the Unix epoch (1970), as the unix port does (some bare-metal ports count from
2000); ``time()`` returns a float, as on the unix port. On a world clock other than the real
one (``pystack run``'s virtual time) ``time()``, ``time_ns()`` and ``localtime()`` count from
the real time at the world's start on the world's clock. The ``sleep*`` functions wait on the
scheduler, so scheduled callbacks run during a sleep. There is no ``monotonic``/``strftime``:
MicroPython has none.

``errno``: the default ``MICROPY_PY_ERRNO_LIST`` of ``py/moderrno.c`` with the values of
``py/mperrno.h`` (Linux numbering), and ``errorcode`` mapping each value to its name.

Entry points: ``make_micropython_module``, ``make_time_module``, ``make_errno_module``.
"""

from __future__ import annotations

import operator
import sys
import time
from collections.abc import Callable
from types import ModuleType
from typing import Any, TypeVar

from pystack.clock import SystemClock
from pystack.runtime.world import ScriptWorld

F = TypeVar("F")

TICKS_PERIOD = 2**30

# py/moderrno.c default MICROPY_PY_ERRNO_LIST, values from py/mperrno.h (Linux numbering)
ERRNO_TABLE: tuple[tuple[str, int], ...] = (
    ("EPERM", 1),
    ("ENOENT", 2),
    ("EIO", 5),
    ("EBADF", 9),
    ("EAGAIN", 11),
    ("ENOMEM", 12),
    ("EACCES", 13),
    ("EEXIST", 17),
    ("ENODEV", 19),
    ("EISDIR", 21),
    ("EINVAL", 22),
    ("EOPNOTSUPP", 95),
    ("EADDRINUSE", 98),
    ("ECONNABORTED", 103),
    ("ECONNRESET", 104),
    ("ENOBUFS", 105),
    ("ENOTCONN", 107),
    ("ETIMEDOUT", 110),
    ("ECONNREFUSED", 111),
    ("EHOSTUNREACH", 113),
    ("EALREADY", 114),
    ("EINPROGRESS", 115),
)


def make_errno_module(world: ScriptWorld) -> ModuleType:
    module = ModuleType("errno")
    for name, value in ERRNO_TABLE:
        setattr(module, name, value)
    module.errorcode = {value: name for name, value in ERRNO_TABLE}  # type: ignore[attr-defined]
    return module


def _identity(function: F) -> F:
    return function


def make_micropython_module(world: ScriptWorld) -> ModuleType:
    module = ModuleType("micropython")
    heap = world.heap
    emergency_buffer = [0]

    def const(value: F) -> F:
        return value

    def opt_level(level: int | None = None) -> int | None:
        if level is None:
            return world.optimize
        world.optimize = operator.index(level)
        return None

    def mem_info(verbose: object = None) -> None:
        used = heap.used()
        print(f"stack: {_stack_use()} out of 80000")
        print(f"GC: total: {heap.size}, used: {used}, free: {heap.size - used}")
        blocks = used // 16
        print(
            f" No. of 1-blocks: {blocks * 6 // 10}, 2-blocks: {blocks // 10}, "
            f"max blk sz: 64, max free sz: {(heap.size - used) // 16}"
        )
        if verbose is not None:
            print(f"GC memory layout; from {id(heap):x}:")

    def qstr_info(verbose: object = None) -> None:
        names = len(sys.modules) * 40
        print(
            f"qstr pool: n_pool=1, n_qstr={names}, n_str_data_bytes={names * 9}, "
            f"n_total_bytes={names * 12}"
        )

    def heap_lock() -> None:
        heap.lock_depth += 1

    def heap_unlock() -> int:
        heap.lock_depth = max(0, heap.lock_depth - 1)
        return heap.lock_depth

    def heap_locked() -> int:
        return heap.lock_depth

    def alloc_emergency_exception_buf(size: int) -> None:
        emergency_buffer[0] = operator.index(size)

    def kbd_intr(character: int) -> None:
        operator.index(character)

    def schedule(function: Callable[[Any], object], argument: object) -> None:
        world.scheduler.schedule(function, argument)

    namespace: dict[str, Any] = {
        "const": const,
        "native": _identity,
        "bytecode": _identity,
        "viper": _identity,
        "asm_thumb": _identity,
        "asm_xtensa": _identity,
        "opt_level": opt_level,
        "mem_info": mem_info,
        "qstr_info": qstr_info,
        "stack_use": _stack_use,
        "heap_lock": heap_lock,
        "heap_unlock": heap_unlock,
        "heap_locked": heap_locked,
        "alloc_emergency_exception_buf": alloc_emergency_exception_buf,
        "kbd_intr": kbd_intr,
        "schedule": schedule,
    }
    vars(module).update(namespace)
    return module


def _stack_use() -> int:
    depth = 0
    frame = sys._getframe(1)
    while frame.f_back is not None:
        depth += 1
        frame = frame.f_back
    return 160 + 48 * depth  # bytes of C stack a MicroPython frame of this depth would use


def _time_tuple(value: time.struct_time) -> tuple[int, ...]:
    # (year, month, mday, hour, minute, second, weekday 0=Monday, yearday 1..366)
    return tuple(value)[:8]


def make_time_module(
    world: ScriptWorld, period: int = TICKS_PERIOD, ticks_offset: int = 0
) -> ModuleType:
    if period <= 0 or period & (period - 1):
        raise ValueError("the ticks period must be a power of two")
    module = ModuleType("time")
    clock = world.clock
    start = clock.now()
    mask = period - 1
    half = period // 2

    def elapsed() -> float:
        return clock.now() - start

    def ticks_ms() -> int:
        return (int(elapsed() * 1_000) + ticks_offset) & mask

    def ticks_us() -> int:
        return (int(elapsed() * 1_000_000) + ticks_offset * 1_000) & mask

    def ticks_cpu() -> int:
        return (int(elapsed() * 1_000_000_000) + ticks_offset * 1_000_000) & mask

    def ticks_add(ticks: int, delta: int) -> int:
        delta = operator.index(delta)
        if not -half < delta < half:
            raise OverflowError("ticks interval overflow")
        return (operator.index(ticks) + delta) & mask

    def ticks_diff(end: int, begin: int) -> int:
        return ((operator.index(end) - operator.index(begin) + half) & mask) - half

    def sleep(seconds: float) -> None:
        world.scheduler.sleep(float(seconds))

    def sleep_ms(milliseconds: int) -> None:
        world.scheduler.sleep(operator.index(milliseconds) / 1_000)

    def sleep_us(microseconds: int) -> None:
        world.scheduler.sleep(operator.index(microseconds) / 1_000_000)

    if isinstance(clock, SystemClock):
        epoch_time, epoch_time_ns = time.time, time.time_ns
    else:
        wall_start = time.time_ns()

        def epoch_time_ns() -> int:
            return wall_start + int(elapsed() * 1_000_000_000)

        def epoch_time() -> float:
            return epoch_time_ns() / 1_000_000_000

    def localtime(seconds: float | None = None) -> tuple[int, ...]:
        return _time_tuple(time.localtime(epoch_time() if seconds is None else seconds))

    def gmtime(seconds: float | None = None) -> tuple[int, ...]:
        return _time_tuple(time.gmtime(epoch_time() if seconds is None else seconds))

    def mktime(moment: tuple[int, ...]) -> int:
        if len(moment) not in (8, 9):
            raise TypeError("mktime needs a tuple of length 8 or 9")
        year, month, day, hour, minute, second = (operator.index(v) for v in moment[:6])
        return int(time.mktime((year, month, day, hour, minute, second, 0, 0, -1)))

    namespace: dict[str, Any] = {
        "ticks_ms": ticks_ms,
        "ticks_us": ticks_us,
        "ticks_cpu": ticks_cpu,
        "ticks_add": ticks_add,
        "ticks_diff": ticks_diff,
        "sleep": sleep,
        "sleep_ms": sleep_ms,
        "sleep_us": sleep_us,
        "time": epoch_time,
        "time_ns": epoch_time_ns,
        "localtime": localtime,
        "gmtime": gmtime,
        "mktime": mktime,
    }
    vars(module).update(namespace)
    return module
