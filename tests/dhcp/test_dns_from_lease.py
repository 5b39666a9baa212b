"""getaddrinfo asks the DNS servers a DHCP lease names, unless --dns chose one."""

from __future__ import annotations

from pystack.dhcp.client import dhcp_client
from pystack.sim.world import SimulatedNetwork
from pystack.wire.addresses import ip_from_str
from usocket.context import NetworkContext, resolver_function
from usocket.modules import socket_module

NOBODY = ("10.0.0.77", 53)


def _socket_module(network: SimulatedNetwork):  # type: ignore[no-untyped-def]
    context = NetworkContext(
        network.thread,
        network.host,
        resolver_function(network.thread, network.host, network.resolver),
    )
    return socket_module(context)


def test_resolver_follows_the_dns_servers_of_the_dhcp_lease() -> None:
    with SimulatedNetwork(seed=4, dhcp=True) as network:
        # Start from a server nobody runs: only the lease can make the lookup work.
        network.thread.call(
            lambda: network.resolver.resolver.set_servers(((ip_from_str(NOBODY[0]), NOBODY[1]),))
        )
        assert network.thread.wait_for(
            lambda: (dhcp := dhcp_client(network.host)) is not None and dhcp.lease is not None, 10.0
        )
        socket = _socket_module(network)
        assert socket.getaddrinfo("peer.sim", 7)[0][-1] == ("10.0.0.1", 7)
        assert network.host.statistics()["counters"]["dns.servers_from_dhcp"] == 1


def test_an_explicit_dns_server_is_kept_even_with_a_lease() -> None:
    with SimulatedNetwork(seed=4, dhcp=True, dns=ip_from_str("10.0.0.1")) as network:
        assert network.thread.wait_for(
            lambda: (dhcp := dhcp_client(network.host)) is not None and dhcp.lease is not None, 10.0
        )
        socket = _socket_module(network)
        assert socket.getaddrinfo("example.com", 80)[0][-1] == ("10.0.0.1", 80)
        assert "dns.servers_from_dhcp" not in network.host.statistics()["counters"]
