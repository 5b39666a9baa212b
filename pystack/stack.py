"""The stack: one host's protocol state, driven by ``poll(now)``.

``Stack.poll(now)`` is the only thing that moves packets and fires timers: it drains the link
(bounded per call), delivers looped-back packets, runs timers, then hands queued frames to the
link. ``next_deadline()`` says when ``poll`` must run next (``now`` itself when work is queued).
Nothing here blocks, sleeps, reads a clock or starts a thread: the runner (``runner.py``) or a test
with a ``ManualClock`` drives it. Two stacks can live in one process.

Applications (services, the DHCP client, the resolver, simulated peers) run inside ``poll``: an
object with ``step(now)`` and ``next_deadline()`` joins with ``add_application`` and leaves with
``remove_application``. This module imports none of them: the code that builds a host attaches
what its config asks for (``pystack.host.build_stack`` attaches the DHCP client when
``StackConfig.address`` is ``"dhcp"``), and the applications import this module, never the
other way round (the order is written down in ``tests/test_layering.py``).
Entry points: ``StackConfig``, ``Stack``, ``Application``.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

from pystack.clock import Clock, SystemClock
from pystack.counters import DECLARED
from pystack.ip.arp import ARPSettings
from pystack.ip.fragments import ReassemblySettings
from pystack.ip.icmp import EchoReply, ICMPSettings
from pystack.ip.interface import InterfaceSettings, IPv4Layer
from pystack.link.base import Link, LinkKind, SegmentedFrame
from pystack.link.impair import ImpairmentLink
from pystack.stats import Statistics
from pystack.tcp.connection import TCPConnection
from pystack.tcp.layer import TCPLayer
from pystack.tcp.listener import TCPListener
from pystack.tcp.settings import CongestionControlName, TCPSettings, congestion_control_name
from pystack.tracing import TraceLevel, TraceOptions, Tracer
from pystack.udp.endpoint import UDPEndpoint
from pystack.udp.layer import UDPLayer
from pystack.udp.settings import UDPSettings
from pystack.wire.addresses import ip_from_str, ip_to_str, mac_from_str, mac_to_str, parse_cidr

DEFAULT_DHCP_PARAMETERS = (1, 3, 6, 12, 15, 28, 51, 58, 59)  # mask, router, DNS, name, domain, ...


@dataclass(frozen=True, slots=True)
class DHCPClientSettings:
    """The DHCP client's settings (``pystack.dhcp.client``). Defined here, with the rest of a
    host's configuration, so that ``StackConfig`` needs nothing from the applications above."""

    hostname: str | None = None  # option 12
    client_id: bytes | None = None  # option 61; default: type 1 + the MAC (RFC 2132 9.14)
    broadcast_flag: bool = False  # ask for broadcast replies (we accept unicast ones: no need)
    parameters: tuple[int, ...] = DEFAULT_DHCP_PARAMETERS  # option 55
    first_retransmit: float = 4.0  # RFC 2131 4.1
    max_retransmit: float = 64.0
    jitter: float = 1.0
    request_attempts: int = 5
    minimum_renew_retransmit: float = 60.0  # RFC 2131 4.4.5
    restart_delay: float = 1.0


@dataclass(frozen=True)
class StackConfig:
    """Everything a host needs to know about itself. Addresses are text, checked here."""

    address: str = "10.0.0.2/24"  # or DHCP ("dhcp"): start unconfigured and ask a server
    gateway: str | None = None
    mac: str | None = None  # Ethernet links only; default: a locally administered one from the rng
    mtu: int | None = None  # default: the link's
    default_ttl: int = 64
    static_arp: tuple[tuple[str, str], ...] = ()
    receive_budget: int = 256  # frames taken from the link per poll
    loopback_budget: int = 256  # looped-back packets delivered per poll
    arp: ARPSettings = field(default_factory=ARPSettings)
    reassembly: ReassemblySettings = field(default_factory=ReassemblySettings)
    icmp: ICMPSettings = field(default_factory=ICMPSettings)
    tcp: TCPSettings = field(default_factory=TCPSettings)
    udp: UDPSettings = field(default_factory=UDPSettings)
    gratuitous_arp: bool = True
    dhcp: DHCPClientSettings = field(default_factory=DHCPClientSettings)  # with address "dhcp"


DHCP = "dhcp"  # StackConfig.address for an address from DHCP


class Application(Protocol):
    """What runs inside ``Stack.poll``: stepped after input and timers, asked for its timer."""

    def step(self, now: float) -> None: ...

    def next_deadline(self) -> float | None:
        """When ``step`` must run next (``now`` when work is left); None: only on new input."""
        ...


A = TypeVar("A")


def _random_mac(rng: random.Random) -> bytes:
    first = (rng.randrange(256) & 0xFC) | 0x02  # unicast, locally administered
    return bytes([first] + [rng.randrange(256) for _ in range(5)])


class Stack:
    def __init__(
        self,
        config: StackConfig,
        link: Link,
        clock: Clock | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.config = config
        self.link = link
        self.clock: Clock = clock if clock is not None else SystemClock()
        self.rng = rng if rng is not None else random.Random()
        self._statistics = Statistics(DECLARED)
        use_dhcp = config.address == DHCP
        address, prefix = (0, 0) if use_dhcp else parse_cidr(config.address)
        gateway = ip_from_str(config.gateway) if config.gateway and not use_dhcp else None
        mac = mac_from_str(config.mac) if config.mac else _random_mac(self.rng)
        mtu = config.mtu if config.mtu is not None else link.mtu
        if not 68 <= mtu <= 65535:  # RFC 791: every host must handle 68
            raise ValueError(f"MTU {mtu} outside 68..65535")
        segmentation = getattr(link, "segmentation_limit", 0)
        if not 1 <= config.default_ttl <= 255:
            raise ValueError(f"TTL {config.default_ttl} outside 1..255")
        settings = InterfaceSettings(
            address,
            prefix,
            gateway,
            mac,
            mtu,
            link.kind,
            config.default_ttl,
            segmentation_limit=segmentation if isinstance(segmentation, int) else 0,
            arp=config.arp,
            reassembly=config.reassembly,
            icmp=config.icmp,
        )
        self.ip = IPv4Layer(settings, self._statistics, self.rng)
        for ip_text, mac_text in config.static_arp:
            self.ip.arp.add_static(ip_from_str(ip_text), mac_from_str(mac_text))
        self.tcp = TCPLayer(self.ip, self._statistics, config.tcp, self.rng)
        self.udp = UDPLayer(self.ip, self._statistics, config.udp, self.rng)
        # Stepped inside poll in registration order; a tuple replaced (never changed in place) by
        # add/remove_application, so an application may remove itself while poll steps them.
        self._applications: tuple[Application, ...] = ()
        self._started = False
        self._last_now = 0.0
        self._tracer: Tracer | None = None
        self._link_poll = getattr(link, "poll", None)
        # Set by a StackThread under PYSTACK_DEBUG_LOCKS=1: true when this thread holds its lock.
        self.lock_check: Callable[[], bool] | None = None

    # ---------------------------------------------------------------------------------------
    @property
    def address(self) -> int:
        return self.ip.address

    @property
    def mac(self) -> bytes:
        return self.ip.settings.mac

    def describe(self) -> str:
        kind = "tap" if self.link.kind is LinkKind.ETHERNET else "tun"
        mac = f" mac {mac_to_str(self.mac)}" if self.link.kind is LinkKind.ETHERNET else ""
        return (
            f"{ip_to_str(self.address)}/{self.ip.settings.prefix_length} on {kind} "
            f"mtu {self.ip.mtu}{mac}"
        )

    def set_trace(
        self, trace: Callable[[str], None] | TraceOptions | None, label: str = ""
    ) -> None:
        """Send the trace (``pystack.tracing``: packets in and out, drops with their reason,
        state changes, and with ``TraceLevel.EVENTS`` the TCP variables and timers) to a sink,
        each line after ``label``; None turns it off. A bare sink means the packet level. With
        ``TraceOptions.record`` (``--record``) every event also goes there as a record marked
        ``label`` (or "host") and stamped with this stack's clock."""
        links = []
        link: object = self.link
        while link is not None:  # the impairment links among the link's wrappers
            if isinstance(link, ImpairmentLink):
                links.append(link)
            link = getattr(link, "inner", None)
        if trace is None:
            self._tracer = None
            self.ip.trace = None
            self.tcp.set_trace_hooks(None, None, None)
            self._statistics.on_drop = None
            for impaired in links:
                impaired.set_trace(None)
            return
        options = trace if isinstance(trace, TraceOptions) else TraceOptions(trace)
        ip = self.ip
        tracer = self._tracer = Tracer(options, ip.ethernet, label, self.clock, lambda: ip.address)
        ip.trace = tracer.packet
        wanted = options.level is not TraceLevel.PACKETS or options.record is not None
        events = tracer.watch if wanted else None
        self.tcp.set_trace_hooks(tracer.state, tracer.send_note, events)
        self._statistics.on_drop = tracer.drop
        for impaired in links:
            impaired.set_trace(tracer.impairment)

    # ---------------------------------------------------------------------------------------
    def start(self, now: float) -> None:
        """Once, at the first poll: announce ourselves on Ethernet (gratuitous ARP)."""
        self._started = True
        if self.link.kind is LinkKind.ETHERNET and self.config.gratuitous_arp and self.address:
            self.ip.arp.announce(now)

    def poll(self, now: float) -> int:
        """Move packets and fire timers due at ``now``; returns the number of frames handled."""
        if self.lock_check is not None:
            assert self.lock_check(), "Stack.poll without the stack thread's lock"
        if not self._started:
            self.start(now)
        self._last_now = now
        ip = self.ip
        frames = self.link.receive(now, self.config.receive_budget)
        for frame in frames:
            ip.process_frame(frame, now)
        handled = len(frames)
        if ip.loopback:
            handled += ip.process_loopback(now, self.config.loopback_budget)
        if self._tracer is not None:
            self._tracer.current = None  # what is dropped from here on names its own packet
        ip.run_timers(now)
        self.tcp.run_timers(now)
        self.udp.run_timers(now)
        for application in self._applications:
            application.step(now)
        self.flush(now)
        return handled

    def add_application(self, application: Application) -> None:
        """Step ``application`` in every ``poll`` (after input and the protocols' timers, in the
        order applications were added) and count its ``next_deadline`` among the stack's."""
        if any(existing is application for existing in self._applications):
            raise ValueError("application already added")
        self._applications = (*self._applications, application)

    def remove_application(self, application: Application) -> None:
        """Stop stepping ``application`` and asking it for deadlines (an application removed
        during a poll's steps is still stepped in that poll if its turn has not come yet).
        Removing one that is not there does nothing (a service closed twice)."""
        self._applications = tuple(a for a in self._applications if a is not application)

    @property
    def applications(self) -> tuple[Application, ...]:
        """The added applications, in the order they are stepped."""
        return self._applications

    def find_application(self, kind: type[A]) -> A | None:
        """The first added application that is a ``kind`` (e.g. the host's DHCP client)."""
        for application in self._applications:
            if isinstance(application, kind):
                return application
        return None

    def flush(self, now: float) -> None:
        """Let the protocols emit what is due, then hand every queued frame to the link."""
        if self.lock_check is not None:
            assert self.lock_check(), "Stack.flush without the stack thread's lock"
        self.tcp.flush(now)
        if self.ip.loopback:  # what TCP sent to ourselves is delivered within the same poll
            self.ip.process_loopback(now, self.config.loopback_budget)
            if self._tracer is not None:
                self._tracer.current = None
            self.tcp.flush(now)
        outbox = self.ip.outbox
        if outbox:
            send = self.link.send
            for frame in outbox:
                if isinstance(frame, SegmentedFrame):
                    self.link.send_segmented(frame, now)  # type: ignore[attr-defined]
                else:
                    send(frame, now)
            outbox.clear()
        if self._link_poll is not None:
            self._link_poll(now)

    def next_deadline(self) -> float | None:
        """When ``poll`` must run next; None when only new input can create work."""
        if self.ip.outbox or self.ip.loopback or not self._started:
            return self._last_now  # already due
        earliest = self.tcp.next_deadline()
        if earliest is not None and earliest <= self._last_now:
            return self._last_now
        # A running minimum, no list: this runs after every poll of the stack thread.
        for deadline in (
            self.udp.next_deadline(),
            self.ip.next_deadline(),
            self.link.next_deadline(),
        ):
            if deadline is not None and (earliest is None or deadline < earliest):
                earliest = deadline
        for application in self._applications:
            deadline = application.next_deadline()
            if deadline is not None and (earliest is None or deadline < earliest):
                earliest = deadline
        return earliest

    # ---------------------------------------------------------------------------------------
    def ping(
        self,
        destination: str | int,
        identifier: int,
        sequence: int,
        data: bytes = b"",
        now: float | None = None,
    ) -> bool:
        """Queue an ICMP echo request; replies appear in ``echo_replies``."""
        dst = ip_from_str(destination) if isinstance(destination, str) else destination
        when = self.clock.now() if now is None else now
        return self.ip.icmp.ping(dst, identifier, sequence, data, when)

    @property
    def echo_replies(self) -> list[EchoReply]:
        return list(self.ip.icmp.echo_replies)

    def take_echo_replies(self) -> list[EchoReply]:
        replies = list(self.ip.icmp.echo_replies)
        self.ip.icmp.echo_replies.clear()
        return replies

    def statistics(self) -> dict[str, dict[str, int]]:
        snapshot = self._statistics.snapshot()
        link = self.link.statistics
        snapshot["link"] = {
            "frames_sent": link.frames_sent,
            "bytes_sent": link.bytes_sent,
            "frames_received": link.frames_received,
            "bytes_received": link.bytes_received,
            "send_errors": link.send_errors,
            "receive_overflows": link.receive_overflows,
        }
        return snapshot

    @property
    def counters(self) -> Statistics:
        """The live counters (tests assert on ``counters.drops[DropReason.X]``)."""
        return self._statistics

    def close(self) -> None:
        self.link.close()

    # -- API for socket layers -------------------------------------------------------------------
    # What a socket layer (usocket) needs from the stack, by name, so that it does not reach into
    # the protocol layers' attributes. Every method runs under the caller's stack lock.
    def has_route(self, destination: int) -> bool:
        """Whether a packet to ``destination`` has somewhere to go (lwIP's ERR_RTE if not)."""
        return self.ip.routes.lookup(destination) is not None

    def open_udp(self, address: int = 0, port: int = 0, reuse: bool = False) -> UDPEndpoint:
        """A UDP endpoint bound to ``address:port`` (0: any address, an ephemeral port)."""
        return self.udp.open(address, port, reuse=reuse)

    def tcp_listen(
        self, port: int, address: int = 0, congestion: CongestionControlName | str | None = None
    ) -> TCPListener:
        """A TCP listener on ``address:port`` with the configured maximum backlog; the
        connections it accepts run ``congestion`` (None: the stack's setting)."""
        name = congestion_control_name(congestion) if congestion is not None else None
        listener = self.tcp.listen(port, self.tcp.settings.max_backlog, address)
        listener.congestion_control = name
        return listener

    def tcp_connect(
        self,
        address: int,
        port: int,
        now: float,
        local_port: int | None = None,
        local_address: int | None = None,
        nodelay: bool = False,
        congestion: CongestionControlName | str | None = None,
    ) -> TCPConnection:
        """Active open to ``address:port``; the SYN leaves at the next flush. ``nodelay`` turns
        Nagle's algorithm off from the start; ``congestion`` chooses the congestion control
        algorithm (None: the stack's setting). ValueError for an unknown algorithm, before
        anything is sent."""
        name = congestion_control_name(congestion) if congestion is not None else None
        connection = self.tcp.connect(address, port, now, local_port, local_address)
        connection.set_nodelay(nodelay)
        if name is not None:
            connection.set_congestion_control(name)
        return connection

    def tcp_set_congestion_control(
        self, target: TCPConnection | TCPListener, name: CongestionControlName | str
    ) -> None:
        """TCP_CONGESTION: ``target`` (a connection, from now on with its cwnd and ssthresh
        kept; or a listener, for the connections it accepts later) runs algorithm ``name``.
        ValueError naming the known algorithms for an unknown one."""
        algorithm = congestion_control_name(name)
        if isinstance(target, TCPListener):
            target.congestion_control = algorithm
        else:
            target.set_congestion_control(algorithm)

    def tcp_set_nodelay(self, connection: TCPConnection, nodelay: bool) -> None:
        """TCP_NODELAY on ``connection``; the next flush sends what Nagle's algorithm held."""
        connection.set_nodelay(nodelay)
        self.tcp.connection_changed(connection)

    @property
    def tcp_send_buffer_size(self) -> int:
        """The send buffer of a new TCP connection, in bytes."""
        return self.tcp.settings.send_buffer

    def tcp_listening_on(self) -> Iterator[tuple[int, int]]:
        """``(address, port)`` of every TCP listener (address 0: any)."""
        return iter(self.tcp.listeners)

    def tcp_ports_held(self) -> Iterator[tuple[int, int]]:
        """``(local address, local port)`` of every TCP connection, TIME-WAIT included."""
        return ((key[0], key[1]) for key in self.tcp.connections)

    def tcp_ephemeral_ports(self) -> Iterator[int]:
        """Every ephemeral port once, from a random one upwards (wrapping around); the random
        start is drawn when the first port is asked for."""
        low, high = self.tcp.settings.ephemeral_ports
        span = high - low + 1
        start = self.tcp.rng.randrange(span)
        for step in range(span):
            yield low + (start + step) % span

    def count_event(self, name: str) -> None:
        """Add one to the counter ``name`` (a socket layer's own events, ``usocket.*``)."""
        self._statistics.count(name)
