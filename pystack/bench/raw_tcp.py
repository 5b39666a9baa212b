"""The raw-TUN ceiling for TCP: the least a Python TCP endpoint on a TUN device must do.

One connection at a time, no options but MSS, no retransmission, no windows beyond a fixed one:
it answers the SYN, verifies the checksum of every segment, ACKs every second segment (and the
last of each read batch), and either discards the data (bulk) or echoes it (request/response).
It is what pystack's per-segment work is compared with by ``pystack bench``; it is not a stack.
"""

from __future__ import annotations

import os
import select
import struct
import time

from pystack.wire.checksum import internet_checksum, verify

_ip = struct.Struct("!BBHHHBBHII")
_tcp = struct.Struct("!HHIIHHHH")
SYN, ACK, FIN, PSH = 0x02, 0x10, 0x01, 0x08


def _segment(
    src: int,
    dst: int,
    sport: int,
    dport: int,
    seq: int,
    ack: int,
    flags: int,
    payload: bytes = b"",
    options: bytes = b"",
) -> bytes:
    offset = (20 + len(options)) // 4 << 12
    header = _tcp.pack(sport, dport, seq, ack, offset | flags, 65535, 0, 0) + options
    length = len(header) + len(payload)
    pseudo = (src >> 16) + (src & 0xFFFF) + (dst >> 16) + (dst & 0xFFFF) + 6 + length
    checksum = internet_checksum(header + payload, pseudo)
    tcp = header[:16] + checksum.to_bytes(2, "big") + header[18:] + payload
    ip = _ip.pack(0x45, 0, 20 + len(tcp), 0, 0x4000, 64, 6, 0, src, dst)
    ip = ip[:10] + internet_checksum(ip).to_bytes(2, "big") + ip[12:]
    return ip + tcp


def serve(fd: int, echo: bool, stop_after: float) -> None:
    """Serve connections on the TUN descriptor ``fd`` until ``stop_after`` seconds pass."""
    end = time.monotonic() + stop_after
    rcv_nxt = snd_nxt = 0
    unacked = 0
    while time.monotonic() < end:
        if not select.select([fd], [], [], 0.2)[0]:
            continue
        reply: bytes | None = None
        while True:
            try:
                packet = os.read(fd, 65600)
            except BlockingIOError:
                break
            if len(packet) < 40 or packet[9] != 6:
                continue
            hlen = (packet[0] & 15) * 4
            src, dst = _ip.unpack_from(packet)[8:10]
            segment = packet[hlen:]
            pseudo = (src >> 16) + (src & 0xFFFF) + (dst >> 16) + (dst & 0xFFFF) + 6 + len(segment)
            if not verify(segment, pseudo):
                continue
            sport, dport, seq, _ack, offset_flags = _tcp.unpack_from(segment)[:5]
            flags = offset_flags & 0x3F
            data = segment[(offset_flags >> 12) * 4 :]
            if flags & SYN:
                rcv_nxt, snd_nxt = (seq + 1) & 0xFFFFFFFF, 1000
                os.write(
                    fd,
                    _segment(
                        dst,
                        src,
                        dport,
                        sport,
                        snd_nxt,
                        rcv_nxt,
                        SYN | ACK,
                        options=b"\x02\x04\x05\xb4",
                    ),
                )
                snd_nxt += 1
                continue
            if data and seq == rcv_nxt:
                rcv_nxt = (rcv_nxt + len(data)) & 0xFFFFFFFF
                unacked += 1
                if echo:
                    os.write(
                        fd, _segment(dst, src, dport, sport, snd_nxt, rcv_nxt, ACK | PSH, data)
                    )
                    snd_nxt = (snd_nxt + len(data)) & 0xFFFFFFFF
                    unacked = 0
                    continue
            if flags & FIN:
                rcv_nxt = (rcv_nxt + 1) & 0xFFFFFFFF
                os.write(fd, _segment(dst, src, dport, sport, snd_nxt, rcv_nxt, ACK | FIN))
                snd_nxt += 1
                continue
            reply = _segment(dst, src, dport, sport, snd_nxt, rcv_nxt, ACK)
            if unacked >= 2:
                os.write(fd, reply)
                unacked, reply = 0, None
        if reply is not None or unacked:
            os.write(fd, reply or _segment(dst, src, dport, sport, snd_nxt, rcv_nxt, ACK))
            unacked = 0
