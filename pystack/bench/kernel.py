"""The kernel measurements of ``pystack bench``: pystack, a usocket script, the raw-TUN ceiling and
the Linux kernel, each served to the same kernel-side client, in namespaces made here.

Every peer is measured by one client program (``CLIENT``) run in a namespace: it opens
``repeat`` connections (or bursts) one after the other and prints one figure per repetition, so
each figure has ``repeat`` samples. Every wait is bounded (``TIMEOUT``), and every namespace,
device and process made here is removed on the way out, on an error or a signal alike.

The peers serve the same ports: TCP discard 9 (bulk in, connect+close), chargen 19 (bulk out:
``bulk`` bytes then FIN), echo 7 (request/response); UDP 5009, a counting sink (datagrams are
counted; ``!TOKEN`` resets the count and is echoed back; ``?TOKEN`` is answered with
"TOKEN COUNT SECONDS", the count and the time from the first to the last datagram counted) and
UDP 5019, a source (a datagram holding a number N is answered with N 64-byte datagrams, as fast
as the peer can send them). The tokens let the client ask again when a question is lost in a
full queue and tell a late answer from the one it waits for.
"""

from __future__ import annotations

import gc
import json
import multiprocessing
import os
import re
import select
import signal
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pystack import netns
from pystack.bench import raw_tcp
from pystack.host import HostOptions, KernelHost
from pystack.link.tuntap import TunLink
from pystack.runner import StackThread
from pystack.stack import Stack, StackConfig
from pystack.tcp.connection import TCPConnection
from pystack.tcp.settings import TCPSettings
from pystack.wire.ipv4 import IPv4Packet
from pystack.wire.tcp import ACK, TCPSegment, timestamp_option

TARGET = "10.0.0.2"  # the peer under test, as the kernel-side client sees it
TIMEOUT = 300.0  # seconds any one client program or server may take
BIG_MTU = 65520  # the large MTU (TUN accepts 68..65535; see docs/performance.md)
UDP_SINK, UDP_SOURCE, USOCKET_STOP = 5009, 5019, 13
DATAGRAM = 64  # bytes of UDP payload per datagram

# The rows, in the order of the table: key, label.
ROWS: tuple[tuple[str, str], ...] = (
    ("pystack_tun_1500", "pystack services, TUN offloads, mtu 1500"),
    ("pystack_plain_1500", "pystack services, plain frames, mtu 1500"),
    ("pystack_tun_65520", "pystack services, TUN offloads, mtu 65520"),
    ("usocket_tun_1500", "usocket script, TUN offloads, mtu 1500"),
    ("usocket_plain_1500", "usocket script, plain frames, mtu 1500"),
    ("usocket_tun_65520", "usocket script, TUN offloads, mtu 65520"),
    ("pystack_plain_1500_loss1", "pystack services, plain frames, mtu 1500, 1% loss each way"),
    ("raw_tun_plain_1500", "raw-TUN ceiling, plain frames, mtu 1500"),
    ("raw_tun_offload_1500", "raw-TUN ceiling, TUN offloads, mtu 1500"),
    ("kernel_veth_1500", "Linux kernel, veth, mtu 1500"),
)
# The figures of a row: key, label, unit.
METRICS: tuple[tuple[str, str, str], ...] = (
    ("in", "TCP bulk kernel -> peer", "MB/s"),
    ("out", "TCP bulk peer -> kernel", "MB/s"),
    ("rr_p50", "1-byte RR p50", "us"),
    ("rr_p99", "1-byte RR p99", "us"),
    ("rr_tps", "1-byte RR rate", "transactions/s"),
    ("connect", "connect+close", "connections/s"),
    ("udp_in", "UDP kernel -> peer", "datagrams/s"),
    ("udp_out", "UDP peer -> kernel", "datagrams/s"),
    ("ping", "ICMP echo RTT", "us"),
)
ALL = frozenset(key for key, _label, _unit in METRICS)
# What each row measures: the raw-TUN endpoint speaks TCP only, one connection after another;
# the lossy row is there for bulk under loss only.
RAW_METRICS = frozenset({"in", "out", "rr_p50", "rr_p99", "rr_tps"})
BULK_METRICS = frozenset({"in", "out"})
ROW_METRICS: dict[str, frozenset[str]] = {
    key: RAW_METRICS if key.startswith("raw_tun") else BULK_METRICS if "loss" in key else ALL
    for key, _label in ROWS
}
# The impairment of the lossy row (pystack's impairment link between the stack and its TUN
# device: every frame, either way, lost with probability 1%; seeded, so runs draw alike) and
# the loss-free row its bulk figures are divided by (the target: >= 50% of it).
LOSS_IMPAIRMENT = "loss=1%,seed=1"
LOSS_REFERENCE = {"pystack_plain_1500_loss1": "pystack_plain_1500"}
# The reference each row is divided by, beside the kernel: the raw ceiling of its frame kind.
RAW_REFERENCE = {
    "pystack_tun_1500": "raw_tun_offload_1500",
    "pystack_plain_1500": "raw_tun_plain_1500",
    "pystack_tun_65520": "raw_tun_offload_1500",
    "usocket_tun_1500": "raw_tun_offload_1500",
    "usocket_plain_1500": "raw_tun_plain_1500",
    "usocket_tun_65520": "raw_tun_offload_1500",
}
# The idle-connections figures (one row, pystack's services): key, label, unit.
MEMORY_METRICS: tuple[tuple[str, str, str], ...] = (
    ("traced_per_connection", "tracemalloc per idle connection", "bytes"),
    ("rss_per_connection", "RSS per idle connection", "bytes"),
    ("traced_total", "tracemalloc for all of them", "MB"),
    ("rss_total", "RSS for all of them", "MB"),
)

CLIENT = r"""
import socket, sys, time
mode, host, port, amount, repeat = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
block = b"x" * 65536
for _ in range(repeat):
    if mode == "udpin":
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.settimeout(0.2)
        def ask(question, answer):
            # the sink may drop a question while its queue is full: ask again, ignore stale
            # answers (each carries the question's token)
            for _ in range(50):
                s.sendto(question, (host, port))
                end = time.perf_counter() + 0.2
                while time.perf_counter() < end:
                    try:
                        reply = s.recv(100)
                    except socket.timeout:
                        break
                    if reply.startswith(answer):
                        return reply[len(answer):]
            raise SystemExit("the UDP sink did not answer")
        token = str(time.perf_counter_ns()).encode()
        ask(b"!" + token, b"!" + token)  # reset its count, before the burst fills its queue
        payload = b"u" * 64
        for _ in range(amount):
            try:
                s.sendto(payload, (host, port))
            except OSError:
                pass  # a full device queue: that datagram is lost, the sink counts what came
        count, seconds = ask(b"?" + token, token + b" ").split()
        if int(count) < 2 or float(seconds) <= 0:
            raise SystemExit(f"the UDP sink counted {int(count)} datagrams")
        print((int(count) - 1) / float(seconds), flush=True)
        s.close()
        continue
    if mode == "udpout":
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
        s.settimeout(2)
        s.sendto(str(amount).encode(), (host, port))
        count, first, last = 0, 0.0, 0.0
        while count < amount:
            try:
                s.recv(2048)
            except socket.timeout:
                break
            last = time.perf_counter()
            if not count:
                first = last
                s.settimeout(0.2)  # the source is done (or the rest was lost) after this
            count += 1
        if count < 2:
            raise SystemExit(f"the UDP source sent {count} datagrams")
        print((count - 1) / (last - first), flush=True)
        s.close()
        continue
    if mode == "connect":
        start = time.perf_counter()
        for _ in range(amount):
            # the whole life of a connection: open, close, and wait for the peer's close, so
            # the rate is one the peer's application keeps up with (no accept queue fills)
            s = socket.create_connection((host, port), timeout=10)
            s.shutdown(socket.SHUT_WR)
            while s.recv(100):
                pass
            s.close()
        print(amount / (time.perf_counter() - start), flush=True)
        continue
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
        times = []
        clock = time.perf_counter
        for _ in range(amount):
            begin = clock()
            s.sendall(b"x")
            if not s.recv(1):
                raise SystemExit("closed early")
            times.append(clock() - begin)
        elapsed = time.perf_counter() - start
        times.sort()
        p50 = times[(len(times) - 1) // 2] * 1e6
        p99 = times[min(len(times) - 1, (len(times) * 99) // 100)] * 1e6
        print(p50, p99, amount / elapsed, flush=True)
    s.close()
"""

# On each line "open": opens ``amount`` connections, says "held", and at the next line closes
# them and says "closed"; any other line (or the end of stdin) ends it.
HOLD_CLIENT = r"""
import resource, socket, sys
host, port, amount = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
limit = amount + 64
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
if soft < limit:
    resource.setrlimit(resource.RLIMIT_NOFILE, (limit, max(hard, limit)))  # root may raise both
while sys.stdin.readline().strip() == "open":
    held = [socket.create_connection((host, port), timeout=10) for _ in range(amount)]
    print("held", flush=True)
    sys.stdin.readline()
    for s in held:
        s.close()
    del held
    print("closed", flush=True)
"""

KERNEL_SERVER = r"""
import socket, sys, threading, time
mode, amount, repeat = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
if mode == "udp":
    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
    sink.bind(("10.0.0.2", 5009))
    source = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    source.bind(("10.0.0.2", 5019))
    def send_on_request():
        payload = b"k" * 64
        while True:
            data, peer = source.recvfrom(100)
            for _ in range(int(data)):
                try:
                    source.sendto(payload, peer)
                except OSError:
                    pass
    threading.Thread(target=send_on_request, daemon=True).start()
    print("ready", flush=True)
    count, first, last = 0, 0.0, 0.0
    while True:
        data, peer = sink.recvfrom(2048)
        if data[:1] == b"!":
            count = 0
            sink.sendto(data, peer)
            continue
        if data[:1] == b"?":
            sink.sendto(data[1:] + f" {count} {last - first}".encode(), peer)
            continue
        last = time.perf_counter()
        if not count:
            first = last
        count += 1
listener = socket.socket()
listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
listener.bind(("10.0.0.2", 5001))
listener.listen(128)
print("ready", flush=True)
block = b"y" * 65536
for _ in range(amount * repeat if mode == "connect" else repeat):
    s, _ = listener.accept()
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if mode in ("send", "connect"):
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

# The usocket rows: a MicroPython script run by ``pystack run --link tun`` serving the same
# ports with plain blocking sockets, one TCP connection at a time, through select.poll on the
# listeners and the two UDP sockets; a connection to port 13 stops it.
USOCKET_SCRIPT = r"""
import select
import socket
import sys
import time

SIZE = int(sys.argv[1])
listeners = {}
poller = select.poll()
for port in (7, 9, 19, 13):
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("0.0.0.0", port))
    server.listen(8)
    listeners[server] = port
    poller.register(server, select.POLLIN)
sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sink.bind(("0.0.0.0", 5009))
sink.setblocking(False)
source = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
source.bind(("0.0.0.0", 5019))
poller.register(sink, select.POLLIN)
poller.register(source, select.POLLIN)
print("ready", flush=True)
block = b"y" * 65536
payload = b"m" * 64
count = first = last = 0
running = True
while running:
    for ready, _events in poller.poll():
        if ready is sink:
            while True:
                try:
                    data, peer = sink.recvfrom(2048)
                except OSError:
                    break
                if data[:1] == b"!":
                    count = 0
                    sink.sendto(data, peer)
                    continue
                if data[:1] == b"?":
                    seconds = time.ticks_diff(last, first) / 1e6
                    sink.sendto(data[1:] + (" %d %f" % (count, seconds)).encode(), peer)
                    continue
                last = time.ticks_us()
                if not count:
                    first = last
                count += 1
            continue
        if ready is source:
            data, peer = source.recvfrom(100)
            for _ in range(int(data)):
                try:
                    source.sendto(payload, peer)
                except OSError:
                    pass
            continue
        conn, _peer = ready.accept()
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        port = listeners[ready]
        if port == 13:
            running = False
        elif port == 9:
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
sink.close()
source.close()
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
    connects: int = 1000  # connect+close per connection-rate sample
    datagrams: int = 20000  # datagrams per UDP sample
    connections: int = 10000  # idle established connections held for the memory figures


Row = dict[str, list[float]]  # metric key -> samples (a metric a peer lacks is absent)


def _client(
    namespace: netns.Namespace, mode: str, port: int, amount: int, repeat: int
) -> list[list[float]]:
    """``repeat`` lines of figures from one run of ``CLIENT``."""
    result = namespace.run(
        [sys.executable, "-c", CLIENT, mode, TARGET, str(port), str(amount), str(repeat)],
        check=False,
        timeout=TIMEOUT,
    )
    try:
        samples = [[float(x) for x in line.split()] for line in result.stdout.splitlines()]
    except ValueError:
        samples = []
    if len(samples) != repeat or not all(samples):
        error = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise BenchError(f"client {mode} to port {port} failed: {error}")
    return samples


def _one(namespace: netns.Namespace, mode: str, port: int, amount: int, repeat: int) -> list[float]:
    return [line[0] for line in _client(namespace, mode, port, amount, repeat)]


def _rr(namespace: netns.Namespace, port: int, sizes: Sizes) -> Row:
    lines = _client(namespace, "rr", port, sizes.count, sizes.repeat)
    return {
        "rr_p50": [line[0] for line in lines],
        "rr_p99": [line[1] for line in lines],
        "rr_tps": [line[2] for line in lines],
    }


def _tcp_and_udp(namespace: netns.Namespace, sizes: Sizes) -> Row:
    """Every figure but ping from a peer serving the common ports (discard 9, chargen 19, echo
    7, the UDP sink and source); the kernel server serves one port per run instead."""
    return {
        "in": _one(namespace, "send", 9, sizes.bulk, sizes.repeat),
        "out": _one(namespace, "recv", 19, sizes.bulk, sizes.repeat),
        **_rr(namespace, 7, sizes),
        "connect": _one(namespace, "connect", 9, sizes.connects, sizes.repeat),
        "udp_in": _one(namespace, "udpin", UDP_SINK, sizes.datagrams, sizes.repeat),
        "udp_out": _one(namespace, "udpout", UDP_SOURCE, sizes.datagrams, sizes.repeat),
    }


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


class UdpBench:
    """The UDP sink (5009) and source (5019) of the services rows: an application on the stack,
    stepped by the stack thread like the services (pystack's UDP services have no counting sink
    and no source, so these two stand beside them)."""

    BURST = 256  # datagrams sent per step, so one request does not hold the stack thread

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.sink = stack.udp.open(0, UDP_SINK)
        self.sink.set_queue_limit(4096)
        self.source = stack.udp.open(0, UDP_SOURCE)
        self.count = 0
        self.first = self.last = 0.0
        self.pending = 0
        self.destination: tuple[int, int] | None = None
        self.payload = b"p" * DATAGRAM

    def step(self, now: float) -> None:
        sink = self.sink
        while (received := sink.receive()) is not None:
            data, peer = received
            if data[:1] == b"!":
                self.count = 0
                sink.send_to(data, peer, now)
                continue
            if data[:1] == b"?":
                answer = data[1:] + f" {self.count} {self.last - self.first}".encode()
                sink.send_to(answer, peer, now)
                continue
            self.last = now
            if not self.count:
                self.first = now
            self.count += 1
        while (request := self.source.receive()) is not None:
            try:
                self.pending = min(int(request[0]), 10_000_000)
            except ValueError:
                continue
            self.destination = request[1]
        if self.pending and self.destination is not None:
            try:
                for _ in range(min(self.pending, self.BURST)):
                    self.source.send_to(self.payload, self.destination, now)
            except OSError:
                self.pending = 0  # no way back to the client: it counts what came
            self.pending -= min(self.pending, self.BURST)

    def next_deadline(self) -> float | None:
        return 0.0 if self.pending else None  # a past deadline: step again at once


def measure_pystack(sizes: Sizes, mtu: int, offload: bool, impair: str | None = None) -> Row:
    """pystack's discard, chargen and echo services (``pystack up --serve``) over TUN; with
    ``impair`` (an impairment spec, docs/impairment.md) only the two bulk figures."""
    options = HostOptions(
        offload=offload,
        netns=f"pystack-bench-{os.getpid()}",
        link="tun",
        mtu=mtu,
        serve=f"discard,echo,chargen={sizes.bulk}",
        impair=impair,
    )
    with KernelHost(options) as host:
        assert host.namespace is not None and host.thread is not None and host.stack is not None
        if impair is not None:
            return {
                "in": _one(host.namespace, "send", 9, sizes.bulk, sizes.repeat),
                "out": _one(host.namespace, "recv", 19, sizes.bulk, sizes.repeat),
            }
        stack = host.stack
        host.thread.call(lambda: stack.add_application(UdpBench(stack)))
        return {
            **_tcp_and_udp(host.namespace, sizes),
            "ping": _flood_ping(host.namespace, sizes),
        }


def _resident_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


# One sample of the idle-connections figures, in a fresh interpreter (see measure_connections).
CONNECTIONS_SAMPLE = r"""
import json, signal, sys
from pystack.bench.kernel import connections_sample
def stop(signum, frame):
    raise KeyboardInterrupt  # unwinds the KernelHost: its namespace and device are removed
signal.signal(signal.SIGTERM, stop)
try:
    print(json.dumps(connections_sample(int(sys.argv[1]))), flush=True)
except KeyboardInterrupt:
    sys.exit(130)
"""


def measure_connections(sizes: Sizes) -> Row:
    """Memory of ``sizes.connections`` idle established connections to pystack (``Acceptor``).

    Each sample runs in a fresh interpreter (``connections_sample``): in this process the rows
    before would have left freed memory that the new connections reuse without growing the
    resident set, which would hide their cost from the RSS figure."""
    row: Row = {name: [] for name, _label, _unit in MEMORY_METRICS}
    for _ in range(sizes.repeat):
        process = subprocess.Popen(
            [sys.executable, "-c", CONNECTIONS_SAMPLE, str(sizes.connections)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
        )
        try:
            out, err = process.communicate(timeout=TIMEOUT)
        except BaseException:
            process.terminate()  # it removes its namespace on SIGTERM
            try:
                process.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.communicate()
            raise
        try:
            figures = json.loads(out)
        except ValueError:
            figures = None
        if process.returncode != 0 or not isinstance(figures, dict):
            error = (err.strip().splitlines() or ["no output"])[-1]
            raise BenchError(f"idle connections: {error}")
        for name in row:
            row[name].append(float(figures[name]))
    return row


def connections_sample(amount: int) -> dict[str, float]:
    """One sample: a kernel-side client opens ``amount`` connections to an ``Acceptor`` on
    pystack (the stack runs in this process) and holds them idle; tracemalloc's traced bytes
    and the resident set are read before and while they are held. tracemalloc's own
    bookkeeping (which the resident set includes) is taken out of the RSS figure."""
    # room for every connection below the table's high-water mark (SYN cookies start at 7/8)
    tcp = TCPSettings(max_connections=amount + amount // 4 + 64)
    options = HostOptions(
        offload=True,
        netns=f"pystack-bench-{os.getppid()}-idle",  # named after the bench, its parent
        link="tun",
        stack_config=StackConfig(tcp=tcp),
    )
    with KernelHost(options) as host:
        assert host.namespace is not None and host.thread is not None and host.stack is not None
        stack, thread, connections = host.stack, host.thread, host.stack.tcp.connections
        thread.call(lambda: stack.add_application(Acceptor(stack, 9)))
        client = host.namespace.popen(
            [sys.executable, "-c", HOLD_CLIENT, TARGET, "9", str(amount)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert client.stdin is not None and client.stdout is not None
            gc.collect()
            tracemalloc.start()
            traced, rss = tracemalloc.get_traced_memory()[0], _resident_bytes()
            own = tracemalloc.get_tracemalloc_memory()
            client.stdin.write("open\n")
            client.stdin.flush()
            if _read_line(client.stdout, TIMEOUT) != "held":
                raise BenchError(f"the client could not hold {amount} connections")
            _wait_established(thread, connections, amount)
            gc.collect()
            traced = tracemalloc.get_traced_memory()[0] - traced
            own = tracemalloc.get_tracemalloc_memory() - own
            rss = _resident_bytes() - rss - own
            tracemalloc.stop()
        except BaseException:
            _stop(client, 0)  # it may be busy connecting: not worth waiting for
            raise
        _stop(client, 30)  # closing its stdin ends it; its connections close with it
    return {
        "traced_per_connection": traced / amount,
        "rss_per_connection": rss / amount,
        "traced_total": traced / 1e6,
        "rss_total": rss / 1e6,
    }


class Acceptor:
    """The idle-connections server: accepts every connection on ``port`` and keeps it, reading
    nothing. pystack's discard service would do the same, but it looks at each of its
    connections on every step, which makes opening 10,000 of them take quadratic time."""

    def __init__(self, stack: Stack, port: int) -> None:
        self.listener = stack.tcp_listen(port)  # the largest backlog: connections come back to back
        self.held: list[TCPConnection] = []

    def step(self, now: float) -> None:
        while (connection := self.listener.accept()) is not None:
            self.held.append(connection)

    def next_deadline(self) -> float | None:
        return None  # it only accepts


def _wait_established(thread: StackThread, connections: dict[Any, Any], amount: int) -> None:
    """Until pystack holds ``amount`` established connections (the client's last connect can
    return before pystack has taken its final ACK). The table is counted a few times a second,
    not on every change: counting 10,000 entries per change would cost more than the rest."""
    end = time.monotonic() + 60
    while time.monotonic() < end:
        count = thread.call(
            lambda: sum(1 for connection in connections.values() if connection.state.synchronized)
        )
        if count >= amount:
            return
        time.sleep(0.1)
    raise BenchError(f"pystack did not reach {amount} established connections")


def _read_line(stream: object, timeout: float) -> str:
    """One line from a pipe within ``timeout`` seconds ('' on timeout or end)."""
    assert hasattr(stream, "fileno") and hasattr(stream, "readline")
    if not select.select([stream], [], [], timeout)[0]:
        return ""
    return str(stream.readline()).strip()


def measure_usocket(sizes: Sizes, mtu: int, offload: bool) -> Row:
    """``USOCKET_SCRIPT`` under ``pystack run --link tun`` serving the same ports."""
    with tempfile.TemporaryDirectory(prefix="pystack-bench-") as directory:
        script = Path(directory) / "bench_server.py"
        script.write_text(USOCKET_SCRIPT)
        with netns.Namespace.create() as namespace:
            command = [sys.executable, "-m", "pystack", "run", "--link", "tun"]
            command += ["--netns", namespace.name, "--mtu", str(mtu)]
            command += [] if offload else ["--no-offload"]
            process = subprocess.Popen(
                [*command, str(script), str(sizes.bulk)],
                stdout=subprocess.PIPE,
                stdin=subprocess.DEVNULL,
                cwd=directory,
                text=True,
            )
            try:
                assert process.stdout is not None
                if _read_line(process.stdout, 60) != "ready":
                    raise BenchError("the usocket script did not start")
                row = {
                    "ping": _flood_ping(namespace, sizes),
                    **_tcp_and_udp(namespace, sizes),
                }
                _one(namespace, "connect", USOCKET_STOP, 1, 1)  # the script ends after it
            except BaseException:
                _stop(process, 0)  # it would wait for connections that will not come
                raise
            _stop(process, 30)
            return row


def _stop(process: subprocess.Popen[str], grace: float) -> None:
    """Wait up to ``grace`` seconds for ``process`` to finish by itself, then kill it."""
    for stream in (process.stdin,):
        if stream is not None:
            try:
                stream.close()
            except OSError:
                pass
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        pass
    if process.poll() is None:
        process.kill()
        process.wait()
    if process.stdout is not None:
        process.stdout.close()


def _serve_raw(fd: int, mtu: int, offload: bool, size: int) -> None:
    """The raw-TUN worker (forked): stopped by SIGTERM quietly, whatever its parent handles."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    raw_tcp.serve(fd, mtu, offload, size, TIMEOUT * 3)


def measure_raw_tun(sizes: Sizes, offload: bool) -> Row:
    """The raw-TUN ceiling (``pystack.bench.raw_tcp``) in a forked worker on its own device."""
    with netns.Namespace.create() as namespace:
        device = TunLink("pst%d", mtu=1500, offload=offload)
        try:
            netns.move_device(namespace, device.name)
            netns.configure_peer(namespace, device.name, "10.0.0.1/24", 1500)
            fd = device.fileno()
            assert fd is not None
            worker = multiprocessing.get_context("fork").Process(
                target=_serve_raw, args=(fd, 1500, offload, sizes.bulk), daemon=True
            )
            worker.start()
            try:
                return {
                    "in": _one(namespace, "send", raw_tcp.DISCARD, sizes.bulk, sizes.repeat),
                    "out": _one(namespace, "recv", raw_tcp.CHARGEN, sizes.bulk, sizes.repeat),
                    **_rr(namespace, raw_tcp.ECHO, sizes),
                }
            finally:
                worker.terminate()
                worker.join(5)
                if worker.is_alive():
                    worker.kill()
                    worker.join()
        finally:
            device.close()


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
        for mode, amount in (
            ("send", sizes.bulk),
            ("recv", sizes.bulk),
            ("rr", sizes.count),
            ("connect", sizes.connects),
            ("udp", 0),
        ):
            server = right.popen(
                [sys.executable, "-c", KERNEL_SERVER, mode, str(amount), str(sizes.repeat)],
                stdout=subprocess.PIPE,
                stdin=subprocess.DEVNULL,
                text=True,
            )
            try:
                assert server.stdout is not None
                if _read_line(server.stdout, 60) != "ready":
                    raise BenchError("the kernel server did not start")
                if mode == "udp":
                    row["udp_in"] = _one(left, "udpin", UDP_SINK, sizes.datagrams, sizes.repeat)
                    row["udp_out"] = _one(left, "udpout", UDP_SOURCE, sizes.datagrams, sizes.repeat)
                    _stop(server, 0)  # it serves until stopped
                    continue
                if mode == "rr":
                    row.update(_rr(left, 5001, sizes))
                else:
                    key = {"send": "in", "recv": "out", "connect": "connect"}[mode]
                    row[key] = _one(left, mode, 5001, amount, sizes.repeat)
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


def measure_all(sizes: Sizes, progress: Callable[[str], None]) -> tuple[dict[str, Row], Row]:
    """Every row of ``ROWS``, in order, and the idle-connections figures."""
    steps: dict[str, Callable[[], Row]] = {
        "pystack_tun_1500": lambda: measure_pystack(sizes, 1500, True),
        "pystack_plain_1500": lambda: measure_pystack(sizes, 1500, False),
        "pystack_tun_65520": lambda: measure_pystack(sizes, BIG_MTU, True),
        "pystack_plain_1500_loss1": lambda: measure_pystack(sizes, 1500, False, LOSS_IMPAIRMENT),
        "usocket_tun_1500": lambda: measure_usocket(sizes, 1500, True),
        "usocket_plain_1500": lambda: measure_usocket(sizes, 1500, False),
        "usocket_tun_65520": lambda: measure_usocket(sizes, BIG_MTU, True),
        "raw_tun_plain_1500": lambda: measure_raw_tun(sizes, False),
        "raw_tun_offload_1500": lambda: measure_raw_tun(sizes, True),
        "kernel_veth_1500": lambda: measure_kernel(sizes),
    }
    rows: dict[str, Row] = {}
    for key, label in ROWS:
        progress(label)
        rows[key] = steps[key]()
    progress(f"{sizes.connections} idle connections to pystack")
    memory = measure_connections(sizes)
    return rows, memory
