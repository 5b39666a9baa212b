"""usocket sockets used from several threads at once (the simulator's stack thread runs them all).

MicroPython ports with ``_thread`` (rp2, ...) run lwIP sockets from two cores; pystack's rule is
that every stack access takes the one core lock and every wait is on the stack's condition, so a
blocked recv never holds the lock another thread needs. A close from another thread must wake a
blocked recv: USOCKET.md 3 close says afterwards "every operation fails" with EBADF, and a recv
waiting on that socket is such an operation, so it raises EBADF (poll reports POLLNVAL).
"""

from __future__ import annotations

import errno
import functools
import threading
import time
from collections.abc import Callable
from typing import Any

from tests.usocket.conftest import SIM_PEER, WAIT, Simulation

THREADS = 4
ROUND_TRIPS = 50


def run_threads(targets: list[Callable[[], Any]], timeout: float = 4 * WAIT) -> list[Any]:
    """Run each target in its own thread; return results (or the exception each raised)."""
    results: list[Any] = [None] * len(targets)

    def runner(index: int, target: Callable[[], Any]) -> None:
        try:
            results[index] = target()
        except BaseException as error:  # handed back to the test
            results[index] = error

    threads = [
        threading.Thread(target=runner, args=(i, t), daemon=True) for i, t in enumerate(targets)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)
        assert not thread.is_alive(), "a thread is still running"
    return results


def test_four_threads_each_do_50_echo_round_trips_on_their_own_socket(sim: Simulation) -> None:
    def echo_client(number: int) -> int:
        s = sim.new_socket()
        s.settimeout(WAIT)
        s.connect((SIM_PEER, 7))
        for n in range(ROUND_TRIPS):
            message = b"thread %d message %d " % (number, n) + bytes([number]) * n
            assert s.send(message) == len(message)
            assert s.recv(1000) == message
        return ROUND_TRIPS

    results = run_threads([functools.partial(echo_client, i) for i in range(THREADS)])
    assert results == [ROUND_TRIPS] * THREADS


def test_threads_sharing_one_socket_send_and_receive(sim: Simulation) -> None:
    """Two threads send on one socket while a third receives everything the echo returns."""
    s = sim.new_socket()
    s.settimeout(WAIT)
    s.bind(("", 6500))
    s.connect((SIM_PEER, 7))
    per_sender = 30
    received: list[bytes] = []
    in_flight = threading.Semaphore(4)  # the socket queue holds 4: never have more outstanding

    def sender(tag: bytes) -> None:
        for n in range(per_sender):
            assert in_flight.acquire(timeout=WAIT)
            s.send(tag + b"%d" % n)

    def receiver() -> None:
        while len(received) < 2 * per_sender:
            received.append(s.recv(100))
            in_flight.release()

    results = run_threads([receiver, lambda: sender(b"a"), lambda: sender(b"b")])
    assert results == [None, None, None]
    expected = {b"a%d" % n for n in range(per_sender)} | {b"b%d" % n for n in range(per_sender)}
    assert sorted(received) == sorted(expected)


def test_recv_blocked_in_one_thread_while_another_sends_on_the_same_socket(
    sim: Simulation,
) -> None:
    s = sim.new_socket()
    s.settimeout(WAIT)
    s.bind(("", 6501))
    started = threading.Event()

    def blocked_receiver() -> Any:
        started.set()
        return s.recvfrom(100)  # waits: nothing is queued yet

    def sender() -> Any:
        started.wait(WAIT)
        time.sleep(0.02)  # not for correctness: the receiver is likely inside recvfrom now
        return s.sendto(b"through the echo", (SIM_PEER, 7))  # needs the lock the wait does not hold

    received, sent = run_threads([blocked_receiver, sender])
    assert sent == 16
    assert received == (b"through the echo", (SIM_PEER, 7))


def test_recv_blocked_in_one_thread_is_woken_by_the_peer(sim: Simulation) -> None:
    s = sim.new_socket()
    s.settimeout(None)  # really blocking; the thread join bounds the test
    s.bind(("", 6502))
    peer = sim.peer_endpoint(0)
    started = threading.Event()

    def blocked_receiver() -> bytes:
        started.set()
        return bytes(s.recv(100))

    def peer_sender() -> None:
        started.wait(WAIT)
        time.sleep(0.02)
        sim.peer_send(peer, b"wake up", 6502)

    assert run_threads([blocked_receiver, peer_sender]) == [b"wake up", None]


def test_close_from_another_thread_wakes_a_blocked_recv_with_ebadf(sim: Simulation) -> None:
    s = sim.new_socket()
    s.settimeout(WAIT)  # if close did not wake it, it would end in ETIMEDOUT after WAIT
    s.bind(("", 6503))
    started = threading.Event()

    def blocked_receiver() -> tuple[BaseException | None, float]:
        started.set()
        began = time.monotonic()
        try:
            s.recv(100)
        except OSError as error:
            return error, time.monotonic() - began
        return None, time.monotonic() - began

    def closer() -> None:
        started.wait(WAIT)
        time.sleep(0.05)  # the outcome is EBADF either way; this makes the wake-up path run
        s.close()

    (error, elapsed), _ = run_threads([blocked_receiver, closer])
    assert isinstance(error, OSError) and error.args == (errno.EBADF,), repr(error)
    assert elapsed < WAIT / 2  # woken by the close, not by the timeout


def test_close_from_another_thread_wakes_a_blocked_poll_with_pollnval(sim: Simulation) -> None:
    select = sim.select
    s = sim.new_socket()
    s.bind(("", 6504))
    poller = select.poll()
    poller.register(s, select.POLLIN)
    started = threading.Event()

    def blocked_poll() -> list[tuple[Any, int]]:
        started.set()
        return list(poller.poll(int(WAIT * 1000)))

    def closer() -> None:
        started.wait(WAIT)
        time.sleep(0.05)
        s.close()

    began = time.monotonic()
    result, _ = run_threads([blocked_poll, closer])
    assert result == [(s, 32)]  # POLLNVAL
    assert time.monotonic() - began < WAIT / 2


def test_two_threads_blocked_on_one_socket_each_get_one_datagram(sim: Simulation) -> None:
    s = sim.new_socket()
    s.settimeout(WAIT)
    s.bind(("", 6505))
    peer = sim.peer_endpoint(0)
    ready = threading.Barrier(3)

    def receiver() -> bytes:
        ready.wait(WAIT)
        return bytes(s.recv(100))

    def peer_sender() -> None:
        ready.wait(WAIT)
        time.sleep(0.02)
        sim.peer_send(peer, b"first", 6505)
        sim.peer_send(peer, b"second", 6505)

    first, second, _ = run_threads([receiver, receiver, peer_sender])
    assert sorted([first, second]) == [b"first", b"second"]  # each one once, none twice


def test_many_threads_poll_their_own_sockets(sim: Simulation) -> None:
    select = sim.select

    def poll_client(number: int) -> int:
        s = sim.new_socket()
        s.setblocking(False)
        poller = select.poll()
        poller.register(s, select.POLLIN)
        for n in range(20):
            message = b"%d-%d" % (number, n)
            s.sendto(message, (SIM_PEER, 7))
            assert poller.poll(int(WAIT * 1000)) == [(s, select.POLLIN)]
            assert s.recv(100) == message
        return number

    assert run_threads([functools.partial(poll_client, i) for i in range(6)]) == list(range(6))


def test_poll_sees_a_custom_pollable_made_ready_by_another_thread_at_once(
    sim: Simulation,
) -> None:
    """Any object with ioctl(MP_STREAM_POLL) can be polled; its readiness does not come from the
    stack, so poll looks every millisecond rather than waiting for the stack to wake it."""
    select = sim.select

    class Flag:
        ready = False

        def ioctl(self, request: int, argument: int) -> int:
            return argument & 1 if request == 3 and self.ready else 0

    flag = Flag()
    poller = select.poll()
    poller.register(flag, select.POLLIN)
    timer = threading.Timer(0.02, lambda: setattr(flag, "ready", True))
    start = time.monotonic()
    timer.start()
    try:
        assert poller.poll(5000) == [(flag, select.POLLIN)]
    finally:
        timer.cancel()
    assert time.monotonic() - start < 0.3  # not the stack's idle wake-up (0.5 s)
