"""MicroPython's ``asyncio`` (and ``uasyncio``) for scripts under ``pystack run``.

Scripts get MicroPython's asyncio, not CPython's: its API, its scheduling order and its stream
semantics (docs/asyncio.md), written for pystack and running on the script world's own
``select.poll``, ``socket`` and ``time.ticks_ms``. Everything belongs to one ``ScriptWorld``;
``asyncio_module(world)`` builds a fresh module, with a fresh event loop, for each world.

The pieces, bottom up:

- ticks.py: ``LoopClock``, the loop's milliseconds (real time, or virtual time in tests);
- queues.py: ``TaskQueue`` (run queue and waiter FIFOs, ordered by key then push order) and
  ``IOQueue`` (tasks waiting for a stream to poll readable or writable);
- task.py: ``Task``, the sleep awaitable, ``CancelledError``, ``TimeoutError``;
- core.py: ``Core``, the loop itself (wait, step, finish) and the ``Loop`` namespace;
- events.py: ``Event``, ``ThreadSafeFlag``, ``Lock``;
- funcs.py: ``wait_for``, ``wait_for_ms``, ``gather``;
- streams.py: ``Stream``, ``Server``, ``open_connection``, ``start_server``;
- module.py: the module objects scripts import.

How CPython's ``await`` meets MicroPython's: MicroPython compiles ``await x`` as ``yield from x``,
so it awaits any generator, and its own ``Event.wait``, ``Lock.acquire``, ``gather`` and stream
methods are plain generators. pystack keeps them plain generators (with ``send``, so
``create_task(event.wait())`` works) and script code awaits them through the language bridge
that wraps iterators for ``await`` (runtime/bridges.py, bridge 4). ``Task`` and the sleep
singleton have ``__await__``. Inside this package generators delegate with ``yield from``; only
the ``async with`` methods (``Lock``, ``Server``) must be real coroutines, since ``async with``
bypasses the bridge, and they await the generators through ``Awaiting``. The loop drives each
task with ``send(None)`` and ``throw(exception)`` and ignores what it yields: a task that
suspends has already queued or parked itself.

What is not MicroPython's (each explained where it is decided): a second waiter for the same
direction of a stream raises instead of silently replacing the first, cancelling one I/O waiter
keeps the other direction's, a second ``await`` of a failed task re-raises its exception,
``wait_for``'s runner cancels only the sleep it belongs to, ``Stream.write`` of a ``str`` counts
in bytes, and the names MicroPython loads lazily are there from the start.

Entry point: ``asyncio_module(world, name="asyncio")``.
"""

from pystack.runtime.masyncio.module import asyncio_module

__all__ = ["asyncio_module"]
