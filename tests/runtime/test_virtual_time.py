"""``pystack run`` on the simulator's virtual time (docs/virtual-time.md), through the command.

What is asserted is what the script and the trace see: virtual milliseconds from ``ticks_ms``,
``time()`` seconds, trace timestamps, and byte-identical traces for the same ``--seed``. No test
asserts how long a run takes on the wall clock.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from pystack.clock import VirtualClock

ECHO_THEN_TIME_WAIT = """
import socket, time
t0 = time.ticks_ms()
w0 = time.time()
s = socket.socket()
s.connect(socket.getaddrinfo("peer.sim", 7)[0][-1])
for word in (b"one", b"two", b"three"):
    s.send(word)
    print(s.recv(100))
s.close()
time.sleep(70)
print("virtual ms", time.ticks_diff(time.ticks_ms(), t0), "time() s", round(time.time() - w0))
"""

SILENT_ADDRESS = """
import socket, time
t0 = time.ticks_ms()
s = socket.socket()
try:
    s.connect(("192.0.2.1", 80))
except OSError as e:
    print("connect failed", e.errno)
print("virtual ms", time.ticks_diff(time.ticks_ms(), t0))
"""


def run(tmp_path: Path, source: str, *options: str) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "main.py"
    script.write_text(textwrap.dedent(source))
    return subprocess.run(
        [sys.executable, "-m", "pystack", "run", *options, str(script)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )


def stamps(trace: str) -> list[float]:
    return [float(line.split()[0]) for line in trace.splitlines() if line.strip()]


def test_same_seed_gives_a_byte_identical_trace_with_loss(tmp_path: Path) -> None:
    options = ("--seed", "7", "--trace", "--impair", "loss=20%")
    first = run(tmp_path, ECHO_THEN_TIME_WAIT, *options)
    second = run(tmp_path, ECHO_THEN_TIME_WAIT, *options)
    assert first.returncode == 0, first.stderr
    assert first.stderr == second.stderr
    assert first.stdout == second.stdout
    assert first.stdout.splitlines()[:3] == ["b'one'", "b'two'", "b'three'"]
    # the loss made pystack retransmit (the seed decides which), on timers that took no real wait
    assert re.search(r"Flags \[S\].*\n(.*\n)*.*Flags \[S\]|length [1-9]", first.stderr)
    assert "TIME-WAIT -> CLOSED" in first.stderr


def test_a_different_seed_gives_different_numbers(tmp_path: Path) -> None:
    first = run(tmp_path, ECHO_THEN_TIME_WAIT, "--seed", "7", "--trace")
    other = run(tmp_path, ECHO_THEN_TIME_WAIT, "--seed", "8", "--trace")
    assert first.returncode == other.returncode == 0
    assert first.stderr != other.stderr  # ISNs, ports, MACs, ids


def test_time_wait_and_a_long_sleep_pass_in_virtual_time(tmp_path: Path) -> None:
    result = run(tmp_path, ECHO_THEN_TIME_WAIT, "--seed", "3", "--trace")
    assert result.returncode == 0, result.stderr
    last = result.stdout.splitlines()[-1]
    assert last == "virtual ms 70000 time() s 70"  # no computing counted: exact
    closed = [line for line in result.stderr.splitlines() if "TIME-WAIT -> CLOSED" in line]
    assert len(closed) == 1 and float(closed[0].split()[0]) == 60.0  # 2*MSL after the close
    assert stamps(result.stderr) == sorted(stamps(result.stderr))


def test_rto_backoff_to_a_silent_address_passes_in_virtual_time(tmp_path: Path) -> None:
    result = run(tmp_path, SILENT_ADDRESS, "--seed", "3", "--trace")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["connect failed 103", "virtual ms 183000"]
    syns = [stamps(line)[0] for line in result.stderr.splitlines() if "Flags [S]," in line]
    assert syns == [0.0, 1.0, 3.0, 7.0, 15.0, 31.0, 63.0, 123.0]  # RTO 1 s doubling, 60 s at most


def test_a_busy_script_moves_time_by_its_computing(tmp_path: Path) -> None:
    result = run(
        tmp_path,
        """
        import time
        t0 = time.ticks_ms()
        spins = 0
        while time.ticks_diff(time.ticks_ms(), t0) < 300:
            spins += 1
        print("done", spins > 0)
        """,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "done True\n"


def test_non_blocking_polling_sees_the_reply_and_time_moves(tmp_path: Path) -> None:
    result = run(
        tmp_path,
        """
        import socket, time, errno
        s = socket.socket()
        s.connect(("10.0.0.1", 7))
        s.setblocking(False)
        s.send(b"ping")
        polls = 0
        while True:
            try:
                print(s.recv(10))
                break
            except OSError as e:
                assert e.errno == errno.EAGAIN
                polls += 1
        print("polls", polls)
        t0 = time.ticks_ms()
        while time.ticks_diff(time.ticks_ms(), t0) < 200:
            try:
                s.recv(10)
            except OSError:
                pass
        print("waited")
        """,
        "--seed",
        "1",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "b'ping'",
        "polls 0",
        "waited",
    ]  # the echo is there at once


def test_asyncio_sleeps_and_io_on_virtual_time(tmp_path: Path) -> None:
    result = run(
        tmp_path,
        """
        import asyncio, time

        async def main():
            t0 = time.ticks_ms()
            reader, writer = await asyncio.open_connection("10.0.0.1", 7)
            writer.write(b"hi")
            await writer.drain()
            print(await reader.read(10))
            await asyncio.sleep(30)
            try:
                await asyncio.wait_for(reader.read(10), 5)
            except asyncio.TimeoutError:
                print("timeout")
            writer.close()
            await writer.wait_closed()
            print("virtual ms", time.ticks_diff(time.ticks_ms(), t0))

        asyncio.run(main())
        """,
        "--seed",
        "2",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["b'hi'", "timeout", "virtual ms 35000"]


def test_real_time_keeps_the_wall_clock(tmp_path: Path) -> None:
    result = run(
        tmp_path,
        """
        import socket, time
        t0 = time.ticks_ms()
        s = socket.socket()
        s.connect(("10.0.0.1", 7))
        s.send(b"x")
        print(s.recv(10))
        s.close()
        time.sleep(0.2)
        print(time.ticks_diff(time.ticks_ms(), t0) >= 200)
        """,
        "--real-time",
        "--trace",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["b'x'", "True"]
    assert any(t > 0 for t in stamps(result.stderr))  # real time passed between the lines


def test_run_help_lists_real_time() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pystack", "run", "--help"], capture_output=True, text=True
    )
    assert "--real-time" in result.stdout


class TestVirtualClockAlone:
    def test_a_wait_without_a_driver_jumps_to_its_end(self) -> None:
        clock = VirtualClock(10.0)
        assert clock.wait(lambda: False, 5.0) is False
        assert clock.now() == 15.0

    def test_a_wait_whose_predicate_holds_takes_no_time(self) -> None:
        clock = VirtualClock()
        assert clock.wait(lambda: True, 5.0) is True
        assert clock.now() == 0.0

    def test_time_never_goes_back(self) -> None:
        clock = VirtualClock(3.0)
        clock.advance_to(1.0)
        assert clock.now() == 3.0

    @pytest.mark.parametrize("timeout", [0.0, 2.5])
    def test_an_attached_party_waits_in_virtual_seconds(self, timeout: float) -> None:
        clock = VirtualClock()
        clock.attach()
        try:
            assert clock.wait(lambda: False, timeout) is False
            assert clock.now() == timeout
        finally:
            clock.detach()


def test_the_seed_also_seeds_the_scripts_random(tmp_path: Path) -> None:
    source = "import random\nprint(random.getrandbits(32), random.randint(1, 1000))\n"
    first = run(tmp_path, source, "--seed", "4")
    second = run(tmp_path, source, "--seed", "4")
    assert first.returncode == 0, first.stderr
    assert first.stdout == second.stdout


@pytest.mark.parametrize(
    "source",
    [
        'import socket\ns = socket.socket()\ns.connect(("10.0.0.1", 7))\nprint("waiting", flush=True)\ns.recv(10)\n',
        'import asyncio\nasync def main():\n    print("waiting", flush=True)\n    await asyncio.Event().wait()\nasyncio.run(main())\n',
    ],
    ids=["socket", "asyncio"],
)
def test_a_wait_with_no_deadline_anywhere_lasts_until_ctrl_c(tmp_path: Path, source: str) -> None:
    script = tmp_path / "main.py"
    script.write_text(source)
    process = subprocess.Popen(
        [sys.executable, "-m", "pystack", "run", str(script)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline() == "waiting\n"
        process.send_signal(signal.SIGINT)
        _out, err = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 130
    # MicroPython's traceback, then (with a connection open) the exit note that it was reset
    assert "\nKeyboardInterrupt: \n" in err, err
    assert "Traceback (most recent call last):" in err
