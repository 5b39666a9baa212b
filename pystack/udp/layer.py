"""The UDP layer of a stack (RFC 768, RFC 1122 4.1): the port table, demultiplexing, output.

``UDPLayer`` registers with the IPv4 layer for protocol 17 and for ICMP errors about UDP, and
creates the IGMP host (``igmp``) that multicast membership needs. Endpoints live in a dict by
local port (a short list each: SO_REUSEADDR lets several share one).

Binding (lwIP ``udp_bind``): two endpoints clash on a port when their addresses overlap (equal,
or either is 0) unless both set ``reuse``. Port 0 picks a free ephemeral port from the injected
rng. Delivery:
- unicast goes to one endpoint: a connected one whose peer is the source beats one bound to the
  destination address, which beats one bound to 0; ties go to the newest (lwIP's list order).
  None: ICMP port unreachable and ``UDP_NO_LISTENER`` (``UDP_PEER_MISMATCH`` when only connected
  endpoints for other peers hold the port).
- broadcast and multicast go to every endpoint on the port bound to 0 or to that destination
  and not connected elsewhere, never with an ICMP error (RFC 1122 3.2.2). For multicast this is
  Linux's rule (IP_MULTICAST_ALL): once the host is a member, every such endpoint receives,
  joined or not. (lwIP gives a broadcast to one PCB only; Linux's copy-to-all is kept here.)
Checksums are verified (zero means none, RFC 768) and always generated. Broadcast and multicast
sent by us are not looped back to our own endpoints (as lwIP without IP_MULTICAST_LOOP).
Entry points: ``UDPLayer.open``, ``process_packet``, ``process_icmp_error``, ``run_timers``.
"""

from __future__ import annotations

import errno
import random
from typing import TYPE_CHECKING

from pystack.ip.igmp import IGMPHost
from pystack.ip.routes import LOOPBACK
from pystack.stats import DropReason, Statistics
from pystack.udp.endpoint import Address, UDPEndpoint
from pystack.udp.settings import UDPSettings
from pystack.wire import icmpv4
from pystack.wire.addresses import LIMITED_BROADCAST
from pystack.wire.errors import MalformedPacket
from pystack.wire.icmpv4 import ICMPv4Message
from pystack.wire.ipv4 import IPv4Packet
from pystack.wire.udp import HEADER_LENGTH, PROTO_UDP, UDPDatagram

if TYPE_CHECKING:
    from pystack.ip.interface import IPv4Layer

MAX_PAYLOAD = 65535 - 20 - HEADER_LENGTH  # what one IPv4 datagram can carry (65507)

# ICMP destination-unreachable codes to the errno a connected endpoint reports (as Linux)
_UNREACHABLE_ERRORS = {
    icmpv4.NET_UNREACHABLE: errno.ENETUNREACH,
    icmpv4.PROTOCOL_UNREACHABLE: errno.ECONNREFUSED,
    icmpv4.PORT_UNREACHABLE: errno.ECONNREFUSED,
}


class UDPLayer:
    def __init__(
        self, ip: IPv4Layer, statistics: Statistics, settings: UDPSettings, rng: random.Random
    ) -> None:
        self.ip = ip
        self.statistics = statistics
        self.settings = settings
        self.rng = rng
        self.igmp = IGMPHost(ip, statistics, settings.igmp, rng)
        self.last_now = 0.0  # the latest time seen (for ``UDPEndpoint.close`` without one)
        self._ports: dict[int, list[UDPEndpoint]] = {}
        self._count = 0
        ip.handlers[PROTO_UDP] = self.process_packet
        ip.icmp.error_listeners[PROTO_UDP] = self.process_icmp_error

    # -- the port table --------------------------------------------------------------------------
    def open(self, address: int = 0, port: int = 0, reuse: bool = False) -> UDPEndpoint:
        """Bind a new endpoint; OSError(EADDRINUSE) on a clash, OSError(ENOMEM) when full."""
        if not 0 <= address <= 0xFFFFFFFF or not 0 <= port <= 0xFFFF:
            raise ValueError(f"bad address ({address}, {port})")
        if self._count >= self.settings.max_endpoints:
            raise OSError(errno.ENOMEM, "too many UDP endpoints")
        if port == 0:
            port = self.ephemeral_port()
        else:
            for other in self._ports.get(port, ()):
                overlap = other.address == 0 or address == 0 or other.address == address
                if overlap and not (reuse and other.reuse):
                    raise OSError(errno.EADDRINUSE, "address in use")
        endpoint = UDPEndpoint(self, address, port, reuse, self.settings.receive_queue)
        self._ports.setdefault(port, []).append(endpoint)
        self._count += 1
        self.statistics.count("udp.endpoints_opened")
        return endpoint

    def ephemeral_port(self) -> int:
        """A port no endpoint holds, scanning the range from a random start."""
        low, high = self.settings.ephemeral_ports
        span = high - low + 1
        start = self.rng.randrange(span)
        for step in range(span):
            candidate = low + (start + step) % span
            if candidate not in self._ports:
                return candidate
        raise OSError(errno.EADDRINUSE, "no free ephemeral port")  # lwIP: ERR_USE

    def remove(self, endpoint: UDPEndpoint) -> None:
        """Called by ``UDPEndpoint.close``."""
        endpoints = self._ports.get(endpoint.port)
        if endpoints is None or endpoint not in endpoints:
            return
        endpoints.remove(endpoint)
        if not endpoints:
            del self._ports[endpoint.port]
        self._count -= 1

    def endpoints(self) -> list[UDPEndpoint]:
        return [endpoint for group in self._ports.values() for endpoint in group]

    # -- output ----------------------------------------------------------------------------------
    def emit(self, endpoint: UDPEndpoint, data: bytes, address: Address, now: float) -> int:
        """Build and route one datagram for ``endpoint``; returns its length, all of it sent.

        Data one IPv4 packet cannot carry (more than ``MAX_PAYLOAD`` bytes) is refused with
        OSError(ENOMEM) before anything else is checked, and nothing is sent: modlwip's
        ``lwip_raw_udp_send`` allocates the pbuf first, and lwIP's ``pbuf_alloc`` cannot
        allocate one that large on any MicroPython port (its 16-bit size check, or a heap,
        MEM_SIZE, of at most 64 KiB), nor could ``udp_sendto`` add the headers to one.
        """
        if len(data) > MAX_PAYLOAD:
            self.statistics.count("udp.send_too_large")
            raise OSError(errno.ENOMEM, "datagram larger than one IPv4 packet carries")
        host, port = address
        if not 0 <= host <= 0xFFFFFFFF or not 0 <= port <= 0xFFFF:
            raise ValueError(f"bad address ({host}, {port})")
        if port == 0:
            raise OSError(errno.EINVAL, "destination port 0")
        self.last_now = now
        route = self.ip.routes.lookup(host)
        if route is None:
            self.statistics.count("udp.send_no_route")
            raise OSError(errno.EHOSTUNREACH, "no route to host")
        bound = endpoint.address
        if bound == 0 or bound >> 28 == 0xE or bound == LIMITED_BROADCAST:
            source = self.ip.source_for(host)
        elif route.device == LOOPBACK or bound == self.ip.address:
            source = bound
        else:  # lwIP udp_sendto_if: a bound address the interface does not own is ERR_RTE
            self.statistics.count("udp.send_bad_source")
            raise OSError(errno.EHOSTUNREACH, "bound address is not the interface's")
        datagram = UDPDatagram(endpoint.port, port, bytes(data)).build(source, host)
        ttl = endpoint.multicast_ttl if host >> 28 == 0xE else endpoint.ttl
        self.statistics.count("udp.sent")
        self.ip.send(host, PROTO_UDP, datagram, now, source=source, ttl=ttl)
        return len(data)

    # -- input -----------------------------------------------------------------------------------
    def process_packet(self, packet: IPv4Packet, now: float, broadcast: bool) -> None:
        self.last_now = now
        try:
            datagram = UDPDatagram.parse(
                packet.payload, packet.src, packet.dst, verify_checksum=not self.ip.trusted_frame
            )
        except MalformedPacket as error:
            self.statistics.drop_malformed(error.reason, packet)
            return
        self.statistics.count("udp.received")
        source = (packet.src, datagram.src_port)
        if broadcast:
            self._deliver_to_all(packet, datagram, source)
            return
        endpoint, filtered = self._find(packet.dst, datagram.dst_port, source)
        if endpoint is None:
            reason = DropReason.UDP_PEER_MISMATCH if filtered else DropReason.UDP_NO_LISTENER
            self._drop(reason, packet)
            self.ip.icmp.send_error(
                packet, icmpv4.DESTINATION_UNREACHABLE, icmpv4.PORT_UNREACHABLE, now, False
            )
            return
        self._queue(endpoint, datagram.payload, source, packet)

    def _find(
        self, destination: int, port: int, source: Address
    ) -> tuple[UDPEndpoint | None, bool]:
        """The endpoint a unicast datagram goes to, and whether a connected one filtered it."""
        best: UDPEndpoint | None = None
        best_score = -1
        filtered = False
        for endpoint in reversed(self._ports.get(port, ())):  # newest first, as lwIP's list
            if endpoint.address not in (0, destination):
                continue
            score = 1 if endpoint.address else 0
            if endpoint.remote is not None:
                if endpoint.remote != source:
                    filtered = True
                    continue
                score += 2
            if score > best_score:
                best, best_score = endpoint, score
        return best, filtered

    def _deliver_to_all(self, packet: IPv4Packet, datagram: UDPDatagram, source: Address) -> None:
        destination = packet.dst
        matched = False
        for endpoint in self._ports.get(datagram.dst_port, ()):
            if endpoint.address not in (0, destination):
                continue
            if endpoint.remote is not None and endpoint.remote != source:
                continue
            matched = True
            self._queue(endpoint, datagram.payload, source, packet)
        if not matched:  # RFC 1122 3.2.2: no ICMP error about a broadcast or multicast
            self._drop(DropReason.UDP_NO_LISTENER, packet)

    def _queue(
        self, endpoint: UDPEndpoint, payload: bytes, source: Address, packet: IPv4Packet
    ) -> None:
        if endpoint.deliver(payload, source):
            self.statistics.count("udp.delivered")
        else:
            self._drop(DropReason.UDP_QUEUE_FULL, packet)

    def process_icmp_error(self, message: ICMPv4Message, quoted: IPv4Packet, now: float) -> None:
        """An ICMP error about a datagram we sent: only a connected endpoint takes it (Linux)."""
        header = quoted.payload
        if len(header) < HEADER_LENGTH:
            self.statistics.drop(DropReason.UDP_ICMP_NO_ENDPOINT)
            return
        local_port = int.from_bytes(header[0:2], "big")
        remote = (quoted.dst, int.from_bytes(header[2:4], "big"))
        for endpoint in self._ports.get(local_port, ()):
            if endpoint.remote == remote and endpoint.address in (0, quoted.src):
                code = _error_for(message)
                if code:
                    endpoint.error = code
                    self.statistics.count("udp.icmp_errors")
                else:
                    self.statistics.count("udp.icmp_errors_ignored")
                return
        self.statistics.drop(DropReason.UDP_ICMP_NO_ENDPOINT)

    # -- timers ----------------------------------------------------------------------------------
    def run_timers(self, now: float) -> None:
        self.last_now = now
        deadline = self.igmp.next_deadline()
        if deadline is not None and deadline <= now:
            self.igmp.run_timers(now)

    def next_deadline(self) -> float | None:
        return self.igmp.next_deadline()

    # -- drops -----------------------------------------------------------------------------------
    def _drop(self, reason: DropReason, packet: IPv4Packet) -> None:
        self.statistics.drop(reason, packet)


def _error_for(message: ICMPv4Message) -> int:
    """The errno an ICMP error gives a connected endpoint; 0 when it is not an error for it."""
    if message.type == icmpv4.DESTINATION_UNREACHABLE:
        if message.code == icmpv4.FRAGMENTATION_NEEDED:
            return 0  # UDP does not set DF: path MTU news, not a failure
        return _UNREACHABLE_ERRORS.get(message.code, errno.EHOSTUNREACH)
    if message.type == icmpv4.PARAMETER_PROBLEM:
        return errno.EPROTO
    return errno.EHOSTUNREACH  # time exceeded
