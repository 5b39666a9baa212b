"""utime for scripts: ticks with MicroPython's wrap-around, sleeps, and the calendar functions."""

from __future__ import annotations

import time as cpython_time
from types import ModuleType

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pystack.clock import ManualClock
from pystack.runtime import default_providers
from pystack.runtime.micropython_module import TICKS_PERIOD, make_time_module
from pystack.runtime.world import ScriptWorld

PERIOD = TICKS_PERIOD
HALF = PERIOD // 2


def _time(clock: ManualClock | None = None, offset: int = 0) -> ModuleType:
    world = ScriptWorld(default_providers(), path=[], argv=["x.py"], clock=clock)
    return make_time_module(world, ticks_offset=offset)


TIME = _time()
ticks = st.integers(min_value=0, max_value=PERIOD - 1)
deltas = st.integers(min_value=-HALF + 1, max_value=HALF - 1)


def test_period_is_the_32_bit_ports_and_visible_as_micropython_shows_it() -> None:
    assert PERIOD == 2**30
    assert TIME.ticks_add(0, -1) + 1 == PERIOD


@given(ticks, deltas)
def test_ticks_add_then_diff_gives_the_delta_back(start: int, delta: int) -> None:
    later = TIME.ticks_add(start, delta)
    assert 0 <= later < PERIOD
    assert TIME.ticks_diff(later, start) == delta
    assert TIME.ticks_diff(start, later) == -delta


@given(ticks, ticks)
def test_ticks_diff_is_signed_and_in_range(a: int, b: int) -> None:
    difference = TIME.ticks_diff(a, b)
    assert -HALF <= difference < HALF
    assert (b + difference) % PERIOD == a


@pytest.mark.parametrize("delta", [HALF, -HALF, PERIOD, -PERIOD - 5])
def test_ticks_add_refuses_intervals_ticks_diff_cannot_represent(delta: int) -> None:
    with pytest.raises(OverflowError, match="ticks interval overflow"):
        TIME.ticks_add(0, delta)
    TIME.ticks_add(0, HALF - 1)
    TIME.ticks_add(0, -HALF + 1)


def test_ticks_wrap_around_on_the_worlds_clock() -> None:
    clock = ManualClock(100.0)
    time = _time(clock, offset=PERIOD - 10)
    before = time.ticks_ms()
    assert before == PERIOD - 10
    clock.advance(0.025)
    after = time.ticks_ms()
    assert after == 15
    assert after < before and time.ticks_diff(after, before) == 25
    assert time.ticks_diff(time.ticks_us(), 0) != 0
    clock.advance(1.0)
    assert time.ticks_diff(time.ticks_ms(), after) == 1000


def test_ticks_us_and_cpu_move_together() -> None:
    clock = ManualClock()
    time = _time(clock)
    clock.advance(0.000_123)
    assert time.ticks_us() == 123
    assert time.ticks_cpu() == pytest.approx(123_000, abs=1)


def test_ticks_diff_rejects_floats() -> None:
    with pytest.raises(TypeError):
        TIME.ticks_diff(1.5, 0)
    with pytest.raises(TypeError):
        TIME.sleep_ms(1.5)


def test_sleeps_wait_and_accept_negative_as_zero() -> None:
    start = cpython_time.monotonic()
    TIME.sleep_ms(30)
    TIME.sleep_us(1000)
    TIME.sleep(0.01)
    TIME.sleep_ms(-5)
    assert cpython_time.monotonic() - start >= 0.04


def test_calendar_functions_use_the_1970_epoch() -> None:
    assert TIME.gmtime(0) == (1970, 1, 1, 0, 0, 0, 3, 1)
    assert TIME.gmtime(86400 * 366) == (1971, 1, 2, 0, 0, 0, 5, 2)
    now = int(cpython_time.time())
    assert TIME.mktime(TIME.localtime(now)) == now
    assert len(TIME.localtime()) == 8
    assert abs(TIME.time() - cpython_time.time()) < 5
    assert isinstance(TIME.time_ns(), int)
    with pytest.raises(TypeError):
        TIME.mktime((1970, 1, 1))


def test_only_micropythons_names() -> None:
    public = {name for name in vars(TIME) if not name.startswith("_")}
    assert public == {
        "ticks_ms", "ticks_us", "ticks_cpu", "ticks_add", "ticks_diff",
        "sleep", "sleep_ms", "sleep_us", "time", "time_ns", "localtime", "gmtime", "mktime",
    }  # fmt: skip
