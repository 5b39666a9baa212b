"""StackThread: one thread drives stacks in real time; callers use the lock, wake and wait_for."""

from __future__ import annotations

import random
import threading
import time

import pytest

from pystack import runner
from pystack.clock import VirtualClock
from pystack.link.base import LinkKind
from pystack.link.memory import MemoryLink
from pystack.runner import StackThread
from pystack.stack import Stack, StackConfig
from pystack.tcp.state import TCPState
from pystack.wire.addresses import ip_from_str


def _pair(kind: LinkKind = LinkKind.ETHERNET) -> tuple[Stack, Stack]:
    left, right = MemoryLink.pair(kind=kind)
    return (
        Stack(StackConfig(address="10.0.0.1/24"), left, rng=random.Random(1)),
        Stack(StackConfig(address="10.0.0.2/24"), right, rng=random.Random(2)),
    )


@pytest.mark.parametrize("kind", [LinkKind.IP, LinkKind.ETHERNET])
def test_two_stack_threads_ping_each_other_in_real_time(kind: LinkKind) -> None:
    alice, bob = _pair(kind)
    with StackThread(alice, name="alice") as a_thread, StackThread(bob, name="bob"):
        for sequence in range(1, 21):
            a_thread.call(lambda s=sequence: alice.ping("10.0.0.2", 9, s, b"%d" % s))
        assert a_thread.wait_for(lambda: len(alice.echo_replies) == 20, timeout=5.0)
    assert [r.sequence for r in alice.echo_replies] == list(range(1, 21))
    assert [r.data for r in alice.echo_replies] == [b"%d" % s for s in range(1, 21)]


def test_one_thread_drives_several_stacks() -> None:
    alice, bob = _pair()
    with StackThread(alice, bob) as thread:
        thread.call(lambda: alice.ping("10.0.0.2", 1, 1, bytes(3000)))
        assert thread.wait_for(lambda: bool(alice.echo_replies), timeout=5.0)
    assert alice.echo_replies[0].data == bytes(3000)


def test_wait_for_times_out_without_hanging() -> None:
    alice, _ = _pair()
    with StackThread(alice) as thread:
        started = time.monotonic()
        assert thread.wait_for(lambda: False, timeout=0.2) is False
        assert time.monotonic() - started < 2.0


def test_wake_makes_queued_output_leave_without_waiting_for_a_timer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # With an idle wait of a minute, only the wake-up pipe can get the frame out in time.
    monkeypatch.setattr(runner, "IDLE_WAIT", 60.0)
    alice, bob = _pair(LinkKind.IP)
    with StackThread(alice) as thread:
        time.sleep(0.05)  # let the thread settle into its idle wait
        thread.call(lambda: alice.ping("10.0.0.2", 1, 1, b"now"))
        deadline = time.monotonic() + 20.0
        frames: list[bytes] = []
        while not frames and time.monotonic() < deadline:
            frames = bob.link.receive(time.monotonic())
            time.sleep(0.001)
        assert frames, "the echo request never left"
        thread.stop(timeout=1.0)


def test_application_threads_share_the_core_lock() -> None:
    alice, bob = _pair()
    errors: list[BaseException] = []
    with StackThread(alice, bob) as thread:

        def pinger(identifier: int) -> None:
            try:
                for sequence in range(25):
                    thread.call(lambda s=sequence: alice.ping("10.0.0.2", identifier, s, b"x"))
            except BaseException as error:  # surfaced below
                errors.append(error)

        workers = [threading.Thread(target=pinger, args=(n,)) for n in range(4)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(10)
        assert thread.wait_for(lambda: len(alice.echo_replies) == 100, timeout=5.0)
    assert not errors
    assert {(r.identifier, r.sequence) for r in alice.echo_replies} == {
        (n, s) for n in range(4) for s in range(25)
    }


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_crash_in_the_stack_thread_reaches_waiters() -> None:
    alice, _ = _pair()

    def explode(now: float) -> int:
        raise ValueError("bug in poll")

    alice.poll = explode  # type: ignore[method-assign]
    thread = StackThread(alice)
    thread.start()
    try:
        with pytest.raises(RuntimeError, match="stack thread died"):
            thread.wait_for(lambda: False, timeout=5.0)
    finally:
        thread.stop()
    assert isinstance(thread.error, ValueError)


def test_stop_is_idempotent_and_closes_the_wake_pipe() -> None:
    alice, _ = _pair()
    thread = StackThread(alice)
    thread.start()
    thread.stop()
    thread.stop()
    thread.wake()  # after stop: harmless


# -- virtual time (a VirtualClock makes the thread its driver) ---------------------------------


def _virtual_pair() -> tuple[Stack, Stack, VirtualClock]:
    clock = VirtualClock()
    left, right = MemoryLink.pair(kind=LinkKind.ETHERNET)
    alice = Stack(StackConfig(address="10.0.0.1/24"), left, clock, random.Random(1))
    bob = Stack(StackConfig(address="10.0.0.2/24"), right, clock, random.Random(2))
    return alice, bob, clock


def test_on_virtual_time_a_ping_takes_no_time_and_a_timeout_is_exact() -> None:
    alice, bob, clock = _virtual_pair()
    clock.attach()
    try:
        with StackThread(alice, bob, clock=clock) as thread:
            thread.call(lambda: alice.ping("10.0.0.2", 1, 1, b"x"))
            assert thread.wait_for(lambda: len(alice.echo_replies) == 1, timeout=5.0)
            assert clock.now() == 0.0  # an infinitely fast link, and nobody computed for long
            assert not thread.wait_for(lambda: False, timeout=3600.0)
            assert clock.now() == 3600.0
    finally:
        clock.detach()


def test_on_virtual_time_the_stacks_timers_fire_while_everyone_waits() -> None:
    alice, bob, clock = _virtual_pair()
    clock.attach()
    try:
        with StackThread(alice, bob, clock=clock) as thread:
            # nobody listens on bob's port 9 and bob stays silent: alice's SYN is answered by a
            # RST (at once); to a silent address in the subnet, ARP gives up on its own timers
            connection = thread.call(
                lambda: alice.tcp.connect(ip_from_str("10.0.0.2"), 9, clock.now())
            )
            assert thread.wait_for(lambda: connection.state is TCPState.CLOSED, timeout=None)
            assert clock.now() == 0.0
            silent = thread.call(
                lambda: alice.tcp.connect(ip_from_str("10.0.0.77"), 9, clock.now())
            )
            assert thread.wait_for(lambda: silent.state is TCPState.CLOSED, timeout=None)
            assert clock.now() > 1.0  # retransmission timers passed, in no real wait
    finally:
        clock.detach()


def test_on_virtual_time_a_thread_that_is_not_attached_is_a_party_while_it_waits() -> None:
    alice, bob, clock = _virtual_pair()
    with StackThread(alice, bob, clock=clock) as thread:
        assert not thread.wait_for(lambda: False, timeout=90.0)
        assert clock.now() == 90.0
        assert not thread.wait_for(lambda: False, timeout=0.0)
        assert clock.now() == 90.0
