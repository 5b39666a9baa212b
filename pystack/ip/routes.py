"""The routing table: longest-prefix match over connected subnets, gateways and loopback.

A host's table is small (loopback, the connected subnet, a default route, maybe a few static
routes), so lookup is a scan of routes sorted by prefix length, longest first.
Entry points: ``Route``, ``RoutingTable.add``, ``RoutingTable.lookup``.
"""

from __future__ import annotations

from dataclasses import dataclass

from pystack.wire.addresses import ip_to_str, prefix_mask

LOOPBACK = "loopback"
LINK = "link"


@dataclass(frozen=True, slots=True)
class Route:
    network: int
    prefix_length: int
    gateway: int | None  # None: directly connected (the destination is the next hop)
    device: str  # LINK or LOOPBACK

    @property
    def mask(self) -> int:
        return prefix_mask(self.prefix_length)

    def matches(self, address: int) -> bool:
        return address & self.mask == self.network

    def next_hop(self, destination: int) -> int:
        return destination if self.gateway is None else self.gateway

    def describe(self) -> str:
        where = f"via {ip_to_str(self.gateway)}" if self.gateway is not None else "connected"
        return f"{ip_to_str(self.network)}/{self.prefix_length} {where} dev {self.device}"


class RoutingTable:
    MAX_ROUTES = 256

    def __init__(self) -> None:
        self._routes: list[Route] = []

    def add(
        self, network: int, prefix_length: int, gateway: int | None = None, device: str = LINK
    ) -> Route:
        if not 0 <= prefix_length <= 32:
            raise ValueError(f"bad prefix length {prefix_length}")
        if len(self._routes) >= self.MAX_ROUTES:
            raise ValueError("routing table full")
        route = Route(network & prefix_mask(prefix_length), prefix_length, gateway, device)
        self._routes = [
            r
            for r in self._routes
            if (r.network, r.prefix_length) != (route.network, route.prefix_length)
        ]
        self._routes.append(route)
        self._routes.sort(key=lambda r: -r.prefix_length)
        return route

    def remove(self, network: int, prefix_length: int) -> None:
        network &= prefix_mask(prefix_length)
        self._routes = [
            r for r in self._routes if (r.network, r.prefix_length) != (network, prefix_length)
        ]

    def lookup(self, destination: int) -> Route | None:
        for route in self._routes:
            if destination & route.mask == route.network:
                return route
        return None

    def routes(self) -> list[Route]:
        return list(self._routes)
