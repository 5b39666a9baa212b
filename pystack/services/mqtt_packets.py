"""MQTT 3.1.1 control packets (OASIS standard, 2014), as a broker receives and sends them.

Parse once, at the edge: ``fixed_header`` finds a packet's type, flags and length in a byte
buffer (None while incomplete); ``parse_packet`` turns its body into one of the frozen values
below or raises ``MQTTError`` with the reason. Every rule the spec makes a "malformed packet" or
"protocol violation" that is visible in the bytes is checked here: the remaining length's four
byte limit (2.2.3), reserved flag bits (2.2.2), QoS 3 and DUP on QoS 0 (3.3.1), packet
identifiers that are zero (2.3.1), strings that are not well-formed UTF-8 or contain U+0000
(1.5.3), wildcards in a topic name (3.3.2), empty SUBSCRIBE/UNSUBSCRIBE payloads (3.8.3,
3.10.3), reserved bits of a requested QoS (3.8.3), and trailing bytes. What needs the broker's
state (a second CONNECT, an unknown protocol level...) is checked by the broker.
The builders (``connack``, ``publish``...) produce the server-to-client packets.
Entry points: ``MQTTError``, ``fixed_header``, ``parse_packet``, the packet values, the builders.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

CONNECT, CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP = 1, 2, 3, 4, 5, 6, 7
SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK, PINGREQ, PINGRESP, DISCONNECT = range(8, 15)
MAX_REMAINING_LENGTH = 268_435_455  # 2.2.3: four bytes of seven bits
_SERVER_TO_CLIENT = frozenset({CONNACK, SUBACK, UNSUBACK, PINGRESP})
_FLAGS_0010 = frozenset({PUBREL, SUBSCRIBE, UNSUBSCRIBE})  # 2.2.2: the reserved flags are 0010
_U16 = struct.Struct("!H")


class MQTTError(Exception):
    """A malformed packet or a protocol violation: the connection must be closed."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Will:
    topic: str
    payload: bytes
    qos: int
    retain: bool


@dataclass(frozen=True, slots=True)
class Connect:
    protocol_name: str
    level: int
    clean_session: bool = True
    keepalive: int = 0
    client_id: str = ""
    will: Will | None = None
    username: str | None = None
    password: bytes | None = None


@dataclass(frozen=True, slots=True)
class Publish:
    topic: str
    payload: bytes
    qos: int = 0
    retain: bool = False
    dup: bool = False
    packet_id: int | None = None


@dataclass(frozen=True, slots=True)
class Subscribe:
    packet_id: int
    requests: tuple[tuple[str, int], ...]  # (topic filter, requested QoS)


@dataclass(frozen=True, slots=True)
class Unsubscribe:
    packet_id: int
    filters: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Acknowledgement:
    kind: int  # PUBACK, PUBREC, PUBREL or PUBCOMP
    packet_id: int


@dataclass(frozen=True, slots=True)
class Bare:
    kind: int  # PINGREQ or DISCONNECT: no variable header, no payload


Packet = Connect | Publish | Subscribe | Unsubscribe | Acknowledgement | Bare


def fixed_header(buffer: bytes | bytearray) -> tuple[int, int, int] | None:
    """(first byte, remaining length, header size), or None while the header is incomplete."""
    if not buffer:
        return None
    length, multiplier = 0, 1
    for index in range(1, 5):  # 2.2.3: at most four length bytes
        if index >= len(buffer):
            return None
        byte = buffer[index]
        length += (byte & 0x7F) * multiplier
        if not byte & 0x80:
            return buffer[0], length, index + 1
        multiplier <<= 7
    raise MQTTError("remaining length longer than four bytes")


class _Reader:
    """Fields from the front of a packet body; running off its end is a malformed packet."""

    def __init__(self, data: bytes) -> None:
        self.data, self.offset = data, 0

    def byte(self) -> int:
        return self.take(1)[0]

    def u16(self) -> int:
        value: int = _U16.unpack(self.take(2))[0]
        return value

    def take(self, size: int) -> bytes:
        end = self.offset + size
        if end > len(self.data):
            raise MQTTError("packet shorter than its fields")
        piece, self.offset = self.data[self.offset : end], end
        return piece

    def binary(self) -> bytes:
        return self.take(self.u16())

    def string(self) -> str:
        """1.5.3: well-formed UTF-8 (no surrogates), without U+0000."""
        try:
            text = self.binary().decode("utf-8")
        except UnicodeDecodeError:
            raise MQTTError("string is not well-formed UTF-8") from None
        if "\x00" in text:
            raise MQTTError("string contains U+0000")
        return text

    def packet_id(self) -> int:
        value = self.u16()
        if value == 0:
            raise MQTTError("packet identifier 0")  # 2.3.1-1
        return value

    @property
    def left(self) -> int:
        return len(self.data) - self.offset

    def end(self) -> None:
        if self.left:
            raise MQTTError("bytes after the packet's fields")


def parse_packet(first: int, body: bytes) -> Packet:
    """The packet whose fixed header's first byte is ``first`` and whose rest is ``body``."""
    kind, flags = first >> 4, first & 0x0F
    if kind in (0, 15) or kind in _SERVER_TO_CLIENT:
        raise MQTTError(f"packet type {kind} is not sent by clients")
    if kind != PUBLISH and flags != (0b0010 if kind in _FLAGS_0010 else 0):
        raise MQTTError(f"reserved flags {flags:04b} in packet type {kind}")
    reader = _Reader(body)
    packet: Packet
    if kind == CONNECT:
        packet = _connect(reader)
    elif kind == PUBLISH:
        packet = _publish(reader, flags)
    elif kind == SUBSCRIBE:
        packet = _subscribe(reader)
    elif kind == UNSUBSCRIBE:
        packet = Unsubscribe(reader.packet_id(), _filters(reader))
    elif kind in (PUBACK, PUBREC, PUBREL, PUBCOMP):
        packet = Acknowledgement(kind, reader.packet_id())
    else:
        packet = Bare(kind)  # PINGREQ, DISCONNECT
    reader.end()
    return packet


def _connect(reader: _Reader) -> Connect:
    name, level = reader.string(), reader.byte()
    if (name, level) != ("MQTT", 4):
        reader.offset = len(reader.data)  # another protocol: the broker refuses it unread
        return Connect(name, level)
    flags, keepalive = reader.byte(), reader.u16()
    if flags & 0x01:
        raise MQTTError("reserved CONNECT flag set")  # 3.1.2-3
    will_flag, will_qos, will_retain = bool(flags & 0x04), (flags >> 3) & 3, bool(flags & 0x20)
    if will_qos == 3 or (not will_flag and (will_qos or will_retain)):
        raise MQTTError("bad will QoS or retain flag")  # 3.1.2-11, -13, -14, -15
    if flags & 0x40 and not flags & 0x80:
        raise MQTTError("password flag without user name flag")  # 3.1.2-22
    client_id = reader.string()
    will = None
    if will_flag:
        topic = reader.string()
        check_topic_name(topic)
        will = Will(topic, reader.binary(), will_qos, will_retain)
    username = reader.string() if flags & 0x80 else None
    password = reader.binary() if flags & 0x40 else None
    return Connect(name, level, bool(flags & 0x02), keepalive, client_id, will, username, password)


def _publish(reader: _Reader, flags: int) -> Publish:
    dup, qos, retain = bool(flags & 0x08), (flags >> 1) & 3, bool(flags & 0x01)
    if qos == 3:
        raise MQTTError("PUBLISH with QoS 3")  # 3.3.1-4
    if dup and qos == 0:
        raise MQTTError("DUP set on a QoS 0 PUBLISH")  # 3.3.1-2
    topic = reader.string()
    check_topic_name(topic)
    packet_id = reader.packet_id() if qos else None
    payload = reader.take(reader.left)
    return Publish(topic, payload, qos, retain, dup, packet_id)


def _subscribe(reader: _Reader) -> Subscribe:
    packet_id = reader.packet_id()
    requests = []
    while reader.left:
        topic_filter, options = reader.string(), reader.byte()
        if options & 0xFC or options == 3:
            raise MQTTError("bad requested QoS in SUBSCRIBE")  # 3.8.3-4
        requests.append((topic_filter, options))
    if not requests:
        raise MQTTError("SUBSCRIBE without a topic filter")  # 3.8.3-3
    return Subscribe(packet_id, tuple(requests))


def _filters(reader: _Reader) -> tuple[str, ...]:
    filters = []
    while reader.left:
        filters.append(reader.string())
    if not filters:
        raise MQTTError("UNSUBSCRIBE without a topic filter")  # 3.10.3-2
    return tuple(filters)


def check_topic_name(topic: str) -> None:
    """4.7.3: a topic name has at least one character and no wildcard (3.3.2-2)."""
    if not topic:
        raise MQTTError("empty topic name")
    if "+" in topic or "#" in topic:
        raise MQTTError("wildcard in a topic name")


# -- builders: what the broker sends ---------------------------------------------------------------
def _packet(first: int, body: bytes) -> bytes:
    length, encoded = len(body), bytearray()
    while True:  # 2.2.3: seven bits per byte, high bit = more follow (at most 4 iterations)
        byte, length = length & 0x7F, length >> 7
        encoded.append(byte | (0x80 if length else 0))
        if not length:
            return bytes([first]) + bytes(encoded) + body


def _string(text: str) -> bytes:
    data = text.encode("utf-8")
    return _U16.pack(len(data)) + data


def connack(session_present: bool, return_code: int) -> bytes:
    return bytes([CONNACK << 4, 2, int(session_present), return_code])


def publish(
    topic: str, payload: bytes, qos: int, retain: bool, dup: bool, packet_id: int | None
) -> bytes:
    flags = (0x08 if dup else 0) | (qos << 1) | (0x01 if retain else 0)
    identifier = _U16.pack(packet_id) if qos and packet_id is not None else b""
    return _packet(PUBLISH << 4 | flags, _string(topic) + identifier + payload)


def acknowledgement(kind: int, packet_id: int) -> bytes:
    """PUBACK, PUBREC, PUBCOMP (flags 0) or PUBREL (flags 0010) for ``packet_id``."""
    return bytes([kind << 4 | (0b0010 if kind == PUBREL else 0), 2]) + _U16.pack(packet_id)


def suback(packet_id: int, codes: list[int]) -> bytes:
    return _packet(SUBACK << 4, _U16.pack(packet_id) + bytes(codes))


def unsuback(packet_id: int) -> bytes:
    return bytes([UNSUBACK << 4, 2]) + _U16.pack(packet_id)


def pingresp() -> bytes:
    return bytes([PINGRESP << 4, 0])
