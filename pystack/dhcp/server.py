"""A small sans-IO DHCP server (RFC 2131 4.3) for the simulated network, and its stack glue.

``DHCPServer`` hands out addresses from one pool on one subnet: DISCOVER -> OFFER (the client's
current lease, else the address it asks for when free, else the first free one; an offer holds
its address for ``offer_time``), REQUEST -> ACK or NAK by the client's state (4.3.2: SELECTING
with our server id, INIT-REBOOT with a requested address, RENEWING/REBINDING with ``ciaddr``;
silent where the RFC says so), RELEASE frees, DECLINE takes the address out of the pool for
``decline_time``, INFORM gets the options without a lease. Clients are known by their client id
(option 61), else their hardware address (4.2). Expired leases are reclaimed lazily, when an
address is needed; the tables are bounded by the pool. ``silent`` makes the server ignore
everything (a server that is down, for the tests of RENEWING and REBINDING).

Replies are ``Reply`` values: where to send them follows 4.1 (a relay's ``giaddr`` on port 67;
a NAK broadcast; ``ciaddr`` when set; broadcast when the client asks; else unicast to ``yiaddr``
at the client's MAC, with no ARP, which ``IPv4Layer.send_to_mac`` does).
Entry points: ``DHCPServer``, ``DHCPServerSettings``, ``DHCPServerService``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

from pystack.stats import DropReason, Statistics
from pystack.wire import dhcp
from pystack.wire.addresses import LIMITED_BROADCAST, prefix_mask
from pystack.wire.dhcp import DHCPMessage
from pystack.wire.errors import MalformedPacket
from pystack.wire.ipv4 import IPv4Packet
from pystack.wire.udp import PROTO_UDP, UDPDatagram

if TYPE_CHECKING:
    from pystack.stack import Stack


@dataclass(frozen=True, slots=True)
class DHCPServerSettings:
    server: int  # our address: the server identifier
    pool: tuple[int, int]  # first and last address handed out, inclusive
    prefix_length: int = 24
    router: int | None = None
    dns_servers: tuple[int, ...] = ()
    lease_time: int = 3600
    renewal_time: int | None = None  # default: half the lease
    rebinding_time: int | None = None  # default: 7/8 of it
    offer_time: float = 60.0
    decline_time: float = 600.0


@dataclass(slots=True)
class ServerLease:
    address: int
    client: bytes  # client id, or the hardware address
    mac: bytes
    expires_at: float
    bound: bool  # False: only offered so far
    hostname: str | None = None


class Reply(NamedTuple):
    payload: bytes
    address: int
    port: int
    mac: bytes | None  # set: unicast to a client without an address (no ARP)


class DHCPServer:
    def __init__(self, settings: DHCPServerSettings, statistics: Statistics) -> None:
        first, last = settings.pool
        mask = prefix_mask(settings.prefix_length)
        network = settings.server & mask
        if not 0 < first <= last or first & mask != network or last & mask != network:
            raise ValueError("the pool must be a range inside the server's subnet")
        self.settings = settings
        self.statistics = statistics
        self.mask = mask
        self.silent = False
        self.leases: dict[bytes, ServerLease] = {}
        self._by_address: dict[int, ServerLease] = {}
        self._declined: dict[int, float] = {}

    # -- input -------------------------------------------------------------------------------
    def process(self, payload: bytes, now: float) -> list[Reply]:
        """One datagram that arrived on port 67; the replies to send."""
        if self.silent:
            self.statistics.count("dhcp.server.ignored_silent")
            return []
        try:
            message = DHCPMessage.parse(payload)
        except MalformedPacket as error:
            self.statistics.drop_malformed(error.reason)
            return []
        kind = message.message_type
        handler = _HANDLERS.get(kind or 0) if message.op == dhcp.BOOTREQUEST else None
        if handler is None:
            self.statistics.drop(DropReason.DHCP_UNEXPECTED)
            return []
        return handler(self, message, now)

    def _discover(self, message: DHCPMessage, now: float) -> list[Reply]:
        key = _client_key(message)
        address = self._choose(key, message.requested_ip, now)
        if address is None:
            self.statistics.drop(DropReason.DHCP_POOL_EXHAUSTED)
            return []
        lease = self.leases.get(key)
        if lease is None or lease.address != address or not lease.bound:
            self._record(key, message, address, now + self.settings.offer_time, bound=False)
        return [self._reply(message, dhcp.OFFER, address)]

    def _request(self, message: DHCPMessage, now: float) -> list[Reply]:
        key = _client_key(message)
        lease = self.leases.get(key)
        requested = message.requested_ip
        if message.server_id is not None:  # SELECTING (4.3.2)
            if message.server_id != self.settings.server:
                if lease is not None and not lease.bound:
                    self._forget(lease)  # the client took another server's offer
                self.statistics.count("dhcp.server.other_server_chosen")
                return []
            if (
                lease is None
                or requested != lease.address
                or (lease.expires_at < now and not lease.bound)
            ):
                return [self._nak(message)]
            return [self._ack(message, key, lease.address, now)]
        if not message.ciaddr:  # INIT-REBOOT
            if requested is None:
                self.statistics.drop(DropReason.DHCP_UNEXPECTED)
                return []
            if lease is not None and lease.address == requested:
                return [self._ack(message, key, requested, now)]
            if requested & self.mask != self.settings.server & self.mask or self._taken(
                requested, key, now
            ):
                return [self._nak(message)]
            return []  # no record of this client: stay silent
        address = message.ciaddr  # RENEWING or REBINDING
        if lease is not None and lease.address == address and not self._taken(address, key, now):
            return [self._ack(message, key, address, now)]
        if lease is not None or self._taken(address, key, now):
            return [self._nak(message)]
        return []

    def _release(self, message: DHCPMessage, now: float) -> list[Reply]:
        lease = self.leases.get(_client_key(message))
        if lease is not None and lease.address == message.ciaddr:
            self._forget(lease)
            self.statistics.count("dhcp.server.released")
        return []

    def _decline(self, message: DHCPMessage, now: float) -> list[Reply]:
        lease = self.leases.get(_client_key(message))
        if lease is not None and lease.address == message.requested_ip:
            self._forget(lease)
            self._declined[lease.address] = now + self.settings.decline_time
            self.statistics.count("dhcp.server.declined")
        return []

    def _inform(self, message: DHCPMessage, now: float) -> list[Reply]:
        if not message.ciaddr:
            self.statistics.drop(DropReason.DHCP_UNEXPECTED)
            return []
        return [self._reply(message, dhcp.ACK, 0, lease=False)]

    def revoke(self, address: int) -> bool:
        """Forget the lease or offer on ``address`` (an administrator's act; tests)."""
        lease = self._by_address.get(address)
        if lease is not None:
            self._forget(lease)
        return lease is not None

    # -- addresses ---------------------------------------------------------------------------
    def _taken(self, address: int, key: bytes, now: float) -> bool:
        """Held by another client (an unexpired lease or offer), or declined."""
        if self._declined.get(address, -1.0) > now:
            return True
        lease = self._by_address.get(address)
        return lease is not None and lease.client != key and lease.expires_at > now

    def _free(self, address: int, key: bytes, now: float) -> bool:
        first, last = self.settings.pool
        return (
            first <= address <= last
            and address != self.settings.server
            and not self._taken(address, key, now)
        )

    def _choose(self, key: bytes, requested: int | None, now: float) -> int | None:
        """RFC 2131 4.3.1: the client's binding, else the address it asks for, else its last
        offer, else the first free one."""
        lease = self.leases.get(key)
        usable = lease is not None and not self._taken(lease.address, key, now)
        if lease is not None and usable and lease.bound:
            return lease.address
        if requested is not None and self._free(requested, key, now):
            return requested
        if lease is not None and usable:
            return lease.address
        first, last = self.settings.pool
        for address in range(first, last + 1):  # bounded by the pool
            if self._free(address, key, now):
                return address
        return None

    def _record(
        self, key: bytes, message: DHCPMessage, address: int, expires: float, bound: bool
    ) -> None:
        old = self.leases.get(key)
        if old is not None:
            self._forget(old)
        stale = self._by_address.get(address)
        if stale is not None:  # an expired lease of another client: reclaimed
            self._forget(stale)
        lease = ServerLease(
            address, key, message.hardware_address, expires, bound, message.hostname
        )
        self.leases[key] = lease
        self._by_address[address] = lease
        self._declined.pop(address, None)

    def _forget(self, lease: ServerLease) -> None:
        if self.leases.get(lease.client) is lease:
            del self.leases[lease.client]
        if self._by_address.get(lease.address) is lease:
            del self._by_address[lease.address]

    # -- output ------------------------------------------------------------------------------
    def _ack(self, message: DHCPMessage, key: bytes, address: int, now: float) -> Reply:
        self._record(key, message, address, now + self.settings.lease_time, bound=True)
        return self._reply(message, dhcp.ACK, address)

    def _nak(self, message: DHCPMessage) -> Reply:
        return self._reply(message, dhcp.NAK, 0, lease=False)

    def _reply(self, request: DHCPMessage, kind: int, yiaddr: int, lease: bool = True) -> Reply:
        settings = self.settings
        options = [
            dhcp.message_type_option(kind),
            dhcp.address_option(dhcp.OPTION_SERVER_ID, settings.server),
        ]
        if kind != dhcp.NAK:
            if lease:
                time = settings.lease_time
                t1 = settings.renewal_time if settings.renewal_time is not None else time // 2
                t2 = settings.rebinding_time
                options += [
                    dhcp.seconds_option(dhcp.OPTION_LEASE_TIME, time),
                    dhcp.seconds_option(dhcp.OPTION_RENEWAL_TIME, t1),
                    dhcp.seconds_option(
                        dhcp.OPTION_REBINDING_TIME, t2 if t2 is not None else time * 7 // 8
                    ),
                ]
            options.append(dhcp.address_option(dhcp.OPTION_SUBNET_MASK, self.mask))
            if settings.router is not None:
                options.append(dhcp.addresses_option(dhcp.OPTION_ROUTER, (settings.router,)))
            if settings.dns_servers:
                options.append(dhcp.addresses_option(dhcp.OPTION_DNS, settings.dns_servers))
        reply = DHCPMessage(
            dhcp.BOOTREPLY,
            request.xid,
            request.chaddr,
            tuple(options),
            htype=request.htype,
            hlen=request.hlen,
            flags=request.flags,
            ciaddr=request.ciaddr if kind != dhcp.NAK else 0,
            yiaddr=yiaddr,
            giaddr=request.giaddr,
        ).padded()
        self.statistics.count(f"dhcp.server.{dhcp.MESSAGE_TYPE_NAMES[kind].lower()}_sent")
        return self._address_reply(reply.build(), request, kind, yiaddr)

    @staticmethod
    def _address_reply(payload: bytes, request: DHCPMessage, kind: int, yiaddr: int) -> Reply:
        """RFC 2131 4.1: where a reply goes."""
        if request.giaddr:
            return Reply(payload, request.giaddr, dhcp.SERVER_PORT, None)
        if kind == dhcp.NAK or request.broadcast or not (request.ciaddr or yiaddr):
            return Reply(payload, LIMITED_BROADCAST, dhcp.CLIENT_PORT, None)
        if request.ciaddr:
            return Reply(payload, request.ciaddr, dhcp.CLIENT_PORT, None)
        return Reply(payload, yiaddr, dhcp.CLIENT_PORT, request.hardware_address)


_HANDLERS = {
    dhcp.DISCOVER: DHCPServer._discover,
    dhcp.REQUEST: DHCPServer._request,
    dhcp.RELEASE: DHCPServer._release,
    dhcp.DECLINE: DHCPServer._decline,
    dhcp.INFORM: DHCPServer._inform,
}


def _client_key(message: DHCPMessage) -> bytes:
    client_id = message.client_id
    return b"id:" + client_id if client_id is not None else b"hw:" + message.hardware_address


class DHCPServerService:
    """A ``DHCPServer`` on ``stack`` (UDP port 67), stepped by ``Stack.poll``."""

    STEP_BUDGET = 256

    def __init__(self, stack: Stack, settings: DHCPServerSettings) -> None:
        self.stack = stack
        self.server = DHCPServer(settings, stack.counters)
        self.endpoint = stack.udp.open(0, dhcp.SERVER_PORT)
        self.endpoint.set_queue_limit(self.STEP_BUDGET)
        stack.add_application(self)

    def next_deadline(self) -> float | None:
        return None  # it only answers

    def step(self, now: float) -> None:
        for _ in range(self.STEP_BUDGET):
            received = self.endpoint.receive()
            if received is None:
                return
            for reply in self.server.process(received[0], now):
                self._send(reply, now)

    def _send(self, reply: Reply, now: float) -> None:
        if reply.mac is None:
            try:
                self.endpoint.send_to(reply.payload, (reply.address, reply.port), now)
            except OSError:
                self.stack.counters.count("dhcp.server.send_failed")
            return
        ip = self.stack.ip
        source = ip.address
        datagram = UDPDatagram(dhcp.SERVER_PORT, reply.port, reply.payload).build(
            source, reply.address
        )
        packet = IPv4Packet(
            source,
            reply.address,
            PROTO_UDP,
            datagram,
            ip.settings.default_ttl,
            0,
            ip.next_identification(),
            False,
        )
        self.stack.counters.count("udp.sent")
        ip.send_to_mac(packet, reply.mac)

    def close(self, now: float) -> None:
        self.endpoint.close(now)
        self.stack.remove_application(self)
