"""One UDP endpoint (an lwIP UDP PCB): local address and port, optional peer, receive queue.

The socket layer (``usocket``) sits directly on this: ``send_to``/``send`` go out at once (UDP
has nothing to flush), ``receive`` pops or peeks the oldest queued datagram with its source,
``pending`` is what select/poll look at. The queue is bounded (4 by default, as modlwip) and a
datagram that finds it full is dropped (tail drop: the newest is lost, the old ones stay).

``connect`` sets the default destination and filters input to that peer (lwIP ``udp_connect``);
``(0, 0)`` undoes it. Only a connected endpoint takes ICMP errors: ``error`` holds the pending
one (ECONNREFUSED for port unreachable) until ``take_error`` hands it over once.
Multicast membership is counted per endpoint like lwIP's (two joins need two leaves); unlike
lwIP, and like Linux, ``close`` leaves every group the endpoint still holds.
Must not: block, read a clock, or build packets (the layer does).
Entry points: ``UDPEndpoint`` (made by ``UDPLayer.open``).
"""

from __future__ import annotations

import errno
from collections import deque
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pystack.udp.layer import UDPLayer

Address = tuple[int, int]  # (IPv4 address as int, port)
Datagram = tuple[bytes, Address]  # payload, source


class UDPEndpoint:
    __slots__ = (
        "_layer",
        "_queue",
        "address",
        "broadcast",
        "closed",
        "error",
        "groups",
        "multicast_ttl",
        "port",
        "queue_limit",
        "remote",
        "reuse",
        "ttl",
    )

    def __init__(
        self, layer: UDPLayer, address: int, port: int, reuse: bool, queue_limit: int
    ) -> None:
        self._layer = layer
        self.address = address  # 0: any of our addresses
        self.port = port
        self.reuse = reuse  # SO_REUSEADDR: share the port with endpoints that also set it
        # SO_BROADCAST. Stored for the socket layer only: as lwIP without IP_SOF_BROADCAST,
        # sending to a broadcast address is allowed and broadcasts are received either way.
        self.broadcast = False
        self.ttl: int | None = None  # unicast and broadcast TTL; None: the stack's default
        self.multicast_ttl = layer.settings.multicast_ttl
        self.remote: Address | None = None  # set by connect
        self.error = 0  # pending errno from an ICMP error (connected endpoints only)
        self.closed = False
        self.queue_limit = queue_limit
        self.groups: dict[int, int] = {}  # group -> joins not yet left
        self._queue: deque[Datagram] = deque()

    # -- addresses ---------------------------------------------------------------------------
    @property
    def local(self) -> Address:
        return (self.address, self.port)

    def connect(self, address: Address) -> None:
        """Default destination and input filter; ``(0, 0)`` disconnects."""
        self._check_open()
        host, port = address
        _check_address(host, port)
        self.remote = None if (host, port) == (0, 0) else (host, port)
        self.error = 0

    # -- output ------------------------------------------------------------------------------
    def send_to(self, data: bytes, address: Address, now: float) -> int:
        """Send one datagram; returns its length (all of it is sent).

        Raises OSError(ENOMEM) for more than one IPv4 packet carries (65507 bytes; lwIP's
        pbuf_alloc fails), OSError(EHOSTUNREACH) when there is no route, OSError(EBADF) once
        closed.
        """
        self._check_open()
        return self._layer.emit(self, data, address, now)

    def send(self, data: bytes, now: float) -> int:
        """Send to the connected peer; without one, OSError(EINVAL) (lwIP ERR_VAL)."""
        self._check_open()
        if self.remote is None:
            raise OSError(errno.EINVAL, "not connected")
        return self._layer.emit(self, data, self.remote, now)

    # -- input -------------------------------------------------------------------------------
    def deliver(self, payload: bytes, source: Address) -> bool:
        """Queue a datagram from the layer; False when the queue is full (tail drop)."""
        if len(self._queue) >= self.queue_limit:
            return False
        self._queue.append((payload, source))
        return True

    def receive(self, peek: bool = False) -> Datagram | None:
        """The oldest datagram and its source, or None; ``peek`` leaves it queued."""
        if self.closed or not self._queue:
            return None
        return self._queue[0] if peek else self._queue.popleft()

    @property
    def pending(self) -> int:
        """Datagrams queued."""
        return len(self._queue)

    def set_queue_limit(self, limit: int) -> None:
        """Datagrams held at most; lowering it keeps what is queued (arrivals wait for room)."""
        if limit < 1:
            raise ValueError("queue limit must be at least 1")
        self.queue_limit = limit

    def take_error(self) -> int:
        """The pending errno (0 for none), cleared: the socket layer raises it once."""
        error, self.error = self.error, 0
        return error

    # -- multicast ---------------------------------------------------------------------------
    def join(self, group: int, interface: int, now: float) -> None:
        """IP_ADD_MEMBERSHIP: ``interface`` is 0 or our address; OSError(EINVAL) otherwise."""
        self._check_open()
        self._layer.igmp.join(group, interface, now)
        self.groups[group] = self.groups.get(group, 0) + 1

    def leave(self, group: int, interface: int, now: float) -> None:
        """IP_DROP_MEMBERSHIP; OSError(EINVAL) for a group this endpoint did not join."""
        self._check_open()
        if group not in self.groups:
            raise OSError(errno.EINVAL, "group not joined")
        self._layer.igmp.leave(group, interface, now)
        self.groups[group] -= 1
        if not self.groups[group]:
            del self.groups[group]

    # -- life --------------------------------------------------------------------------------
    def close(self, now: float | None = None) -> None:
        """Free the port and the queue, leave the groups. Twice is fine.

        ``now`` only times the IGMP leaves; without it the layer's last known time is used.
        """
        if self.closed:
            return
        when = self._layer.last_now if now is None else now
        for group, count in self.groups.items():
            for _ in range(count):
                self._layer.igmp.leave(group, 0, when)
        self.groups.clear()
        self._queue.clear()
        self.closed = True
        self._layer.remove(self)

    def _check_open(self) -> None:
        if self.closed:
            raise OSError(errno.EBADF, "endpoint closed")

    def __repr__(self) -> str:
        peer = f" -> {self.remote}" if self.remote is not None else ""
        return f"<UDPEndpoint {self.local}{peer} pending {self.pending}>"


def _check_address(host: int, port: int) -> None:
    if not 0 <= host <= 0xFFFFFFFF or not 0 <= port <= 0xFFFF:
        raise ValueError(f"bad address ({host}, {port})")
