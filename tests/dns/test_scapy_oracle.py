"""scapy's DNS layer as an independent oracle for ``pystack.wire.dns`` (scapy in tests only).

``CASES`` seeded random messages each way:

(a) our ``build`` (compressed or not, at random) dissects in scapy to the same header bits,
    questions and records (names, types, classes, TTLs and typed rdata), and scapy re-serializes
    the uncompressed form byte for byte;
(b) scapy builds a message from random fields; our ``parse`` reads the same values, our
    uncompressed ``build`` gives scapy's bytes, and scapy decompresses our compressed one to the
    same values. (scapy 2.8's ``DNS.compress()`` is no oracle: it can point a name at another one
    that only shares some labels, e.g. ``x-1.`` at ``x-1.example.com.``.)

scapy splits names on dots and passes through names holding a byte >= 0xC0, so random labels
hold neither (tests/wire/test_dns.py covers them).
scapy splits the top bit of a class off as mDNS's cache-flush / unicast-response bit, and reads
TTLs as signed: both are mapped.
"""

from __future__ import annotations

import functools
import ipaddress
import logging
import random
from typing import Any

import pytest

logging.getLogger("scapy.runtime").setLevel(logging.ERROR)
scapy_dns = pytest.importorskip("scapy.layers.dns")
from scapy.compat import raw  # noqa: E402

from pystack.wire.addresses import ip_to_str  # noqa: E402
from pystack.wire.dns import (  # noqa: E402
    CLASS_IN,
    TYPE_A,
    TYPE_AAAA,
    TYPE_CNAME,
    TYPE_MX,
    TYPE_NS,
    TYPE_PTR,
    TYPE_SOA,
    TYPE_TXT,
    DNSMessage,
    DNSQuestion,
    DNSRecord,
    MXData,
    RecordData,
    SOAData,
    labels_to_text,
    name_to_labels,
)

DNS = scapy_dns.DNS
DNSQR = scapy_dns.DNSQR
DNSRR = scapy_dns.DNSRR
DNSRRMX = scapy_dns.DNSRRMX
DNSRRSOA = scapy_dns.DNSRRSOA

CASES = 1000
RAW_TYPES = (10, 11, 17, 20, 256, 1000, 65280)  # types scapy keeps as raw rdata
KINDS = ("A", "AAAA", "name", "MX", "SOA", "TXT", "raw")
# scapy also takes a name holding a byte >= 0xC0 for one already encoded (a pointer) and copies it.
_LABEL_BYTES = bytes(b for b in range(0xC0) if b != 0x2E)


# --- random values -------------------------------------------------------------------------


def _name(rng: random.Random) -> str:
    labels = [
        bytes(rng.choice(_LABEL_BYTES) for _ in range(rng.randint(1, 10)))
        if rng.random() < 0.3
        else rng.choice([b"www", b"mail", b"a", b"Example", b"x-1"])
        for _ in range(rng.randint(0, 3))
    ]
    return labels_to_text(labels + rng.choice([[], [b"com"], [b"example", b"com"]]))


def _record(rng: random.Random) -> DNSRecord:
    kind = rng.choice(KINDS)
    name, ttl = _name(rng), rng.getrandbits(32)
    rclass = rng.choice([CLASS_IN, 3, 255, rng.getrandbits(16)])
    data: RecordData
    if kind == "A":
        return DNSRecord(name, TYPE_A, CLASS_IN, ttl, rng.getrandbits(32))
    if kind == "AAAA":
        return DNSRecord(name, TYPE_AAAA, CLASS_IN, ttl, rng.randbytes(16))
    if kind == "name":
        rtype = rng.choice([TYPE_CNAME, TYPE_NS, TYPE_PTR])
        return DNSRecord(name, rtype, rclass, ttl, _name(rng))
    if kind == "MX":
        data = MXData(rng.getrandbits(16), _name(rng))
        return DNSRecord(name, TYPE_MX, rclass, ttl, data)
    if kind == "SOA":
        numbers = [rng.getrandbits(32) for _ in range(5)]
        return DNSRecord(name, TYPE_SOA, rclass, ttl, SOAData(_name(rng), _name(rng), *numbers))
    if kind == "TXT":
        strings = tuple(rng.randbytes(rng.randint(0, 20)) for _ in range(rng.randint(1, 3)))
        return DNSRecord(name, TYPE_TXT, rclass, ttl, strings)
    return DNSRecord(name, rng.choice(RAW_TYPES), rclass, ttl, rng.randbytes(rng.randint(0, 12)))


def _message(rng: random.Random) -> DNSMessage:
    def section() -> tuple[DNSRecord, ...]:
        return tuple(_record(rng) for _ in range(rng.randint(0, 3)))

    questions = tuple(
        DNSQuestion(_name(rng), rng.choice([TYPE_A, TYPE_AAAA, TYPE_MX, 255]), rng.getrandbits(16))
        for _ in range(rng.randint(0, 2))
    )
    bit = rng.getrandbits
    return DNSMessage(
        bit(16), qr=bool(bit(1)), opcode=bit(4), aa=bool(bit(1)), tc=bool(bit(1)),
        rd=bool(bit(1)), ra=bool(bit(1)), z=bit(3), rcode=bit(4), questions=questions,
        answers=section(), authorities=section(), additionals=section(),
    )  # fmt: skip


# --- scapy <-> values ----------------------------------------------------------------------


def _scapy_name(name: str) -> bytes:
    return b".".join(name_to_labels(name)) + b"."


def _our_name(name: bytes) -> str:
    return labels_to_text([label for label in name.split(b".") if label])


def _scapy_record(record: DNSRecord) -> Any:
    name, rtype, data = _scapy_name(record.name), record.rtype, record.data
    ttl = record.ttl
    if isinstance(data, SOAData):
        names = {"mname": _scapy_name(data.mname), "rname": _scapy_name(data.rname)}
        numbers = dict(
            zip(("serial", "refresh", "retry", "expire", "minimum"), data[2:], strict=True)
        )
        return DNSRRSOA(rrname=name, rclass=record.rclass, ttl=ttl, **names, **numbers)
    flush, rclass = record.rclass >> 15, record.rclass & 0x7FFF
    if isinstance(data, MXData):
        return DNSRRMX(
            rrname=name, cacheflush=flush, rclass=rclass, ttl=ttl,
            preference=data.preference, exchange=_scapy_name(data.exchange),
        )  # fmt: skip
    rdata: object = data
    if rtype == TYPE_A and isinstance(data, int):
        rdata = ip_to_str(data)
    elif rtype == TYPE_AAAA and isinstance(data, bytes):
        rdata = str(ipaddress.IPv6Address(data))
    elif isinstance(data, str):
        rdata = _scapy_name(data)
    elif isinstance(data, tuple):
        rdata = list(data)
    return DNSRR(rrname=name, type=rtype, cacheflush=flush, rclass=rclass, ttl=ttl, rdata=rdata)


def _scapy_message(message: DNSMessage) -> Any:
    questions = [
        DNSQR(
            qname=_scapy_name(q.name),
            qtype=q.qtype,
            unicastresponse=q.qclass >> 15,
            qclass=q.qclass & 0x7FFF,
        )
        for q in message.questions
    ]
    return DNS(
        id=message.id, qr=message.qr, opcode=message.opcode, aa=message.aa, tc=message.tc,
        rd=message.rd, ra=message.ra, z=message.z >> 2, ad=message.z >> 1 & 1, cd=message.z & 1,
        rcode=message.rcode, qd=questions,
        an=[_scapy_record(r) for r in message.answers],
        ns=[_scapy_record(r) for r in message.authorities],
        ar=[_scapy_record(r) for r in message.additionals],
    )  # fmt: skip


def _record_from_scapy(rr: Any) -> DNSRecord:
    get = functools.partial(getattr, rr)
    rclass = getattr(rr, "cacheflush", 0) << 15 | get("rclass")
    rtype = get("type")
    data: RecordData
    if rtype == TYPE_SOA:
        names = (_our_name(get("mname")), _our_name(get("rname")))
        numbers = (get(key) for key in ("serial", "refresh", "retry", "expire", "minimum"))
        data = SOAData(*names, *numbers)
    elif rtype == TYPE_MX:
        data = MXData(get("preference"), _our_name(get("exchange")))
    elif rtype == TYPE_A and rclass == CLASS_IN:
        data = int(ipaddress.IPv4Address(get("rdata")))
    elif rtype == TYPE_AAAA and rclass == CLASS_IN:
        data = ipaddress.IPv6Address(get("rdata")).packed
    elif rtype in (TYPE_CNAME, TYPE_NS, TYPE_PTR):
        data = _our_name(get("rdata"))
    elif rtype == TYPE_TXT:
        data = tuple(get("rdata"))
    else:
        data = bytes(get("rdata"))
    return DNSRecord(_our_name(get("rrname")), rtype, rclass, get("ttl"), data)


def _message_from_scapy(packet: Any) -> DNSMessage:
    get = functools.partial(getattr, packet)
    questions = tuple(
        DNSQuestion(_our_name(q.qname), q.qtype, q.unicastresponse << 15 | q.qclass)
        for q in get("qd")
    )
    return DNSMessage(
        get("id"), bool(get("qr")), get("opcode"), bool(get("aa")), bool(get("tc")),
        bool(get("rd")), bool(get("ra")), get("z") << 2 | get("ad") << 1 | get("cd"),
        get("rcode"), questions,
        *(tuple(_record_from_scapy(r) for r in get(s)) for s in ("an", "ns", "ar")),
    )  # fmt: skip


# --- the two directions --------------------------------------------------------------------


def test_scapy_reads_what_we_build() -> None:
    rng = random.Random(1035)
    for _ in range(CASES):
        message = _message(rng)
        data = message.build(compress=rng.random() < 0.5)
        assert _message_from_scapy(DNS(data)) == message, data.hex()
        plain = message.build(compress=False)
        assert raw(DNS(plain)) == plain


def test_we_read_what_scapy_builds() -> None:
    rng = random.Random(5452)
    for _ in range(CASES):
        message = _message(rng)
        data = raw(_scapy_message(message))
        assert DNSMessage.parse(data) == message, data.hex()
        assert message.build(compress=False) == data
        assert _message_from_scapy(DNS(message.build())) == message
