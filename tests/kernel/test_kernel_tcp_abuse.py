"""Injection storms from the kernel's side at a pystack echo service, over TUN, in a private
network namespace: pystack's replies stay within its limits and the connection keeps working.

The kernel side (a ``python -c`` program inside the namespace) opens a real connection to echo
port 7, learns both sequence numbers from a packet capture (an ``AF_PACKET`` socket on the TUN
device), then forges 1,000 ACKs of data pystack never sent and 1,000 ACKs older than its window
with a raw socket, about 1,000 a second, and counts what pystack sends on that connection meanwhile
and for a second after each storm. Afterwards the echo must still answer. Every socket has a
timeout and every loop a bound.
"""

from __future__ import annotations

import itertools
import os
import sys
from collections.abc import Iterator

import pytest

from pystack import netns
from pystack.host import HostOptions, KernelHost
from tests.helpers.kernel import KernelProgram

PYSTACK = "10.0.0.2"
STORM = 1000
_names = itertools.count()

KERNEL_INJECTOR = """
    import json, socket, struct, time

    DEVICE, PYSTACK, KERNEL, PORT, STORM = {device!r}, {pystack!r}, {kernel!r}, 7, {storm}
    capture = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(0x0800))
    capture.bind((DEVICE, 0x0800))
    capture.settimeout(0.05)

    def from_pystack(kernel_port):
        # every TCP segment pystack sent to our connection since the last call: (seq, ack, flags, length)
        seen = []
        while True:
            try:
                packet = capture.recv(70000)
            except socket.timeout:
                return seen
            if len(packet) < 40 or packet[9] != 6 or socket.inet_ntoa(packet[12:16]) != PYSTACK:
                continue
            header = (packet[0] & 15) * 4
            sport, dport, seq, ack, offset, flags = struct.unpack_from("!HHIIBB", packet, header)
            if sport == PORT and dport == kernel_port:
                total = struct.unpack_from("!H", packet, 2)[0]
                seen.append((seq, ack, flags, total - header - (offset >> 4) * 4))

    def checksum(data):
        if len(data) % 2:
            data += b"\\0"
        total = sum(struct.unpack("!%dH" % (len(data) // 2), data))
        while total >> 16:
            total = (total & 0xFFFF) + (total >> 16)
        return ~total & 0xFFFF

    def segment(sport, seq, ack):
        header = struct.pack("!HHIIBBHHH", sport, PORT, seq, ack, 5 << 4, 0x10, 65535, 0, 0)
        pseudo = socket.inet_aton(KERNEL) + socket.inet_aton(PYSTACK) + struct.pack("!BBH", 0, 6, 20)
        return header[:16] + struct.pack("!H", checksum(pseudo + header)) + header[18:]

    echo = socket.create_connection((PYSTACK, PORT), timeout=10)
    kernel_port = echo.getsockname()[1]
    echo.sendall(b"ping")
    assert echo.recv(100) == b"ping"
    time.sleep(0.3)  # pystack's ACK of our ACK, if any, is out before the storms
    seen = from_pystack(kernel_port)
    pystack_seq = max(s[0] + s[3] for s in seen)  # pystack's SND.NXT
    kernel_seq = seen[-1][1]  # pystack's RCV.NXT (our SND.NXT)
    raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_TCP)
    result = {{"storms": []}}
    for name, ack in (("unsent", pystack_seq + 100000), ("old", pystack_seq - (1 << 30))):
        forged = segment(kernel_port, kernel_seq, ack & 0xFFFFFFFF)
        started = time.monotonic()
        for number in range(STORM):  # about 1,000 a second, in bursts of 10
            raw.sendto(forged, (PYSTACK, 0))
            if number % 10 == 9:
                time.sleep(0.01)
        duration = time.monotonic() - started
        time.sleep(1.0)  # what pystack sends late is counted too
        replies = from_pystack(kernel_port)
        result["storms"].append({{"name": name, "duration": duration + 1.0,
                                  "replies": len(replies),
                                  "data": sum(1 for r in replies if r[3])}})
    echo.sendall(b"still there")
    got = b""
    while len(got) < 11:
        got += echo.recv(100)
    result["echo_after"] = got.decode()
    echo.close()
    print(json.dumps(result), flush=True)
"""


@pytest.fixture
def host(kernel: None) -> Iterator[KernelHost]:
    """What ``pystack up --link tun --netns NAME --serve echo`` builds, in this process."""
    name = f"pystack-t{os.getpid()}-abuse{next(_names)}"
    started = KernelHost(HostOptions(netns=name, link="tun", serve="echo"))
    try:
        started.start()
        yield started
    finally:
        started.close()
    assert not netns.namespace_exists(name)


def test_bad_ack_storms_get_bounded_replies_and_echo_survives(host: KernelHost) -> None:
    assert host.namespace is not None and host.device is not None and host.stack is not None
    peer = host.options.peer
    program = KernelProgram(
        host.namespace,
        KERNEL_INJECTOR.format(device=host.device.name, pystack=PYSTACK, kernel=peer, storm=STORM),
    )
    result = program.result(60)
    print(f"\n[abuse] {result['storms']}", file=sys.stderr)  # pytest -s shows it
    settings = host.stack.config.tcp
    for storm in result["storms"]:
        # One reply per invalid_ack_interval on the connection (pystack's clock and the
        # program's differ a little: one more allowed), and never one per forged segment.
        bound = 1 + int(storm["duration"] / settings.invalid_ack_interval) + 1
        assert 1 <= storm["replies"] <= bound, storm
        assert storm["data"] == 0, storm
    assert result["echo_after"] == "still there"
    stack, thread = host.stack, host.thread
    assert thread is not None
    counters = thread.call(lambda: stack.statistics()["counters"])
    unsent = counters["tcp.unsent_acks_sent"] + counters["tcp.unsent_acks_suppressed"]
    challenge = counters["tcp.challenge_acks_sent"] + counters["tcp.challenge_acks_suppressed"]
    assert 0 < unsent <= STORM and 0 < challenge <= STORM, counters
    replies = sum(storm["replies"] for storm in result["storms"])
    assert counters["tcp.unsent_acks_sent"] + counters["tcp.challenge_acks_sent"] == replies
