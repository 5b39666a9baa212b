"""The constants MicroPython's lwIP ``socket`` module exports, with their lwIP values.

These are the modlwip values (docs/usocket.md section 1), not Linux's: MSG_PEEK is 1,
MSG_DONTWAIT 2, SO_REUSEADDR 4, SO_BROADCAST 0x20, TCP_NODELAY 0x40. ``IPPROTO_SEC`` (100) is the
WiPy-era name the original usocket documentation gives (decision 1 of the spec).
"""

from __future__ import annotations

AF_INET = 2
AF_INET6 = 10
SOCK_STREAM = 1
SOCK_DGRAM = 2
SOCK_RAW = 3
SOL_SOCKET = 1
SO_REUSEADDR = 0x04
SO_BROADCAST = 0x20
IPPROTO_IP = 0
IPPROTO_TCP = 6
IPPROTO_SEC = 100
IP_ADD_MEMBERSHIP = 0x400
IP_DROP_MEMBERSHIP = 0x401
TCP_NODELAY = 0x40
MSG_PEEK = 0x01
MSG_DONTWAIT = 0x02
SO_CALLBACK = 20  # MicroPython's extension: a callable run when the socket has news
# pystack's extension (docs/usocket.md "Congestion control"): Linux's TCP_CONGESTION number with
# a bytes value names the algorithm. Not exported: ``import socket`` looks as on a board.
TCP_CONGESTION = 13

# select / uselect (extmod/modselect.c): the same values as Linux.
POLLIN = 0x0001
POLLOUT = 0x0004
POLLERR = 0x0008
POLLHUP = 0x0010
POLLNVAL = 0x0020  # returned, never exported

# py/stream.h ioctl requests used by poll and close.
MP_STREAM_POLL = 3
MP_STREAM_CLOSE = 4
MP_STREAM_GET_FILENO = 10

# The names ``import socket`` shows on an lwIP port (hasattr() probes depend on exactly these).
EXPORTED = (
    "AF_INET",
    "AF_INET6",
    "SOCK_STREAM",
    "SOCK_DGRAM",
    "SOCK_RAW",
    "SOL_SOCKET",
    "SO_REUSEADDR",
    "SO_BROADCAST",
    "IPPROTO_IP",
    "IPPROTO_TCP",
    "IPPROTO_SEC",
    "IP_ADD_MEMBERSHIP",
    "IP_DROP_MEMBERSHIP",
    "TCP_NODELAY",
    "MSG_PEEK",
    "MSG_DONTWAIT",
)
