"""The kernel-side test bench: one namespace, kernel programs in it, pystack processes on it.

``bench`` (a fixture) gives a ``Bench`` on a fresh namespace (the ``netns`` fixture); at the end
every process it started is stopped by its handle, and it checks that no pystack device is left
and that the namespace is still there (pystack must not remove what it did not create).
``wait_for(path, pattern, process)`` waits, bounded by ``WAIT``, for a line in a program's output.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import pytest

from pystack.netns import Namespace

ROOT = Path(__file__).resolve().parents[2]
WAIT = 20.0  # seconds any one step may take; every wait below is bounded by it


def environ(tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "PYTHONUNBUFFERED": "1",
        "MICROPYPATH": ".frozen",
        "HOME": str(tmp_path),
    }


class Bench:
    """One namespace, the kernel-side programs in it, and the pystack processes on it."""

    def __init__(self, namespace: Namespace, tmp_path: Path) -> None:
        self.namespace = namespace
        self.tmp_path = tmp_path
        self.processes: list[subprocess.Popen[Any]] = []  # pystack, in this namespace
        self._files: list[IO[str]] = []
        self._count = 0

    def _output(self, label: str) -> Path:
        self._count += 1
        return self.tmp_path / f"{self._count:02d}-{label}.txt"

    def _open(self, path: Path) -> IO[str]:
        file = path.open("w")
        self._files.append(file)
        return file

    def kernel(
        self, label: str, program: str, *arguments: str
    ) -> tuple[subprocess.Popen[Any], Path]:
        """Start a kernel-side Python program in the namespace (stopped by its handle at the end)."""
        path = self._output(label)
        process = self.namespace.popen(
            [sys.executable, "-c", textwrap.dedent(program), *arguments],
            stdout=self._open(path),
            stderr=subprocess.STDOUT,
            env=environ(self.tmp_path),
            text=True,
        )
        return process, path

    def kernel_run(self, program: str, *arguments: str) -> subprocess.CompletedProcess[str]:
        return self.namespace.run(
            [sys.executable, "-c", textwrap.dedent(program), *arguments], check=False, timeout=WAIT
        )

    def pystack(self, *arguments: str) -> tuple[subprocess.Popen[Any], Path, Path]:
        """Start ``pystack ARGS`` (in this process's namespace: it makes the device and moves it)."""
        out, err = self._output("pystack-out"), self._output("pystack-err")
        process = subprocess.Popen(
            [sys.executable, "-m", "pystack", *arguments],
            stdout=self._open(out),
            stderr=self._open(err),
            stdin=subprocess.DEVNULL,
            env=environ(self.tmp_path),
            cwd=self.tmp_path,
            text=True,
        )
        self.processes.append(process)
        return process, out, err

    def pystack_run(self, *arguments: str) -> subprocess.CompletedProcess[str]:
        process, out, err = self.pystack("run", *arguments)
        try:
            status = process.wait(timeout=WAIT * 2)
        finally:
            stop(process)
        return subprocess.CompletedProcess(process.args, status, out.read_text(), err.read_text())

    def devices(self) -> list[str]:
        listing = self.namespace.ip("-o", "link", "show").stdout
        return re.findall(r"^\d+: (pst\d+)", listing, re.MULTILINE)

    def close(self) -> None:
        for process in self.processes:
            stop(process)
        for file in self._files:
            file.close()


def stop(process: subprocess.Popen[Any]) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)


def wait_for(path: Path, pattern: str, process: subprocess.Popen[Any]) -> str:
    """Wait (bounded) until ``path`` holds a line matching ``pattern``; returns the whole text."""
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        text = path.read_text()
        if re.search(pattern, text, re.MULTILINE):
            return text
        if process.poll() is not None:
            break
        time.sleep(0.02)
    text = path.read_text()
    if re.search(pattern, text, re.MULTILINE):
        return text
    raise AssertionError(f"no {pattern!r} within {WAIT} s (exit {process.poll()}):\n{text}")


@pytest.fixture
def bench(netns: Namespace, tmp_path: Path) -> Iterator[Bench]:
    bench = Bench(netns, tmp_path)
    try:
        yield bench
    finally:
        bench.close()
    assert all(p.poll() is not None for p in bench.processes)
    assert bench.devices() == [], "a pystack device was left in the namespace"
    assert netns.exists(), "pystack removed a namespace it did not create"
