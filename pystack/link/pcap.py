"""Packet capture: a classic libpcap file writer and a link that records what passes through it.

Job: ``PcapWriter`` writes the classic libpcap format (magic 0xa1b2c3d4, version 2.4,
microsecond timestamps, little-endian), readable by tcpdump, tshark, Wireshark and scapy.
``PcapLink`` wraps any ``Link`` and records every frame the stack sends and every frame it
receives, with the link type following the inner link's kind (Ethernet for TAP, raw IPv4 for TUN).

Must not: parse or change frames, or alter the inner link's behaviour (it only observes).

Entry points: ``PcapWriter(path_or_file, linktype)``, ``PcapLink(inner, writer_or_path,
time_origin=None)``, ``LINKTYPE_ETHERNET``, ``LINKTYPE_RAW``, ``linktype_for(kind)``.
"""

from __future__ import annotations

import os
import struct
import time
from typing import BinaryIO

from pystack.link.base import Link, LinkKind, LinkWrapper

LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101  # raw IPv4/IPv6, no link header: what TUN carries
PCAP_MAGIC = 0xA1B2C3D4  # microsecond timestamps
DEFAULT_SNAPLEN = 262144  # tcpdump's default; larger than any 64 KiB frame

_GLOBAL_HEADER = struct.Struct("<IHHiIII")
_RECORD_HEADER = struct.Struct("<IIII")


def linktype_for(kind: LinkKind) -> int:
    """The pcap link type for frames of ``kind``."""
    return LINKTYPE_ETHERNET if kind is LinkKind.ETHERNET else LINKTYPE_RAW


class PcapWriter:
    """Write frames to a libpcap file (a path, which it owns, or an open binary file)."""

    __slots__ = ("_file", "_owns_file", "closed", "linktype", "snaplen")

    def __init__(
        self,
        target: str | os.PathLike[str] | BinaryIO,
        linktype: int,
        snaplen: int = DEFAULT_SNAPLEN,
    ) -> None:
        if snaplen < 65535:
            raise ValueError(f"snaplen must be at least 65535, got {snaplen}")
        self.linktype = linktype
        self.snaplen = snaplen
        self.closed = False
        if isinstance(target, (str, os.PathLike)):
            self._file: BinaryIO = open(target, "wb")  # noqa: SIM115 (closed in close())
            self._owns_file = True
        else:
            self._file = target
            self._owns_file = False
        self._file.write(_GLOBAL_HEADER.pack(PCAP_MAGIC, 2, 4, 0, 0, snaplen, linktype))

    def write(self, frame: bytes, timestamp: float) -> None:
        """Record ``frame`` at ``timestamp`` (seconds since the epoch; truncated to snaplen)."""
        if timestamp < 0.0:
            timestamp = 0.0
        seconds = int(timestamp)
        microseconds = round((timestamp - seconds) * 1_000_000)
        if microseconds >= 1_000_000:
            seconds += 1
            microseconds -= 1_000_000
        length = len(frame)
        captured = min(length, self.snaplen)
        write = self._file.write
        write(_RECORD_HEADER.pack(seconds, microseconds, captured, length))
        write(frame if captured == length else frame[:captured])

    def flush(self) -> None:
        self._file.flush()

    def close(self) -> None:
        """Flush, and close the file if this writer opened it (idempotent)."""
        if self.closed:
            return
        self.closed = True
        if self._owns_file:
            self._file.close()
        else:
            self._file.flush()

    def __enter__(self) -> PcapWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class PcapLink(LinkWrapper):
    """A transparent ``Link`` that records every frame sent and received through ``inner``.

    Timestamps are ``time_origin + now`` when ``time_origin`` is given (deterministic captures
    with a manual clock); otherwise ``now`` plus an offset fixed at the first frame so that
    captures taken with a monotonic clock show wall-clock time.
    """

    __slots__ = ("_offset", "_owns_writer", "_writer")

    def __init__(
        self,
        inner: Link,
        writer_or_path: PcapWriter | str | os.PathLike[str],
        time_origin: float | None = None,
    ) -> None:
        linktype = linktype_for(inner.kind)
        if isinstance(writer_or_path, PcapWriter):
            if writer_or_path.linktype != linktype:
                raise ValueError(
                    f"writer link type {writer_or_path.linktype} does not match the"
                    f" {inner.kind.value} link (want {linktype})"
                )
            self._writer = writer_or_path
            self._owns_writer = False
        else:
            self._writer = PcapWriter(writer_or_path, linktype)
            self._owns_writer = True
        super().__init__(inner)
        self._offset: float | None = time_origin

    @property
    def writer(self) -> PcapWriter:
        return self._writer

    def _timestamp(self, now: float) -> float:
        offset = self._offset
        if offset is None:
            offset = self._offset = time.time() - now
        return offset + now

    def send(self, frame: bytes, now: float) -> None:
        self._writer.write(frame, self._timestamp(now))
        self._inner.send(frame, now)

    def receive(self, now: float, limit: int = 64) -> list[bytes]:
        frames = self._inner.receive(now, limit)
        if frames:
            timestamp = self._timestamp(now)
            write = self._writer.write
            for frame in frames:
                write(frame, timestamp)
        return frames

    def next_deadline(self) -> float | None:
        return self._inner.next_deadline()

    def flush(self) -> None:
        self._writer.flush()

    def close(self) -> None:
        """Close the inner link, and the writer if this link made it (else flush it)."""
        try:
            self._inner.close()
        finally:
            if self._owns_writer:
                self._writer.close()
            else:
                self._writer.flush()
