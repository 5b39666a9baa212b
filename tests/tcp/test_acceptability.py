"""The first check of RFC 9293 3.10.7.4 on its own: ``check_sequence`` only answers.

RFC 9293's table: SEG.LEN = 0 with RCV.WND = 0 only at RCV.NXT; SEG.LEN = 0 with RCV.WND > 0
when RCV.NXT =< SEG.SEQ < RCV.NXT + RCV.WND; SEG.LEN > 0 with RCV.WND = 0 never; SEG.LEN > 0
with RCV.WND > 0 when its first or its last octet is in the window. PAWS (RFC 7323 5.3) comes
first and spares RST segments.
"""

from __future__ import annotations

import pytest

from pystack.tcp.input import Acceptability, check_sequence
from pystack.wire.tcp import ACK, FIN, RST, SYN, TCPSegment, timestamp_option

ACCEPTABLE, PAWS, OUT = Acceptability.ACCEPTABLE, Acceptability.PAWS, Acceptability.OUT_OF_WINDOW
RCV_NXT = 1000
WRAP = (1 << 32) - 10  # RCV.NXT ten octets before the wrap


def segment(seq: int, length: int = 0, flags: int = ACK, tsval: int | None = None) -> TCPSegment:
    options = (timestamp_option(tsval, 0),) if tsval is not None else ()
    return TCPSegment(9000, 8080, seq, 1, flags, 65535, b"x" * length, options)


@pytest.mark.parametrize(
    ("seg", "rcv_nxt", "window", "paws_recent", "verdict"),
    [
        # SEG.LEN = 0, window open
        (segment(1000), RCV_NXT, 100, None, ACCEPTABLE),
        (segment(1099), RCV_NXT, 100, None, ACCEPTABLE),
        (segment(1100), RCV_NXT, 100, None, OUT),  # right of the window
        (segment(999), RCV_NXT, 100, None, OUT),  # left of the window (an old duplicate)
        # SEG.LEN = 0, zero window: only exactly at RCV.NXT
        (segment(1000), RCV_NXT, 0, None, ACCEPTABLE),
        (segment(1001), RCV_NXT, 0, None, OUT),
        (segment(999), RCV_NXT, 0, None, OUT),
        # SEG.LEN > 0, window open: first or last octet inside
        (segment(1000, 10), RCV_NXT, 100, None, ACCEPTABLE),
        (segment(990, 20), RCV_NXT, 100, None, ACCEPTABLE),  # overlaps the left edge
        (segment(1090, 20), RCV_NXT, 100, None, ACCEPTABLE),  # overlaps the right edge
        (segment(980, 20), RCV_NXT, 100, None, OUT),  # wholly left (last octet 999)
        (segment(1100, 1), RCV_NXT, 100, None, OUT),  # wholly right
        (segment(999, 0, FIN), RCV_NXT, 100, None, OUT),  # a FIN counts as one octet
        (segment(999, 1, FIN), RCV_NXT, 100, None, ACCEPTABLE),  # its FIN octet is 1000
        # SEG.LEN > 0, zero window: never, not even at RCV.NXT
        (segment(1000, 1), RCV_NXT, 0, None, OUT),
        (segment(1000, 0, SYN), RCV_NXT, 0, None, OUT),
        # across the wrap
        (segment(WRAP + 5, 10), WRAP, 100, None, ACCEPTABLE),
        (segment(89), WRAP, 100, None, ACCEPTABLE),  # 89 is RCV.NXT + 99 modulo 2**32
        (segment(90), WRAP, 100, None, OUT),
        (segment(WRAP - 1), WRAP, 100, None, OUT),
        # PAWS: an older timestamp fails first, wherever the segment lies
        (segment(1000, 10, tsval=99), RCV_NXT, 100, 100, PAWS),
        (segment(5000, 10, tsval=99), RCV_NXT, 100, 100, PAWS),
        (segment(1000, 10, tsval=100), RCV_NXT, 100, 100, ACCEPTABLE),  # equal is not older
        (segment(1000, 10, tsval=3), RCV_NXT, 100, (1 << 32) - 5, ACCEPTABLE),  # TS wrapped
        (segment(1000, 10, tsval=99), RCV_NXT, 100, None, ACCEPTABLE),  # PAWS does not apply
        (segment(1000, 10), RCV_NXT, 100, 100, ACCEPTABLE),  # no timestamp on the segment
        (segment(1000, 0, RST | ACK, tsval=99), RCV_NXT, 100, 100, ACCEPTABLE),  # RST spared
        (segment(5000, 0, RST, tsval=99), RCV_NXT, 100, 100, OUT),  # ... but not the window
    ],
)
def test_check_sequence(
    seg: TCPSegment, rcv_nxt: int, window: int, paws_recent: int | None, verdict: Acceptability
) -> None:
    assert check_sequence(seg, rcv_nxt, window, paws_recent) is verdict
