"""A DNS service on a stack: ``pystack.dns.server.DNSServer`` answering UDP queries on port 53.

An application like the other services (stepped by ``Stack.poll``); the simulated network's peer
runs it so scripts can resolve ``peer.sim``, ``example.com`` and the names of a ``--hosts`` file.
Entry points: ``DNSService``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from pystack.dns.server import DNSServer

if TYPE_CHECKING:
    from pystack.stack import Stack

STEP_BUDGET = 256


class DNSService:
    name = "dns"
    protocol = "udp"

    def __init__(self, stack: Stack, zone: Mapping[str, int], port: int = 53) -> None:
        self.stack = stack
        self.port = port
        self.server = DNSServer(dict(zone), statistics=stack.counters)
        self.endpoint = stack.udp.open(0, port)
        self.endpoint.set_queue_limit(256)
        self.answered = 0
        stack.add_application(self)

    def next_deadline(self) -> float | None:
        return None  # it only answers

    def step(self, now: float) -> None:
        for _ in range(STEP_BUDGET):
            received = self.endpoint.receive()
            if received is None:
                return
            query, source = received
            reply = self.server.answer(query)
            if reply is not None:
                self.answered += 1
                self.endpoint.send_to(reply, source, now)

    def describe(self) -> str:
        return f"dns/{self.port}: {self.answered} answers"
