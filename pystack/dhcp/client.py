"""A sans-IO DHCP client (RFC 2131 4.4), and its glue to a stack's UDP layer.

``DHCPClient`` is the state machine: INIT -> SELECTING (DISCOVER, the first OFFER wins, as lwIP)
-> REQUESTING (REQUEST; ACK binds, NAK restarts) -> BOUND -> RENEWING at T1 (REQUEST unicast to
the server) -> REBINDING at T2 (broadcast) -> at expiry the address is dropped and INIT starts
again; STOPPED after ``stop``. It reads no clock and draws every xid and jitter from the
injected rng; what it sends waits in ``outbox`` as (payload, destination address), for port 67.
``on_change(lease or None, now)`` is called when the address must change.

Timing: DISCOVER and the SELECTING REQUEST are retransmitted after 4, 8, 16, 32, 64, 64... s,
each randomized by +-1 s (RFC 2131 4.1); REQUESTING gives up after ``request_attempts``
transmissions and starts over (lwIP: 5). In RENEWING and REBINDING the wait is half the time
left until T2 or expiry, at least 60 s (RFC 2131 4.4.5), never past T2 or expiry. Lease times
count from when the REQUEST was first sent (4.4.1). After a NAK the client waits
``restart_delay`` (1 s) before a new DISCOVER, so a server that NAKs everything cannot make it
loop within one instant (lwIP restarts at once). No initial 1-10 s wait (4.4.1 suggests one;
lwIP has none) and no ARP probe of the offered address (DECLINE is optional; not sent).

``StackDHCPClient`` runs a client on a stack: UDP port 68 bound to 0.0.0.0, an application of
the stack (``Stack.add_application``), configuring ``stack.ip`` on bind and expiry. A RELEASE
still waiting for the server's MAC keeps the address until ARP answers (at most 3 s). The code
that builds a host attaches it (``attach_dhcp_client``; ``pystack.host.build_stack`` does when
``StackConfig.address`` is ``"dhcp"``); ``dhcp_client(stack)`` finds it again.
``DHCPClientSettings`` (``StackConfig.dhcp``) is defined in ``pystack.stack``, which imports
nothing from here.
Entry points: ``DHCPClient``, ``DHCPClientSettings``, ``Lease``, ``DHCPState``,
``StackDHCPClient``, ``attach_dhcp_client``, ``dhcp_client``.
"""

from __future__ import annotations

import enum
import random
from collections import deque
from collections.abc import Callable

from pystack.dhcp.lease import INFINITY, Lease, lease_from
from pystack.ip.arp import NeighbourState
from pystack.link.base import LinkKind
from pystack.stack import DHCPClientSettings, Stack
from pystack.stats import DropReason, Statistics
from pystack.wire import dhcp
from pystack.wire.addresses import LIMITED_BROADCAST
from pystack.wire.dhcp import DHCPMessage, DHCPOption
from pystack.wire.errors import MalformedPacket

__all__ = [
    "DHCPClient",
    "DHCPClientSettings",
    "DHCPState",
    "Lease",
    "StackDHCPClient",
    "attach_dhcp_client",
    "dhcp_client",
]


class DHCPState(enum.Enum):
    INIT = "init"
    SELECTING = "selecting"
    REQUESTING = "requesting"
    BOUND = "bound"
    RENEWING = "renewing"
    REBINDING = "rebinding"
    STOPPED = "stopped"


class DHCPClient:
    def __init__(
        self,
        settings: DHCPClientSettings,
        mac: bytes,
        rng: random.Random,
        statistics: Statistics,
        on_change: Callable[[Lease | None, float], None] | None = None,
    ) -> None:
        self.settings = settings
        self.mac = mac
        self.rng = rng
        self.statistics = statistics
        self.on_change = on_change
        self.state = DHCPState.INIT
        self.lease: Lease | None = None
        self.outbox: list[tuple[bytes, int]] = []  # (payload, destination address), to port 67
        self.transitions: deque[tuple[float, DHCPState, DHCPState]] = deque(maxlen=64)
        self.started = False
        self._deadline: float | None = None
        self._xid = 0
        self._attempts = 0  # transmissions of the current message
        self._began = 0.0  # start of this acquisition or renewal (the ``secs`` field)
        self._request_sent = 0.0
        self._offer: DHCPMessage | None = None

    # -- control -----------------------------------------------------------------------------
    def start(self, now: float) -> None:
        """Begin acquiring an address (again after ``stop``); no effect while running."""
        if self.started and self.state is not DHCPState.STOPPED:
            return
        self.started = True
        self._discover(now)

    def stop(self, now: float, release: bool = True) -> None:
        """Give the address up (a RELEASE to the server with ``release``) and stay STOPPED."""
        lease = self.lease
        if lease is not None and release and self.state in _HOLDING:
            self._xid = self.rng.getrandbits(32)
            options = [
                dhcp.address_option(dhcp.OPTION_SERVER_ID, lease.server),
                self._identity()[0],  # the client id: how the server knows us (table 5)
            ]
            self._queue(dhcp.RELEASE, lease.server, now, options, ciaddr=lease.address)
        self._unbind(now)
        self._deadline = None
        self._set_state(DHCPState.STOPPED, now)

    def next_deadline(self) -> float | None:
        return self._deadline

    def take_outbox(self) -> list[tuple[bytes, int]]:
        out, self.outbox = self.outbox, []
        return out

    # -- timers ------------------------------------------------------------------------------
    def run_timers(self, now: float) -> None:
        if self._deadline is None or now < self._deadline:
            return
        state = self.state
        if state is DHCPState.INIT:
            self._discover(now)
        elif state is DHCPState.SELECTING:
            self._send_discover(now)
        elif state is DHCPState.REQUESTING:
            if self._attempts >= self.settings.request_attempts:
                self.statistics.count("dhcp.request_gave_up")
                self._discover(now)
            else:
                self._send_select_request(now)
        elif state is DHCPState.BOUND:
            self._xid = self.rng.getrandbits(32)
            self._began = now
            self._set_state(DHCPState.RENEWING, now)
            self._send_renew(now)
        elif state in (DHCPState.RENEWING, DHCPState.REBINDING):
            self._renewal_timer(now)

    def _renewal_timer(self, now: float) -> None:
        lease = self.lease
        assert lease is not None
        if now >= lease.expires_at:  # RFC 2131 4.4.5: the lease ran out, stop using it
            self.statistics.count("dhcp.lease_expired")
            self._unbind(now)
            self._discover(now)
            return
        if self.state is DHCPState.RENEWING and now >= lease.rebinding_at:
            self._attempts = 0
            self._set_state(DHCPState.REBINDING, now)
        self._send_renew(now)

    # -- output ------------------------------------------------------------------------------
    def _discover(self, now: float) -> None:
        self._xid = self.rng.getrandbits(32)
        self._began = now
        self._attempts = 0
        self._offer = None
        self._set_state(DHCPState.SELECTING, now)
        self._send_discover(now)

    def _send_discover(self, now: float) -> None:
        options = self._identity()
        self._queue(dhcp.DISCOVER, LIMITED_BROADCAST, now, options)
        self._backoff(now)

    def _send_select_request(self, now: float) -> None:
        offer = self._offer
        assert offer is not None and offer.server_id is not None
        if self._attempts == 0:
            self._request_sent = now
        options = [
            dhcp.address_option(dhcp.OPTION_REQUESTED_IP, offer.yiaddr),
            dhcp.address_option(dhcp.OPTION_SERVER_ID, offer.server_id),
            *self._identity(),
        ]
        self._queue(dhcp.REQUEST, LIMITED_BROADCAST, now, options)
        self._backoff(now)

    def _send_renew(self, now: float) -> None:
        """RENEWING: unicast to the server; REBINDING: broadcast (RFC 2131 4.3.2, 4.4.5)."""
        lease = self.lease
        assert lease is not None
        renewing = self.state is DHCPState.RENEWING
        if self._attempts == 0:
            self._request_sent = now
        destination = lease.server if renewing else LIMITED_BROADCAST
        self._queue(dhcp.REQUEST, destination, now, self._identity(), ciaddr=lease.address)
        limit = lease.rebinding_at if renewing else lease.expires_at
        wait = max(self.settings.minimum_renew_retransmit, (limit - now) / 2)
        self._deadline = min(limit, now + wait)

    def _identity(self) -> list[DHCPOption]:
        settings = self.settings
        client_id = settings.client_id if settings.client_id is not None else b"\x01" + self.mac
        options = [DHCPOption(dhcp.OPTION_CLIENT_ID, client_id)]
        if settings.hostname:
            options.append(DHCPOption(dhcp.OPTION_HOSTNAME, settings.hostname.encode()))
        if settings.parameters:
            options.append(
                DHCPOption(dhcp.OPTION_PARAMETER_REQUEST_LIST, bytes(settings.parameters))
            )
        return options

    def _queue(
        self,
        message_type: int,
        destination: int,
        now: float,
        options: list[DHCPOption],
        ciaddr: int = 0,
    ) -> None:
        flags = dhcp.FLAG_BROADCAST if self.settings.broadcast_flag and not ciaddr else 0
        message = DHCPMessage(
            dhcp.BOOTREQUEST,
            self._xid,
            dhcp.chaddr_for(self.mac),
            (dhcp.message_type_option(message_type), *options),
            hlen=len(self.mac),
            secs=min(0xFFFF, max(0, int(now - self._began))),
            flags=flags,
            ciaddr=ciaddr,
        ).padded()
        self.outbox.append((message.build(), destination))
        self._attempts += 1
        self.statistics.count(f"dhcp.{dhcp.MESSAGE_TYPE_NAMES[message_type].lower()}_sent")

    def _backoff(self, now: float) -> None:
        """RFC 2131 4.1: 4 s before the first retransmission, doubling to 64 s, +-1 s."""
        settings = self.settings
        base = min(settings.first_retransmit * 2 ** (self._attempts - 1), settings.max_retransmit)
        self._deadline = now + base + self.rng.uniform(-settings.jitter, settings.jitter)

    # -- input -------------------------------------------------------------------------------
    def process(self, payload: bytes, now: float) -> None:
        """One datagram that arrived on port 68."""
        try:
            message = DHCPMessage.parse(payload)
        except MalformedPacket as error:
            self.statistics.drop_malformed(error.reason)
            return
        if (
            message.op != dhcp.BOOTREPLY
            or message.xid != self._xid
            or message.hardware_address != self.mac
        ):
            self.statistics.drop(DropReason.DHCP_NOT_OURS)
            return
        kind, state = message.message_type, self.state
        if kind == dhcp.OFFER and state is DHCPState.SELECTING:
            self._process_offer(message, now)
        elif kind == dhcp.ACK and state in _WAITING:
            self._process_ack(message, now)
        elif kind == dhcp.NAK and state in _WAITING:
            self._process_nak(message, now)
        else:
            self.statistics.drop(DropReason.DHCP_UNEXPECTED)

    def _process_offer(self, message: DHCPMessage, now: float) -> None:
        if not message.yiaddr or message.server_id is None:  # RFC 2131 table 3: both MUST
            self.statistics.drop(DropReason.DHCP_UNEXPECTED)
            return
        self.statistics.count("dhcp.offers_received")
        self._offer = message
        self._attempts = 0
        self._set_state(DHCPState.REQUESTING, now)
        self._send_select_request(now)

    def _process_ack(self, message: DHCPMessage, now: float) -> None:
        expected = self._server()
        server = message.server_id if message.server_id is not None else expected
        lease_time = message.lease_time
        if (
            not message.yiaddr
            or lease_time is None
            or server is None
            or (self.state is DHCPState.REQUESTING and server != expected)
        ):
            self.statistics.drop(DropReason.DHCP_UNEXPECTED)
            return
        self.statistics.count("dhcp.acks_received")
        lease = lease_from(message, server, lease_time, self._request_sent)
        previous = self.lease
        self.lease = lease
        self._attempts = 0
        self._set_state(DHCPState.BOUND, now)
        self._deadline = None if lease.renewal_at == INFINITY else lease.renewal_at
        if previous is None or (previous.address, previous.prefix_length, previous.router) != (
            lease.address,
            lease.prefix_length,
            lease.router,
        ):
            self._notify(lease, now)

    def _process_nak(self, message: DHCPMessage, now: float) -> None:
        expected = self._server()
        if (
            message.server_id is not None
            and self.state is DHCPState.REQUESTING
            and (message.server_id != expected)
        ):
            self.statistics.drop(DropReason.DHCP_UNEXPECTED)
            return
        self.statistics.count("dhcp.naks_received")
        self._unbind(now)
        self._set_state(DHCPState.INIT, now)
        self._deadline = now + self.settings.restart_delay

    def _server(self) -> int | None:
        if self.state is DHCPState.REQUESTING:
            return self._offer.server_id if self._offer is not None else None
        return self.lease.server if self.lease is not None else None

    # -- state -------------------------------------------------------------------------------
    def _unbind(self, now: float) -> None:
        if self.lease is not None:
            self.lease = None
            self._notify(None, now)

    def _notify(self, lease: Lease | None, now: float) -> None:
        if self.on_change is not None:
            self.on_change(lease, now)

    def _set_state(self, state: DHCPState, now: float) -> None:
        """The one place the state changes (recorded in ``transitions``)."""
        if state is not self.state:
            self.transitions.append((now, self.state, state))
            self.state = state


_WAITING = frozenset({DHCPState.REQUESTING, DHCPState.RENEWING, DHCPState.REBINDING})
_HOLDING = frozenset({DHCPState.BOUND, DHCPState.RENEWING, DHCPState.REBINDING})


class StackDHCPClient:
    """A ``DHCPClient`` on ``stack``; ``start``/``stop`` run under the stack lock."""

    QUEUE_LIMIT = 16
    RELEASE_GRACE = 3.0  # s the address is kept for a RELEASE still waiting for ARP

    def __init__(self, stack: Stack, settings: DHCPClientSettings, start: bool = True) -> None:
        self.stack = stack
        self.client = DHCPClient(settings, stack.mac, stack.rng, stack.counters, self._apply)
        self.endpoint = stack.udp.open(0, dhcp.CLIENT_PORT)
        self.endpoint.set_queue_limit(self.QUEUE_LIMIT)
        self._start_pending = start
        self._unconfigure_at: float | None = None
        stack.add_application(self)

    @property
    def state(self) -> DHCPState:
        return self.client.state

    @property
    def lease(self) -> Lease | None:
        return self.client.lease

    def start(self, now: float) -> None:
        self._start_pending = False
        if self._unconfigure_at is not None:  # RFC 2131 4.1: DISCOVER from 0.0.0.0
            self._unconfigure()
        self.client.start(now)
        self._send(now)

    def stop(self, now: float, release: bool = True) -> None:
        self._start_pending = False
        self.client.stop(now, release)
        self._send(now)

    def next_deadline(self) -> float | None:
        if self._start_pending:
            return 0.0
        deadline = self.client.next_deadline()
        if self._unconfigure_at is not None:
            return self._unconfigure_at if deadline is None else min(deadline, self._unconfigure_at)
        return deadline

    def run_timers(self, now: float) -> None:
        self.client.run_timers(now)
        self._send(now)

    def step(self, now: float) -> None:
        if self._start_pending:
            self.start(now)
        for _ in range(self.QUEUE_LIMIT):
            received = self.endpoint.receive()
            if received is None:
                break
            payload, source = received
            if source[1] != dhcp.SERVER_PORT:
                self.stack.counters.drop(DropReason.DHCP_NOT_OURS)
                continue
            self.client.process(payload, now)
        self.run_timers(now)
        if self._unconfigure_at is not None and (
            now >= self._unconfigure_at or not self._waiting_for_arp()
        ):
            self._unconfigure()

    def _send(self, now: float) -> None:
        for payload, destination in self.client.take_outbox():
            try:
                self.endpoint.send_to(payload, (destination, dhcp.SERVER_PORT), now)
            except OSError:
                self.stack.counters.count("dhcp.send_failed")

    def _apply(self, lease: Lease | None, now: float) -> None:
        ip = self.stack.ip
        self._unconfigure_at = None
        self._send(now)  # a RELEASE leaves from the address it gives up
        if lease is None:
            if self._waiting_for_arp():  # ... once the server's MAC is known (or after a while)
                self._unconfigure_at = now + self.RELEASE_GRACE
            else:
                ip.configure(0, 0, None)
            return
        ip.configure(lease.address, lease.prefix_length, lease.router)
        if self.stack.link.kind is LinkKind.ETHERNET and self.stack.config.gratuitous_arp:
            ip.arp.announce(now)  # RFC 5227 2.4, as lwIP's dhcp_bind

    def _waiting_for_arp(self) -> bool:
        return any(
            n.state is NeighbourState.INCOMPLETE and n.pending for n in self.stack.ip.arp.entries()
        )

    def _unconfigure(self) -> None:
        self._unconfigure_at = None
        self.stack.ip.configure(0, 0, None)


def attach_dhcp_client(stack: Stack, start: bool = True) -> StackDHCPClient:
    """Run a DHCP client with ``stack.config.dhcp`` on ``stack``: it starts at the next poll
    with ``start``, else waits for ``StackDHCPClient.start``."""
    return StackDHCPClient(stack, stack.config.dhcp, start)


def dhcp_client(stack: Stack) -> StackDHCPClient | None:
    """The DHCP client attached to ``stack``, if any."""
    return stack.find_application(StackDHCPClient)
