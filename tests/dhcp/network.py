"""A DHCP client stack and a server stack on one in-memory Ethernet link, on a manual clock.

``DHCPNetwork`` builds the client (``StackConfig(address="dhcp")``, a fixed MAC) and the server
host 10.0.0.1/24 running ``DHCPServerService`` (pool 10.0.0.2-10.0.0.20, router and DNS
10.0.0.1), and records every frame the client sends with its time (``sent``), parsed down to the
DHCP message (through the IPv4 layer's trace hook), so tests can say what went out when and
to where.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from pystack.clock import ManualClock
from pystack.dhcp.client import DHCPClientSettings, DHCPState, StackDHCPClient, dhcp_client
from pystack.dhcp.server import DHCPServer, DHCPServerService, DHCPServerSettings
from pystack.host import build_stack
from pystack.link.base import LinkKind
from pystack.link.memory import MemoryLink
from pystack.sim.network import Simulation
from pystack.stack import Stack, StackConfig
from pystack.wire.addresses import ip_from_str
from pystack.wire.dhcp import DHCPMessage
from pystack.wire.ethernet import EthernetFrame
from pystack.wire.ipv4 import IPv4Packet
from pystack.wire.udp import UDPDatagram

SERVER = ip_from_str("10.0.0.1")
FIRST = ip_from_str("10.0.0.2")
CLIENT_MAC = "02:00:00:00:00:02"


@dataclass(frozen=True)
class Sent:
    """One DHCP message the client put on the wire."""

    time: float
    source: int
    destination: int
    message: DHCPMessage


class DHCPNetwork:
    def __init__(
        self,
        lease_time: int = 1000,
        seed: int = 1,
        client: DHCPClientSettings | None = None,
        pool: tuple[str, str] = ("10.0.0.2", "10.0.0.20"),
    ) -> None:
        self.clock = ManualClock()
        client_end, server_end = MemoryLink.pair(LinkKind.ETHERNET, 1500, capacity=1024)
        settings = client if client is not None else DHCPClientSettings()
        self.client = build_stack(
            StackConfig(address="dhcp", mac=CLIENT_MAC, dhcp=settings),
            client_end,
            self.clock,
            random.Random(seed),
        )
        self.server_stack = Stack(
            StackConfig(address="10.0.0.1/24"), server_end, self.clock, random.Random(seed + 1)
        )
        self.service = DHCPServerService(
            self.server_stack,
            DHCPServerSettings(
                SERVER,
                (ip_from_str(pool[0]), ip_from_str(pool[1])),
                24,
                router=SERVER,
                dns_servers=(SERVER,),
                lease_time=lease_time,
            ),
        )
        self.simulation = Simulation(self.clock)
        self.simulation.add(self.client)
        self.simulation.add(self.server_stack)
        self.sent: list[Sent] = []
        self.client.ip.trace = self._trace  # sees every frame the client queues for the link

    @property
    def dhcp(self) -> StackDHCPClient:
        client = dhcp_client(self.client)
        assert client is not None
        return client

    @property
    def server(self) -> DHCPServer:
        return self.service.server

    def _trace(self, direction: str, frame: bytes, ethernet: bool, note: str) -> None:
        if direction != "out" or not ethernet:
            return
        parsed = EthernetFrame.parse(frame)
        if parsed.ethertype != 0x0800:
            return
        packet = IPv4Packet.parse(parsed.payload)
        if packet.protocol != 17:
            return
        datagram = UDPDatagram.parse(packet.payload, packet.src, packet.dst)
        if datagram.dst_port == 67:
            message = DHCPMessage.parse(datagram.payload)
            self.sent.append(Sent(self.clock.now(), packet.src, packet.dst, message))

    def run_until_state(self, state: DHCPState, timeout: float) -> bool:
        return self.simulation.run_until(lambda: self.dhcp.state is state, timeout)

    def bind(self) -> None:
        assert self.run_until_state(DHCPState.BOUND, 5.0)
