"""The test as the peer on the far end of a ``MemoryLink`` from one ``Stack``.

``Peer`` owns the stack under test, its manual clock and the other end of the link. Its methods
read from the test's point of view: ``peer_sends`` puts a frame on the wire and polls the stack,
``sent_frames`` / ``sent_packets`` / ``sent_arp`` take (and parse) what the stack put on the wire,
``expect_nothing`` asserts the wire stayed quiet, ``at(t)`` moves the clock and polls.
"""

from __future__ import annotations

import random
from collections import defaultdict

from pystack.clock import ManualClock
from pystack.host import build_stack
from pystack.link.base import LinkKind
from pystack.link.memory import MemoryLink
from pystack.stack import StackConfig
from pystack.stats import DropReason, NamedCounts
from pystack.wire.arp import ARPPacket
from pystack.wire.ethernet import EthernetFrame
from pystack.wire.ipv4 import IPv4Packet
from tests.helpers.frames import PEER_MAC, STACK_MAC, ethernet_ipv4, read_arp, read_ipv4

STACK_CONFIG = StackConfig(address="10.0.0.2/24", mac="02:00:00:00:00:02")


class Peer:
    def __init__(
        self,
        kind: LinkKind = LinkKind.IP,
        config: StackConfig = STACK_CONFIG,
        mtu: int = 1500,
        start: bool = True,
        seed: int = 7,
    ) -> None:
        self.kind = kind
        self.ethernet = kind is LinkKind.ETHERNET
        self.link, self.wire = MemoryLink.pair(kind, mtu, capacity=8192)
        self.clock = ManualClock()
        self.stack = build_stack(config, self.link, self.clock, random.Random(seed))
        if start:
            self.stack.poll(0.0)
            self.wire.receive(0.0, 100)  # the gratuitous ARP, tested on its own

    # time -------------------------------------------------------------------------------------
    @property
    def now(self) -> float:
        return self.clock.now()

    def at(self, when: float) -> None:
        """Move the clock to ``when`` and poll the stack."""
        self.clock.set(when)
        self.stack.poll(when)

    def poll(self) -> None:
        self.stack.poll(self.now)

    # what the stack counted -------------------------------------------------------------------
    @property
    def drops(self) -> defaultdict[DropReason, int]:
        return self.stack.counters.drops

    @property
    def counters(self) -> NamedCounts:
        return self.stack.counters.counters

    @property
    def malformed(self) -> NamedCounts:
        return self.stack.counters.malformed

    def dropped(self) -> dict[DropReason, int]:
        """The non-zero drop counters."""
        return {reason: n for reason, n in self.drops.items() if n}

    # the wire ---------------------------------------------------------------------------------
    def peer_sends(self, frame: bytes) -> None:
        """Put one frame on the wire and let the stack handle it."""
        self.wire.send(frame, self.now)
        self.stack.poll(self.now)

    def peer_sends_packet(
        self, packet: IPv4Packet | bytes, dst: bytes = STACK_MAC, src: bytes = PEER_MAC
    ) -> None:
        """An IPv4 packet, in an Ethernet frame to ``dst`` on an Ethernet link."""
        data = packet if isinstance(packet, bytes) else packet.build()
        self.peer_sends(ethernet_ipv4(data, dst, src) if self.ethernet else data)

    def sent_frames(self) -> list[bytes]:
        """Every frame the stack has put on the wire since the last call."""
        return self.wire.receive(self.now, 1_000_000)

    def sent_packets(self, dst: bytes | None = PEER_MAC) -> list[IPv4Packet]:
        """The IPv4 packets sent; on Ethernet each must be addressed to ``dst`` (None: any)."""
        packets = []
        for frame in self.sent_frames():
            if self.ethernet and dst is not None:
                assert EthernetFrame.parse(frame).dst == dst
                assert EthernetFrame.parse(frame).src == STACK_MAC
            packets.append(read_ipv4(frame, self.ethernet))
        return packets

    def sent_arp(self) -> list[tuple[EthernetFrame, ARPPacket]]:
        return [read_arp(frame) for frame in self.sent_frames()]

    def expect_nothing(self) -> None:
        assert self.sent_frames() == []
