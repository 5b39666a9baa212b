"""The raw-TUN ceiling for TCP: the least a Python TCP endpoint on a TUN device must do.

Written from scratch for ``pystack bench``; it is not a stack. One connection at a time, no state
machine: it answers a SYN (MSS and window scale only, no SACK, no timestamps), and then by the
destination port either discards the data (9), echoes it (7) or sends ``size`` bytes and a FIN
(19). Per segment it does what any TCP endpoint must: parse the IP and TCP headers, verify the
checksum, check the sequence number, ACK (every second segment and the last of a read burst),
and for sending build headers and checksums and follow the peer's window. Loss is repaired by
the crudest rule that still finishes (go back to the first unacknowledged byte after 200 ms
without progress), enough because nothing is lost between two processes on one TUN device.

With ``offload`` the device carries a virtio-net header (the TUN offloads pystack uses): frames
the kernel marks NEEDS_CSUM are not verified (they never crossed a wire), the kernel may hand over
64 KiB TCP super-frames (GRO/GSO), and data is written as 64 KiB super-frames the kernel cuts
into MSS-sized segments and checksums (TSO): the per-segment Python work becomes per-64-KiB work.
"""

from __future__ import annotations

import os
import select
import struct
import time

from pystack.wire.checksum import fold, internet_checksum, verify

_ip = struct.Struct("!BBHHHBBHII")
_tcp = struct.Struct("!HHIIHHHH")
# virtio-net header (linux/virtio_net.h): flags, gso_type, hdr_len, gso_size, csum_start, offset
_vnet = struct.Struct("=BBHHHH")
_PLAIN_VNET = _vnet.pack(0, 0, 0, 0, 0, 0)
NEEDS_CSUM, GSO_TCPV4 = 0x01, 0x01
SYN, ACK, FIN, PSH = 0x02, 0x10, 0x01, 0x08
DISCARD, ECHO, CHARGEN = 9, 7, 19
WINDOW_SHIFT = 7  # our advertised window: 65535 << 7 (8 MiB), so the window never limits us
SUPER_FRAME = 65535 - 40  # largest TCP payload of one offloaded IPv4 frame
REWIND_AFTER = 0.2  # seconds without ACK progress before sending again from snd_una
MASK = 0xFFFFFFFF


def _pseudo(src: int, dst: int, length: int) -> int:
    return (src >> 16) + (src & 0xFFFF) + (dst >> 16) + (dst & 0xFFFF) + 6 + length


class RawEndpoint:
    """Everything one connection needs: a few integers, no queues, no timers but one."""

    def __init__(self, fd: int, mtu: int, offload: bool, size: int) -> None:
        self.fd = fd
        self.mtu = mtu
        self.offload = offload
        self.size = size  # bytes the chargen port sends per connection
        self.local = self.remote = 0
        self.lport = self.rport = 0
        self.rcv_nxt = self.snd_una = self.snd_nxt = 0
        self.mss = 536
        self.peer_shift = 0  # the peer's window scale
        self.peer_window = 0
        self.send_end = 0  # sequence number after the last chargen byte (0: not sending)
        self.fin_sent = False
        self.progress = 0.0  # when snd_una last advanced
        self.block = bytes(SUPER_FRAME)

    def segment(self, flags: int, payload: bytes | memoryview = b"", options: bytes = b"") -> bytes:
        """One complete IPv4+TCP packet (full checksums), with a plain vnet header if offloaded."""
        return self._packet(self.snd_nxt, flags, payload, options, partial=False)

    def _packet(
        self, seq: int, flags: int, payload: bytes | memoryview, options: bytes, partial: bool
    ) -> bytes:
        offset = (20 + len(options)) // 4 << 12
        # always 65535: unscaled in the SYN-ACK, 65535 << WINDOW_SHIFT after it (when scaled)
        header = _tcp.pack(self.lport, self.rport, seq, self.rcv_nxt, offset | flags, 65535, 0, 0)
        header += options
        length = len(header) + len(payload)
        pseudo = _pseudo(self.local, self.remote, length)
        if partial:
            # CHECKSUM_PARTIAL: the field holds the pseudo-header sum, the kernel adds the rest
            checksum = fold(pseudo)
        else:
            checksum = internet_checksum(header, pseudo + _sum_payload(payload))
        tcp = header[:16] + checksum.to_bytes(2, "big") + header[18:]
        ip = _ip.pack(0x45, 0, 20 + length, 0, 0x4000, 64, 6, 0, self.local, self.remote)
        ip = ip[:10] + internet_checksum(ip).to_bytes(2, "big") + ip[12:]
        return ip + tcp + bytes(payload)

    def write(self, packet: bytes) -> None:
        os.write(self.fd, _PLAIN_VNET + packet if self.offload else packet)

    def accept(self, packet: bytes, segment: memoryview) -> None:
        """A SYN: take the peer's MSS and window scale, answer SYN-ACK, reset the counters."""
        self.remote, self.local = _ip.unpack_from(packet)[8:10]
        self.rport, self.lport, seq = _tcp.unpack_from(segment)[:3]
        self.mss, self.peer_shift, scaled = self.mtu - 40, 0, False
        options = segment[20 : (segment[12] >> 4) * 4]
        i = 0
        while i < len(options):  # MSS (2) and window scale (3); others skipped
            kind = options[i]
            if kind == 0:
                break
            if kind == 1:
                i += 1
                continue
            if i + 1 >= len(options) or options[i + 1] < 2:
                break
            if kind == 2 and options[i + 1] == 4:
                self.mss = min(self.mss, int.from_bytes(options[i + 2 : i + 4], "big"))
            elif kind == 3 and options[i + 1] == 3:
                self.peer_shift, scaled = min(options[i + 2], 14), True
            i += options[i + 1]
        self.rcv_nxt, self.snd_nxt = (seq + 1) & MASK, 1000
        self.snd_una, self.send_end, self.fin_sent = 1001, 0, False
        ours = self.mss.to_bytes(2, "big")
        # MSS, and window scale (NOP-padded) only when the peer offered it (RFC 7323 2.2)
        scale = b"\x01\x03\x03" + bytes([WINDOW_SHIFT]) if scaled else b""
        reply_options = b"\x02\x04" + ours + scale
        self.write(self.segment(SYN | ACK, options=reply_options))
        self.snd_nxt = 1001
        self.progress = time.monotonic()
        if self.lport == CHARGEN:
            self.send_end = (1001 + self.size) & MASK

    def acknowledged(self, ack: int, window: int) -> None:
        if 0 < (ack - self.snd_una) & MASK <= (self.snd_nxt - self.snd_una) & MASK:
            self.snd_una = ack
            self.progress = time.monotonic()
        self.peer_window = window << self.peer_shift

    def pump(self) -> None:
        """Chargen: send what the peer's window allows, then the FIN once all is acknowledged."""
        if not self.send_end:
            return
        if time.monotonic() - self.progress > REWIND_AFTER and self.snd_nxt != self.snd_una:
            self.snd_nxt = self.snd_una  # go back N: the crudest repair, see the docstring
            self.fin_sent = False
            self.progress = time.monotonic()
        for _ in range(64):  # bounded burst: the ACKs are read between bursts
            in_flight = (self.snd_nxt - self.snd_una) & MASK
            left = (self.send_end - self.snd_nxt) & MASK
            room = self.peer_window - in_flight
            if left == 0:
                if self.snd_una == self.send_end and not self.fin_sent:
                    self.write(self.segment(ACK | FIN))
                    self.snd_nxt = (self.snd_nxt + 1) & MASK
                    self.fin_sent = True
                return
            if room < min(left, self.mss):
                return
            if self.offload and left > self.mss and room > self.mss:
                # TSO: one super-frame of whole segments; the kernel cuts and checksums it
                length = min(left, room, SUPER_FRAME // self.mss * self.mss)
                packet = self._packet(self.snd_nxt, ACK, self.block[:length], b"", partial=True)
                header = _vnet.pack(NEEDS_CSUM, GSO_TCPV4, 40, self.mss, 20, 16)
                os.write(self.fd, header + packet)
            else:
                length = min(left, room, self.mss)
                self.write(self.segment(ACK | PSH, memoryview(self.block)[:length]))
            self.snd_nxt = (self.snd_nxt + length) & MASK


def _sum_payload(payload: bytes | memoryview) -> int:
    # even-length header: the payload's words line up, so its sum adds to the header's
    value = int.from_bytes(payload, "big")
    return value << 8 if len(payload) & 1 else value


def serve(fd: int, mtu: int, offload: bool, size: int, stop_after: float) -> None:
    """Serve connections on the TUN descriptor ``fd`` until ``stop_after`` seconds pass."""
    end = time.monotonic() + stop_after
    endpoint = RawEndpoint(fd, mtu, offload, size)
    skip = _vnet.size if offload else 0
    unacked = 0
    while time.monotonic() < end:
        sending = endpoint.send_end and not endpoint.fin_sent
        if not select.select([fd], [], [], 0.01 if sending else 0.2)[0]:
            endpoint.pump()
            continue
        ack_due = False
        for _ in range(64):  # one read burst, then ACK once
            try:
                frame = os.read(fd, 65600)
            except BlockingIOError:
                break
            packet = memoryview(frame)[skip:]
            if len(packet) < 40 or packet[9] != 6:
                continue
            hlen = (packet[0] & 15) * 4
            segment = packet[hlen:]
            src, dst = _ip.unpack_from(packet)[8:10]
            kernel_marked = offload and frame[0] & NEEDS_CSUM
            if not kernel_marked and not verify(segment, _pseudo(src, dst, len(segment))):
                continue  # a wrong checksum: dropped, as every endpoint must
            _sport, _dport, seq, ack, offset_flags, window = _tcp.unpack_from(segment)[:6]
            flags = offset_flags & 0x3F
            if flags & SYN:
                endpoint.accept(bytes(packet), segment)
                unacked = 0
                continue
            if flags & ACK:
                endpoint.acknowledged(ack, window)
            data = segment[(offset_flags >> 12) * 4 :]
            if data and seq == endpoint.rcv_nxt:
                endpoint.rcv_nxt = (endpoint.rcv_nxt + len(data)) & MASK
                if endpoint.lport == ECHO:
                    endpoint.write(endpoint.segment(ACK | PSH, data))
                    endpoint.snd_nxt = (endpoint.snd_nxt + len(data)) & MASK
                    endpoint.snd_una = endpoint.snd_nxt  # echo replies are not repaired
                    continue
                unacked += 1
                ack_due = unacked >= 2
            elif data:
                ack_due = True  # out of order or repeated: tell the sender where we are
            if flags & FIN and seq + len(data) == endpoint.rcv_nxt:
                endpoint.rcv_nxt = (endpoint.rcv_nxt + 1) & MASK
                if endpoint.fin_sent or endpoint.send_end:
                    endpoint.write(endpoint.segment(ACK))
                else:
                    endpoint.write(endpoint.segment(ACK | FIN))
                    endpoint.snd_nxt = (endpoint.snd_nxt + 1) & MASK
                    endpoint.fin_sent = True
                endpoint.send_end = 0
                unacked, ack_due = 0, False
                continue
            if ack_due:
                endpoint.write(endpoint.segment(ACK))
                unacked, ack_due = 0, False
        if unacked:
            endpoint.write(endpoint.segment(ACK))
            unacked = 0
        endpoint.pump()
