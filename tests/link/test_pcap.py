"""PcapWriter and PcapLink: classic libpcap files that scapy reads back exactly."""

from __future__ import annotations

import io
import struct
import time
from pathlib import Path

import pytest
from scapy.layers.inet import ICMP, IP
from scapy.layers.l2 import Ether
from scapy.utils import PcapReader, rdpcap

from pystack.link.base import LinkKind
from pystack.link.memory import MemoryLink
from pystack.link.pcap import LINKTYPE_ETHERNET, LINKTYPE_RAW, PcapLink, PcapWriter

ICMP_PACKET = bytes(IP(src="10.0.0.2", dst="10.0.0.1") / ICMP(id=7, seq=1) / b"hello")
ETHERNET_FRAME = bytes(Ether(src="02:00:00:00:00:02", dst="02:00:00:00:00:01") / ICMP_PACKET)


def linktype_of(path: Path) -> int:
    with PcapReader(str(path)) as reader:
        return int(reader.linktype)


def test_pcap_writer_global_header_is_classic_libpcap(tmp_path: Path) -> None:
    path = tmp_path / "empty.pcap"
    PcapWriter(path, LINKTYPE_RAW).close()
    magic, major, minor, zone, sigfigs, snaplen, linktype = struct.unpack(
        "<IHHiIII", path.read_bytes()
    )
    assert (magic, major, minor, zone, sigfigs) == (0xA1B2C3D4, 2, 4, 0, 0)
    assert snaplen >= 65535
    assert linktype == 101


def test_pcap_writer_raw_frames_read_back_by_scapy(tmp_path: Path) -> None:
    path = tmp_path / "raw.pcap"
    with PcapWriter(path, LINKTYPE_RAW) as writer:
        writer.write(ICMP_PACKET, 1000.25)
        writer.write(ICMP_PACKET + b"!", 1001.5)
    packets = rdpcap(str(path))
    assert [bytes(p) for p in packets] == [ICMP_PACKET, ICMP_PACKET + b"!"]
    assert packets[0].haslayer(ICMP)
    assert packets[0][IP].src == "10.0.0.2"
    assert [float(p.time) for p in packets] == pytest.approx([1000.25, 1001.5], abs=1e-6)
    assert linktype_of(path) == LINKTYPE_RAW


def test_pcap_writer_ethernet_frames_read_back_by_scapy(tmp_path: Path) -> None:
    path = tmp_path / "ether.pcap"
    with PcapWriter(path, LINKTYPE_ETHERNET) as writer:
        writer.write(ETHERNET_FRAME, 5.0)
    packets = rdpcap(str(path))
    assert bytes(packets[0]) == ETHERNET_FRAME
    assert packets[0][Ether].src == "02:00:00:00:00:02"
    assert linktype_of(path) == LINKTYPE_ETHERNET


def test_pcap_writer_timestamp_microseconds_round_and_carry() -> None:
    buffer = io.BytesIO()
    writer = PcapWriter(buffer, LINKTYPE_RAW)
    writer.write(b"a", 12.0000004)
    writer.write(b"b", 12.9999996)  # rounds up to the next second, not 1_000_000 us
    writer.close()
    data = buffer.getvalue()
    first = struct.unpack_from("<IIII", data, 24)
    second = struct.unpack_from("<IIII", data, 24 + 16 + 1)
    assert first == (12, 0, 1, 1)
    assert second == (13, 0, 1, 1)


def test_pcap_writer_to_open_file_does_not_close_it() -> None:
    buffer = io.BytesIO()
    writer = PcapWriter(buffer, LINKTYPE_RAW)
    writer.write(b"x", 1.0)
    writer.close()
    writer.close()
    assert not buffer.closed
    assert len(buffer.getvalue()) == 24 + 16 + 1


def test_pcap_writer_rejects_small_snaplen() -> None:
    with pytest.raises(ValueError):
        PcapWriter(io.BytesIO(), LINKTYPE_RAW, snaplen=1500)


def test_pcap_link_records_both_directions_with_origin_timestamps(tmp_path: Path) -> None:
    path = tmp_path / "link.pcap"
    ours, theirs = MemoryLink.pair()
    link = PcapLink(ours, path, time_origin=1_700_000_000.0)
    link.send(ICMP_PACKET, 1.5)
    assert theirs.receive(1.5) == [ICMP_PACKET]
    theirs.send(b"E" + ICMP_PACKET[1:], 2.25)
    assert link.receive(2.25) == [b"E" + ICMP_PACKET[1:]]
    assert link.fileno() == ours.fileno()
    assert link.statistics is ours.statistics
    link.close()
    theirs.close()
    packets = rdpcap(str(path))
    assert [bytes(p) for p in packets] == [ICMP_PACKET, b"E" + ICMP_PACKET[1:]]
    assert [float(p.time) for p in packets] == pytest.approx(
        [1_700_000_001.5, 1_700_000_002.25], abs=1e-6
    )
    assert ours.fileno() is None  # closing the tap closed the inner link


def test_pcap_link_uses_ethernet_linktype_for_ethernet_links(tmp_path: Path) -> None:
    path = tmp_path / "tap.pcap"
    ours, theirs = MemoryLink.pair(kind=LinkKind.ETHERNET)
    link = PcapLink(ours, path, time_origin=0.0)
    assert link.kind is LinkKind.ETHERNET
    link.send(ETHERNET_FRAME, 0.0)
    link.close()
    theirs.close()
    assert linktype_of(path) == LINKTYPE_ETHERNET
    assert bytes(rdpcap(str(path))[0]) == ETHERNET_FRAME


def test_pcap_link_without_origin_stamps_wall_clock(tmp_path: Path) -> None:
    path = tmp_path / "wall.pcap"
    ours, theirs = MemoryLink.pair()
    link = PcapLink(ours, path)
    before = time.time()
    link.send(b"E" + bytes(19), 50.0)
    link.send(b"E" + bytes(19), 50.5)
    link.close()
    theirs.close()
    stamps = [float(p.time) for p in rdpcap(str(path))]
    assert before - 1.0 <= stamps[0] <= time.time() + 1.0
    assert stamps[1] - stamps[0] == pytest.approx(0.5, abs=1e-5)


def test_pcap_link_rejects_writer_with_other_linktype() -> None:
    ours, theirs = MemoryLink.pair(kind=LinkKind.IP)
    try:
        with pytest.raises(ValueError):
            PcapLink(ours, PcapWriter(io.BytesIO(), LINKTYPE_ETHERNET))
    finally:
        ours.close()
        theirs.close()
