"""The binding between the MicroPython socket modules and one running stack.

``NetworkContext`` holds the ``StackThread`` and ``Stack`` a script's sockets live on, and
implements the one waiting rule every blocking call shares (docs/usocket.md section 2): a
timeout of None waits forever, 0 does not wait, a positive number of milliseconds waits that
long. Modules are built per context (``usocket.modules``), so two stacks can serve two scripts
in one process; nothing here is global.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from pystack.dns.client import StackResolver
from pystack.dns.resolver import getaddrinfo_errno
from pystack.runner import StackThread
from pystack.stack import Stack
from usocket import errors
from usocket.stream import StreamRegistry

T = TypeVar("T")


class NetworkContext:
    def __init__(
        self,
        thread: StackThread,
        stack: Stack,
        resolve: Callable[[str, float | None], list[int]] | None = None,
    ) -> None:
        self.thread = thread
        self.stack = stack
        self.resolve_name = resolve  # name, timeout (s) -> addresses; OSError(negative) on failure
        self._streams: StreamRegistry | None = None
        # micropython.schedule of the script world, for socket callbacks (setsockopt 20)
        self.schedule: Callable[[Callable[[Any], object], object], None] | None = None

    @property
    def streams(self) -> StreamRegistry:
        """The TCP bookkeeping of this context's sockets (bindings, accept rings)."""
        if self._streams is None:
            self._streams = StreamRegistry(self)
        return self._streams

    @property
    def lock(self) -> threading.RLock:
        return self.thread.lock

    def now(self) -> float:
        return self.stack.clock.now()

    def call(self, function: Callable[[], T]) -> T:
        """Run ``function`` under the stack lock, then let the stack thread send what it queued."""
        return self.thread.call(function)

    def call_and_flush(self, function: Callable[[], T]) -> T:
        """``call``, and send what ``function`` queued from this thread at once: a segment does
        not wait for the stack thread to be scheduled (one thread hand-off less per send); the
        stack thread is woken only when its timers must run sooner than it planned
        (``StackThread.wake_if_needed``), so a burst of sends or reads costs no hand-off per
        call. ``recv`` uses it too (reading may queue a window update)."""
        with self.thread.lock:
            result = function()
            self.stack.flush(self.now())
            self.thread.wake_if_needed()
        return result

    def wait(self, ready: Callable[[], bool], timeout_ms: int | None) -> bool:
        """Wait (lock held while checking) until ``ready()``; False when the timeout ran out.
        On virtual time a zero timeout still lets the stacks settle once at this instant, so a
        script polling without blocking sees what has arrived (and time can move under it)."""
        if timeout_ms is not None and timeout_ms <= 0:
            if self.thread.virtual is not None:
                return self.thread.wait_for(ready, 0.0)
            with self.thread.lock:
                return ready()
        return self.thread.wait_for(ready, None if timeout_ms is None else timeout_ms / 1000.0)

    def catch_up(self, ready: Callable[[], bool]) -> bool:
        """Before a non-blocking call answers "would block": on virtual time, unless ``ready()``
        already holds, let the stacks settle once at this instant (a zero wait), so a script
        polling in a loop sees what has arrived, and time moves under it once it has computed
        past its free time. Returns ``ready()`` after that; on real time False at once (the call
        answers as it always has)."""
        if self.thread.virtual is None:
            return False
        return self.thread.wait_for(ready, 0.0)

    @staticmethod
    def monotonic_ms() -> int:
        return int(time.monotonic() * 1000)


def resolver_function(
    thread: StackThread, stack: Stack, resolver: StackResolver
) -> Callable[[str, float | None], list[int]]:
    """``resolve(name, timeout)`` for ``getaddrinfo``: waits for the lookup, raising
    ``OSError(negative lwIP error)`` as MicroPython does (USOCKET.md 3 getaddrinfo)."""

    def resolve(name: str, timeout: float | None) -> list[int]:
        lookup = thread.call(lambda: resolver.resolve(name, stack.clock.now()))
        thread.wait_for(lambda: lookup.done, timeout)
        if not lookup.done or lookup.error is not None:
            error = lookup.error
            raise errors.error(getaddrinfo_errno(error) if error is not None else -2)
        return list(lookup.addresses)

    return resolve
