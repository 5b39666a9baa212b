"""Initial sequence numbers (RFC 6528) and SYN cookies, both from a keyed hash.

ISN = M + F(local address, local port, remote address, remote port, secret), where M is a clock
ticking every 4 microseconds and F a keyed BLAKE2s. The secret comes from the stack's injected
rng, so runs replay exactly. A SYN cookie (when the SYN queue is full) packs a coarse time
counter (5 bits, 64 s steps), an MSS index (3 bits) and a 24-bit keyed hash into the ISN.
Entry points: ``SequenceGenerator.isn``, ``SequenceGenerator.cookie``, ``SequenceGenerator.check_cookie``.
"""

from __future__ import annotations

import hashlib
import random
import struct

COOKIE_MSS = (536, 1220, 1360, 1400, 1440, 1452, 1460, 8960)
COOKIE_PERIOD = 64.0  # seconds per counter step
COOKIE_MAX_AGE = 2  # counter steps a cookie stays valid

_tuple = struct.Struct("!IHIHI")


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

    def cookie(
        self, local: int, lport: int, remote: int, rport: int, peer_isn: int, mss: int, now: float
    ) -> int:
        counter = int(now / COOKIE_PERIOD) & 0x1F
        index = max(i for i, value in enumerate(COOKIE_MSS) if value <= max(mss, COOKIE_MSS[0]))
        mac = self._hash(
            self._cookie_key, local, lport, remote, rport, (peer_isn << 5 | counter) & 0xFFFFFFFF
        )
        return (counter << 27 | index << 24 | (mac & 0xFFFFFF)) & 0xFFFFFFFF

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
        counter = cookie >> 27
        age = (int(now / COOKIE_PERIOD) - counter) & 0x1F
        if age > COOKIE_MAX_AGE:
            return None
        index = cookie >> 24 & 0x7
        mac = self._hash(
            self._cookie_key, local, lport, remote, rport, (peer_isn << 5 | counter) & 0xFFFFFFFF
        )
        if mac & 0xFFFFFF != cookie & 0xFFFFFF:
            return None
        return COOKIE_MSS[index]
