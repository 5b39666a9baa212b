"""The simulated network of ``pystack run --link sim``: the script's host and a peer, in memory.

The script's host is 10.0.0.2/24; the peer 10.0.0.1 is another pystack stack in the same process
running services written on pystack: TCP and UDP echo 7, discard 9, daytime 13, TCP chargen 19
(1,000,000 bytes, then a close), HTTP/1.1 on 80 and over TLS on 8443, a TLS echo on 443 and an
MQTT 3.1.1 broker on 1883 (certificates: pystack/services/certs), and a DNS server on 53. With ``dhcp=True`` the host starts unconfigured and the peer's
DHCP server leases it an address (the first free one, 10.0.0.2; router and DNS 10.0.0.1).
Both stacks share one ``StackThread``, on the real clock or on the ``clock`` given (a
``VirtualClock``: ``pystack run``'s default, see docs/virtual-time.md), over an in-memory
Ethernet link (so ARP happens as on a board's network), optionally impaired. Nothing needs root and nothing
touches the host's network.
Entry points: ``SimulatedNetwork``.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Callable

from pystack.clock import Clock, SystemClock
from pystack.dhcp.server import DHCPServerService, DHCPServerSettings
from pystack.dns.client import StackResolver
from pystack.dns.resolver import ResolverSettings
from pystack.host import build_stack
from pystack.link.base import Link, LinkKind
from pystack.link.impair import ImpairmentConfig, ImpairmentLink
from pystack.link.memory import MemoryLink
from pystack.link.pcap import PcapLink
from pystack.runner import StackThread
from pystack.services.naming import DNSService
from pystack.services.stream import start_services
from pystack.stack import DHCP, Stack, StackConfig
from pystack.tcp.settings import TCPSettings
from pystack.tracing import TraceOptions
from pystack.wire.addresses import ip_from_str, parse_cidr, prefix_mask

HOST_ADDRESS = "10.0.0.2/24"
PEER_ADDRESS = "10.0.0.1"
PEER_SERVICES = "echo,discard,daytime,chargen=1000000,http,https,tlsecho,mqtt"
DNS_PORT = 53
DHCP_PREFIX = 24  # the subnet the peer serves when the host's address is "dhcp"


def _dhcp_server(peer: Stack, address: int, prefix: int) -> DHCPServerService:
    """The peer's DHCP server: the whole subnet but the peer, the peer as router and DNS."""
    mask = prefix_mask(prefix)
    network, broadcast = address & mask, (address & mask) | (~mask & 0xFFFFFFFF)
    settings = DHCPServerSettings(
        address, (network + 1, broadcast - 1), prefix, router=address, dns_servers=(address,)
    )
    return DHCPServerService(peer, settings)


class SimulatedNetwork:
    def __init__(
        self,
        *,
        address: str = HOST_ADDRESS,
        peer: str = PEER_ADDRESS,
        seed: int | None = None,
        impair: str | None = None,
        pcap: str | None = None,
        trace: Callable[[str], None] | TraceOptions | None = None,
        services: str = PEER_SERVICES,
        mtu: int = 1500,
        hosts: dict[str, int] | None = None,
        dhcp: bool = False,
        dns: int | None = None,  # the server getaddrinfo asks (default: the peer's)
        clock: Clock | None = None,  # default: real time (SystemClock)
        host_tcp: TCPSettings | None = None,  # the host's TCP settings (default: TCPSettings())
    ) -> None:
        rng = random.Random(seed)
        host_end, peer_end = MemoryLink.pair(kind=LinkKind.ETHERNET, mtu=mtu, capacity=4096)
        link: Link = host_end
        if pcap:
            link = PcapLink(link, pcap)
        if impair:
            link = ImpairmentLink(link, ImpairmentConfig.parse(impair, default_seed=seed))
        if clock is None:
            clock = SystemClock()
        self.clock = clock
        dhcp = dhcp or address == DHCP
        prefix = DHCP_PREFIX if address == DHCP else parse_cidr(address)[1]
        host_config = (
            StackConfig(address=DHCP) if dhcp else StackConfig(address=address, gateway=peer)
        )
        if host_tcp is not None:
            host_config = dataclasses.replace(host_config, tcp=host_tcp)
        self.host = build_stack(
            host_config,
            link,
            clock,
            random.Random(rng.getrandbits(64)),
        )
        self.peer = build_stack(
            StackConfig(address=f"{peer}/{prefix}"),
            peer_end,
            clock,
            random.Random(rng.getrandbits(64)),
        )
        if trace is not None:
            # With the peer traced too (TraceOptions.peer), each line says whose it is.
            traced_peer = isinstance(trace, TraceOptions) and trace.peer
            self.host.set_trace(trace, label="host" if traced_peer else "")
            if traced_peer:
                self.peer.set_trace(trace, label="peer")
            elif isinstance(trace, TraceOptions) and trace.record is not None:
                # --record: the peer is recorded too, and printed only with --trace-peer
                self.peer.set_trace(dataclasses.replace(trace, sink=None), label="peer")
        self.services = start_services(self.peer, services) if services else []
        # The peer's DNS server: peer.sim and example.com are the peer itself, plus --hosts.
        peer_address = ip_from_str(peer)
        self.zone = {"peer.sim": peer_address, "example.com": peer_address, **(hosts or {})}
        self.dns = DNSService(self.peer, self.zone, DNS_PORT)
        # With dhcp, the host starts unconfigured and the peer leases it an address of its subnet.
        self.dhcp_server = _dhcp_server(self.peer, peer_address, prefix) if dhcp else None
        server = peer_address if dns is None else dns
        settings = ResolverSettings(servers=((server, DNS_PORT),))
        # An explicit --dns stays; otherwise a DHCP lease's DNS servers are followed.
        self.resolver = StackResolver(self.host, settings, configured=dns is not None)
        self.thread = StackThread(self.host, self.peer, clock=clock, name="pystack-sim")
        self._started = False

    def start(self) -> SimulatedNetwork:
        if not self._started:
            self._started = True
            self.thread.start()
        return self

    def __enter__(self) -> SimulatedNetwork:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        if self._started:
            self.thread.stop()
            self._started = False
        self.host.close()
        self.peer.close()
