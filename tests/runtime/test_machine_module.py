"""The ``machine`` module of a script: board-style scripts and what they print.

The expected values follow MicroPython's documentation (``docs/library/machine.rst``,
``machine.Pin.rst``, ``machine.Timer.rst``, ``machine.WDT.rst``, ``machine.RTC.rst``) and the
esp32 port the module is modelled on (``ports/esp32/modmachine.c``: the reset-cause constants
1..5 and the ``freq`` message; ``machine_pin.c``: ``IN`` 1, ``OUT`` 3, ``OPEN_DRAIN`` 7,
``PULL_DOWN`` 1, ``PULL_UP`` 2, ``IRQ_RISING`` 1, ``IRQ_FALLING`` 2; ``machine_timer.c``:
``ONE_SHOT`` 0, ``PERIODIC`` 1; ``machine_rtc.c``: the weekday is computed from the date).
``extmod/modmachine.c`` maps ``soft_reset`` to ``sys.exit``.
"""

from __future__ import annotations

import uuid

from tests.runtime.scripts import ScriptRunner


def test_board_identity_and_clock(script: ScriptRunner) -> None:
    outcome = script.run(
        """
        import machine
        from machine import unique_id
        print(unique_id() == machine.unique_id(), len(unique_id()), type(unique_id()))
        print(machine.freq())
        machine.freq(240000000)
        print(machine.freq())
        try:
            machine.freq(100000000)
        except ValueError as e:
            print("ValueError:", e)
        print(machine.reset_cause() == machine.PWRON_RESET)
        print(machine.PWRON_RESET, machine.HARD_RESET, machine.WDT_RESET,
              machine.DEEPSLEEP_RESET, machine.SOFT_RESET)
        machine.idle()
        print(unique_id().hex())
        """
    )
    assert outcome.status == 0, outcome.err
    assert outcome.out.splitlines() == [
        "True 6 <class 'bytes'>",
        "160000000",
        "240000000",
        "ValueError: frequency must be 20MHz, 40MHz, 80Mhz, 160MHz or 240MHz",
        "True",
        "1 2 3 4 5",
        uuid.getnode().to_bytes(6, "big").hex(),
    ]


def test_a_blinking_led_with_an_irq(script: ScriptRunner) -> None:
    outcome = script.run(
        """
        import time
        from machine import Pin
        print(Pin.IN, Pin.OUT, Pin.OPEN_DRAIN, Pin.PULL_UP, Pin.PULL_DOWN,
              Pin.IRQ_RISING, Pin.IRQ_FALLING)
        led = Pin(2, Pin.OUT, value=0)
        edges = []
        irq = led.irq(lambda p: edges.append(p), trigger=Pin.IRQ_RISING)
        for change in (led.on, led.off) * 3 + (led.toggle, lambda: led(0), lambda: led.value(1)):
            change()
            time.sleep_ms(1)  # soft IRQs queue up to micropython.schedule's depth (4)
        print(led, led.value(), led(), len(edges), edges[0] is led, irq.trigger())
        print(Pin(2).value(), Pin(4, Pin.IN, Pin.PULL_UP).value(), Pin(5, Pin.IN).value())
        hard = []
        Pin(6, Pin.OUT).irq(lambda p: hard.append(1), Pin.IRQ_FALLING, hard=True)
        Pin(6).on(); Pin(6).off()
        print(hard)
        """
    )
    assert outcome.status == 0, outcome.err
    assert outcome.out.splitlines() == [
        "1 3 7 2 1 1 2",
        "Pin(2) 1 1 5 True 1",
        "1 1 0",
        "[1]",
    ]


def test_timers_periodic_and_one_shot(script: ScriptRunner) -> None:
    outcome = script.run(
        """
        import time, machine
        from machine import Timer
        print(Timer.ONE_SHOT, Timer.PERIODIC)
        ticks = []
        t = Timer(-1)
        t.init(mode=Timer.PERIODIC, period=20, callback=lambda timer: ticks.append(timer))
        while len(ticks) < 3:
            machine.idle()
        t.deinit()
        seen = len(ticks)
        time.sleep_ms(60)
        print(seen >= 3, len(ticks) == seen, ticks[0] is t)
        once = []
        Timer(mode=Timer.ONE_SHOT, period=10, callback=lambda timer: once.append(1))
        machine.lightsleep()
        time.sleep_ms(40)
        print(once)
        fast = []
        f = Timer(-1, freq=100, callback=lambda timer: fast.append(1))
        machine.lightsleep(55)
        f.deinit()
        print(len(fast) > 0, f)
        """
    )
    assert outcome.status == 0, outcome.err
    assert outcome.out.splitlines() == [
        "0 1",
        "True True True",
        "[1]",
        "True Timer(-1; mode=PERIODIC, period=10)",
    ]


def test_rtc_datetime_set_and_get(script: ScriptRunner) -> None:
    # machine.RTC.rst: rtc.datetime((2020, 1, 21, 2, 10, 32, 36, 0)); 2020-01-21 was a Tuesday
    # and the esp32 computes the weekday (0 = Monday) from the date.
    outcome = script.run(
        """
        from machine import RTC
        rtc = RTC()
        print(len(rtc.datetime()))
        rtc.datetime((2020, 1, 21, 2, 10, 32, 36, 0))
        now = rtc.datetime()
        print(now[:6], now[6] in (36, 37), 0 <= now[7] < 1000000)
        try:
            rtc.datetime((2020, 1, 21))
        except ValueError as e:
            print("ValueError:", e)
        """
    )
    assert outcome.status == 0, outcome.err
    assert outcome.out.splitlines() == [
        "8",
        "(2020, 1, 21, 1, 10, 32) True True",
        "ValueError: requested length 8 but object has length 3",
    ]


def test_reset_ends_the_script_with_a_note(script: ScriptRunner) -> None:
    outcome = script.run(
        """
        import machine
        print("resetting")
        try:
            machine.reset()
        except Exception:
            print("not reached: a reset is not an Exception")
        print("not reached")
        """
    )
    assert (outcome.status, outcome.out) == (0, "resetting\n")
    assert outcome.err == "pystack: machine.reset(): the board resets; the script ends\n"


def test_soft_reset_is_sys_exit(script: ScriptRunner) -> None:
    outcome = script.run(
        """
        import machine
        try:
            machine.soft_reset()
        except SystemExit:
            print("SystemExit")
        machine.soft_reset()
        """
    )
    assert (outcome.status, outcome.out) == (0, "SystemExit\n")
    assert outcome.err == "pystack: machine.soft_reset(): the script ends\n"


def test_deepsleep_ends_the_script(script: ScriptRunner) -> None:
    outcome = script.run("import machine\nmachine.deepsleep(1000)\nprint('not reached')\n")
    assert (outcome.status, outcome.out) == (0, "")
    assert outcome.err.startswith("pystack: machine.deepsleep(1000): the board sleeps")


def test_a_fed_watchdog_lets_the_script_run(script: ScriptRunner) -> None:
    outcome = script.run(
        """
        import time
        from machine import WDT
        wdt = WDT(timeout=300)
        for _ in range(6):
            time.sleep_ms(100)
            wdt.feed()
        print("fed")
        """
    )
    assert (outcome.status, outcome.out, outcome.err) == (0, "fed\n", "")


def test_a_starved_watchdog_resets_a_busy_or_sleeping_script(script: ScriptRunner) -> None:
    note = (
        "pystack: machine.WDT: not fed for 100 ms; the board resets (connections reset, status 1)\n"
    )
    busy = script.run(
        """
        from machine import WDT
        WDT(timeout=100)
        print("hung")
        while True:
            try:
                pass
            except Exception:
                pass
        """
    )
    assert (busy.status, busy.out, busy.err) == (1, "hung\n", note)
    asleep = script.run("import time, machine\nmachine.WDT(timeout=100)\ntime.sleep(30)\n")
    assert (asleep.status, asleep.err) == (1, note)


def test_a_watchdog_reset_cannot_be_caught_for_good(script: ScriptRunner) -> None:
    outcome = script.run(
        """
        import time, machine
        machine.WDT(timeout=100)
        try:
            time.sleep(30)
        except SystemExit:
            print("caught once")
        while True:
            pass
        """
    )
    assert (outcome.status, outcome.out) == (1, "caught once\n")
    assert outcome.err.count("pystack: machine.WDT: not fed for 100 ms") == 1
