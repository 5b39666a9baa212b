"""pystack.netns: namespaces are created, used and always removed; nothing touches the root one."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from pystack import netns as netns_module
from pystack.link.tuntap import TunLink
from pystack.netns import (
    Namespace,
    NamespaceError,
    configure_peer,
    list_namespaces,
    move_device,
    require_root,
)


def test_require_root_is_none_for_root(kernel: None) -> None:
    assert require_root() is None


def test_created_namespace_has_unique_name_and_lo_up(netns: Namespace) -> None:
    assert netns.created and netns.name.startswith("pystack-")
    assert netns.name in list_namespaces()
    assert "UP" in netns.ip("link", "show", "dev", "lo").stdout.split("<")[1].split(">")[0]
    with Namespace.create() as other:
        assert other.name != netns.name
    assert other.name not in list_namespaces()


def test_close_is_idempotent_and_later_use_raises(kernel: None) -> None:
    namespace = Namespace.create()
    namespace.close()
    namespace.close()
    assert not namespace.exists()
    with pytest.raises(NamespaceError, match="closed"):
        namespace.ip("link")


def test_namespace_removed_when_body_raises(kernel: None) -> None:
    with pytest.raises(RuntimeError), Namespace.create() as namespace:
        raise RuntimeError("test body failed")
    assert namespace.name not in list_namespaces()


def test_attached_namespace_is_left_in_place(netns: Namespace) -> None:
    attached = Namespace.attach(netns.name)
    assert not attached.created
    attached.close()
    assert netns.exists()
    with pytest.raises(NamespaceError, match="no network namespace"):
        Namespace.attach("pystack-does-not-exist")


def test_configure_peer_refuses_attached_namespace(netns: Namespace) -> None:
    with pytest.raises(NamespaceError, match="did not create"):
        configure_peer(Namespace.attach(netns.name), "lo", "10.0.0.1/24", 1500)


def test_bad_names_and_addresses_are_rejected(netns: Namespace) -> None:
    with pytest.raises(NamespaceError, match="bad namespace name"):
        Namespace.attach("../etc")
    with pytest.raises(NamespaceError, match="bad device name"):
        move_device(netns, "dev; rm")
    with pytest.raises(NamespaceError, match="bad peer address"):
        configure_peer(netns, "lo", "10.0.0.300/24", 1500)


def test_failed_ip_command_raises_one_line_error(netns: Namespace) -> None:
    with pytest.raises(NamespaceError) as caught:
        netns.ip("link", "set", "dev", "nosuchdevice", "up")
    assert "\n" not in str(caught.value) and "nosuchdevice" in str(caught.value)


def test_run_executes_inside_the_namespace(netns: Namespace) -> None:
    result = netns.run([sys.executable, "-c", "import socket; print(socket.if_nameindex())"])
    assert "'lo'" in result.stdout
    assert "eth" not in result.stdout  # only the namespace's own devices are visible
    with pytest.raises(subprocess.CalledProcessError):
        netns.run([sys.executable, "-c", "raise SystemExit(3)"])


def test_popen_processes_are_stopped_at_close(kernel: None) -> None:
    with Namespace.create() as namespace:
        process = namespace.popen([sys.executable, "-c", "import time; time.sleep(60)"])
        assert process.poll() is None
    assert process.returncode is not None
    assert namespace.name not in list_namespaces()


def test_moved_device_configured_only_inside_namespace(netns: Namespace) -> None:
    link = TunLink("pstns%d")
    try:
        move_device(netns, link.name)
        configure_peer(netns, link.name, "10.0.0.1/24", link.mtu, txqueuelen=5000)
        shown = netns.ip("-o", "address", "show", "dev", link.name).stdout
        assert "10.0.0.1/24" in shown
        assert "inet6" not in shown  # IPv6 quieted: no solicitations from the kernel side
        assert "qlen 5000" in netns.ip("link", "show", "dev", link.name).stdout
        root = subprocess.run(["ip", "-o", "address"], capture_output=True, text=True, check=True)
        assert link.name not in root.stdout
    finally:
        link.close()


def test_namespaces_of_ended_pystack_processes_are_swept_before_the_first_create(
    kernel: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    ended = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    pid = int(ended.stdout)  # a process that has ended: its namespaces are leftovers
    leftovers = [f"pystack-{pid}-0", f"pystack-t{pid}-tcp3"]
    others = [f"pystack-{os.getpid()}-999", "pystackish-1-0"]  # a live owner; not our name
    for name in leftovers + others:
        subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        monkeypatch.setattr(netns_module, "_swept", False)
        with Namespace.create():
            present = list_namespaces()
            assert not set(leftovers) & set(present)
            assert set(others) <= set(present)
    finally:
        for name in leftovers + others:
            subprocess.run(["ip", "netns", "delete", name], capture_output=True)


def test_a_name_of_the_generated_form_with_another_pid_is_refused(kernel: None) -> None:
    # the sweep would take it for a leftover of that pid's process
    with pytest.raises(NamespaceError, match="has the form pystack gives its own namespaces"):
        Namespace.create(f"pystack-{os.getpid() + 1}-0")


def test_a_leftover_another_sweeper_removed_first_is_no_error(
    kernel: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    pid = max(int(entry) for entry in os.listdir("/proc") if entry.isdigit()) + 100000
    name = f"pystack-{pid}-0"  # a pid no process has: a leftover
    subprocess.run(["ip", "netns", "add", name], check=True)
    listed = [name, name]  # as if a second sweeper saw it too: its delete finds it gone
    monkeypatch.setattr(netns_module, "list_namespaces", lambda: listed)
    try:
        assert netns_module.remove_stale_namespaces() == [name]
    finally:
        subprocess.run(["ip", "netns", "delete", name], capture_output=True)
