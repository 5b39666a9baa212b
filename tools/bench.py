#!/usr/bin/env python3
"""pystack benchmark: pystack against the Linux kernel and raw-TUN ceilings, in one run.

Everything runs inside network namespaces this script creates and removes; traffic never leaves
them, and every measurement is bounded in bytes, count and time. The kernel side is always the
same small Python client (``CLIENT`` below), so the three peers differ only in what serves it:
- pystack over TUN (its discard, chargen and echo services);
- the raw-TUN ceiling: ``tools/raw_tcp.py``, the least a Python TCP endpoint must do per segment;
- the Linux kernel itself across a veth pair (the kernel ceiling).
pystack runs with TUN offloads (TSO, checksums) unless a row says "plain"; the raw-TUN ceiling
uses none, so compare it with the plain row. Rows: TCP bulk kernel -> peer (MB/s), TCP bulk
peer -> kernel (MB/s), TCP request/response with 1-byte messages (round trip in us), ICMP echo
flood (round trip in us), plus codec speeds. The "usocket script" row is a MicroPython script under
``pystack run --link tun`` serving the same services through usocket (what a user's code gets).
Reference: the incumbent pure-Python stack moves about 10 MB/s and takes 1.4 ms per
request/response; pystack aims at 10x that (100 MB/s, 140 us). Not a test: numbers vary by machine.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from pystack import netns
from pystack.host import HostOptions, KernelHost
from pystack.link.tuntap import TunLink
from pystack.wire.ipv4 import IPv4Packet
from pystack.wire.tcp import ACK, TCPSegment, timestamp_option

sys.path.insert(0, str(Path(__file__).resolve().parent))
import raw_tcp

TARGET = "10.0.0.2"
TIMEOUT = 120.0

CLIENT = r"""
import socket, sys, time
mode, host, port, amount = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
s = socket.create_connection((host, port), timeout=60)
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
start = time.perf_counter()
if mode == "send":
    block = b"x" * 65536
    sent = 0
    while sent < amount:
        sent += s.send(block[: min(len(block), amount - sent)])
    s.shutdown(socket.SHUT_WR)
    while s.recv(65536):
        pass
    print(amount / (time.perf_counter() - start) / 1e6)
elif mode == "recv":
    got = 0
    while True:
        data = s.recv(1 << 20)
        if not data:
            break
        got += len(data)
    print(got / (time.perf_counter() - start) / 1e6)
else:
    for _ in range(amount):
        s.sendall(b"x")
        if not s.recv(1):
            raise SystemExit("closed early")
    print((time.perf_counter() - start) / amount * 1e6)
s.close()
"""

KERNEL_SERVER = r"""
import socket, sys
mode, amount = sys.argv[1], int(sys.argv[2])
listener = socket.socket()
listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
listener.bind(("10.0.0.2", 5001))
listener.listen(8)
print("ready", flush=True)
s, _ = listener.accept()
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
if mode == "send":
    while s.recv(1 << 20):
        pass
elif mode == "recv":
    block = b"y" * 65536
    sent = 0
    while sent < amount:
        sent += s.send(block[: min(len(block), amount - sent)])
else:
    while data := s.recv(65536):
        s.sendall(data)
s.close()
"""


def client(namespace: netns.Namespace, mode: str, port: int, amount: int) -> float:
    result = namespace.run(
        [sys.executable, "-c", CLIENT, mode, TARGET, str(port), str(amount)],
        check=False,
        timeout=TIMEOUT,
    )
    try:
        return float(result.stdout.strip())
    except ValueError:
        return float("nan")


def flood_ping(namespace: netns.Namespace) -> float:
    out = namespace.run(
        ["ping", "-n", "-q", "-f", "-c", "5000", "-W", "1", TARGET], check=False, timeout=TIMEOUT
    ).stdout
    match = re.search(r"= [\d.]+/([\d.]+)/", out)
    return float(match.group(1)) * 1000 if match else float("nan")


Row = dict[str, float]


def measure_pystack(size: int, count: int, mtu: int, offload: bool = True) -> Row:
    options = HostOptions(
        offload=offload,
        netns=f"pystack-bench-{os.getpid()}",
        link="tun",
        mtu=mtu,
        serve=f"discard,echo,chargen={size}",
    )
    with KernelHost(options) as host:
        assert host.namespace is not None
        return {
            "in": client(host.namespace, "send", 9, size),
            "out": client(host.namespace, "recv", 19, size),
            "rr": client(host.namespace, "rr", 7, count),
            "ping": flood_ping(host.namespace),
        }


def measure_usocket(size: int, count: int) -> Row:
    """A MicroPython script (tools/bench_script.py) serving the same three services via usocket."""
    script = Path(__file__).resolve().parent / "bench_script.py"
    with netns.Namespace.create() as namespace:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "pystack",
                "run",
                "--link",
                "tun",
                "--netns",
                namespace.name,
                str(script),
                str(size),
                "3",
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert process.stdout is not None
            if process.stdout.readline().strip() != "ready":
                raise RuntimeError("bench_script.py did not start")
            ping = flood_ping(namespace)  # first: the script stops after its three connections
            return {
                "in": client(namespace, "send", 9, size),
                "out": client(namespace, "recv", 19, size),
                "rr": client(namespace, "rr", 7, count),
                "ping": ping,
            }
        finally:
            try:
                process.wait(timeout=TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _with_raw_tun(work: Callable[[netns.Namespace], float], echo: bool) -> float:
    with netns.Namespace.create() as namespace:
        device = TunLink("pst%d", mtu=1500)
        try:
            netns.move_device(namespace, device.name)
            netns.configure_peer(namespace, device.name, "10.0.0.1/24", 1500)
            fd = device.fileno()
            assert fd is not None
            worker = multiprocessing.Process(
                target=raw_tcp.serve, args=(fd, echo, TIMEOUT), daemon=True
            )
            worker.start()
            try:
                return work(namespace)
            finally:
                worker.terminate()
                worker.join(5)
        finally:
            device.close()


def measure_raw_tun(size: int, count: int) -> Row:
    return {
        "in": _with_raw_tun(lambda ns: client(ns, "send", 9, size), echo=False),
        "out": float("nan"),
        "rr": _with_raw_tun(lambda ns: client(ns, "rr", 7, count), echo=True),
        "ping": float("nan"),
    }


def measure_kernel(size: int, count: int) -> Row:
    row: Row = {}
    for mode, amount in (("send", size), ("recv", size), ("rr", count)):
        with netns.Namespace.create() as left, netns.Namespace.create() as right:
            name = f"pv{os.getpid() % 100000}"
            left.ip(
                "link",
                "add",
                name + "a",
                "type",
                "veth",
                "peer",
                "name",
                name + "b",
                "netns",
                right.name,
            )
            left.ip("address", "add", "10.0.0.1/24", "dev", name + "a")
            right.ip("address", "add", "10.0.0.2/24", "dev", name + "b")
            left.ip("link", "set", name + "a", "up")
            right.ip("link", "set", name + "b", "up")
            server = right.popen(
                [sys.executable, "-c", KERNEL_SERVER, mode, str(amount)], stdout=-1, text=True
            )
            assert server.stdout is not None
            server.stdout.readline()
            key = {"send": "in", "recv": "out", "rr": "rr"}[mode]
            row[key] = client(left, mode, 5001, amount)
            server.wait(TIMEOUT)
            if mode == "rr":
                row["ping"] = flood_ping(left)
    return row


def codec_rates() -> str:
    src, dst = 0x0A000001, 0x0A000002
    segment = TCPSegment(40000, 80, 1, 2, ACK, 65535, bytes(1460), (timestamp_option(1, 2),))
    wire = segment.build(src, dst)
    rounds = 20000
    start = time.perf_counter()
    for _ in range(rounds):
        TCPSegment.parse(wire, src, dst).build(src, dst)
    tcp = (time.perf_counter() - start) / rounds * 1e6
    packet = IPv4Packet(src, dst, 6, wire).build()
    start = time.perf_counter()
    for _ in range(rounds):
        IPv4Packet.parse(packet).build()
    ip = (time.perf_counter() - start) / rounds * 1e6
    return f"codec: TCP 1460-byte segment parse+build {tcp:.1f} us; IPv4 packet parse+build {ip:.1f} us"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=100_000_000, help="bytes per bulk transfer")
    parser.add_argument("--count", type=int, default=3000, help="request/response round trips")
    arguments = parser.parse_args()
    print(codec_rates())
    reason = netns.require_root()
    if reason is not None:
        print(f"kernel measurements skipped: {reason}")
        return 0
    rows = {
        "pystack, TUN mtu 1500": measure_pystack(arguments.size, arguments.count, 1500, True),
        "pystack, mtu 1500, plain": measure_pystack(arguments.size, arguments.count, 1500, False),
        "pystack, TUN mtu 65535": measure_pystack(arguments.size, arguments.count, 65535),
        "usocket script, TUN 1500": measure_usocket(arguments.size, arguments.count),
        "raw-TUN ceiling (1500)": measure_raw_tun(arguments.size, arguments.count),
        "Linux kernel (veth)": measure_kernel(arguments.size, arguments.count),
    }
    print(
        f"\n{'peer':<25}{'kernel->peer MB/s':>18}{'peer->kernel MB/s':>18}{'TCP RR us':>11}{'ping us':>9}"
    )
    for name, row in rows.items():
        print(
            f"{name:<25}{row['in']:>18.1f}{row['out']:>18.1f}{row['rr']:>11.1f}{row['ping']:>9.1f}"
        )
    ours, raw, kernel = (
        rows["pystack, TUN mtu 1500"],
        rows["raw-TUN ceiling (1500)"],
        rows["Linux kernel (veth)"],
    )
    plain = rows["pystack, mtu 1500, plain"]
    script = rows["usocket script, TUN 1500"]
    print("\nratios at mtu 1500 (pystack with TUN offloads unless 'plain'):")
    print(
        f"  plain pystack / raw-TUN ceiling (neither offloads): bulk in {plain['in'] / raw['in']:.2f}x, "
        f"RR time {plain['rr'] / raw['rr']:.2f}x"
    )
    print(
        f"  pystack / Linux kernel:    bulk in {ours['in'] / kernel['in']:.2f}x, bulk out "
        f"{ours['out'] / kernel['out']:.2f}x, RR time {ours['rr'] / kernel['rr']:.2f}x"
    )
    print(
        f"  pystack / incumbent (10 MB/s, 1400 us): bulk in {ours['in'] / 10:.1f}x, bulk out "
        f"{ours['out'] / 10:.1f}x, RR {1400 / ours['rr']:.1f}x faster"
    )
    print(
        f"  usocket script / incumbent: bulk in {script['in'] / 10:.1f}x, bulk out "
        f"{script['out'] / 10:.1f}x, RR {1400 / script['rr']:.1f}x faster"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
