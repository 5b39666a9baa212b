"""pystack's DHCP client against dnsmasq, inside a private network namespace, over TAP.

``KernelHost`` with ``address="dhcp"`` creates the namespace and the TAP device, gives the
kernel side 10.0.0.1/24 and starts pystack unconfigured. dnsmasq then runs *in that namespace
only*, bound to that device (``--interface --bind-interfaces``), DHCP only (``--port=0``, no
resolv.conf, no hosts file, no configuration file), with its lease, pid and log files in the
test's directory; it is started through ``Namespace.popen`` and stopped by its own handle. The
namespace is removed afterwards and checked to be gone. Without root or dnsmasq the test skips
(``PYSTACK_REQUIRE_KERNEL=1`` makes that a failure).
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pystack import netns
from pystack.dhcp.client import DHCPState, dhcp_client
from pystack.host import HostOptions, KernelHost
from pystack.wire.addresses import ip_from_str, mac_to_str
from tests.helpers.kernel import kernel_required

KERNEL = "10.0.0.1"
RANGE = ("10.0.0.50", "10.0.0.60")
START_TIMEOUT = 10.0
BIND_TIMEOUT = 20.0  # dnsmasq checks the address with a ping before it offers it
_names = itertools.count()


def _dnsmasq() -> str:
    found = shutil.which("dnsmasq") or (
        "/usr/sbin/dnsmasq" if Path("/usr/sbin/dnsmasq").exists() else None
    )
    if found is None:
        message = "dnsmasq is not installed (make tools installs dnsmasq-base)"
        if kernel_required():
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return found


@pytest.fixture
def dhcp_host(kernel: None) -> Iterator[KernelHost]:
    name = f"pystack-t{os.getpid()}-dhcp{next(_names)}"
    host = KernelHost(HostOptions(link="tap", netns=name, address="dhcp", peer=KERNEL))
    try:
        host.start()
        yield host
    finally:
        host.close()
    assert name not in netns.list_namespaces(), f"namespace {name} left behind"


def _start_dnsmasq(
    host: KernelHost, binary: str, directory: Path
) -> tuple[subprocess.Popen[bytes], Path, Path]:
    assert host.namespace is not None and host.device is not None
    log, leases = directory / "dnsmasq.log", directory / "dnsmasq.leases"
    arguments = [
        binary,
        "--keep-in-foreground",
        "--conf-file=/dev/null",
        f"--interface={host.device.name}",
        "--bind-interfaces",
        "--no-resolv",
        "--no-hosts",
        "--port=0",
        f"--dhcp-range={RANGE[0]},{RANGE[1]},255.255.255.0,2m",
        f"--dhcp-option=option:router,{KERNEL}",
        f"--dhcp-option=option:dns-server,{KERNEL}",
        f"--dhcp-leasefile={leases}",
        f"--pid-file={directory / 'dnsmasq.pid'}",
        f"--log-facility={log}",
        "--log-dhcp",
        "--user=root",
    ]
    process = host.namespace.popen(arguments, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    end = time.monotonic() + START_TIMEOUT
    while time.monotonic() < end:  # bounded: dnsmasq logs its DHCP range once it listens
        if process.poll() is not None:
            error = process.stderr.read().decode() if process.stderr else ""
            pytest.fail(f"dnsmasq exited with {process.returncode}: {error}")
        if log.exists() and "DHCP, IP range" in log.read_text():
            return process, log, leases
        time.sleep(0.05)
    pytest.fail("dnsmasq did not start within 10 s")


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)
    if process.stderr is not None:
        process.stderr.close()


def test_pystack_leases_an_address_from_dnsmasq_and_pings_the_kernel(
    dhcp_host: KernelHost, tmp_path: Path
) -> None:
    binary = _dnsmasq()
    stack, thread = dhcp_host.stack, dhcp_host.thread
    assert stack is not None and thread is not None
    dhcp = dhcp_client(stack)
    assert dhcp is not None
    assert thread.call(lambda: stack.address) == 0
    process, log, leases = _start_dnsmasq(dhcp_host, binary, tmp_path)
    try:
        # The client began before dnsmasq listened: start over now rather than wait for its
        # next retransmission (4, 8, 16 s...).
        thread.call(
            lambda: (dhcp.stop(stack.clock.now(), release=False), dhcp.start(stack.clock.now()))
        )
        bound = thread.wait_for(lambda: dhcp.state is DHCPState.BOUND, BIND_TIMEOUT)
        assert bound, f"no lease; dnsmasq said:\n{log.read_text()}"
        lease = thread.call(lambda: dhcp.lease)
        assert lease is not None
        assert ip_from_str(RANGE[0]) <= lease.address <= ip_from_str(RANGE[1])
        assert (lease.prefix_length, lease.router) == (24, ip_from_str(KERNEL))
        assert lease.dns_servers == (ip_from_str(KERNEL),)
        assert lease.lease_time == 120.0 and lease.server == ip_from_str(KERNEL)
        assert thread.call(lambda: stack.address) == lease.address
        assert mac_to_str(stack.mac) in leases.read_text()

        # pystack pings the kernel from its new address (ARP both ways first) ...
        thread.call(lambda: stack.ping(KERNEL, 0x4444, 1, b"dhcp"))
        assert thread.wait_for(lambda: any(r.sequence == 1 for r in stack.echo_replies), 5.0)
        # ... and the kernel pings it back.
        if shutil.which("ping") is not None:
            assert dhcp_host.namespace is not None
            address = ".".join(str(lease.address >> s & 255) for s in (24, 16, 8, 0))
            result = dhcp_host.namespace.run(
                ["ping", "-n", "-c", "2", "-i", "0.2", "-W", "2", address], check=False, timeout=20
            )
            assert result.returncode == 0, result.stdout

        # RELEASE: dnsmasq hears it, and pystack is unconfigured again.
        thread.call(lambda: dhcp.stop(stack.clock.now()))
        assert thread.wait_for(lambda: stack.address == 0, 5.0)
        end = time.monotonic() + 5.0
        while "DHCPRELEASE" not in log.read_text() and time.monotonic() < end:
            time.sleep(0.05)
        assert "DHCPRELEASE" in log.read_text(), log.read_text()
        drops = thread.call(stack.statistics)["drops"]
        assert "DHCP_MALFORMED" not in drops and "DHCP_NOT_OURS" not in drops, drops
    finally:
        _stop(process)
    assert process.returncode is not None
