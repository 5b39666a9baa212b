"""A small MQTT 3.1.1 broker (OASIS standard) on port 1883.

What it does: CONNECT/CONNACK (protocol level 4 only; return code 1 for other levels, 2 for a
client identifier it refuses), clean and persistent sessions, session takeover (a second
connection with a connected client's identifier closes the first, 3.1.4-2), PUBLISH at QoS 0
and 1 (PUBACK) and, inbound, QoS 2 (PUBREC/PUBREL/PUBCOMP, delivered onward at QoS 1 at most),
SUBSCRIBE/SUBACK with the granted QoS ``min(requested, 1)``, UNSUBSCRIBE/UNSUBACK, the ``+``
and ``#`` wildcards (``mqtt_topics.py``), retained messages, the last will, keepalive and
PINGREQ/PINGRESP, DISCONNECT. No authentication: every user name and password is accepted.

The parts:
- ``MQTTSession`` is one network connection: it parses packets from a bounded input buffer
  (``mqtt_packets.py``), answers, and writes two queues to its stream: control packets
  (CONNACK, PUBACK, SUBACK...) first, then deliveries. Anything malformed or against the
  protocol closes the connection, counted as ``mqtt.protocol_errors``.
- ``ClientState`` is what the spec calls the session state, kept by client identifier and
  surviving the connection when the session is persistent (clean session 0): subscriptions,
  deliveries waiting, QoS 1 messages sent but not acknowledged (re-sent with DUP on reconnect,
  4.4.0-1), QoS 2 packet identifiers received but not released.
- ``MQTTBroker`` routes: a PUBLISH goes to every client state with a matching subscription, once,
  at the highest QoS granted among them (3.3.5-1), with the retain flag cleared (3.3.1-9).

The will is published when the connection ends any way but DISCONNECT: the client closed or
reset it, its keepalive expired (1.5 times the interval without a packet, 3.1.2-24), a protocol
error, a takeover, or its slot was given to a newer connection (``session.py``'s eviction).
Time is the ``now`` given to ``step``; the deadlines are the session phases of ``session.py``
(and so among the broker's ``next_deadline`` and the stack's):
- the CONNECT must arrive within ``connect_timeout`` (10 s) of the accept
  (``mqtt.connect_timeouts``);
- a keepalive of K seconds closes the connection after 1.5 K seconds without a packet from the
  client (3.1.2-24, ``mqtt.keepalive_expired``);
- a keepalive of 0 turns that mechanism off (3.1.2-10), so such a connection is bounded instead
  by ``idle_without_keepalive`` (300 s, as if it had asked for 200 s: "typically a few minutes")
  without a packet from the client or a delivery to it (``mqtt.idle_closed``).
Slots go to connections that do something: a flood of idle CONNECTs is evicted (least progress
first: one that has sent only its CONNECT before one that also subscribed or published) rather
than keeping a newcomer out.

Bounds (all counted when hit): ``MAX_PACKET`` bytes per packet (larger: closed), connections
(``max_connections``), ``MAX_SUBSCRIPTIONS`` per client (more: SUBACK 0x80), ``MAX_RETAINED``
messages and ``MAX_RETAINED_BYTES`` (more: not retained), ``MAX_QUEUED`` deliveries and
``MAX_QUEUED_BYTES`` per client (more: dropped, ``mqtt.dropped``), ``MAX_INFLIGHT``
unacknowledged QoS 1 messages per client (then deliveries wait), ``MAX_SESSIONS`` stored
client states (more: the oldest disconnected one is forgotten). A client that does not read its
acknowledgements stops being read (``CONTROL_LIMIT``).
Entry points: ``MQTTBroker``.
"""

from __future__ import annotations

import ssl
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from pystack.services import mqtt_packets as packets
from pystack.services.mqtt_packets import (
    Acknowledgement,
    Bare,
    Connect,
    MQTTError,
    Packet,
    Publish,
    Subscribe,
    Unsubscribe,
)
from pystack.services.mqtt_topics import Levels, matches, split, valid_filter
from pystack.services.session import Phase, Session, SessionService, Stream

if TYPE_CHECKING:
    from pystack.stack import Stack

PORT = 1883
MAX_PACKET = 256 * 1024
MAX_CLIENT_ID = 128  # characters (3.1.3-5 requires 1..23; more is allowed)
MAX_SUBSCRIPTIONS = 64  # per client
MAX_RETAINED = 1024
MAX_RETAINED_BYTES = 8 * 1024 * 1024
MAX_QUEUED = 256  # deliveries waiting per client
MAX_QUEUED_BYTES = 1024 * 1024
MAX_INFLIGHT = 32  # QoS 1 deliveries sent, not yet acknowledged, per client
MAX_QOS2_PENDING = 64  # inbound QoS 2 identifiers awaiting PUBREL, per client
MAX_SESSIONS = 256  # client states kept (connected or persistent)
CONNECT_TIMEOUT = 10.0  # seconds from accepting a connection to its CONNECT
IDLE_WITHOUT_KEEPALIVE = 300.0  # seconds of silence closing a keepalive-0 connection
CONTROL_LIMIT = 1 << 16  # queued control bytes above which input is no longer read
PACKETS_PER_STEP = 32
SEND_ROUNDS = 32
READ_SIZE = 1 << 16
FAILURE = 0x80  # SUBACK return code


@dataclass(frozen=True, slots=True)
class Message:
    topic: str
    payload: bytes
    qos: int
    retain: bool = False


@dataclass
class ClientState:
    """The session state of one client identifier (MQTT 3.1.1 section 4.1)."""

    client_id: str
    clean: bool
    subscriptions: dict[str, tuple[Levels, int]] = field(default_factory=dict)
    queue: deque[Message] = field(default_factory=deque)
    queued_bytes: int = 0
    inflight: dict[int, Message] = field(default_factory=dict)
    resend: deque[int] = field(default_factory=deque)  # inflight ids to re-send (DUP)
    qos2_received: set[int] = field(default_factory=set)
    next_id: int = 1
    connection: MQTTSession | None = None

    def granted_qos(self, topic: Levels) -> int | None:
        """The highest QoS among the subscriptions matching ``topic`` (None: no match)."""
        best: int | None = None
        for levels, qos in self.subscriptions.values():
            if (best is None or qos > best) and matches(levels, topic):
                best = qos
        return best

    def allocate_id(self) -> int:
        for _ in range(MAX_INFLIGHT + 1):  # at most MAX_INFLIGHT identifiers are taken
            packet_id = self.next_id
            self.next_id = packet_id % 65535 + 1
            if packet_id not in self.inflight:
                return packet_id
        raise RuntimeError("no free packet identifier")  # (unreachable: inflight is bounded)


class MQTTSession(Session):
    """One network connection to the broker."""

    def __init__(self, stream: Stream, now: float, broker: MQTTBroker) -> None:
        super().__init__(stream, now)
        self.broker = broker
        self.buffer = bytearray()
        self.control = bytearray()  # control packets to send, before any delivery
        self.pending = memoryview(b"")  # the packet being written
        self.client: ClientState | None = None
        self.connected = False
        self.keepalive = 0
        self.will: packets.Will | None = None
        self.last_packet = now
        self.last_activity = now  # a packet from the client or a delivery to it
        self.hangup = False  # close once the control packets are out

    # -- phases --------------------------------------------------------------------------------
    def start(self, now: float) -> None:
        self.enter(Phase.OPENING, self.opened_at + self.broker.connect_timeout)

    def _set_phase(self) -> None:
        if self.stream.closing:
            return
        if self.hangup:
            self.enter(Phase.IDLE, None)  # ending: only the last control packets are left
            return
        if not self.connected:
            return  # (OPENING, until the CONNECT deadline set by ``start``)
        client = self.client
        busy = self.pending or self.control or (client and (client.queue or client.resend))
        if self.keepalive:
            deadline = self.last_packet + 1.5 * self.keepalive  # 3.1.2-24
        else:
            deadline = self.last_activity + self.broker.idle_without_keepalive
        self.enter(Phase.ACTIVE if busy else Phase.IDLE, deadline)

    def expired(self, now: float) -> None:
        if not self.connected:
            event = "connect_timeouts"
        else:
            event = "keepalive_expired" if self.keepalive else "idle_closed"
        self.broker.count(event)
        self.end(now, abnormal=True)

    # -- stepping ------------------------------------------------------------------------------
    def step(self, now: float) -> bool:
        moved = self._step(now)
        self._set_phase()
        return moved

    def _step(self, now: float) -> bool:
        stream = self.stream
        if stream.closing:
            return False
        moved = False
        if not self.hangup:
            moved = self._input(now)
        if stream.closing:
            return True
        if self._write(now):
            moved = True
            self.last_activity = now
        if self.hangup and not self.pending and not self.control:
            stream.close(now)
            return True
        if stream.at_eof and not self.hangup and not moved:
            self.end(now, abnormal=True)  # closed without DISCONNECT: the will goes out
            return True
        return moved

    def ended(self, now: float) -> None:
        self._detach(now, abnormal=True)

    def _input(self, now: float) -> bool:
        stream, buffer = self.stream, self.buffer
        moved = False
        room = min(READ_SIZE, MAX_PACKET + 5 - len(buffer))
        if room > 0 and stream.readable:
            buffer += stream.receive(room)
            moved = True
        for _ in range(PACKETS_PER_STEP):
            if len(self.control) > CONTROL_LIMIT or self.hangup or stream.closing:
                break
            try:
                header = packets.fixed_header(buffer)
                if header is None:
                    break
                first, length, size = header
                if size + length > MAX_PACKET:
                    raise MQTTError(f"packet of {size + length} bytes (limit {MAX_PACKET})")
                if len(buffer) < size + length:
                    break
                body = bytes(buffer[size : size + length])
                del buffer[: size + length]
                self._handle(packets.parse_packet(first, body), now)
            except MQTTError as error:
                self._violation(error.reason, now)
                return True
            moved = True
        return moved

    def _write(self, now: float) -> bool:
        stream, moved = self.stream, False
        for _ in range(SEND_ROUNDS):
            if not self.pending:
                if not stream.send_room:
                    break
                if self.control:
                    self.pending = memoryview(bytes(self.control))
                    self.control.clear()
                elif self.hangup or not self._next_delivery():
                    break
            sent = stream.send(self.pending, now)
            if not sent:
                break
            self.pending = self.pending[sent:]
            moved = True
        return moved

    def _next_delivery(self) -> bool:
        """Put the next PUBLISH for this client in ``pending``; False when there is none."""
        client = self.client
        if client is None:
            return False
        while client.resend:  # 4.4.0-1: unacknowledged QoS 1 messages again, with DUP
            resent = client.resend.popleft()
            unacknowledged = client.inflight.get(resent)
            if unacknowledged is not None:
                self.pending = memoryview(_publish_packet(unacknowledged, resent, dup=True))
                return True
        if not client.queue:
            return False
        message = client.queue[0]
        if message.qos and len(client.inflight) >= MAX_INFLIGHT:
            return False  # wait for PUBACKs
        client.queue.popleft()
        client.queued_bytes -= len(message.payload) + len(message.topic)
        packet_id = None
        if message.qos:
            packet_id = client.allocate_id()
            client.inflight[packet_id] = message
        self.pending = memoryview(_publish_packet(message, packet_id, dup=False))
        self.broker.count("delivered")
        return True

    # -- packets -------------------------------------------------------------------------------
    def _handle(self, packet: Packet, now: float) -> None:
        self.last_packet = self.last_activity = now
        self.progressed(now)
        if isinstance(packet, Connect):
            self._connect(packet, now)
            return
        client = self.client
        if client is None:  # 3.1.0-1: the first packet must be CONNECT
            raise MQTTError("packet before CONNECT")
        if isinstance(packet, Publish):
            self._publish(client, packet, now)
        elif isinstance(packet, Subscribe):
            self._subscribe(client, packet)
        elif isinstance(packet, Unsubscribe):
            for topic_filter in packet.filters:
                client.subscriptions.pop(topic_filter, None)
            self.control += packets.unsuback(packet.packet_id)
        elif isinstance(packet, Acknowledgement):
            self._acknowledgement(client, packet)
        elif isinstance(packet, Bare) and packet.kind == packets.PINGREQ:
            self.control += packets.pingresp()
        else:  # DISCONNECT: 3.14.4-3, the will is discarded
            self.broker.count("disconnects")
            self.end(now, abnormal=False, flush=True)

    def _connect(self, packet: Connect, now: float) -> None:
        if self.connected:
            raise MQTTError("second CONNECT")  # 3.1.0-2
        if packet.protocol_name not in ("MQTT", "MQIsdp"):
            raise MQTTError(f"unknown protocol {packet.protocol_name[:20]!r}")
        if packet.level != 4 or packet.protocol_name != "MQTT":
            self._refuse(1, "refused_protocol")  # 3.1.2-2: unacceptable protocol level
            return
        client_id = packet.client_id
        if not client_id and packet.clean_session:
            client_id = self.broker.assign_id()  # 3.1.3-6
        elif not client_id or len(client_id) > MAX_CLIENT_ID:
            self._refuse(2, "refused_identifier")  # 3.1.3-8, 3.1.3-9
            return
        self.client, present = self.broker.attach(self, client_id, packet.clean_session, now)
        self.connected = True
        self.keepalive, self.will = packet.keepalive, packet.will
        self.control += packets.connack(present, 0)
        self.broker.count("connects")

    def _refuse(self, code: int, event: str) -> None:
        self.broker.count(event)
        self.control += packets.connack(False, code)
        self.hangup = True

    def _publish(self, client: ClientState, packet: Publish, now: float) -> None:
        message = Message(packet.topic, packet.payload, packet.qos, packet.retain)
        if packet.qos == 2:  # 4.3.3: deliver once, on the first copy; PUBREC each time
            assert packet.packet_id is not None
            if packet.packet_id not in client.qos2_received:
                if len(client.qos2_received) >= MAX_QOS2_PENDING:
                    raise MQTTError("too many QoS 2 messages awaiting PUBREL")
                client.qos2_received.add(packet.packet_id)
                self.broker.publish(message)
            self.control += packets.acknowledgement(packets.PUBREC, packet.packet_id)
            return
        self.broker.publish(message)
        if packet.qos == 1:
            assert packet.packet_id is not None
            self.control += packets.acknowledgement(packets.PUBACK, packet.packet_id)

    def _subscribe(self, client: ClientState, packet: Subscribe) -> None:
        codes = []
        granted: dict[str, tuple[Levels, int]] = {}  # (a filter repeated in one packet: once)
        for topic_filter, requested in packet.requests:
            known = topic_filter in client.subscriptions
            if not valid_filter(topic_filter):
                self.broker.count("bad_filters")
                codes.append(FAILURE)
            elif not known and len(client.subscriptions) >= MAX_SUBSCRIPTIONS:
                self.broker.count("subscriptions_refused")
                codes.append(FAILURE)
            else:
                qos = min(requested, 1)
                client.subscriptions[topic_filter] = granted[topic_filter] = (
                    split(topic_filter),
                    qos,
                )
                codes.append(qos)
        self.control += packets.suback(packet.packet_id, codes)
        for levels, qos in granted.values():  # 3.8.4-3: retained, also for a replaced filter
            self.broker.send_retained(client, levels, qos)

    def _acknowledgement(self, client: ClientState, packet: Acknowledgement) -> None:
        if packet.kind == packets.PUBACK:
            if client.inflight.pop(packet.packet_id, None) is None:
                self.broker.count("unknown_acks")
        elif packet.kind == packets.PUBREL:  # 4.3.3: release the QoS 2 identifier
            client.qos2_received.discard(packet.packet_id)
            self.control += packets.acknowledgement(packets.PUBCOMP, packet.packet_id)
        else:  # PUBREC, PUBCOMP: this broker never sends QoS 2
            self.broker.count("unknown_acks")

    # -- ending --------------------------------------------------------------------------------
    def _violation(self, reason: str, now: float) -> None:
        self.broker.count("protocol_errors")
        self.broker.last_error = reason
        self.end(now, abnormal=True)

    def end(self, now: float, abnormal: bool, flush: bool = False) -> None:
        """Close the connection (after the queued control packets with ``flush``); an abnormal
        end publishes the will."""
        self._detach(now, abnormal)
        self.buffer.clear()
        self.hangup = True
        if not flush:
            self.control.clear()
            self.pending = memoryview(b"")
            self.stream.close(now)

    def _detach(self, now: float, abnormal: bool) -> None:
        will, self.will = self.will, None
        if self.client is not None:
            self.broker.detach(self.client)
            self.client = None
        if abnormal and will is not None and self.connected:
            self.broker.count("wills")
            self.broker.publish(Message(will.topic, will.payload, will.qos, will.retain))


def _publish_packet(message: Message, packet_id: int | None, dup: bool) -> bytes:
    return packets.publish(
        message.topic, message.payload, message.qos, message.retain, dup, packet_id
    )


class MQTTBroker(SessionService):
    name, default_port = "mqtt", PORT

    def __init__(
        self,
        stack: Stack,
        port: int | None = None,
        backlog: int = 128,
        tls: ssl.SSLContext | None = None,
        max_connections: int | None = None,
        connect_timeout: float = CONNECT_TIMEOUT,
        idle_without_keepalive: float = IDLE_WITHOUT_KEEPALIVE,
    ) -> None:
        super().__init__(stack, port, backlog, tls, max_connections)
        if connect_timeout <= 0 or idle_without_keepalive <= 0:
            raise ValueError("MQTT timeouts must be > 0")
        self.connect_timeout = connect_timeout
        self.idle_without_keepalive = idle_without_keepalive
        self.clients: dict[str, ClientState] = {}
        self.retained: dict[str, Message] = {}
        self.retained_bytes = 0
        self.last_error = ""
        self._assigned = 0

    def make_session(self, stream: Stream, now: float) -> Session:
        return MQTTSession(stream, now, self)

    # -- client states -------------------------------------------------------------------------
    def assign_id(self) -> str:
        for _ in range(len(self.clients) + 1):  # (at most that many names are taken)
            self._assigned += 1
            client_id = f"pystack-{self._assigned}"
            if client_id not in self.clients:
                return client_id
        raise RuntimeError("no free client identifier")

    def attach(
        self, session: MQTTSession, client_id: str, clean: bool, now: float
    ) -> tuple[ClientState, bool]:
        """The client state for a CONNECT, taking over a connected one (3.1.4-2)."""
        existing = self.clients.get(client_id)
        if existing is not None and existing.connection is not None:
            self.count("takeovers")
            existing.connection.end(now, abnormal=True)
            existing = self.clients.get(client_id)  # (gone if it was a clean session)
        if existing is not None and not clean:
            existing.clean, existing.connection = False, session
            existing.resend = deque(existing.inflight)
            return existing, True  # 3.2.2-2: session present
        if existing is not None:
            del self.clients[client_id]  # 3.1.2-6: a clean session starts afresh
        self._make_room()
        state = ClientState(client_id, clean, connection=session)
        self.clients[client_id] = state
        return state, False

    def _make_room(self) -> None:
        if len(self.clients) < MAX_SESSIONS:
            return
        for client_id, state in self.clients.items():  # the oldest disconnected one
            if state.connection is None:
                del self.clients[client_id]
                self.count("sessions_forgotten")
                return

    def detach(self, state: ClientState) -> None:
        state.connection = None
        if state.clean:  # 3.1.2-6: a clean session ends with its connection
            self.clients.pop(state.client_id, None)
        else:
            state.resend.clear()

    # -- routing -------------------------------------------------------------------------------
    def publish(self, message: Message) -> None:
        self.count("published")
        topic = split(message.topic)
        if message.retain:
            self._retain(message)
        for state in self.clients.values():
            qos = state.granted_qos(topic)
            if qos is not None:
                self.enqueue(state, Message(message.topic, message.payload, min(qos, message.qos)))

    def enqueue(self, state: ClientState, message: Message) -> None:
        if state.connection is None and message.qos == 0:
            return  # a disconnected persistent session keeps QoS 1 messages only
        size = len(message.payload) + len(message.topic)
        if len(state.queue) >= MAX_QUEUED or state.queued_bytes + size > MAX_QUEUED_BYTES:
            self.count("dropped")  # a slow subscriber: its queue is full
            return
        state.queue.append(message)
        state.queued_bytes += size

    def _retain(self, message: Message) -> None:
        """3.3.1-5, -10, -11: store the last retained message of a topic; empty deletes it."""
        old = self.retained.pop(message.topic, None)
        if old is not None:
            self.retained_bytes -= len(old.payload)
        if not message.payload:
            return
        size = len(message.payload)
        if len(self.retained) >= MAX_RETAINED or self.retained_bytes + size > MAX_RETAINED_BYTES:
            self.count("retained_dropped")
            return
        self.retained[message.topic] = Message(message.topic, message.payload, message.qos, True)
        self.retained_bytes += size

    def send_retained(self, state: ClientState, topic_filter: Levels, qos: int) -> None:
        for topic, message in self.retained.items():
            if matches(topic_filter, split(topic)):
                self.enqueue(state, Message(topic, message.payload, min(qos, message.qos), True))
