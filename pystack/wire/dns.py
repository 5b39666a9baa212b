"""DNS messages (RFC 1035 section 4): header, questions and resource records.

Names are text in master-file form without the final dot (``"example.com"``, the root is ``""``):
label bytes outside ``[A-Za-z0-9-_*/+=]`` are written ``\\DDD`` (RFC 1035 5.1), so any label
survives the round trip. Case is kept as received; comparing names is the caller's job
(``name_key``). Record data is typed where simple: A an ``int``, AAAA 16 ``bytes`` (both class IN
only), CNAME/NS/PTR a name, MX an ``MXData``, SOA an ``SOAData``, TXT a tuple of strings; any other
type (OPT among them) keeps its raw rdata ``bytes``.

``DNSMessage.parse`` follows compression pointers (RFC 1035 4.1.4) with loop and bounds
protection: a pointer must point past the header and before the start of the labels being read
(so targets strictly decrease and no loop is possible), at most ``MAX_POINTER_JUMPS`` of them;
labels of at most 63 bytes, names of at most 255 bytes on the wire. It raises only ``MalformedPacket("dns....")``.
``build(compress=True)`` points every repeated name suffix (exact bytes) at its first occurrence,
as servers do; ``compress=False`` writes every name in full. Build errors are ``ValueError``.
"""

from __future__ import annotations

import ipaddress
import struct
from typing import NamedTuple

from pystack.wire.addresses import ip_to_str
from pystack.wire.errors import MalformedPacket

HEADER_LENGTH = 12
UDP_PAYLOAD_LIMIT = 512  # RFC 1035 4.2.1: larger answers over UDP are truncated (TC)
MAX_NAME_LENGTH = 255  # RFC 1035 2.3.4, wire form: length octets and the final zero included
MAX_LABEL_LENGTH = 63
MAX_POINTER_JUMPS = 128

TYPE_A, TYPE_NS, TYPE_CNAME, TYPE_SOA, TYPE_PTR, TYPE_MX, TYPE_TXT = 1, 2, 5, 6, 12, 15, 16
TYPE_AAAA, TYPE_OPT, TYPE_ANY = 28, 41, 255
CLASS_IN, CLASS_ANY = 1, 255
OPCODE_QUERY = 0
RCODE_NOERROR, RCODE_FORMERR, RCODE_SERVFAIL = 0, 1, 2
RCODE_NXDOMAIN, RCODE_NOTIMP, RCODE_REFUSED = 3, 4, 5

# fmt: off
TYPE_NAMES = {TYPE_A: "A", TYPE_NS: "NS", TYPE_CNAME: "CNAME", TYPE_SOA: "SOA", TYPE_PTR: "PTR",
              TYPE_MX: "MX", TYPE_TXT: "TXT", TYPE_AAAA: "AAAA", TYPE_OPT: "OPT", TYPE_ANY: "ANY"}
# fmt: on
# tcpdump's spelling (print-domain.c ns_rcode)
RCODE_NAMES = ("", "FormErr", "ServFail", "NXDomain", "NotImp", "Refused")
_OPCODE_NAMES = ("", " inv_q", " stat", " op3", " notify", " update")

_header = struct.Struct("!HHHHHH")
_question = struct.Struct("!HH")
_record = struct.Struct("!HHIH")
_u16 = struct.Struct("!H")
_u32 = struct.Struct("!I")
_soa_numbers = struct.Struct("!IIIII")
_PLAIN = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_*/+=")
_NAME_RDATA = frozenset({TYPE_CNAME, TYPE_NS, TYPE_PTR})
_DIGITS = frozenset("0123456789")


class DomainNameError(ValueError):
    """A name that cannot be encoded; ``reason`` is "empty label", "label too long",
    "name too long" or "bad escape"."""

    def __init__(self, reason: str, name: str) -> None:
        super().__init__(f"{reason}: {name!r}")
        self.reason = reason


class MXData(NamedTuple):
    preference: int
    exchange: str


class SOAData(NamedTuple):
    mname: str
    rname: str
    serial: int
    refresh: int
    retry: int
    expire: int
    minimum: int


RecordData = int | str | bytes | MXData | SOAData | tuple[bytes, ...]


class DNSQuestion(NamedTuple):
    name: str
    qtype: int = TYPE_A
    qclass: int = CLASS_IN

    def summary(self) -> str:
        return f"{type_name(self.qtype)}? {display_name(self.name)}"


class DNSRecord(NamedTuple):
    name: str
    rtype: int
    rclass: int
    ttl: int
    data: RecordData

    def summary(self) -> str:
        data, head = self.data, type_name(self.rtype)
        if isinstance(data, int):
            return f"{head} {ip_to_str(data)}"
        if isinstance(data, str):
            return f"{head} {display_name(data)}"
        if isinstance(data, MXData):
            return f"{head} {display_name(data.exchange)} {data.preference}"
        if isinstance(data, SOAData):
            numbers = f"{data.serial} {data.refresh} {data.retry} {data.expire} {data.minimum}"
            return f"{head} {display_name(data.mname)} {display_name(data.rname)} {numbers}"
        if isinstance(data, tuple):
            texts = " ".join(
                '"' + text.decode("ascii", "backslashreplace") + '"'
                for text in data
                if isinstance(text, bytes)
            )
            return f"{head} {texts}".rstrip()
        if self.rtype == TYPE_AAAA and self.rclass == CLASS_IN and len(data) == 16:
            return f"{head} {ipaddress.IPv6Address(data).compressed}"
        return head


class DNSMessage(NamedTuple):
    id: int
    qr: bool = False
    opcode: int = OPCODE_QUERY
    aa: bool = False
    tc: bool = False
    rd: bool = False
    ra: bool = False
    z: int = 0  # the 3 bits between RA and RCODE (AD and CD since RFC 4035), kept verbatim
    rcode: int = RCODE_NOERROR
    questions: tuple[DNSQuestion, ...] = ()
    answers: tuple[DNSRecord, ...] = ()
    authorities: tuple[DNSRecord, ...] = ()
    additionals: tuple[DNSRecord, ...] = ()

    @classmethod
    def query(
        cls, id: int, name: str, qtype: int = TYPE_A, recursion_desired: bool = True
    ) -> DNSMessage:
        return cls(id, rd=recursion_desired, questions=(DNSQuestion(name, qtype, CLASS_IN),))

    @classmethod
    def answer_for(
        cls,
        query: DNSMessage,
        records: tuple[DNSRecord, ...] | list[DNSRecord] = (),
        rcode: int = RCODE_NOERROR,
        *,
        authoritative: bool = False,
        recursion_available: bool = False,
        authorities: tuple[DNSRecord, ...] = (),
    ) -> DNSMessage:
        """The response to ``query``: same id, opcode, RD and question (RFC 1035 4.1.1)."""
        # (id, qr, opcode, aa, tc, rd, ra, z, rcode, questions, answers, authorities)
        return cls(
            query.id, True, query.opcode, authoritative, False, query.rd, recursion_available, 0,
            rcode, query.questions, tuple(records), authorities,
        )  # fmt: skip

    @classmethod
    def parse_header(cls, data: bytes | bytearray | memoryview) -> DNSMessage:
        """Only the 12-byte header, sections left empty (to answer FORMERR to a broken query)."""
        if len(data) < HEADER_LENGTH:
            raise MalformedPacket("dns.truncated", f"{len(data)} bytes, need 12")
        ident, flags = _header.unpack_from(data)[:2]
        return cls(
            ident,
            qr=bool(flags & 0x8000),
            opcode=flags >> 11 & 0xF,
            aa=bool(flags & 0x400),
            tc=bool(flags & 0x200),
            rd=bool(flags & 0x100),
            ra=bool(flags & 0x80),
            z=flags >> 4 & 7,
            rcode=flags & 0xF,
        )

    @classmethod
    def parse(cls, data: bytes | bytearray | memoryview) -> DNSMessage:
        data = bytes(data)
        header = cls.parse_header(data)
        counts = _header.unpack_from(data)[2:]
        offset, size = HEADER_LENGTH, len(data)
        questions = []
        for _ in range(counts[0]):
            name, offset = _read_name(data, offset)
            if offset + 4 > size:
                raise MalformedPacket("dns.truncated", "question runs past the end")
            qtype, qclass = _question.unpack_from(data, offset)
            questions.append(DNSQuestion(name, qtype, qclass))
            offset += 4
        sections: list[tuple[DNSRecord, ...]] = []
        for count in counts[1:]:
            records = []
            for _ in range(count):
                record, offset = _read_record(data, offset)
                records.append(record)
            sections.append(tuple(records))
        if offset != size:
            raise MalformedPacket("dns.trailing_bytes", f"{size - offset} bytes after the records")
        answers, authorities, additionals = sections
        return header._replace(
            questions=tuple(questions),
            answers=answers,
            authorities=authorities,
            additionals=additionals,
        )

    def build(self, compress: bool = True) -> bytes:
        flags = (
            self.qr << 15
            | (self.opcode & 0xF) << 11
            | self.aa << 10
            | self.tc << 9
            | self.rd << 8
            | self.ra << 7
            | (self.z & 7) << 4
            | self.rcode & 0xF
        )
        sections = (self.answers, self.authorities, self.additionals)
        counts = (len(self.questions), *(len(section) for section in sections))
        writer = _Writer(compress)
        try:
            writer.buffer += _header.pack(self.id, flags, *counts)
            for question in self.questions:
                writer.name(question.name)
                writer.buffer += _question.pack(question.qtype, question.qclass)
            for section in sections:
                for record in section:
                    writer.record(record)
        except struct.error as error:
            raise ValueError(f"DNS field out of range: {error}") from None
        return bytes(writer.buffer)

    def summary(self, size: int | None = None) -> str:
        """tcpdump's line: ``DNS 4660+ A? example.com. (29)``; ``size`` defaults to the built
        length."""
        length = len(self.build()) if size is None else size
        ident = f"DNS {self.id}{_opcode_text(self.opcode)}"
        counts = (len(self.answers), len(self.authorities), len(self.additionals))
        if not self.qr:
            line = ident + ("+" if self.rd else "")
            line += "".join(
                f" [{n}{tag}]" for n, tag in zip(counts, ("a", "n", "au"), strict=True) if n
            )
            if self.questions:
                line += " " + self.questions[0].summary()
            return f"{line} ({length})"
        rcode = f" {RCODE_NAMES[self.rcode]}" if 0 < self.rcode < len(RCODE_NAMES) else ""
        if self.rcode >= len(RCODE_NAMES):
            rcode = f" Resp{self.rcode}"
        flags = ("*" if self.aa else "") + ("" if self.ra else "-") + ("|" if self.tc else "")
        line = f"{ident}{rcode}{flags} {counts[0]}/{counts[1]}/{counts[2]}"
        if self.answers:
            line += " " + ", ".join(record.summary() for record in self.answers)
        return f"{line} ({length})"


def type_name(rtype: int) -> str:
    return TYPE_NAMES.get(rtype, f"Type{rtype}")


def display_name(name: str) -> str:
    """The name with its final dot, as tcpdump and dig print it."""
    return name + "." if name else "."


def _opcode_text(opcode: int) -> str:
    return _OPCODE_NAMES[opcode] if opcode < len(_OPCODE_NAMES) else f" op{opcode}"


# --- names -----------------------------------------------------------------------------------


def labels_to_text(labels: list[bytes] | tuple[bytes, ...]) -> str:
    return ".".join(
        label.decode("ascii")
        if _PLAIN.issuperset(label)
        else "".join(chr(b) if b in _PLAIN else f"\\{b:03d}" for b in label)
        for label in labels
    )


def name_to_labels(text: str) -> tuple[bytes, ...]:
    """Master-file text (final dot optional, ``\\DDD`` and ``\\c`` escapes) to wire labels;
    ``DomainNameError`` when the name cannot be encoded."""
    labels: list[bytes] = []
    label = bytearray()
    index, size = 0, len(text)
    while index < size:
        char = text[index]
        if char == ".":
            if not label and (labels or index + 1 < size):
                raise DomainNameError("empty label", text)
            if label:
                labels.append(bytes(label))
            label = bytearray()
        elif char == "\\":
            digits = text[index + 1 : index + 4]
            if len(digits) == 3 and _DIGITS.issuperset(digits) and int(digits) <= 255:
                label.append(int(digits))
                index += 3
            elif index + 1 < size and text[index + 1] not in _DIGITS:
                label += text[index + 1].encode("utf-8", "surrogatepass")
                index += 1
            else:
                raise DomainNameError("bad escape", text)
        else:
            label += char.encode("utf-8", "surrogatepass")
        if len(label) > MAX_LABEL_LENGTH:
            raise DomainNameError("label too long", text)
        index += 1
    if label:
        labels.append(bytes(label))
    if sum(len(item) + 1 for item in labels) + 1 > MAX_NAME_LENGTH:
        raise DomainNameError("name too long", text)
    return tuple(labels)


def name_key(text: str) -> str:
    """The name in canonical text, ASCII-lowercased: equal keys mean equal names (RFC 4343)."""
    return labels_to_text(name_to_labels(text)).lower()


def _read_name(data: bytes, offset: int) -> tuple[str, int]:
    """The name at ``offset`` and the offset just after it (after the first pointer, if any)."""
    labels: list[bytes] = []
    wire_length, jumps, size = 1, 0, len(data)
    position = limit = offset
    end = -1
    while True:
        if position >= size:
            raise MalformedPacket("dns.truncated", "name runs past the end")
        length = data[position]
        if length == 0:
            return labels_to_text(labels), end if end >= 0 else position + 1
        kind = length & 0xC0
        if kind == 0xC0:
            if position + 1 >= size:
                raise MalformedPacket("dns.truncated", "pointer runs past the end")
            target = (length & 0x3F) << 8 | data[position + 1]
            if end < 0:
                end = position + 2
            # Only backwards, before every label read so far (targets strictly decrease, so no
            # loop), and never into the header.
            if not HEADER_LENGTH <= target < limit:
                raise MalformedPacket("dns.bad_pointer", f"pointer to {target} from {position}")
            jumps += 1
            if jumps > MAX_POINTER_JUMPS:
                raise MalformedPacket("dns.pointer_loop", f"more than {MAX_POINTER_JUMPS} jumps")
            position = limit = target
            continue
        if kind:
            raise MalformedPacket("dns.bad_label_type", f"label type {kind >> 6:#x}")
        wire_length += length + 1
        if wire_length > MAX_NAME_LENGTH:
            raise MalformedPacket("dns.name_too_long", f"over {MAX_NAME_LENGTH} bytes")
        if position + 1 + length > size:
            raise MalformedPacket("dns.truncated", "label runs past the end")
        labels.append(data[position + 1 : position + 1 + length])
        position += 1 + length


def _read_record(data: bytes, offset: int) -> tuple[DNSRecord, int]:
    name, offset = _read_name(data, offset)
    if offset + _record.size > len(data):
        raise MalformedPacket("dns.truncated", "record header runs past the end")
    rtype, rclass, ttl, rdlength = _record.unpack_from(data, offset)
    start = offset + _record.size
    end = start + rdlength
    if end > len(data):
        raise MalformedPacket("dns.truncated", "rdata runs past the end")
    return DNSRecord(name, rtype, rclass, ttl, _read_rdata(data, rtype, rclass, start, end)), end


def _read_rdata(data: bytes, rtype: int, rclass: int, start: int, end: int) -> RecordData:
    length = end - start
    if rclass == CLASS_IN and rtype in (TYPE_A, TYPE_AAAA):
        if length != (4 if rtype == TYPE_A else 16):
            raise MalformedPacket("dns.bad_rdata_length", f"{type_name(rtype)} of {length} bytes")
        return int(_u32.unpack_from(data, start)[0]) if rtype == TYPE_A else data[start:end]
    if rtype in _NAME_RDATA:
        name, after = _read_name(data, start)
        return _expect_end(name, after, end)
    if rtype == TYPE_MX:
        if length < 3:
            raise MalformedPacket("dns.bad_rdata_length", f"MX of {length} bytes")
        exchange, after = _read_name(data, start + 2)
        return _expect_end(MXData(_u16.unpack_from(data, start)[0], exchange), after, end)
    if rtype == TYPE_SOA:
        mname, after = _read_name(data, start)
        rname, after = _read_name(data, after) if after < end else ("", end + 1)
        if after + _soa_numbers.size != end:
            raise MalformedPacket("dns.bad_rdata_length", "SOA names and numbers do not fit")
        return SOAData(mname, rname, *_soa_numbers.unpack_from(data, after))
    if rtype == TYPE_TXT:
        strings = []
        position = start
        while position < end:
            after = position + 1 + data[position]
            if after > end:
                raise MalformedPacket("dns.bad_rdata_length", "TXT string runs past the rdata")
            strings.append(data[position + 1 : after])
            position = after
        return tuple(strings)
    return data[start:end]


def _expect_end(value: RecordData, after: int, end: int) -> RecordData:
    if after != end:
        raise MalformedPacket("dns.bad_rdata_length", f"rdata ends at {end}, name at {after}")
    return value


class _Writer:
    """The message being built, with the offsets of the name suffixes already written."""

    __slots__ = ("buffer", "compress", "offsets")

    def __init__(self, compress: bool) -> None:
        self.buffer = bytearray()
        self.compress = compress
        self.offsets: dict[tuple[bytes, ...], int] = {}

    def name(self, text: str) -> None:
        labels = name_to_labels(text)
        buffer = self.buffer
        for index, label in enumerate(labels):
            if self.compress:
                suffix = labels[index:]
                pointer = self.offsets.get(suffix)
                if pointer is not None:
                    buffer += _u16.pack(0xC000 | pointer)
                    return
                if len(buffer) < 0x4000:  # a pointer has 14 bits
                    self.offsets[suffix] = len(buffer)
            buffer.append(len(label))
            buffer += label
        buffer.append(0)

    def record(self, record: DNSRecord) -> None:
        self.name(record.name)
        buffer = self.buffer
        start = len(buffer) + _record.size
        buffer += _record.pack(record.rtype, record.rclass, record.ttl, 0)
        data = record.data
        if isinstance(data, bytes):
            buffer += data
        elif isinstance(data, int):
            buffer += _u32.pack(data)
        elif isinstance(data, str):
            self.name(data)
        elif isinstance(data, MXData):
            buffer += _u16.pack(data.preference)
            self.name(data.exchange)
        elif isinstance(data, SOAData):
            self.name(data.mname)
            self.name(data.rname)
            buffer += _soa_numbers.pack(*data[2:])
        else:
            for string in data:
                if len(string) > 255:
                    raise ValueError(f"TXT string of {len(string)} bytes exceeds 255")
                buffer.append(len(string))
                buffer += string
        rdlength = len(buffer) - start
        if rdlength > 0xFFFF:
            raise ValueError(f"rdata of {rdlength} bytes exceeds 65535")
        _u16.pack_into(buffer, start - 2, rdlength)
