"""ICMPv4 handling for a host (RFC 792, RFC 1122 3.2.2): echo, errors in, errors out.

- Echo requests are answered with the same identifier, sequence and data; requests sent to a
  broadcast or multicast address are ignored by default (as Linux's icmp_echo_ignore_broadcasts).
- Echo replies are queued (bounded) for whoever pinged: ``echo_replies``.
- Received errors are parsed down to the quoted datagram and handed to the listener registered
  for the quoted protocol (TCP and UDP register later).
- Errors pystack sends obey RFC 1122 3.2.2 (never about an ICMP error, a broadcast or multicast
  datagram, a non-first fragment, or a non-unicast source) and a token-bucket rate limit.
Sans-IO: packets go out through the ``send`` callback; time comes in as ``now``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from pystack.stats import DropReason, Statistics
from pystack.wire import icmpv4
from pystack.wire.errors import MalformedPacket
from pystack.wire.icmpv4 import ICMPv4Message
from pystack.wire.ipv4 import PROTO_ICMP, IPv4Packet

_ERROR_OR_REDIRECT = frozenset({*icmpv4.ERROR_TYPES, icmpv4.SOURCE_QUENCH, icmpv4.REDIRECT})
MAX_ERROR_SIZE = 576  # RFC 1812 4.3.2.3: an ICMP error datagram need not exceed 576 bytes


@dataclass(frozen=True, slots=True)
class ICMPSettings:
    error_rate: float = 100.0  # errors per second (token bucket refill)
    error_burst: int = 50  # bucket size
    echo_ignore_broadcasts: bool = True
    echo_reply_queue: int = 1024


@dataclass(frozen=True, slots=True)
class EchoReply:
    time: float
    source: int
    identifier: int
    sequence: int
    data: bytes


# send(destination, protocol, payload, now, source) -> whether it was queued; source None: the
# interface picks it
SendIP = Callable[[int, int, bytes, float, int | None], bool]
# listener(message, quoted datagram, now): an ICMP error about one of our datagrams
ErrorListener = Callable[[ICMPv4Message, IPv4Packet, float], None]


class ICMPHandler:
    def __init__(self, settings: ICMPSettings, statistics: Statistics, send: SendIP) -> None:
        self.settings = settings
        self.statistics = statistics
        self._send = send
        self.echo_replies: deque[EchoReply] = deque()
        self.error_listeners: dict[int, ErrorListener] = {}
        self._tokens = float(settings.error_burst)
        self._tokens_time: float | None = None

    # input ----------------------------------------------------------------------------------
    def process(self, packet: IPv4Packet, now: float, broadcast: bool) -> DropReason | None:
        """Handle an ICMP datagram addressed to us; returns a drop reason if it was dropped."""
        try:
            message = ICMPv4Message.parse(packet.payload)
        except MalformedPacket as error:
            return self.statistics.drop_malformed(error.reason)
        kind = message.type
        self.statistics.count(f"icmp.received.type{kind}")
        if kind == icmpv4.ECHO_REQUEST:
            if broadcast and self.settings.echo_ignore_broadcasts:
                self.statistics.drop(DropReason.ICMP_BROADCAST_ECHO)
                return DropReason.ICMP_BROADCAST_ECHO
            reply = ICMPv4Message(icmpv4.ECHO_REPLY, 0, message.rest, message.payload)
            # RFC 1122 3.2.2.6: reply from the address the request was sent to (127.x.y.z too),
            # or from our own unicast address when it went to a broadcast or multicast one.
            source = None if broadcast else packet.dst
            self._send(packet.src, PROTO_ICMP, reply.build(), now, source)
            self.statistics.count("icmp.echo_replies_sent")
            return None
        if kind == icmpv4.ECHO_REPLY:
            return self._queue_reply(packet.src, message, now)
        if message.is_error:
            return self._dispatch_error(message, now)
        self.statistics.drop(DropReason.ICMP_UNHANDLED)
        return DropReason.ICMP_UNHANDLED

    def _queue_reply(self, source: int, message: ICMPv4Message, now: float) -> DropReason | None:
        replies = self.echo_replies
        dropped = None
        if len(replies) >= self.settings.echo_reply_queue:
            replies.popleft()
            self.statistics.drop(DropReason.ICMP_ECHO_REPLY_UNCLAIMED)
            dropped = DropReason.ICMP_ECHO_REPLY_UNCLAIMED
        replies.append(
            EchoReply(now, source, message.identifier, message.sequence, message.payload)
        )
        return dropped

    def _dispatch_error(self, message: ICMPv4Message, now: float) -> DropReason | None:
        try:
            quoted = message.quoted_packet()
        except MalformedPacket as error:
            return self.statistics.drop_malformed(error.reason)
        listener = self.error_listeners.get(quoted.protocol)
        if listener is None:
            self.statistics.count("icmp.errors_unclaimed")
            return None
        listener(message, quoted, now)
        return None

    # output ---------------------------------------------------------------------------------
    def ping(
        self, destination: int, identifier: int, sequence: int, data: bytes, now: float
    ) -> bool:
        message = ICMPv4Message.echo_request(identifier & 0xFFFF, sequence & 0xFFFF, data)
        self.statistics.count("icmp.echo_requests_sent")
        return self._send(destination, PROTO_ICMP, message.build(), now, None)

    def send_error(
        self, original: IPv4Packet, kind: int, code: int, now: float, broadcast: bool, rest: int = 0
    ) -> bool:
        """Send an ICMP error about ``original`` if RFC 1122 3.2.2 and the rate limit allow."""
        if broadcast or original.fragment_offset or original.src >> 28 >= 0xE or original.src == 0:
            self.statistics.count("icmp.errors_suppressed")
            return False
        if original.protocol == PROTO_ICMP:
            first = original.payload[:1]
            # RFC 1122 3.2.2: never an error about an error; unknown types count as errors (as Linux).
            if not first or first[0] in _ERROR_OR_REDIRECT or first[0] > icmpv4.LAST_KNOWN_TYPE:
                self.statistics.count("icmp.errors_suppressed")
                return False
        if not self._take_token(now):
            self.statistics.drop(DropReason.ICMP_ERROR_RATE_LIMITED)
            return False
        header = original.build_header()
        quote = header + original.payload[: MAX_ERROR_SIZE - 28 - len(header)]
        message = ICMPv4Message(kind, code, rest, quote)
        self.statistics.count(f"icmp.errors_sent.type{kind}")
        return self._send(original.src, PROTO_ICMP, message.build(), now, None)

    def _take_token(self, now: float) -> bool:
        settings = self.settings
        if self._tokens_time is not None:
            elapsed = max(0.0, now - self._tokens_time)
            self._tokens = min(
                float(settings.error_burst), self._tokens + elapsed * settings.error_rate
            )
        self._tokens_time = now
        if self._tokens < 1.0:
            return False
        self._tokens -= 1.0
        return True
