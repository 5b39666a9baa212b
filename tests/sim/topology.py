"""Two stacks on one in-memory link, optionally impaired, driven by a ``Simulation``.

``TwoHosts(kind, impairment)`` builds host ``a`` (10.0.0.1) and host ``b`` (10.0.0.2); the
impairment (text such as ``"loss=5%,delay=20ms,seed=7"``) wraps ``a``'s end of the link, so it
applies to both directions (outbound: a -> b, inbound: b -> a). ``ping_series`` sends numbered
echo requests from one host at a fixed interval and remembers what was sent and when.
Everything is seeded: the same arguments give the same run.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from pystack.clock import ManualClock
from pystack.ip.arp import ARPSettings
from pystack.ip.icmp import EchoReply
from pystack.link.base import Link, LinkKind
from pystack.link.impair import ImpairmentConfig, ImpairmentLink
from pystack.link.memory import MemoryLink
from pystack.sim.network import Simulation
from pystack.stack import Stack, StackConfig
from pystack.wire.addresses import ip_from_str

A_IP = ip_from_str("10.0.0.1")
B_IP = ip_from_str("10.0.0.2")


def payload(sequence: int, size: int) -> bytes:
    """Distinct, reproducible data for echo ``sequence``."""
    return random.Random(f"echo/{sequence}/{size}").randbytes(size)


@dataclass
class Series:
    """What one ``ping_series`` sent: data and time per sequence number."""

    data: dict[int, bytes] = field(default_factory=dict)
    sent_at: dict[int, float] = field(default_factory=dict)


class TwoHosts:
    def __init__(
        self,
        kind: LinkKind = LinkKind.IP,
        impairment: str | None = None,
        mtu: int = 1500,
        trace: bool = False,
        arp: ARPSettings | None = None,
    ) -> None:
        self.kind = kind
        self.clock = ManualClock()
        end_a, end_b = MemoryLink.pair(kind, mtu, capacity=8192)
        self.impaired: ImpairmentLink | None = None
        link_a: Link = end_a
        if impairment is not None:
            self.impaired = ImpairmentLink(end_a, ImpairmentConfig.parse(impairment))
            link_a = self.impaired
        arp_settings = arp if arp is not None else ARPSettings()
        self.a = Stack(
            StackConfig(address="10.0.0.1/24", mac="02:00:00:00:00:01", arp=arp_settings),
            link_a,
            self.clock,
            random.Random(1),
        )
        self.b = Stack(
            StackConfig(address="10.0.0.2/24", mac="02:00:00:00:00:02", arp=arp_settings),
            end_b,
            self.clock,
            random.Random(2),
        )
        self.sim = Simulation(self.clock)
        self.sim.add(self.a)
        self.sim.add(self.b)
        self.lines: list[str] = []
        if trace:
            self.a.set_trace(self._record, "a")
            self.b.set_trace(self._record, "b")

    def _record(self, line: str) -> None:
        self.lines.append(f"{self.clock.now():.6f} {line}")

    @property
    def now(self) -> float:
        return self.sim.now

    def ping_series(
        self,
        count: int,
        interval: float,
        size: int,
        identifier: int = 1,
        sender: Stack | None = None,
    ) -> Series:
        """``count`` echo requests ``interval`` apart (from ``a`` unless told), then return."""
        pinger = self.a if sender is None else sender
        target = B_IP if pinger is self.a else A_IP
        series = Series()
        for sequence in range(count):
            data = payload(sequence, size)
            series.data[sequence] = data
            series.sent_at[sequence] = self.now
            pinger.ping(target, identifier, sequence, data, now=self.now)
            self.sim.run_for(interval)
        return series

    def assert_replies_match(
        self, replies: list[EchoReply], series: Series, source: int, identifier: int = 1
    ) -> set[int]:
        """Every reply is byte-exact for its request; returns the sequence numbers answered."""
        for reply in replies:
            assert reply.source == source
            assert reply.identifier == identifier
            assert reply.sequence in series.data, f"reply to unknown sequence {reply.sequence}"
            assert reply.data == series.data[reply.sequence], f"corrupt reply {reply.sequence}"
            assert reply.time >= series.sent_at[reply.sequence]
        return {reply.sequence for reply in replies}
