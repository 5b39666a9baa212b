"""The resolver on a stack: ``Resolver`` (sans-IO) glued to the stack's UDP layer.

``StackResolver`` is an application of the stack (stepped by ``Stack.poll``, with its deadline
among the stack's): it opens one UDP endpoint per query source port the resolver picks, hands
every datagram that arrives on them to ``process_response``, runs the resolver's timers and sends
what it asks to send. Endpoints are closed once no query is in flight.
Entry points: ``StackResolver.resolve`` (call under the stack lock), ``StackResolver.step``.
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING, Any

from pystack.dhcp.client import dhcp_client
from pystack.dns.resolver import Lookup, Resolver, ResolverSettings

if TYPE_CHECKING:
    from pystack.stack import Stack

DNS_PORT = 53
MAX_PORT_ATTEMPTS = 8  # a random source port already bound elsewhere: pick again, this often


class StackResolver:
    def __init__(self, stack: Stack, settings: ResolverSettings, configured: bool = True) -> None:
        self.stack = stack
        self.configured_servers = configured  # False: follow the DHCP lease's DNS servers
        self.resolver = Resolver(settings, stack.rng, stack.counters)
        self._endpoints: dict[int, Any] = {}
        stack.add_application(self)

    def resolve(self, name: str, now: float) -> Lookup:
        self._follow_dhcp()
        lookup = self.resolver.resolve(name, now)
        if not lookup.done:
            self._send(now)
        return lookup

    def _follow_dhcp(self) -> None:
        """Without a configured server, ask the ones the DHCP lease named (RFC 2132 option 6)."""
        if self.configured_servers:
            return
        dhcp = dhcp_client(self.stack)
        lease = dhcp.lease if dhcp is not None else None
        if lease is not None and lease.dns_servers:
            servers = tuple((address, DNS_PORT) for address in lease.dns_servers)
            if tuple(self.resolver.settings.servers) != servers:
                self.resolver.set_servers(servers)
                self.stack.counters.count("dns.servers_from_dhcp")

    def next_deadline(self) -> float | None:
        return self.resolver.next_deadline()

    def step(self, now: float) -> None:
        resolver = self.resolver
        for port, endpoint in list(self._endpoints.items()):
            while (received := endpoint.receive()) is not None:
                payload, source = received
                resolver.process_response(payload, source, port, now)
        resolver.run_timers(now)
        self._send(now)
        if resolver.in_flight() == 0 and self._endpoints:
            for endpoint in self._endpoints.values():
                endpoint.close(now)
            self._endpoints.clear()

    def _send(self, now: float) -> None:
        for payload, server, port in self.resolver.datagrams_to_send(now):
            endpoint = self._endpoints.get(port)
            if endpoint is None:
                try:
                    endpoint = self.stack.udp.open(0, port)
                except OSError as error:
                    if error.errno != errno.EADDRINUSE:
                        raise
                    self.stack.counters.count("dns.source_port_busy")
                    continue  # the query's retry timer sends it again (on the same port)
                self._endpoints[port] = endpoint
            try:
                endpoint.send_to(payload, server, now)
            except OSError:
                self.stack.counters.count("dns.send_failed")
