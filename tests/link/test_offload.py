"""Segmentation and checksum offload, without a kernel: what the stack hands a link that can cut
TCP bursts itself, and how it treats frames whose checksum the kernel left uncomputed."""

from __future__ import annotations

import random

from pystack.link.base import LinkKind, OffloadedFrame, SegmentedFrame
from pystack.link.memory import MemoryLink
from pystack.sim.network import Simulation
from pystack.stack import Stack, StackConfig
from pystack.stats import DropReason
from pystack.wire.addresses import ip_from_str
from pystack.wire.checksum import fold, pseudo_header_sum
from pystack.wire.ipv4 import IPv4Packet
from pystack.wire.tcp import TCPSegment


class SegmentingLink:
    """A link that takes TSO bursts and cuts them into wire-sized segments, as the kernel does:
    each piece gets the headers, its own sequence number and a full checksum."""

    segmentation_limit = 65535

    def __init__(self, inner: MemoryLink) -> None:
        self.inner = inner
        self.bursts: list[SegmentedFrame] = []
        self.kind, self.mtu, self.statistics = inner.kind, inner.mtu, inner.statistics
        self.send, self.receive, self.fileno = inner.send, inner.receive, inner.fileno
        self.next_deadline, self.close = inner.next_deadline, inner.close

    def send_segmented(self, frame: SegmentedFrame, now: float) -> None:
        self.bursts.append(frame)
        packet = IPv4Packet.parse(frame.frame)
        burst = TCPSegment.parse(packet.payload, packet.src, packet.dst, verify_checksum=False)
        payload = burst.payload
        for start in range(0, len(payload), frame.segment_size):
            piece = payload[start : start + frame.segment_size]
            last = start + len(piece) == len(payload)
            flags = burst.flags if last else burst.flags & ~0x09  # FIN and PSH on the last only
            seq = (burst.seq + start) & 0xFFFFFFFF
            segment = burst._replace(seq=seq, flags=flags, payload=piece)
            wire = packet._replace(payload=segment.build(packet.src, packet.dst))
            self.inner.send(wire.build(), now)


def _pair(segmenting: bool) -> tuple[Simulation, Stack, Stack]:
    simulation = Simulation()
    plain, right = MemoryLink.pair(kind=LinkKind.IP, capacity=100_000)
    left: MemoryLink | SegmentingLink = SegmentingLink(plain) if segmenting else plain
    sender = simulation.add(
        Stack(StackConfig(address="10.0.0.1/24"), left, simulation.clock, random.Random(1))
    )
    receiver = simulation.add(
        Stack(StackConfig(address="10.0.0.2/24"), right, simulation.clock, random.Random(2))
    )
    return simulation, sender, receiver


def _transfer(simulation: Simulation, sender: Stack, receiver: Stack, data: bytes) -> bytes:
    listener = receiver.tcp.listen(80)
    client = sender.tcp.connect(ip_from_str("10.0.0.2"), 80, simulation.now)
    assert simulation.run_until(lambda: listener.pending > 0, 5)
    server = listener.accept()
    assert server is not None
    sent, got = 0, bytearray()
    for _ in range(100_000):
        if sent < len(data):
            sent += client.send(data[sent : sent + 65536], simulation.now)
        got += server.receive(1 << 20)
        if len(got) == len(data):
            break
        if not simulation.settle():
            simulation.step(simulation.now + 1.0)
    return bytes(got)


def test_tcp_hands_a_segmenting_link_bursts_of_whole_mss_pieces() -> None:
    simulation, sender, receiver = _pair(segmenting=True)
    data = random.Random(3).randbytes(2_000_000)
    assert _transfer(simulation, sender, receiver, data) == data
    bursts: list[SegmentedFrame] = sender.link.bursts  # type: ignore[attr-defined]
    assert bursts, "no TSO burst was handed to the link"
    assert all(b.segment_size == 1448 for b in bursts)  # MSS 1460 minus 12 bytes of timestamps
    assert max(len(b.frame) for b in bursts) > 60_000
    assert all(len(b.frame) <= 65535 for b in bursts)
    first = IPv4Packet.parse(bursts[0].frame)
    assert bursts[0].checksum_start == first.header_length and bursts[0].checksum_offset == 16
    # The checksum field holds the pseudo-header sum, to be completed per piece by the link.
    field = int.from_bytes(first.payload[16:18], "big")
    assert field == fold(pseudo_header_sum(first.src, first.dst, 6, len(first.payload)))
    assert sender.statistics()["counters"]["ipv4.segmentation_offloaded"] == len(bursts)


def test_without_a_segmenting_link_no_burst_exceeds_the_mss() -> None:
    simulation, sender, receiver = _pair(segmenting=False)
    sizes: list[int] = []
    receiver.set_trace(
        lambda line: (
            sizes.append(int(line.rsplit("length ", 1)[1].split()[0]))
            if "length" in line and "< IP" in line
            else None
        )
    )
    data = bytes(300_000)
    assert _transfer(simulation, sender, receiver, data) == data
    assert max(sizes) <= 1448
    assert "ipv4.segmentation_offloaded" not in sender.statistics()["counters"]


def _segment_with_bad_checksum() -> bytes:
    segment = TCPSegment(9000, 80, 1, 0, 0x02, 65535).build(
        ip_from_str("10.0.0.1"), ip_from_str("10.0.0.2")
    )
    broken = segment[:16] + b"\x00\x00" + segment[18:]
    return IPv4Packet(ip_from_str("10.0.0.1"), ip_from_str("10.0.0.2"), 6, broken).build()


def test_offloaded_frame_skips_transport_checksum_verification() -> None:
    _, _, receiver = _pair(segmenting=False)
    receiver.tcp.listen(80)
    receiver.ip.process_frame(OffloadedFrame(_segment_with_bad_checksum()), 0.0)
    counters = receiver.statistics()["counters"]
    assert counters["tcp.passive_opens"] == 1
    assert counters["ipv4.offloaded_frames_received"] == 1


def test_plain_frame_with_the_same_bad_checksum_is_dropped() -> None:
    _, _, receiver = _pair(segmenting=False)
    receiver.tcp.listen(80)
    receiver.ip.process_frame(_segment_with_bad_checksum(), 0.0)
    assert receiver.counters.drops[DropReason.TCP_BAD_CHECKSUM] == 1
    assert "tcp.passive_opens" not in receiver.statistics()["counters"]
