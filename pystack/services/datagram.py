"""Small UDP services that run inside a stack: echo (RFC 862), discard (RFC 863), daytime (RFC 867).

The UDP forms of the RFCs: echo sends each datagram back to its source, discard drops it,
daytime answers any datagram with one datagram holding the date and time (the request's data is
ignored). Like the TCP services they are applications, stepped by ``Stack.poll`` after input
(added by whoever builds them, removed by ``close``), each on its own endpoint bound to the port
on every address.

Each endpoint holds more than lwIP's 4 datagrams (``queue_limit``), so one busy poll does not
drop a burst. Datagrams from port 0 (no reply possible) and from the small services' own ports
(7, 9, 13, 19) are not answered: two echo or chargen services must not ping-pong (CERT
CA-1996-01); they are counted in ``ignored``.
Entry points: ``DatagramEchoService``, ``DatagramDiscardService``, ``DatagramDaytimeService``,
``DATAGRAM_SERVICES``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from pystack.udp.endpoint import Address

if TYPE_CHECKING:
    from pystack.stack import Stack

DAYTIME_FORMAT = "%A, %B %d, %Y %H:%M:%S-UTC\r\n"  # the same line the TCP daytime sends
SERVICE_PORTS = frozenset({7, 9, 13, 19})  # echo, discard, daytime, chargen: never answered
QUEUE_LIMIT = 256
STEP_BUDGET = 1024  # datagrams handled per step


class DatagramService:
    name = "service"
    protocol = "udp"
    default_port = 0

    def __init__(self, stack: Stack, port: int | None = None, queue_limit: int = QUEUE_LIMIT):
        self.stack = stack
        self.port = port if port is not None else self.default_port
        self.endpoint = stack.udp.open(0, self.port)
        self.endpoint.set_queue_limit(queue_limit)
        self.served = 0  # datagrams handled
        self.ignored = 0
        self.bytes_in = 0
        self.bytes_out = 0

    def step(self, now: float) -> None:
        endpoint = self.endpoint
        for _ in range(STEP_BUDGET):
            received = endpoint.receive()
            if received is None:
                return
            data, source = received
            self.bytes_in += len(data)
            if source[1] == 0 or source[1] in SERVICE_PORTS:
                self.ignored += 1
                continue
            self.served += 1
            self.serve(data, source, now)

    def next_deadline(self) -> float | None:
        return None  # it only answers

    def serve(self, data: bytes, source: Address, now: float) -> None:
        raise NotImplementedError

    def reply(self, data: bytes, destination: Address, now: float) -> None:
        try:
            self.bytes_out += self.endpoint.send_to(data, destination, now)
        except OSError:
            self.ignored += 1  # no route back: nothing a datagram service can do

    def close(self, now: float) -> None:
        self.endpoint.close(now)
        self.stack.remove_application(self)

    def describe(self) -> str:
        return (
            f"{self.name}/{self.port} udp: {self.served} datagrams, {self.bytes_in} bytes in, "
            f"{self.bytes_out} out"
        )


class DatagramEchoService(DatagramService):
    """RFC 862: send each datagram back, byte for byte."""

    name, default_port = "echo", 7

    def serve(self, data: bytes, source: Address, now: float) -> None:
        self.reply(data, source, now)


class DatagramDiscardService(DatagramService):
    """RFC 863: throw every datagram away."""

    name, default_port = "discard", 9

    def serve(self, data: bytes, source: Address, now: float) -> None:
        pass


class DatagramDaytimeService(DatagramService):
    """RFC 867: answer each datagram with the date and time."""

    name, default_port = "daytime", 13

    def __init__(
        self,
        stack: Stack,
        port: int | None = None,
        queue_limit: int = QUEUE_LIMIT,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(stack, port, queue_limit)
        self._clock = clock

    def serve(self, data: bytes, source: Address, now: float) -> None:
        line = time.strftime(DAYTIME_FORMAT, time.gmtime(self._clock()))
        self.reply(line.encode(), source, now)


DATAGRAM_SERVICES: dict[str, type[DatagramService]] = {
    "echo": DatagramEchoService,
    "discard": DatagramDiscardService,
    "daytime": DatagramDaytimeService,
}
