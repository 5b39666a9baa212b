"""micropython.schedule's scheduler: callbacks run only at script-world bytecodes, in order."""

from __future__ import annotations

import threading
import time
from typing import Any

from pystack.runtime.scheduler import Scheduler


def _script_world_loop(builtins: dict[str, Any], seen: list[object], seconds: float) -> None:
    code = (
        "import time\n"
        "deadline = time.monotonic() + seconds\n"
        "while not seen and time.monotonic() < deadline:\n"
        "    pass\n"
    )
    exec(code, {"__builtins__": builtins, "seen": seen, "seconds": seconds})


def test_callbacks_wait_while_the_main_thread_runs_pystack_code() -> None:
    builtins: dict[str, Any] = dict(
        __builtins__ if isinstance(__builtins__, dict) else vars(__builtins__)
    )
    scheduler = Scheduler(builtins)
    seen: list[object] = []
    assert scheduler.install()
    try:
        scheduler.schedule(seen.append, "first")
        scheduler.schedule(seen.append, "second")
        deadline = time.monotonic() + 0.05
        while time.monotonic() < deadline:  # this test module is not script-world code
            pass
        assert seen == [] and scheduler.pending == 2
        _script_world_loop(builtins, seen, 5.0)
        assert seen == ["first", "second"] and scheduler.pending == 0
    finally:
        scheduler.uninstall()


def test_without_install_callbacks_run_in_sleep_and_run_pending() -> None:
    scheduler = Scheduler({})
    seen: list[object] = []
    timer = threading.Timer(0.01, scheduler.schedule, (seen.append, 1))
    timer.start()
    start = time.monotonic()
    scheduler.sleep(0.1)
    assert seen == [1] and time.monotonic() - start >= 0.1
    scheduler.schedule(seen.append, 2)
    assert seen == [1]
    scheduler.run_pending()
    assert seen == [1, 2]


def test_uninstall_restores_the_signal_handler() -> None:
    import signal

    from pystack.runtime.scheduler import SIGNAL

    before = signal.getsignal(SIGNAL)
    scheduler = Scheduler({})
    scheduler.install()
    assert signal.getsignal(SIGNAL) is not before
    scheduler.uninstall()
    assert signal.getsignal(SIGNAL) == before


def test_a_callback_that_schedules_itself_runs_once_per_check() -> None:
    scheduler = Scheduler({})
    runs: list[int] = []

    def again(count: object) -> None:
        runs.append(int(count))  # type: ignore[call-overload]
        scheduler.schedule(again, int(count) + 1)  # type: ignore[call-overload]

    scheduler.schedule(again, 0)
    scheduler.run_pending()
    assert runs == [0] and scheduler.pending == 1  # the new one waits for the next check
    scheduler.run_pending()
    assert runs == [0, 1] and scheduler.pending == 1
