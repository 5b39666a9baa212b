"""The IPv4 layer of one host: input validation, delivery, routing, fragmentation, ARP, loopback.

``IPv4Layer`` owns the interface address, the routing table, the ARP cache (Ethernet links only),
the reassembler and the ICMP handler. Input arrives as link frames (``process_frame``) or as
looped-back packets; output (``send``) is routed, fragmented to the MTU and resolved through ARP,
then queued as frames in ``outbox`` for the stack to hand to the link. Nothing here does I/O.

Acceptance (RFC 1122 3.2.1.3): our address, the limited and directed broadcasts, joined multicast
groups (224.0.0.1 always), and 127.0.0.0/8 only from the loopback. Martian sources (multicast,
broadcast, loopback or our own address arriving from the link) are dropped.
Upper protocols register ``handlers[protocol](packet, now, broadcast)``.

``configure(address, prefix_length, gateway)`` changes the address at run time (DHCP): routes,
ARP's own address and the directed broadcast follow. Address 0 is the *unconfigured* state:
only loopback, the limited broadcast and multicast are routed, ARP input is ignored, and a
unicast UDP datagram that reached us (our MAC on Ethernet) is accepted whatever its destination
address, delivered as if broadcast (no ICMP errors), because a DHCP server unicasts OFFER and
ACK to the offered ``yiaddr`` (RFC 2131 4.1; lwIP's ``IP_ACCEPT_LINK_LAYER_ADDRESSED_PORT``,
which also checks for port 68; here any endpoint bound to 0.0.0.0 on that port takes it).
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from pystack.ip.arp import ARPCache, ARPSettings
from pystack.ip.fragments import Reassembler, ReassemblySettings, fragment
from pystack.ip.icmp import ICMPHandler, ICMPSettings
from pystack.ip.routes import LINK, LOOPBACK, RoutingTable
from pystack.link.base import LinkKind, OffloadedFrame, SegmentedFrame
from pystack.stats import DropReason, Statistics
from pystack.wire import icmpv4
from pystack.wire.addresses import BROADCAST_MAC, LIMITED_BROADCAST, prefix_mask
from pystack.wire.arp import ARPPacket
from pystack.wire.errors import MalformedPacket
from pystack.wire.ethernet import ETHERTYPE_ARP, ETHERTYPE_IPV4
from pystack.wire.ipv4 import IPv4Packet

ALL_HOSTS = 0xE0000001  # 224.0.0.1
_PROTO_UDP = 17
LOOPBACK_ADDRESS = 0x7F000001
LOOPBACK_MTU = 65535
_ETHER_IPV4 = ETHERTYPE_IPV4.to_bytes(2, "big")
_ETHER_ARP = ETHERTYPE_ARP.to_bytes(2, "big")
_new_tuple = tuple.__new__  # builds a NamedTuple (IPv4Packet) from its fields

# handler(packet, now, broadcast): deliver one whole datagram to an upper protocol
ProtocolHandler = Callable[[IPv4Packet, float, bool], None]
# trace(direction, data, is_ethernet, note): direction "in" or "out"; ``data`` is the frame as
# queued or received (a ``SegmentedFrame`` for a TSO burst, an ``OffloadedFrame`` when the
# kernel left its checksum). Drops reach the trace through ``Statistics.drop``.
TraceHook = Callable[[str, bytes | SegmentedFrame, bool, str], None]


@dataclass(frozen=True, slots=True)
class InterfaceSettings:
    address: int
    prefix_length: int
    gateway: int | None
    mac: bytes
    mtu: int
    kind: LinkKind
    default_ttl: int = 64
    loopback_queue: int = 1024
    outbox_limit: int = 4096
    segmentation_limit: int = 0  # largest frame the link segments itself (TSO); 0: none
    arp: ARPSettings = field(default_factory=ARPSettings)
    reassembly: ReassemblySettings = field(default_factory=ReassemblySettings)
    icmp: ICMPSettings = field(default_factory=ICMPSettings)


class IPv4Layer:
    def __init__(
        self, settings: InterfaceSettings, statistics: Statistics, rng: random.Random
    ) -> None:
        self.settings = settings
        self.statistics = statistics
        self.address = settings.address
        self.mtu = settings.mtu
        self.ethernet = settings.kind is LinkKind.ETHERNET
        self.network = 0
        self.directed_broadcast: int | None = None
        self.routes = RoutingTable()
        self.routes.add(0x7F000000, 8, None, LOOPBACK)
        # One interface: the limited broadcast and multicast leave through the link even with no
        # gateway (DHCP, mDNS), as lwIP does; send_packet maps them to broadcast or group MACs.
        self.routes.add(LIMITED_BROADCAST, 32, None, LINK)
        self.routes.add(0xE0000000, 4, None, LINK)
        self._address_routes: list[tuple[int, int]] = []  # what configure() installed
        self._install_address(settings.address, settings.prefix_length, settings.gateway)
        self.multicast_groups: set[int] = {ALL_HOSTS}
        self.handlers: dict[int, ProtocolHandler] = {}
        self.outbox: list[bytes | SegmentedFrame] = []
        # True while the frame being processed came with a trusted checksum (the kernel's
        # offloaded packets, our own loopback): transport layers may skip verifying it.
        self.trusted_frame = False
        self.segmentation_limit = settings.segmentation_limit if not self.ethernet else 0
        self.loopback: deque[IPv4Packet] = deque()
        self.trace: TraceHook | None = None
        self._identification = rng.randrange(0x10000)
        self.reassembler = Reassembler(settings.reassembly, statistics)
        self.icmp = ICMPHandler(settings.icmp, statistics, self._send_simple)
        self.arp = ARPCache(
            settings.arp, statistics, settings.address, settings.mac, self._emit_arp
        )
        self.handlers[1] = self._deliver_icmp

    # ---------------------------------------------------------------------------------------
    # configuration
    def configure(self, address: int, prefix_length: int, gateway: int | None) -> None:
        """Take a new address (0: unconfigured), subnet and default gateway at run time."""
        if not 0 <= address <= 0xFFFFFFFF or not 0 <= prefix_length <= 32:
            raise ValueError(f"bad address {address:#x}/{prefix_length}")
        for network, length in self._address_routes:
            self.routes.remove(network, length)
        self._address_routes.clear()
        self.settings = replace(
            self.settings, address=address, prefix_length=prefix_length, gateway=gateway
        )
        self._install_address(address, prefix_length, gateway)
        self.arp.address = address
        self.statistics.count("ipv4.address_changes")

    def _install_address(self, address: int, prefix_length: int, gateway: int | None) -> None:
        self.address = address
        if address == 0:  # unconfigured: nothing but loopback, broadcast and multicast
            self.network, self.directed_broadcast = 0, None
            return
        mask = prefix_mask(prefix_length)
        self.network = address & mask
        self.directed_broadcast = (
            self.network | (~mask & 0xFFFFFFFF) if prefix_length < 31 else None
        )
        installed: list[tuple[int, int, int | None, str]] = [
            (address, 32, None, LOOPBACK),
            (self.network, prefix_length, None, LINK),
        ]
        if gateway is not None:
            installed.append((0, 0, gateway, LINK))
        for network, length, via, device in installed:
            route = self.routes.add(network, length, via, device)
            self._address_routes.append((route.network, route.prefix_length))

    @property
    def configured(self) -> bool:
        return self.address != 0

    # ---------------------------------------------------------------------------------------
    # input
    def process_frame(self, frame: bytes, now: float) -> None:
        """One frame from the link: Ethernet (TAP) or a bare IPv4 packet (TUN)."""
        self.trusted_frame = trusted = frame.__class__ is OffloadedFrame
        if self.trace is not None:
            self.trace("in", frame, self.ethernet, "")
        if trusted:
            self.statistics.count("ipv4.offloaded_frames_received")
        if not self.ethernet:
            self.process_ipv4(frame, now, False)
            return
        if len(frame) < 14:
            self._drop_malformed("ethernet.truncated", frame, True)
            return
        dst = frame[:6]
        if dst != self.settings.mac and not dst[0] & 1:  # unicast to someone else
            self._drop(DropReason.ETHERNET_NOT_FOR_US, frame)
            return
        if frame[6:12] == self.settings.mac:
            self._drop(DropReason.ETHERNET_OWN_SOURCE, frame)
            return
        ethertype = frame[12:14]
        if ethertype == _ETHER_IPV4:
            self.process_ipv4(frame[14:], now, False)
        elif ethertype == _ETHER_ARP:
            self._process_arp(frame, now)
        elif int.from_bytes(ethertype, "big") < 0x0600:
            self._drop_malformed("ethernet.not_ethertype", frame, True)
        else:
            self._drop(DropReason.ETHERTYPE_UNSUPPORTED, frame)

    def _process_arp(self, frame: bytes, now: float) -> None:
        try:
            arp = ARPPacket.parse(frame[14:])
        except MalformedPacket as error:
            self._drop_malformed(error.reason, frame, True)
            return
        self.statistics.count("arp.received")
        if not self.address:  # no address to answer for, none to resolve from
            self._drop(DropReason.ARP_UNCONFIGURED, frame)
            return
        for mac, packet in self.arp.process(arp, now):
            self._transmit(packet, mac)

    def process_ipv4(self, data: bytes, now: float, from_loopback: bool) -> None:
        try:
            packet = IPv4Packet.parse(data)
        except MalformedPacket as error:
            self._drop_malformed(error.reason, data)
            return
        # The counter table itself, not Statistics.count: 145 -> 100 ns a packet.
        self.statistics.counters["ipv4.received"] += 1
        self.process_packet(packet, now, from_loopback)

    def process_packet(self, packet: IPv4Packet, now: float, from_loopback: bool) -> None:
        dst, src = packet.dst, packet.src
        broadcast = False
        if dst != self.address or not dst:
            if dst >> 24 == 127:
                if not from_loopback:
                    self._drop_packet(DropReason.IPV4_MARTIAN_DESTINATION, packet)
                    return
            elif (
                dst == LIMITED_BROADCAST
                or dst == self.directed_broadcast
                or dst in self.multicast_groups
            ):
                broadcast = True
            elif not self.address and dst and packet.protocol == _PROTO_UDP:
                # Unconfigured: a DHCP reply unicast to the offered address (see the docstring).
                self.statistics.count("ipv4.unconfigured_accepted")
                broadcast = True
            else:
                self._drop_packet(DropReason.IPV4_NOT_FOR_US, packet)
                return
        if not from_loopback and (
            src >> 28 >= 0xE
            or src >> 24 == 127
            or src == self.address
            or src == self.directed_broadcast
            or (src == 0 and not broadcast)
        ):
            self._drop_packet(DropReason.IPV4_MARTIAN_SOURCE, packet)
            return
        if packet.more_fragments or packet.fragment_offset:
            whole = self.reassembler.add(packet, now)
            if whole is None:
                return
            packet = whole
        handler = self.handlers.get(packet.protocol)
        if handler is None:
            self.statistics.drop(DropReason.PROTOCOL_UNREACHABLE, packet)
            self.icmp.send_error(
                packet, icmpv4.DESTINATION_UNREACHABLE, icmpv4.PROTOCOL_UNREACHABLE, now, broadcast
            )
            return
        handler(packet, now, broadcast)

    def _deliver_icmp(self, packet: IPv4Packet, now: float, broadcast: bool) -> None:
        self.icmp.process(packet, now, broadcast)  # its drops are traced with this packet

    # ---------------------------------------------------------------------------------------
    # output
    def next_identification(self) -> int:
        self._identification = (self._identification + 1) & 0xFFFF
        return self._identification

    def _send_simple(
        self, destination: int, protocol: int, payload: bytes, now: float, source: int | None
    ) -> bool:
        return self.send(destination, protocol, payload, now, source=source)

    def source_for(self, destination: int) -> int:
        return LOOPBACK_ADDRESS if destination >> 24 == 127 else self.address

    def path_mtu(self, destination: int) -> int:
        route = self.routes.lookup(destination)
        return LOOPBACK_MTU if route is None or route.device == LOOPBACK else self.mtu

    def send(
        self,
        destination: int,
        protocol: int,
        payload: bytes,
        now: float,
        *,
        source: int | None = None,
        ttl: int | None = None,
        tos: int = 0,
        dont_fragment: bool = False,
        segmentation: tuple[int, int] | None = None,
    ) -> bool:
        """Route, fragment and queue one datagram; False (and a counted drop) if it cannot go."""
        identification = self._identification = (self._identification + 1) & 0xFFFF
        # Every field given, through tuple.__new__: the NamedTuple's own __new__ is a Python
        # call with defaults (one per segment sent: 514 -> 243 ns).
        packet = _new_tuple(
            IPv4Packet,
            (
                self.source_for(destination) if source is None else source,
                destination,
                protocol,
                payload,
                self.settings.default_ttl if ttl is None else ttl,
                tos,
                identification,
                dont_fragment,
                False,
                0,
                b"",
            ),
        )
        return self.send_packet(packet, now, segmentation)

    def send_packet(
        self, packet: IPv4Packet, now: float, segmentation: tuple[int, int] | None = None
    ) -> bool:
        """Route and queue; ``segmentation`` = (segment size, transport header length) marks a
        TCP packet the link may cut up itself (TSO) when it is larger than the MTU."""
        route = self.routes.lookup(packet.dst)
        if route is None:
            self._drop_packet(DropReason.IPV4_NO_ROUTE, packet)
            return False
        self.statistics.counters["ipv4.sent"] += 1  # (the table, not count(): 145 -> 100 ns)
        total_length = packet.total_length  # (a property: computed once here)
        if route.device == LOOPBACK:
            if len(self.loopback) >= self.settings.loopback_queue:
                self._drop_packet(DropReason.IPV4_LOOPBACK_OVERFLOW, packet)
                return False
            self.loopback.append(packet)
            return True
        if (
            segmentation is not None
            and total_length > self.mtu
            and total_length <= self.segmentation_limit
            and route.device == LINK
        ):
            header_length = packet.header_length
            self._queue_frame(
                SegmentedFrame(
                    packet.build(),
                    segmentation[0],
                    header_length + segmentation[1],
                    header_length,
                    16,
                )
            )
            self.statistics.count("ipv4.segmentation_offloaded")
            return True
        if total_length > self.mtu and packet.dont_fragment:
            self._drop_packet(DropReason.IPV4_FRAGMENTATION_NEEDED, packet)
            return False
        if not self.ethernet:
            if total_length <= self.mtu:  # TUN, no fragments: the frame is the packet itself
                self._queue_frame(packet.build())
            else:
                self._transmit(packet, b"")
            return True
        destination = packet.dst
        if destination == LIMITED_BROADCAST or destination == self.directed_broadcast:
            mac: bytes | None = BROADCAST_MAC
        elif destination >> 28 == 0xE:  # RFC 1112 6.4: 01:00:5e + low 23 bits of the group
            mac = b"\x01\x00\x5e" + (destination & 0x7FFFFF).to_bytes(3, "big")
        else:
            # The whole datagram waits for ARP (fragmenting happens once the MAC is known).
            mac = self.arp.lookup_or_queue(route.next_hop(destination), packet, now)
        if mac is not None:
            self._transmit(packet, mac)
        return True

    def send_to_mac(self, packet: IPv4Packet, mac: bytes) -> None:
        """Queue ``packet`` for ``mac`` without ARP: a DHCP server's reply to a client that has
        no address yet (RFC 2131 4.1; what dnsmasq does by writing the kernel's ARP table)."""
        self.statistics.count("ipv4.sent")
        self._transmit(packet, mac if self.ethernet else b"")

    def _transmit(self, packet: IPv4Packet, mac: bytes) -> None:
        """Fragment to the MTU and queue the frames (``mac`` empty on a TUN link)."""
        pieces = [packet]
        if packet.total_length > self.mtu:
            pieces = fragment(packet, self.mtu)
            self.statistics.count("ipv4.fragments_sent", len(pieces))
        header = mac + self.settings.mac + _ETHER_IPV4 if mac else b""
        for piece in pieces:
            self._queue_frame(header + piece.build())

    def _emit_arp(self, dst_mac: bytes, arp: ARPPacket) -> None:
        self._queue_frame(dst_mac + self.settings.mac + _ETHER_ARP + arp.build())

    def _queue_frame(self, frame: bytes | SegmentedFrame) -> None:
        if len(self.outbox) >= self.settings.outbox_limit:
            self.statistics.count("link.outbox_overflow")
            return
        self.outbox.append(frame)
        if self.trace is not None:
            self.trace("out", frame, self.ethernet, "")

    # ---------------------------------------------------------------------------------------
    # timers and loopback
    def process_loopback(self, now: float, budget: int) -> int:
        done = 0
        loopback = self.loopback
        while loopback and done < budget:
            packet = loopback.popleft()
            if self.trace is not None:
                self.trace("in", packet.build(), False, "loopback")
            self.statistics.count("ipv4.received")
            self.trusted_frame = True  # built by this stack a moment ago, never on a wire
            self.process_packet(packet, now, True)
            done += 1
        self.trusted_frame = False
        return done

    def run_timers(self, now: float) -> None:
        if self.ethernet:
            self.arp.run_timers(now)
        deadline = self.reassembler.next_deadline()
        if deadline is not None and deadline <= now:
            for first in self.reassembler.expire(now):
                broadcast = first.dst != self.address and first.dst >> 24 != 127
                self.icmp.send_error(
                    first, icmpv4.TIME_EXCEEDED, icmpv4.REASSEMBLY_TIME_EXCEEDED, now, broadcast
                )

    def next_deadline(self) -> float | None:
        reassembly = self.reassembler.next_deadline()
        arp = self.arp.next_deadline() if self.ethernet else None
        if reassembly is None or arp is None:
            return arp if reassembly is None else reassembly
        return min(reassembly, arp)

    # ---------------------------------------------------------------------------------------
    # drops
    def _drop(self, reason: DropReason, data: bytes) -> None:
        self.statistics.drop(reason, data, self.ethernet)

    def _drop_packet(self, reason: DropReason, packet: IPv4Packet) -> None:
        self.statistics.drop(reason, packet)

    def _drop_malformed(self, reason: str, data: bytes, is_ethernet: bool = False) -> None:
        self.statistics.drop_malformed(reason, data, is_ethernet)
