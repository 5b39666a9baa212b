"""The ``machine`` module a script sees: a board's, modelled on the esp32 port.

MicroPython's unix port has almost no ``machine`` (``soft_reset``, ``idle``, ``mem8``...), so board
code would stop at ``from machine import unique_id``. pystack gives the board functions and
classes that make sense without hardware, with the esp32 port's constants and messages
(``ports/esp32/modmachine.c``, ``machine_pin.c``, ``machine_timer.c``, ``machine_rtc.c``);
signatures from ``docs/library/machine*.rst``.

Emulated:

- ``unique_id()``: the host's MAC address (``uuid.getnode()``) as 6 bytes, as the esp32 returns
  its base MAC; stable from run to run on one host.
- ``reset()``: ends the script (status 0) with a note on stderr; connections are reset, as a
  board's reset drops them. ``deepsleep([ms])``: the same (a board restarts its main script on
  waking, which pystack does not do). ``soft_reset()``: ``SystemExit`` as on every port
  (``extmod/modmachine.c`` maps it to ``sys.exit``), with a note; connections close normally.
- ``reset_cause()``: ``PWRON_RESET`` (each run is a fresh power-on); the five constants have
  the esp32's values.
- ``freq([hz])``: 160 MHz; setting accepts the esp32's 20, 40, 80, 160 and 240 MHz.
- ``idle()``: waits up to 1 ms, running scheduled callbacks. ``lightsleep(ms)``: waits, running
  callbacks; ``lightsleep()``/``sleep()`` without a time wait until a Timer or Pin callback ran.
- ``Pin``: per-world pins by id (two ``Pin(2)`` objects are one pin) with mode, pull and level;
  ``value()``, ``__call__``, ``on``/``off``/``toggle``, ``init``, ``irq``. Nothing drives a pin
  from outside: an input reads its pull (``PULL_UP`` 1, else 0), an output or open-drain pin
  its output level. ``irq(handler, trigger)`` fires on the level changes the script itself
  makes (a soft IRQ through ``micropython.schedule``; ``hard=True`` calls it at once). With
  ``--trace`` every level or mode change is a ``machine: Pin(N) ...`` line.
- ``Timer(id=-1, *, mode, freq, period, callback)``: one-shot and periodic callbacks, run
  through ``micropython.schedule`` (on a full queue the tick is lost, as ``mp_sched_schedule``
  drops it); ``deinit()``. All timers share one thread per world.
- ``WDT(id=0, timeout=5000)``: ``feed()`` restarts it; if not fed in time the script ends as
  a board reset (note on stderr, status 1, connections reset), even inside a blocking call.
- ``RTC()``: ``datetime()`` gets and ``datetime(8-tuple)`` sets
  ``(year, month, day, weekday, hours, minutes, seconds, subseconds)`` (UTC, subseconds in
  microseconds as on the esp32); ``init(tuple)`` sets too. It keeps its own offset:
  ``time.time()`` goes on reading the host's clock.

Not emulated: ``mem8/16/32``, ``mem_backup``, ``bootloader``, ``disable_irq``/``enable_irq``,
``time_pulse_us``, ``bitstream``, ``ADC``, ``PWM``, ``UART``, ``SPI``, ``I2C`` and the other
peripherals; an ``AttributeError`` says so at once.

Entry points: ``make_machine_module``.
"""

from __future__ import annotations

import calendar
import heapq
import itertools
import operator
import signal
import threading
import time
import uuid
from collections.abc import Callable
from types import FrameType, ModuleType
from typing import Any

from pystack.runtime.script import ScriptEnd
from pystack.runtime.world import ScriptWorld

PWRON_RESET, HARD_RESET, WDT_RESET, DEEPSLEEP_RESET, SOFT_RESET = 1, 2, 3, 4, 5
IDLE, SLEEP, DEEPSLEEP = 1, 2, 4  # IRQ wake values
DEFAULT_FREQ = 160_000_000
FREQUENCIES_MHZ = (20, 40, 80, 160, 240)  # what the esp32 port accepts
WATCHDOG_SIGNAL = signal.SIGWINCH  # ignored by default; only rings the watchdog handler
WATCHDOG_RING = 0.05  # seconds between rings once a watchdog has expired
MAX_TIMERS = 64  # live timers per world
MAX_PINS = 256  # distinct pin ids per world


def _mac() -> bytes:
    return uuid.getnode().to_bytes(6, "big")


class _Alarms:
    """One thread per world that runs the timers' and the watchdogs' deadlines."""

    def __init__(self) -> None:
        self._lock = threading.Condition()
        self._heap: list[tuple[float, int, Callable[[], float | None]]] = []
        self._order = itertools.count()
        self._thread: threading.Thread | None = None
        self._stopped = False

    def add(self, when: float, action: Callable[[], float | None]) -> None:
        """Run ``action()`` at monotonic time ``when``; it returns the next time, or None."""
        with self._lock:
            if self._stopped:
                return
            heapq.heappush(self._heap, (when, next(self._order), action))
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="pystack-machine", daemon=True
                )
                self._thread.start()
            self._lock.notify_all()

    def _run(self) -> None:
        with self._lock:
            while not self._stopped:
                if not self._heap:
                    self._lock.wait()
                    continue
                when, _, action = self._heap[0]
                delay = when - time.monotonic()
                if delay > 0:
                    self._lock.wait(delay)
                    continue
                heapq.heappop(self._heap)
                following = action()
                if following is not None:
                    heapq.heappush(self._heap, (following, next(self._order), action))

    def stop(self) -> None:
        with self._lock:
            self._stopped = True
            self._heap.clear()
            self._lock.notify_all()
        if self._thread is not None:
            self._thread.join(1.0)


class _Board:
    """One world's machine state: pins, timers, watchdogs, the RTC offset, the trace."""

    def __init__(self, world: ScriptWorld, trace: Callable[[str], None] | None) -> None:
        self.world = world
        self.trace = trace
        self.alarms = _Alarms()
        self.pins: dict[object, _PinState] = {}
        self.timers: set[object] = set()
        self.freq = DEFAULT_FREQ
        self.rtc_offset = 0.0
        self.wakes = 0  # Timer and Pin callbacks run so far (ends an untimed lightsleep)
        self.expired: str | None = None  # the note of a watchdog that ran out
        self.raised = False  # its ScriptEnd was raised once
        self.previous_handler: Any = None
        self.handler_installed = False
        self.main_ident = threading.main_thread().ident or 0
        if threading.current_thread() is threading.main_thread():
            self.previous_handler = signal.signal(WATCHDOG_SIGNAL, self._on_ring)
            self.handler_installed = True
        world.add_cleanup(self.close)

    def schedule(self, callback: Callable[[Any], object], argument: object) -> bool:
        """Queue ``callback(argument)`` as a soft IRQ; False (and nothing queued) when full."""

        def run(value: object) -> None:
            self.wakes += 1
            callback(value)

        try:
            self.world.scheduler.schedule(run, argument)
        except RuntimeError:
            return False
        return True

    def _on_ring(self, signum: int, frame: FrameType | None) -> None:
        note = self.expired
        if note is None:
            return  # a real SIGWINCH (a terminal resized): nothing to do
        # The first ring ends the script wherever its main thread is; later rings (every
        # WATCHDOG_RING until the world closes) only in script code, so that a script that
        # caught the SystemExit still ends, and the clean-up after the script is left alone.
        if not self.raised or (frame is not None and frame.f_builtins is self.world.builtins):
            self.raised = True
            raise ScriptEnd(1, note, abrupt=True)

    def expire(self, note: str) -> float | None:
        """A watchdog ran out: have the main thread end the script, wherever it is."""
        self.expired = note
        # a real signal, so that a main thread blocked in a wait (a sleep, a socket) wakes up
        signal.pthread_kill(self.main_ident, WATCHDOG_SIGNAL)
        return time.monotonic() + WATCHDOG_RING  # ring again until the script has ended

    def close(self) -> None:
        self.alarms.stop()
        self.timers.clear()
        if self.handler_installed:
            signal.signal(WATCHDOG_SIGNAL, self.previous_handler or signal.SIG_DFL)
            self.handler_installed = False


class _PinState:
    __slots__ = ("handler", "hard", "level", "mode", "pull", "trigger")

    def __init__(self) -> None:
        self.mode = -1  # not configured yet
        self.pull = -1
        self.level = 0  # the output buffer
        self.handler: Callable[[Any], object] | None = None
        self.trigger = 0
        self.hard = False


_MODE_NAMES = {1: "IN", 3: "OUT", 7: "OPEN_DRAIN", -1: "unset"}


def _make_pin(board: _Board) -> type:
    class Pin:
        IN, OUT, OPEN_DRAIN = 1, 3, 7
        PULL_DOWN, PULL_UP = 1, 2
        IRQ_RISING, IRQ_FALLING = 1, 2
        WAKE_LOW, WAKE_HIGH = 4, 5

        def __init__(
            self,
            id: object,
            mode: int = -1,
            pull: int = -1,
            *,
            value: object = None,
            drive: int = 0,
            alt: int = -1,
        ) -> None:
            hash(id)
            self._id = id
            state = board.pins.get(id)
            if state is None:
                if len(board.pins) >= MAX_PINS:
                    raise ValueError("invalid pin")
                state = board.pins[id] = _PinState()
            self._state: _PinState = state
            self.init(mode, pull, value=value, drive=drive, alt=alt)

        def init(
            self,
            mode: int = -1,
            pull: int = -1,
            *,
            value: object = None,
            drive: int = 0,
            alt: int = -1,
        ) -> None:
            state = self._state
            if mode != -1 and mode not in _MODE_NAMES:
                raise ValueError("invalid pin mode")
            if pull not in (-1, 0, None, Pin.PULL_UP, Pin.PULL_DOWN):
                raise ValueError("invalid pull")
            if value is not None:
                self._set(1 if value else 0)
            if pull != -1:
                state.pull = pull or 0
            if mode != -1 and mode != state.mode:
                state.mode = mode
                if board.trace is not None:
                    board.trace(f"machine: {self!r} mode {_MODE_NAMES[mode]}")

        def _set(self, level: int) -> None:
            state = self._state
            before = state.level
            if level == before:
                return
            state.level = level
            if board.trace is not None:
                board.trace(f"machine: {self!r} {before} -> {level}")
            edge = Pin.IRQ_RISING if level else Pin.IRQ_FALLING
            handler = state.handler
            if handler is not None and state.trigger & edge:
                if state.hard:
                    board.wakes += 1
                    handler(self)
                else:
                    board.schedule(handler, self)

        def value(self, x: object = None) -> int | None:
            if x is None:
                state = self._state
                if state.mode == Pin.IN or state.mode == -1:
                    return 1 if state.pull == Pin.PULL_UP else 0
                return state.level
            self._set(1 if x else 0)
            return None

        def __call__(self, x: object = None) -> int | None:
            return self.value(x)

        def on(self) -> None:
            self._set(1)

        def off(self) -> None:
            self._set(0)

        def toggle(self) -> None:
            self._set(1 - self._state.level)

        def irq(
            self,
            handler: Callable[[Any], object] | None = None,
            trigger: int = 3,
            *,
            priority: int = 1,
            wake: object = None,
            hard: bool = False,
        ) -> _PinIRQ:
            if handler is not None and not callable(handler):
                raise TypeError("handler must be None or callable")
            state = self._state
            state.handler, state.trigger, state.hard = handler, operator.index(trigger), hard
            return _PinIRQ(self)

        def __repr__(self) -> str:
            return f"Pin({self._id})"

    class _PinIRQ:
        def __init__(self, pin: Pin) -> None:
            self._pin = pin

        def trigger(self) -> int:
            return self._pin._state.trigger

        def __call__(self) -> None:
            handler = self._pin._state.handler
            if handler is not None:
                handler(self._pin)

    return Pin


def _make_timer(board: _Board) -> type:
    class Timer:
        ONE_SHOT, PERIODIC = 0, 1

        def __init__(self, id: int = -1, /, **settings: Any) -> None:
            self._id = operator.index(id)
            self._generation = 0
            self._mode = Timer.PERIODIC
            self._period = 0.0
            if settings:
                self.init(**settings)

        def init(
            self,
            *,
            mode: int = 1,
            freq: float = -1,
            period: int = -1,
            tick_hz: int = 1000,
            callback: Callable[[Any], object] | None = None,
            hard: bool = False,
        ) -> None:
            if mode not in (Timer.ONE_SHOT, Timer.PERIODIC):
                raise ValueError("invalid mode")
            if freq > 0:
                seconds = 1.0 / freq
            elif period >= 0:
                seconds = operator.index(period) / tick_hz
            else:
                raise ValueError("period or freq required")
            self.deinit()
            if len(board.timers) >= MAX_TIMERS:
                raise OSError(12, "too many timers")  # ENOMEM
            self._mode, self._period = mode, seconds
            generation = self._generation
            board.timers.add(self)
            start = time.monotonic()
            count = itertools.count(1)

            def tick() -> float | None:
                if self._generation != generation:
                    return None
                if callback is None:
                    # on the board: TypeError: 'NoneType' object isn't callable, in the callback
                    board.schedule(_none_callback, self)
                else:
                    board.schedule(callback, self)
                if mode == Timer.ONE_SHOT:
                    board.timers.discard(self)
                    return None
                return start + seconds * next(count)

            board.alarms.add(start + seconds, tick)

        def deinit(self) -> None:
            self._generation += 1
            board.timers.discard(self)

        def __repr__(self) -> str:
            mode = "PERIODIC" if self._mode == Timer.PERIODIC else "ONE_SHOT"
            return f"Timer({self._id}; mode={mode}, period={round(self._period * 1000)})"

    return Timer


def _none_callback(timer: object) -> None:
    raise TypeError("'NoneType' object isn't callable")


def _make_wdt(board: _Board) -> type:
    class WDT:
        def __init__(self, id: int = 0, timeout: int = 5000) -> None:
            timeout = operator.index(timeout)
            if timeout <= 0:
                raise ValueError("WDT timeout too short")
            if not board.handler_installed:
                raise OSError(19, "WDT needs machine imported in the main thread")  # ENODEV
            self._timeout = timeout / 1000
            self._deadline = time.monotonic() + self._timeout
            board.alarms.add(self._deadline, self._check)

        def _check(self) -> float | None:
            now = time.monotonic()
            if now < self._deadline:
                return self._deadline
            return board.expire(
                f"machine.WDT: not fed for {round(self._timeout * 1000)} ms; "
                "the board resets (connections reset, status 1)"
            )

        def feed(self) -> None:
            self._deadline = time.monotonic() + self._timeout

    return WDT


def _make_rtc(board: _Board) -> type:
    class RTC:
        def __init__(self, id: int = 0) -> None:
            self._id = id

        def datetime(self, datetimetuple: tuple[int, ...] | None = None) -> tuple[int, ...] | None:
            if datetimetuple is None:
                now = time.time() + board.rtc_offset
                moment = time.gmtime(now)
                micros = int((now % 1) * 1_000_000)
                return (
                    moment.tm_year,
                    moment.tm_mon,
                    moment.tm_mday,
                    moment.tm_wday,
                    moment.tm_hour,
                    moment.tm_min,
                    moment.tm_sec,
                    micros,
                )
            items = tuple(datetimetuple)
            if len(items) != 8:
                raise ValueError(f"requested length 8 but object has length {len(items)}")
            year, month, day, _weekday, hour, minute, second, micros = map(operator.index, items)
            target = _epoch_seconds(year, month, day, hour, minute, second) + micros / 1e6
            board.rtc_offset = target - time.time()
            return None

        def init(self, datetimetuple: tuple[int, ...]) -> None:
            self.datetime(datetimetuple)

    return RTC


def _epoch_seconds(year: int, month: int, day: int, hour: int, minute: int, second: int) -> int:
    """Seconds since 1970 for a UTC date, out-of-range fields carried as ``mktime`` does."""
    year += (month - 1) // 12
    month = (month - 1) % 12 + 1
    days = calendar.timegm((year, month, 1, 0, 0, 0)) // 86400 + day - 1
    return days * 86400 + hour * 3600 + minute * 60 + second


def make_machine_module(
    world: ScriptWorld, trace: Callable[[str], None] | None = None
) -> ModuleType:
    """The ``machine`` module for one world; ``trace`` gets the Pin lines (``--trace``)."""
    board = _Board(world, trace)
    module = ModuleType("machine")
    scheduler = world.scheduler

    def unique_id() -> bytes:
        return _mac()

    def reset() -> None:
        raise ScriptEnd(0, "machine.reset(): the board resets; the script ends", abrupt=True)

    def soft_reset() -> None:
        raise ScriptEnd(0, "machine.soft_reset(): the script ends", abrupt=False)

    def reset_cause() -> int:
        return PWRON_RESET

    def freq(hz: int | None = None) -> int | None:
        if hz is None:
            return board.freq
        megahertz = operator.index(hz) // 1_000_000
        if megahertz not in FREQUENCIES_MHZ:
            raise ValueError("frequency must be 20MHz, 40MHz, 80Mhz, 160MHz or 240MHz")
        board.freq = megahertz * 1_000_000
        return None

    def idle() -> None:
        scheduler.sleep(0.001)

    def lightsleep(time_ms: int | None = None) -> None:
        if time_ms is not None:
            scheduler.sleep(operator.index(time_ms) / 1000)
            return
        wakes = board.wakes
        while board.wakes == wakes:
            scheduler.sleep(0.01)

    def sleep() -> None:
        lightsleep()

    def deepsleep(time_ms: int | None = None) -> None:
        after = "" if time_ms is None else f"{operator.index(time_ms)}"
        raise ScriptEnd(
            0,
            f"machine.deepsleep({after}): the board sleeps and would restart its script on "
            "waking; the script ends",
            abrupt=True,
        )

    namespace: dict[str, Any] = {
        "unique_id": unique_id,
        "reset": reset,
        "soft_reset": soft_reset,
        "reset_cause": reset_cause,
        "freq": freq,
        "idle": idle,
        "lightsleep": lightsleep,
        "sleep": sleep,
        "deepsleep": deepsleep,
        "Pin": _make_pin(board),
        "Timer": _make_timer(board),
        "WDT": _make_wdt(board),
        "RTC": _make_rtc(board),
        "PWRON_RESET": PWRON_RESET,
        "HARD_RESET": HARD_RESET,
        "WDT_RESET": WDT_RESET,
        "DEEPSLEEP_RESET": DEEPSLEEP_RESET,
        "SOFT_RESET": SOFT_RESET,
        "IDLE": IDLE,
        "SLEEP": SLEEP,
        "DEEPSLEEP": DEEPSLEEP,
    }
    vars(module).update(namespace)
    return module
