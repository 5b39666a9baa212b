"""Fixtures of the robustness suite: pystack serving every service on a TUN device in the test's
own namespace, the kernel-side commands (``kernel_side.py``) run inside it, and the health check.

``served`` runs ``pystack up --serve ...`` as a subprocess, as users run it; ``hosted`` builds the
same host in this process (``KernelHost``) for the tests that read pystack's counters and
settings; ``up`` starts ``pystack up`` with more arguments (``--impair``). Each checks at the end
that pystack is still running and stops cleanly (``pystack up`` exits 143 = 128 + SIGTERM, with no
traceback; the in-process stack thread has not died), and the ``netns`` fixture under them
checks that the namespace is gone, also when the test failed.

``PYSTACK_SOAK=1`` selects the soak sizes (``sized(quick, soak)``); the quick ones run in
``make test`` and ``make robustness``, the soak ones in ``make soak``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pystack.host import HostOptions, KernelHost
from pystack.netns import Namespace
from tests.helpers.kernel_bench import ROOT, WAIT, Bench, environ, wait_for

SOAK_VARIABLE = "PYSTACK_SOAK"
SERVICES = "echo,discard,chargen,daytime,http,https,tlsecho,mqtt"
UP_DURATION = 3600  # `pystack up --duration`: a bound in case every other stop failed


def soak() -> bool:
    return os.environ.get(SOAK_VARIABLE) == "1"


def sized(quick: int, soak_size: int) -> int:
    """The quick size, or the soak size under ``PYSTACK_SOAK=1``."""
    return soak_size if soak() else quick


class Target:
    """pystack on a TUN device in ``namespace``; ``run`` runs a kernel-side command there."""

    def __init__(self, namespace: Namespace, device: str, tmp_path: Path) -> None:
        self.namespace = namespace
        self.device = device
        self.tmp_path = tmp_path

    def run(self, command: str, timeout: float = 3 * WAIT, **params: Any) -> dict[str, Any]:
        """Run ``kernel_side.py COMMAND`` with ``params`` (the device's name added); its result."""
        arguments = json.dumps({"device": self.device, **params})
        process = self.namespace.popen(
            [sys.executable, "-m", "tests.robustness.kernel_side", command, arguments],
            cwd=ROOT,
            env=environ(self.tmp_path),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            out, err = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            out, err = process.communicate(timeout=10)
            raise AssertionError(f"{command} took over {timeout} s:\n{out}{err}") from None
        assert process.returncode == 0, f"{command} failed:\n{out}{err}"
        result: dict[str, Any] = json.loads(out.splitlines()[-1])
        print(f"\n[robustness] {command}: {result}", file=sys.stderr)  # pytest -s shows it
        return result

    def health(self) -> None:
        """The check after every attack: a 1 MB echo byte-exact, ``GET /json`` answered 200."""
        result = self.run("health")
        assert result == {"echo": 1 << 20, "http": 200}


def _start_up(bench: Bench, *extra: str) -> tuple[Target, subprocess.Popen[Any], Path]:
    up, _, err = bench.pystack(
        "up", "--link", "tun", "--netns", bench.namespace.name, "--serve", SERVICES,
        "--duration", str(UP_DURATION), *extra,
    )  # fmt: skip
    wait_for(err, r"is up", up)
    devices = bench.devices()
    assert len(devices) == 1, devices
    return Target(bench.namespace, devices[0], bench.tmp_path), up, err


def _stop_up(up: subprocess.Popen[Any], err: Path) -> None:
    assert up.poll() is None, f"pystack up ended during the test:\n{err.read_text()}"
    up.send_signal(signal.SIGTERM)
    assert up.wait(timeout=WAIT) == 128 + signal.SIGTERM, err.read_text()
    assert "Traceback" not in err.read_text(), err.read_text()


@pytest.fixture
def up(bench: Bench) -> Iterator[Callable[..., Target]]:
    """``up(*extra)``: ``pystack up --serve SERVICES *extra`` in the test's namespace."""
    started: list[tuple[subprocess.Popen[Any], Path]] = []

    def start(*extra: str) -> Target:
        target, process, err = _start_up(bench, *extra)
        started.append((process, err))
        return target

    yield start
    for process, err in started:  # (the bench fixture stops it too if this is not reached)
        _stop_up(process, err)


@pytest.fixture
def served(up: Callable[..., Target]) -> Target:
    """``pystack up --serve SERVICES`` in the test's namespace."""
    return up()


class Hosted(Target):
    """A ``Target`` built in this process: its stack's counters and settings can be read."""

    def __init__(self, host: KernelHost, namespace: Namespace, tmp_path: Path) -> None:
        assert host.device is not None
        super().__init__(namespace, host.device.name, tmp_path)
        self.host = host

    def statistics(self) -> dict[str, dict[str, int]]:
        stack, thread = self.host.stack, self.host.thread
        assert stack is not None and thread is not None
        return thread.call(stack.statistics)


@pytest.fixture
def hosted(netns: Namespace, tmp_path: Path) -> Iterator[Hosted]:
    """What ``pystack up --serve SERVICES`` builds, in this process, in the test's namespace."""
    host = KernelHost(HostOptions(netns=netns.name, link="tun", serve=SERVICES))
    try:
        host.start()
        yield Hosted(host, netns, tmp_path)
        assert host.thread is not None and host.thread.error is None, host.thread
    finally:
        host.close()
