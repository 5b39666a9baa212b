"""The Linux kernel as pystack's peer, over TUN and TAP, inside private network namespaces.

Every test creates its own namespace (through ``KernelHost`` or the ``netns`` fixture), and
checks afterwards that no namespace, device or process of its own is left. ``ping`` runs in the
namespace, so nothing leaves this machine. Without root these tests skip, and with
``PYSTACK_REQUIRE_KERNEL=1`` a skip is a failure.
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
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pystack import netns
from pystack.host import HostError, HostOptions, KernelHost
from pystack.ip.arp import NeighbourState
from pystack.wire.addresses import ip_from_str, mac_to_str
from tests.helpers.kernel import kernel_required, require_kernel

PYSTACK = "10.0.0.2"
KERNEL = "10.0.0.1"
_names = itertools.count()


def _namespace_name() -> str:
    return f"pystack-t{os.getpid()}-{next(_names)}"


def _require_ping() -> None:
    if shutil.which("ping") is None:
        message = "ping is not installed (make test installs iputils-ping)"
        if kernel_required():
            pytest.fail(message, pytrace=False)
        pytest.skip(message)


@pytest.fixture
def host_factory(kernel: None) -> Iterator[list[KernelHost]]:
    """Builds hosts on fresh namespaces; afterwards checks that each namespace is gone."""
    _require_ping()
    hosts: list[KernelHost] = []
    names: list[str] = []
    try:
        yield hosts
    finally:
        for host in hosts:
            if host.namespace is not None:
                names.append(host.namespace.name)
            host.close()
    left = set(netns.list_namespaces())
    assert not left & set(names), f"namespaces left behind: {left & set(names)}"


def _start(hosts: list[KernelHost], **options: object) -> KernelHost:
    host = KernelHost(HostOptions(netns=_namespace_name(), **options))  # type: ignore[arg-type]
    hosts.append(host)
    host.start()
    return host


def _ping(
    host: KernelHost, *arguments: str, timeout: float = 60.0
) -> subprocess.CompletedProcess[str]:
    assert host.namespace is not None
    return host.namespace.run(["ping", "-n", *arguments], check=False, timeout=timeout)


def _received(output: str) -> tuple[int, int]:
    match = re.search(r"(\d+) packets transmitted, (\d+) received", output)
    assert match, output
    return int(match.group(1)), int(match.group(2))


def _stack_ping(host: KernelHost, size: int, sequence: int, timeout: float = 5.0) -> bytes:
    """pystack pings the kernel and waits for the reply; returns the reply's data."""
    assert host.stack is not None and host.thread is not None
    stack, thread = host.stack, host.thread
    data = bytes((i * 7 + sequence) & 0xFF for i in range(size))
    thread.call(lambda: stack.ping(KERNEL, 0x4242, sequence, data))
    got = thread.wait_for(lambda: any(r.sequence == sequence for r in stack.echo_replies), timeout)
    assert got, f"no echo reply from the kernel for seq {sequence} ({size} bytes)"
    reply = next(r for r in thread.call(stack.take_echo_replies) if r.sequence == sequence)
    assert reply.source == ip_from_str(KERNEL)
    return reply.data


def test_kernel_pings_pystack_over_tun_200_times_none_lost(
    host_factory: list[KernelHost], tmp_path: Path
) -> None:
    capture = tmp_path / "tun.pcap"
    host = _start(host_factory, link="tun", pcap=str(capture))
    result = _ping(host, "-c", "200", "-i", "0.002", "-W", "2", "-q", PYSTACK)
    assert _received(result.stdout) == (200, 200), result.stdout
    assert host.stack is not None and host.thread is not None
    stats = host.thread.call(host.stack.statistics)
    assert stats["counters"]["icmp.echo_replies_sent"] == 200
    assert stats["drops"] == {} or set(stats["drops"]) <= {"ETHERTYPE_UNSUPPORTED"}
    host.close()
    # The capture written during the test reads back in scapy: 200 requests and 200 replies.
    from scapy.layers.inet import ICMP, IP
    from scapy.utils import rdpcap

    packets = rdpcap(str(capture))
    echoes = [p for p in packets if IP in p and ICMP in p]
    requests = [p for p in echoes if p[ICMP].type == 8 and p[IP].dst == PYSTACK]
    replies = [p for p in echoes if p[ICMP].type == 0 and p[IP].src == PYSTACK]
    assert len(requests) == 200 and len(replies) == 200
    assert {p[ICMP].seq for p in replies} == {p[ICMP].seq for p in requests}


def test_kernel_and_pystack_resolve_each_other_with_arp_over_tap(
    host_factory: list[KernelHost],
) -> None:
    host = _start(host_factory, link="tap")
    assert host.stack is not None and host.thread is not None and host.device is not None
    result = _ping(host, "-c", "5", "-i", "0.05", "-W", "2", PYSTACK)
    assert _received(result.stdout) == (5, 5), result.stdout
    # The kernel learned pystack's MAC through ARP ...
    assert host.namespace is not None
    neighbours = host.namespace.ip("neigh", "show", PYSTACK).stdout
    assert mac_to_str(host.stack.mac) in neighbours.lower(), neighbours
    # ... and pystack resolves the kernel's, then pings it.
    assert _stack_ping(host, 56, 1)
    entry = host.thread.call(lambda: host.stack.ip.arp.entry(ip_from_str(KERNEL)))  # type: ignore[union-attr]
    assert entry is not None and entry.state is NeighbourState.REACHABLE
    assert entry.mac == host.device.hwaddr
    counters = host.thread.call(host.stack.statistics)["counters"]
    assert counters["arp.replies_sent"] >= 1


@pytest.mark.parametrize("link", ["tun", "tap"])
def test_60000_byte_echo_is_fragmented_both_ways(host_factory: list[KernelHost], link: str) -> None:
    host = _start(host_factory, link=link)
    assert host.stack is not None and host.thread is not None
    result = _ping(host, "-c", "3", "-i", "0.2", "-W", "3", "-s", "60000", PYSTACK)
    assert _received(result.stdout) == (3, 3), result.stdout
    data = _stack_ping(host, 60000, 7)  # pystack -> kernel, answered by the kernel in fragments
    assert data == bytes((i * 7 + 7) & 0xFF for i in range(60000))
    counters = host.thread.call(host.stack.statistics)["counters"]
    assert counters["ipv4.reassembled"] >= 4  # 3 requests from the kernel + 1 reply
    assert counters["ipv4.fragments_sent"] >= 4 * 41  # 60,008 bytes in 1480-byte pieces


def test_mtu_65535_tun_carries_60000_byte_echo_unfragmented(host_factory: list[KernelHost]) -> None:
    host = _start(host_factory, link="tun", mtu=65535)
    assert host.stack is not None and host.thread is not None
    result = _ping(host, "-c", "3", "-i", "0.2", "-W", "3", "-s", "60000", PYSTACK)
    assert _received(result.stdout) == (3, 3), result.stdout
    counters = host.thread.call(host.stack.statistics)["counters"]
    assert counters.get("ipv4.fragments_sent", 0) == 0
    assert counters.get("ipv4.reassembled", 0) == 0


def test_impairment_delay_shows_in_kernel_round_trip(host_factory: list[KernelHost]) -> None:
    host = _start(host_factory, link="tun", impair="delay=20ms,seed=3")
    result = _ping(host, "-c", "3", "-i", "0.2", "-W", "3", PYSTACK)
    assert _received(result.stdout) == (3, 3), result.stdout
    times = [float(t) for t in re.findall(r"time=([\d.]+) ms", result.stdout)]
    assert len(times) == 3 and min(times) >= 39.0  # 20 ms each way


def test_failure_inside_host_still_removes_namespace_and_device(kernel: None) -> None:
    name = _namespace_name()
    with pytest.raises(RuntimeError, match="boom"), KernelHost(HostOptions(netns=name)):
        assert netns.namespace_exists(name)
        raise RuntimeError("boom")
    assert not netns.namespace_exists(name)


def test_bring_up_failure_rolls_back_namespace(kernel: None) -> None:
    name = _namespace_name()
    # The peer address is valid text but the kernel refuses a /33 prefix only in our own check,
    # so break the bring-up later instead: attach to a device that does not exist.
    host = KernelHost(HostOptions(netns=name, device="pst-missing0"))
    with pytest.raises(Exception, match="no TUN device"):
        host.start()
    assert not netns.namespace_exists(name)
    with pytest.raises(HostError, match="--mtu"):
        KernelHost(HostOptions(netns=name, mtu=10)).start()
    assert not netns.namespace_exists(name)


# --- the command itself ------------------------------------------------------------------------
def _pystack(*arguments: str) -> list[str]:
    return [sys.executable, "-m", "pystack", *arguments]


def test_pystack_up_answers_ping_and_cleans_up_on_sigterm(kernel: None) -> None:
    _require_ping()
    name = _namespace_name()
    process = subprocess.Popen(
        _pystack("up", "--link", "tun", "--netns", name, "--duration", "60"),
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stderr is not None
        line = process.stderr.readline()
        assert "is up" in line, line
        result = subprocess.run(
            ["ip", "netns", "exec", name, "ping", "-n", "-c", "3", "-i", "0.2", "-W", "2", PYSTACK],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert _received(result.stdout) == (3, 3), result.stdout
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) == 128 + signal.SIGTERM  # the conventional status
        rest = process.stderr.read()
        assert "Traceback" not in rest and "stopping" in rest
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
    assert not netns.namespace_exists(name)


def test_pystack_up_duration_ends_by_itself(kernel: None) -> None:
    name = _namespace_name()
    started = time.monotonic()
    result = subprocess.run(
        _pystack("up", "--link", "tap", "--netns", name, "--duration", "1"),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    assert time.monotonic() - started < 20
    assert not netns.namespace_exists(name)


@pytest.mark.parametrize(
    ("arguments", "message", "status"),
    [
        (["--impair", "loss=150%"], "--impair", 2),  # refused with the other bad arguments
        (["--impair", "drop=out:tcp:0"], "--impair", 2),
        (["--addr", "10.0.0.300/24"], "--addr", 2),  # every bad option: status 2 (issue 15)
        (["--mtu", "40"], "--mtu", 2),
        ([], "--netns", 2),
    ],
)
def test_pystack_up_bad_arguments_fail_in_one_line(
    arguments: list[str], message: str, status: int
) -> None:
    extra = ["--netns", _namespace_name()] if arguments else []
    result = subprocess.run(
        _pystack("up", *extra, *arguments), capture_output=True, text=True, timeout=30
    )
    assert result.returncode == status
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and message in result.stderr, result.stderr


def _world_readable_copy(destination: Path) -> Path:
    """pystack, usocket and pytun copied where any user can read them: the clone (and its venv)
    may sit in a directory only root can enter, which an unprivileged process cannot import from."""
    import pytun

    root = Path(__file__).resolve().parents[2]
    for package in ("pystack", "usocket"):
        shutil.copytree(
            root / package, destination / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    shutil.copy2(pytun.__file__, destination)
    for path in (destination, *destination.rglob("*")):
        path.chmod(0o755 if path.is_dir() else 0o644)
    return destination


def test_pystack_up_without_root_explains_in_one_line() -> None:
    require_kernel()  # needs root to drop to an unprivileged user
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("setpriv (util-linux) is not installed")
    readable = Path(tempfile.mkdtemp(prefix="pystack-noroot-"))
    try:
        _world_readable_copy(readable)
        # The base interpreter, not the venv's launcher (which lives inside the clone).
        interpreter = os.path.realpath(getattr(sys, "_base_executable", sys.executable))
        command = [
            setpriv,
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
            "--bounding-set=-all",
            interpreter,
            "-s",
            "-m",
            "pystack",
            "up",
            "--netns",
            _namespace_name(),
        ]
        env = dict(os.environ, PYTHONPATH=str(readable))
        result = subprocess.run(
            command, capture_output=True, text=True, timeout=30, env=env, cwd="/"
        )
    finally:
        shutil.rmtree(readable, ignore_errors=True)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "root" in lines[0], result.stderr
