"""Private network namespaces for kernel tests and tools, and the kernel side of a TUN/TAP device.

Job: create (and always remove) a network namespace, run commands inside it, move a TUN/TAP device
into it and configure the kernel's end of that device there. The pattern: create the device here
with a unique name and its MTU set (``pystack.link.tuntap``), ``move_device(ns, name)`` (the
descriptor stays valid after the move), then ``configure_peer(ns, name, "10.0.0.1/24", mtu)``.

Must not: touch the namespace this process runs in. Addresses are only ever given inside a
namespace (``ip -n NAME ...``), by default only in one this process created; a namespace is only
removed by the ``Namespace`` that created it, or, once that process has ended without removing
it (``kill -9``), by the next pystack process's ``create`` (``remove_stale_namespaces``: only
names of pystack's own forms, only of processes that have ended); only processes started through ``Namespace.popen``
are ever stopped, by their own handle. Every command has a timeout.

Entry points: ``Namespace.create()``, ``Namespace.attach(name)``, ``Namespace.run/popen/ip``,
``move_device``, ``configure_peer``, ``list_namespaces``, ``require_root``,
``remove_stale_namespaces``, ``NamespaceError``.
"""

from __future__ import annotations

import atexit
import contextlib
import ipaddress
import os
import re
import shutil
import subprocess
import threading
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

NAME_PREFIX = "pystack-"
NAMESPACE_DIRECTORY = Path("/run/netns")
COMMAND_TIMEOUT = 10.0  # seconds; `ip` answers in milliseconds, so this only catches hangs
STOP_TIMEOUT = 2.0  # seconds a started process gets between SIGTERM and SIGKILL
_CREATE_ATTEMPTS = 1000
_VALID_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_VALID_DEVICE = re.compile(r"[A-Za-z0-9_.:-]{1,15}")
# pystack-<pid>-<n> (Namespace.create), pystack-t<pid>-<label> (the test suite's own names,
# for namespaces its tests and their child processes make): the number is the pid of the process
# whose end leaves them stale; create(name) refuses the first form with another process's pid
_STALE_NAME = re.compile(re.escape(NAME_PREFIX) + r"(?:(\d+)-\d+|t(\d+)-[A-Za-z0-9_.]+)")
_swept = False  # whether this process has removed the namespaces of dead ones yet
_sweep_lock = threading.Lock()
_CAP_NET_ADMIN = 12
_CAP_SYS_ADMIN = 21


class NamespaceError(Exception):
    """A namespace operation failed; ``str()`` is a one-line explanation."""


def require_root() -> str | None:
    """Why namespaces cannot be managed here (one line), or None when they can."""
    if shutil.which("ip") is None:
        return "the `ip` command (iproute2) is not installed"
    if os.geteuid() != 0 and not _has_capabilities(_CAP_NET_ADMIN, _CAP_SYS_ADMIN):
        return "network namespaces need root (CAP_SYS_ADMIN and CAP_NET_ADMIN)"
    return None


def _has_capabilities(*capabilities: int) -> bool:
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return False
    for line in status.splitlines():
        if line.startswith("CapEff:"):
            effective = int(line.split()[1], 16)
            return all(effective >> capability & 1 for capability in capabilities)
    return False


def _check_name(name: str, what: str, pattern: re.Pattern[str]) -> str:
    if not pattern.fullmatch(name):
        raise NamespaceError(f"bad {what} name {name!r}")
    return name


def _command(args: Sequence[str], timeout: float) -> subprocess.CompletedProcess[str]:
    """Run one of our own setup commands; failures become a one-line ``NamespaceError``.

    The command runs in its own process group: a Ctrl-C at the terminal reaches pystack (which
    then cleans up) but not an ``ip netns del`` that is part of that clean-up."""
    try:
        result = subprocess.run(
            list(args),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            process_group=0,
        )
    except subprocess.TimeoutExpired:
        raise NamespaceError(f"`{' '.join(args)}` did not finish within {timeout} s") from None
    except OSError as error:
        raise NamespaceError(f"cannot run `{args[0]}`: {error.strerror}") from None
    if result.returncode != 0:
        message = (result.stderr.strip() or result.stdout.strip()).splitlines()
        detail = message[0] if message else f"exit status {result.returncode}"
        raise NamespaceError(f"`{' '.join(args)}` failed: {detail}")
    return result


def list_namespaces() -> list[str]:
    """Names of the named network namespaces (as ``ip netns list`` shows them)."""
    output = _command(["ip", "netns", "list"], COMMAND_TIMEOUT).stdout
    return [line.split()[0] for line in output.splitlines() if line.strip()]


def namespace_exists(name: str) -> bool:
    return name in list_namespaces()


class Namespace:
    """A named network namespace; removed on ``close()`` only if this object created it."""

    def __init__(self, name: str, *, created: bool) -> None:
        """Use ``Namespace.create()`` or ``Namespace.attach(name)`` instead."""
        self.name = _check_name(name, "namespace", _VALID_NAME)
        self.created = created
        self.closed = False
        self._owner_pid = os.getpid()
        self._processes: list[subprocess.Popen[Any]] = []
        if created:
            atexit.register(self.close)

    @classmethod
    def create(cls, name: str | None = None) -> Namespace:
        """Make a new namespace (a unique ``pystack-<pid>-<n>`` when unnamed) with ``lo`` up."""
        reason = require_root()
        if reason is not None:
            raise NamespaceError(reason)
        _sweep_once()
        if name is not None:
            _check_name(name, "namespace", _VALID_NAME)
            generated = _STALE_NAME.fullmatch(name)
            if generated is not None and generated.group(1) not in (None, str(os.getpid())):
                raise NamespaceError(
                    f"namespace name {name!r} has the form pystack gives its own namespaces "
                    f"(the number is the pid of their process): choose another"
                )
            _command(["ip", "netns", "add", name], COMMAND_TIMEOUT)
        else:
            name = cls._add_unique()
        namespace = cls(name, created=True)
        try:
            namespace.ip("link", "set", "dev", "lo", "up")
        except BaseException:
            namespace.close()
            raise
        return namespace

    @staticmethod
    def _add_unique() -> str:
        pid = os.getpid()
        for number in range(_CREATE_ATTEMPTS):
            candidate = f"{NAME_PREFIX}{pid}-{number}"
            if (NAMESPACE_DIRECTORY / candidate).exists():
                continue
            try:
                _command(["ip", "netns", "add", candidate], COMMAND_TIMEOUT)
            except NamespaceError:
                if (NAMESPACE_DIRECTORY / candidate).exists():
                    continue  # another thread took the name between the check and the add
                raise
            return candidate
        raise NamespaceError(f"no free namespace name after {_CREATE_ATTEMPTS} attempts")

    @classmethod
    def attach(cls, name: str) -> Namespace:
        """Use an existing namespace; ``close()`` will leave it in place."""
        _check_name(name, "namespace", _VALID_NAME)
        if not namespace_exists(name):
            raise NamespaceError(f"no network namespace named {name!r}")
        return cls(name, created=False)

    def exists(self) -> bool:
        return namespace_exists(self.name)

    def _require_open(self) -> None:
        if self.closed:
            raise NamespaceError(f"namespace {self.name!r} is closed")

    def run(
        self,
        args: Sequence[str],
        *,
        check: bool = True,
        timeout: float = COMMAND_TIMEOUT,
        input: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``args`` inside the namespace and wait (``subprocess.run`` semantics, text output).

        Raises ``subprocess.CalledProcessError`` (with ``check``) or ``subprocess.TimeoutExpired``
        like ``subprocess.run``: the command is the caller's, not ours.
        """
        self._require_open()
        return subprocess.run(
            ["ip", "netns", "exec", self.name, *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=check,
            input=input,
        )

    def popen(self, args: Sequence[str], **options: Any) -> subprocess.Popen[Any]:
        """Start ``args`` inside the namespace; it is stopped (by its handle) at ``close()``."""
        self._require_open()
        process: subprocess.Popen[Any] = subprocess.Popen(
            ["ip", "netns", "exec", self.name, *args], **options
        )
        self._processes.append(process)
        return process

    def ip(self, *args: str, timeout: float = COMMAND_TIMEOUT) -> subprocess.CompletedProcess[str]:
        """Run ``ip -n NAME args...``; a failure raises ``NamespaceError``."""
        self._require_open()
        return _command(["ip", "-n", self.name, *args], timeout)

    def close(self) -> None:
        """Stop the processes we started, then remove the namespace if we created it."""
        if self.closed or os.getpid() != self._owner_pid:
            return  # a forked child (e.g. exiting through atexit) must not remove our namespace
        for process in self._processes:
            _stop(process)
        self._processes.clear()
        if self.created:
            try:
                _command(["ip", "netns", "delete", self.name], COMMAND_TIMEOUT)
            except NamespaceError:
                if namespace_exists(self.name):
                    raise  # stays open (and registered with atexit): a later close retries
            atexit.unregister(self.close)
        self.closed = True

    def __enter__(self) -> Namespace:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"Namespace({self.name!r}, created={self.created}, {state})"


def _stop(process: subprocess.Popen[Any]) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=STOP_TIMEOUT)


def move_device(namespace: Namespace, device_name: str) -> None:
    """Move a network device from this namespace into ``namespace`` (open descriptors survive)."""
    namespace._require_open()
    _check_name(device_name, "device", _VALID_DEVICE)
    _command(["ip", "link", "set", "dev", device_name, "netns", namespace.name], COMMAND_TIMEOUT)


def configure_peer(
    namespace: Namespace,
    device_name: str,
    peer_cidr: str,
    mtu: int,
    *,
    up: bool = True,
    txqueuelen: int | None = None,
    quiet_ipv6: bool = True,
    allow_attached: bool = False,
) -> None:
    """Configure the kernel's side of a device inside ``namespace``.

    Gives it ``peer_cidr`` (e.g. ``"10.0.0.1/24"``), sets ``mtu`` (pass the link's own MTU) and
    optionally ``txqueuelen``, and with ``up`` brings the device and ``lo`` up. ``quiet_ipv6``
    turns IPv6 off on the device so the kernel sends no router or neighbour solicitations.
    Refuses a namespace this process did not create unless ``allow_attached``.
    """
    namespace._require_open()
    if not namespace.created and not allow_attached:
        raise NamespaceError(
            f"refusing to configure addresses in {namespace.name!r}: this process did not create it"
        )
    _check_name(device_name, "device", _VALID_DEVICE)
    try:
        interface = ipaddress.ip_interface(peer_cidr)
    except ValueError:
        raise NamespaceError(f"bad peer address {peer_cidr!r} (want e.g. 10.0.0.1/24)") from None
    link = ["link", "set", "dev", device_name]
    namespace.ip(*link, "mtu", str(mtu))
    if txqueuelen is not None:
        namespace.ip(*link, "txqueuelen", str(txqueuelen))
    if quiet_ipv6:
        _quiet_ipv6(namespace, device_name)
    namespace.ip("address", "add", interface.with_prefixlen, "dev", device_name)
    if up:
        namespace.ip(*link, "up")
        namespace.ip("link", "set", "dev", "lo", "up")


def _quiet_ipv6(namespace: Namespace, device_name: str) -> None:
    setting = f"net.ipv6.conf.{device_name}.disable_ipv6=1"
    try:
        result = namespace.run(["sysctl", "-q", "-w", setting], check=False)
    except OSError:
        result = None
    if result is not None and result.returncode == 0:
        return
    # No sysctl here: without a link-local address the kernel has nothing to solicit for.
    with contextlib.suppress(NamespaceError):  # a kernel without IPv6 is quiet anyway
        namespace.ip("link", "set", "dev", device_name, "addrgenmode", "none")


def _sweep_once() -> None:
    """Before this process's first namespace: remove those left by pystack processes that
    ended without ``close()`` (``kill -9``, a test run stopped by its timeout). Best effort:
    a failure here must not stop the namespace being made (another process sweeping at the
    same moment may have removed a name first)."""
    global _swept
    with _sweep_lock:
        if _swept:
            return
        _swept = True
        with contextlib.suppress(NamespaceError):
            remove_stale_namespaces()


def _owner_pid(name: str) -> int | None:
    """The pid in a name of pystack's own form (``_STALE_NAME``), or None."""
    match = _STALE_NAME.fullmatch(name)
    if match is None:
        return None
    return int(match.group(1) or match.group(2))


def remove_stale_namespaces() -> list[str]:
    """Remove ``pystack-<pid>-<n>`` (and the test suite's ``pystack-t<pid>-<label>``)
    namespaces whose creating process no longer runs.

    Only names pystack generates are considered, and only when that pid is gone (a crash
    that skipped ``close()``). ``Namespace.create`` calls it once per process. Returns the names
    removed.
    """
    removed = []
    for name in list_namespaces():
        owner = _owner_pid(name)
        if owner is None or _process_alive(owner):
            continue
        if _delete_if_present(name):
            removed.append(name)
    return removed


def _delete_if_present(name: str) -> bool:
    """Delete namespace ``name``; False if it was gone already (removed by another process)."""
    try:
        _command(["ip", "netns", "delete", name], COMMAND_TIMEOUT)
    except NamespaceError:
        if (NAMESPACE_DIRECTORY / name).exists():
            raise
        return False
    return True


def remove_namespaces_of(pid: int) -> list[str]:
    """Remove the ``pystack-<pid>-<n>`` namespaces of process ``pid``, which must have ended
    (a worker killed before its own ``close()`` ran). Returns the names removed."""
    if _process_alive(pid):
        raise NamespaceError(f"process {pid} still runs: its namespaces are its own")
    removed = []
    for name in list_namespaces():
        if _owner_pid(name) == pid and _delete_if_present(name):
            removed.append(name)
    return removed


def _process_alive(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists()
