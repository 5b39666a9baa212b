"""Thread hand-offs on usocket's data path (issue 13: at most one hand-off per burst).

A usocket ``recv`` or ``send`` runs under the stack lock in the script's thread and flushes what
it queued itself (``NetworkContext.call_and_flush``); the stack thread is woken only when its
timers must run sooner than it planned (``StackThread.wake_if_needed``). Counted here: wake-ups
of the stack thread (``StackThread.wake`` calls), never time.
"""

from __future__ import annotations

from typing import Any

import pytest

from pystack.runner import StackThread
from tests.usocket.conftest import SIM_PEER, WAIT, Simulation

ECHO = (SIM_PEER, 7)


def _buffered(sock: Any) -> int:
    connection = sock._part.tcp.connection
    return connection.readable if connection is not None else 0


def test_reading_buffered_data_wakes_no_thread(
    sim: Simulation, monkeypatch: pytest.MonkeyPatch
) -> None:
    s = sim.new_stream()
    s.connect(ECHO)
    s.sendall(b"x" * 3000)
    assert sim.thread.wait_for(lambda: _buffered(s) == 3000, WAIT)
    assert sim.thread.wait_for(lambda: not sim.host.tcp._dirty, WAIT)  # the stack is idle
    wakes = []
    original = StackThread.wake
    monkeypatch.setattr(StackThread, "wake", lambda self: (wakes.append(1), original(self)))
    received = b"".join(s.recv(100) for _ in range(30))  # each one a usocket call
    assert received == b"x" * 3000
    # Before: every recv woke the stack thread (30 hand-offs). Now the window updates leave
    # from this thread and the stack thread sleeps on: no timer of its moved earlier.
    assert len(wakes) == 0


def test_a_send_wakes_the_thread_only_when_its_timer_comes_first(
    sim: Simulation, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The other side of the rule: a send arms the retransmission timer; the sleeping thread is
    woken unless it already planned to wake before that. Either way, the thread never sleeps
    past a deadline of its stacks."""
    s = sim.new_stream()
    s.connect(ECHO)
    assert sim.thread.wait_for(lambda: not sim.host.tcp._dirty, WAIT)
    wakes = []
    original = StackThread.wake
    monkeypatch.setattr(StackThread, "wake", lambda self: (wakes.append(1), original(self)))
    for _ in range(20):
        before = len(wakes)
        assert s.send(b"ping") == 4
        with sim.thread.lock:
            planned = sim.thread._sleep_until
            deadlines = [st.next_deadline() for st in sim.thread.stacks]
            due = min((d for d in deadlines if d is not None), default=None)
            woken = len(wakes) > before
            assert woken or due is None or (planned is not None and planned <= due)
        assert s.recv(4) == b"ping"
    assert len(wakes) <= 20  # at most one per send (was: one per send and one per recv)
