"""The kernel measurements of ``pystack bench``: pystack, a usocket script, the raw-TUN ceiling and
the Linux kernel, each served to the same kernel-side client, in namespaces made here.

Every peer is measured by one client program (``CLIENT``) run in a namespace: it opens
``repeat`` connections one after the other and prints one figure per connection, so each figure
has ``repeat`` samples. Every wait is bounded (``TIMEOUT``), and every namespace, device and
process made here is removed on the way out, on an error or a signal alike.
"""

from __future__ import annotations

import multiprocessing
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from pystack import netns
from pystack.bench import raw_tcp
from pystack.host import HostOptions, KernelHost
from pystack.link.tuntap import TunLink
from pystack.wire.ipv4 import IPv4Packet
from pystack.wire.tcp import ACK, TCPSegment, timestamp_option

TARGET = "10.0.0.2"  # the peer under test, as the kernel-side client sees it
TIMEOUT = 300.0  # seconds any one client program or server may take

# The rows, in the order of the table: key, label.
ROWS: tuple[tuple[str, str], ...] = (
    ("pystack_tun_1500", "pystack, TUN offloads, mtu 1500"),
    ("pystack_plain_1500", "pystack, plain frames, mtu 1500"),
    ("pystack_tun_65535", "pystack, TUN offloads, mtu 65535"),
    ("usocket_script_1500", "usocket script, TUN offloads, mtu 1500"),
    ("raw_tun_1500", "raw-TUN ceiling, plain, mtu 1500"),
    ("kernel_veth_1500", "Linux kernel, veth, mtu 1500"),
)
# The figures of a row: key, label, unit.
METRICS: tuple[tuple[str, str, str], ...] = (
    ("in", "kernel -> peer", "MB/s"),
    ("out", "peer -> kernel", "MB/s"),
    ("rr", "1-byte RR", "us"),
    ("ping", "ICMP echo RTT", "us"),
)

CLIENT = r"""
import socket, sys, time
mode, host, port, amount, repeat = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
block = b"x" * 65536
for _ in range(repeat):
    s = socket.create_connection((host, port), timeout=60)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    start = time.perf_counter()
    if mode == "send":
        sent = 0
        while sent < amount:
            sent += s.send(block[: min(len(block), amount - sent)])
        s.shutdown(socket.SHUT_WR)
        while s.recv(65536):
            pass
        print(amount / (time.perf_counter() - start) / 1e6, flush=True)
    elif mode == "recv":
        got = 0
        while True:
            data = s.recv(1 << 20)
            if not data:
                break
            got += len(data)
        print(got / (time.perf_counter() - start) / 1e6, flush=True)
    else:
        for _ in range(amount):
            s.sendall(b"x")
            if not s.recv(1):
                raise SystemExit("closed early")
        print((time.perf_counter() - start) / amount * 1e6, flush=True)
    s.close()
"""

KERNEL_SERVER = r"""
import socket, sys
mode, amount, repeat = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
listener = socket.socket()
listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
listener.bind(("10.0.0.2", 5001))
listener.listen(8)
print("ready", flush=True)
block = b"y" * 65536
for _ in range(repeat):
    s, _ = listener.accept()
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if mode == "send":
        while s.recv(1 << 20):
            pass
    elif mode == "recv":
        sent = 0
        while sent < amount:
            sent += s.send(block[: min(len(block), amount - sent)])
    else:
        while data := s.recv(65536):
            s.sendall(data)
    s.close()
"""

# The usocket row: a MicroPython script run by ``pystack run --link tun`` serving discard (9),
# chargen (19: SIZE bytes, then close) and echo (7) with plain blocking sockets, one connection at
# a time, through select.poll on the three listeners; it stops after CONNECTIONS connections.
USOCKET_SCRIPT = r"""
import select
import socket
import sys

SIZE = int(sys.argv[1])
CONNECTIONS = int(sys.argv[2])
listeners = {}
poller = select.poll()
for port in (7, 9, 19):
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("0.0.0.0", port))
    server.listen(2)
    listeners[server] = port
    poller.register(server, select.POLLIN)
print("ready", flush=True)
block = b"y" * 65536
for _ in range(CONNECTIONS):
    server, _events = poller.poll()[0]
    conn, _peer = server.accept()
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    port = listeners[server]
    if port == 9:
        while conn.recv(65536):
            pass
    elif port == 19:
        sent = 0
        while sent < SIZE:
            sent += conn.send(block[: min(len(block), SIZE - sent)])
    else:
        while True:
            data = conn.recv(65536)
            if not data:
                break
            conn.sendall(data)
    conn.close()
for server in listeners:
    server.close()
"""


class BenchError(Exception):
    """A measurement could not be taken (the message says which and why)."""


@dataclass(frozen=True)
class Sizes:
    """How much each measurement moves, and how often it is repeated."""

    bulk: int  # bytes per bulk transfer
    count: int  # round trips per request/response run
    pings: int  # echo requests per flood-ping run
    repeat: int  # samples per figure


Row = dict[str, list[float]]  # metric key -> samples (a metric a peer lacks is absent)


def _client(
    namespace: netns.Namespace, mode: str, port: int, amount: int, repeat: int
) -> list[float]:
    result = namespace.run(
        [sys.executable, "-c", CLIENT, mode, TARGET, str(port), str(amount), str(repeat)],
        check=False,
        timeout=TIMEOUT,
    )
    try:
        samples = [float(line) for line in result.stdout.split()]
    except ValueError:
        samples = []
    if len(samples) != repeat:
        error = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise BenchError(f"client {mode} to port {port} failed: {error}")
    return samples


def _flood_ping(namespace: netns.Namespace, sizes: Sizes) -> list[float]:
    samples = []
    for _ in range(sizes.repeat):
        out = namespace.run(
            ["ping", "-n", "-q", "-f", "-c", str(sizes.pings), "-W", "1", TARGET],
            check=False,
            timeout=TIMEOUT,
        ).stdout
        match = re.search(r"= [\d.]+/([\d.]+)/", out)
        if match is None:
            raise BenchError(f"flood ping of {TARGET} gave no round-trip time")
        samples.append(float(match.group(1)) * 1000)
    return samples


def measure_pystack(sizes: Sizes, mtu: int, offload: bool) -> Row:
    """pystack's discard, chargen and echo services (``pystack up --serve``) over TUN."""
    options = HostOptions(
        offload=offload,
        netns=f"pystack-bench-{os.getpid()}",
        link="tun",
        mtu=mtu,
        serve=f"discard,echo,chargen={sizes.bulk}",
    )
    with KernelHost(options) as host:
        assert host.namespace is not None
        return {
            "in": _client(host.namespace, "send", 9, sizes.bulk, sizes.repeat),
            "out": _client(host.namespace, "recv", 19, sizes.bulk, sizes.repeat),
            "rr": _client(host.namespace, "rr", 7, sizes.count, sizes.repeat),
            "ping": _flood_ping(host.namespace, sizes),
        }


def measure_usocket(sizes: Sizes) -> Row:
    """``USOCKET_SCRIPT`` under ``pystack run --link tun`` serving the same three services."""
    with tempfile.TemporaryDirectory(prefix="pystack-bench-") as directory:
        script = Path(directory) / "bench_server.py"
        script.write_text(USOCKET_SCRIPT)
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
                    str(sizes.bulk),
                    str(3 * sizes.repeat),
                ],
                stdout=subprocess.PIPE,
                stdin=subprocess.DEVNULL,
                cwd=directory,
                text=True,
            )
            try:
                assert process.stdout is not None
                if process.stdout.readline().strip() != "ready":
                    raise BenchError("the usocket script did not start")
                row = {
                    "ping": _flood_ping(namespace, sizes),  # first: it counts no connection
                    "in": _client(namespace, "send", 9, sizes.bulk, sizes.repeat),
                    "out": _client(namespace, "recv", 19, sizes.bulk, sizes.repeat),
                    "rr": _client(namespace, "rr", 7, sizes.count, sizes.repeat),
                }
            except BaseException:
                _stop(process, 0)  # it would wait for connections that will not come
                raise
            _stop(process, TIMEOUT)  # it ends after its last connection
            return row


def _stop(process: subprocess.Popen[str], grace: float) -> None:
    """Wait up to ``grace`` seconds for ``process`` to finish by itself, then kill it."""
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        pass
    if process.poll() is None:
        process.kill()
        process.wait()
    if process.stdout is not None:
        process.stdout.close()


def _serve_raw(fd: int, echo: bool) -> None:
    """The raw-TUN worker (forked): stopped by SIGTERM quietly, whatever its parent handles."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    raw_tcp.serve(fd, echo, TIMEOUT)


def _with_raw_tun(work: Callable[[netns.Namespace], list[float]], echo: bool) -> list[float]:
    with netns.Namespace.create() as namespace:
        device = TunLink("pst%d", mtu=1500)
        try:
            netns.move_device(namespace, device.name)
            netns.configure_peer(namespace, device.name, "10.0.0.1/24", 1500)
            fd = device.fileno()
            assert fd is not None
            worker = multiprocessing.get_context("fork").Process(
                target=_serve_raw, args=(fd, echo), daemon=True
            )
            worker.start()
            try:
                return work(namespace)
            finally:
                worker.terminate()
                worker.join(5)
        finally:
            device.close()


def measure_raw_tun(sizes: Sizes) -> Row:
    """The raw-TUN ceiling (``pystack.bench.raw_tcp``): receive and request/response only."""
    return {
        "in": _with_raw_tun(lambda ns: _client(ns, "send", 9, sizes.bulk, sizes.repeat), False),
        "rr": _with_raw_tun(lambda ns: _client(ns, "rr", 7, sizes.count, sizes.repeat), True),
    }


@contextmanager
def _veth_pair() -> Iterator[tuple[netns.Namespace, netns.Namespace]]:
    with netns.Namespace.create() as left, netns.Namespace.create() as right:
        name = f"pv{os.getpid() % 100000}"
        left.ip("link", "add", name + "a", "type", "veth", "peer", "name", name + "b")
        left.ip("link", "set", name + "b", "netns", right.name)
        left.ip("address", "add", "10.0.0.1/24", "dev", name + "a")
        right.ip("address", "add", "10.0.0.2/24", "dev", name + "b")
        left.ip("link", "set", name + "a", "up")
        right.ip("link", "set", name + "b", "up")
        yield left, right  # removing a namespace removes the pair with it


def measure_kernel(sizes: Sizes) -> Row:
    """The kernel-to-kernel reference: a kernel server across a veth pair."""
    row: Row = {}
    with _veth_pair() as (left, right):
        for mode, key, amount in (
            ("send", "in", sizes.bulk),
            ("recv", "out", sizes.bulk),
            ("rr", "rr", sizes.count),
        ):
            server = right.popen(
                [sys.executable, "-c", KERNEL_SERVER, mode, str(amount), str(sizes.repeat)],
                stdout=subprocess.PIPE,
                stdin=subprocess.DEVNULL,
                text=True,
            )
            try:
                assert server.stdout is not None
                if server.stdout.readline().strip() != "ready":
                    raise BenchError("the kernel server did not start")
                row[key] = _client(left, mode, 5001, amount, sizes.repeat)
            except BaseException:
                _stop(server, 0)
                raise
            _stop(server, TIMEOUT)
        row["ping"] = _flood_ping(left, sizes)
    return row


def codec_rates(rounds: int) -> dict[str, float]:
    """Microseconds per parse+build of a 1460-byte TCP segment and of its IPv4 packet."""
    src, dst = 0x0A000001, 0x0A000002
    segment = TCPSegment(40000, 80, 1, 2, ACK, 65535, bytes(1460), (timestamp_option(1, 2),))
    wire = segment.build(src, dst)
    start = time.perf_counter()
    for _ in range(rounds):
        TCPSegment.parse(wire, src, dst).build(src, dst)
    tcp = (time.perf_counter() - start) / rounds * 1e6
    packet = IPv4Packet(src, dst, 6, wire).build()
    start = time.perf_counter()
    for _ in range(rounds):
        IPv4Packet.parse(packet).build()
    ip = (time.perf_counter() - start) / rounds * 1e6
    return {"tcp_segment_1460_parse_build_us": tcp, "ipv4_packet_parse_build_us": ip}


def measure_all(sizes: Sizes, progress: Callable[[str], None]) -> dict[str, Row]:
    """Every row of ``ROWS``, in order."""
    steps: dict[str, Callable[[], Row]] = {
        "pystack_tun_1500": lambda: measure_pystack(sizes, 1500, True),
        "pystack_plain_1500": lambda: measure_pystack(sizes, 1500, False),
        "pystack_tun_65535": lambda: measure_pystack(sizes, 65535, True),
        "usocket_script_1500": lambda: measure_usocket(sizes),
        "raw_tun_1500": lambda: measure_raw_tun(sizes),
        "kernel_veth_1500": lambda: measure_kernel(sizes),
    }
    rows: dict[str, Row] = {}
    for key, label in ROWS:
        progress(label)
        rows[key] = steps[key]()
    return rows
