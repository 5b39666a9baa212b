"""The stack lock rule, checked: with PYSTACK_DEBUG_LOCKS=1 (tests/conftest.py sets it for the
whole suite) a stack driven by a StackThread asserts in poll and flush that the calling thread
holds the thread's lock."""

from __future__ import annotations

import os
import random
import threading
from collections.abc import Iterator

import pytest

from pystack.link.base import LinkKind
from pystack.link.memory import MemoryLink
from pystack.runner import DEBUG_LOCKS, StackThread
from pystack.stack import Stack, StackConfig


def _stack() -> Stack:
    link, _ = MemoryLink.pair(kind=LinkKind.IP)
    return Stack(StackConfig(address="10.0.0.1/24"), link, rng=random.Random(1))


@pytest.fixture
def owned() -> Iterator[tuple[Stack, StackThread]]:
    stack = _stack()
    thread = StackThread(stack)  # not started: the test itself plays the application thread
    yield stack, thread
    thread.stop()


def test_the_suite_runs_with_the_check_on() -> None:
    assert os.environ.get(DEBUG_LOCKS) == "1"


def test_poll_and_flush_without_the_lock_raise(owned: tuple[Stack, StackThread]) -> None:
    stack, _ = owned
    assert stack.lock_check is not None
    with pytest.raises(AssertionError, match=r"Stack\.poll without the stack thread's lock"):
        stack.poll(0.0)
    with pytest.raises(AssertionError, match=r"Stack\.flush without the stack thread's lock"):
        stack.flush(0.0)


def test_poll_and_flush_under_the_lock_pass(owned: tuple[Stack, StackThread]) -> None:
    stack, thread = owned
    with thread.lock:
        stack.poll(0.0)
        stack.flush(0.0)
    with thread.changed:  # the condition shares the lock
        stack.poll(0.1)
    thread.call(lambda: stack.poll(0.2))


def test_the_lock_held_by_another_thread_does_not_count(owned: tuple[Stack, StackThread]) -> None:
    stack, thread = owned
    errors: list[BaseException] = []

    def poll_elsewhere() -> None:
        try:
            stack.poll(0.0)
        except AssertionError as error:
            errors.append(error)

    with thread.lock:
        other = threading.Thread(target=poll_elsewhere)
        other.start()
        other.join(5.0)
    assert len(errors) == 1


def test_a_running_stack_thread_polls_under_its_lock() -> None:
    stack = _stack()
    with StackThread(stack) as thread:
        thread.call(lambda: stack.ping("10.0.0.1", 1, 1))
        assert thread.wait_for(lambda: bool(stack.echo_replies), timeout=5.0)
        assert thread.error is None


def test_the_check_is_off_without_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(DEBUG_LOCKS)
    stack = _stack()
    thread = StackThread(stack)
    try:
        assert stack.lock_check is None
        stack.poll(0.0)  # no lock, no check
    finally:
        thread.stop()


def test_a_stack_without_a_stack_thread_has_no_check() -> None:
    stack = _stack()
    assert stack.lock_check is None
    stack.poll(0.0)
