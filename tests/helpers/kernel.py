"""Kernel-test gate and fixtures: skip when the kernel cannot be used, fail when it must be.

``require_kernel()`` skips the calling test unless this process is root (or has the capabilities),
``/dev/net/tun`` opens, ``ip`` exists and a network namespace can be created; with
``PYSTACK_REQUIRE_KERNEL=1`` in the environment the skip becomes a failure, so CI cannot pass by
silently skipping. Fixtures: ``kernel`` (the gate) and ``netns`` (a fresh ``Namespace``, removed
afterwards even when the test fails, and checked to be gone). Registered as a plugin by
``tests/conftest.py``.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from typing import Any

import pytest

from pystack.netns import Namespace, NamespaceError, list_namespaces, require_root

REQUIRE_KERNEL_VARIABLE = "PYSTACK_REQUIRE_KERNEL"
TUN_DEVICE_PATH = "/dev/net/tun"


@functools.cache
def kernel_unavailable_reason() -> str | None:
    """Why kernel tests cannot run here (one line), or None when they can. Probed once."""
    if not sys.platform.startswith("linux"):
        return "kernel tests need Linux"
    reason = require_root()
    if reason is not None:
        return reason
    try:
        descriptor = os.open(TUN_DEVICE_PATH, os.O_RDWR)
    except OSError as error:
        return f"{TUN_DEVICE_PATH} cannot be opened: {error.strerror}"
    os.close(descriptor)
    try:
        with Namespace.create():
            pass
    except NamespaceError as error:
        return f"cannot create a network namespace: {error}"
    return None


def kernel_required() -> bool:
    return os.environ.get(REQUIRE_KERNEL_VARIABLE) == "1"


def require_kernel() -> None:
    """Skip the test when the kernel is unusable; fail instead if PYSTACK_REQUIRE_KERNEL=1."""
    reason = kernel_unavailable_reason()
    if reason is None:
        return
    if kernel_required():
        pytest.fail(
            f"{REQUIRE_KERNEL_VARIABLE}=1 but kernel tests cannot run: {reason}", pytrace=False
        )
    pytest.skip(reason)


@pytest.fixture
def kernel() -> None:
    """Gate: the test needs the real kernel (see ``require_kernel``)."""
    require_kernel()


@pytest.fixture
def netns(kernel: None) -> Iterator[Namespace]:
    """A fresh network namespace, removed afterwards (also on failure) and checked to be gone."""
    namespace = Namespace.create()
    try:
        yield namespace
    finally:
        namespace.close()
    remaining = list_namespaces()
    assert namespace.name not in remaining, f"namespace {namespace.name} left behind"


# -- the kernel side ------------------------------------------------------------------------
class KernelProgram:
    """A Python program run by the kernel's side, inside the namespace."""

    def __init__(self, namespace: Namespace, code: str) -> None:
        self.process = namespace.popen(
            [sys.executable, "-c", textwrap.dedent(code)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def wait_line(self, expected: str, timeout: float = 10.0) -> None:
        """Wait for the program to print ``expected`` (e.g. that it listens)."""
        assert self.process.stdout is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            if line.strip() == expected:
                return
            if not line and self.process.poll() is not None:
                break
        raise AssertionError(f"kernel program did not say {expected!r}: {self._stderr()}")

    def result(self, timeout: float) -> dict[str, Any]:
        """The JSON line the program printed last; it must have exited with status 0."""
        try:
            out, err = self.process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            out, err = self.process.communicate(timeout=10)
            raise AssertionError(f"kernel program still running after {timeout} s: {err}") from None
        assert self.process.returncode == 0, f"kernel program failed: {err}"
        lines = [line for line in out.splitlines() if line.startswith("{")]
        assert lines, f"kernel program printed no result: {out!r} {err}"
        result: dict[str, Any] = json.loads(lines[-1])
        return result

    def _stderr(self) -> str:
        if self.process.poll() is None:
            return "(still running)"
        assert self.process.stderr is not None
        return str(self.process.stderr.read())
