"""The ``pystack`` command under signals and without privileges (issue 15 item 6), over TUN.

``pystack run --link tun --netns N`` and ``pystack up --netns N`` (N new: pystack creates it)
are stopped by SIGTERM, SIGHUP, SIGINT, and SIGINT twice in quick succession: afterwards the
namespace (and with it the device) is gone, the exit status is 128 + the signal, and stderr has
no traceback of pystack's (after Ctrl-C, ``run`` prints the script's own MicroPython traceback
and nothing else). Every wait is bounded; a namespace a failed test leaves is removed.
"""

from __future__ import annotations

import itertools
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from pystack import netns
from tests.helpers.kernel import require_kernel
from tests.kernel.test_kernel_stack import _world_readable_copy

ROOT = Path(__file__).resolve().parents[2]
WAIT = 30.0  # seconds any one step may take
_names = itertools.count()

WAITING_SCRIPT = """\
import socket
s = socket.socket()
s.bind(("0.0.0.0", 7777))
s.listen(1)
print("ready")
s.accept()
"""

CASES = [
    ("SIGTERM", False),
    ("SIGHUP", False),
    ("SIGINT", False),
    ("SIGINT", True),  # a second Ctrl-C while the first one's clean-up runs
]


@pytest.fixture
def namespace_name() -> Iterator[str]:
    """A namespace name nothing uses yet; pystack creates it. Removed if a test leaves it."""
    require_kernel()
    name = f"pystack-c{os.getpid()}-{next(_names)}"
    yield name
    if netns.namespace_exists(name):
        subprocess.run(["ip", "netns", "del", name], check=False, timeout=WAIT)
        pytest.fail(f"namespace {name} was left behind")


def _pystack(*arguments: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "pystack", *arguments],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env=dict(os.environ, PYTHONUNBUFFERED="1"),
    )


def _stop(process: subprocess.Popen[str], name: str, twice: bool) -> tuple[int, str]:
    """Send ``name`` (twice: again at once), return the exit status and the rest of stderr."""
    signum = signal.Signals[name]
    process.send_signal(signum)
    if twice:
        process.send_signal(signum)
    try:
        _, err = process.communicate(timeout=WAIT)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=WAIT)
    return process.returncode, err


@pytest.mark.parametrize(("signal_name", "twice"), CASES)
def test_up_cleans_up_after_a_signal(namespace_name: str, signal_name: str, twice: bool) -> None:
    process = _pystack("up", "--netns", namespace_name)
    assert process.stderr is not None
    line = process.stderr.readline()
    assert re.search(r"\(device (pst\d+) in netns ", line), line
    assert netns.namespace_exists(namespace_name)
    status, err = _stop(process, signal_name, twice)
    assert status == 128 + signal.Signals[signal_name], err
    assert "Traceback" not in err and err.startswith("pystack: stopping;"), err
    assert not netns.namespace_exists(namespace_name)  # and the device with it


@pytest.mark.parametrize(("signal_name", "twice"), CASES)
def test_run_on_tun_cleans_up_after_a_signal(
    namespace_name: str, signal_name: str, twice: bool, tmp_path: Path
) -> None:
    script = tmp_path / "wait.py"
    script.write_text(WAITING_SCRIPT)
    process = _pystack("run", "--link", "tun", "--netns", namespace_name, str(script))
    assert process.stdout is not None
    assert process.stdout.readline() == "ready\n"
    assert netns.namespace_exists(namespace_name)
    status, err = _stop(process, signal_name, twice)
    assert status == 128 + signal.Signals[signal_name], err
    if signal_name == "SIGINT":
        # MicroPython's traceback of the script only (its accept() is where Ctrl-C came)
        assert err == (
            "Traceback (most recent call last):\n"
            f'  File "{script}", line 6, in <module>\n'
            "KeyboardInterrupt: \n"
        )
    else:
        assert err == f"pystack: stopped by {signal_name}\n"
    assert not netns.namespace_exists(namespace_name)


def _as_nobody(*arguments: str, namespace: str | None = None) -> subprocess.CompletedProcess[str]:
    """``python -m pystack ARGS`` as user nobody without capabilities (in ``namespace``)."""
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("setpriv (util-linux) is not installed")
    readable = Path(tempfile.mkdtemp(prefix="pystack-noroot-"))
    try:
        _world_readable_copy(readable)
        interpreter = os.path.realpath(getattr(sys, "_base_executable", sys.executable))
        command = [
            setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all",
            "--bounding-set=-all", interpreter, "-s", "-m", "pystack", *arguments,
        ]  # fmt: skip
        if namespace is not None:
            command = ["ip", "netns", "exec", namespace, *command]
        env = dict(os.environ, PYTHONPATH=str(readable))
        return subprocess.run(
            command, capture_output=True, text=True, timeout=WAIT, env=env, cwd="/"
        )
    finally:
        shutil.rmtree(readable, ignore_errors=True)


def test_attaching_to_a_device_without_privileges_names_cap_net_admin(
    netns: netns.Namespace,
) -> None:
    """``up --device X`` needs no namespace: the message names what attaching needs. (A device
    without an owner is open to every user: this one is root's.)"""
    netns.ip("tuntap", "add", "pstnr0", "mode", "tun", "user", "0")
    result = _as_nobody("up", "--device", "pstnr0", "--duration", "5", namespace=netns.name)
    assert result.returncode == 1, result.stderr
    assert result.stderr == (
        "pystack: attaching to TUN device 'pstnr0' needs CAP_NET_ADMIN, or a device made for "
        "this user (ip tuntap add pstnr0 mode tun user USER)\n"
    )
