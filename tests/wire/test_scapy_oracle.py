"""scapy as an independent oracle for every codec (scapy is allowed in tests only).

For each codec, ``CASES`` seeded random cases in both directions:

(a) scapy builds a packet from random fields; our ``parse`` reads the same field values (TCP
    options mapped from scapy's names), validating scapy's checksums, and our ``build`` of the
    parsed value gives scapy's bytes back (so our checksums equal scapy's).
(b) our ``build`` of random values dissects in scapy to the same fields, and scapy, told to
    recompute the checksums (the field deleted, the packet re-serialized), produces our bytes.

Packets are serialized with ``raw()`` only (no ``show()``), and payload-dissection bindings are
avoided in (b) (ports, protocols and EtherTypes scapy would decode further), so the whole file
runs in a few seconds.
"""

from __future__ import annotations

import logging
import random
import struct
from collections.abc import Iterator

import pytest

logging.getLogger("scapy.runtime").setLevel(logging.ERROR)
scapy_inet = pytest.importorskip("scapy.layers.inet")
scapy_l2 = pytest.importorskip("scapy.layers.l2")
from scapy.compat import raw  # noqa: E402
from scapy.packet import NoPayload, Raw  # noqa: E402

from pystack.wire.arp import ARPPacket  # noqa: E402
from pystack.wire.errors import MalformedPacket  # noqa: E402
from pystack.wire.ethernet import EthernetFrame  # noqa: E402
from pystack.wire.icmpv4 import ICMPv4Message  # noqa: E402
from pystack.wire.ipv4 import IPv4Packet  # noqa: E402
from pystack.wire.tcp import (  # noqa: E402
    FIN,
    OPT_EOL,
    OPT_MSS,
    OPT_NOP,
    OPT_SACK,
    OPT_SACK_PERMITTED,
    OPT_TIMESTAMP,
    OPT_WSCALE,
    RST,
    SYN,
    TCPOption,
    TCPSegment,
)
from pystack.wire.udp import UDPDatagram  # noqa: E402
from tests.wire.reference import pseudo_header, rfc1071_sum  # noqa: E402

IP = scapy_inet.IP
ICMP = scapy_inet.ICMP
TCP = scapy_inet.TCP
UDP = scapy_inet.UDP
Ether = scapy_l2.Ether
ARP = scapy_l2.ARP

CASES = 1000

# scapy's names for our option kinds.
SCAPY_NAMES = {
    OPT_EOL: "EOL",
    OPT_NOP: "NOP",
    OPT_MSS: "MSS",
    OPT_WSCALE: "WScale",
    OPT_SACK_PERMITTED: "SAckOK",
    OPT_SACK: "SAck",
    OPT_TIMESTAMP: "Timestamp",
}
# Option kinds scapy decodes with a format of its own (their value is not raw bytes there).
SCAPY_KNOWN_OPTION_KINDS = frozenset(scapy_inet.TCPOptions[0])


# --------------------------------------------------------------------------------------------
# random fields
# --------------------------------------------------------------------------------------------


def cases(seed: int) -> Iterator[tuple[int, random.Random]]:
    rng = random.Random(seed)
    for index in range(CASES):
        yield index, rng


def random_bytes(rng: random.Random, low: int, high: int) -> bytes:
    return rng.randbytes(rng.randint(low, high))


def mac_text(mac: bytes) -> str:
    return ":".join(f"{b:02x}" for b in mac)


def ip_text(address: int) -> str:
    return ".".join(str(b) for b in struct.pack("!I", address))


def ip_int(text: str) -> int:
    return int.from_bytes(bytes(int(part) for part in text.split(".")), "big")


def bound_values(layer: type, *fields: str) -> set[int]:
    """Field values (ports, types) for which scapy would dissect the payload as something else.
    Read at test time: which layers are loaded decides the bindings."""
    values: set[int] = set()
    for binding, _cls in layer.payload_guess:
        values.update(v for k, v in binding.items() if k in fields and isinstance(v, int))
    return values


def unbound(rng: random.Random, low: int, high: int, bound: set[int]) -> int:
    while True:
        value = rng.randint(low, high)
        if value not in bound:
            return value


def zero_sum_payload(
    rng: random.Random,
    header: bytes,
    protocol: int,
    src: int,
    dst: int,
    length_field_at: int | None = None,
) -> bytes:
    """A random even-length payload whose last word makes the one's complement sum over the
    pseudo-header, ``header`` (checksum field zero; its length field at ``length_field_at``, if
    any, filled in here) and the payload 0xFFFF: a computed checksum of 0, the corner case that
    random fields almost never hit."""
    payload = rng.randbytes(2 * rng.randint(0, 40)) + b"\x00\x00"
    length = len(header) + len(payload)
    if length_field_at is not None:
        at = length_field_at
        header = header[:at] + length.to_bytes(2, "big") + header[at + 2 :]
    total = rfc1071_sum(pseudo_header(src, dst, protocol, length) + header + payload)
    return payload[:-2] + ((0xFFFF - total) & 0xFFFF).to_bytes(2, "big")


def flat(blocks: tuple[tuple[int, int], ...]) -> tuple[int, ...]:
    return tuple(edge for block in blocks for edge in block)


def to_scapy_options(options: tuple[TCPOption, ...]) -> list[tuple[object, object]]:
    mapped: list[tuple[object, object]] = []
    for option in options:
        name = SCAPY_NAMES.get(option.kind)
        if option.kind in (OPT_NOP, OPT_EOL):
            mapped.append((name, None))
        elif option.kind == OPT_SACK_PERMITTED:
            mapped.append((name, b""))
        elif option.kind == OPT_SACK:
            mapped.append((name, flat(option.value)))  # type: ignore[arg-type]
        elif name is not None:
            mapped.append((name, option.value))
        else:
            mapped.append((option.kind, option.value))
    return mapped


def without_trailing_eol(options: list[tuple[object, object]]) -> list[tuple[object, object]]:
    """EOL and its zero padding: scapy keeps ('EOL', None), we keep or drop it by its length."""
    options = list(options)
    while options and options[-1][0] == "EOL":
        options.pop()
    return options


def random_tcp_options(rng: random.Random) -> tuple[TCPOption, ...]:
    """Random options in our form: every known kind, and unknown kinds scapy leaves as bytes."""
    options: list[TCPOption] = []
    size = 0
    for _ in range(rng.randint(0, 8)):
        choice = rng.randrange(7)
        if choice == 0:
            option = TCPOption(OPT_MSS, rng.randint(0, 0xFFFF))
        elif choice == 1:
            option = TCPOption(OPT_WSCALE, rng.randint(0, 255))
        elif choice == 2:
            option = TCPOption(OPT_SACK_PERMITTED)
        elif choice == 3:
            blocks = tuple(
                (rng.getrandbits(32), rng.getrandbits(32)) for _ in range(rng.randint(1, 4))
            )
            option = TCPOption(OPT_SACK, blocks)
        elif choice == 4:
            option = TCPOption(OPT_TIMESTAMP, (rng.getrandbits(32), rng.getrandbits(32)))
        elif choice == 5:
            option = TCPOption(OPT_NOP)
        else:
            kind = rng.choice([k for k in range(6, 256) if k not in SCAPY_KNOWN_OPTION_KINDS])
            option = TCPOption(kind, random_bytes(rng, 0, 8))
        length = len(option.encode())
        if size + length > 40:
            break
        options.append(option)
        size += length
    return tuple(options)


def random_tcp_flags(rng: random.Random) -> int:
    flags = rng.getrandbits(12)
    return flags & ~(FIN | RST) if flags & SYN else flags


# --------------------------------------------------------------------------------------------
# Ethernet
# --------------------------------------------------------------------------------------------


def test_ethernet_scapy_built_frames_parse_to_the_same_fields():
    for index, rng in cases(1):
        dst, src = rng.randbytes(6), rng.randbytes(6)
        ethertype = rng.randint(0x0600, 0xFFFF)
        payload = random_bytes(rng, 0, 80)
        wire = raw(Ether(dst=mac_text(dst), src=mac_text(src), type=ethertype) / Raw(payload))
        frame = EthernetFrame.parse(wire)
        assert frame == EthernetFrame(dst, src, ethertype, payload), f"case {index}"
        assert frame.build() == wire, f"case {index}"


def test_ethernet_our_frames_dissect_in_scapy_to_the_same_fields():
    bound = bound_values(Ether, "type")
    for index, rng in cases(2):
        frame = EthernetFrame(
            rng.randbytes(6),
            rng.randbytes(6),
            unbound(rng, 0x0600, 0xFFFF, bound),
            random_bytes(rng, 0, 80),
        )
        wire = frame.build()
        dissected = Ether(wire)
        assert (dissected.dst, dissected.src, dissected.type) == (
            mac_text(frame.dst),
            mac_text(frame.src),
            frame.ethertype,
        ), f"case {index}"
        assert isinstance(dissected.payload, (Raw, NoPayload)), f"case {index}"
        assert raw(dissected.payload) == frame.payload, f"case {index}"
        assert raw(dissected) == wire, f"case {index}"


# --------------------------------------------------------------------------------------------
# ARP
# --------------------------------------------------------------------------------------------


def test_arp_scapy_built_packets_parse_to_the_same_fields():
    for index, rng in cases(3):
        operation = rng.choice([1, 2])
        sender_mac, target_mac = rng.randbytes(6), rng.randbytes(6)
        sender_ip, target_ip = rng.getrandbits(32), rng.getrandbits(32)
        packet = ARP(
            op=operation,
            hwsrc=mac_text(sender_mac),
            psrc=ip_text(sender_ip),
            hwdst=mac_text(target_mac),
            pdst=ip_text(target_ip),
        )
        wire = raw(packet)
        padding = bytes(rng.choice([0, 18]))  # Ethernet padding is ignored
        parsed = ARPPacket.parse(wire + padding)
        assert parsed == ARPPacket(operation, sender_mac, sender_ip, target_mac, target_ip), (
            f"case {index}"
        )
        assert parsed.build() == wire, f"case {index}"


def test_arp_our_packets_dissect_in_scapy_to_the_same_fields():
    for index, rng in cases(4):
        packet = ARPPacket(
            rng.choice([1, 2]),
            rng.randbytes(6),
            rng.getrandbits(32),
            rng.randbytes(6),
            rng.getrandbits(32),
        )
        wire = packet.build()
        dissected = ARP(wire)
        assert (dissected.hwtype, dissected.ptype, dissected.hwlen, dissected.plen) == (
            1,
            0x0800,
            6,
            4,
        )
        assert (
            dissected.op,
            dissected.hwsrc,
            ip_int(dissected.psrc),
            dissected.hwdst,
            ip_int(dissected.pdst),
        ) == (
            packet.operation,
            mac_text(packet.sender_mac),
            packet.sender_ip,
            mac_text(packet.target_mac),
            packet.target_ip,
        ), f"case {index}"
        assert raw(dissected) == wire, f"case {index}"


# --------------------------------------------------------------------------------------------
# IPv4
# --------------------------------------------------------------------------------------------


def random_ipv4_options(rng: random.Random) -> tuple[list[object], bytes]:
    """Well-formed IPv4 options (RFC 791): NOP, router alert, record route, EOL; as scapy
    option objects and as the bytes they encode to (zero-padded to a multiple of 4)."""
    pieces: list[tuple[object, bytes]] = []
    size = 0
    for _ in range(rng.randint(0, 4)):
        choice = rng.randrange(3)
        if choice == 0:
            piece = (scapy_inet.IPOption_NOP(), b"\x01")
        elif choice == 1:
            piece = (scapy_inet.IPOption_Router_Alert(), b"\x94\x04\x00\x00")
        else:
            routers = [rng.getrandbits(32) for _ in range(rng.randint(1, 4))]
            encoded = bytes((7, 3 + 4 * len(routers), 4)) + struct.pack(
                f"!{len(routers)}I", *routers
            )
            piece = (scapy_inet.IPOption_RR(routers=[ip_text(r) for r in routers]), encoded)
        if size + len(piece[1]) > 40:
            break
        pieces.append(piece)
        size += len(piece[1])
    if pieces and size < 40 and rng.random() < 0.3:
        pieces.append((scapy_inet.IPOption_EOL(), b"\x00"))
    encoded = b"".join(piece[1] for piece in pieces)
    return [piece[0] for piece in pieces], encoded + bytes(-len(encoded) % 4)


def test_ipv4_scapy_built_packets_parse_to_the_same_fields():
    for index, rng in cases(5):
        payload = random_bytes(rng, 0, 100)
        scapy_options, options = random_ipv4_options(rng)
        flags = rng.randint(0, 3)  # MF, DF (the reserved "evil" bit is a parse error)
        frag = rng.randint(0, (65535 - len(payload)) // 8) if rng.random() < 0.5 else 0
        src, dst = rng.getrandbits(32), rng.getrandbits(32)
        packet = IP(
            src=ip_text(src),
            dst=ip_text(dst),
            proto=rng.randint(0, 255),
            ttl=rng.randint(0, 255),
            tos=rng.randint(0, 255),
            id=rng.randint(0, 0xFFFF),
            flags=flags,
            frag=frag,
            options=scapy_options,
        ) / Raw(payload)
        wire = raw(packet)
        ours = IPv4Packet.parse(wire)
        assert ours == IPv4Packet(
            src,
            dst,
            packet.proto,
            payload,
            packet.ttl,
            packet.tos,
            packet.id,
            bool(flags & 2),
            bool(flags & 1),
            frag * 8,
            options,
        ), f"case {index}"
        assert ours.build() == wire, f"case {index}: our header checksum differs from scapy's"


def test_ipv4_our_packets_dissect_in_scapy_with_the_same_checksum():
    bound = bound_values(IP, "proto") | {1, 6, 17}
    for index, rng in cases(6):
        payload = random_bytes(rng, 0, 100)
        packet = IPv4Packet(
            src=rng.getrandbits(32),
            dst=rng.getrandbits(32),
            protocol=unbound(rng, 0, 255, bound),
            payload=payload,
            ttl=rng.randint(0, 255),
            tos=rng.randint(0, 255),
            identification=rng.randint(0, 0xFFFF),
            dont_fragment=rng.random() < 0.5,
            more_fragments=rng.random() < 0.3,
            fragment_offset=8 * rng.randint(0, (65535 - len(payload)) // 8)
            if rng.random() < 0.3
            else 0,
            options=random_ipv4_options(rng)[1],
        )
        wire = packet.build()
        dissected = IP(wire)
        assert (
            dissected.version,
            dissected.ihl,
            dissected.len,
            dissected.tos,
            dissected.id,
            int(dissected.flags),
            dissected.frag * 8,
            dissected.ttl,
            dissected.proto,
            ip_int(dissected.src),
            ip_int(dissected.dst),
        ) == (
            4,
            packet.header_length // 4,
            packet.total_length,
            packet.tos,
            packet.identification,
            packet.dont_fragment << 1 | packet.more_fragments,
            packet.fragment_offset,
            packet.ttl,
            packet.protocol,
            packet.src,
            packet.dst,
        ), f"case {index}"
        assert b"".join(raw(o) for o in dissected.options).ljust(len(packet.options), b"\x00") == (
            packet.options
        ), f"case {index}"
        assert raw(dissected.payload) == payload, f"case {index}"
        del dissected.chksum
        assert raw(dissected) == wire, f"case {index}: scapy's header checksum differs from ours"


# --------------------------------------------------------------------------------------------
# ICMPv4
# --------------------------------------------------------------------------------------------

ID_SEQ_TYPES = (0, 8, 15, 16)
# Types whose second word scapy reads as one 32-bit "unused" field and whose payload it keeps raw.
PLAIN_TYPES = tuple(
    t for t in range(256) if t not in (0, 3, 4, 5, 8, 11, 12, 13, 14, 15, 16, 17, 18, 37, 38)
)


def random_quote(rng: random.Random) -> bytes:
    """An ICMP error's quote: a scapy-built IPv4 header and the first bytes of its datagram."""
    inner = IP(
        src=ip_text(rng.getrandbits(32)),
        dst=ip_text(rng.getrandbits(32)),
        id=rng.randint(0, 0xFFFF),
    )
    if rng.random() < 0.5:
        inner = (
            inner
            / UDP(sport=rng.randint(1, 0xFFFF), dport=rng.randint(1, 0xFFFF))
            / Raw(random_bytes(rng, 0, 60))
        )
    else:
        inner = inner / TCP(
            sport=rng.randint(1, 0xFFFF), dport=rng.randint(1, 0xFFFF), seq=rng.getrandbits(32)
        )
    whole = raw(inner)
    return whole[: rng.randint(28, len(whole))]


def random_scapy_icmp(rng: random.Random) -> tuple[object, int, bytes]:
    """A scapy ICMP message, the ``rest`` word we must read from it, and our payload."""
    kind = rng.choice([0, 8, 3, 11, 12, 5, 13, 15, rng.choice(PLAIN_TYPES)])
    code = rng.randint(0, 15) if kind == 3 else rng.randint(0, 255)
    if kind in ID_SEQ_TYPES:
        identifier, sequence = rng.randint(0, 0xFFFF), rng.randint(0, 0xFFFF)
        data = random_bytes(rng, 0, 100)
        return (
            ICMP(type=kind, code=code, id=identifier, seq=sequence) / Raw(data),
            identifier << 16 | sequence,
            data,
        )
    if kind == 13:
        identifier, sequence = rng.randint(0, 0xFFFF), rng.randint(0, 0xFFFF)
        stamps = [rng.randint(0, 86_399_999) for _ in range(3)]
        message = ICMP(
            type=13,
            code=code,
            id=identifier,
            seq=sequence,
            ts_ori=stamps[0],
            ts_rx=stamps[1],
            ts_tx=stamps[2],
        )
        return message, identifier << 16 | sequence, struct.pack("!III", *stamps)
    if kind == 3:
        quote, mtu = random_quote(rng), rng.randint(0, 0xFFFF)
        return ICMP(type=3, code=code, nexthopmtu=mtu) / Raw(quote), mtu, quote
    if kind == 11:
        quote, unused = random_quote(rng), rng.randint(0, 0xFFFF)
        return ICMP(type=11, code=code, unused=unused) / Raw(quote), unused, quote
    if kind == 12:
        quote, pointer = random_quote(rng), rng.randint(0, 255)
        return ICMP(type=12, code=code, ptr=pointer) / Raw(quote), pointer << 24, quote
    if kind == 5:
        quote, gateway = random_quote(rng), rng.getrandbits(32)
        return ICMP(type=5, code=code, gw=ip_text(gateway)) / Raw(quote), gateway, quote
    unused, data = rng.getrandbits(32), random_bytes(rng, 0, 100)
    return ICMP(type=kind, code=code, unused=unused) / Raw(data), unused, data


def test_icmp_scapy_built_messages_parse_to_the_same_fields():
    for index, rng in cases(7):
        message, rest, payload = random_scapy_icmp(rng)
        wire = raw(message)
        ours = ICMPv4Message.parse(wire)  # checks scapy's checksum
        assert ours == ICMPv4Message(message.type, message.code, rest, payload), f"case {index}"
        if ours.type == 3:
            assert ours.next_hop_mtu == message.nexthopmtu
        if ours.type == 12:
            assert ours.pointer == message.ptr
        if ours.is_error:
            quoted = ours.quoted_packet()
            inner = IP(payload)
            assert (quoted.src, quoted.dst, quoted.identification) == (
                ip_int(inner.src),
                ip_int(inner.dst),
                inner.id,
            ), f"case {index}"
        assert ours.build() == wire, f"case {index}: our checksum differs from scapy's"


def random_our_icmp(rng: random.Random) -> ICMPv4Message:
    choice = rng.randrange(6)
    if choice == 0:
        return ICMPv4Message.echo_request(
            rng.randint(0, 0xFFFF), rng.randint(0, 0xFFFF), random_bytes(rng, 0, 100)
        )
    if choice == 1:
        return ICMPv4Message.echo_reply(
            rng.randint(0, 0xFFFF), rng.randint(0, 0xFFFF), random_bytes(rng, 0, 100)
        )
    if choice == 2:
        return ICMPv4Message.destination_unreachable(
            rng.randint(0, 15), random_quote(rng), rng.randint(0, 0xFFFF)
        )
    if choice == 3:
        return ICMPv4Message.time_exceeded(rng.randint(0, 1), random_quote(rng))
    if choice == 4:
        return ICMPv4Message.parameter_problem(rng.randint(0, 255), random_quote(rng))
    return ICMPv4Message(
        rng.choice(PLAIN_TYPES), rng.randint(0, 255), rng.getrandbits(32), random_bytes(rng, 0, 100)
    )


def test_icmp_our_messages_dissect_in_scapy_with_the_same_checksum():
    for index, rng in cases(8):
        message = random_our_icmp(rng)
        wire = message.build()
        dissected = ICMP(wire)
        assert (dissected.type, dissected.code) == (message.type, message.code), f"case {index}"
        if message.type in ID_SEQ_TYPES:
            assert (dissected.id, dissected.seq) == (message.identifier, message.sequence)
            assert raw(dissected.payload) == message.payload, f"case {index}"
        elif message.type == 3:
            assert dissected.nexthopmtu == message.next_hop_mtu, f"case {index}"
            assert (dissected.length, dissected.reserved) == (0, 0)
        elif message.type == 12:
            assert dissected.ptr == message.pointer, f"case {index}"
        elif message.type == 11:
            assert (dissected.length, dissected.unused) == (0, 0)
        else:
            assert dissected.unused == message.rest, f"case {index}"
            assert raw(dissected.payload) == message.payload, f"case {index}"
        if message.is_error:
            inner = dissected.payload
            quoted = message.quoted_packet()
            assert (ip_int(inner.src), ip_int(inner.dst), inner.proto) == (
                quoted.src,
                quoted.dst,
                quoted.protocol,
            ), f"case {index}"
        del dissected.chksum
        assert raw(dissected) == wire, f"case {index}: scapy's checksum differs from ours"


# --------------------------------------------------------------------------------------------
# UDP
# --------------------------------------------------------------------------------------------


def test_udp_scapy_built_datagrams_parse_to_the_same_fields():
    for index, rng in cases(9):
        src, dst = rng.getrandbits(32), rng.getrandbits(32)
        sport, dport = rng.randint(0, 0xFFFF), rng.randint(0, 0xFFFF)
        payload = random_bytes(rng, 0, 200)
        zero_sum = rng.random() < 0.1
        if zero_sum:  # computed checksum 0: sent as 0xFFFF (RFC 768)
            header = struct.pack("!HHHH", sport, dport, 0, 0)
            payload = zero_sum_payload(rng, header, 17, src, dst, length_field_at=4)
        no_checksum = rng.random() < 0.1
        datagram = UDP(sport=sport, dport=dport, chksum=0 if no_checksum else None) / Raw(payload)
        wire = raw(IP(src=ip_text(src), dst=ip_text(dst)) / datagram)[20:]
        assert not zero_sum or no_checksum or wire[6:8] == b"\xff\xff", f"case {index}"
        ours = UDPDatagram.parse(wire, src, dst)  # checks scapy's checksum
        assert ours == UDPDatagram(sport, dport, payload), f"case {index}"
        if not no_checksum:
            assert ours.build(src, dst) == wire, f"case {index}: our checksum differs from scapy's"
            with pytest.raises(MalformedPacket):
                UDPDatagram.parse(wire, src ^ 1, dst)


def test_udp_our_datagrams_dissect_in_scapy_with_the_same_checksum():
    bound = bound_values(UDP, "sport", "dport")
    for index, rng in cases(10):
        src, dst = rng.getrandbits(32), rng.getrandbits(32)
        sport, dport = unbound(rng, 0, 0xFFFF, bound), unbound(rng, 0, 0xFFFF, bound)
        zero_sum = rng.random() < 0.1
        if zero_sum:  # computed checksum 0: sent as 0xFFFF (RFC 768)
            header = struct.pack("!HHHH", sport, dport, 0, 0)
            payload = zero_sum_payload(rng, header, 17, src, dst, length_field_at=4)
        else:
            payload = random_bytes(rng, 0, 200)
        datagram = UDPDatagram(sport, dport, payload)
        segment = datagram.build(src, dst)
        assert not zero_sum or segment[6:8] == b"\xff\xff", f"case {index}"
        wire = IPv4Packet(src, dst, 17, segment, identification=rng.randint(0, 0xFFFF)).build()
        dissected = IP(wire)
        udp = dissected[UDP]
        assert (udp.sport, udp.dport, udp.len, udp.chksum) == (
            datagram.src_port,
            datagram.dst_port,
            len(segment),
            int.from_bytes(segment[6:8], "big"),
        ), f"case {index}"
        assert isinstance(udp.payload, (Raw, NoPayload)), f"case {index}"
        assert raw(udp.payload) == datagram.payload, f"case {index}"
        del dissected.chksum
        del udp.chksum
        assert raw(dissected) == wire, f"case {index}: scapy's checksums differ from ours"


# --------------------------------------------------------------------------------------------
# TCP
# --------------------------------------------------------------------------------------------


def test_tcp_scapy_built_segments_parse_to_the_same_fields():
    for index, rng in cases(11):
        src, dst = rng.getrandbits(32), rng.getrandbits(32)
        flags = random_tcp_flags(rng)
        ours_options = random_tcp_options(rng)
        options = to_scapy_options(ours_options)
        if len(b"".join(o.encode() for o in ours_options)) < 40 and rng.random() < 0.3:
            options.append(("EOL", None))
        fields = {
            "sport": rng.randint(0, 0xFFFF),
            "dport": rng.randint(0, 0xFFFF),
            "seq": rng.getrandbits(32),
            "ack": rng.getrandbits(32),
            "reserved": flags >> 9,
            "flags": flags & 0x1FF,
            "window": rng.randint(0, 0xFFFF),
            "urgptr": rng.randint(0, 0xFFFF),
        }
        payload = random_bytes(rng, 0, 100)
        segment = TCP(options=options, **fields) / Raw(payload)
        wire = raw(IP(src=ip_text(src), dst=ip_text(dst)) / segment)[20:]
        ours = TCPSegment.parse(wire, src, dst)  # checks scapy's checksum
        assert (
            ours.src_port,
            ours.dst_port,
            ours.seq,
            ours.ack,
            ours.flags,
            ours.window,
            ours.urgent,
            ours.payload,
        ) == (
            fields["sport"],
            fields["dport"],
            fields["seq"],
            fields["ack"],
            flags,
            fields["window"],
            fields["urgptr"],
            payload,
        ), f"case {index}"
        assert without_trailing_eol(to_scapy_options(ours.options)) == without_trailing_eol(
            options
        ), f"case {index}"
        assert ours.build(src, dst) == wire, f"case {index}: our checksum differs from scapy's"


def test_tcp_our_segments_dissect_in_scapy_with_the_same_checksum():
    bound = bound_values(TCP, "sport", "dport")
    for index, rng in cases(12):
        src, dst = rng.getrandbits(32), rng.getrandbits(32)
        segment = TCPSegment(
            src_port=unbound(rng, 0, 0xFFFF, bound),
            dst_port=unbound(rng, 0, 0xFFFF, bound),
            seq=rng.getrandbits(32),
            ack=rng.getrandbits(32),
            flags=random_tcp_flags(rng),
            window=rng.randint(0, 0xFFFF),
            payload=random_bytes(rng, 0, 100),
            options=random_tcp_options(rng),
            urgent=rng.randint(0, 0xFFFF),
        )
        zero_sum = rng.random() < 0.1
        if zero_sum:  # computed checksum 0: TCP has no "none", so 0 is sent as is
            header = segment._replace(payload=b"").build(src, dst, checksum=0)
            payload = zero_sum_payload(rng, header, 6, src, dst)
            segment = segment._replace(payload=payload)
        built = segment.build(src, dst)
        assert not zero_sum or built[16:18] == b"\x00\x00", f"case {index}"
        wire = IPv4Packet(src, dst, 6, built, identification=rng.randint(0, 0xFFFF)).build()
        dissected = IP(wire)
        tcp = dissected[TCP]
        assert (
            tcp.sport,
            tcp.dport,
            tcp.seq,
            tcp.ack,
            tcp.dataofs * 4,
            tcp.reserved << 9 | int(tcp.flags),
            tcp.window,
            tcp.chksum,
            tcp.urgptr,
        ) == (
            segment.src_port,
            segment.dst_port,
            segment.seq,
            segment.ack,
            len(built) - len(segment.payload),
            segment.flags,
            segment.window,
            int.from_bytes(built[16:18], "big"),
            segment.urgent,
        ), f"case {index}"
        assert without_trailing_eol(tcp.options) == to_scapy_options(segment.options), (
            f"case {index}"
        )
        assert isinstance(tcp.payload, (Raw, NoPayload)), f"case {index}"
        assert raw(tcp.payload) == segment.payload, f"case {index}"
        del dissected.chksum
        del tcp.chksum
        assert raw(dissected) == wire, f"case {index}: scapy's checksums differ from ours"
