"""Initial sequence numbers (RFC 6528) and SYN cookies, both from a keyed hash.

ISN = M + F(local address, local port, remote address, remote port, secret), where M is a clock
ticking every 4 microseconds and F a keyed BLAKE2s. The secret comes from the stack's injected
rng, so runs replay exactly. A SYN cookie (when the SYN queue is full) packs a coarse time
counter (5 bits, 64 s steps), an MSS index (3 bits) and a 24-bit keyed hash into the ISN.
The same ISN secret, with its own personalisation, draws the per-second budget of replies to
unacceptable segments (``keyed_value``): unpredictable to others, and still replayable.
Entry points: ``SequenceGenerator.isn``, ``SequenceGenerator.cookie``, ``SequenceGenerator.check_cookie``,
``SequenceGenerator.keyed_value``.
"""

from __future__ import annotations

import hashlib
import random
import struct

COOKIE_MSS = (536, 1220, 1360, 1400, 1440, 1452, 1460, 8960)
COOKIE_PERIOD = 64.0  # seconds per counter step
COOKIE_MAX_AGE = 2  # counter steps a cookie stays valid

_tuple = struct.Struct("!IHIHI")
_cookie_input = struct.Struct("!IHIHIQ")  # the 4-tuple, the peer's ISN, the whole time counter


class SequenceGenerator:
    def __init__(self, rng: random.Random) -> None:
        self._isn_key = rng.randbytes(16)
        self._cookie_key = rng.randbytes(16)

    def _hash(self, key: bytes, local: int, lport: int, remote: int, rport: int, extra: int) -> int:
        digest = hashlib.blake2s(
            _tuple.pack(local, lport, remote, rport, extra), key=key, digest_size=4
        ).digest()
        return int.from_bytes(digest, "big")

    def isn(self, local: int, lport: int, remote: int, rport: int, now: float) -> int:
        """RFC 6528 section 3."""
        clock = int(now * 250_000) & 0xFFFFFFFF
        return (clock + self._hash(self._isn_key, local, lport, remote, rport, 0)) & 0xFFFFFFFF

    def keyed_value(self, label: bytes, value: int) -> int:
        """32 unpredictable bits for ``value`` (a 64-bit unsigned number), separate for each
        ``label`` (at most 8 bytes): the same inputs always give the same bits."""
        digest = hashlib.blake2s(
            value.to_bytes(8, "big"), key=self._isn_key, person=label, digest_size=4
        ).digest()
        return int.from_bytes(digest, "big")

    def cookie(
        self, local: int, lport: int, remote: int, rport: int, peer_isn: int, mss: int, now: float
    ) -> int:
        count = int(now / COOKIE_PERIOD)
        index = max(i for i, value in enumerate(COOKIE_MSS) if value <= max(mss, COOKIE_MSS[0]))
        mac = self._cookie_mac(local, lport, remote, rport, peer_isn, count)
        return ((count & 0x1F) << 27 | index << 24 | mac) & 0xFFFFFFFF

    def _cookie_mac(
        self, local: int, lport: int, remote: int, rport: int, peer_isn: int, count: int
    ) -> int:
        """24 bits of keyed hash. It covers the whole counter, not just the 5 bits the cookie
        carries, so a cookie does not become valid again when those wrap (every 2048 s)."""
        data = _cookie_input.pack(local, lport, remote, rport, peer_isn, count)
        digest = hashlib.blake2s(data, key=self._cookie_key, digest_size=3).digest()
        return int.from_bytes(digest, "big")

    def check_cookie(
        self,
        cookie: int,
        local: int,
        lport: int,
        remote: int,
        rport: int,
        peer_isn: int,
        now: float,
    ) -> int | None:
        """The MSS the cookie encodes, or None if it is forged or too old."""
        count = int(now / COOKIE_PERIOD)
        age = (count - (cookie >> 27)) & 0x1F
        if age > COOKIE_MAX_AGE:
            return None
        if count - age < 0:
            # Made before the clock started: forged (on virtual time, which starts at 0, the
            # counter is small; a negative one would not even pack). Found by the fuzzer.
            return None
        index = cookie >> 24 & 0x7
        mac = self._cookie_mac(local, lport, remote, rport, peer_isn, count - age)
        if mac != cookie & 0xFFFFFF:
            return None
        return COOKIE_MSS[index]
