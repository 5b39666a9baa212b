#!/usr/bin/env python3
"""pystack benchmark: pystack against the Linux kernel and a raw-TUN ceiling, in one run.

Everything runs inside network namespaces this script creates and removes; traffic never leaves
them. Each measurement is bounded in count and time.

Measured now (the TCP bulk and request/response rows join when the TCP engine lands):
- ICMP echo request/response latency: ``ping -f`` (flood: the next request goes when the reply
  arrives) from the kernel to (a) pystack over TUN, (b) a minimal Python echo responder on the
  same kind of TUN (the raw-TUN ceiling: read, patch, checksum, write), and (c) the kernel itself
  across a veth pair (the kernel ceiling).
- ICMP echo throughput with 1472-byte payloads, same three peers.
- Codec speed: parse + build of a 1460-byte TCP segment and of an IPv4 packet, per second.

Prints one table with pystack's ratio to each ceiling. Not a test: numbers vary by machine.
"""

from __future__ import annotations

import multiprocessing
import os
import re
import select
import sys
import time
from dataclasses import dataclass

from pystack import netns
from pystack.host import HostOptions, KernelHost
from pystack.link.tuntap import TunLink
from pystack.wire.checksum import internet_checksum
from pystack.wire.ipv4 import IPv4Packet
from pystack.wire.tcp import ACK, TCPSegment, timestamp_option

TARGET = "10.0.0.2"
COUNT_SMALL = 5000
COUNT_LARGE = 3000
PING_TIMEOUT = 120.0


@dataclass
class Result:
    rtt_us: float  # mean round trip of flood ping, small packets
    pps: float  # round trips per second, small packets
    mbytes: float  # MB/s of echo payload, both directions, 1472-byte payloads


def flood(namespace: netns.Namespace, target: str) -> Result:
    small = namespace.run(
        ["ping", "-n", "-q", "-f", "-c", str(COUNT_SMALL), "-W", "1", target],
        check=False,
        timeout=PING_TIMEOUT,
    ).stdout
    large = namespace.run(
        ["ping", "-n", "-q", "-f", "-c", str(COUNT_LARGE), "-s", "1472", "-W", "1", target],
        check=False,
        timeout=PING_TIMEOUT,
    ).stdout
    return Result(
        _avg_rtt(small) * 1000,
        COUNT_SMALL / _elapsed(small),
        _received(large) * 1472 * 2 / _elapsed(large) / 1e6,
    )


def _avg_rtt(output: str) -> float:
    match = re.search(r"= [\d.]+/([\d.]+)/", output)
    return float(match.group(1)) if match else float("nan")


def _elapsed(output: str) -> float:
    match = re.search(r"time (\d+)ms", output)
    return max(float(match.group(1)) / 1000, 1e-3) if match else float("nan")


def _received(output: str) -> int:
    match = re.search(r"(\d+) received", output)
    return int(match.group(1)) if match else 0


def measure_pystack() -> Result:
    with KernelHost(HostOptions(netns=f"pystack-bench-{os.getpid()}", link="tun")) as host:
        assert host.namespace is not None
        return flood(host.namespace, TARGET)


def _raw_responder(fd: int, stop_after: float) -> None:
    """The ceiling: a minimal echo responder with no stack at all (checksums still computed)."""
    end = time.monotonic() + stop_after
    while time.monotonic() < end:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if not ready:
            continue
        while True:
            try:
                packet = os.read(fd, 65536)
            except BlockingIOError:
                break
            if len(packet) < 28 or packet[9] != 1 or packet[20] != 8:
                continue
            hlen = (packet[0] & 15) * 4
            icmp = b"\x00\x00\x00\x00" + packet[hlen + 4 :]
            icmp = icmp[:2] + internet_checksum(icmp).to_bytes(2, "big") + icmp[4:]
            header = packet[:12] + packet[16:20] + packet[12:16]
            os.write(fd, header + icmp)


def measure_raw_tun() -> Result:
    with netns.Namespace.create() as namespace:
        device = TunLink("pst%d", mtu=1500)
        try:
            netns.move_device(namespace, device.name)
            netns.configure_peer(namespace, device.name, "10.0.0.1/24", 1500)
            fd = device.fileno()
            assert fd is not None
            worker = multiprocessing.Process(
                target=_raw_responder, args=(fd, PING_TIMEOUT * 2), daemon=True
            )
            worker.start()
            try:
                return flood(namespace, TARGET)
            finally:
                worker.terminate()
                worker.join(5)
        finally:
            device.close()


def measure_kernel() -> Result:
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
        return flood(left, TARGET)


def codec_rates() -> tuple[float, float]:
    src, dst = 0x0A000001, 0x0A000002
    segment = TCPSegment(40000, 80, 1, 2, ACK, 65535, bytes(1460), (timestamp_option(1, 2),))
    wire = segment.build(src, dst)
    rounds = 20000
    start = time.perf_counter()
    for _ in range(rounds):
        TCPSegment.parse(wire, src, dst).build(src, dst)
    tcp = rounds / (time.perf_counter() - start)
    packet = IPv4Packet(src, dst, 6, wire).build()
    start = time.perf_counter()
    for _ in range(rounds):
        IPv4Packet.parse(packet).build()
    return tcp, rounds / (time.perf_counter() - start)


def main() -> int:
    reason = netns.require_root()
    tcp_rate, ip_rate = codec_rates()
    print(
        f"codec: TCP 1460-byte segment parse+build {tcp_rate:,.0f}/s ({1e6 / tcp_rate:.1f} us); "
        f"IPv4 packet parse+build {ip_rate:,.0f}/s ({1e6 / ip_rate:.1f} us)"
    )
    if reason is not None:
        print(f"kernel measurements skipped: {reason}")
        return 0
    results = {
        "pystack (TUN)": measure_pystack(),
        "raw TUN ceiling": measure_raw_tun(),
        "Linux kernel (veth)": measure_kernel(),
    }
    print(f"{'peer':<22}{'echo RTT us':>12}{'echo/s':>10}{'MB/s (1472 B echoes)':>22}")
    for name, result in results.items():
        print(f"{name:<22}{result.rtt_us:>12.1f}{result.pps:>10.0f}{result.mbytes:>22.1f}")
    ours, raw, kernel = results.values()
    print(
        f"ratios: pystack/raw-TUN latency {ours.rtt_us / raw.rtt_us:.2f}x, throughput "
        f"{ours.mbytes / raw.mbytes:.2f}x; pystack/kernel latency {ours.rtt_us / kernel.rtt_us:.2f}x, "
        f"throughput {ours.mbytes / kernel.mbytes:.2f}x"
    )
    print("TCP bulk and request/response: not measured yet (the TCP engine is the next issue)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
