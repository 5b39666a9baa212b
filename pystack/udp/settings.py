"""UDP settings: queue depth, port range, limits and the IGMP timers in one frozen value.

Defaults follow lwIP as MicroPython configures it (the socket layer above copies its semantics)
and, where lwIP leaves no mark, the RFCs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pystack.ip.igmp import IGMPSettings


@dataclass(frozen=True, slots=True)
class UDPSettings:
    receive_queue: int = 4  # datagrams per endpoint (modlwip LWIP_INCOMING_PACKET_QUEUE_LEN)
    ephemeral_ports: tuple[int, int] = (49152, 65535)  # lwIP UDP_LOCAL_PORT_RANGE (RFC 6335)
    max_endpoints: int = 1024  # open endpoints at once (lwIP MEMP_NUM_UDP_PCB; past it: ENOMEM)
    multicast_ttl: int = 1  # RFC 1112 6.1: multicast stays on the local network unless asked
    igmp: IGMPSettings = field(default_factory=IGMPSettings)

    def __post_init__(self) -> None:
        low, high = self.ephemeral_ports
        if not 1 <= low <= high <= 65535:
            raise ValueError(f"bad ephemeral port range {low}..{high}")
        if self.receive_queue < 1 or self.max_endpoints < 1:
            raise ValueError("receive_queue and max_endpoints must be at least 1")
        if not 1 <= self.multicast_ttl <= 255:
            raise ValueError(f"multicast TTL {self.multicast_ttl} outside 1..255")
