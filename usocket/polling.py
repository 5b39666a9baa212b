"""``select`` / ``uselect`` as MicroPython's extmod/modselect.c has them (docs/usocket.md 4).

``poll()`` objects register anything with ``ioctl(MP_STREAM_POLL, mask)``; ``poll(timeout_ms)``
returns a fresh list of ``(obj, revents)``; ``ipoll`` yields one reused 2-tuple (callee-owned),
with ``flags=1`` meaning one-shot. HUP, ERR and NVAL are reported whatever the mask. The wait
itself is the stack context's: socket readiness changes only when the stack thread polls, and it
notifies waiters every time it does; other pollables (anything with ``ioctl``) are looked at
every millisecond (of the stack's clock, which may be virtual).
Entry points: ``Poll``, ``select_function``.
"""

from __future__ import annotations

import errno
from collections.abc import Iterator
from typing import Any

from usocket import constants as c
from usocket.context import NetworkContext
from usocket.errors import error

_ALWAYS = c.POLLHUP | c.POLLERR | c.POLLNVAL


def _revents(obj: Any, mask: int) -> int:
    ioctl = getattr(obj, "ioctl", None)
    if ioctl is None:
        raise OSError("stream operation not supported")
    result = ioctl(c.MP_STREAM_POLL, mask)
    return int(result) & (mask | _ALWAYS)


def _timeout_ms(timeout: object) -> int | None:
    if timeout is None:
        return None
    value = int(timeout)  # type: ignore[call-overload]
    return None if value < 0 else value


class _ReusedPair:
    """The one ``(obj, revents)`` pair ``ipoll`` mutates and yields for every result.

    CPython tuples cannot be mutated, so this stands in for MicroPython's callee-owned tuple:
    it unpacks, indexes, compares equal to ``(obj, revents)`` and prints like that tuple.
    """

    __slots__ = ("events", "obj")

    def __init__(self) -> None:
        self.obj: Any = None
        self.events = 0

    def __len__(self) -> int:
        return 2

    def __iter__(self) -> Iterator[Any]:
        return iter((self.obj, self.events))

    def __getitem__(self, index: Any) -> Any:
        return (self.obj, self.events)[index]

    def __eq__(self, other: object) -> bool:
        if isinstance(other, _ReusedPair | tuple | list):
            return (self.obj, self.events) == tuple(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        return repr((self.obj, self.events))


class Poll:
    def __init__(self, context: NetworkContext) -> None:
        self._context = context
        self._entries: dict[int, list[Any]] = {}  # id(obj) -> [obj, mask]
        self._results: list[tuple[Any, int]] = []
        self._reused = _ReusedPair()
        self._one_shot = False

    def register(self, obj: Any, eventmask: int = c.POLLIN | c.POLLOUT) -> None:
        if getattr(obj, "ioctl", None) is None:
            raise OSError("stream operation not supported")
        self._entries[id(obj)] = [obj, eventmask]

    def unregister(self, obj: Any) -> None:
        self._entries.pop(id(obj), None)

    def modify(self, obj: Any, eventmask: int) -> None:
        entry = self._entries.get(id(obj))
        if entry is None:
            raise error(errno.ENOENT)
        entry[1] = eventmask

    def _scan(self) -> list[tuple[Any, int]]:
        ready = []
        for obj, mask in list(self._entries.values()):
            events = _revents(obj, mask)
            if events:
                ready.append((obj, events))
        return ready

    def _wait(self, timeout: object) -> list[tuple[Any, int]]:
        found: list[tuple[Any, int]] = []

        def check() -> bool:
            nonlocal found
            found = self._scan()
            return bool(found)

        milliseconds = _timeout_ms(timeout)
        if all(getattr(obj, "_stack_driven", False) for obj, _mask in self._entries.values()):
            self._context.wait(check, milliseconds)  # woken by the stack whenever it polled
            return found
        # Another pollable (any object with ioctl) can become ready without the stack: look
        # every millisecond, as MicroPython's poll loop does between its event-poll hooks.
        now = self._context.now  # the stack's clock: real, or virtual on the simulator
        end = None if milliseconds is None else now() + milliseconds / 1000
        while not self._context.wait(check, 0 if end is not None and milliseconds == 0 else 1):
            if end is not None and now() >= end:
                break
        return found

    def poll(self, timeout: object = -1) -> list[tuple[Any, int]]:
        return self._wait(timeout)

    def ipoll(self, timeout: object = -1, flags: int = 0) -> Poll:
        self._results = self._wait(timeout)
        self._one_shot = bool(flags & 1)
        return self

    def __iter__(self) -> Iterator[Any]:
        return self

    def __next__(self) -> _ReusedPair:
        if not self._results:
            raise StopIteration
        obj, events = self._results.pop(0)
        if self._one_shot:
            entry = self._entries.get(id(obj))
            if entry is not None:
                entry[1] = 0  # one-shot: silent until modify()
        reused = self._reused
        reused.obj, reused.events = obj, events
        return reused  # one mutable pair, as MicroPython's callee-owned tuple


def select_function(context: NetworkContext) -> Any:
    """``select.select(rlist, wlist, xlist[, timeout_s])`` over the same poll machinery."""

    def select(
        rlist: Any, wlist: Any, xlist: Any, timeout: float | None = None
    ) -> tuple[list[Any], list[Any], list[Any]]:
        poller = Poll(context)
        masks: dict[int, list[Any]] = {}
        for objects, bit in ((rlist, c.POLLIN), (wlist, c.POLLOUT), (xlist, 0)):
            for obj in objects:
                entry = masks.setdefault(id(obj), [obj, 0])
                entry[1] |= bit
        for obj, mask in masks.values():
            poller.register(obj, mask)
        milliseconds = None if timeout is None else max(0, int(timeout * 1000))
        ready = poller.poll(milliseconds)
        readable = [o for o, e in ready if e & c.POLLIN]
        writable = [o for o, e in ready if e & c.POLLOUT]
        exceptional = [o for o, e in ready if e & ~(c.POLLIN | c.POLLOUT)]
        return readable, writable, exceptional

    return select
